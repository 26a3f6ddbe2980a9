/**
 * An unbounded first-in first-out queue that is also an async iterator with a single waiter:
 * `push()` is O(1) and allocates nothing when the consumer is already waiting, and `next()`
 * only creates a promise when the queue is empty. It is the funnel that turns many completions
 * (accepts, reads, writes, timers) into one `for await` loop.
 * @module
 */

// A wait for an event at least this long (ms) counts as idle: nothing was ready.
const IDLE_MS = 1;

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
  #timeWaits: (() => boolean) | undefined;
  /** When the consumer began to wait, or -1 when this wait is not timed. */
  #waitStart = -1;

  /**
   * A queue. `onIdle` hears when its consumer waited at least 1 ms for an event (nothing was
   * ready for that long: the loop's pacer starts a fresh budget then). Only the waits that
   * begin while `timeWaits` says yes are timed (every wait when it is not given), so a loop
   * whose pacer cannot act reads no clock when it waits.
   */
  constructor(options: { onIdle?: () => void; timeWaits?: () => boolean } = {}) {
    this.#onIdle = options.onIdle;
    this.#timeWaits = options.timeWaits;
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
      if (this.#waitStart >= 0 && performance.now() - this.#waitStart >= IDLE_MS) this.#onIdle!();
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
    this.#waitStart = this.#onIdle !== undefined && (this.#timeWaits?.() ?? true)
      ? performance.now()
      : -1;
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
