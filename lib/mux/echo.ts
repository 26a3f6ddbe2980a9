/**
 * The echo decision and the multiplexed echo server: every byte a client sends comes back, with
 * bounded memory, half-close, limits and a graceful stop.
 * @module
 */
import type { MuxControl } from "./types.ts";
import { type MuxServer, serveMux, type ServeMuxOptions } from "./serve.ts";
import type { ConnView } from "./state.ts";

/** The echo decision: send every byte back to the connection it came from. */
export function echo(mux: MuxControl, conn: ConnView, bytes: Uint8Array): void {
  mux.send(conn, bytes);
}

/** Options for {@linkcode serveEcho}: where to listen, limits and hooks. */
export interface ServeEchoOptions extends ServeMuxOptions {}

/**
 * Starts the multiplexed echo server (127.0.0.1 and a free port unless told otherwise).
 *
 * @example Echoing one message
 * ```ts
 * import { serveEcho } from "./echo.ts";
 * const server = await serveEcho({ port: 0 });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: (server.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("This is the message. "));
 * await conn.closeWrite();
 * const text = await new Response(conn.readable).text();
 * server.close();
 * await server.finished;
 * if (text !== "This is the message. ") throw new Error(text);
 * ```
 */
export function serveEcho(options: ServeEchoOptions = {}): Promise<MuxServer> {
  return serveMux(echo, options);
}
