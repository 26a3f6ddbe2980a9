/**
 * Frames as an `AF_PACKET` socket delivers them, decoded as far as a sniffer goes (Ethernet,
 * IPv4, then TCP, UDP or ICMP), filtered, and described in one line or a hex dump, the way
 * tcpdump shows them. Decoding never throws: a truncated or impossible packet is a
 * `malformed` frame that says why.
 * @module
 */
import { formatHostPort } from "../address.ts";
import { escapeBytes } from "../escape.ts";
import { decodeEthernet, ETHER_TYPE } from "./ethernet.ts";
import { decodeIcmp, ICMP_TYPE } from "./icmp.ts";
import { decodeIPv4 } from "./ipv4.ts";
import { IPPROTO } from "./packet_fields.ts";
import { decodeTcp, describeTcpOptions, formatTcpFlags } from "./tcp.ts";
import { decodeUdp } from "./udp.ts";

/** A frame decoded as far as this sniffer goes. */
export interface DecodedFrame {
  /** `tcp`, `udp`, `icmp`, `ipv4` (another protocol), `ipv6`, `arp`, `ether` or `malformed`. */
  protocol: "tcp" | "udp" | "icmp" | "ipv4" | "ipv6" | "arp" | "ether" | "malformed";
  /** Bytes in the frame. */
  frameLength: number;
  /** EtherType. */
  etherType?: number;
  /** IPv4 source address. */
  src?: string;
  /** IPv4 destination address. */
  dst?: string;
  /** IPv4 time to live. */
  ttl?: number;
  /** IP protocol number (for `ipv4`). */
  ipProtocol?: number;
  /** TCP or UDP source port. */
  srcPort?: number;
  /** TCP or UDP destination port. */
  dstPort?: number;
  /** TCP flags as `tcpdump` prints them. */
  flags?: string;
  /** TCP sequence number. */
  seq?: number;
  /** TCP acknowledgment number. */
  ack?: number;
  /** TCP receive window. */
  window?: number;
  /** TCP options as `tcpdump` prints them. */
  options?: string;
  /** ICMP type. */
  icmpType?: number;
  /** ICMP code. */
  icmpCode?: number;
  /** Identifier of an ICMP echo request or reply. */
  icmpId?: number;
  /** Sequence number of an ICMP echo request or reply. */
  icmpSeq?: number;
  /** The transport payload (TCP/UDP data, ICMP body). */
  payload?: Uint8Array;
  /**
   * What tcpdump prints as `length`: the TCP or UDP payload, the whole ICMP message (header
   * included), or the IPv4 payload of another protocol.
   */
  length?: number;
  /** Why the frame could not be decoded (for `malformed`). */
  error?: string;
}

/**
 * Decodes an Ethernet frame as `AF_PACKET` delivers it. Never throws: a truncated or
 * impossible packet becomes `{ protocol: "malformed", error }`.
 *
 * @example A UDP datagram captured on lo
 * ```ts
 * import { decodeFrame } from "./packet_frame.ts";
 * const hex = "000000000000000000000000080045000029" +
 *   "25a840004011171a7f0000017f0000019c40b0390015741b48656c6c6f2c20576f726c6421";
 * const frame = decodeFrame(Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16)));
 * if (frame.protocol !== "udp" || frame.dstPort !== 45113) throw new Error("bad decode");
 * ```
 */
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  const frameLength = bytes.length;
  try {
    const { header: ether, payload: etherPayload } = decodeEthernet(bytes);
    const etherType = ether.etherType;
    if (etherType === ETHER_TYPE.IPV6) return { protocol: "ipv6", frameLength, etherType };
    if (etherType === ETHER_TYPE.ARP) return { protocol: "arp", frameLength, etherType };
    if (etherType !== ETHER_TYPE.IPV4) return { protocol: "ether", frameLength, etherType };
    const { header: ip, payload } = decodeIPv4(etherPayload);
    const base = { frameLength, etherType, src: ip.src, dst: ip.dst, ttl: ip.ttl };
    // Only the first fragment carries the transport header.
    if (ip.fragmentOffset !== 0) {
      return {
        ...base,
        protocol: "ipv4",
        ipProtocol: ip.protocol,
        payload,
        length: payload.length,
      };
    }
    if (ip.protocol === IPPROTO.TCP) {
      const { header, payload: data } = decodeTcp(payload);
      return {
        ...base,
        protocol: "tcp",
        srcPort: header.srcPort,
        dstPort: header.dstPort,
        flags: formatTcpFlags(header.flags),
        seq: header.seq,
        ack: header.ack,
        window: header.window,
        options: describeTcpOptions(header.options),
        payload: data,
        length: data.length,
      };
    }
    if (ip.protocol === IPPROTO.UDP) {
      const { header, payload: data } = decodeUdp(payload);
      return {
        ...base,
        protocol: "udp",
        srcPort: header.srcPort,
        dstPort: header.dstPort,
        payload: data,
        length: data.length,
      };
    }
    if (ip.protocol === IPPROTO.ICMP) {
      const message = decodeIcmp(payload);
      const isEcho = message.type === ICMP_TYPE.ECHO_REQUEST ||
        message.type === ICMP_TYPE.ECHO_REPLY;
      const view = new DataView(message.rest.buffer, message.rest.byteOffset, 4);
      return {
        ...base,
        protocol: "icmp",
        icmpType: message.type,
        icmpCode: message.code,
        ...(isEcho ? { icmpId: view.getUint16(0), icmpSeq: view.getUint16(2) } : {}),
        payload: message.body,
        length: payload.length,
      };
    }
    return { ...base, protocol: "ipv4", ipProtocol: ip.protocol, payload, length: payload.length };
  } catch (error) {
    if (!(error instanceof RangeError || error instanceof SyntaxError)) throw error;
    return { protocol: "malformed", frameLength, error: error.message };
  }
}

