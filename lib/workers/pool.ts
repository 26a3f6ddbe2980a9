/**
 * `--workers N`, the main thread's side: N `Worker` threads, each with its own listener on the
 * same port (`reusePort`, Linux), so the kernel spreads connections over them as it does for
 * nginx's or Node cluster's processes. The first worker binds (port 0 picks a port); the others
 * bind the port it got. The main thread prints what the workers print, stops them all on one
 * signal, and gathers their counters for one line at the end.
 *
 * Threads, not processes: they inherit the program's permissions (a process would need
 * `--allow-run`, which is as strong as `--allow-all`, and its own copy of every flag), start in
 * tens of milliseconds, and measured the same as processes on this machine. What threads cost:
 * loading the program again in each worker needs read access to its files, and a worker shares
 * the process — an uncaught exception ends only that worker, but an abort of the whole runtime
 * (out of memory) ends them all.
 *
 * A worker that dies (an uncaught exception) is reported and restarted with the same number; its
 * connections are lost. More than `maxRestarts` deaths within `restartWindow` stop the server
 * with an error (exit 1): a worker that dies again and again has a bug that restarts only hide.
 * @module
 */
import { UsageError } from "../errors.ts";
import { requirePermission } from "../permissions.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

/** Options for {@linkcode startWorkers}. */
export interface WorkerPoolOptions<C> {
  /** The module each worker runs: a script that calls `serveAsWorker()` in a worker thread. */
  module: string | URL;
  /** How many workers. */
  count: number;
  /** What each worker serves, structured-cloned. */
  config: C;
  /** The config for the workers after the first, which bound `port`: they must bind it too
   * (it differs from the config's when that asked for port 0). Without it, a top-level `port`
   * field is set. */
  withPort?: (config: C, port: number) => C;
  /** Stops every worker (each drains) when aborted. */
  signal?: AbortSignal;
  /** Prints a line a worker printed. */
  onLine: (stream: "stdout" | "stderr", line: string) => void;
  /** Hears about a worker that died. */
  onWorkerDied?: (death: WorkerDeath) => void;
  /** Paths the workers must read to load the module: the module and the `lib/` folder beside
   * its folder unless told otherwise. */
  readPaths?: string[];
  /** Deaths tolerated within `restartWindow` before the server gives up. @default {5} */
  maxRestarts?: number;
  /** The window, in milliseconds, over which deaths are counted. @default {60000} */
  restartWindow?: number;
}

/** A worker that died. */
export interface WorkerDeath {
  /** Its number, 1 to N. */
  worker: number;
  /** What killed it, as one line. */
  error: string;
  /** Whether it is being restarted (false: the server is stopping). */
  restarting: boolean;
}

/** Running workers. */
export interface WorkerPool<S> {
  /** The address the first worker bound (every worker listens on it). */
  readonly addr: Deno.Addr;
  /** Resolves after a stop with every worker's final counters (and the last counters of
   * workers that died); rejects when workers kept dying. */
  readonly finished: Promise<S[]>;
  /** Asks every worker to drain and stop; safe to call twice. */
  stop(): void;
}

interface Slot {
  id: number;
  worker: Worker;
  /** Whether this is a restart (a failure to start is then one more death). */
  restart: boolean;
  listening: boolean;
  ended: boolean;
  stats: unknown;
  started: PromiseWithResolvers<Deno.Addr>;
}

/**
 * Starts `count` workers and resolves once every one is listening; rejects (after stopping the
 * ones that started) when one cannot start, with its error (`127.0.0.1:80: Permission denied`).
 *
 * @example
 * ```ts ignore
 * const pool = await startWorkers({ module: import.meta.url, count: 2, config, onLine });
 * printError(`Listening on ${formatAddr(pool.addr)}`);
 * const stats = sumStats(await pool.finished);
 * ```
 */
export async function startWorkers<C, S>(options: WorkerPoolOptions<C>): Promise<WorkerPool<S>> {
  if (!(Number.isInteger(options.count) && options.count >= 1)) {
    throw new RangeError(`Cannot start "${options.count}" workers: must be at least 1`);
  }
  requireModuleRead(options);
  const pool = new Pool<C, S>(options);
  return await pool.start();
}

