/**
 * `serveEcho()`: the multiplexed echo server — every byte a client sends comes back, with
 * bounded memory, half-close, limits and a graceful stop.
 * @module
 */
import { formatTarget } from "../address.ts";
import { withAddress } from "../errors.ts";
import { listenTlsOrTcp, type ServerTlsOptions } from "../tls.ts";
import { releaseUnixPath } from "../net/unix_path.ts";
import { Multiplexer, type MultiplexerOptions, type MuxStats } from "./multiplexer.ts";
import type { ConnState } from "./state.ts";

/** Options for {@linkcode serveEcho}. */
export interface ServeEchoOptions extends MultiplexerOptions {
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {10000} */
  port?: number;
  /** Bind a Unix stream socket at this path instead of TCP; removed when the server stops. */
  path?: string;
  /** Pending connections the kernel queues before refusing more. @default {511} */
  backlog?: number;
  /** Serve TLS with this certificate and key (PEM). */
  tls?: ServerTlsOptions;
}

/** A running echo server. */
export interface EchoServer {
  /** The address really bound (read back from the listener). */
  readonly addr: Deno.Addr;
  /** Live counters: connections open, total, refused; bytes in, out and queued. */
  readonly stats: Readonly<MuxStats>;
  /** Stops accepting, writes what is queued within `graceTimeout`, closes everything.
   * Safe to call twice. */
  close(): void;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
}

/** The echo decision: send every byte back to the connection it came from. */
export function echo(mux: Multiplexer, state: ConnState, bytes: Uint8Array): void {
  mux.send(state, bytes);
}

/**
 * Starts the multiplexed echo server.
 *
 * @example Echoing one message
 * ```ts
 * import { serveEcho } from "./serve_echo.ts";
 * const server = serveEcho({ port: 0 });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: (server.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("This is the message. "));
 * await conn.closeWrite();
 * const text = await new Response(conn.readable).text();
 * server.close();
 * await server.finished;
 * if (text !== "This is the message. ") throw new Error(text);
 * ```
 */
export function serveEcho(options: ServeEchoOptions = {}): EchoServer {
  const listener = listen(options);
  let mux: Multiplexer;
  try {
    mux = new Multiplexer(listener, echo, options);
  } catch (error) {
    listener.close();
    throw error;
  }
  let finished = mux.run();
  const { path } = options;
  if (path !== undefined) finished = finished.finally(() => releaseUnixPath(path));
  return { addr: listener.addr, stats: mux.stats, close: mux.close, finished };
}

function listen(options: ServeEchoOptions): Deno.Listener {
  const { path, hostname = "127.0.0.1", port = 10000, backlog = 511, tls } = options;
  if (path !== undefined && tls) throw new TypeError("Cannot serve TLS on a Unix socket path");
  try {
    if (path !== undefined) return Deno.listen({ transport: "unix", path });
    return listenTlsOrTcp({ hostname, port, tcpBacklog: backlog, tls });
  } catch (error) {
    throw withAddress(error, formatTarget({ path, hostname, port }));
  }
}
