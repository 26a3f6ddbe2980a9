/**
 * Received bytes made safe for a terminal: valid UTF-8 text stays as it is, while control
 * characters, invalid bytes and bidirectional overrides become visible escapes, so a peer
 * cannot move the cursor, change colours or hide text in what a program prints.
 * @module
 */
import { concat } from "@std/bytes/concat";

const NAMED: Record<number, string> = {
  0x00: "\\0",
  0x09: "\\t",
  0x0a: "\\n",
  0x0d: "\\r",
  0x5c: "\\\\",
};

/** Options for {@linkcode escapeBytes}. */
export interface EscapeOptions {
  /** Stop after this many input bytes and say how many were left out. @default {Infinity} */
  maxBytes?: number;
  /** Print `\n` and `\t` as they are, for text shown as lines rather than one line. @default {false} */
  keepLineBreaks?: boolean;
}

/**
 * Escapes bytes for printing: `\n`, `\r`, `\t`, `\0` and `\\` by name, other control
 * characters and invalid UTF-8 bytes as `\xNN`, C1 controls and bidi overrides as `\u{NNNN}`.
 *
 * @example Escaping a terminal escape sequence
 * ```ts
 * import { escapeBytes } from "./escape.ts";
 * const text = escapeBytes(new TextEncoder().encode("\x1b[31mred\n"));
 * if (text !== "\\x1b[31mred\\n") throw new Error(text);
 * ```
 */
export function escapeBytes(bytes: Uint8Array, options: EscapeOptions = {}): string {
  const end = Math.min(bytes.length, options.maxBytes ?? Infinity);
  let out = "";
  let i = 0;
  while (i < end) {
    const byte = bytes[i];
    if (byte >= 0x20 && byte < 0x7f) {
      out += byte === 0x5c ? "\\\\" : String.fromCharCode(byte);
      i++;
    } else if (byte < 0x80) {
      const keep = options.keepLineBreaks && (byte === 0x0a || byte === 0x09);
      out += keep ? String.fromCharCode(byte) : NAMED[byte] ?? `\\x${hex2(byte)}`;
      i++;
    } else {
      const [codePoint, length] = decodeUtf8At(bytes, i, end);
      if (length === 0) {
        out += `\\x${hex2(byte)}`;
        i++;
      } else {
        out += isUnsafeCodePoint(codePoint)
          ? `\\u{${codePoint.toString(16).padStart(4, "0")}}`
          : String.fromCodePoint(codePoint);
        i += length;
      }
    }
  }
  if (end < bytes.length) out += `…(+${bytes.length - end} bytes)`;
  return out;
}

/**
 * Escapes a string that came from the network (already decoded), by the same rules.
 *
 * @example
 * ```ts
 * import { escapeText } from "./escape.ts";
 * if (escapeText("a\tb") !== "a\\tb") throw new Error("tab not escaped");
 * ```
 */
export function escapeText(text: string): string {
  return escapeBytes(new TextEncoder().encode(text));
}

function hex2(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

// C1 controls, and the characters that reorder text on screen (Trojan Source, CVE-2021-42574).
function isUnsafeCodePoint(codePoint: number): boolean {
  return (codePoint >= 0x80 && codePoint <= 0x9f) ||
    (codePoint >= 0x202a && codePoint <= 0x202e) ||
    (codePoint >= 0x2066 && codePoint <= 0x2069) ||
    codePoint === 0x200e || codePoint === 0x200f || codePoint === 0x061c ||
    codePoint === 0x2028 || codePoint === 0x2029 || codePoint === 0xfeff;
}

/** Decodes one UTF-8 sequence at `i`; length 0 means the byte there starts no valid one. */
function decodeUtf8At(bytes: Uint8Array, i: number, end: number): [number, number] {
  const lead = bytes[i];
  let length: number, min: number, codePoint: number;
  if (lead >= 0xc2 && lead <= 0xdf) [length, min, codePoint] = [2, 0x80, lead & 0x1f];
  else if (lead >= 0xe0 && lead <= 0xef) [length, min, codePoint] = [3, 0x800, lead & 0x0f];
  else if (lead >= 0xf0 && lead <= 0xf4) [length, min, codePoint] = [4, 0x10000, lead & 0x07];
  else return [0, 0];
  if (i + length > end) return [0, 0];
  for (let k = 1; k < length; k++) {
    const next = bytes[i + k];
    if ((next & 0xc0) !== 0x80) return [0, 0];
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  const surrogate = codePoint >= 0xd800 && codePoint <= 0xdfff;
  if (codePoint < min || codePoint > 0x10ffff || surrogate) return [0, 0];
  return [codePoint, length];
}

/**
 * Escapes a stream of bytes chunk by chunk, so memory stays one chunk whatever arrives: a UTF-8
 * character cut between two chunks is held back until its end arrives, and comes out whole.
 *
 * @example A character split across two reads
 * ```ts
 * import { StreamEscaper } from "./escape.ts";
 * const escaper = new StreamEscaper();
 * const bytes = new TextEncoder().encode("é\x1b");
 * const text = escaper.push(bytes.subarray(0, 1)) + escaper.push(bytes.subarray(1)) + escaper.flush();
 * if (text !== "é\\x1b") throw new Error(text);
 * ```
 */
export class StreamEscaper {
  #held = new Uint8Array(0);

  /** Returns the escaped text of `chunk` (and of what was held back before it). */
  push(chunk: Uint8Array, keepLineBreaks = true): string {
    const bytes = this.#held.length === 0 ? chunk : concat([this.#held, chunk]) as Uint8Array;
    const end = completeUtf8Length(bytes);
    this.#held = bytes.slice(end);
    return escapeBytes(bytes.subarray(0, end), { keepLineBreaks });
  }

  /** Returns what was held back, escaped (an incomplete character at the end of the stream). */
  flush(): string {
    const text = escapeBytes(this.#held);
    this.#held = new Uint8Array(0);
    return text;
  }
}

/** The length of `bytes` without a UTF-8 sequence that starts but does not end in it. */
function completeUtf8Length(bytes: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back];
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const needed = byte < 0xc2 ? 1 : byte <= 0xdf ? 2 : byte <= 0xef ? 3 : byte <= 0xf4 ? 4 : 1;
    return needed > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}
