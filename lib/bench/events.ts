/**
 * The load client's `--json` lines, which the orchestrator reads from its pipe: one line as
 * each phase starts, then one with the result, all in the shared schema of
 * `lib/json_event.ts` (`event` and `time` first, the server's address as `peer`, numbers
 * rounded). {@linkcode formatBenchEvent} writes them and {@linkcode parseBenchEvent} turns them
 * back into the same types, checking every field, so a change on one side fails loudly on the
 * other.
 * @module
 */
import { formatJsonEvent } from "../json_event.ts";
import {
  BENCH_ERROR_KINDS,
  BENCH_MODES,
  type BenchErrors,
  type BenchMode,
  type BenchPhase,
  type BenchResult,
} from "./result.ts";

/** A phase started, with this many connections open. */
export interface BenchPhaseEvent {
  /** The phase. */
  event: Exclude<BenchPhase, "connecting">;
  /** When, in ISO 8601. */
  time: string;
  /** Connections open. */
  connections: number;
}

/** The run ended with this result. */
export interface BenchResultEvent {
  /** Always `"result"`. */
  event: "result";
  /** When, in ISO 8601. */
  time: string;
  /** What was measured. */
  result: BenchResult;
}

/** One `--json` line of the load client. */
export type BenchEvent = BenchPhaseEvent | BenchResultEvent;

const PHASES: readonly string[] = ["warmup", "measuring", "holding", "draining"];

/**
 * Formats one event as a `--json` line. In a result line the server's address is `peer`, as in
 * every other program's lines; the result's other fields follow under their own names.
 *
 * @example A phase line
 * ```ts
 * import { formatBenchEvent } from "./events.ts";
 * const line = formatBenchEvent(
 *   { event: "holding", connections: 5 },
 *   { time: new Date(0) },
 * );
 * if (line !== '{"event":"holding","time":"1970-01-01T00:00:00.000Z","connections":5}') {
 *   throw new Error(line);
 * }
 * ```
 */
export function formatBenchEvent(
  event: Omit<BenchPhaseEvent, "time"> | Omit<BenchResultEvent, "time">,
  options: { time?: Date } = {},
): string {
  if (event.event !== "result") {
    return formatJsonEvent(event.event, { connections: event.connections }, options);
  }
  const { target, ...rest } = event.result;
  return formatJsonEvent("result", { peer: target, ...rest }, options);
}

/**
 * Parses a line that {@linkcode formatBenchEvent} wrote. Throws a `SyntaxError` naming the
 * field for anything else: a line that is not JSON, an unknown event, a missing or mistyped
 * field.
 *
 * @example The round trip of a result
 * ```ts
 * import { formatBenchEvent, parseBenchEvent } from "./events.ts";
 * import type { BenchResult } from "./result.ts";
 * const result: BenchResult = {
 *   mode: "pingpong", target: "127.0.0.1:10000", connections: 1, connectionsOpened: 1,
 *   connectionsHeld: 1, connectMs: 1, size: 64, window: null, durationMs: 1000, warmupMs: 0,
 *   messages: 10, bytes: 640, messagesPerSecond: 10, megabytesPerSecond: 0.00064,
 *   latencyMs: null, fairness: null, clientCpuPercent: null, firstError: null,
 *   errors: { total: 0, mismatch: 0, reset: 0, refused: 0, eof: 0, timeout: 0, other: 0 },
 * };
 * const event = parseBenchEvent(formatBenchEvent({ event: "result", result }));
 * if (event.event !== "result" || event.result.target !== "127.0.0.1:10000") {
 *   throw new Error(JSON.stringify(event));
 * }
 * ```
 */
export function parseBenchEvent(line: string): BenchEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SyntaxError(`Cannot parse bench event "${line.slice(0, 80)}": not JSON`);
  }
  const fields = new Fields(value, "bench event");
  const event = fields.string("event");
  const time = fields.string("time");
  if (PHASES.includes(event)) {
    return {
      event: event as BenchPhaseEvent["event"],
      time,
      connections: fields.number("connections"),
    };
  }
  if (event !== "result") {
    throw new SyntaxError(`Cannot parse bench event: unknown event "${event}"`);
  }
  const mode = fields.string("mode");
  if (!BENCH_MODES.includes(mode as BenchMode)) {
    throw new SyntaxError(`Cannot parse bench event: unknown mode "${mode}"`);
  }
  const latency = fields.objectOrNull("latencyMs");
  const fairness = fields.objectOrNull("fairness");
  const errors = fields.object("errors");
  return {
    event,
    time,
    result: {
      mode: mode as BenchMode,
      target: fields.string("peer"),
      connections: fields.number("connections"),
      connectionsOpened: fields.number("connectionsOpened"),
      connectionsHeld: fields.number("connectionsHeld"),
      connectMs: fields.number("connectMs"),
      size: fields.number("size"),
      window: fields.numberOrNull("window"),
      durationMs: fields.number("durationMs"),
      warmupMs: fields.number("warmupMs"),
      messages: fields.number("messages"),
      bytes: fields.number("bytes"),
      messagesPerSecond: fields.number("messagesPerSecond"),
      megabytesPerSecond: fields.number("megabytesPerSecond"),
      latencyMs: latency && {
        count: latency.number("count"),
        mean: latency.number("mean"),
        p50: latency.number("p50"),
        p90: latency.number("p90"),
        p99: latency.number("p99"),
        p999: latency.number("p999"),
        max: latency.number("max"),
      },
      fairness: fairness && {
        connections: fairness.number("connections"),
        jain: fairness.number("jain"),
        slowestToMedian: fairness.number("slowestToMedian"),
        min: fairness.number("min"),
        median: fairness.number("median"),
        max: fairness.number("max"),
      },
      clientCpuPercent: fields.numberOrNull("clientCpuPercent"),
      errors: Object.fromEntries(
        ["total", ...BENCH_ERROR_KINDS].map((kind) => [kind, errors.number(kind)]),
      ) as unknown as BenchErrors,
      firstError: fields.stringOrNull("firstError"),
    },
  };
}

/** Typed reads of one JSON object's fields; a missing or mistyped one is a `SyntaxError`. */
class Fields {
  readonly #object: Record<string, unknown>;
  readonly #where: string;

  constructor(value: unknown, where: string) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new SyntaxError(`Cannot parse ${where}: not an object`);
    }
    this.#object = value as Record<string, unknown>;
    this.#where = where;
  }

  #get(name: string, type: string, nullable: boolean): unknown {
    const value = this.#object[name];
    const actual: string = typeof value;
    if (value === null ? nullable : actual === type) return value;
    throw new SyntaxError(
      `Cannot parse ${this.#where}: field "${name}" must be ${
        type === "object" ? "an" : "a"
      } ${type}${nullable ? " or null" : ""}`,
    );
  }
  string(name: string): string {
    return this.#get(name, "string", false) as string;
  }
  stringOrNull(name: string): string | null {
    return this.#get(name, "string", true) as string | null;
  }
  number(name: string): number {
    return this.#get(name, "number", false) as number;
  }
  numberOrNull(name: string): number | null {
    return this.#get(name, "number", true) as number | null;
  }
  object(name: string): Fields {
    return new Fields(this.#get(name, "object", false), `${this.#where} field "${name}"`);
  }
  objectOrNull(name: string): Fields | null {
    const value = this.#get(name, "object", true);
    return value === null ? null : new Fields(value, `${this.#where} field "${name}"`);
  }
}
