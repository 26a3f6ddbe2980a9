/**
 * The worker's side of `--workers`: {@linkcode serveAsWorker} runs a server in a `Worker`
 * thread as the main thread directs it — start with a config, listen, report the address, print
 * through the main thread (whole lines, never torn by another worker's writes), report counters,
 * stop and drain on request.
 * @module
 */
import { describeError } from "../errors.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

/** Where one server prints, what stops it, and whom it tells where it listens: the same on
 * the main thread and in a worker (a worker's context is one of these). */
export interface ServeIo<S> {
  /** A line on stdout. */
  printLine(line: string): void;
  /** A line on stderr. */
  printError(line: string): void;
  /** Stops the server; it drains first. */
  readonly signal: AbortSignal;
  /** The worker's number, 1 to N, with `--workers`; unset on the main thread. */
  readonly id?: number;
  /** Says the listener is bound; `stats` is read once a second (workers) and at the end. */
  listening(addr: Deno.Addr, stats?: () => S): void;
}

/** What a worker's serve function gets: a {@linkcode ServeIo} that prints through the main
 * thread, plus its number and the config the main thread sent. */
export interface WorkerContext<C, S> extends ServeIo<S> {
  /** This worker's number, 1 to N; a restarted worker keeps its number. */
  readonly id: number;
  /** The config the main thread sent (its `port` is the one the first worker bound). */
  readonly config: C;
}

// Lines go to the main thread in batches: one message per turn of the event loop, or sooner
// when this many have gathered.
const BATCH_LINES = 512;
const STATS_INTERVAL_MS = 1000;

/**
 * Whether this code runs in a `Worker` thread (where a script serves as one worker) rather than
 * the main thread.
 *
 * @example
 * ```ts
 * import { isWorkerThread } from "./worker.ts";
 * if (isWorkerThread()) throw new Error("the tests run on the main thread");
 * ```
 */
export function isWorkerThread(): boolean {
  return "WorkerGlobalScope" in globalThis;
}

/**
 * Serves as one worker: waits for the main thread's `start`, runs `serve` with a
 * {@linkcode WorkerContext}, and reports its result (the final counters) or its failure. A
 * script calls it at the end, instead of its `main()`, when {@linkcode isWorkerThread} is true.
 *
 * @example The end of a script that can run as a worker
 * ```ts ignore
 * if (import.meta.main) {
 *   if (isWorkerThread()) serveAsWorker((context) => serveOne(context.config, context));
 *   else runMain("echo_server", () => main(Deno.args));
 * }
 * ```
 */
export function serveAsWorker<C, S>(serve: (context: WorkerContext<C, S>) => Promise<S>): void {
  const scope = globalThis as unknown as {
    postMessage(message: FromWorker): void;
    close(): void;
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  };
  const stop = new AbortController();
  const stdout: string[] = [];
  const stderr: string[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let statsTimer: ReturnType<typeof setInterval> | undefined;
  let readStats: (() => S) | undefined;
  const flush = () => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    if (stdout.length + stderr.length === 0) return;
    scope.postMessage({ type: "lines", stdout: stdout.splice(0), stderr: stderr.splice(0) });
  };
  const print = (lines: string[], line: string) => {
    lines.push(line);
    if (stdout.length + stderr.length >= BATCH_LINES) flush();
    else flushTimer ??= setTimeout(flush, 0);
  };
  const end = (message: FromWorker) => {
    clearInterval(statsTimer);
    flush();
    scope.postMessage(message);
    scope.close();
  };
  const start = (id: number, config: C) => {
    serve({
      id,
      config,
      signal: stop.signal,
      printLine: (line) => print(stdout, line),
      printError: (line) => print(stderr, line),
      listening(addr, stats) {
        readStats = stats;
        scope.postMessage({ type: "listening", addr });
        if (stats) {
          statsTimer = setInterval(
            () => scope.postMessage({ type: "stats", stats: stats() }),
            STATS_INTERVAL_MS,
          );
        }
      },
    }).then(
      (stats) => end({ type: "finished", stats: stats ?? readStats?.() }),
      (error) => {
        if (!failed) end({ type: "failed", error: describeError(error) });
      },
    );
  };
  // An exception nothing caught: this worker's state is unknown, so it ends, and the main
  // thread hears one line (and restarts it) instead of the runtime printing a stack trace.
  let failed = false;
  const fail = (event: Event, error: unknown) => {
    event.preventDefault();
    if (failed) return;
    failed = true;
    end({ type: "failed", error: `uncaught exception: ${describeError(error)}` });
  };
  globalThis.addEventListener("error", (event) => fail(event, event.error ?? event.message));
  globalThis.addEventListener("unhandledrejection", (event) => fail(event, event.reason));
  scope.onmessage = ({ data }) => {
    if (data.type === "start") start(data.id, data.config as C);
    else if (data.type === "stop") stop.abort();
  };
}
