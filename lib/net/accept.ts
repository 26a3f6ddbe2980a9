/**
 * The one accept loop every server uses. Only closing the listener ends it:
 *
 * - an error about one connection — it reset or vanished while it waited in the backlog
 *   (ENOTCONN, ECONNABORTED, ECONNRESET), a network error Linux passes on from the new socket
 *   (EPROTO, EHOSTUNREACH, …, see accept(2)), a firewall's EPERM, a Unix peer address Deno cannot
 *   decode (`InvalidData`) — skips that connection;
 * - running out of something (EMFILE, ENFILE, ENOBUFS, ENOMEM), or anything not known, backs off
 *   (5 ms doubling to 1 s, as Go's `net/http` does) and accepts again by itself;
 * - reports are limited to one a second per kind, with a count of what was not reported.
 *
 * A connection limit belongs before the accept (`hasRoom`), not after it: a TLS connection that
 * Deno has accepted keeps its socket until the peer says hello or hangs up, whatever the server
 * does (lib/net/handshake.ts), so accept-and-close does not bound the descriptors silent TLS
 * clients hold; leaving them in the kernel's backlog does.
 * @module
 */
import { describeError } from "../errors.ts";

/** What went wrong with an accept: one connection, or the server's resources. */
export type AcceptErrorKind = "connection" | "exhausted";

/** One report of accept errors, at most one a second per kind. */
export interface AcceptErrorReport {
  /** The error this report is about (the latest one). */
  error: unknown;
  /** `connection`: that connection was skipped; `exhausted`: accepting pauses and resumes. */
  kind: AcceptErrorKind;
  /** Errors of this kind since the previous report, this one included. */
  count: number;
  /** For `exhausted`: how long accepting pauses now, in milliseconds. */
  retryInMs?: number;
}

/** Options for {@linkcode acceptLoop}. */
export interface AcceptLoopOptions {
  /** Takes each new connection; must not wait on it, so the next accept is not held up. */
  onConnection: (conn: Deno.Conn) => void;
  /** Hears about accept errors, at most once a second per kind. */
  onError?: (report: AcceptErrorReport) => void;
  /** Ends the loop (and any back-off pause) when aborted; closing the listener also ends it. */
  signal?: AbortSignal;
  /**
   * Whether the server has room for another connection. While it answers false the loop does
   * not accept (new clients wait in the kernel's backlog, costing no descriptor) and asks again
   * every {@linkcode ROOM_POLL_MS} ms; only `signal` ends that wait, so a server that uses it
   * stops the loop with `signal`. @default {() => true}
   */
  hasRoom?: () => boolean;
}

/** The first pause after running out of descriptors or memory; it doubles up to the maximum. */
export const BACKOFF_MIN_MS = 5;
/** The longest pause between accepts while resources are exhausted. */
export const BACKOFF_MAX_MS = 1000;
const REPORT_INTERVAL_MS = 1000;
/** How often a full server asks `hasRoom` again. */
export const ROOM_POLL_MS = 20;

// errno values: resources the whole process has run out of.
const EXHAUSTED = new Set([12, /* ENOMEM */ 23, /* ENFILE */ 24, /* EMFILE */ 105 /* ENOBUFS */]);
// Errors about the one connection being accepted (accept(2): "Linux accept() passes
// already-pending network errors on the new socket as an error code from accept()").
const CONNECTION = new Set([
  1, /* EPERM: a firewall refused it */
  4, /* EINTR */
  11, /* EAGAIN */
  71, /* EPROTO */
  92, /* ENOPROTOOPT */
  95, /* EOPNOTSUPP */
  100, /* ENETDOWN */
  101, /* ENETUNREACH */
  103, /* ECONNABORTED */
  104, /* ECONNRESET */
  107, /* ENOTCONN */
  110, /* ETIMEDOUT */
  112, /* EHOSTDOWN */
  113, /* EHOSTUNREACH */
  64, /* ENONET */
]);

/**
 * Sorts an accept error: `closed` when the listener was closed (the loop ends), `connection`
 * when only that connection is lost, `exhausted` otherwise (pause, then accept again).
 *
 * @example
 * ```ts
 * import { classifyAcceptError } from "./accept.ts";
 * const kind = classifyAcceptError(new Error("Too many open files (os error 24)"));
 * if (kind !== "exhausted") throw new Error(kind);
 * if (classifyAcceptError(new Deno.errors.NotConnected("x")) !== "connection") throw new Error();
 * ```
 */
export function classifyAcceptError(error: unknown): AcceptErrorKind | "closed" {
  if (error instanceof Deno.errors.BadResource) return "closed";
  const errno = osErrno(error);
  if (errno !== undefined && CONNECTION.has(errno)) return "connection";
  if (errno !== undefined && EXHAUSTED.has(errno)) return "exhausted";
  if (
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.InvalidData ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.TimedOut || error instanceof Deno.errors.WouldBlock
  ) {
    return "connection";
  }
  // Not known: treat it like a shortage, so that the server pauses instead of spinning.
  return "exhausted";
}

