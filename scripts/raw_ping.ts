/**
 * ICMP echo over a raw socket, like `ping`: send echo requests, match each reply by identifier
 * and sequence, print bytes, TTL and round-trip time, then a summary with loss and
 * min/avg/max/mdev. Ctrl-C stops early and still prints the summary. Needs root (or
 * CAP_NET_RAW) and --allow-ffi: Deno has no raw sockets, so this reaches libc through FFI.
 *
 * Run:    sudo deno run --allow-ffi scripts/raw_ping.ts --host 127.0.0.1 --count 4
 * Try it: compare with `ping -c 4 127.0.0.1`, or watch with `tcpdump -i lo -n icmp`
 *
 * @module
 */
import { delay } from "@std/async/delay";
import { printLine, runMain, stopSignal } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { RawSocket } from "../lib/ffi/raw_socket.ts";
import {
  isIPv4,
  parseCount,
  parseDuration,
  parseFlags,
  parseHost,
  parseSize,
} from "../lib/flags.ts";
import { decodeIcmp, decodeIcmpEcho, encodeIcmpEcho, ICMP_TYPE } from "../lib/packet/icmp.ts";
import { decodeIPv4 } from "../lib/packet/ipv4.ts";
import { IPPROTO } from "../lib/packet/packet_fields.ts";

/** Options for {@linkcode ping}. */
export interface PingOptions {
  /** IPv4 address to ping. @default {"127.0.0.1"} */
  host?: string;
  /** Echo requests to send; `Infinity` until aborted. @default {4} */
  count?: number;
  /** Milliseconds from one request to the next. @default {1000} */
  interval?: number;
  /** Milliseconds to wait for each reply. @default {1000} */
  timeout?: number;
  /** Bytes of data in each request, after the 8-byte ICMP header. @default {56} */
  size?: number;
  /** ICMP identifier that tells our replies from other pings'. @default {Deno.pid & 0xffff} */
  identifier?: number;
  /** Stops sending; the summary covers what was sent until then. */
  signal?: AbortSignal;
  /** Called once the socket is open, then for every reply and every request that got none. */
  onEvent?: (event: PingEvent) => void;
}

/** A reply, or a request that timed out. */
export type PingEvent =
  | { event: "start"; host: string; size: number }
  | { event: "reply"; seq: number; bytes: number; from: string; ttl: number; timeMs: number }
  | { event: "timeout"; seq: number };

/** What {@linkcode ping} measured. */
export interface PingSummary {
  host: string;
  transmitted: number;
  received: number;
  /** Lost share in percent. */
  lossPercent: number;
  /** Round-trip times in ms, in order of arrival. */
  times: number[];
  minMs?: number;
  avgMs?: number;
  maxMs?: number;
  /** Standard deviation, which `ping` calls mdev. */
  mdevMs?: number;
}

/**
 * Sends echo requests to `host` and collects the replies.
 *
 * @example Ping localhost twice (as root, with --allow-ffi)
 * ```ts ignore
 * import { ping } from "./raw_ping.ts";
 * const summary = await ping({ host: "127.0.0.1", count: 2, interval: 100 });
 * console.log(`${summary.received}/${summary.transmitted}`);
 * ```
 */
export async function ping(options: PingOptions = {}): Promise<PingSummary> {
  const host = options.host ?? "127.0.0.1";
  const count = options.count ?? 4;
  const interval = options.interval ?? 1000;
  const timeout = options.timeout ?? 1000;
  const identifier = options.identifier ?? (Deno.pid & 0xffff);
  const { signal } = options;
  const data = Uint8Array.from({ length: options.size ?? 56 }, (_, i) => i & 0xff);
  const times: number[] = [];
  let transmitted = 0;
  using socket = RawSocket.inet(IPPROTO.ICMP);
  options.onEvent?.({ event: "start", host, size: data.length });
  for (let seq = 1; seq <= count && !signal?.aborted; seq++) {
    const sequence = seq & 0xffff;
    const request = encodeIcmpEcho({ type: ICMP_TYPE.ECHO_REQUEST, identifier, sequence, data });
    const sentAt = performance.now();
    socket.send(request, host);
    transmitted++;
    const reply = await awaitReply(socket, { host, identifier, sequence, data }, {
      timeout,
      signal,
    });
    if (reply) {
      const timeMs = reply.at - sentAt;
      times.push(timeMs);
      options.onEvent?.({
        event: "reply",
        seq,
        bytes: reply.bytes,
        from: host,
        ttl: reply.ttl,
        timeMs,
      });
    } else if (!signal?.aborted) {
      options.onEvent?.({ event: "timeout", seq });
    }
    const wait = sentAt + interval - performance.now();
    if (seq < count && wait > 0 && !signal?.aborted) {
      try {
        await delay(wait, { signal });
      } catch { /* aborted: stop sending */ }
    }
  }
  return summarize(host, transmitted, times);
}

interface Expected {
  host: string;
  identifier: number;
  sequence: number;
  data: Uint8Array;
}