/** Which frames to keep. */
export interface FrameFilter {
  /** Keep only this protocol. */
  protocol?: "tcp" | "udp" | "icmp";
  /** Keep only TCP or UDP with this source or destination port. */
  port?: number;
}

/**
 * Whether `frame` passes `filter`.
 *
 * @example
 * ```ts
 * import { matches } from "./packet_frame.ts";
 * const frame = { protocol: "udp", frameLength: 50, srcPort: 40000, dstPort: 5005 } as const;
 * if (!matches(frame, { protocol: "udp", port: 5005 })) throw new Error("should match");
 * ```
 */
export function matches(frame: DecodedFrame, filter: FrameFilter): boolean {
  if (filter.protocol !== undefined && frame.protocol !== filter.protocol) return false;
  if (filter.port !== undefined && frame.srcPort !== filter.port && frame.dstPort !== filter.port) {
    return false;
  }
  return true;
}

const ICMP_NAMES: Record<number, string> = {
  [ICMP_TYPE.ECHO_REPLY]: "echo reply",
  [ICMP_TYPE.DESTINATION_UNREACHABLE]: "unreachable",
  [ICMP_TYPE.ECHO_REQUEST]: "echo request",
  [ICMP_TYPE.TIME_EXCEEDED]: "time exceeded",
};

/**
 * One line for a decoded frame, e.g.
 * `UDP 127.0.0.1:40000 > 127.0.0.1:5005 len 13 "Hello, World!"`: lengths as tcpdump counts
 * them, the first 64 payload bytes escaped.
 *
 * @example
 * ```ts
 * import { describeFrame } from "./packet_frame.ts";
 * const line = describeFrame({
 *   protocol: "udp",
 *   frameLength: 49,
 *   src: "127.0.0.1",
 *   dst: "127.0.0.1",
 *   srcPort: 40000,
 *   dstPort: 5005,
 *   payload: new TextEncoder().encode("hi\n"),
 * });
 * if (line !== 'UDP 127.0.0.1:40000 > 127.0.0.1:5005 len 3 "hi\\n"') throw new Error(line);
 * ```
 */
export function describeFrame(frame: DecodedFrame): string {
  const data = frame.payload ?? new Uint8Array(0);
  const length = frame.length ?? data.length;
  const text = data.length > 0 ? ` "${escapeBytes(data, { maxBytes: 64 })}"` : "";
  switch (frame.protocol) {
    case "tcp": {
      const options = frame.options ? ` options [${frame.options}]` : "";
      return `TCP ${endpoints(frame)} [${frame.flags}] seq ${frame.seq} ack ${frame.ack} ` +
        `win ${frame.window}${options} len ${length}${text}`;
    }
    case "udp":
      return `UDP ${endpoints(frame)} len ${length}${text}`;
    case "icmp": {
      const name = ICMP_NAMES[frame.icmpType!] ?? `type ${frame.icmpType}`;
      const echo = frame.icmpId === undefined ? "" : ` id ${frame.icmpId} seq ${frame.icmpSeq}`;
      return `ICMP ${frame.src} > ${frame.dst} ${name} code ${frame.icmpCode}${echo} ` +
        `len ${length}`;
    }
    case "ipv4":
      return `IPv4 ${frame.src} > ${frame.dst} proto ${frame.ipProtocol} len ${length}`;
    case "ipv6":
      return `IPv6 (not decoded) frame ${frame.frameLength} bytes`;
    case "arp":
      return `ARP frame ${frame.frameLength} bytes`;
    case "ether":
      return `ether type 0x${frame.etherType!.toString(16).padStart(4, "0")} ` +
        `frame ${frame.frameLength} bytes`;
    case "malformed":
      return `malformed frame ${frame.frameLength} bytes: ${frame.error}`;
  }
}

function endpoints(frame: DecodedFrame): string {
  return `${formatHostPort(frame.src!, frame.srcPort!)} > ${
    formatHostPort(frame.dst!, frame.dstPort!)
  }`;
}

/**
 * A frame's bytes as `tcpdump -X` shows them under its line: 16 bytes a line, indented, with a
 * 4-digit offset and printable ASCII. (Received data elsewhere is dumped as `xxd` does, by
 * `lib/hexdump.ts`; a sniffer's output is compared with tcpdump's.)
 *
 * @example
 * ```ts
 * import { tcpdumpHex } from "./packet_frame.ts";
 * const [line] = tcpdumpHex(new TextEncoder().encode("hi"));
 * if (line !== "  0000  6869" + " ".repeat(35) + "  hi") throw new Error(JSON.stringify(line));
 * ```
 */
export function tcpdumpHex(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = bytes.subarray(offset, offset + 16);
    let hex = "";
    for (let i = 0; i < row.length; i++) {
      hex += (i > 0 && i % 2 === 0 ? " " : "") + row[i].toString(16).padStart(2, "0");
    }
    const ascii = Array.from(row, (b) => b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")
      .join("");
    lines.push(`  ${offset.toString(16).padStart(4, "0")}  ${hex.padEnd(39)}  ${ascii}`);
  }
  return lines;
}
