/**
 * Benchmark fixture, not a user script: the plain per-connection echo loop that the
 * multiplexer is measured against. `conn.read` into one reused 64 KiB buffer, write it all
 * back, repeat; errors end one connection only.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench/read_write_server.ts --port 0
 *
 * Try it: `deno run --allow-net=127.0.0.1:10000 scripts/echo_bench.ts` after `--port 10000`.
 * @module
 */
import { formatAddr } from "../../lib/address.ts";
import { printError, runMain, stopSignal } from "../../lib/cli.ts";
import {
  type FixtureOptions,
  parseFixtureFlags,
  servePerConnection,
} from "../../lib/bench/fixture.ts";

/** Serves echo with one read/write loop per connection until `signal` aborts. */
export function serveReadWrite(options: FixtureOptions = {}): Promise<void> {
  return servePerConnection(options, echo);
}

async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) return;
    let written = 0;
    while (written < n) written += await conn.write(buffer.subarray(written, n));
  }
}

if (import.meta.main) {
  runMain("read_write_server", async () => {
    using stop = stopSignal();
    await serveReadWrite({
      ...parseFixtureFlags(Deno.args),
      signal: stop.signal,
      onListen: (addr) => printError(`Listening on ${formatAddr(addr)}`),
    });
  });
}
