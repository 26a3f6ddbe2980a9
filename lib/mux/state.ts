/**
 * What the multiplexer remembers about one connection — the entry of its readiness map: the
 * read buffer, the outgoing queue and its byte count, whether a read or a write is in flight,
 * whether the peer ended its side, and how long it has been idle.
 * @module
 */

/** The first read buffer of a connection: small, because idle connections are the many. */
export const MIN_READ_SIZE = 1024;
/** The largest read buffer. Only a connection whose reads keep coming back full grows to it;
 * bulk transfers then cross the runtime in 256 KiB pieces instead of 64 KiB ones, which took
 * bulk echo from about 0.9× to about 1.4× a plain 64 KiB read/write loop (`deno task bench`). */
export const MAX_READ_SIZE = 256 * 1024;

/**
 * One connection's entry in the readiness map.
 *
 * @example Growing the read buffer after a full read
 * ```ts
 * import { ConnState, MIN_READ_SIZE } from "./state.ts";
 * const state = new ConnState({} as Deno.Conn);
 * state.fit(MIN_READ_SIZE); // the read filled the buffer: more is probably waiting
 * if (state.readBuffer().length !== 2 * MIN_READ_SIZE) throw new Error("did not grow");
 * ```
 */
export class ConnState {
  /** The connection this entry is about. */
  readonly conn: Deno.Conn;
  /** Bytes received and not yet written back: the chunk in flight and the queue. */
  queued = 0;
  /** Chunks waiting behind the write in flight; each is a copy the queue owns. */
  readonly queue: Uint8Array[] = [];
  /** The chunk being written, or `null`; it may be a view of the read buffer. */
  writing: Uint8Array | null = null;
  /** Whether a read is in flight. */
  reading = false;
  /** Whether the peer has ended its sending side (a read returned end of stream). */
  ended = false;
  /** Whether the connection was closed and left the map. */
  closed = false;
  /** Idle-sweep ticks since the last byte moved in either direction. */
  idleTicks = 0;
  #buffer: Uint8Array;
  #size = MIN_READ_SIZE;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.#buffer = new Uint8Array(MIN_READ_SIZE);
  }

  /** The read buffer: after a `data` event, the bytes received are at its start. */
  get buffer(): Uint8Array {
    return this.#buffer;
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
   */
  fit(n: number): void {
    const size = this.#buffer.length;
    if (n === size) this.#size = Math.min(size * 2, MAX_READ_SIZE);
    else if (n < size / 4 && size > MIN_READ_SIZE) {
      this.#size = Math.max(MIN_READ_SIZE, 2 ** Math.ceil(Math.log2(2 * n + 1)));
    }
  }
}
