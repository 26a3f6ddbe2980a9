/**
 * What a benchmark run measured, as one typed value: the engine (`load.ts`) returns it, the
 * load client prints it (`events.ts` puts it on a `--json` line), and the orchestrator reads it
 * back from that line. One type on both sides of the process boundary, so neither side guesses.
 * @module
 */
import type { Fairness } from "./fairness.ts";
import type { LatencySummary } from "./histogram.ts";

/** What the load looks like: ping-pong round trips, a window of bulk bytes, or idle connections. */
export type BenchMode = "pingpong" | "bulk" | "hold";

/**
 * The modes the engine knows, in the order `--help` lists them.
 *
 * @example Checking a mode given on the command line
 * ```ts
 * import { BENCH_MODES, type BenchMode } from "./result.ts";
 * const mode = "bulk";
 * if (!BENCH_MODES.includes(mode as BenchMode)) throw new Error(`unknown mode ${mode}`);
 * ```
 */
export const BENCH_MODES: readonly BenchMode[] = ["pingpong", "bulk", "hold"];

/** What a run is doing: each phase after `connecting` is announced as it starts. */
export type BenchPhase = "connecting" | "warmup" | "measuring" | "holding" | "draining";

/** Error counts by kind; any of them makes the run fail. */
export interface BenchErrors {
  /** All errors. */
  total: number;
  /** Echoed bytes that differ from what was sent, or more bytes than were sent. */
  mismatch: number;
  /** Connections reset or broken by the server (ECONNRESET, EPIPE). */
  reset: number;
  /** Connection attempts refused. */
  refused: number;
  /** Connections the server closed before echoing everything. */
  eof: number;
  /** Connections whose echo made no progress for the timeout. */
  timeout: number;
  /** Anything else (e.g. too many open files). */
  other: number;
}

/** The kinds of {@linkcode BenchErrors}, without the total. */
export type BenchErrorKind = Exclude<keyof BenchErrors, "total">;

/**
 * The kinds of errors, in the order reports list them.
 *
 * @example
 * ```ts
 * import { BENCH_ERROR_KINDS } from "./result.ts";
 * if (BENCH_ERROR_KINDS[0] !== "mismatch") throw new Error("reordered");
 * ```
 */
export const BENCH_ERROR_KINDS: readonly BenchErrorKind[] = [
  "mismatch",
  "reset",
  "refused",
  "eof",
  "timeout",
  "other",
];

/** What one run measured. */
export interface BenchResult {
  /** The mode that ran. */
  mode: BenchMode;
  /** The server's address as printed (`127.0.0.1:10000`, `[::1]:80`, `unix:/path`). */
  target: string;
  /** Connections asked for. */
  connections: number;
  /** Connections that were established. */
  connectionsOpened: number;
  /** Connections that were open, and echoed correctly, until the end of the run. */
  connectionsHeld: number;
  /** Milliseconds it took to open (or fail) every connection. */
  connectMs: number;
  /** Message (or write) size in bytes. */
  size: number;
  /** Bulk window in bytes; `null` in the other modes. */
  window: number | null;
  /** The measured interval in ms (hold: the idle time). */
  durationMs: number;
  /** The unmeasured warmup in ms. */
  warmupMs: number;
  /** Round trips (pingpong, hold) or `size`-byte chunks echoed (bulk) in the interval. */
  messages: number;
  /** Echoed bytes received and verified in the interval (one direction). */
  bytes: number;
  /** `messages` per second (hold: over the final round-trip phase). */
  messagesPerSecond: number;
  /** `bytes` per second, in MB (10^6 bytes). */
  megabytesPerSecond: number;
  /** Round-trip latency; `null` in bulk mode or when no round trip finished. */
  latencyMs: LatencySummary | null;
  /**
   * How evenly the connections progressed in the interval: round trips (pingpong) or echoed
   * bytes (bulk) per opened connection. `null` in hold mode, where each makes one round trip.
   */
  fairness: Fairness | null;
  /**
   * CPU this process used in the interval, in % of one CPU: near 100 means the client, not the
   * server, may be what limits the figures. `null` when it cannot tell.
   */
  clientCpuPercent: number | null;
  /** Error counts. */
  errors: BenchErrors;
  /** The first error's description, for the report. */
  firstError: string | null;
}
