/**
 * A packet sniffer on an AF_PACKET socket: every frame on one interface (`lo` by default),
 * decoded into one line (kernel timestamp, protocol, addresses, ports, TCP flags and options,
 * length, payload), filtered by protocol and port, as text, JSON or with a hex dump. Frames
 * come through a TPACKET_V3 ring shared with the kernel, and the filter runs in the kernel as
 * BPF, so a burst is not lost; what the kernel did drop is counted and reported on exit, as
 * tcpdump does. Needs root (or CAP_NET_RAW) and --allow-ffi: Deno has no raw sockets, so this
 * reaches libc through FFI.
 *
 * Run:    sudo deno run --allow-ffi scripts/raw_sniff.ts --interface lo --proto udp --port 5005
 * Try it: deno task udp-send (or `echo hi | nc -u -q0 127.0.0.1 5005`) in another terminal
 *
 * @module
 */
import { printError, printLine, runMain, stopSignal, writeData } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { PacketRing } from "../lib/ffi/packet_ring.ts";
import { parseCount, parseFlags, parsePort, parseSize, rejectTogether } from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { compileFrameFilter } from "../lib/packet/packet_filter.ts";
import {
  type DecodedFrame,
  decodeFrame,
  describeFrame,
  type FrameFilter,
  matches,
  tcpdumpHex,
} from "../lib/packet/packet_frame.ts";

/** Options for {@linkcode sniff}. */
export interface SniffOptions extends FrameFilter {
  /** Interface to capture on. @default {"lo"} */
  interface?: string;
  /** Stop after this many matching frames. @default {Infinity} */
  count?: number;
  /** Bytes of ring memory shared with the kernel (see `PacketRing`). @default {33554432} */
  bufferSize?: number;
  /** Stops the capture. */
  signal?: AbortSignal;
  /** Called once the socket is bound, before the first frame. */
  onListening?: () => void;
  /** Called once when the capture ends, however it ends, with what it saw and lost. */
  onSummary?: (summary: SniffSummary) => void;
}

/** A captured frame: the kernel's timestamp, its bytes, and what they decode to. */
export interface SniffedFrame {
  /** The kernel's timestamp in microseconds since the epoch. */
  timeUs: number;
  /** The bytes captured. */
  bytes: Uint8Array;
  /** What the bytes decode to. */
  frame: DecodedFrame;
}

/** What a capture saw and what the kernel dropped, as tcpdump reports on exit. */
export interface SniffSummary {
  /** Frames that matched and were yielded. */
  captured: number;
  /** Frames the kernel's filter let in (`tp_packets` of `PACKET_STATISTICS`). */
  received: number;
  /** Frames the kernel dropped for want of room in the ring (`tp_drops`). */
  dropped: number;
}

// Several times the ring's block timeout (10 ms): the last frames' wait after a stop.
const DRAIN_MS = 50;

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
  const ring = PacketRing.open(options.interface ?? "lo", {
    bufferSize: options.bufferSize,
    filter: compileFrameFilter(options),
  });
  let captured = 0;
  try {
    options.onListening?.();
    while (captured < limit) {
      // Once stopped, read what the kernel has already captured: the frames of the block it is
      // filling reach us only when the block times out.
      const stopping = options.signal?.aborted ?? false;
      const frames = await ring.receive(
        stopping ? { timeout: DRAIN_MS } : { signal: options.signal },
      );
      if (frames === null) {
        if (stopping || !options.signal?.aborted) return;
        continue;
      }
      // The ring's BPF program (always attached) has left out lo's outgoing copies.
      for (const { data, seconds, nanoseconds } of frames) {
        const frame = decodeFrame(data);
        if (!matches(frame, options)) continue;
        captured++;
        const timeUs = seconds * 1e6 + Math.floor(nanoseconds / 1000);
        yield { timeUs, bytes: data, frame };
        if (captured >= limit) return;
      }
    }
  } finally {
    ring.close();
    const { packets, drops } = ring.stats();
    options.onSummary?.({ captured, received: packets, dropped: drops });
  }
}

/**
 * `HH:MM:SS.uuuuuu` in local time, as tcpdump prints a timestamp.
 *
 * @example
 * ```ts
 * import { formatTimeOfDay } from "./raw_sniff.ts";
 * const text = formatTimeOfDay(Date.UTC(2026, 0, 1, 12, 34, 56) * 1000 + 789_012);
 * if (!/^\d\d:\d\d:56\.789012$/.test(text)) throw new Error(text);
 * ```
 */
