/**
 * One client connection of an HTTP server, from accept to close:
 *
 * 1. the TLS handshake, within its deadline;
 * 2. the first bytes — the HTTP/2 preface or an HTTP/1.x request line — read by us, which tell
 *    the version the connection really speaks (lib/http/sniff.ts);
 * 3. a relay from then on: those bytes and everything after go through a loopback pair
 *    (lib/http/pair.ts) to Deno's HTTP engine (lib/http/engine.ts), and its answers come back.
 *    Client-to-engine HTTP/2 bytes pass the frame filter (lib/http/h2_frames.ts).
 *
 * Deadlines: the request headers must be complete within `headerTimeout` of the connection's
 * start (after the handshake), of an HTTP/1.x request's first byte, or of an HTTP/2 header block
 * that continues in CONTINUATION frames — else the connection is closed (slowloris). A connection
 * with no request in flight for `idleTimeout` is shut down gracefully (HTTP/2: GOAWAY). An
 * HTTP/2 client's PINGs and WINDOW_UPDATEs do not keep it open.
 * @module
 */
import { isPeerGone } from "../errors.ts";
import { closeQuietly, writeAll } from "../io.ts";
import { closeConn, handshakeWithDeadline } from "../net/handshake.ts";
import { TurnPacer } from "../turn_pacer.ts";
import { type ConnectionEngine, serveConnection } from "./engine.ts";
import { ClientFrameFilter } from "./h2_frames.ts";
import type { LoopbackPairs } from "./pair.ts";
import { type HttpVersion, MAX_REQUEST_LINE, sniffVersion } from "./sniff.ts";

/** What a handler learns about the connection a request came on. */
export interface HttpConnectionInfo {
  /** The client's address. */
  readonly peer: Deno.Addr;
  /** The address the client connected to. */
  readonly local: Deno.Addr;
  /** The version the connection speaks, from its first bytes. */
  readonly protocol: HttpVersion;
  /** Whether the connection is TLS (the request URL says `http:` either way). */
  readonly secure: boolean;
  /** The protocol ALPN chose, or null (no TLS, or no ALPN). */
  readonly alpn: string | null;
  /** The host the client named (`:authority`, `Host` or an absolute URL); undefined if none. */
  readonly authority: string | undefined;
}

/** Answers one request, as `Deno.serve`'s handler does, with the connection's facts. */
export type HttpHandler = (
  request: Request,
  info: HttpConnectionInfo,
) => Response | Promise<Response>;

/** The deadline a connection missed. */
export type TimeoutPhase = "handshake" | "headers" | "idle";

/** Deadlines of a connection, in milliseconds. */
export interface ConnectionLimits {
  /** For the TLS handshake. */
  handshakeTimeout: number;
  /** For a request's headers (see the module documentation). */
  headerTimeout: number;
  /** For a connection with no request in flight; `Infinity` for none. */
  idleTimeout: number;
}

/** What a connection reports to its server. */
export interface ConnectionHooks {
  /** A deadline passed; the connection is being closed. */
  onTimeout?: (phase: TimeoutPhase, ms: number) => void;
  /** An error that is not a peer going away (those end the connection silently). */
  onError?: (error: unknown) => void;
}

// Relay reads start small (idle connections stay cheap) and grow while they come back full.
const READ_MIN = 4 * 1024;
const READ_MAX = 256 * 1024;

// Every relay loop of the process shares one pacer (lib/turn_pacer.ts): with more than 128 of
// them busy, Deno's op driver would otherwise serve the same ~128 again and again.
const pacer = new TurnPacer();
let pumping = 0;
// After the engine is done, how long the client may take to close before we do.
const LINGER_MS = 2000;
// ENOMEM, ENFILE, EMFILE, ENOBUFS: the process or the system is out of descriptors or memory.
const RESOURCE_SHORTAGE = /\(os error (12|23|24|105)\)/;
const BAD_REQUEST = new TextEncoder().encode(
  "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
);

/** One client connection (see the module documentation). */
export class HttpConnection {
  /** The client's address. */
  readonly peer: Deno.Addr;
  #conn: Deno.Conn;
  #pairs: LoopbackPairs;
  #handler: HttpHandler;
  #limits: ConnectionLimits;
  #hooks: ConnectionHooks;
  #up: Deno.Conn | undefined;
  #engine: ConnectionEngine | undefined;
  #facts: Omit<HttpConnectionInfo, "authority"> | undefined;
  #inFlight = 0;
  #phase: "headers" | "idle" | undefined;
  #deadline = Infinity;
  #engineHost: string;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #stopping = false;
  #aborted = Promise.withResolvers<never>();

