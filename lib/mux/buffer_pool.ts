/**
 * Large read buffers, shared by every connection of the process. A connection reads into its
 * own 1 KiB buffer whenever the socket may have nothing for a while, and into a large buffer
 * only right after a read that came back full (data is waiting, so that read completes at
 * once). So an idle connection holds 1 KiB whatever it did before — Deno cannot cancel a
 * pending read, and a read pending on a grown buffer pins it — and a bulk transfer borrows one
 * of a fixed set of large buffers instead of allocating (and zero-filling) new ones.
 *
 * Measured (notes in the README's benchmark section): 400 clients idle after a 2 MB burst each
 * cost 311–385 KiB of RSS each with per-connection growing buffers, 165–170 KiB with this
 * (the rest is glibc keeping freed memory); live memory went from 81 MiB to 13 MiB.
 * @module
 */

/** The size of a pooled buffer: the largest read a connection makes. Bulk transfers cross the
 * runtime in 256 KiB pieces, which took bulk echo from about 0.9× to 1.4× a 64 KiB read loop. */
export const LARGE_READ_SIZE = 256 * 1024;
/** Pooled buffers in the process; more streaming connections at once get private ones. */
export const POOLED_BUFFERS = 32;
/** The size of a private buffer, for a connection that streams while the pool is empty. */
export const OVERFLOW_READ_SIZE = 64 * 1024;

/**
 * The process's pool of large read buffers.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool(1);
 * const first = pool.acquire(); // the pooled one
 * const second = pool.acquire(); // the pool is empty: a private one
 * pool.release(first);
 * pool.release(second); // not kept: only pooled buffers come back
 * if (pool.acquire() !== first) throw new Error("the pooled buffer was not reused");
 * ```
 */
export class BufferPool {
  /** Called with the KiB of each private buffer made: memory left for the collector. */
  onOverflow: ((kib: number) => void) | undefined;
  readonly #free: Uint8Array[] = [];
  readonly #pooled = new WeakSet<Uint8Array>();
  #made = 0;
  readonly #capacity: number;

  /** A pool of at most `capacity` buffers of {@linkcode LARGE_READ_SIZE}, made on demand. */
  constructor(capacity = POOLED_BUFFERS) {
    this.#capacity = capacity;
  }

  /** A large buffer: a pooled one if any is free, else a private {@linkcode OVERFLOW_READ_SIZE}
   * one. */
  acquire(): Uint8Array {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    if (this.#made < this.#capacity) {
      this.#made++;
      const buffer = new Uint8Array(LARGE_READ_SIZE);
      this.#pooled.add(buffer);
      return buffer;
    }
    this.onOverflow?.(OVERFLOW_READ_SIZE / 1024);
    return new Uint8Array(OVERFLOW_READ_SIZE);
  }

  /** Gives `buffer` back; a private one is left to the garbage collector. Nothing may read
   * into it or write from it afterwards. */
  release(buffer: Uint8Array): void {
    if (this.#pooled.has(buffer)) this.#free.push(buffer);
  }

  /** Writes `buffer` off: an operation still in flight may use it, so it is never handed out
   * again (the pool makes a new one when needed). */
  forget(buffer: Uint8Array): void {
    if (this.#pooled.delete(buffer)) this.#made--;
  }
}

/** The one pool of the process (per worker thread). */
export const largeBuffers: BufferPool = new BufferPool();
