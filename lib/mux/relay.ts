/**
 * socat's `TCP-LISTEN,fork TCP:host:port` as a decision of the multiplexer, and `serveRelay()`,
 * the server built with it: each accepted connection gets its own upstream connection, and both
 * live in the one readiness map. Bytes flow both ways with back-pressure both ways (a side is
 * not read while the queue its bytes go to is over the high-water mark), a half-close passes to
 * the other side (`shutdown`), and a side that fails or times out ends the other, after what was
 * queued for it has gone out.
 *
 * While the upstream connect is pending the client is not read. With TLS on the listening side
 * the client's handshake finishes first, so the upstream can be offered the ALPN protocol the
 * client negotiated. A connect still pending when the client leaves or the relay stops is
 * abandoned at once (`connect({ signal })`), so neither waits for an upstream that does not
 * answer. With `sendProxy`, the upstream first gets a PROXY protocol header naming the client
 * (as the relay saw it, or as the client's own PROXY header said), before any relayed byte.
 * @module
 */
import { lingeringTlsConnections } from "../net/handshake.ts";
import { connect, type DialConfig } from "../net/connect.ts";
import { encodeProxyHeader } from "../net/proxy_protocol.ts";
import { closeQuietly } from "../io.ts";
import type { CloseReason, Decision, MultiplexerOptions, MuxControl } from "./types.ts";
import { type MuxServer, serveMux } from "./serve.ts";
import type { ListenConfig } from "../net/listen.ts";
import type { ConnView } from "./state.ts";

/** What happens to relayed connections, for logging. */
export type RelayEvent =
  /** The upstream connection for `client` is up; `alpn` is what was offered upstream from the
   * client's handshake, if anything. */
  | { type: "open"; client: Deno.Addr; upstream: Deno.Addr; alpn?: string }
  /** `client` came while `maxConnections` were relayed, and was closed at once. */
  | { type: "refused"; client: Deno.Addr }
  /** No upstream for `client`: the client's TLS `handshake` failed, or the upstream `connect`
   * failed or timed out. The client is closed; this is the last event about it. */
  | { type: "failed"; client: Deno.Addr; during: "handshake" | "connect"; error: unknown }
  /** Both sides are closed: `reason` (and `error`) of the side that ended first, and the bytes
   * written each way. `upstream` is missing when the client left before it was connected. */
  | {
    type: "close";
    client: Deno.Addr;
    upstream?: Deno.Addr;
    reason: CloseReason;
    error?: unknown;
    toUpstream: number;
    toClient: number;
  };

/** Bytes on their way through a relay, for a hex dump. `bytes` is valid only during the call;
 * `from.bytesIn - bytes.length` is their offset in `from`'s stream. */
export interface RelayData {
  /** The client side of the relay. */
  client: ConnView;
  /** The upstream side of the relay. */
  upstream: ConnView;
  /** The side the bytes came from (the other one is where they go). */
  from: ConnView;
  /** The bytes, as read. */
  bytes: Uint8Array;
}

/** Counters of a relay, beside the multiplexer's (which counts both sides of each). */
export interface RelayStats {
  /** Client connections relayed (or connecting) now. */
  open: number;
  /** Client connections taken since the start. */
  total: number;
  /** Client connections closed at once because `maxConnections` were relayed. */
  refused: number;
  /** Client connections that got no upstream. */
  failed: number;
}

/** Options for {@linkcode Relay}. */
export interface RelayOptions {
  /** Where each connection goes, and how (TCP, Unix, TLS; `timeout` for the connect and the TLS
   * handshake). With TLS, the ALPN protocol a TLS client negotiated is offered instead of
   * `tls.alpnProtocols`. */
  upstream: DialConfig;
  /** Client connections relayed at once (TLS connections parked mid-handshake count too).
   * @default {10000} */
  maxConnections?: number;
  /** Hears every {@linkcode RelayEvent}. */
  onRelayEvent?: (event: RelayEvent) => void;
  /** Hears every chunk relayed, either way (nothing is built for it when unset). */
  onRelayData?: (data: RelayData) => void;
  /** Send the upstream a PROXY protocol header of this version (1 text, 2 binary) before any
   * relayed byte: the client's address as its source, the address it connected to as its
   * destination. Not with a TLS upstream: the header would have to precede the handshake,
   * which `connect()` does itself. */
  sendProxy?: 1 | 2;
  /** Aborted when the multiplexer stops: upstream connects still pending are abandoned (not
   * reported as failures) and no more are started. Same as calling {@linkcode Relay.stop}. */
  signal?: AbortSignal;
}

