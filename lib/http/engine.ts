/**
 * Deno's HTTP engine — the one behind `Deno.serve` (HTTP/1.1, and HTTP/2 with hyper's `h2` when
 * a connection starts with the preface) — run on *one connection that we accepted*, instead of
 * on a listener that `Deno.serve` accepts from by itself.
 *
 * Why not `Deno.serve`: it owns its accept loop, so it offers no handling of accept errors (it
 * exits on EMFILE, issue 9), no connection limit, no handshake, header or idle deadline, and no
 * view of a connection's first bytes. Deno 2.9.6 runs the same engine per connection in
 * `serveHttpOnConnection`, which its own `node:http2` once used; it is internal (reached
 * through `Deno[Deno.internal]`, absent from the type declarations), so
 * {@linkcode hasConnectionEngine} checks for it and servers refuse to start without it.
 * The alternative that is public at run time, the deprecated `Deno.serveHttp`, runs the
 * previous engine (hyper 0.14) and costs more: measured with h2load (20,000 requests, 4
 * connections, 10 streams each) as server CPU time per request, 98–110 µs over h2c against
 * 63–95 µs for this one and 60–62 µs for `Deno.serve`. `node:http2` crashed the process under
 * the same load (`free(): invalid pointer`).
 * @module
 */

/** Called for each request, as `Deno.serve`'s handler; `info.completed` settles when the
 * response has been sent (or failed). */
export type EngineHandler = (
  request: Request,
  info: { completed: Promise<void> },
) => Response | Promise<Response>;

/** Deno's engine serving one connection. */
export interface ConnectionEngine {
  /** Resolves when the connection is closed and every request on it has ended. */
  readonly finished: Promise<void>;
  /** Stops graceful: HTTP/2 sends GOAWAY and finishes open streams, HTTP/1.1 closes after the
   * response in flight. */
  shutdown(): Promise<void>;
}

type ServeHttpOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: EngineHandler,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: (scheme: string) => void,
) => ConnectionEngine;

function engineFunction(): ServeHttpOnConnection | undefined {
  const deno = Deno as unknown as Record<symbol, Record<string, unknown> | undefined>;
  const internal = (Deno as unknown as { internal?: symbol }).internal;
  const candidate = internal === undefined ? undefined : deno[internal]?.serveHttpOnConnection;
  return typeof candidate === "function" ? candidate as ServeHttpOnConnection : undefined;
}

/**
 * Whether this Deno runs its HTTP engine on a single connection (2.9.6 does).
 *
 * @example
 * ```ts
 * import { hasConnectionEngine } from "./engine.ts";
 * if (!hasConnectionEngine()) throw new Error("this Deno cannot serve one connection");
 * ```
 */
export function hasConnectionEngine(): boolean {
  return engineFunction() !== undefined;
}

/** Options for {@linkcode serveConnection}. */
export interface ServeConnectionOptions {
  /** Shuts the connection down gracefully when aborted. */
  signal?: AbortSignal;
  /** Answers a request whose handler threw. @default {a bare 500} */
  onError?: (error: unknown) => Response | Promise<Response>;
}

/**
 * Serves HTTP on `conn` with `handler` until the connection ends; the engine takes `conn` over
 * and closes it.
 *
 * @example One HTTP/1.1 request on an accepted connection
 * ```ts
 * import { serveConnection } from "./engine.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const response = fetch(`http://127.0.0.1:${listener.addr.port}/`, {
 *   headers: { connection: "close" },
 * });
 * const engine = serveConnection(await listener.accept(), () => new Response("hi"));
 * const text = await (await response).text();
 * await engine.finished;
 * listener.close();
 * if (text !== "hi") throw new Error(text);
 * ```
 */
export function serveConnection(
  conn: Deno.Conn,
  handler: EngineHandler,
  options: ServeConnectionOptions = {},
): ConnectionEngine {
  const serve = engineFunction();
  if (serve === undefined) {
    throw new Error(`Deno ${Deno.version.deno} cannot serve HTTP on one connection (needs 2.9)`);
  }
  const onError = options.onError ?? (() => new Response(null, { status: 500 }));
  return serve(conn, options.signal ?? new AbortController().signal, handler, onError, () => {});
}
