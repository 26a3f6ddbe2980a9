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
import { isPeerGone } from "../../lib/errors.ts";
import { parseFlags, parseHost, parsePort } from "../../lib/flags.ts";

/** Options for {@linkcode serveReadWrite}. */
export interface FixtureOptions {
  /** Host to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {0} */
  port?: number;
  /** Stops the server: the listener and every connection are closed. */
  signal?: AbortSignal;
  /** Called once with the bound address. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** Serves echo with one read/write loop per connection until `signal` aborts. */
export async function serveReadWrite(options: FixtureOptions = {}): Promise<void> {
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const conns = new Set<Deno.Conn>();
  const stop = () => {
    listener.close();
    for (const conn of conns) conn.close();
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  options.onListen?.(listener.addr);
  const handlers = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      conns.add(conn);
      const handler = echo(conn).finally(() => {
        conns.delete(conn);
        handlers.delete(handler);
      });
      handlers.add(handler);
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
  } finally {
    options.signal?.removeEventListener("abort", stop);
  }
  await Promise.all(handlers);
}

async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      let written = 0;
      while (written < n) written += await conn.write(buffer.subarray(written, n));
    }
  } catch (error) {
    if (!isPeerGone(error)) throw error;
  } finally {
    try {
      conn.close();
    } catch { /* closed by stop() */ }
  }
}

/** Parses a fixture's `--host`/`--port` flags (port 0 by default). */
export function parseFixtureFlags(args: string[]): { hostname: string; port: number } {
  const flags = parseFlags(args, { string: ["host", "port"] });
  return {
    hostname: flags.host === undefined ? "127.0.0.1" : parseHost(flags.host),
    port: flags.port === undefined ? 0 : parsePort(flags.port),
  };
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