/** The two sides of one relayed connection. */
interface Pair {
  client: ConnView;
  upstream: ConnView | null;
  /** Resolves when the client closes, so a pending handshake or connect is not waited for. */
  gone: PromiseWithResolvers<void>;
  first?: { reason: CloseReason; error?: unknown };
  /** No upstream: the `failed` event was the last one. */
  failed?: boolean;
  /** The length of the PROXY header sent upstream (not counted as relayed bytes). */
  headerBytes: number;
}

/**
 * The relay decision. Use one instance per multiplexer, and await {@linkcode Relay.settled}
 * after the multiplexer has finished: an upstream connect may still be pending then.
 *
 * @example A relay in front of an echo server
 * ```ts
 * import { Relay } from "./relay.ts";
 * import { Multiplexer } from "./multiplexer.ts";
 * import { serveEcho } from "./echo.ts";
 * const echo = await serveEcho({ port: 0 });
 * const relay = new Relay({ upstream: { port: (echo.addr as Deno.NetAddr).port } });
 * const mux = new Multiplexer(relay);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const finished = mux.run(listener);
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await conn.write(new TextEncoder().encode("through the relay"));
 * await conn.closeWrite();
 * const text = await new Response(conn.readable).text();
 * mux.stop();
 * await finished;
 * await relay.settled();
 * echo.close();
 * await echo.finished;
 * if (text !== "through the relay") throw new Error(text);
 * ```
 */
export class Relay implements Decision {
  /** Live counters. */
  readonly stats: RelayStats = { open: 0, total: 0, refused: 0, failed: 0 };
  readonly #upstream: DialConfig;
  readonly #maxConnections: number;
  readonly #onRelayEvent: RelayOptions["onRelayEvent"];
  readonly #onRelayData: RelayOptions["onRelayData"];
  readonly #sendProxy: 1 | 2 | undefined;
  readonly #pairs = new WeakMap<ConnView, Pair>();
  readonly #dials = new Set<Promise<void>>();
  /** One per pending upstream connect: aborted when its client leaves or the relay stops. */
  readonly #aborts = new Set<AbortController>();
  #stopped = false;
  /** The pair whose upstream `mux.add()` is adding: its `onOpen` is not a new client. */
  #adding: Pair | null = null;

