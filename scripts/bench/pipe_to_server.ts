/**
 * Benchmark fixture, not a user script: the style people copy from examples, one
 * `conn.readable.pipeTo(conn.writable)` per connection, here awaited and caught so that one
 * reset client cannot kill the server.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench/pipe_to_server.ts --port 0
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

/** Serves echo with one `pipeTo` per connection until `signal` aborts. */
export function servePipeTo(options: FixtureOptions = {}): Promise<void> {
  return servePerConnection(options, (conn) => conn.readable.pipeTo(conn.writable));
}

if (import.meta.main) {
  runMain("pipe_to_server", async () => {
    using stop = stopSignal();
    await servePipeTo({
      ...parseFixtureFlags(Deno.args),
      signal: stop.signal,
      onListen: (addr) => printError(`Listening on ${formatAddr(addr)}`),
    });
  });
}
