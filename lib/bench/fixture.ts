/**
 * The benchmark fixtures' shared shape: the classic one-task-per-connection server that the
 * multiplexer is measured against (`scripts/bench/read_write_server.ts`,
 * `scripts/bench/pipe_to_server.ts`). Only what a connection's handler does differs. It is a
 * baseline on purpose: no accept back-off, no limits, no turn budget.
 * @module
 */
import { isPeerGone } from "../errors.ts";
import { parseFlags, parseHost, parsePort } from "../flags.ts";
import { closeQuietly } from "../io.ts";

/** Options for a benchmark fixture server. */
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

/**
 * Accepts until `signal` aborts and runs `handle` on each connection without awaiting it; an
 * error a peer causes ends that connection only. Resolves when every handler has ended.
 *
 * @example A server that greets and closes
 * ```ts
 * import { servePerConnection } from "./fixture.ts";
 * const controller = new AbortController();
 * const listening = Promise.withResolvers<number>();
 * const serving = servePerConnection(
 *   { signal: controller.signal, onListen: (addr) => listening.resolve(addr.port) },
 *   async (conn) => void await conn.write(new TextEncoder().encode("hi")),
 * );
 * using client = await Deno.connect({ port: await listening.promise });
 * const buffer = new Uint8Array(2);
 * if (await client.read(buffer) !== 2) throw new Error("no greeting");
 * controller.abort();
 * await serving;
 * ```
 */
export async function servePerConnection(
  options: FixtureOptions,
  handle: (conn: Deno.Conn) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const conns = new Set<Deno.Conn>();
  const stop = () => {
    listener.close();
    for (const conn of conns) closeQuietly(conn);
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  options.onListen?.(listener.addr);
  const handlers = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      conns.add(conn);
      const handler = handle(conn)
        .catch((error) => {
          if (!isPeerGone(error)) throw error;
        })
        .finally(() => {
          // Closed already by its handler, its pipe, or stop(): any of them may be first.
          closeQuietly(conn);
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

/**
 * Parses a fixture's flags: `--host` (default 127.0.0.1) and `--port` (default 0, a free one).
 *
 * @example
 * ```ts
 * import { parseFixtureFlags } from "./fixture.ts";
 * const { hostname, port } = parseFixtureFlags(["--port", "0"]);
 * if (hostname !== "127.0.0.1" || port !== 0) throw new Error(`${hostname} ${port}`);
 * ```
 */
export function parseFixtureFlags(args: string[]): { hostname: string; port: number } {
  const flags = parseFlags(args, { string: ["host", "port"] });
  return {
    hostname: flags.host === undefined ? "127.0.0.1" : parseHost(flags.host),
    port: flags.port === undefined ? 0 : parsePort(flags.port),
  };
}
