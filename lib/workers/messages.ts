/**
 * What the main thread and its workers tell each other (structured-cloned by `postMessage`).
 * @module
 */

/** From the main thread to a worker. */
export type ToWorker =
  /** Serve `config` as worker number `id` (1, 2, …). */
  | { type: "start"; id: number; config: unknown }
  /** Stop accepting, drain, then report `finished`. */
  | { type: "stop" };

/** From a worker to the main thread. */
export type FromWorker =
  /** The worker's listener is bound to `addr`. */
  | { type: "listening"; addr: Deno.Addr }
  /** Lines the worker printed since the last batch, for the main thread's output queues. */
  | { type: "lines"; stdout: string[]; stderr: string[] }
  /** A snapshot of the worker's counters (once a second), so a worker that dies still counts. */
  | { type: "stats"; stats: unknown }
  /** The worker drained and stopped; its final counters. */
  | { type: "finished"; stats: unknown }
  /** The worker's serve function failed (before or after it was listening). */
  | { type: "failed"; error: string };
