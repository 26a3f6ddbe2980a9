/**
 * How a program reports failure: a usage error exits 2, a runtime error exits 1, and
 * either is one line on stderr, never a stack trace.
 * @module
 */

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code for a runtime failure (port in use, refused connection, missing permission). */
export const EXIT_RUNTIME = 1;
/** Exit code for bad command-line input. */
export const EXIT_USAGE = 2;

/**
 * A bad flag or argument. `runMain()` prints it with a pointer to `--help` and exits 2.
 *
 * @example Throwing a usage error
 * ```ts
 * import { UsageError } from "./errors.ts";
 * const error = new UsageError('Unknown flag "--prot"');
 * if (error.name !== "UsageError") throw new Error("unexpected name");
 * ```
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Turns any thrown value into the one line a user sees. Deno's own error messages already
 * name the address or the permission; this adds what the user can do about a few of them.
 *
 * @example Describing a refused connection
 * ```ts
 * import { describeError } from "./errors.ts";
 * const line = describeError(new Deno.errors.ConnectionRefused("Connection refused (os error 111)"));
 * if (!line.startsWith("Connection refused")) throw new Error(line);
 * ```
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = firstLine(error.message);
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return message.includes("--allow-") ? message : `Permission denied: ${message}`;
  }
  if (error instanceof Deno.errors.AddrInUse) {
    return `Address already in use: ${message} (is another server running on that port?)`;
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `Connection refused: ${message} (is the server running?)`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `Address not available: ${message}`;
  }
  return message || error.name;
}

function firstLine(text: string): string {
  const end = text.indexOf("\n");
  return end === -1 ? text : text.slice(0, end);
}
