/**
 * Which HTTP version a connection speaks, read from its first bytes: the HTTP/2 connection
 * preface (RFC 9113, 3.4) or an HTTP/1.x request line (RFC 9112, 3). `Deno.serve` reads the same
 * bytes to choose a protocol but does not say which it chose (denoland/deno#10277), and the
 * request headers cannot tell: an HTTP/1.0 request may lack `Host`, an HTTP/2 one may carry it.
 * @module
 */

/** An HTTP version a connection can speak. */
export type HttpVersion = "HTTP/1.0" | "HTTP/1.1" | "HTTP/2";

/** The 24 bytes every HTTP/2 connection starts with (prior knowledge, and over TLS). */
export const HTTP2_PREFACE: Uint8Array = new TextEncoder().encode(
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
);

/** The longest request line read while looking for the version. @default 8 KiB, as nginx. */
export const MAX_REQUEST_LINE = 8 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const decoder = new TextDecoder();

/**
 * Tells the version from the first bytes of a connection: `more` while they are a prefix of the
 * HTTP/2 preface or a request line without its end, `unknown` for anything that is neither (the
 * HTTP engine then answers it, or closes). Empty lines before the request line are skipped, as
 * RFC 9112 (2.2) allows.
 *
 * @example
 * ```ts
 * import { HTTP2_PREFACE, sniffVersion } from "./sniff.ts";
 * const text = (s: string) => new TextEncoder().encode(s);
 * if (sniffVersion(HTTP2_PREFACE) !== "HTTP/2") throw new Error("preface");
 * if (sniffVersion(text("GET / HTTP/1.0\r\n")) !== "HTTP/1.0") throw new Error("1.0");
 * if (sniffVersion(text("PRI * HT")) !== "more") throw new Error("half a preface");
 * if (sniffVersion(text("GET / HTTP/1.1")) !== "more") throw new Error("no end of line yet");
 * if (sniffVersion(text("SSH-2.0-OpenSSH\r\n")) !== "unknown") throw new Error("not HTTP");
 * ```
 */
export function sniffVersion(bytes: Uint8Array): HttpVersion | "more" | "unknown" {
  const compared = Math.min(bytes.length, HTTP2_PREFACE.length);
  let isPreface = true;
  for (let i = 0; i < compared && isPreface; i++) isPreface = bytes[i] === HTTP2_PREFACE[i];
  if (isPreface) return compared === HTTP2_PREFACE.length ? "HTTP/2" : "more";
  let start = 0;
  while (start < bytes.length && (bytes[start] === CR || bytes[start] === LF)) start++;
  const end = bytes.indexOf(LF, start);
  if (end === -1) return bytes.length - start < MAX_REQUEST_LINE ? "more" : "unknown";
  const line = decoder.decode(bytes.subarray(start, end));
  const match = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ ]+ HTTP\/1\.([01])\r?$/.exec(line);
  if (match === null) return "unknown";
  return match[1] === "0" ? "HTTP/1.0" : "HTTP/1.1";
}
