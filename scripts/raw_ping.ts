/**
 * ICMP echo over a raw socket, like `ping`: send an echo request every interval whether or not
 * the last reply came, match each reply (even a late one) to its sequence number, print bytes,
 * TTL and round-trip time, then a summary with loss, elapsed time and min/avg/max/mdev. Times
 * are measured as iputils measures them: from a clock reading just before `sendto` to the
 * kernel's receive timestamp on the reply (`SO_TIMESTAMPNS`), both `CLOCK_REALTIME`, so the
 * event loop's own delays are not counted. Ctrl-C stops early and still prints the summary.
 * Needs root (or CAP_NET_RAW) and --allow-ffi: Deno has no raw sockets, so this reaches libc
 * through FFI.
 *
 * Run:    sudo deno run --allow-ffi scripts/raw_ping.ts -c 4 127.0.0.1
 * Try it: compare with `ping -c 4 127.0.0.1`, or watch with `tcpdump -i lo -n icmp`
 *
 * @module
 */
import { delay } from "@std/async/delay";
import { equals } from "@std/bytes/equals";
import { printLine, runMain, stopSignal } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { type RawPacket, RawSocket } from "../lib/ffi/raw_socket.ts";
import { resolveIPv4 } from "../lib/ffi/raw_resolve.ts";
import {
  isIPv6,
  parseCount,
  parseDuration,
  parseFlags,
  parseHost,
  parseSize,
  rejectTogether,
} from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { decodeIcmp, encodeIcmpEcho, ICMP_TYPE, icmpEchoOf } from "../lib/packet/icmp.ts";
import { decodeIPv4 } from "../lib/packet/ipv4.ts";
import { IPPROTO } from "../lib/packet/packet_fields.ts";

/** Options for {@linkcode ping}. */
export interface PingOptions {
  /** IPv4 address to ping. @default {"127.0.0.1"} */
  host?: string;
  /** Echo requests to send; `Infinity` until aborted. @default {4} */
  count?: number;
  /** Milliseconds from one request to the next, replies or not. @default {1000} */
  interval?: number;
  /** Milliseconds to wait for each reply before reporting it missing. @default {1000} */
  timeout?: number;
  /** Stop after this many milliseconds, whatever was sent or received. @default {Infinity} */
  deadline?: number;
  /** Bytes of data in each request, after the 8-byte ICMP header. @default {56} */
  size?: number;
  /** ICMP identifier that tells our replies from other pings'. @default {Deno.pid & 0xffff} */
  identifier?: number;
  /** Stops sending; the summary covers what was sent until then. */
  signal?: AbortSignal;
  /** Called once the socket is open, then for every request, reply and missing reply. */
  onEvent?: (event: PingEvent) => void;
}

/** What happened, in order. */
export type PingEvent =
  | { event: "start"; host: string; size: number }
  | { event: "request"; seq: number; bytes: number }
  | {
    event: "reply";
    seq: number;
    bytes: number;
    from: string;
    ttl: number;
    timeMs: number;
    /** Whether it came after its `timeout` event. */
    late: boolean;
  }
  | { event: "timeout"; seq: number };

/** What {@linkcode ping} measured. */
export interface PingSummary {
  host: string;
  transmitted: number;
  received: number;
  /** Lost share in percent. */
  lossPercent: number;
  /** Milliseconds from the first request to the last request or reply, as ping's `time`. */
  elapsedMs: number;
  /** Round-trip times in ms, in order of arrival. */
  times: number[];
  minMs?: number;
  avgMs?: number;
  maxMs?: number;
  /** Standard deviation, which `ping` calls mdev. */
  mdevMs?: number;
}

/** A request still waiting for its reply. */
interface Probe {
  seq: number;
  sentNs: bigint;
  timedOut: boolean;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Sends echo requests to `host` every `interval` and collects the replies.
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
  const data = Uint8Array.from({ length: options.size ?? 56 }, (_, i) => i & 0xff);
  const emit = options.onEvent ?? (() => {});
  const pending = new Map<number, Probe>();
  const times: number[] = [];
  let transmitted = 0, firstNs = 0n, lastNs = 0n;
  // Ends sending and waiting: the caller's signal or the deadline, whichever comes first.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const deadline = Number.isFinite(options.deadline)
    ? setTimeout(onAbort, options.deadline)
    : undefined;
  // Wakes the final wait whenever a reply or a timeout changes what is pending.
  let changed = Promise.withResolvers<void>();
  const notify = () => {
    changed.resolve();
    changed = Promise.withResolvers<void>();
  };