  /** Checks `maxConnections` (a `RangeError` below 1) and refuses `sendProxy` with a TLS
   * upstream (a `TypeError`). */
  constructor(options: RelayOptions) {
    this.#upstream = options.upstream;
    this.#maxConnections = options.maxConnections ?? 10_000;
    if (!(this.#maxConnections >= 1)) {
      throw new RangeError(
        `Cannot use maxConnections "${this.#maxConnections}": must be at least 1`,
      );
    }
    if (options.sendProxy !== undefined && options.upstream.tls) {
      throw new TypeError(
        "Cannot send a PROXY header to a TLS upstream: it must precede the TLS handshake, which connect() does itself",
      );
    }
    this.#sendProxy = options.sendProxy;
    this.#onRelayEvent = options.onRelayEvent;
    this.#onRelayData = options.onRelayData;
    const { signal } = options;
    if (signal?.aborted) this.stop();
    else signal?.addEventListener("abort", () => this.stop(), { once: true });
  }

  /** Resolves once no upstream connect is pending. */
  async settled(): Promise<void> {
    while (this.#dials.size > 0) await Promise.allSettled([...this.#dials]);
  }

  /** Abandons the upstream connects still pending (their clients are left to the
   * multiplexer's stop, which drains and closes them) and starts no more. Call it when the
   * multiplexer stops; {@linkcode serveRelay} does. Safe to call twice. */
  stop(): void {
    this.#stopped = true;
    for (const abort of this.#aborts) abort.abort();
  }

  hasRoom(): boolean {
    return this.stats.open + lingeringTlsConnections() < this.#maxConnections;
  }

  onOpen(mux: MuxControl, conn: ConnView): void {
    if (this.#adding !== null) {
      this.#pairs.set(conn, this.#adding);
      return;
    }
    if (!this.hasRoom()) {
      this.stats.refused++;
      this.#onRelayEvent?.({ type: "refused", client: conn.peer });
      return mux.close(conn);
    }
    const pair: Pair = {
      client: conn,
      upstream: null,
      gone: Promise.withResolvers(),
      headerBytes: 0,
    };
    this.#pairs.set(conn, pair);
    this.stats.open++;
    this.stats.total++;
    // Nothing is read from the client until its bytes have somewhere to go.
    mux.pause(conn);
    const dial = this.#dial(mux, pair).finally(() => this.#dials.delete(dial));
    this.#dials.add(dial);
  }

  onData(mux: MuxControl, conn: ConnView, bytes: Uint8Array): void {
    const pair = this.#pairs.get(conn);
    if (pair?.upstream == null) return;
    const other = conn === pair.client ? pair.upstream : pair.client;
    this.#onRelayData?.({ client: pair.client, upstream: pair.upstream, from: conn, bytes });
    // A view of conn's read buffer: written as it is when nothing waits, and conn is not read
    // again until it is.
    mux.send(other, bytes);
  }

  onEnd(mux: MuxControl, conn: ConnView): void {
    const other = this.#other(conn);
    // The half-close goes on: the other side gets a FIN once what is queued for it is out.
    if (other) mux.shutdown(other);
    else mux.end(conn);
  }

  onClose(mux: MuxControl, conn: ConnView, reason: CloseReason, error?: unknown): void {
    const pair = this.#pairs.get(conn);
    if (pair === undefined) return; // refused
    pair.first ??= { reason, error };
    if (conn === pair.client) pair.gone.resolve();
    const other = this.#other(conn);
    if (other && !other.closed) {
      // After a clean end or an error, what was queued for the other side still goes out;
      // after an idle timeout or a decision to close, nothing does. A stop ends both anyway.
      if (reason === "eof" || reason === "error") mux.end(other);
      else if (reason === "idle" || reason === "closed") mux.close(other);
      return;
    }
    this.#finish(pair, reason);
  }

  async #dial(mux: MuxControl, pair: Pair): Promise<void> {
    const { client } = pair;
    const gone = pair.gone.promise.then(() => null);
    const abort = new AbortController();
    this.#aborts.add(abort);
    // A client that leaves takes its pending connect with it.
    gone.then(() => abort.abort());
    let during: "handshake" | "connect" = "handshake";
    let upstream: Deno.Conn;
    let alpn: string | undefined;
    let header: Uint8Array | undefined;
    try {
      const handshake = client.handshake();
      handshake.catch(() => {}); // raced below: it may settle after the client is gone
      const info = await Promise.race([handshake, gone]);
      // Gone, or the relay stopped during the handshake: the stop drains this client.
      if (info === null || this.#stopped || mux.stopping) return;
      const config = this.#upstream;
      // ALPN goes through only to a TLS upstream, and only what the client negotiated.
      alpn = (config.tls && info?.alpnProtocol) || undefined;
      const tls = alpn ? { ...config.tls, alpnProtocols: [alpn] } : config.tls;
      during = "connect";
      // The client as the relay sees it: a ProxiedConn's addresses are its own header's.
      if (this.#sendProxy !== undefined) {
        header = encodeProxyHeader(this.#sendProxy, {
          source: client.peer,
          destination: client.local,
        });
      }
      upstream = await connect({ ...config, tls, signal: abort.signal });
    } catch (error) {
      // Abandoned: the client left, or the stop (which drains the client) aborted the connect.
      if (client.closed || abort.signal.aborted) return;
      this.stats.failed++;
      pair.failed = true;
      this.#onRelayEvent?.({ type: "failed", client: client.peer, during, error });
      return mux.close(client);
    } finally {
      this.#aborts.delete(abort);
    }
    if (client.closed || mux.stopping) {
      // Too late: the client left, or the stop drains it (it has nothing to deliver).
      closeQuietly(upstream);
      return;
    }
    this.#adding = pair;
    try {
      pair.upstream = mux.add(upstream);
    } finally {
      this.#adding = null;
    }
    mux.pipe(client, pair.upstream);
    mux.pipe(pair.upstream, client);
    if (header !== undefined) {
      // Queued first, before the client is read: no relayed byte can overtake it.
      pair.headerBytes = header.length;
      mux.send(pair.upstream, header);
    }
    this.#onRelayEvent?.({
      type: "open",
      client: client.peer,
      upstream: pair.upstream.peer,
      ...(alpn && { alpn }),
    });
    mux.resume(client);
  }

