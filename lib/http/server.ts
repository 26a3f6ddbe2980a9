/**
 * `serveHttp()`: an HTTP/1.x and HTTP/2 server that accepts with the project's one accept loop
 * (lib/net/accept.ts: errors about one connection skip it, running out of descriptors pauses and
 * resumes), limits connections, puts a deadline on every phase of a connection
 * (lib/http/connection.ts), reports the HTTP version each connection really speaks, and stops
 * gracefully within a grace period. Requests are answered by Deno's own HTTP engine
 * (lib/http/engine.ts), through a private loopback listener (lib/http/pair.ts).
 * @module
 */
import { type AcceptErrorReport, acceptLoop } from "../net/accept.ts";
import { closeConn, closeLingering, lingeringTlsConnections } from "../net/handshake.ts";
import { listen, type ListenConfig } from "../net/listen.ts";
import { requireNet } from "../permissions.ts";
import {
  type ConnectionLimits,
  HttpConnection,
  type HttpHandler,
  type TimeoutPhase,
} from "./connection.ts";
import { hasConnectionEngine } from "./engine.ts";
import { LoopbackPairs } from "./pair.ts";

export type { HttpConnectionInfo, HttpHandler, TimeoutPhase } from "./connection.ts";
export type { HttpVersion } from "./sniff.ts";
export type { AcceptErrorKind, AcceptErrorReport } from "../net/accept.ts";
export type { ListenConfig } from "../net/listen.ts";
export type { ProxyProtocolOptions, ProxyRejection } from "../net/proxy_listener.ts";
export type { ServerTlsOptions } from "../tls.ts";

/** Something the server did about a connection, for logging. */
export type HttpServerEvent =
  | { type: "refused"; peer: Deno.Addr }
  | { type: "timeout"; peer: Deno.Addr; phase: TimeoutPhase; ms: number }
  | { type: "error"; peer: Deno.Addr; error: unknown };

/** Options for {@linkcode serveHttp}: where to listen, limits, deadlines and hooks. */
export interface HttpServerOptions extends ListenConfig, Partial<ConnectionLimits> {
  /** Connections served at once (TLS ones parked mid-handshake count too); more are closed at
   * once. @default {10000} */
  maxConnections?: number;
  /** After a stop, how long requests in flight may take before connections are closed.
   * @default {5000} */
  graceTimeout?: number;
  /** Stops the server (gracefully) when aborted. */
  signal?: AbortSignal;
  /** Hears about refused connections, missed deadlines and unexpected errors. */
  onEvent?: (event: HttpServerEvent) => void;
  /** Hears about accept errors, at most once a second per kind. */
  onAcceptError?: (report: AcceptErrorReport) => void;
}

/** Counters of a running server. */
export interface HttpServerStats {
  /** Connections open now. */
  readonly open: number;
  /** Connections accepted and served. */
  total: number;
  /** Requests handed to the handler. */
  requests: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Connections closed for missing a deadline. */
  timedOut: number;
  /** Connections still open when the grace period after a stop ran out, then closed. */
  forced: number;
}

/** A running HTTP server. */
export interface HttpServer {
  /** The address really bound. */
  readonly addr: Deno.Addr;
  /** Live counters. */
  readonly stats: HttpServerStats;
  /** Stops accepting and shuts every connection down gracefully; safe to call twice. */
  close(): void;
  /** Resolves when every connection is closed: at most `graceTimeout` after `close()`. */
  readonly finished: Promise<void>;
}

/** The default deadlines, in milliseconds. */
export const DEFAULT_LIMITS: Readonly<ConnectionLimits> = {
  handshakeTimeout: 10_000,
  headerTimeout: 10_000,
  idleTimeout: 60_000,
};

/**
 * Listens and answers every request with `handler`. Needs `--allow-net=127.0.0.1` besides the
 * address it listens on: the engine runs behind a private loopback port.
 *
 * @example The version a request came over
 * ```ts
 * import { serveHttp } from "./server.ts";
 * const server = await serveHttp((_request, info) => new Response(info.protocol), { port: 0 });
 * const { port } = server.addr as Deno.NetAddr;
 * const response = await fetch(`http://127.0.0.1:${port}/`);
 * const text = await response.text();
 * server.close();
 * await server.finished;
 * if (text !== "HTTP/1.1") throw new Error(text);
 * ```
 */