  using socket = RawSocket.inet(IPPROTO.ICMP, {
    timestamps: true,
    icmpTypes: [ICMP_TYPE.ECHO_REPLY],
  });
  emit({ event: "start", host, size: data.length });
  const onPacket = (packet: RawPacket) => {
    const reply = matchReply(packet, host, identifier, data);
    const probe = reply && pending.get(reply.sequence);
    if (!reply || !probe) return; // not ours, or a duplicate
    pending.delete(reply.sequence);
    clearTimeout(probe.timer);
    const receivedNs = packet.receivedNs ?? BigInt(Date.now()) * 1_000_000n;
    if (receivedNs > lastNs) lastNs = receivedNs;
    const timeMs = Number(receivedNs - probe.sentNs) / 1e6;
    times.push(timeMs);
    emit({ event: "reply", seq: probe.seq, ...reply.fields, timeMs, late: probe.timedOut });
    notify();
  };
  const receiving = receiveAll(socket, onPacket, stop.signal);
  try {
    const startedAt = performance.now();
    for (let seq = 1; seq <= count && !stop.signal.aborted; seq++) {
      const sequence = seq & 0xffff;
      const request = encodeIcmpEcho({ type: ICMP_TYPE.ECHO_REQUEST, identifier, sequence, data });
      const sentNs = socket.sendStamped(request, host);
      if (transmitted++ === 0) firstNs = sentNs;
      if (sentNs > lastNs) lastNs = sentNs;
      emit({ event: "request", seq, bytes: request.length });
      const probe: Probe = { seq, sentNs, timedOut: false, timer: undefined! };
      probe.timer = setTimeout(() => {
        probe.timedOut = true;
        emit({ event: "timeout", seq });
        notify();
      }, timeout);
      pending.set(sequence, probe);
      // The next request leaves on schedule, whether or not this one was answered.
      const wait = startedAt + seq * interval - performance.now();
      if (seq < count && wait > 0) await delay(wait, { signal: stop.signal }).catch(() => {});
    }
    // After the last request: until every reply came or was reported missing (a late one is
    // still counted while we wait for the others), unless stopped.
    while (!stop.signal.aborted && [...pending.values()].some((probe) => !probe.timedOut)) {
      await Promise.race([changed.promise, receiving]);
    }
  } finally {
    stop.abort();
    clearTimeout(deadline);
    options.signal?.removeEventListener("abort", onAbort);
    for (const probe of pending.values()) clearTimeout(probe.timer);
    await receiving;
  }
  return summarize(host, transmitted, times, Number(lastNs - firstNs) / 1e6);
}

/** Passes every packet to `onPacket` until `signal` aborts. */
async function receiveAll(
  socket: RawSocket,
  onPacket: (packet: RawPacket) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    const packet = await socket.receive({ signal });
    if (packet === null) return;
    onPacket(packet);
  }
}

/** The echo reply to one of our requests, or `null`; on lo that skips our own requests. */
function matchReply(packet: RawPacket, host: string, identifier: number, data: Uint8Array) {
  try {
    const { header, payload } = decodeIPv4(packet.data);
    if (header.src !== host) return null;
    const message = decodeIcmp(payload);
    if (!message.checksumOk) return null;
    const echo = icmpEchoOf(message);
    if (
      echo.type !== ICMP_TYPE.ECHO_REPLY || echo.identifier !== identifier ||
      !equals(echo.data, data)
    ) {
      return null;
    }
    return {
      sequence: echo.sequence,
      fields: { bytes: payload.length, from: header.src, ttl: header.ttl },
    };
  } catch (error) {
    // Some other ICMP message, or a malformed one: not our reply.
    if (!(error instanceof RangeError || error instanceof SyntaxError)) throw error;
    return null;
  }
}

