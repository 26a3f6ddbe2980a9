/**
 * The part every program's `main()` shares: run it, turn failures into one stderr line and an
 * exit code, and turn SIGINT/SIGTERM into an `AbortSignal` for a clean stop.
 * @module
 */
import { describeError, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError } from "./errors.ts";

/**
 * Runs a program's `main()` and exits with its code: 0 (or what it returns) on success, 2 on a
 * {@linkcode UsageError}, 1 on anything else, each failure as one line `name: message`.
 * Set `DENO_SOCKETS_DEBUG=1` to see the stack of an unexpected error.
 */
export async function runMain(name: string, main: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? EXIT_OK;
  } catch (error) {
    const usage = error instanceof UsageError;
    console.error(`${name}: ${describeError(error)}${usage ? " (see --help)" : ""}`);
    if (!usage && debugEnabled()) console.error(error);
    code = usage ? EXIT_USAGE : EXIT_RUNTIME;
  }
  Deno.exit(code);
}

function debugEnabled(): boolean {
  try {
    return Deno.env.get("DENO_SOCKETS_DEBUG") === "1";
  } catch {
    return false; // no --allow-env: no debug output, and no prompt either
  }
}

/** The signals that stop a server cleanly. */
export const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * An `AbortSignal` that aborts on the first SIGINT or SIGTERM, so a server can stop accepting
 * and drain. A second signal exits at once with code 1, for a drain that takes too long.
 * Dispose of it to remove the listeners.
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
  const onSignal = () => {
    if (controller.signal.aborted) Deno.exit(EXIT_RUNTIME);
    controller.abort();
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, onSignal);
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const signal of STOP_SIGNALS) Deno.removeSignalListener(signal, onSignal);
    },
  };
}

/** Writes a whole line to stdout without `console.log`'s formatting of its arguments. */
export function printLine(line: string): void {
  writeAll(Deno.stdout, line + "\n");
}

/** Writes a whole line to stderr. */
export function printError(line: string): void {
  writeAll(Deno.stderr, line + "\n");
}

const encoder = new TextEncoder();

function writeAll(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += stream.writeSync(bytes.subarray(offset));
    } catch (error) {
      // A closed pipe (`| head`) is the reader's choice, not our failure.
      if (error instanceof Deno.errors.BrokenPipe) return;
      throw error;
    }
  }
}
