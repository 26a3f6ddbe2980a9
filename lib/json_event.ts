/**
 * One JSON schema for every `--json` line of every program: an object with `event` and `time`
 * first, then the same names for the same things — `peer` (the remote address), `local`,
 * `bytes`, and the payload as JSON text in `data` (plus `data_base64` when it is not valid
 * UTF-8) — then the program's own fields. Characters that could reorder or hide text on a
 * terminal (bidi overrides, C1 controls, line separators) are written as `\uXXXX` escapes, which
 * any JSON decoder turns back into the same text; fractions are rounded to 3 decimals.
 * @module
 */
import { encodeBase64 as encodeBase64Untyped } from "@std/encoding/base64";
import { formatAddr } from "./address.ts";

const encodeBase64 = encodeBase64Untyped as (data: Uint8Array) => string;

/** The fields every program spells the same way; any other field may follow. */
export interface JsonEventFields {
  /** The remote address: a `Deno.Addr`, or text already formatted. */
  peer?: Deno.Addr | string;
  /** The local address. */
  local?: Deno.Addr | string;
  /** A byte count (of the payload, or of what the event is about). */
  bytes?: number;
  /** The payload; written as text in `data`, and as `data_base64` when not valid UTF-8. */
  data?: Uint8Array;
  /** The program's own fields. */
  [field: string]: unknown;
}

/** Options for {@linkcode formatJsonEvent}. */
export interface JsonEventOptions {
  /** When the event happened. @default {new Date()} */
  time?: Date;
  /** Put at most this many payload bytes in `data`; `data_omitted` says how many were left out.
   * @default {Infinity} */
  maxDataBytes?: number;
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });
const lenientDecoder = new TextDecoder("utf-8");

/**
 * Formats one event as a line of JSON in the shared schema.
 *
 * @example A datagram with a terminal escape in it
 * ```ts
 * import { formatJsonEvent } from "./json_event.ts";
 * const line = formatJsonEvent("datagram", {
 *   peer: { transport: "udp", hostname: "::1", port: 5005 },
 *   data: new TextEncoder().encode("hi\x1b[2J\u202e"),
 * }, { time: new Date(0) });
 * const expected = '{"event":"datagram","time":"1970-01-01T00:00:00.000Z","peer":"[::1]:5005",' +
 *   '"bytes":9,"data":"hi\\u001b[2J\\u202e"}';
 * if (line !== expected) throw new Error(line);
 * if (JSON.parse(line).data !== "hi\x1b[2J\u202e") throw new Error("not the same text");
 * ```
 */
export function formatJsonEvent(
  event: string,
  fields: JsonEventFields = {},
  options: JsonEventOptions = {},
): string {
  const { peer, local, bytes, data, ...rest } = fields;
  const object: Record<string, unknown> = {
    event,
    time: (options.time ?? new Date()).toISOString(),
  };
  if (peer !== undefined) object.peer = typeof peer === "string" ? peer : formatAddr(peer);
  if (local !== undefined) object.local = typeof local === "string" ? local : formatAddr(local);
  if (bytes !== undefined || data !== undefined) object.bytes = bytes ?? data!.length;
  if (data !== undefined) Object.assign(object, payloadFields(data, options.maxDataBytes));
  Object.assign(object, rest);
  return toJsonText(object);
}

/**
 * `JSON.stringify` for terminal-bound lines: numbers with a fraction rounded to 3 decimals,
 * `bigint` as a number, and every character that could reorder or hide text escaped.
 *
 * @example
 * ```ts
 * import { toJsonText } from "./json_event.ts";
 * if (toJsonText({ ms: 43.18036550673375 }) !== '{"ms":43.18}') throw new Error();
 * ```
 */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value, roundNumbers).replace(UNSAFE_IN_JSON, escapeCodeUnit);
}

/** Rounds `value` to `digits` decimals (3 by default), for figures a person reads. */
export function roundTo(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function payloadFields(data: Uint8Array, maxDataBytes = Infinity): Record<string, unknown> {
  const shown = data.length > maxDataBytes ? data.subarray(0, maxDataBytes) : data;
  const fields: Record<string, unknown> = {};
  try {
    fields.data = fatalDecoder.decode(shown);
  } catch {
    // Not UTF-8 (or cut in the middle of a character): the text for people, the exact bytes
    // for programs.
    fields.data = lenientDecoder.decode(shown);
    fields.data_base64 = encodeBase64(shown);
  }
  if (shown.length < data.length) fields.data_omitted = data.length - shown.length;
  return fields;
}

function roundNumbers(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "number" && !Number.isInteger(value) && Number.isFinite(value)) {
    return roundTo(value);
  }
  return value;
}

// JSON.stringify already escapes U+0000–U+001F; these it leaves raw: DEL, C1 controls, the
// bidi marks and overrides (CVE-2021-42574), line and paragraph separators, and the BOM.
const UNSAFE_IN_JSON =
  /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

function escapeCodeUnit(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}