/**
 * Whether `error` says the process ran out of something (EMFILE, ENFILE, ENOBUFS, ENOMEM): for
 * anything that opens sockets, a reason to pause and to report once, not for every attempt.
 *
 * @example
 * ```ts
 * import { isExhaustion } from "./accept.ts";
 * if (!isExhaustion(new Error("Too many open files (os error 24)"))) throw new Error("EMFILE");
 * if (isExhaustion(new Deno.errors.ConnectionRefused("refused (os error 111)"))) throw new Error();
 * ```
 */
export function isExhaustion(error: unknown): boolean {
  return EXHAUSTED.has(osErrno(error) ?? -1);
}

function osErrno(error: unknown): number | undefined {
  const match = error instanceof Error ? /\(os error (\d+)\)/.exec(error.message) : null;
  return match ? Number(match[1]) : undefined;
}

/**
 * Accepts connections from `listener` and hands each to `onConnection` until the listener is
 * closed or `signal` aborts; never rejects.
 *
 * @example Serving until the listener closes
 * ```ts
 * import { acceptLoop } from "./accept.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted: Deno.Conn[] = [];
 * const loop = acceptLoop(listener, { onConnection: (conn) => accepted.push(conn) });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * while (accepted.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
 * listener.close();
 * await loop;
 * accepted[0].close();
 * client.close();
 * ```
 *
 * @example A limit that leaves clients in the backlog while the server is full
 * ```ts
 * import { acceptLoop } from "./accept.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const open = new Set<Deno.Conn>();
 * const accepted = () => open.size;
 * const stop = new AbortController();
 * const loop = acceptLoop(listener, {
 *   onConnection: (conn) => open.add(conn),
 *   hasRoom: () => open.size < 1,
 *   signal: stop.signal,
 * });
 * const port = listener.addr.port;
 * const first = await Deno.connect({ hostname: "127.0.0.1", port });
 * const second = await Deno.connect({ hostname: "127.0.0.1", port }); // waits in the backlog
 * while (accepted() === 0) await new Promise((resolve) => setTimeout(resolve, 1));
 * await new Promise((resolve) => setTimeout(resolve, 50));
 * if (accepted() !== 1) throw new Error(`accepted ${accepted()} past the limit`);
 * for (const conn of open) conn.close();
 * open.clear(); // room again: the second is accepted
 * while (accepted() === 0) await new Promise((resolve) => setTimeout(resolve, 1));
 * stop.abort();
 * listener.close();
 * await loop;
 * for (const conn of open) conn.close();
 * first.close();
 * second.close();
 * ```
 */
export async function acceptLoop(
  listener: { accept(): Promise<Deno.Conn> },
  options: AcceptLoopOptions,
): Promise<void> {
  const { onConnection, signal, hasRoom } = options;
  const reporter = new RateLimitedReporter(options.onError);
  let backoffMs = 0;
  while (!signal?.aborted) {
    if (hasRoom !== undefined && !hasRoom()) {
      await pause(ROOM_POLL_MS, signal);
      continue;
    }
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      const kind = classifyAcceptError(error);
      if (kind === "closed") return;
      if (kind === "connection") {
        reporter.report({ error, kind, count: 0 });
        continue;
      }
      backoffMs = backoffMs === 0 ? BACKOFF_MIN_MS : Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      reporter.report({ error, kind, count: 0, retryInMs: backoffMs });
      await pause(backoffMs, signal);
      continue;
    }
    backoffMs = 0;
    onConnection(conn);
  }
}

/** Passes on at most one report a second per kind, counting the ones in between. */
class RateLimitedReporter {
  #onError: ((report: AcceptErrorReport) => void) | undefined;
  #last = new Map<AcceptErrorKind, number>();
  #unreported = new Map<AcceptErrorKind, number>();

  constructor(onError?: (report: AcceptErrorReport) => void) {
    this.#onError = onError;
  }

  report(report: AcceptErrorReport): void {
    const count = (this.#unreported.get(report.kind) ?? 0) + 1;
    const now = performance.now();
    if (now - (this.#last.get(report.kind) ?? -Infinity) < REPORT_INTERVAL_MS) {
      this.#unreported.set(report.kind, count);
      return;
    }
    this.#last.set(report.kind, now);
    this.#unreported.set(report.kind, 0);
    this.#onError?.({ ...report, count });
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * The line a server prints for an {@linkcode AcceptErrorReport}, e.g.
 * `accept failed: Too many open files (os error 24); pausing 40 ms (12 times since the last report)`.
 *
 * @example
 * ```ts
 * import { describeAcceptError } from "./accept.ts";
 * const line = describeAcceptError({
 *   error: new Deno.errors.NotConnected("Transport endpoint is not connected (os error 107)"),
 *   kind: "connection",
 *   count: 1,
 * });
 * if (line !== "skipped a connection: Transport endpoint is not connected") throw new Error(line);
 * ```
 */
export function describeAcceptError(report: AcceptErrorReport): string {
  const what = report.kind === "connection"
    ? `skipped a connection: ${describeError(report.error)}`
    : `accept failed: ${describeError(report.error)}; pausing ${report.retryInMs} ms`;
  return report.count > 1 ? `${what} (${report.count} times since the last report)` : what;
}
