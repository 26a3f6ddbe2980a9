/**
 * A time budget shared by many async loops: once promise continuations have run for `budgetMs`
 * without a macrotask turn, the next loop to ask waits for one (`setTimeout(0)`), and with it
 * the runtime polls every socket. Only a timer does that at once: in a loop of continuations
 * on this Deno (2.9.6), a pending socket read completed after one `setTimeout(0)` (about 2 ms),
 * after 32 `MessageChannel` hops, and not within 50 microtasks, `setImmediate`s or small
 * `crypto.subtle.digest`s.
 *
 * Measured on the load client (pingpong 64 B × 500, pinned beside the C reference server, the
 * C client in the same run): its event loop is not what starves its connections. A 5 ms
 * interval kept firing (at most 6–67 ms apart) and a 2 ms budget was spent only 20–140 times in
 * 4 s, yet once the client used 95–99 % of its core some connections waited 1–3 s with or
 * without the budget (the C client: at most 23–60 ms). So `runBench` leaves it off by default;
 * `--turn-budget 2ms` repeats the comparison, and a loop that does hold the event loop (a
 * server's) can use it.
 * @module
 */

/**
 * Tells loops when to let the event loop turn. A probe timer (`setTimeout(0)`) is armed when a
 * loop first asks; it fires on the next macrotask turn, so a probe still pending after `budgetMs`
 * means the continuations have held the event loop that long. Then {@linkcode TurnBudget.due}
 * hands out a promise that resolves when the probe fires. Dispose of it when the loops end.
 *
 * @example A loop of continuations that still lets a timer run
 * ```ts
 * import { TurnBudget } from "./turn_budget.ts";
 * using budget = new TurnBudget(2);
 * let timerRan = false;
 * setTimeout(() => timerRan = true, 0);
 * const start = performance.now();
 * // Without the budget, `await Promise.resolve()` alone never lets the timer in.
 * while (!timerRan && performance.now() - start < 1000) {
 *   const turn = budget.due();
 *   if (turn) await turn;
 *   else await Promise.resolve();
 * }
 * if (!timerRan) throw new Error("the continuations held the event loop for a second");
 * ```
 */
export class TurnBudget implements Disposable {
  /** How long continuations may run without a macrotask turn, in ms; `Infinity` never yields. */
  readonly budgetMs: number;
  /** How many times the loops were held for a macrotask turn. */
  turns = 0;
  #armedAt = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #turn: PromiseWithResolvers<void> | null = null;

  /**
   * Makes a budget; throws a `RangeError` for a negative one.
   *
   * @param budgetMs How long continuations may run without a turn, in ms.
   */
  constructor(budgetMs: number) {
    if (!(budgetMs >= 0)) {
      throw new RangeError(`Cannot use a turn budget of ${budgetMs} ms: must be 0 or more`);
    }
    this.budgetMs = budgetMs;
  }

  /**
   * `null` while the budget lasts (go on at once: this is the common case and costs a clock
   * read); once it is spent, a promise that resolves on the next macrotask turn.
   */
  due(): Promise<void> | null {
    if (this.budgetMs === Infinity) return null;
    const now = performance.now();
    if (this.#probe === undefined) {
      this.#armedAt = now;
      this.#probe = setTimeout(this.#onTurn, 0);
      return null;
    }
    if (now - this.#armedAt < this.budgetMs) return null;
    if (this.#turn === null) {
      this.#turn = Promise.withResolvers<void>();
      this.turns++;
    }
    return this.#turn.promise;
  }

  #onTurn = (): void => {
    this.#probe = undefined;
    const turn = this.#turn;
    this.#turn = null;
    turn?.resolve();
  };

  /** Clears the probe timer and releases any loop still waiting. */
  [Symbol.dispose](): void {
    clearTimeout(this.#probe);
    this.#onTurn();
  }
}
