/**
 * A packet sniffer on an AF_PACKET socket: every frame on one interface (`lo` by default),
 * decoded into one line (protocol, addresses, ports, TCP flags, length, payload), filtered by
 * protocol and port, as text, JSON or with a hex dump. Needs root (or CAP_NET_RAW) and
 * --allow-ffi: Deno has no raw sockets, so this reaches libc through FFI.
 *
 * Run:    sudo deno run --allow-ffi scripts/raw_sniff.ts --interface lo --proto udp --port 5005
 * Try it: deno task udp-send (or `echo hi | nc -u -q0 127.0.0.1 5005`) in another terminal
 *
 * @module
 */
import { formatHostPort } from "../lib/address.ts";
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { escapeBytes } from "../lib/escape.ts";
import { LINUX } from "../lib/ffi/libc.ts";
import { RawSocket } from "../lib/ffi/raw_socket.ts";
import { parseCount, parseFlags, parsePort } from "../lib/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { decodeEthernet, ETHER_TYPE } from "../lib/packet/ethernet.ts";
import { decodeIcmp, ICMP_TYPE } from "../lib/packet/icmp.ts";
import { decodeIPv4, IPPROTO } from "../lib/packet/ipv4.ts";
import { decodeTcp, describeTcpOptions, formatTcpFlags } from "../lib/packet/tcp.ts";
import { decodeUdp } from "../lib/packet/udp.ts";

/** A frame decoded as far as this sniffer goes. */
export interface DecodedFrame {
  /** `tcp`, `udp`, `icmp`, `ipv4` (another protocol), `ipv6`, `arp`, `ether` or `malformed`. */
  protocol: "tcp" | "udp" | "icmp" | "ipv4" | "ipv6" | "arp" | "ether" | "malformed";
  /** Bytes in the frame. */
  frameLength: number;
  /** EtherType. */
  etherType?: number;
  /** IPv4 source and destination. */
  src?: string;
  dst?: string;
  ttl?: number;
  /** IP protocol number (for `ipv4`). */
  ipProtocol?: number;
  srcPort?: number;
  dstPort?: number;
  /** TCP flags as `tcpdump` prints them. */
  flags?: string;
  seq?: number;
  ack?: number;
  window?: number;
  /** TCP options as `tcpdump` prints them. */
  options?: string;
  icmpType?: number;
  icmpCode?: number;
  /** Identifier and sequence of an ICMP echo request or reply. */
  icmpId?: number;
  icmpSeq?: number;
  /** The transport payload (TCP/UDP data, ICMP body). */
  payload?: Uint8Array;
  /** Why the frame could not be decoded (for `malformed`). */
  error?: string;
}

