/**
 * `serveMux()`: a server on the multiplexer — listen as lib/net says, accept with its one accept
 * loop, and run a {@linkcode Decision} on every connection — and `serveEcho()`, the echo server
 * built that way.
 * @module
 */
import { listen, type ListenConfig } from "../net/listen.ts";
import { Multiplexer } from "./multiplexer.ts";
import type { DataDecision, Decision, MultiplexerOptions, MuxStats } from "./types.ts";

/** Options for {@linkcode serveMux}: where to listen, and the multiplexer's limits and hooks. */
export interface ServeMuxOptions extends ListenConfig, MultiplexerOptions {}

/** A running multiplexed server. */
export interface MuxServer {
  /** The address really bound (read back from the listener). */
  readonly addr: Deno.Addr;
  /** Live counters: connections open, total, refused; bytes in, out, queued and dropped. */
  readonly stats: Readonly<MuxStats>;
  /** Stops accepting, writes what is queued within `graceTimeout`, closes everything; a Unix
   * socket file is removed. Safe to call twice. */
  close(): void;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Timer turns the loop took so that every connection got its turn (lib/turn_pacer.ts). */
  readonly pauses: number;
}

/**
 * Listens and serves every connection with `decision` on one loop.
 *
 * @example A server that answers every message with its length
 * ```ts
 * import { serveMux } from "./serve.ts";
 * const server = await serveMux((mux, conn, bytes) => {
 *   mux.send(conn, new TextEncoder().encode(`${bytes.length}\n`));
 * }, { port: 0 });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: (server.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("four"));
 * await conn.closeWrite();
 * const text = await new Response(conn.readable).text();
 * server.close();
 * await server.finished;
 * if (text !== "4\n") throw new Error(text);
 * ```
 */
export async function serveMux(
  decision: Decision | DataDecision,
  options: ServeMuxOptions = {},
): Promise<MuxServer> {
  // Bad limits are refused before anything listens.
  const mux = new Multiplexer(decision, options);
  const listener = await listen(options);
  // The listener's close() also removes a Unix socket file: once more when the loop has ended.
  const finished = mux.run(listener).finally(() => listener.close());
  return {
    addr: listener.addr,
    stats: mux.stats,
    close: mux.stop,
    finished,
    get pauses() {
      return mux.pauses;
    },
  };
}
