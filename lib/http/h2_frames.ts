/**
 * A filter on the bytes an HTTP/2 client sends, between the client and the HTTP engine: it walks
 * the frame headers (RFC 9113, 4.1: 24-bit length, type, flags, stream) without decoding
 * payloads, so it costs a few comparisons per frame, and it removes the client's GOAWAY frames.
 *
 * Why: Deno's engine (the `h2` crate: hyperium/h2#885) treats a client's GOAWAY as the end of
 * the connection and drops the streams the client opened in the same breath — it answers
 * `GOAWAY(last_stream_id=1)` and closes without a response — while RFC 9113 (6.8) says a GOAWAY
 * only stops the *receiver* from opening new streams: the sender's own requests are answered.
 * A server that never pushes has nothing to stop, so removing the frame is what the RFC asks;
 * the client closes the connection once it has its responses, as it planned to.
 * @module
 */

/** The length of an HTTP/2 frame header. */
export const FRAME_HEADER_LENGTH = 9;

const HEADERS = 0x1;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;
const PREFACE_LENGTH = 24;

/** What the filter tells about the frames it sees. */
export interface ClientFrameEvents {
  /** A GOAWAY frame from the client (removed from the stream), with its error code. */
  onGoaway?: (errorCode: number, lastStreamId: number) => void;
  /** A header block opened (HEADERS without END_HEADERS: CONTINUATION frames follow) or
   * ended (a CONTINUATION with END_HEADERS). */
  onHeaderBlock?: (open: boolean) => void;
}

/**
 * Filters the client-to-server bytes of one HTTP/2 connection, starting with its preface.
 *
 * @example A GOAWAY sent with a request is removed; the request passes unchanged
 * ```ts
 * import { ClientFrameFilter } from "./h2_frames.ts";
 * const frame = (type: number, payload: number[]) =>
 *   [0, 0, payload.length, type, 0x5, 0, 0, 0, type === 7 ? 0 : 1, ...payload];
 * const headers = frame(1, [0x82]); // HEADERS, END_STREAM | END_HEADERS, stream 1
 * const goaway = frame(7, [0, 0, 0, 0, 0, 0, 0, 0]);
 * const codes: number[] = [];
 * const filter = new ClientFrameFilter({ onGoaway: (code) => codes.push(code) });
 * filter.filter(new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
 * // Split in the middle of the GOAWAY's header, as a network may.
 * const bytes = new Uint8Array([...headers, ...goaway]);
 * const out = [...filter.filter(bytes.subarray(0, 14)), ...filter.filter(bytes.subarray(14))];
 * if (out.join() !== headers.join() || codes.join() !== "0") throw new Error(out.join());
 * ```
 */
export class ClientFrameFilter {
  #events: ClientFrameEvents;
  #prefaceLeft = PREFACE_LENGTH;
  #header = new Uint8Array(FRAME_HEADER_LENGTH);
  #headerFill = 0;
  #payloadLeft = 0;
  #dropping = false;
  #goaway = new Uint8Array(8);
  #goawayFill = 0;

  /** A filter for one connection, telling `events` what it sees. */
  constructor(events: ClientFrameEvents = {}) {
    this.#events = events;
  }

  /**
   * Returns the bytes of `chunk` to pass on: `chunk` itself when nothing is removed or held
   * (the common case, no copy), else a new array. The bytes of a frame header cut by the end of
   * `chunk` are held until the rest arrives.
   */
  filter(chunk: Uint8Array): Uint8Array {
    const out: Uint8Array[] = [];
    let run = 0;
    let pos = 0;
    const flush = (end: number) => {
      if (end > run) out.push(chunk.subarray(run, end));
    };
    while (pos < chunk.length) {
      if (this.#prefaceLeft > 0) {
        const n = Math.min(this.#prefaceLeft, chunk.length - pos);
        this.#prefaceLeft -= n;
        pos += n;
      } else if (this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, chunk.length - pos);
        if (this.#dropping) this.#keepGoaway(chunk.subarray(pos, pos + n));
        this.#payloadLeft -= n;
        pos += n;
        if (this.#dropping) {
          run = pos;
          if (this.#payloadLeft === 0) this.#endGoaway();
        }
      } else if (this.#headerFill === 0 && chunk.length - pos >= FRAME_HEADER_LENGTH) {
        const header = chunk.subarray(pos, pos + FRAME_HEADER_LENGTH);
        if (header[3] === GOAWAY) flush(pos);
        pos += FRAME_HEADER_LENGTH;
        if (this.#startFrame(header)) run = pos;
      } else {
        // A frame header cut by the end of a chunk: hold its bytes until it is whole.
        flush(pos);
        const n = Math.min(FRAME_HEADER_LENGTH - this.#headerFill, chunk.length - pos);
        this.#header.set(chunk.subarray(pos, pos + n), this.#headerFill);
        this.#headerFill += n;
        pos += n;
        run = pos;
        if (this.#headerFill === FRAME_HEADER_LENGTH) {
          this.#headerFill = 0;
          if (!this.#startFrame(this.#header)) out.push(this.#header.slice());
        }
      }
    }
    flush(chunk.length);
    if (out.length === 1 && out[0].buffer === chunk.buffer && out[0].length === chunk.length) {
      return chunk;
    }
    return concat(out);
  }

  /** Reads a frame header; true when the frame is to be removed. */
  #startFrame(header: Uint8Array): boolean {
    const length = (header[0] << 16) | (header[1] << 8) | header[2];
    const type = header[3];
    const endHeaders = (header[4] & END_HEADERS) !== 0;
    this.#payloadLeft = length;
    if (type === HEADERS && !endHeaders) this.#events.onHeaderBlock?.(true);
    if (type === CONTINUATION && endHeaders) this.#events.onHeaderBlock?.(false);
    if (type !== GOAWAY) return false;
    this.#dropping = true;
    this.#goawayFill = 0;
    if (length === 0) this.#endGoaway();
    return true;
  }

  #keepGoaway(bytes: Uint8Array): void {
    const n = Math.min(bytes.length, this.#goaway.length - this.#goawayFill);
    this.#goaway.set(bytes.subarray(0, n), this.#goawayFill);
    this.#goawayFill += n;
  }

  #endGoaway(): void {
    this.#dropping = false;
    const view = new DataView(this.#goaway.buffer);
    const complete = this.#goawayFill === 8;
    this.#events.onGoaway?.(
      complete ? view.getUint32(4) : -1,
      complete ? view.getUint32(0) & 0x7fffffff : -1,
    );
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
