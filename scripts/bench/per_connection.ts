/**
 * Benchmark fixtures' shared shape: the classic one-task-per-connection server that the
 * multiplexer is measured against. Only what a connection's handler does differs.
 * @module
 */
import { isPeerGone } from "../../lib/errors.ts";

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

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed already: by its handler, its pipe, or stop() */ }
}
