/**
 * Hex dumps of received bytes in the layout of `xxd` (and close to `ncat -x`): an offset, 16
 * bytes as hex pairs grouped two by two, and the printable ASCII beside them, anything else as
 * `.` — so a dump is safe on a terminal whatever the peer sent, and `diff`s against `xxd`.
 *
 *     00000000: 4865 6c6c 6f2c 2057 6f72 6c64 210a 1b5b  Hello, World!..[
 *     00000010: 324a                                     2J
 *
 * {@linkcode hexDump} dumps one buffer; a {@linkcode HexDumper} dumps a stream that arrives in
 * chunks, offsets continuing from chunk to chunk.
 * @module
 */

/** Bytes per dump line, as in `xxd`. */
export const HEX_LINE_BYTES = 16;

/** Options for {@linkcode hexDump}. */
export interface HexDumpOptions {
  /** The offset printed for the first byte (as `xxd -o`). @default {0} */
  offset?: number;
}

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
// 8 groups of 4 hex digits and a space: where the ASCII column starts, even on a short line.
const HEX_COLUMN_WIDTH = (HEX_LINE_BYTES / 2) * 5;

/**
 * Dumps `bytes` as `xxd` does: one line per 16 bytes, each ending in `\n`; the empty string for
 * no bytes.
 *
 * @example The output of `printf 'hi\n' | xxd`
 * ```ts
 * import { hexDump } from "./hexdump.ts";
 * const dump = hexDump(new TextEncoder().encode("hi\n"));
 * if (dump !== "00000000: 6869 0a                                  hi.\n") throw new Error(dump);
 * ```
 */
export function hexDump(bytes: Uint8Array, options: HexDumpOptions = {}): string {
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Cannot dump at offset "${offset}": must be a non-negative integer`);
  }
  let out = "";
  for (let start = 0; start < bytes.length; start += HEX_LINE_BYTES) {
    out += hexLine(bytes.subarray(start, start + HEX_LINE_BYTES), offset + start) + "\n";
  }
  return out;
}

function hexLine(bytes: Uint8Array, offset: number): string {
  let hex = "";
  let text = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    hex += HEX[byte];
    if (i % 2 === 1) hex += " ";
    text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".";
  }
  return `${offset.toString(16).padStart(8, "0")}: ${hex.padEnd(HEX_COLUMN_WIDTH)} ${text}`;
}

/**
 * A hex dump of a stream: {@linkcode HexDumper.push} returns the complete lines a chunk makes and
 * keeps the rest of a line for the next chunk, so the lines are the same however the stream was
 * cut; {@linkcode HexDumper.flush} returns that rest (at the end of the stream, or when a live
 * peer pauses: the next line then starts at the next byte's offset, as with `xxd -o`).
 *
 * @example Two chunks dump as one stream
 * ```ts
 * import { hexDump, HexDumper } from "./hexdump.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
 * const dumper = new HexDumper();
 * const dump = dumper.push(bytes.subarray(0, 10)) + dumper.push(bytes.subarray(10)) +
 *   dumper.flush();
 * if (dump !== hexDump(bytes)) throw new Error(dump);
 * if (dumper.offset !== bytes.length) throw new Error(`offset ${dumper.offset}`);
 * ```
 */
export class HexDumper {
  #offset: number;
  #pending = new Uint8Array(HEX_LINE_BYTES);
  #pendingLength = 0;

  /** Starts the dump at `options.offset` (0 by default). */
  constructor(options: HexDumpOptions = {}) {
    this.#offset = options.offset ?? 0;
    hexDump(new Uint8Array(0), options); // validates the offset
  }

  /** The offset of the next byte pushed: how many bytes the dump has seen, plus the start. */
  get offset(): number {
    return this.#offset + this.#pendingLength;
  }

  /** Bytes held back for an incomplete line (at most 15). */
  get pending(): number {
    return this.#pendingLength;
  }

  /** Adds a chunk; returns the complete lines it finishes (maybe none). */
  push(chunk: Uint8Array): string {
    let out = "";
    let rest = chunk;
    if (this.#pendingLength > 0) {
      const take = Math.min(HEX_LINE_BYTES - this.#pendingLength, rest.length);
      this.#pending.set(rest.subarray(0, take), this.#pendingLength);
      this.#pendingLength += take;
      rest = rest.subarray(take);
      if (this.#pendingLength < HEX_LINE_BYTES) return "";
      out += this.flush();
    }
    const whole = rest.length - (rest.length % HEX_LINE_BYTES);
    out += hexDump(rest.subarray(0, whole), { offset: this.#offset });
    this.#offset += whole;
    this.#pending.set(rest.subarray(whole));
    this.#pendingLength = rest.length - whole;
    return out;
  }

  /** Returns the incomplete line held back, if any, and starts the next line after it. */
  flush(): string {
    if (this.#pendingLength === 0) return "";
    const out = hexDump(this.#pending.subarray(0, this.#pendingLength), { offset: this.#offset });
    this.#offset += this.#pendingLength;
    this.#pendingLength = 0;
    return out;
  }
}
