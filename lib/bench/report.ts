/**
 * A benchmark result for people: aligned `name  value` lines for stdout, and the one stderr
 * line that says why a run failed, naming the server's address.
 * @module
 */
import { BENCH_ERROR_KINDS, type BenchErrors, type BenchResult } from "./result.ts";

/**
 * The result as aligned `name  value` lines.
 *
 * @example
 * ```ts
 * import { formatResult } from "./report.ts";
 * import type { BenchResult } from "./result.ts";
 * const result: BenchResult = {
 *   mode: "pingpong", target: "127.0.0.1:10000", connections: 2, connectionsOpened: 2,
 *   connectionsHeld: 2, connectMs: 3, size: 64, window: null, durationMs: 1000, warmupMs: 0,
 *   messages: 2000, bytes: 128000, messagesPerSecond: 2000, megabytesPerSecond: 0.128,
 *   latencyMs: { count: 2000, mean: 1, p50: 1, p90: 1.2, p99: 1.5, p999: 2, max: 3 },
 *   fairness: { connections: 2, jain: 1, slowestToMedian: 1, min: 1000, median: 1000, max: 1000 },
 *   clientCpuPercent: 50, firstError: null,
 *   errors: { total: 0, mismatch: 0, reset: 0, refused: 0, eof: 0, timeout: 0, other: 0 },
 * };
 * const lines = formatResult(result);
 * if (!lines.includes("latency ms  p50 1.000  p90 1.200  p99 1.500  p99.9 2.000  max 3.000")) {
 *   throw new Error(lines.join("\n"));
 * }
 * ```
 */
export function formatResult(result: BenchResult): string[] {
  const number = (value: number, digits = 0) =>
    value.toLocaleString("en-US", { maximumFractionDigits: digits });
  const lines = [
    ["mode", result.mode],
    ["target", result.target],
    [
      "connections",
      `${result.connectionsHeld} held of ${result.connections} ` +
      `(${result.connectionsOpened} opened in ${(result.connectMs / 1000).toFixed(2)} s)`,
    ],
    [
      "size",
      `${number(result.size)} B${result.window ? `, window ${number(result.window)} B` : ""}`,
    ],
    [
      result.mode === "hold" ? "idle" : "duration",
      `${(result.durationMs / 1000).toFixed(2)} s` +
      (result.warmupMs ? ` after ${(result.warmupMs / 1000).toFixed(2)} s warmup` : ""),
    ],
    ["messages", `${number(result.messages)} (${number(result.messagesPerSecond)}/s)`],
    ["throughput", `${number(result.megabytesPerSecond, 2)} MB/s`],
    ["client CPU", clientCpu(result.clientCpuPercent)],
  ];
  const l = result.latencyMs;
  if (l) {
    const ms = (value: number) => value.toFixed(3);
    lines.push([
      "latency ms",
      `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}`,
    ]);
  }
  const f = result.fairness;
  if (f) {
    const [unit, scale, digits] = result.mode === "bulk"
      ? ["MB echoed", 1e6, 2]
      : ["round trips", 1, 0];
    const count = (value: number) => number(value / scale, digits);
    lines.push([
      "fairness",
      `slowest/median ${f.slowestToMedian.toFixed(2)}, Jain ${f.jain.toFixed(3)} ` +
      `(${unit} per connection: min ${count(f.min)}, median ${count(f.median)}, ` +
      `max ${count(f.max)})`,
    ]);
  }
  const e = result.errors;
  lines.push(["errors", e.total === 0 ? "0" : `${e.total} (${errorKinds(e)})`]);
  if (result.firstError) lines.push(["first error", result.firstError]);
  return lines.map(([name, value]) => `${name.padEnd(12)}${value}`);
}

/** The counts of each kind of error that happened: `reset 2, refused 1`. */
function errorKinds(errors: BenchErrors): string {
  return BENCH_ERROR_KINDS.filter((kind) => errors[kind] > 0)
    .map((kind) => `${kind} ${errors[kind]}`)
    .join(", ");
}

/** Past this share of one core the client queues its own work and can no longer serve every
 * connection in turn (README, "Benchmarks": check tail figures with the C client then). */
const CLIENT_BOUND_PERCENT = 90;

function clientCpu(percent: number | null): string {
  if (percent === null) return "unknown";
  const shown = `${Math.round(percent)} %`;
  return percent < CLIENT_BOUND_PERCENT
    ? shown
    : `${shown} (near a full core: the client may be what limits these figures)`;
}

/**
 * The one line to print on stderr when a run failed, or `null` when it did not: it names the
 * server's address, how many connections failed and how, and the first error.
 *
 * @example Every connection refused
 * ```ts
 * import { describeFailure } from "./report.ts";
 * const line = describeFailure({
 *   target: "127.0.0.1:9",
 *   connections: 2,
 *   connectionsOpened: 0,
 *   errors: { total: 2, mismatch: 0, reset: 0, refused: 2, eof: 0, timeout: 0, other: 0 },
 *   firstError: "127.0.0.1:9: Connection refused (is the server running?)",
 * });
 * const expected = "127.0.0.1:9: 2 of 2 connections failed (refused 2): " +
 *   "Connection refused (is the server running?)";
 * if (line !== expected) throw new Error(line ?? "null");
 * ```
 */
export function describeFailure(
  result: Pick<
    BenchResult,
    "target" | "connections" | "connectionsOpened" | "errors" | "firstError"
  >,
): string | null {
  const { target, errors } = result;
  if (errors.total === 0) {
    return result.connectionsOpened === 0 ? `${target}: no connection was opened` : null;
  }
  const first = result.firstError?.startsWith(`${target}: `)
    ? result.firstError.slice(target.length + 2)
    : result.firstError;
  const failed = errors.total === 1 && result.connections === 1
    ? "the connection failed"
    : `${errors.total} of ${result.connections} connections failed`;
  return `${target}: ${failed} (${errorKinds(errors)})${first ? `: ${first}` : ""}`;
}