export async function serveHttp(
  handler: HttpHandler,
  options: HttpServerOptions = {},
): Promise<HttpServer> {
  if (!hasConnectionEngine()) {
    throw new Error(`Deno ${Deno.version.deno} cannot serve HTTP on one connection (needs 2.9)`);
  }
  const limits: ConnectionLimits = {
    handshakeTimeout: positive("handshakeTimeout", options.handshakeTimeout, DEFAULT_LIMITS),
    headerTimeout: positive("headerTimeout", options.headerTimeout, DEFAULT_LIMITS),
    idleTimeout: positive("idleTimeout", options.idleTimeout, DEFAULT_LIMITS),
  };
  const maxConnections = positive("maxConnections", options.maxConnections, {
    maxConnections: 10_000,
  });
  const graceTimeout = options.graceTimeout ?? 5000;
  requireNet("127.0.0.1", 0, "run the HTTP engine on a private loopback port");
  const pairs = await LoopbackPairs.open({ onAcceptError: options.onAcceptError });
  let listener;
  try {
    listener = await listen(options);
  } catch (error) {
    await pairs.close();
    throw error;
  }
  const { onEvent } = options;
  const connections = new Map<HttpConnection, Promise<void>>();
  const stats = {
    get open() {
      return connections.size;
    },
    total: 0,
    requests: 0,
    refused: 0,
    timedOut: 0,
    forced: 0,
  };
  const counted: HttpHandler = (request, info) => {
    stats.requests++;
    return handler(request, info);
  };
  const stopping = new AbortController();
  const close = () => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    listener.close();
    for (const connection of connections.keys()) connection.stop();
  };
  options.signal?.addEventListener("abort", close, { once: true });
  if (options.signal?.aborted) close();

  const full = () => connections.size + lingeringTlsConnections() >= maxConnections;
  const loop = acceptLoop(listener, {
    signal: stopping.signal,
    onError: options.onAcceptError,
    // A TLS connection accepted and closed keeps its socket until the peer acts (Deno 2.9, see
    // lib/net/handshake.ts), so for TLS the limit is kept before the accept: beyond it, clients
    // wait in the kernel's backlog. A TCP or Unix connection over the limit is closed at once.
    hasRoom: listener.tls ? () => !full() : undefined,
    onConnection(conn) {
      if (full()) {
        stats.refused++;
        onEvent?.({ type: "refused", peer: conn.remoteAddr });
        return closeConn(conn);
      }
      stats.total++;
      const connection: HttpConnection = new HttpConnection(conn, pairs, counted, limits, {
        onTimeout(phase, ms) {
          stats.timedOut++;
          onEvent?.({ type: "timeout", peer: connection.peer, phase, ms });
        },
        onError: (error) => onEvent?.({ type: "error", peer: connection.peer, error }),
      });
      connections.set(connection, connection.run().finally(() => connections.delete(connection)));
    },
  });

  // One timer checks every connection's deadline, DEADLINE_TICKS times per shortest deadline: a
  // connection is closed between 1 and 1 + 1/DEADLINE_TICKS times its deadline.
  const shortest = Math.min(limits.headerTimeout, limits.idleTimeout);
  const tick = Math.min(1000, Math.max(10, shortest / DEADLINE_TICKS));
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const connection of connections.keys()) connection.checkDeadline(now);
  }, tick);

  const finished = (async () => {
    await loop;
    close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceEnds = new Promise<void>((resolve) => timer = setTimeout(resolve, graceTimeout));
    await Promise.race([Promise.all(connections.values()), graceEnds]);
    clearTimeout(timer);
    stats.forced = connections.size;
    for (const connection of connections.keys()) connection.close();
    await Promise.all(connections.values());
    clearInterval(sweep);
    closeLingering();
    await pairs.close();
    options.signal?.removeEventListener("abort", close);
  })();
  return { addr: listener.addr, stats, close, finished };
}

const DEADLINE_TICKS = 8;

function positive<K extends string>(
  name: K,
  value: number | undefined,
  defaults: Readonly<Record<K, number>>,
): number {
  const chosen = value ?? defaults[name];
  if (!(chosen > 0)) throw new RangeError(`Cannot use ${name} ${chosen}: must be positive`);
  return chosen;
}