  /** Takes over `conn` (accepted); {@linkcode HttpConnection.run} serves it. */
  constructor(
    conn: Deno.Conn,
    pairs: LoopbackPairs,
    handler: HttpHandler,
    limits: ConnectionLimits,
    hooks: ConnectionHooks = {},
  ) {
    this.#conn = conn;
    this.peer = conn.remoteAddr;
    this.#pairs = pairs;
    this.#handler = handler;
    this.#limits = limits;
    this.#hooks = hooks;
    const { hostname, port } = pairs.addr;
    this.#engineHost = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
    this.#aborted.promise.catch(() => {});
  }

  /** Serves the connection until it is closed; never rejects. */
  async run(): Promise<void> {
    try {
      await this.#serve();
    } catch (error) {
      if (!this.#closed && !isPeerGone(error)) this.#hooks.onError?.(error);
    } finally {
      this.close();
      // The engine ends when its requests have: a handler that never answers must not hold a
      // stop for ever.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cap = new Promise<void>((resolve) => timer = setTimeout(resolve, LINGER_MS));
      await Promise.race([this.#engine?.finished.catch(() => {}), cap]);
      clearTimeout(timer);
    }
  }

  /** Stops gracefully: the engine finishes what is in flight (HTTP/2: GOAWAY); a connection
   * that has not yet sent a request is closed. */
  stop(): void {
    if (this.#engine === undefined) return this.close();
    this.#stopping = true;
    this.#disarm();
    // Deno's engine fails an HTTP/1.x request that is still reading its body when it shuts down
    // (the read throws BadResource, the client gets 500; Deno.serve too: denoland/deno#36809):
    // shut down between requests.
    if (this.#facts?.protocol !== "HTTP/2" && this.#inFlight > 0) return;
    this.#engine.shutdown().catch(() => {});
  }

  /** Closes the connection now; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#disarm();
    clearTimeout(this.#lingerTimer);
    this.#aborted.reject(new Deno.errors.Interrupted("connection closed"));
    closeConn(this.#conn);
    if (this.#up !== undefined) closeQuietly(this.#up);
  }

  async #serve(): Promise<void> {
    const conn = this.#conn;
    let alpn: string | null = null;
    if ("handshake" in conn) {
      try {
        await this.#race(handshakeWithDeadline(conn, this.#limits.handshakeTimeout));
      } catch (error) {
        if (error instanceof Deno.errors.TimedOut) {
          this.#hooks.onTimeout?.("handshake", this.#limits.handshakeTimeout);
        }
        throw error;
      }
      alpn = (await (conn as Deno.TlsConn).handshake()).alpnProtocol ?? null;
    }
    this.#arm("headers");
    const first = await this.#sniff();
    if (first === undefined) return;
    if (first.version === "unknown") return await writeAll(conn, BAD_REQUEST);
    const protocol = first.version;
    const secure = "handshake" in conn;
    this.#facts = { peer: this.peer, local: conn.localAddr, protocol, secure, alpn };
    const [up, down] = await this.#pair();
    this.#up = up;
    if (this.#closed) return closeQuietly(down);
    this.#engine = serveConnection(down, (request, info) => this.#onRequest(request, info));
    // HTTP/2 frames tell where a header block starts; HTTP/1.x keeps the header deadline.
    if (protocol === "HTTP/2") this.#arm("idle");
    const toEngine = this.#pump(conn, up, first.bytes, this.#clientFilter(protocol))
      .then(() => up.closeWrite());
    const toClient = this.#pump(up, conn);
    await Promise.all([toClient.then(() => this.#linger(toEngine)), toEngine]);
  }

  /** A pair to the engine; when descriptors run out, tries again (the header deadline runs). */
  async #pair(): Promise<[Deno.Conn, Deno.Conn]> {
    for (let pauseMs = 5;; pauseMs = Math.min(pauseMs * 2, 200)) {
      try {
        return await this.#race(this.#pairs.pair());
      } catch (error) {
        if (this.#closed || !RESOURCE_SHORTAGE.test(String(error))) throw error;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const pause = new Promise((resolve) => timer = setTimeout(resolve, pauseMs));
        await this.#race(pause).finally(() => clearTimeout(timer));
      }
    }
  }

  /** Reads until the first bytes tell the version; undefined when the client leaves first. */
  async #sniff(): Promise<{ version: HttpVersion | "unknown"; bytes: Uint8Array } | undefined> {
    let buffer = new Uint8Array(1024);
    let filled = 0;
    while (true) {
      if (filled === buffer.length) {
        const bigger = new Uint8Array(Math.min(buffer.length * 4, MAX_REQUEST_LINE * 2));
        bigger.set(buffer);
        buffer = bigger;
      }
      const n = await this.#race(this.#conn.read(buffer.subarray(filled)));
      if (n === null) return undefined;
      filled += n;
      const version = sniffVersion(buffer.subarray(0, filled));
      if (version !== "more") return { version, bytes: buffer.subarray(0, filled) };
    }
  }

  #clientFilter(protocol: HttpVersion): (chunk: Uint8Array) => Uint8Array {
    if (protocol !== "HTTP/2") {
      return (chunk) => {
        // The first byte of the next HTTP/1.x request starts its header deadline.
        if (this.#inFlight === 0 && this.#phase !== "headers") this.#arm("headers");
        return chunk;
      };
    }
    const filter = new ClientFrameFilter({
      onHeaderBlock: (open) => {
        if (open) this.#arm("headers");
        else if (this.#inFlight === 0) this.#arm("idle");
      },
    });
    return (chunk) => filter.filter(chunk);
  }

  #onRequest(request: Request, info: { completed: Promise<void> }): Response | Promise<Response> {
    this.#inFlight++;
    this.#disarm();
    const done = () => {
      if (--this.#inFlight > 0 || this.#closed) return;
      if (this.#stopping) this.#engine?.shutdown().catch(() => {});
      else this.#arm("idle");
    };
    info.completed.then(done, done);
    return this.#handler(request, { ...this.#facts!, authority: this.#authority(request) });
  }

  /** The engine gives a request without a host its own (private) address: that is no host. */
  #authority(request: Request): string | undefined {
    // Cut from the URL Deno serialized (`http://HOST/...`): no parse on the hot path.
    const url = request.url;
    const start = url.indexOf("//") + 2;
    const end = url.indexOf("/", start);
    const host = url.slice(start, end === -1 ? undefined : end);
    return host === this.#engineHost ? request.headers.get("host") ?? undefined : host;
  }

  async #pump(
    from: Deno.Conn,
    to: Deno.Conn,
    first?: Uint8Array,
    filter?: (chunk: Uint8Array) => Uint8Array,
  ): Promise<void> {
    if (first !== undefined) await writeAll(to, filter ? filter(first) : first);
    let buffer = new Uint8Array(READ_MIN);
    pumping++;
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) return;
        const chunk = filter ? filter(buffer.subarray(0, n)) : buffer.subarray(0, n);
        if (chunk.length > 0) await writeAll(to, chunk);
        if (n === buffer.length && buffer.length < READ_MAX) buffer = new Uint8Array(n * 4);
        if (pacer.due(pumping)) await pacer.pause();
      }
    } finally {
      pumping--;
    }
  }

  /** The engine has closed its side: end ours, and give the client a moment to close too. */
  async #linger(toEngine: Promise<void>): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch { /* the client has gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, LINGER_MS));
    await Promise.race([toEngine.catch(() => {}), timeout]);
    clearTimeout(timer);
    this.close();
  }

