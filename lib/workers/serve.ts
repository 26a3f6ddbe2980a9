/**
 * The one decision every server with `--workers` makes in `main()`: serve on this thread (one
 * worker), or start N workers on one port and wait for them. Either way one `Listening on`
 * line is printed and the final counters come back (summed over the workers).
 * @module
 */
import { printError, printLine } from "../cli.ts";
import { describeWorkerDeath, startWorkers, sumStats } from "./pool.ts";
import type { ServeIo } from "./worker.ts";

/** Options for {@linkcode serveOnWorkers}. */
export interface ServeOnWorkersOptions<C, S> {
  /** The program's name, for a worker's death line (`echo_server: worker 2 died …`). */
  name: string;
  /** The script's own module (`import.meta.url`): each worker runs it again. */
  module: string | URL;
  /** How many workers; 1 serves on this thread. */
  count: number;
  /** What to serve, as plain data (it is cloned into each worker). */
  config: C;
  /** The config for the workers after the first, which bound `port`. */
  withPort: (config: C, port: number) => C;
  /** Serves `config` until `io.signal` aborts; resolves with the final counters. */
  serve: (config: C, io: ServeIo<S>) => Promise<S>;
  /** Stops the server (every worker drains). */
  signal: AbortSignal;
  /** Prints the listening line (once, whatever the number of workers). */
  listening: (addr: Deno.Addr) => void;
}

/**
 * Serves `config` on this thread, or on `count` worker threads sharing one port, and resolves
 * with the final counters (summed over the workers).
 *
 * @example The main() of a server with workers
 * ```ts ignore
 * const stats = await serveOnWorkers({
 *   name: "echo_server", module: import.meta.url, count: workersFromFlags(flags), config: plan,
 *   withPort: (plan, port) => ({ ...plan, port }), serve: serveEchoPlan, signal: stop.signal,
 *   listening: (addr) => printError(`Listening on ${formatAddr(addr)}`),
 * });
 * ```
 */
export async function serveOnWorkers<C, S extends { [K in keyof S]: number }>(
  options: ServeOnWorkersOptions<C, S>,
): Promise<S> {
  const { count, config, signal, listening } = options;
  if (count === 1) return await options.serve(config, { printLine, printError, signal, listening });
  const pool = await startWorkers<C, S>({
    module: options.module,
    count,
    config,
    withPort: options.withPort,
    signal,
    onLine: (stream, line) => stream === "stdout" ? printLine(line) : printError(line),
    onWorkerDied: (death) => printError(`${options.name}: ${describeWorkerDeath(death)}`),
  });
  listening(pool.addr);
  return sumStats(await pool.finished);
}