/** Reads packets until the reply to `expected` arrives; on lo that skips our own request. */
async function awaitReply(
  socket: RawSocket,
  expected: Expected,
  options: { timeout: number; signal?: AbortSignal },
): Promise<{ bytes: number; ttl: number; at: number } | null> {
  const deadline = performance.now() + options.timeout;
  while (true) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    const packet = await socket.receive({ timeout: left, signal: options.signal });
    if (packet === null) return null;
    const at = performance.now();
    try {
      const { header, payload } = decodeIPv4(packet.data);
      if (header.src !== expected.host || !decodeIcmp(payload).checksumOk) continue;
      const echo = decodeIcmpEcho(payload);
      if (
        echo.type === ICMP_TYPE.ECHO_REPLY && echo.identifier === expected.identifier &&
        echo.sequence === expected.sequence && sameBytes(echo.data, expected.data)
      ) {
        return { bytes: payload.length, ttl: header.ttl, at };
      }
    } catch (error) {
      // Some other ICMP message, or a malformed one: not our reply.
      if (!(error instanceof RangeError || error instanceof SyntaxError)) throw error;
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function summarize(host: string, transmitted: number, times: number[]): PingSummary {
  const received = times.length;
  const lossPercent = transmitted === 0 ? 0 : ((transmitted - received) / transmitted) * 100;
  const summary: PingSummary = { host, transmitted, received, lossPercent, times };
  if (received > 0) {
    const avg = times.reduce((a, b) => a + b, 0) / received;
    summary.minMs = Math.min(...times);
    summary.avgMs = avg;
    summary.maxMs = Math.max(...times);
    const meanSquare = times.reduce((sum, time) => sum + time * time, 0) / received;
    summary.mdevMs = Math.sqrt(Math.max(0, meanSquare - avg * avg));
  }
  return summary;
}

/** The two summary lines `ping` prints, plus the header line. */
export function formatSummary(summary: PingSummary): string[] {
  const loss = Number(summary.lossPercent.toFixed(1));
  const lines = [
    `--- ${summary.host} ping statistics ---`,
    `${summary.transmitted} packets transmitted, ${summary.received} received, ${loss}% packet loss`,
  ];
  if (summary.received > 0) {
    const ms = [summary.minMs, summary.avgMs, summary.maxMs, summary.mdevMs]
      .map((value) => value!.toFixed(3));
    lines.push(`rtt min/avg/max/mdev = ${ms.join("/")} ms`);
  }
  return lines;
}

const USAGE = `Usage: raw_ping.ts [options]

Sends ICMP echo requests over a raw socket and prints each reply, like ping.
Needs root (or CAP_NET_RAW) and --allow-ffi.

Options:
  --host ADDR       IPv4 address to ping                        [default: 127.0.0.1]
  --count N         requests to send, 0 for until Ctrl-C        [default: 4]
  --interval TIME   time between requests (500ms, 1s)           [default: 1s]
  --timeout TIME    time to wait for each reply                 [default: 1s]
  --size BYTES      data bytes per request                      [default: 56]
  -q, --quiet       print only the summary
  --json            print one JSON object per reply, timeout and summary
  -h, --help        show this help

Exit status: 0 when a reply came, 1 when none did or on an error, 2 for bad flags.

Run:    sudo deno run --allow-ffi scripts/raw_ping.ts --host 127.0.0.1
Try it: ping -c 4 127.0.0.1 (and compare)`;

async function main(args: string[]): Promise<number | void> {
  const flags = parseFlags(args, {
    string: ["host", "count", "interval", "timeout", "size"],
    boolean: ["quiet", "json", "help"],
    alias: { h: "help", q: "quiet" },
  });
  if (flags.help) return printLine(USAGE);
  const host = parseHost(flags.host ?? "127.0.0.1");
  if (!isIPv4(host)) {
    throw new UsageError(`Cannot ping "${host}": --host must be an IPv4 address (ICMPv4 only)`);
  }
  const count = parseCount(flags.count ?? "4", "--count", { min: 0 });
  const size = parseSize(flags.size ?? "56", "--size", { min: 0, max: 65535 - 28 });
  const options: PingOptions = {
    host,
    count: count === 0 ? Infinity : count,
    interval: parseDuration(flags.interval ?? "1s", "--interval"),
    timeout: parseDuration(flags.timeout ?? "1s", "--timeout"),
    size,
  };

  using stop = stopSignal();
  const print = (value: Record<string, unknown>, line: string) => {
    if (flags.json) printLine(JSON.stringify(value));
    else if (!flags.quiet) printLine(line);
  };
  const summary = await ping({
    ...options,
    signal: stop.signal,
    onEvent(event) {
      if (event.event === "start") {
        if (!flags.json) printLine(`PING ${host} ${size}(${size + 28}) bytes of data.`);
      } else if (event.event === "timeout") {
        print(event, `no reply for icmp_seq=${event.seq}`);
      } else {
        print(
          { ...event, timeMs: round3(event.timeMs) },
          `${event.bytes} bytes from ${event.from}: icmp_seq=${event.seq} ttl=${event.ttl} ` +
            `time=${event.timeMs.toFixed(3)} ms`,
        );
      }
    },
  });
  if (flags.json) {
    const { times: _, ...rest } = summary;
    const rounded = Object.entries(rest).map((
      [k, v],
    ) => [k, typeof v === "number" ? round3(v) : v]);
    printLine(JSON.stringify({ event: "summary", ...Object.fromEntries(rounded) }));
  } else {
    printLine("");
    for (const line of formatSummary(summary)) printLine(line);
  }
  return summary.transmitted > 0 && summary.received === 0 ? 1 : 0;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

if (import.meta.main) runMain("raw_ping", () => main(Deno.args));
