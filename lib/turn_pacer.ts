/**
 * Fair turns for a loop that keeps many sockets busy. Deno completes the reads that are not
 * ready at once in one op driver (a `FuturesUnordered` polled by one tokio task), and tokio lets
 * a task complete 128 I/O operations per poll: the reads polled after those are put back behind
 * every socket epoll reports next. Under a load that keeps more than 128 sockets ready, the ~128
 * served last (whose peers answer at once) are served again and again, and the others wait with
 * their data in the kernel — for seconds, measured at 500 ping-pong connections
 * (`scripts/bench/starvation_repro.ts` shows it without this project). What lets the driver
 * complete every ready read is a moment in which JavaScript starts no read and the runtime goes
 * idle: of the primitives Deno has, only a timer does that (`setImmediate`, `MessageChannel`
 * and microtasks come back before the driver has caught up).
 *
 * So the loop pauses for one `setTimeout(0)` once it has handled {@linkcode STARVATION_MIN_PENDING}
 * events and run for {@linkcode TURN_BUDGET_MS} since its last pause, and only while enough
 * operations are in flight to be starved at all: fewer events than one tokio budget cannot have
 * left a ready read behind, so a loop that is mostly idle (a slow peer) pauses at most once per
 * 128 events, not every 2 ms. What the
 * pause buys against the C reference server, and what it costs, is measured in the README
 * ("Fairness: no connection starves"); at 50 connections and in bulk it never triggers.
 * @module
 */

/** How long the loop may run before it lets the op driver catch up, in milliseconds: the
 * budget measured in the README's "Fairness: no connection starves" (in the research runs a
 * 5 ms budget left a longer tail). */
export const TURN_BUDGET_MS = 2;
/** Below this many operations in flight no read can be deferred, and a loop that handled fewer
 * events than this since its last pause cannot have been starving any: tokio's budget is 128. */
export const STARVATION_MIN_PENDING = 128;
// performance.now() costs about 0.5 µs, 5 % of a small echo: read it every 16 events only.
const CLOCK_EVERY = 16;

/**
 * Decides when a busy loop pauses for one timer turn. Every loop of a program shares one: a
 * pause must stop all of them at once, or the others keep starting reads.
 *
 * @example A loop over many connections
 * ```ts
 * import { TurnPacer } from "./turn_pacer.ts";
 * const pacer = new TurnPacer(0);
 * for (let event = 0; event < 200; event++) {
 *   if (pacer.due(1000)) await pacer.pause();
 * }
 * if (pacer.pauses === 0) throw new Error("a loop with 1000 operations in flight never paused");
 * ```
 */
export class TurnPacer {
  /** Pauses taken so far. */
  pauses = 0;
  readonly #budgetMs: number;
  /** When the budget started: read at the first busy event after a pause or a restart. */
  #since = 0;
  /** Busy events (128 or more operations in flight) since the last pause or restart. */
  #count = 0;
  #pause: Promise<void> | null = null;

  /** A pacer that allows `budgetMs` of running between pauses (`Infinity`: never pause). */
  constructor(budgetMs: number = TURN_BUDGET_MS) {
    if (!(budgetMs >= 0)) {
      throw new RangeError(`Cannot use a turn budget of ${budgetMs} ms: must be 0 or more`);
    }
    this.#budgetMs = budgetMs;
  }

  /** Call once per event with the operations in flight; `true` when the loop should
   * `await pause()` before it goes on: at least {@linkcode STARVATION_MIN_PENDING} events with
   * as many operations in flight, and the budget spent, since the last pause or restart. */
  due(pending: number): boolean {
    if (this.#pause !== null) return true;
    if (pending < STARVATION_MIN_PENDING) return false;
    const count = ++this.#count;
    if (count === 1) {
      // The first busy event after a pause or a restart starts the budget.
      this.#since = performance.now();
      return false;
    }
    if (count < STARVATION_MIN_PENDING || count % CLOCK_EVERY !== 0) return false;
    return performance.now() - this.#since >= this.#budgetMs;
  }

  /** One timer turn (shared by every caller until it ends), then a fresh budget. */
  pause(): Promise<void> {
    if (this.#pause !== null) return this.#pause;
    this.pauses++;
    this.#pause = new Promise((resolve) =>
      setTimeout(() => {
        this.#pause = null;
        this.restart();
        resolve();
      }, 0)
    );
    return this.#pause;
  }

  /** Starts a fresh budget (after a wait for events nothing was ready, so nothing starved). It
   * reads no clock: the next busy event does. */
  restart(): void {
    this.#count = 0;
  }
}