function requireModuleRead(
  options: Pick<WorkerPoolOptions<unknown>, "module" | "readPaths">,
): void {
  const module = new URL(options.module);
  if (module.protocol !== "file:") return;
  const paths = options.readPaths ??
    [module, new URL("../lib", new URL(".", module))].map((url) =>
      decodeURIComponent(url.pathname)
    );
  for (const path of paths) {
    requirePermission(
      { name: "read", path },
      `--allow-read=${paths.join(",")}`,
      "start workers (each loads the program's files)",
    );
  }
}

class Pool<C, S> {
  #options: WorkerPoolOptions<C>;
  #config: C;
  #slots = new Set<Slot>();
  #results: S[] = [];
  #deaths: number[] = [];
  #stopping = false;
  #failure: Error | undefined;
  #finished = Promise.withResolvers<S[]>();

  constructor(options: WorkerPoolOptions<C>) {
    this.#options = options;
    this.#config = options.config;
  }

  async start(): Promise<WorkerPool<S>> {
    let addr: Deno.Addr;
    try {
      addr = await this.#spawn(1);
      // Port 0: the kernel chose a port for the first worker; the others must share it.
      if ("port" in addr) {
        const { withPort = (config: C, port: number) => ({ ...config, port }) } = this.#options;
        this.#config = withPort(this.#config, addr.port);
      }
      await Promise.all(
        Array.from({ length: this.#options.count - 1 }, (_, i) => this.#spawn(i + 2)),
      );
    } catch (error) {
      this.stop();
      await this.#finished.promise.catch(() => {});
      throw error;
    }
    const { signal } = this.#options;
    signal?.addEventListener("abort", this.stop, { once: true });
    if (signal?.aborted) this.stop();
    const finished = this.#finished.promise.finally(() => {
      signal?.removeEventListener("abort", this.stop);
    });
    return { addr, finished, stop: this.stop };
  }

  stop = (): void => {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const slot of this.#slots) this.#post(slot, { type: "stop" });
    this.#settle();
  };

  #spawn(id: number, restart = false): Promise<Deno.Addr> {
    const worker = new Worker(this.#options.module, { type: "module", name: `worker ${id}` });
    const slot: Slot = {
      id,
      worker,
      restart,
      listening: false,
      ended: false,
      stats: undefined,
      started: Promise.withResolvers<Deno.Addr>(),
    };
    this.#slots.add(slot);
    worker.onmessage = ({ data }: MessageEvent<FromWorker>) => this.#receive(slot, data);
    worker.onerror = (event) => {
      // Handled here, an uncaught exception ends this worker and not the program.
      event.preventDefault();
      this.#end(slot, event.message || "uncaught error");
    };
    worker.onmessageerror = () => this.#end(slot, "sent a message that could not be read");
    this.#post(slot, { type: "start", id, config: this.#config });
    if (this.#stopping) this.#post(slot, { type: "stop" });
    return slot.started.promise;
  }

  #receive(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case "lines":
        for (const line of message.stdout) this.#options.onLine("stdout", line);
        for (const line of message.stderr) this.#options.onLine("stderr", line);
        break;
      case "listening":
        slot.listening = true;
        slot.started.resolve(message.addr);
        break;
      case "stats":
        slot.stats = message.stats;
        break;
      case "finished":
        slot.stats = message.stats;
        this.#end(slot);
        break;
      case "failed":
        this.#end(slot, message.error);
        break;
    }
  }

  #post(slot: Slot, message: ToWorker): void {
    if (!slot.ended) slot.worker.postMessage(message);
  }

  #end(slot: Slot, error?: string): void {
    if (slot.ended) return;
    slot.ended = true;
    slot.worker.terminate();
    this.#slots.delete(slot);
    if (slot.stats !== undefined) this.#results.push(slot.stats as S);
    if (!slot.listening) slot.started.reject(new Error(error ?? "Stopped before listening"));
    if (error !== undefined && (slot.listening || slot.restart)) this.#died(slot, error);
    this.#settle();
  }

  #died(slot: Slot, error: string): void {
    const now = performance.now();
    const window = this.#options.restartWindow ?? 60_000;
    this.#deaths = this.#deaths.filter((at) => now - at < window);
    this.#deaths.push(now);
    const restarting = !this.#stopping &&
      this.#deaths.length <= (this.#options.maxRestarts ?? 5);
    this.#options.onWorkerDied?.({ worker: slot.id, error, restarting });
    if (restarting) {
      // A restart that fails to listen is one more death, handled here again.
      this.#spawn(slot.id, true).catch(() => {});
    } else if (!this.#stopping) {
      this.#failure = new Error(
        `Workers died ${this.#deaths.length} times within ${
          window / 1000
        } s (last: worker ${slot.id}: ${error}); stopping`,
      );
      this.stop();
    }
  }

  #settle(): void {
    if (!this.#stopping || this.#slots.size > 0) return;
    if (this.#failure) this.#finished.reject(this.#failure);
    else this.#finished.resolve(this.#results);
  }
}

