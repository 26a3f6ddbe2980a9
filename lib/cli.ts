/**
 * The part every program's `main()` shares: run it, turn failures into one stderr line and an
 * exit code, turn SIGINT/SIGTERM into an `AbortSignal` for a clean stop, and print through
 * bounded queues that never block the event loop (`lib/output.ts`).
 * @module
 */
import { describeError, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError } from "./errors.ts";
import { InfoRequest } from "./flags.ts";
import { flushOutput, stderr, stdout } from "./output.ts";

/**
 * Runs a program's `main()` and exits with its code: 0 (or what it returns) on success, 2 on a
 * {@linkcode UsageError}, 1 on anything else, each failure as one line `name: message`.
 * `--help` and `--version` ({@linkcode InfoRequest}) print on stdout and exit 0. Output still
 * queued is written (for 2 s at most) before the exit.
 * Set `DENO_SOCKETS_DEBUG=1` (and allow reading it) to see the stack of an unexpected error.
 */
export async function runMain(name: string, main: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? EXIT_OK;
  } catch (error) {
    if (error instanceof InfoRequest) {
      printLine(error.text);
      code = EXIT_OK;
    } else {
      const usage = error instanceof UsageError;
      printError(`${name}: ${describeError(error)}${usage ? " (see --help)" : ""}`);
      if (!usage && debugEnabled()) printError(error instanceof Error ? `${error.stack}` : "");
      code = usage ? EXIT_USAGE : EXIT_RUNTIME;
    }
  }
  await flushOutput();
  Deno.exit(code);
}

function debugEnabled(): boolean {
  // Query first: reading an env variable without the permission prompts on a terminal.
  const variable = "DENO_SOCKETS_DEBUG";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return false;
  return Deno.env.get(variable) === "1";
}

/** The signals that stop a server cleanly. */
export const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Signals that arrive within this long of the first are the same stop: one Ctrl-C reaches a
 * program under `deno task` two or three times (the terminal signals the whole process group,
 * and `deno task` forwards what it got).
 */
export const REPEAT_WINDOW_MS = 1000;

/**
 * An `AbortSignal` that aborts on the first SIGINT or SIGTERM, so a server can stop accepting
 * and drain. Repeats within {@linkcode REPEAT_WINDOW_MS} are the same stop; a signal after that
 * exits at once with code 1, for a drain that takes too long. Dispose of it to remove the
 * listeners.
 *
 * @example Stopping a loop on Ctrl-C
 * ```ts
 * import { stopSignal } from "./cli.ts";
 * using stop = stopSignal();
 * if (stop.signal.aborted) throw new Error("aborted before any signal");
 * ```
 */
export function stopSignal(): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  let firstAt = 0;
  const onSignal = () => {
    const now = performance.now();
    if (!controller.signal.aborted) {
      firstAt = now;
      controller.abort();
    } else if (now - firstAt > REPEAT_WINDOW_MS) {
      printError("second stop signal: exiting without draining");
      flushOutput(200).finally(() => Deno.exit(EXIT_RUNTIME));
    }
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, onSignal);
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const signal of STOP_SIGNALS) Deno.removeSignalListener(signal, onSignal);
    },
  };
}

/**
 * Prints a line on stdout through a bounded queue: never blocks, and a line that does not fit
 * (the reader stalled) is dropped and counted, with a notice on stderr once it drains.
 */
export function printLine(line: string): void {
  stdout.writeLine(line);
}

/** Prints a line on stderr through a bounded queue, like {@linkcode printLine}. */
export function printError(line: string): void {
  stderr.writeLine(line);
}

/**
 * Writes received data on stdout and waits while the queue is full, so nothing is dropped and
 * a slow reader slows the sender down. Resolves at once when stdout's reader has gone.
 */
export function writeData(bytes: Uint8Array): Promise<void> {
  return stdout.writeData(bytes);
}
