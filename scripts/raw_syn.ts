/**
 * The tutorial's raw SYN sender done right: build an IPv4 header and a TCP SYN header by hand
 * (the TCP checksum over the pseudo-header), send them with IP_HDRINCL, and with
 * `--listen-reply` report the answer: SYN-ACK from an open port, RST from a closed one. The
 * sending kernel has no socket for the SYN, so it answers a SYN-ACK with a RST itself. Needs
 * root (or CAP_NET_RAW) and --allow-ffi: Deno has no raw sockets, so this reaches libc via FFI.
 *
 * Run:    sudo deno run --allow-ffi scripts/raw_syn.ts --dport 12345 --listen-reply
 * Try it: nc -l 127.0.0.1 12345, then run it, and watch with `tcpdump -i lo -n tcp port 12345`
 *
 * @module
 */
import { formatHostPort } from "../lib/address.ts";
import { printLine, runMain, stopSignal } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { RawSocket } from "../lib/ffi/raw_socket.ts";
import { isIPv4, parseDuration, parseFlags, parseHost, parsePort } from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { decodeIPv4, encodeIPv4 } from "../lib/packet/ipv4.ts";
import { IPPROTO } from "../lib/packet/packet_fields.ts";
import { compileTcpReplyFilter } from "../lib/packet/packet_filter.ts";
import { decodeTcp, encodeTcp, formatTcpFlags, TCP_FLAGS } from "../lib/packet/tcp.ts";

/** Options for {@linkcode sendSyn}. */
export interface SynOptions {
  /** Source address written into the IPv4 header. @default {"127.0.0.1"} */
  src?: string;
  /** Destination address. @default {"127.0.0.1"} */
  dst?: string;
  /** Source port. @default {1234} */
  srcPort?: number;
  /** Destination port. @default {80} */
  dstPort?: number;
  /** Data carried by the SYN (a server without TCP Fast Open ignores it). @default {empty} */
  payload?: Uint8Array;
  /** Initial sequence number. @default {random} */
  seq?: number;
  /** Wait for the answer. @default {false} */
  listenReply?: boolean;
  /** Milliseconds to wait for the answer. @default {1000} */
  timeout?: number;
  /** Stops waiting for the answer. */
  signal?: AbortSignal;
}

/** The answer to a SYN. */
export interface SynReply {
  /** `syn-ack`: the port is open; `rst`: closed; `other`: some other segment. */
  kind: "syn-ack" | "rst" | "other";
  /** Flags as `tcpdump` prints them (`S.`, `R.`). */
  flags: string;
  seq: number;
  ack: number;
  window: number;
  ttl: number;
}

/** What {@linkcode sendSyn} sent and, with `listenReply`, what came back. */
export interface SynResult {
  /** The packet sent, IPv4 header first. */
  packet: Uint8Array;
  /** The sequence number sent. */
  seq: number;
  /** The answer; `null` when none came in time or it was not awaited. */
  reply: SynReply | null;
}

/**
 * Sends one SYN and optionally waits for the answer.
 *
 * @example Probe a port on localhost (as root, with --allow-ffi)
 * ```ts ignore
 * import { sendSyn } from "./raw_syn.ts";
 * const { reply } = await sendSyn({ dstPort: 22, srcPort: 40001, listenReply: true });
 * console.log(reply?.kind ?? "no answer");
 * ```
 */
export async function sendSyn(options: SynOptions = {}): Promise<SynResult> {
  const src = options.src ?? "127.0.0.1";
  const dst = options.dst ?? "127.0.0.1";
  const srcPort = options.srcPort ?? 1234;
  const dstPort = options.dstPort ?? 80;
  const seq = options.seq ?? crypto.getRandomValues(new Uint32Array(1))[0];
  const segment = encodeTcp(
    { srcPort, dstPort, seq, flags: TCP_FLAGS.SYN, window: 64240 },
    options.payload ?? new Uint8Array(0),
    { src, dst },
  );
  const packet = encodeIPv4({ src, dst, protocol: IPPROTO.TCP }, segment);
  // A raw TCP socket with IP_HDRINCL both sends our header and receives the answer; opening
  // it before sending means the answer cannot arrive before we listen.
  // The kernel keeps only the answer (from dstPort to srcPort): the host's other TCP traffic
  // never reaches this socket, however busy the loopback is.
  using socket = RawSocket.inet(IPPROTO.TCP, {
    headerIncluded: true,
    filter: options.listenReply ? compileTcpReplyFilter(dstPort, srcPort) : undefined,
  });
  socket.send(packet, dst);
  if (!options.listenReply) return { packet, seq, reply: null };
  const reply = await awaitReply(socket, { src, dst, srcPort, dstPort, seq }, options);
  return { packet, seq, reply };
}

interface Probe {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
}