  #other(conn: ConnView): ConnView | null {
    const pair = this.#pairs.get(conn);
    if (pair === undefined) return null;
    return conn === pair.client ? pair.upstream : pair.client;
  }

  #finish(pair: Pair, reason: CloseReason): void {
    this.stats.open--;
    if (pair.failed) return;
    const { client, upstream } = pair;
    const first = pair.first ?? { reason };
    this.#onRelayEvent?.({
      type: "close",
      client: client.peer,
      ...(upstream && { upstream: upstream.peer }),
      reason: first.reason,
      ...(first.error !== undefined && { error: first.error }),
      toUpstream: Math.max(0, (upstream?.bytesOut ?? 0) - pair.headerBytes),
      toClient: client.bytesOut,
    });
  }
}

/** Options for {@linkcode serveRelay}: where to listen, where to relay, the limits. */
export interface ServeRelayOptions extends ListenConfig, MultiplexerOptions, RelayOptions {}

/** A running relay: the multiplexer's counters (both sides) and the relay's own. */
export interface RelayServer extends MuxServer {
  /** Relayed connections: open, total, refused, failed. */
  readonly relays: Readonly<RelayStats>;
}

/**
 * Listens and relays every connection to `upstream`. `maxConnections` counts client
 * connections (each holds two sockets); `finished` also waits for pending upstream connects.
 *
 * @example A relay to a Unix socket echo server
 * ```ts
 * import { serveRelay } from "./relay.ts";
 * import { serveEcho } from "./echo.ts";
 * const dir = await Deno.makeTempDir();
 * const echo = await serveEcho({ path: `${dir}/echo.sock` });
 * const relay = await serveRelay({ port: 0, upstream: { port: 0, path: `${dir}/echo.sock` } });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: (relay.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("to unix"));
 * await conn.closeWrite();
 * const text = await new Response(conn.readable).text();
 * relay.close();
 * await relay.finished;
 * echo.close();
 * await echo.finished;
 * await Deno.remove(dir, { recursive: true });
 * if (text !== "to unix" || relay.relays.total !== 1) throw new Error(text);
 * ```
 */
export async function serveRelay(options: ServeRelayOptions): Promise<RelayServer> {
  // `options.signal` stops both the multiplexer and the relay's pending connects.
  const relay = new Relay(options);
  // The relay enforces the limit on clients; the multiplexer's own would count both sides.
  const server = await serveMux(relay, { ...options, maxConnections: Number.MAX_SAFE_INTEGER });
  return {
    addr: server.addr,
    stats: server.stats,
    relays: relay.stats,
    close: () => {
      relay.stop();
      server.close();
    },
    finished: server.finished.then(() => relay.settled()),
    get pauses() {
      return server.pauses;
    },
  };
}
