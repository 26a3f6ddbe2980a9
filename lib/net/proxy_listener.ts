/**
 * Reading the PROXY protocol header before anything else. {@linkcode acceptProxyProtocol}
 * wraps a listener: its `accept()` hands out only connections whose header has been read and
 * checked, as {@linkcode ProxiedConn}s — `Deno.Conn`s whose `remoteAddr` and `localAddr` are
 * the client's and whose first reads return the bytes that followed the header — so the
 * multiplexer, the greeting server and every log line see the real client without knowing
 * about the protocol. A connection with no valid header (garbage, too long, cut short, or not
 * complete within the deadline) is closed and reported once; it never reaches the application.
 *
 * Headers are read concurrently, off the accept loop: a slow client holds up only itself, for
 * at most the deadline, and at most `maxPending` are read at once (then accepting waits, and the
 * kernel's backlog queues the rest).
 *
 * TLS is not supported behind a PROXY header: the header comes before the TLS handshake, and
 * `Deno.listenTls` starts the handshake on the socket itself, before JavaScript could read a
 * byte (Deno 2.9 has no server-side `startTls`). Terminate TLS at the balancer instead.
 * @module
 */
import { closeQuietly } from "../io.ts";
import { describeError, UsageError } from "../errors.ts";
import { parseDuration } from "../flags.ts";
import { formatAddr } from "../address.ts";
import { decodeProxyHeader, type ProxyHeader } from "./proxy_protocol.ts";

/** How a listener reads PROXY headers. */
export interface ProxyProtocolOptions {
  /** Close a connection whose header is not complete this many milliseconds after it was
   * accepted (the specification asks for at least 3 s, to cover a TCP retransmit).
   * @default {5000} */
  timeout?: number;
  /** Headers read at once; while this many are pending, accepting waits. @default {1024} */
  maxPending?: number;
  /** The longest header accepted (a version 2 header with its TLVs). @default {4096} */
  maxHeaderLength?: number;
  /** Hears about every connection closed for its header, once per connection. */
  onRejected?: (rejection: ProxyRejection) => void;
}

/** A connection closed because it did not start with a valid PROXY header. */
export interface ProxyRejection {
  /** The socket's peer: the balancer (or whoever connected), since no header said otherwise. */
  peer: Deno.Addr;
  /** The socket's local address. */
  local: Deno.Addr;
  /** What was wrong: a `ProxyHeaderError`, `Deno.errors.TimedOut`, `Deno.errors.UnexpectedEof`
   * (closed mid-header), or the read error. */
  error: unknown;
}

/** What {@linkcode acceptProxyProtocol} wraps and returns: the shape of lib/net's listener. */
export interface ProxyAcceptor extends Disposable {
  /** The address bound. */
  readonly addr: Deno.Addr;
  /** Whether connections speak TLS (never, behind a PROXY header). */
  readonly tls: boolean;
  /** The next connection whose header has been read. */
  accept(): Promise<Deno.Conn>;
  /** Stops listening and closes the connections whose header is still being read. */
  close(): void;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_PENDING = 1024;
// The specification fits every header it defines in 536 bytes; a longer v2 header (TLVs)
// grows the buffer to exactly its length.
const FIRST_READ_BYTES = 536;

/**
 * A `Deno.Conn` behind a PROXY header: addresses from the header (or the socket's own for a
 * `LOCAL` health check or an `UNKNOWN` family), and the bytes that came after the header
 * delivered by the first reads. Everything else goes straight to the socket.
 */
export class ProxiedConn implements Deno.Conn {
  /** The client's address as the header gives it. */
  readonly remoteAddr: Deno.Addr;
  /** The address the client connected to, as the header gives it. */
  readonly localAddr: Deno.Addr;
  /** The header read from the connection. */
  readonly header: ProxyHeader;
  /** The accepted socket (its peer is the balancer). */
  readonly socket: Deno.Conn;
  #rest: Uint8Array | null;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;

  /** Wraps `socket`, whose `header` has been read; `rest` is what followed the header. */
  constructor(socket: Deno.Conn, header: ProxyHeader, rest: Uint8Array) {
    this.socket = socket;
    this.header = header;
    this.remoteAddr = header.source ?? socket.remoteAddr;
    this.localAddr = header.destination ?? socket.localAddr;
    this.#rest = rest.length > 0 ? rest : null;
  }

  /** Reads what followed the header first, then the socket. */
  read(p: Uint8Array): Promise<number | null> {
    const rest = this.#rest;
    if (rest === null) return this.socket.read(p);
    const n = Math.min(p.length, rest.length);
    p.set(rest.subarray(0, n));
    this.#rest = n === rest.length ? null : rest.subarray(n);
    return Promise.resolve(n);
  }

  /** Writes to the socket. */
  write(p: Uint8Array): Promise<number> {
    return this.socket.write(p);
  }

  /** Shuts down the socket's sending side. */
  closeWrite(): Promise<void> {
    return this.socket.closeWrite();
  }