/**
 * Adds up counters field by field, for one stats line over all workers.
 *
 * @example
 * ```ts
 * import { sumStats } from "./pool.ts";
 * const total = sumStats([{ total: 2, bytesOut: 10 }, { total: 3, bytesOut: 5 }]);
 * if (total.total !== 5 || total.bytesOut !== 15) throw new Error(JSON.stringify(total));
 * ```
 */
export function sumStats<S extends { [K in keyof S]: number }>(list: readonly S[]): S {
  const sum: Record<string, number> = {};
  for (const stats of list) {
    for (const [key, value] of Object.entries(stats) as [string, number][]) {
      sum[key] = (sum[key] ?? 0) + value;
    }
  }
  return sum as S;
}

/**
 * The line a server prints for a {@linkcode WorkerDeath}, e.g.
 * `worker 2 died (Error: boom); restarting it`.
 *
 * @example
 * ```ts
 * import { describeWorkerDeath } from "./pool.ts";
 * const line = describeWorkerDeath({ worker: 2, error: "Uncaught Error: boom", restarting: true });
 * if (line !== "worker 2 died (Uncaught Error: boom); restarting it") throw new Error(line);
 * ```
 */
export function describeWorkerDeath(death: WorkerDeath): string {
  return `worker ${death.worker} died (${death.error})${death.restarting ? "; restarting it" : ""}`;
}

/**
 * Parses `--workers`: a count from 1 to 256, or `auto` for the number of CPUs.
 *
 * @example
 * ```ts
 * import { parseWorkers } from "./pool.ts";
 * if (parseWorkers("4") !== 4) throw new Error();
 * if (parseWorkers("auto") !== navigator.hardwareConcurrency) throw new Error();
 * ```
 */
export function parseWorkers(text: string, flag = "--workers"): number {
  if (text === "auto") return Math.max(1, navigator.hardwareConcurrency || 1);
  const count = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(count >= 1 && count <= MAX_WORKERS)) {
    throw new UsageError(
      `Cannot parse ${flag} "${text}": must be auto or an integer from 1 to ${MAX_WORKERS}`,
    );
  }
  return count;
}

const MAX_WORKERS = 256;

/**
 * Reads `--workers` (default 1) and refuses `--unix` beside more than one worker: `reusePort`
 * shares TCP ports only.
 *
 * @example
 * ```ts
 * import { workersFromFlags } from "./pool.ts";
 * if (workersFromFlags({ workers: "2" }) !== 2) throw new Error();
 * if (workersFromFlags({}) !== 1) throw new Error();
 * ```
 */
export function workersFromFlags(flags: { workers?: string; unix?: string }): number {
  const count = parseWorkers(flags.workers ?? "1");
  if (count > 1 && flags.unix !== undefined) {
    throw new UsageError(
      "Cannot use --workers with --unix: reusePort shares TCP ports only (run one server per socket path)",
    );
  }
  return count;
}