function summarize(
  host: string,
  transmitted: number,
  times: number[],
  elapsedMs: number,
): PingSummary {
  const received = times.length;
  const lossPercent = transmitted === 0 ? 0 : ((transmitted - received) / transmitted) * 100;
  const summary: PingSummary = { host, transmitted, received, lossPercent, elapsedMs, times };
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

/**
 * The statistics lines `ping` prints at the end, for the host as the user typed it.
 *
 * @example
 * ```ts
 * import { formatSummary } from "./raw_ping.ts";
 * const [title, counts] = formatSummary({
 *   host: "127.0.0.1",
 *   transmitted: 4,
 *   received: 0,
 *   lossPercent: 100,
 *   elapsedMs: 3004.6,
 *   times: [],
 * }, "localhost");
 * if (title !== "--- localhost ping statistics ---") throw new Error(title);
 * if (counts !== "4 packets transmitted, 0 received, 100% packet loss, time 3005ms") {
 *   throw new Error(counts);
 * }
 * ```
 */
export function formatSummary(summary: PingSummary, name: string = summary.host): string[] {
  const loss = Number(summary.lossPercent.toFixed(4));
  const lines = [
    `--- ${name} ping statistics ---`,
    `${summary.transmitted} packets transmitted, ${summary.received} received, ` +
    `${loss}% packet loss, time ${Math.round(summary.elapsedMs)}ms`,
  ];
  if (summary.received > 0) {
    const ms = [summary.minMs, summary.avgMs, summary.maxMs, summary.mdevMs]
      .map((value) => value!.toFixed(3));
    lines.push(`rtt min/avg/max/mdev = ${ms.join("/")} ms`);
  }
  return lines;
}

const USAGE = `Usage: raw_ping.ts [options] [HOST]

Sends ICMP echo requests over a raw socket and prints each reply, like ping. HOST is an IPv4
address or a name (resolved as ping does, /etc/hosts first).
Needs root (or CAP_NET_RAW) and --allow-ffi.

Options:
  --host HOST            host to ping (or the HOST argument)    [default: 127.0.0.1]
  -c, --count N          requests to send, 0 for until Ctrl-C    [default: 4]
  -i, --interval TIME    time between requests (0.2, 500ms, 1s)  [default: 1s]
  -W, --timeout TIME     time to wait for each reply             [default: 1s]
  -w, --deadline TIME    stop after this long, whatever happened
  -s, --size BYTES       data bytes per request                  [default: 56]
  -q, --quiet            print only the summary
  --json                 print one JSON object per request, reply, timeout and summary
  -h, --help             show this help

A bare number of seconds works as with ping (-i 0.2). Exit status: 0 when a reply came, 1 when
none did or on an error, 2 for bad flags.

Run:    sudo deno run --allow-ffi scripts/raw_ping.ts -c 4 127.0.0.1
Try it: ping -c 4 127.0.0.1 (and compare)`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    string: ["host", "count", "interval", "timeout", "deadline", "size"],
    boolean: ["quiet", "json"],
    alias: { c: "count", i: "interval", W: "timeout", w: "deadline", s: "size", q: "quiet" },
    positional: ["host"],
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json"]);
  const name = parseHost(flags.host ?? "127.0.0.1");
  if (isIPv6(name)) {
    throw new UsageError(`Cannot ping "${name}": IPv6 is not supported (ICMPv4 only)`);
  }
  const count = parseCount(flags.count ?? "4", "--count", { min: 0 });
  const size = parseSize(flags.size ?? "56", "--size", { min: 0, max: 65535 - 28 });
  const options: PingOptions = {
    count: count === 0 ? Infinity : count,
    interval: parseDuration(flags.interval ?? "1s", "--interval"),
    timeout: parseDuration(flags.timeout ?? "1s", "--timeout"),
    deadline: flags.deadline === undefined
      ? undefined
      : parseDuration(flags.deadline, "--deadline"),
    size,
  };
  const address = await resolveIPv4(name);

  using stop = stopSignal();
  const json = (event: string, fields: Record<string, unknown>) =>
    printLine(formatJsonEvent(event, { peer: address, ...fields }));
  const summary = await ping({
    ...options,
    host: address,
    signal: stop.signal,
    onEvent(event) {
      if (flags.json) {
        if (event.event === "start") json("start", { host: name, bytes: size });
        else if (event.event === "reply") {
          json("reply", {
            bytes: event.bytes,
            seq: event.seq,
            ttl: event.ttl,
            time_ms: event.timeMs,
            late: event.late,
          });
        } else {json(event.event, {
            seq: event.seq,
            ...("bytes" in event ? { bytes: event.bytes } : {}),
          });}
        return;
      }
      if (event.event === "start") {
        printLine(`PING ${name} (${address}) ${size}(${size + 28}) bytes of data.`);
      } else if (flags.quiet || event.event === "request") {
        return;
      } else if (event.event === "timeout") {
        printLine(`no answer yet for icmp_seq=${event.seq}`);
      } else {
        printLine(
          `${event.bytes} bytes from ${event.from}: icmp_seq=${event.seq} ttl=${event.ttl} ` +
            `time=${formatMs(event.timeMs)} ms`,
        );
      }
    },
  });
  if (flags.json) {
    json("summary", {
      host: name,
      transmitted: summary.transmitted,
      received: summary.received,
      loss_percent: summary.lossPercent,
      time_ms: Math.round(summary.elapsedMs),
      ...(summary.received > 0
        ? {
          rtt_min_ms: summary.minMs,
          rtt_avg_ms: summary.avgMs,
          rtt_max_ms: summary.maxMs,
          rtt_mdev_ms: summary.mdevMs,
        }
        : {}),
    });
  } else {
    printLine("");
    for (const line of formatSummary(summary, name)) printLine(line);
  }
  return summary.received === 0 ? 1 : 0;
}

/** Three decimals as ping prints them below 100 ms, fewer above. */
function formatMs(ms: number): string {
  return ms < 100 ? ms.toFixed(3) : ms < 1000 ? ms.toFixed(1) : ms.toFixed(0);
}

if (import.meta.main) runMain("raw_ping", () => main(Deno.args));
