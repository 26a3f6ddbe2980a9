/**
 * One way to print an address everywhere: `127.0.0.1:12345`, `[::1]:12345`, `unix:/run/x.sock`.
 * @module
 */
import { escapeText } from "./escape.ts";

/**
 * Joins a host and a port, bracketing an IPv6 host as URLs and most tools do.
 *
 * @example
 * ```ts
 * import { formatHostPort } from "./address.ts";
 * if (formatHostPort("::1", 80) !== "[::1]:80") throw new Error("not bracketed");
 * ```
 */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Formats an address that Deno reports (`listener.addr`, `conn.remoteAddr`, a datagram's
 * sender): `host:port` for TCP and UDP, `unix:PATH` for Unix sockets (`unix:(unnamed)` for a
 * client socket that was never bound to a path), control characters in a path escaped.
 *
 * @example
 * ```ts
 * import { formatAddr } from "./address.ts";
 * const text = formatAddr({ transport: "tcp", hostname: "127.0.0.1", port: 12345 });
 * if (text !== "127.0.0.1:12345") throw new Error(text);
 * ```
 */
export function formatAddr(addr: Deno.Addr): string {
  // A Unix peer names itself: its path may hold terminal escapes.
  if ("path" in addr) return `unix:${addr.path ? escapeText(addr.path) : "(unnamed)"}`;
  if ("cid" in addr) return `vsock:${addr.cid}:${addr.port}`;
  return formatHostPort(addr.hostname, addr.port);
}

/**
 * Formats where a program binds or connects before there is a socket to ask: `unix:PATH` when
 * `path` is given, `host:port` otherwise — for error messages that must name the address.
 *
 * @example
 * ```ts
 * import { formatTarget } from "./address.ts";
 * if (formatTarget({ hostname: "::1", port: 80 }) !== "[::1]:80") throw new Error("bad");
 * if (formatTarget({ path: "/tmp/s", hostname: "::1", port: 80 }) !== "unix:/tmp/s") throw new Error("bad");
 * ```
 */
export function formatTarget(target: { path?: string; hostname: string; port: number }): string {
  return target.path === undefined
    ? formatHostPort(target.hostname, target.port)
    : `unix:${target.path}`;
}