  /** Closes the socket. */
  close(): void {
    this.#rest = null;
    this.socket.close();
  }

  /** See `Deno.Conn.ref`. */
  ref(): void {
    this.socket.ref();
  }

  /** See `Deno.Conn.unref`. */
  unref(): void {
    this.socket.unref();
  }

  /** The bytes after the header, then the socket's. */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    if (this.#readable !== undefined) return this.#readable;
    const rest = this.#rest;
    this.#rest = null;
    if (rest === null) return this.#readable = this.socket.readable;
    const socket = this.socket.readable;
    let first: Uint8Array<ArrayBuffer> | null = rest.slice();
    const reader = socket.getReader();
    return this.#readable = new ReadableStream<Uint8Array<ArrayBuffer>>({
      async pull(controller) {
        if (first !== null) {
          controller.enqueue(first);
          first = null;
          return;
        }
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }

  /** The socket's writable side. */
  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return this.socket.writable;
  }

  /** Closes the socket. */
  [Symbol.dispose](): void {
    closeQuietly(this);
  }
}

/**
 * Reads and checks the PROXY header at the start of `conn` (v1 or v2, detected) and returns the
 * connection behind it. Rejects with a `ProxyHeaderError`, `Deno.errors.TimedOut` after
 * `timeout` ms, or `Deno.errors.UnexpectedEof` when the peer closes mid-header; `conn` is then
 * closed.
 *
 * @example A client that sends a version 1 header, then data
 * ```ts
 * import { readProxyHeader } from "./proxy_listener.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await client.write(new TextEncoder().encode("PROXY TCP6 2001:db8::1 ::1 4242 80\r\nhi"));
 * using conn = await readProxyHeader(await listener.accept());
 * const bytes = new Uint8Array(2);
 * await conn.read(bytes);
 * client.close();
 * if (conn.remoteAddr.transport !== "tcp" || conn.remoteAddr.hostname !== "2001:db8::1") {
 *   throw new Error("not the client's address");
 * }
 * if (new TextDecoder().decode(bytes) !== "hi") throw new Error("lost the data");
 * ```
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  options: Pick<ProxyProtocolOptions, "timeout" | "maxHeaderLength"> = {},
): Promise<ProxiedConn> {
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  let buffer = new Uint8Array(FIRST_READ_BYTES);
  let filled = 0;
  let expired = false;
  // One deadline for the whole header: a client sending a byte a second never finishes.
  const timer = setTimeout(() => {
    expired = true;
    closeQuietly(conn);
  }, timeout);
  try {
    while (true) {
      const result = decodeProxyHeader(buffer.subarray(0, filled), {
        maxLength: options.maxHeaderLength,
      });
      if (result.header !== undefined) {
        return new ProxiedConn(conn, result.header, buffer.slice(result.length, filled));
      }
      if (result.needed > buffer.length) {
        const grown = new Uint8Array(result.needed);
        grown.set(buffer.subarray(0, filled));
        buffer = grown;
      }
      let n: number | null;
      try {
        n = await conn.read(buffer.subarray(filled));
      } catch (error) {
        if (expired) throw timedOut(timeout, filled);
        throw error;
      }
      if (expired) throw timedOut(timeout, filled);
      if (n === null) {
        throw new Deno.errors.UnexpectedEof(
          filled === 0
            ? "Closed before sending a PROXY header"
            : `Closed after ${filled} bytes of a PROXY header`,
        );
      }
      filled += n;
    }
  } catch (error) {
    closeQuietly(conn);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function timedOut(timeout: number, filled: number): Deno.errors.TimedOut {
  const got = filled === 1 ? "1 byte" : `${filled} bytes`;
  return new Deno.errors.TimedOut(`No complete PROXY header within ${timeout} ms (got ${got})`);
}

/**
 * Wraps `listener` so that `accept()` resolves only with connections whose PROXY header has
 * been read ({@linkcode ProxiedConn}s); the rest are closed and reported to `onRejected`. Errors
 * of the listener's own `accept()` reach the caller's `accept()` unchanged, so lib/net's accept
 * loop sorts them as before. `close()` also closes the connections still being read.
 *
 * @example
 * ```ts
 * import { acceptProxyProtocol } from "./proxy_listener.ts";
 * import { listen } from "./listen.ts";
 * using listener = acceptProxyProtocol(await listen({ port: 0 }), { timeout: 3000 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });
 * await client.write(new TextEncoder().encode("PROXY TCP4 203.0.113.7 192.0.2.1 50000 443\r\n"));
 * using conn = await listener.accept();
 * client.close();
 * if ((conn.remoteAddr as Deno.NetAddr).hostname !== "203.0.113.7") throw new Error();
 * ```
 */
export function acceptProxyProtocol(
  listener: ProxyAcceptor,
  options: ProxyProtocolOptions = {},
): ProxyAcceptor {
  return new ProxyProtocolListener(listener, options);
}

interface Waiter {
  resolve(conn: Deno.Conn): void;
  reject(error: unknown): void;
}

class ProxyProtocolListener implements ProxyAcceptor {
  readonly addr: Deno.Addr;
  readonly tls = false;
  #inner: ProxyAcceptor;
  #options: ProxyProtocolOptions;
  #maxPending: number;
  #ready: ProxiedConn[] = [];
  #waiters: Waiter[] = [];
  #pending = new Set<Deno.Conn>();
  #pumping = false;
  #closed = false;

