/**
 * How large one datagram may be, per family: UDP over IPv4 or IPv6, or a Unix datagram socket.
 * A sender checks before sending (one clear line instead of `Message too long`), and a receiver
 * sizes its one buffer so that nothing it can be sent is cut without notice.
 * @module
 */

/** The largest UDP payload over IPv4: 65535 − 20 (IPv4 header) − 8 (UDP header). */
export const UDP_IPV4_MAX_PAYLOAD = 65507;

/** The largest UDP payload over IPv6 (no jumbograms): 65535 − 8, the IPv6 payload length less
 * the UDP header. */
export const UDP_IPV6_MAX_PAYLOAD = 65527;

/**
 * The largest datagram a Unix datagram socket made by Deno can send: its send buffer
 * (`net.core.wmem_default`, 212992 bytes on Linux unless tuned) less the 32 bytes the kernel
 * keeps for itself. Measured: 212960 bytes go, 212961 fail with EMSGSIZE.
 */
export const UNIX_DATAGRAM_SEND_MAX = 212960;

/**
 * The largest Unix datagram a receiver takes whole: what an unprivileged sender can send with
 * the largest send buffer it may ask for at the default `net.core.wmem_max` (2 × 212992 − 32).
 * A longer one (root, or a raised `wmem_max`) fills the buffer and is reported as cut: the
 * kernel discards the rest and Deno does not say how much (no `MSG_TRUNC`).
 */
export const UNIX_DATAGRAM_RECEIVE_MAX = 425952;

/** Where a datagram goes: a UDP host, or a Unix socket path. */
export interface DatagramTarget {
  /** The target host; an IPv6 literal (without brackets) means IPv6. */
  hostname?: string;
  /** A Unix datagram socket path; when set, `hostname` is not used. */
  path?: string;
}

/**
 * The largest payload one datagram to `target` can carry: 65527 bytes to an IPv6 literal,
 * 65507 to anything else over UDP (a host name resolves over IPv4 here), and
 * {@linkcode UNIX_DATAGRAM_SEND_MAX} to a Unix socket path.
 *
 * @example
 * ```ts
 * import { maxPayload } from "./limits.ts";
 * if (maxPayload({ hostname: "::1" }) !== 65527) throw new Error("IPv6");
 * if (maxPayload({ hostname: "127.0.0.1" }) !== 65507) throw new Error("IPv4");
 * if (maxPayload({ path: "/tmp/d.sock" }) !== 212960) throw new Error("Unix");
 * ```
 */
export function maxPayload(target: DatagramTarget): number {
  if (target.path !== undefined) return UNIX_DATAGRAM_SEND_MAX;
  return target.hostname?.includes(":") ? UDP_IPV6_MAX_PAYLOAD : UDP_IPV4_MAX_PAYLOAD;
}

/**
 * What a datagram to `target` is called in messages: `a UDP datagram over IPv6`.
 *
 * @example
 * ```ts
 * import { describeFamily } from "./limits.ts";
 * if (describeFamily({ hostname: "::1" }) !== "a UDP datagram over IPv6") throw new Error();
 * ```
 */
export function describeFamily(target: DatagramTarget): string {
  if (target.path !== undefined) return "a Unix datagram";
  return `a UDP datagram over ${target.hostname?.includes(":") ? "IPv6" : "IPv4"}`;
}

/**
 * The size of the one buffer a receiver on `transport` reads into: one byte more than the
 * largest datagram it takes whole, so that a datagram which fills the buffer is known to be cut.
 * (`receive()` without a buffer allocates 65507 bytes on every call and silently cuts an IPv6
 * datagram of 65527 bytes, or a Unix one of 65537.)
 *
 * @example
 * ```ts
 * import { receiveBufferSize } from "./limits.ts";
 * if (receiveBufferSize("udp") !== 65528) throw new Error("UDP");
 * if (receiveBufferSize("unixpacket") !== 425953) throw new Error("Unix");
 * ```
 */
export function receiveBufferSize(transport: "udp" | "unixpacket"): number {
  return (transport === "udp" ? UDP_IPV6_MAX_PAYLOAD : UNIX_DATAGRAM_RECEIVE_MAX) + 1;
}