/**
 * Decodes an Ethernet frame as `AF_PACKET` delivers it. Never throws: a truncated or
 * impossible packet becomes `{ protocol: "malformed", error }`.
 *
 * @example A UDP datagram captured on lo
 * ```ts
 * import { decodeFrame } from "./raw_sniff.ts";
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
      return { ...base, protocol: "ipv4", ipProtocol: ip.protocol, payload };
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
      };
    }
    return { ...base, protocol: "ipv4", ipProtocol: ip.protocol, payload };
  } catch (error) {
    if (!(error instanceof RangeError || error instanceof SyntaxError)) throw error;
    return { protocol: "malformed", frameLength, error: error.message };
  }
}

/** Which frames to keep. */
export interface SniffFilter {
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
 * import { matches } from "./raw_sniff.ts";
 * const frame = { protocol: "udp", frameLength: 50, srcPort: 40000, dstPort: 5005 } as const;
 * if (!matches(frame, { protocol: "udp", port: 5005 })) throw new Error("should match");
 * ```
 */
export function matches(frame: DecodedFrame, filter: SniffFilter): boolean {
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
 * `UDP 127.0.0.1:40000 > 127.0.0.1:5005 len 13 "Hello, World!"`. Payload bytes are escaped.
 *
 * @example
 * ```ts
 * import { describeFrame } from "./raw_sniff.ts";
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
  const text = data.length > 0 ? ` "${escapeBytes(data, { maxBytes: 64 })}"` : "";
  switch (frame.protocol) {
    case "tcp": {
      const options = frame.options ? ` options [${frame.options}]` : "";
      return `TCP ${endpoints(frame)} [${frame.flags}] seq ${frame.seq} ack ${frame.ack} ` +
        `win ${frame.window}${options} len ${data.length}${text}`;
    }
    case "udp":
      return `UDP ${endpoints(frame)} len ${data.length}${text}`;
    case "icmp": {
      const name = ICMP_NAMES[frame.icmpType!] ?? `type ${frame.icmpType}`;
      const echo = frame.icmpId === undefined ? "" : ` id ${frame.icmpId} seq ${frame.icmpSeq}`;
      return `ICMP ${frame.src} > ${frame.dst} ${name} code ${frame.icmpCode}${echo} ` +
        `len ${data.length}`;
    }
    case "ipv4":
      return `IPv4 ${frame.src} > ${frame.dst} proto ${frame.ipProtocol} len ${data.length}`;
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
 * A hex dump, 16 bytes a line with offsets and printable ASCII, as `tcpdump -X` shows it.
 *
 * @example
 * ```ts
 * import { hexDump } from "./raw_sniff.ts";
 * const [line] = hexDump(new TextEncoder().encode("hi"));
 * if (line !== "  0000  6869" + " ".repeat(35) + "  hi") throw new Error(JSON.stringify(line));
 * ```
 */
export function hexDump(bytes: Uint8Array): string[] {
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

/** Options for {@linkcode sniff}. */
export interface SniffOptions extends SniffFilter {
  /** Interface to capture on. @default {"lo"} */
  interface?: string;
  /** Stop after this many matching frames. @default {Infinity} */
  count?: number;
  /** Stops the capture. */
  signal?: AbortSignal;
  /** Called once the socket is bound, before the first frame. */
  onListening?: () => void;
}

/** A captured frame: when, its bytes, and what they decode to. */
export interface SniffedFrame {
  time: Date;
  bytes: Uint8Array;
  frame: DecodedFrame;
}

/**
 * Captures frames on an interface and yields the ones that match. On a loopback interface each
 * packet passes twice (sent, then received); like tcpdump, only the received copy is kept.
 *
 * @example Three UDP frames on lo (as root, with --allow-ffi)
 * ```ts ignore
 * import { sniff } from "./raw_sniff.ts";
 * for await (const { frame } of sniff({ protocol: "udp", count: 3 })) console.log(frame);
 * ```
 */
export async function* sniff(options: SniffOptions = {}): AsyncGenerator<SniffedFrame> {
  const limit = options.count ?? Infinity;
  using socket = RawSocket.packet(options.interface ?? "lo");
  options.onListening?.();
  let seen = 0;
  while (seen < limit) {
    const packet = await socket.receive({ signal: options.signal });
    if (packet === null) return;
    const { source } = packet;
    if (
      source.family === "packet" && source.packetType === LINUX.PACKET_OUTGOING &&
      source.hardwareType === LINUX.ARPHRD_LOOPBACK
    ) continue;
    const frame = decodeFrame(packet.data);
    if (!matches(frame, options)) continue;
    seen++;
    yield { time: new Date(), bytes: packet.data, frame };
  }
}

const USAGE = `Usage: raw_sniff.ts [options]

Captures frames on an interface with an AF_PACKET socket and prints one decoded line each.
Needs root (or CAP_NET_RAW) and --allow-ffi.

Options:
  --interface NAME  interface to capture on                     [default: lo]
  --proto NAME      keep only tcp, udp or icmp
  --port PORT       keep only TCP/UDP with this source or destination port
  --count N         exit after N matching frames
  --json            one JSON object per frame
  --hex             add a hex dump of each frame
  -h, --help        show this help

Run:    sudo deno run --allow-ffi scripts/raw_sniff.ts --proto udp --port 5005
Try it: deno task udp-send, in another terminal`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["interface", "proto", "port", "count"],
    boolean: ["json", "hex", "help"],
    alias: { h: "help", i: "interface", c: "count" },
  });
  if (flags.help) return printLine(USAGE);
  const protocol = flags.proto?.toLowerCase();
  if (protocol !== undefined && protocol !== "tcp" && protocol !== "udp" && protocol !== "icmp") {
    throw new UsageError(`Cannot parse --proto "${flags.proto}": must be tcp, udp or icmp`);
  }
  const name = flags.interface ?? "lo";
  const options: SniffOptions = {
    interface: name,
    protocol,
    port: flags.port === undefined ? undefined : parsePort(flags.port),
    count: flags.count === undefined ? undefined : parseCount(flags.count, "--count"),
  };
  using stop = stopSignal();
  let captured = 0;
  const frames = sniff({
    ...options,
    signal: stop.signal,
    onListening: () => printError(`Listening on ${name}`),
  });
  for await (const { time, bytes, frame } of frames) {
    captured++;
    if (flags.json) {
      const { payload, ...fields } = frame;
      printLine(JSON.stringify({
        time: time.toISOString(),
        interface: name,
        ...fields,
        ...(payload
          ? { payloadLength: payload.length, payload: escapeBytes(payload, { maxBytes: 1024 }) }
          : {}),
        ...(flags.hex ? { hex: hexDump(bytes) } : {}),
      }));
    } else {
      printLine(`${time.toISOString().slice(11, 23)} ${describeFrame(frame)}`);
      if (flags.hex) { for (const line of hexDump(bytes)) printLine(line); }
    }
  }
  printError(`${captured} ${captured === 1 ? "frame" : "frames"} captured`);
}

if (import.meta.main) runMain("raw_sniff", () => main(Deno.args));
