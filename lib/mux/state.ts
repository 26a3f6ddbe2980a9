/**
 * What the multiplexer remembers about one connection — the entry of its readiness map: the
 * read buffer, the outgoing queue and its byte count, whether a read or a write is in flight,
 * whether the peer ended its side, and how long it has been idle. The loop owns every field;
 * decisions see a connection through the read-only {@linkcode ConnView}.
 * @module
 */

/** The first read buffer of a connection: small, because idle connections are the many. */
export const MIN_READ_SIZE = 1024;
/** The largest read buffer. Only a connection whose reads keep coming back full grows to it;
 * bulk transfers then cross the runtime in 256 KiB pieces instead of 64 KiB ones, which took
 * bulk echo from about 0.9× to about 1.4× a plain 64 KiB read/write loop (`deno task bench`). */
export const MAX_READ_SIZE = 256 * 1024;

/** A connection as a {@linkcode Decision} sees it: what it can read, never what it can change. */
export interface ConnView {
  /** A number that names this connection for the life of the server (1, 2, …). */
  readonly id: number;
  /** The remote address. */
  readonly peer: Deno.Addr;
  /** The local address. */
  readonly local: Deno.Addr;
  /** Bytes waiting to be written to this connection (in flight and queued). */
  readonly queued: number;
  /** The part of `queued` behind the write in flight: bytes the socket has not been offered
   * yet. A reader that keeps up has none, whatever the size of the write in flight. */
  readonly waiting: number;
  /** Bytes received from this connection. */
  readonly bytesIn: number;
  /** Bytes written to this connection. */
  readonly bytesOut: number;
  /** Whether the peer has ended its sending side. */
  readonly ended: boolean;
  /** Whether the connection was closed and left the map. */
  readonly closed: boolean;
  /** The outcome of the TLS handshake (its ALPN protocol), `undefined` at once for TCP and Unix
   * connections; rejects when the handshake fails. A relay offers its upstream what a client
   * negotiated. */
  handshake(): Promise<Deno.TlsHandshakeInfo | undefined>;
}

/** One connection's entry in the readiness map; fields are the loop's alone. */
export class ConnState implements ConnView {
  /** See {@linkcode ConnView}. */
  readonly id: number;
  /** The connection this entry is about. */
  readonly conn: Deno.Conn;
  /** See {@linkcode ConnView}. */
  readonly peer: Deno.Addr;
  /** See {@linkcode ConnView}. */
  readonly local: Deno.Addr;
  /** See {@linkcode ConnView}. */
  queued = 0;
  /** See {@linkcode ConnView}. */
  bytesIn = 0;
  /** See {@linkcode ConnView}. */
  bytesOut = 0;
  /** See {@linkcode ConnView}. */
  ended = false;
  /** See {@linkcode ConnView}. */
  closed = false;
  /** Chunks waiting behind the write in flight; each is a copy the queue owns. */
  readonly queue: Uint8Array[] = [];
  /** The chunk being written, or `null`. */
  writing: Uint8Array | null = null;
  /** The connection whose read buffer `writing` is a view of (no copy was made), or `null`. */
  borrowedFrom: ConnState | null = null;
  /** Writes in flight that are views of this connection's read buffer: no read until they end. */
  lent = 0;
  /** Whether a read is in flight. */
  reading = false;
  /** Whether a decision paused reading. */
  paused = false;
  /** Whose queue decides when to stop reading this connection: its own (echo), or the one its
   * bytes go to (a relay). */
  sink: ConnState = this;
  /** The connections whose sink this is (other than itself): read again when this drains. */
  readonly feeds: ConnState[] = [];
  /** What happens once the queue is empty: nothing, close, or shut down the write side. */
  afterDrain: "none" | "close" | "shutdown" = "none";
  /** Whether `closeWrite()` is in flight. */
  shuttingDown = false;
  /** Whether `closeWrite()` completed: the peer has been sent a FIN. */
  writeShut = false;
  /** A stop is draining this connection: input is read and discarded. */
  discarding = false;
  /** Idle-sweep ticks since the last byte moved in either direction. */
  idleTicks = 0;
  #buffer: Uint8Array;
  #size = MIN_READ_SIZE;

  /** A new entry for connection number `id`, with the smallest read buffer. */
  constructor(id: number, conn: Deno.Conn) {
    this.id = id;
    this.conn = conn;
    this.peer = conn.remoteAddr;
    this.local = conn.localAddr;
    this.#buffer = new Uint8Array(MIN_READ_SIZE);
  }

  get waiting(): number {
    return this.queued - (this.writing?.length ?? 0);
  }

  handshake(): Promise<Deno.TlsHandshakeInfo | undefined> {
    // Deno answers every call with the same outcome, whoever started the handshake.
    if (!("handshake" in this.conn)) return Promise.resolve(undefined);
    return (this.conn as Deno.TlsConn).handshake();
  }

  /** The read buffer: after a read of `n` bytes, they are at its start. */
  get buffer(): Uint8Array {
    return this.#buffer;
  }

  /** Whether nothing is queued or in flight. */
  get idleWriter(): boolean {
    return this.writing === null && !this.shuttingDown;
  }

  /** The buffer for the next read, resized when `fit()` asked for another size. */
  readBuffer(): Uint8Array {
    // The only allocation (and zero-filling) on the read path, and only when the size changes.
    if (this.#buffer.length !== this.#size) this.#buffer = new Uint8Array(this.#size);
    return this.#buffer;
  }

  /** Whether `chunk` is a view of the read buffer, which must not be read into while it is sent. */
  isReadBuffer(chunk: Uint8Array): boolean {
    return chunk.buffer === this.#buffer.buffer;
  }

  /**
   * Sizes the next read after one that returned `n` bytes: double after a full read (more is
   * waiting), shrink to fit after a small one (the peer went quiet or talks in small messages).
   *
   * @example Growing the read buffer after a full read
   * ```ts
   * import { ConnState, MIN_READ_SIZE } from "./state.ts";
   * const state = new ConnState(1, { remoteAddr: {}, localAddr: {} } as Deno.Conn);
   * state.fit(MIN_READ_SIZE); // the read filled the buffer: more is probably waiting
   * if (state.readBuffer().length !== 2 * MIN_READ_SIZE) throw new Error("did not grow");
   * ```
   */
  fit(n: number): void {
    const size = this.#buffer.length;
    if (n === size) this.#size = Math.min(size * 2, MAX_READ_SIZE);
    else if (n < size / 4 && size > MIN_READ_SIZE) {
      this.#size = Math.max(MIN_READ_SIZE, 2 ** Math.ceil(Math.log2(2 * n + 1)));
    }
  }
}
