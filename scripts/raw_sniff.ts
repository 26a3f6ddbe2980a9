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
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { escapeBytes } from "../lib/escape.ts";
import { LINUX } from "../lib/ffi/libc.ts";
import { RawSocket } from "../lib/ffi/raw_socket.ts";
import { parseCount, parseFlags, parsePort } from "../lib/flags.ts";
import { UsageError } from "../lib/errors.ts";
import {
  type DecodedFrame,
  decodeFrame,
  describeFrame,
  type FrameFilter,
  hexDump,
  matches,
} from "../lib/packet/packet_frame.ts";

/** Options for {@linkcode sniff}. */
export interface SniffOptions extends FrameFilter {
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
