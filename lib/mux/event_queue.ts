/**
 * An unbounded first-in first-out queue that is also an async iterator with a single waiter:
 * `push()` is O(1) and allocates nothing when the consumer is already waiting, and `next()`
 * only creates a promise when the queue is empty. It is the funnel that turns many completions
 * (accepts, reads, writes, timers) into one `for await` loop.
 * @module
 */

/**
 * A queue of events consumed by one `for await` loop.
 *
 * @example Pushing before and after the consumer waits
 * ```ts
 * import { EventQueue } from "./event_queue.ts";
 * const queue = new EventQueue<number>();
 * queue.push(1);
 * setTimeout(() => {
 *   queue.push(2);
 *   queue.end();
 * }, 0);
 * const seen: number[] = [];
 * for await (const value of queue) seen.push(value);
 * if (seen.join() !== "1,2") throw new Error(seen.join());
 * ```
 */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #ended = false;
  #onIdle: (() => void) | undefined;
  #idleMs: number;
  #waitStart = 0;

  /**
   * A queue; `onIdle` hears when its consumer waited at least `idleMs` for an event (nothing
   * was ready for that long: the loop's pacer starts a fresh budget then).
   */
  constructor(options: { onIdle?: () => void; idleMs?: number } = {}) {
    this.#onIdle = options.onIdle;
    this.#idleMs = options.idleMs ?? 1;
  }

  /** How many events wait to be taken. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Adds an event; hands it straight to the consumer when it is waiting. Ignored after `end()`. */
  push(item: T): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      if (this.#onIdle && performance.now() - this.#waitStart >= this.#idleMs) this.#onIdle();
      waiter({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Ends the iteration once the events already queued are taken. */
  end(): void {
    this.#ended = true;
    const waiter = this.#waiter;
    if (waiter !== undefined && this.size === 0) {
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  /** Takes the next event, waiting for one when the queue is empty. */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head];
      this.#items[this.#head++] = undefined as T; // let the event be collected
      if (this.#head === this.#items.length) {
        // Drained: start over, so the array never grows past the longest burst.
        this.#items.length = 0;
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== undefined) {
      return Promise.reject(new TypeError("Cannot wait twice: EventQueue has a single consumer"));
    }
    const { promise, resolve } = Promise.withResolvers<IteratorResult<T>>();
    if (this.#onIdle) this.#waitStart = performance.now();
    this.#waiter = resolve;
    return promise;
  }

  /** Stops the iteration early (a `break` out of `for await`); later pushes are dropped. */
  return(): Promise<IteratorResult<T>> {
    this.#ended = true;
    this.#items.length = 0;
    this.#head = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  /** The queue is its own iterator: one consumer, one `for await`. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