  constructor(inner: ProxyAcceptor, options: ProxyProtocolOptions) {
    if (inner.tls) {
      throw new TypeError(
        "Cannot read a PROXY header before TLS: Deno's TLS listener starts the handshake itself",
      );
    }
    this.addr = inner.addr;
    this.#inner = inner;
    this.#options = options;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  accept(): Promise<Deno.Conn> {
    const ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("Listener has been closed"));
    }
    const { promise, resolve, reject } = Promise.withResolvers<Deno.Conn>();
    this.#waiters.push({ resolve, reject });
    this.#pump();
    return promise;
  }

  /** Accepts while someone waits and fewer than maxPending headers are being read. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed && this.#waiters.length > 0 && this.#pending.size < this.#maxPending) {
        let conn: Deno.Conn;
        try {
          conn = await this.#inner.accept();
        } catch (error) {
          // The caller's accept loop sorts it (skip, back off, or end) and calls again.
          this.#waiters.shift()?.reject(error);
          return;
        }
        if (this.#closed) closeQuietly(conn);
        else this.#read(conn);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #read(conn: Deno.Conn): void {
    this.#pending.add(conn);
    readProxyHeader(conn, this.#options).then((proxied) => {
      if (this.#closed) return closeQuietly(proxied);
      const waiter = this.#waiters.shift();
      if (waiter !== undefined) waiter.resolve(proxied);
      else this.#ready.push(proxied);
    }, (error) => {
      if (this.#closed) return;
      this.#options.onRejected?.({ peer: conn.remoteAddr, local: conn.localAddr, error });
    }).finally(() => {
      this.#pending.delete(conn);
      this.#pump();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inner.close();
    for (const conn of this.#pending) closeQuietly(conn);
    for (const conn of this.#ready.splice(0)) closeQuietly(conn);
    const closed = new Deno.errors.BadResource("Listener has been closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The line a server prints for a {@linkcode ProxyRejection}, e.g.
 * `closed 127.0.0.1:40112 without a valid PROXY header: No complete PROXY header within 5000 ms (got 3 bytes)`.
 *
 * @example
 * ```ts
 * import { describeProxyRejection } from "./proxy_listener.ts";
 * const line = describeProxyRejection({
 *   peer: { transport: "tcp", hostname: "127.0.0.1", port: 40112 },
 *   local: { transport: "tcp", hostname: "127.0.0.1", port: 10000 },
 *   error: new Deno.errors.UnexpectedEof("Closed before sending a PROXY header"),
 * });
 * if (!line.endsWith(": Closed before sending a PROXY header")) throw new Error(line);
 * ```
 */
export function describeProxyRejection(rejection: ProxyRejection): string {
  return `closed ${formatAddr(rejection.peer)} without a valid PROXY header: ${
    describeError(rejection.error)
  }`;
}

/** The flags of a server that reads PROXY headers. */
export interface ProxyFlags {
  /** `--proxy-protocol`: read a header first on every connection. */
  "proxy-protocol"?: boolean;
  /** `--proxy-timeout DURATION` (default 5s). */
  "proxy-timeout"?: string;
  /** `--tls`, which cannot go with it. */
  tls?: boolean;
}

/**
 * Reads `--proxy-protocol` and `--proxy-timeout` into the header deadline in milliseconds, or
 * `undefined` without `--proxy-protocol`; refuses `--tls` with it (a UsageError saying why).
 *
 * @example
 * ```ts
 * import { proxyTimeoutFromFlags } from "./proxy_listener.ts";
 * if (proxyTimeoutFromFlags({ "proxy-protocol": true }) !== 5000) throw new Error();
 * if (proxyTimeoutFromFlags({}) !== undefined) throw new Error();
 * ```
 */
export function proxyTimeoutFromFlags(flags: ProxyFlags): number | undefined {
  if (!flags["proxy-protocol"]) {
    if (flags["proxy-timeout"] !== undefined) {
      throw new UsageError("Flag --proxy-timeout needs --proxy-protocol");
    }
    return undefined;
  }
  if (flags.tls) {
    throw new UsageError(
      "Cannot use --proxy-protocol with --tls: the header comes before the TLS handshake, which Deno's TLS listener starts itself (terminate TLS at the balancer)",
    );
  }
  return parseDuration(flags["proxy-timeout"] ?? "5s", "--proxy-timeout");
}