export function formatTimeOfDay(timeUs: number): string {
  const date = new Date(Math.floor(timeUs / 1000));
  const two = (value: number) => String(value).padStart(2, "0");
  const micros = String(timeUs % 1_000_000).padStart(6, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${micros}`;
}

/** The text of one `--json` frame line, in the shared schema. */
function frameJson(name: string, sniffed: SniffedFrame, hex: boolean): string {
  const { payload, length, frameLength, ...fields } = sniffed.frame;
  const snake = Object.fromEntries(
    Object.entries(fields).map((
      [key, value],
    ) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]),
  );
  return formatJsonEvent("frame", {
    bytes: length,
    data: payload,
    interface: name,
    time_us: sniffed.timeUs,
    frame_length: frameLength,
    ...snake,
    ...(hex ? { hex: tcpdumpHex(sniffed.bytes) } : {}),
  }, { time: new Date(Math.floor(sniffed.timeUs / 1000)), maxDataBytes: 1024 });
}

/** `12 frames captured, 0 dropped by the kernel` */
function summaryLine(summary: SniffSummary): string {
  const frames = summary.captured === 1 ? "frame" : "frames";
  return `${summary.captured} ${frames} captured, ${summary.dropped} dropped by the kernel`;
}

const USAGE = `Usage: raw_sniff.ts [options]

Captures frames on an interface through an AF_PACKET ring and prints one decoded line each,
with the kernel's timestamp; on exit, how many were captured and how many the kernel dropped.
Needs root (or CAP_NET_RAW) and --allow-ffi.

Options:
  -i, --interface NAME  interface to capture on                 [default: lo]
  --proto NAME          keep only tcp, udp or icmp
  -p, --port PORT       keep only TCP/UDP with this source or destination port
  -c, --count N         exit after N matching frames
  -B, --buffer-size N   ring memory shared with the kernel      [default: 32M]
  -q, --quiet           print no frames, only the summary
  --json                one JSON object per frame, then a summary object
  --hex                 add a hex dump of each frame
  -h, --help            show this help

Run:    sudo deno run --allow-ffi scripts/raw_sniff.ts --proto udp --port 5005
Try it: deno task udp-send, in another terminal`;

const encoder = new TextEncoder();

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["interface", "proto", "port", "count", "buffer-size"],
    boolean: ["json", "hex", "quiet"],
    alias: { i: "interface", c: "count", p: "port", B: "buffer-size", q: "quiet" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json"]);
  const protocol = flags.proto?.toLowerCase();
  if (protocol !== undefined && protocol !== "tcp" && protocol !== "udp" && protocol !== "icmp") {
    throw new UsageError(`Cannot parse --proto "${flags.proto}": must be tcp, udp or icmp`);
  }
  const name = flags.interface ?? "lo";
  let summary: SniffSummary = { captured: 0, received: 0, dropped: 0 };
  using stop = stopSignal();
  const frames = sniff({
    interface: name,
    protocol,
    port: flags.port === undefined ? undefined : parsePort(flags.port),
    count: flags.count === undefined ? undefined : parseCount(flags.count, "--count"),
    bufferSize: parseSize(flags["buffer-size"] ?? "32M", "--buffer-size", {
      min: 2 * 1024 * 1024,
      max: 1024 ** 3,
    }),
    signal: stop.signal,
    onListening: () => printError(`Listening on ${name}`),
    onSummary: (result) => summary = result,
  });
  for await (const sniffed of frames) {
    if (flags.quiet) continue;
    // Frames are the data this program receives: wait for stdout rather than drop a line.
    if (flags.json) {
      await writeData(encoder.encode(frameJson(name, sniffed, flags.hex) + "\n"));
      continue;
    }
    let text = `${formatTimeOfDay(sniffed.timeUs)} ${describeFrame(sniffed.frame)}\n`;
    if (flags.hex) text += tcpdumpHex(sniffed.bytes).map((line) => line + "\n").join("");
    await writeData(encoder.encode(text));
  }
  if (flags.json) {
    printLine(formatJsonEvent("summary", { interface: name, ...summary }));
  }
  printError(summaryLine(summary));
}

if (import.meta.main) runMain("raw_sniff", () => main(Deno.args));
