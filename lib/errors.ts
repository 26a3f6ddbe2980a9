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
  /** A usage error with the one line the user sees, e.g. `Unknown flag "--prot"`. */
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
 * if (line !== "Connection refused (is the server running?)") throw new Error(line);
 * ```
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = firstLine(error.message).replace(/ \(os error \d+\)$/, "") || error.name;
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return message.includes("--allow-") ? message : `Permission denied: ${message}`;
  }
  const hint = error instanceof Deno.errors.AddrInUse
    ? " (is another server running there?)"
    : error instanceof Deno.errors.ConnectionRefused
    ? " (is the server running?)"
    : "";
  return message + hint;
}

/**
 * Puts the address in front of a connect or listen failure, whose OS message does not name
 * it (`Connection refused (os error 111)`), and returns the same error.
 *
 * @example
 * ```ts
 * import { describeError, withAddress } from "./errors.ts";
 * const error = withAddress(new Deno.errors.ConnectionRefused("Connection refused"), "[::1]:80");
 * if (!describeError(error).startsWith("[::1]:80: Connection refused")) throw error;
 * ```
 */
export function withAddress(error: unknown, address: string): unknown {
  const named = error instanceof Error && error.message.includes(address);
  if (error instanceof Error && !named && !(error instanceof Deno.errors.NotCapable)) {
    error.message = `${address}: ${error.message}`;
  }
  return error;
}

function firstLine(text: string): string {
  const end = text.indexOf("\n");
  return end === -1 ? text : text.slice(0, end);
}

/**
 * Whether `error` means the peer went away (reset, broken pipe, closed resource) or broke the
 * connection's TLS (a failed handshake or record: `InvalidData`): the end of one connection,
 * never of a server.
 *
 * @example
 * ```ts
 * import { isPeerGone } from "./errors.ts";
 * if (!isPeerGone(new Deno.errors.ConnectionReset("reset"))) throw new Error("not peer gone");
 * ```
 */
export function isPeerGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.InvalidData;
}

/**
 * A `close()` for `resource` that may be called any number of times: a timer and a `finally`
 * may both want to close the same connection, and a second `close()` would throw.
 */
export function closeOnce(resource: { close(): void }): () => void {
  let closed = false;
  return () => {
    if (closed) return;
    closed = true;
    resource.close();
  };
}
