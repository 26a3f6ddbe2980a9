/**
 * `--workers N` for the servers: N `Worker` threads, each with its own listener on one port
 * (`reusePort`), the kernel spreading connections over them. A script adopts it with a few
 * lines: it serves from a function that takes plain-data config, calls
 * {@linkcode startWorkers} from `main()` when N > 1, and ends with
 * `if (isWorkerThread()) serveAsWorker(...)`.
 *
 * @example The shape of a script with workers
 * ```ts ignore
 * import { isWorkerThread, parseWorkers, serveAsWorker, startWorkers, sumStats } from "../lib/workers/mod.ts";
 *
 * async function main(args: string[]) {
 *   const count = parseWorkers(flags.workers ?? "1");
 *   if (count === 1) return await serveOne(config, { printLine, printError, signal, listening });
 *   const pool = await startWorkers({ module: import.meta.url, count, config, signal, onLine });
 *   printError(`Listening on ${formatAddr(pool.addr)}`);
 *   const stats = sumStats(await pool.finished);
 * }
 * if (import.meta.main) {
 *   if (isWorkerThread()) serveAsWorker((context) => serveOne(context.config, context));
 *   else runMain("x", () => main(Deno.args));
 * }
 * ```
 * @module
 */
export {
  describeWorkerDeath,
  parseWorkers,
  startWorkers,
  sumStats,
  type WorkerDeath,
  type WorkerPool,
  type WorkerPoolOptions,
  workersFromFlags,
} from "./pool.ts";
export { isWorkerThread, serveAsWorker, type ServeIo, type WorkerContext } from "./worker.ts";
export { serveOnWorkers, type ServeOnWorkersOptions } from "./serve.ts";