/** The raw socket sees every TCP segment on the host: keep the one from dst:dport to us. */
async function awaitReply(
  socket: RawSocket,
  probe: Probe,
  options: SynOptions,
): Promise<SynReply | null> {
  const deadline = performance.now() + (options.timeout ?? 1000);
  while (true) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    const received = await socket.receive({ timeout: left, signal: options.signal });
    if (received === null) return null;
    try {
      const { header: ip, payload } = decodeIPv4(received.data);
      if (ip.protocol !== IPPROTO.TCP || ip.src !== probe.dst || ip.dst !== probe.src) continue;
      const { header } = decodeTcp(payload);
      if (header.srcPort !== probe.dstPort || header.dstPort !== probe.srcPort) continue;
      // With src == dst and equal ports our own SYN looks like an answer: skip it.
      if (header.flags === TCP_FLAGS.SYN && header.seq === probe.seq) continue;
      const synAck = TCP_FLAGS.SYN | TCP_FLAGS.ACK;
      const kind = (header.flags & synAck) === synAck
        ? "syn-ack"
        : header.flags & TCP_FLAGS.RST
        ? "rst"
        : "other";
      return {
        kind,
        flags: formatTcpFlags(header.flags),
        seq: header.seq,
        ack: header.ack,
        window: header.window,
        ttl: ip.ttl,
      };
    } catch (error) {
      if (!(error instanceof RangeError || error instanceof SyntaxError)) throw error;
    }
  }
}

const USAGE = `Usage: raw_syn.ts [options]

Builds an IPv4 + TCP SYN packet by hand and sends it on a raw socket (IP_HDRINCL).
Needs root (or CAP_NET_RAW) and --allow-ffi.

Options:
  --src ADDR        source IPv4 address in the header           [default: 127.0.0.1]
  --dst ADDR        destination IPv4 address                    [default: 127.0.0.1]
  --sport PORT      source port                                 [default: 1234]
  --dport PORT      destination port                            [default: 80]
  --payload TEXT    data carried by the SYN                     [default: none]
  --listen-reply    wait for the answer: SYN-ACK (open) or RST (closed)
  --timeout TIME    how long to wait for the answer             [default: 1s]
  --json            print one JSON object per event
  -h, --help        show this help

Exit status: 0 when sent (and answered, with --listen-reply), 1 on no answer or an error.

Run:    sudo deno run --allow-ffi scripts/raw_syn.ts --dport 12345 --listen-reply
Try it: nc -l 127.0.0.1 12345 (open) or no listener (closed), then run it`;

async function main(args: string[]): Promise<number | void> {
  const flags = parseFlags(args, {
    string: ["src", "dst", "sport", "dport", "payload", "timeout"],
    boolean: ["listen-reply", "json"],
    usage: USAGE,
  });
  const src = parseIPv4Flag(flags.src ?? "127.0.0.1", "--src");
  const dst = parseIPv4Flag(flags.dst ?? "127.0.0.1", "--dst");
  const options: SynOptions = {
    src,
    dst,
    srcPort: parsePort(flags.sport ?? "1234", "--sport"),
    dstPort: parsePort(flags.dport ?? "80", "--dport"),
    payload: new TextEncoder().encode(flags.payload ?? ""),
    listenReply: flags["listen-reply"],
    timeout: parseDuration(flags.timeout ?? "1s", "--timeout"),
  };
  using stop = stopSignal();
  const from = formatHostPort(src, options.srcPort!);
  const to = formatHostPort(dst, options.dstPort!);
  const result = await sendSyn({ ...options, signal: stop.signal });
  if (flags.json) {
    printLine(formatJsonEvent("sent", {
      peer: to,
      local: from,
      bytes: result.packet.length,
      seq: result.seq,
    }));
  } else {
    printLine(`Sent SYN ${from} > ${to} seq ${result.seq} (${result.packet.length} bytes)`);
  }
  if (!options.listenReply) return;
  const { reply } = result;
  if (flags.json) {
    printLine(
      reply
        ? formatJsonEvent("reply", { peer: to, ...reply })
        : formatJsonEvent("no-reply", { peer: to }),
    );
  } else if (reply) {
    const meaning = reply.kind === "syn-ack"
      ? "SYN-ACK: port open"
      : reply.kind === "rst"
      ? "RST: port closed"
      : "unexpected answer";
    printLine(
      `Reply from ${to}: ${meaning} [${reply.flags}] seq ${reply.seq} ack ${reply.ack} ` +
        `win ${reply.window} ttl ${reply.ttl}`,
    );
  } else {
    printLine(`No reply from ${to} within ${options.timeout} ms`);
  }
  return reply ? 0 : 1;
}

function parseIPv4Flag(text: string, flag: string): string {
  const host = parseHost(text, flag);
  if (!isIPv4(host)) throw new UsageError(`Cannot use ${flag} "${text}": must be an IPv4 address`);
  return host;
}

if (import.meta.main) runMain("raw_syn", () => main(Deno.args));
