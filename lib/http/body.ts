/**
 * Reading a request body to the end, with a cap, before answering. A server that answers first
 * and leaves the body unread makes HTTP/2 cancel the upload with `RST_STREAM(NO_ERROR)`, which
 * RFC 9113 (8.1) allows but which curl 7.88 does not survive (it fails or hangs on uploads over
 * about 64 KiB), and an HTTP/1.1 server must read or close anyway.
 * @module
 */

/** How much of a body was read. */
export interface BodySize {
  /** Bytes read (all of them unless `tooLarge`). */
  bytes: number;
  /** The body is larger than the cap (declared so, or found so while reading). */
  tooLarge: boolean;
}

/**
 * Reads and counts `request`'s body, keeping none of it. A body declared (`content-length`)
 * or found larger than `maxBytes` stops the reading at once, with `tooLarge` set; the rest is
 * left unread, not cancelled: cancelling before the answer is sent can make Deno's engine reset
 * the HTTP/2 stream before the answer's DATA (measured with nghttp), while a body left unread
 * is ended by the engine *after* a complete answer, with `RST_STREAM(NO_ERROR)` (RFC 9113, 8.1).
 *
 * @example
 * ```ts
 * import { measureBody } from "./body.ts";
 * const post = (size: number) => new Request("http://x/", { method: "POST", body: new Uint8Array(size) });
 * const small = await measureBody(post(10), 16);
 * const large = await measureBody(post(20), 16);
 * if (small.bytes !== 10 || small.tooLarge || !large.tooLarge) throw new Error("wrong sizes");
 * ```
 */
export async function measureBody(request: Request, maxBytes: number): Promise<BodySize> {
  if (request.body === null) return { bytes: 0, tooLarge: false };
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) return { bytes: 0, tooLarge: true };
  const reader = request.body.getReader();
  let bytes = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) return { bytes, tooLarge: false };
    bytes += value.length;
    if (bytes > maxBytes) {
      reader.releaseLock();
      return { bytes, tooLarge: true };
    }
  }
}
