/**
 * What the multiplexer remembers about one connection — the entry of its readiness map: the
 * read buffer, the outgoing queue and its byte count, whether a read or a write is in flight,
 * whether the peer ended its side, and how long it has been idle. The loop owns every field;
 * decisions see a connection through the read-only {@linkcode ConnView}.
 * @module
 */
import { LARGE_READ_SIZE, largeBuffers } from "./buffer_pool.ts";

/** A connection's own read buffer, for every read that may wait: idle connections are the
 * many, and Deno cannot cancel a read, so a pending read holds its buffer. */
export const MIN_READ_SIZE = 1024;
/** The largest read buffer, borrowed from the process's pool (buffer_pool.ts) for the read
 * right after one that came back full. */
export const MAX_READ_SIZE: number = LARGE_READ_SIZE;

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
  /** The connection's own small buffer. */
  #small = new Uint8Array(MIN_READ_SIZE);
  /** A large buffer borrowed from the pool, or `null`. */
  #large: Uint8Array | null = null;
  /** The buffer the last read went into: after a `data` event, its bytes are at its start. */
  #current: Uint8Array = this.#small;
  /** Whether the next read should use a large buffer: the last one came back full. */
  #wantLarge = false;

  /** A new entry for connection number `id`, with the smallest read buffer. */
  constructor(id: number, conn: Deno.Conn) {
    this.id = id;
    this.conn = conn;
    this.peer = conn.remoteAddr;
    this.local = conn.localAddr;
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
    return this.#current;
  }

  /** Whether nothing is queued or in flight. */
  get idleWriter(): boolean {
    return this.writing === null && !this.shuttingDown;
  }

  /** The buffer for the next read: a pooled large one right after a full read (more is
   * waiting), the connection's own small one otherwise (the read may wait, and would pin it). */
  readBuffer(): Uint8Array {
    if (this.#wantLarge) this.#large ??= largeBuffers.acquire();
    this.#current = this.#wantLarge ? this.#large! : this.#small;
    return this.#current;
  }

  /** Whether `chunk` is a view of the read buffer, which must not be read into while it is sent. */
  isReadBuffer(chunk: Uint8Array): boolean {
    return chunk.buffer === this.#current.buffer;
  }

  /**
   * Chooses the next read's buffer after one that returned `n` bytes: a large one after a full
   * read, the small one after a partial read (the socket is drained), and then the large one
   * goes back to the pool as soon as no write uses it.
   *
   * @example
   * ```ts
   * import { ConnState, MAX_READ_SIZE, MIN_READ_SIZE } from "./state.ts";
   * const state = new ConnState(1, { remoteAddr: {}, localAddr: {} } as Deno.Conn);
   * state.readBuffer();
   * state.afterRead(MIN_READ_SIZE); // the read filled the buffer: more is probably waiting
   * if (state.readBuffer().length !== MAX_READ_SIZE) throw new Error("no large buffer");
   * state.afterRead(10); // the socket is drained
   * if (state.readBuffer().length !== MIN_READ_SIZE) throw new Error("still large");
   * ```
   */
  afterRead(n: number): void {
    this.#wantLarge = n === this.#current.length;
    this.settle();
  }

  /** Gives the large buffer back once nothing needs it: no write sends from it (`lent`), and
   * the next read will not use it. */
  settle(): void {
    if (this.#large !== null && !this.#wantLarge && this.lent === 0 && !this.reading) {
      largeBuffers.release(this.#large);
      this.#large = null;
    }
  }

  /** At the close: the large buffer goes back, or is written off when a read or a write in
   * flight may still use it. */
  dispose(): void {
    if (this.#large === null) return;
    if (this.reading || this.lent > 0) largeBuffers.forget(this.#large);
    else largeBuffers.release(this.#large);
    this.#large = null;
  }
}