  /**
   * Acts on a deadline that has passed: closes the connection (headers) or shuts it down
   * gracefully (idle). The server calls it for every connection on one timer, so a request
   * costs no timer of its own (measured: 10 µs of CPU a request with a `setTimeout` each).
   */
  checkDeadline(now: number): void {
    const phase = this.#phase;
    if (phase === undefined || now < this.#deadline) return;
    this.#disarm();
    const ms = phase === "headers" ? this.#limits.headerTimeout : this.#limits.idleTimeout;
    this.#hooks.onTimeout?.(phase, ms);
    if (phase === "idle") this.#idleStop();
    else this.close();
  }

  /** Starts the deadline of `phase`, in place of the one running. */
  #arm(phase: "headers" | "idle"): void {
    const ms = phase === "headers" ? this.#limits.headerTimeout : this.#limits.idleTimeout;
    if (!Number.isFinite(ms)) return this.#disarm();
    this.#phase = phase;
    this.#deadline = performance.now() + ms;
  }

  #disarm(): void {
    this.#phase = undefined;
    this.#deadline = Infinity;
  }

  /** A graceful stop that cannot hang on a client that ignores it. */
  #idleStop(): void {
    this.stop();
    this.#lingerTimer = setTimeout(() => this.close(), LINGER_MS);
  }

  #race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.#aborted.promise]);
  }
}
