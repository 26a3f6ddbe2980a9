/**
 * Lines out of a byte stream, with a bound: a {@linkcode LineSplitter} holds at most `maxLine`
 * bytes of a line that has not ended, cuts a longer one (at a UTF-8 character boundary) and
 * skips the rest of it up to the next newline. A chat server keeps one per client, so a client
 * that never sends a newline costs `maxLine` bytes, not whatever it sends.
 * @module
 */

/** What {@linkcode LineSplitter} hands over for every line. */
export type LineHandler = (line: Uint8Array, cut: boolean) => void;

const NEWLINE = 0x0a;
const RETURN = 0x0d;

/**
 * Splits bytes into lines of at most `maxLine` bytes (the `\n` and a `\r` before it are not
 * part of the line).
 *
 * @example A line that arrives in pieces, and one that is too long
 * ```ts
 * import { LineSplitter } from "./lines.ts";
 * const seen: string[] = [];
 * const lines = new LineSplitter(8, (line, cut) => {
 *   seen.push(new TextDecoder().decode(line) + (cut ? " [cut]" : ""));
 * });
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * lines.push(bytes("hel"));
 * lines.push(bytes("lo\r\nthis line is long\nbye"));
 * lines.flush();
 * if (seen.join("|") !== "hello|this lin [cut]|bye") throw new Error(seen.join("|"));
 * ```
 */
export class LineSplitter {
  readonly #maxLine: number;
  readonly #onLine: LineHandler;
  #parts: Uint8Array[] = [];
  #length = 0;
  /** A line was cut: what is left of it, up to its newline, is skipped. */
  #skipping = false;

  /** Checks `maxLine` (a `RangeError` below 1). */
  constructor(maxLine: number, onLine: LineHandler) {
    if (!(maxLine >= 1)) {
      throw new RangeError(`Cannot use maxLine "${maxLine}": must be at least 1`);
    }
    this.#maxLine = maxLine;
    this.#onLine = onLine;
  }

  /** Bytes of an unfinished line held now (at most `maxLine`). */
  get pending(): number {
    return this.#length;
  }

  /** Takes the next bytes of the stream; calls the handler for every line they complete.
   * `bytes` may be reused by the caller afterwards: what must wait is copied. */
  push(bytes: Uint8Array): void {
    let start = 0;
    while (start < bytes.length) {
      const newline = bytes.indexOf(NEWLINE, start);
      const end = newline === -1 ? bytes.length : newline;
      if (this.#skipping) {
        if (newline === -1) return;
        this.#skipping = false;
      } else if (this.#length + (end - start) > this.#maxLine) {
        const room = characterStart(bytes, start, start + this.#maxLine - this.#length);
        this.#emit(bytes.subarray(start, room), true);
        this.#skipping = newline === -1;
      } else if (newline !== -1) {
        this.#emit(bytes.subarray(start, end), false);
      } else {
        this.#parts.push(bytes.slice(start, end));
        this.#length += end - start;
      }
      start = end + 1;
    }
  }

  /** Hands over an unfinished line (at the end of the stream), if there is one. */
  flush(): void {
    if (this.#length > 0) this.#emit(new Uint8Array(0), false);
    this.#skipping = false;
  }

  #emit(last: Uint8Array, cut: boolean): void {
    let line = last;
    if (this.#parts.length > 0) {
      line = new Uint8Array(this.#length + last.length);
      let offset = 0;
      for (const part of this.#parts) {
        line.set(part, offset);
        offset += part.length;
      }
      line.set(last, offset);
      this.#parts = [];
      this.#length = 0;
    }
    if (!cut && line.at(-1) === RETURN) line = line.subarray(0, -1);
    this.#onLine(line, cut);
  }
}

/** Moves `end` back to the start of the UTF-8 character it falls in (at most 3 bytes back). */
function characterStart(bytes: Uint8Array, start: number, end: number): number {
  let at = end;
  while (at > start && at > end - 3 && at < bytes.length && (bytes[at] & 0xc0) === 0x80) at--;
  return (bytes[at] & 0xc0) === 0x80 ? end : at;
}
