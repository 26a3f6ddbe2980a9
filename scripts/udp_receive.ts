/**
 * UDP receiver — the tutorial's receiver: bind, then print `received message: <data>` for
 * every datagram (`recvfrom` in a loop). The original reads into 1024 bytes and silently cuts
 * longer datagrams; this receives them whole, and on exit says how many it received and how
 * many the kernel dropped, as tcpdump does. With `--echo` it answers every sender.
 *
 * Run:    deno run --allow-net=127.0.0.1:5005 --allow-run=ss scripts/udp_receive.ts
 * Try it: deno task udp-send, or `echo -n hi | socat - UDP-SENDTO:127.0.0.1:5005`
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import {
  DRAIN_MAX_MS,
  type ReceivedDatagram,
  receiveFrom,
  type ReceiveOptions as LoopOptions,
  type ReceiveSummary,
} from "../lib/datagram/receive.ts";
import { UNIX_DATAGRAM_RECEIVE_MAX } from "../lib/datagram/limits.ts";
import { DROPS_FLAG } from "../lib/datagram/drops.ts";
import { bindDatagram, type DatagramEndpoint } from "../lib/datagram/socket.ts";
import { escapeBytes } from "../lib/escape.ts";
import { parseCount, parseEndpoint, parseFlags, parseSize, rejectTogether } from "../lib/flags.ts";
import { hexDump } from "../lib/hexdump.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { stdout } from "../lib/output.ts";

export type { ReceivedDatagram, ReceiveSummary } from "../lib/datagram/receive.ts";

/** Options for {@linkcode receiveDatagrams}: where to bind, and how the loop runs. */
export interface ReceiveOptions extends DatagramEndpoint, LoopOptions {
  /** Port to bind; 0 picks a free one. @default {5005} */
  port?: number;
}

/**
 * Binds (127.0.0.1:5005 unless told) and yields every datagram until `count` is reached or
 * `signal` aborts; then what the kernel already holds is still yielded (for 2 s at most), and
 * `onSummary` gets the counts, the kernel's drops included. The socket is closed (and a Unix
 * socket file removed) when the iteration ends, however it ends. The yielded bytes are only
 * valid until the next iteration (one buffer is reused).
 *
 * @example Receiving one datagram
 * ```ts
 * import { receiveDatagrams } from "./udp_receive.ts";
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
 * const received = (async () => {
 *   const onListen = (addr: Deno.Addr) => resolve(addr as Deno.NetAddr);
 *   for await (const { data } of receiveDatagrams({ port: 0, count: 1, onListen })) {
 *     return new TextDecoder().decode(data);
 *   }
 * })();
 * const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await sender.send(new TextEncoder().encode("hi"), await bound);
 * sender.close();
 * if (await received !== "hi") throw new Error("lost");
 * ```
 */
export async function* receiveDatagrams(
  options: ReceiveOptions = {},
): AsyncGenerator<ReceivedDatagram> {
  const { hostname = "127.0.0.1", port = 5005, path } = options;
  yield* receiveFrom(await bindDatagram({ hostname, port, path }), options);
}

/**
 * The summary line on exit: `received 3 datagrams, 7 bytes; 0 dropped by the kernel`, then
 * whatever else was not printed whole.
 *
 * @example
 * ```ts
 * import { summaryLine } from "./udp_receive.ts";
 * const line = summaryLine({
 *   local: { transport: "udp", hostname: "127.0.0.1", port: 5005 },
 *   datagrams: 3, bytes: 7, truncated: 0, undecodable: 1, echoed: 0, echoFailed: 0,
 *   kernelDrops: { dropped: 2, source: "ss" }, drainCut: false,
 * }, 0);
 * const expected = "received 3 datagrams, 7 bytes; 2 dropped by the kernel; " +
 *   "1 from an address Deno cannot decode (not printed)";
 * if (line !== expected) throw new Error(line);
 * ```
 */
export function summaryLine(summary: ReceiveSummary, outputDropped: number, echo = false): string {
  const { datagrams, bytes, kernelDrops } = summary;
  const parts = [`received ${plural(datagrams, "datagram")}, ${bytes} bytes`];
  parts.push(
    kernelDrops.dropped === null
      ? `kernel drops unknown (${kernelDrops.unknown})`
      : `${kernelDrops.dropped} dropped by the kernel`,
  );
  if (summary.undecodable > 0) {
    const from = summary.undecodable === 1 ? "an address" : "addresses";
    parts.push(`${summary.undecodable} from ${from} Deno cannot decode (not printed)`);
  }
  if (summary.truncated > 0) {
    parts.push(
      `${summary.truncated} cut by the kernel (longer than ${UNIX_DATAGRAM_RECEIVE_MAX} bytes)`,
    );
  }
  if (echo) {
    parts.push(`${plural(summary.echoed, "reply", "replies")} sent, ${summary.echoFailed} not`);
  }
  if (outputDropped > 0) {
    parts.push(`${plural(outputDropped, "line")} not printed (the output did not keep up)`);
  }
  if (summary.drainCut) {
    parts.push(`stopped draining after ${DRAIN_MAX_MS / 1000} s with datagrams still arriving`);
  }
  return parts.join("; ");
}

function plural(count: number, word: string, words = `${word}s`): string {
  return `${count} ${count === 1 ? word : words}`;
}

const USAGE = `Usage: udp_receive.ts [options]

The tutorial's UDP receiver: prints "received message: <data>" for every datagram, whole (the
original's recvfrom(1024) cuts them), and on exit how many it received and how many the kernel
dropped. With --echo it answers each datagram to its own sender, however many send at once.

Options:
  -s, --host HOST       address to bind (IPv4, IPv6 or name)       [default: 127.0.0.1]
  -p, --port PORT       port to bind, 0 for any free port          [default: 5005]
      --unix PATH       bind a Unix datagram socket instead of UDP
  -c, --count N         exit after N datagrams                     [default: no limit]
      --echo            send every datagram back to its sender (needs --allow-net=HOST,
                        any port; a Unix sender must be bound to a path)
      --max-bytes SIZE  print at most SIZE bytes of a datagram, saying how many were left out
  -v, --verbose         name the sender of every datagram
  -x, --hex             under each datagram's line, its bytes as a hex dump (xxd's layout;
                        no more than --max-bytes)
      --json            one JSON object per datagram ("datagram"), and a "summary" at the end
  -q, --quiet           print nothing per datagram, only the summary
  -h, --help            show this help
      --version         show the version

Control characters in received data and in Unix senders' addresses are printed escaped
(\\n, \\x1b, \\u{202e}). On SIGINT or SIGTERM it still reads what the kernel already holds
(${DRAIN_MAX_MS / 1000} s at most), then prints on stderr: "received N datagrams, B bytes;
D dropped by the kernel". The kernel's count is read with ss (${DROPS_FLAG}), or from
/proc/net/udp (Deno reads /proc only with --allow-all); without either, the summary says it
is unknown. A datagram from a Unix address Deno cannot decode is counted, not printed. UDP
datagrams are always whole; a Unix one longer than ${UNIX_DATAGRAM_RECEIVE_MAX} bytes is printed
as cut (Deno cannot tell by how much).

Run:    deno run --allow-net=127.0.0.1:5005 ${DROPS_FLAG} scripts/udp_receive.ts
Try it: deno task udp-send, or echo -n hi | socat - UDP-SENDTO:127.0.0.1:5005`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "count", "max-bytes"],
    boolean: ["json", "quiet", "verbose", "echo", "hex"],
    alias: { s: "host", p: "port", c: "count", q: "quiet", v: "verbose", x: "hex" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json", "hex"]);
  const maxBytes = flags["max-bytes"] === undefined
    ? Infinity
    : parseSize(flags["max-bytes"], "--max-bytes", { max: UNIX_DATAGRAM_RECEIVE_MAX });
  const endpoint = parseEndpoint(flags, 5005);
  const count = flags.count === undefined ? undefined : parseCount(flags.count, "--count");

  using stop = stopSignal();
  let summary: ReceiveSummary | undefined;
  const datagrams = receiveDatagrams({
    ...endpoint,
    count,
    echo: flags.echo,
    signal: stop.signal,
    onListen: (addr) => printError(`Listening on ${formatAddr(addr)}`),
    onNotice: printError,
    onSummary: (result) => summary = result,
  });
  for await (const { data, peer, truncated } of datagrams) {
    if (flags.json) {
      const fields = { peer, data, ...(truncated ? { truncated } : {}) };
      printLine(formatJsonEvent("datagram", fields, { maxDataBytes: maxBytes }));
    } else if (!flags.quiet) {
      const from = flags.verbose ? ` from ${formatAddr(peer)}` : "";
      const cut = truncated ? " (cut by the kernel: the datagram was longer)" : "";
      const line = `received message${from}: ${escapeBytes(data, { maxBytes })}${cut}`;
      // One write for the line and its dump, so nothing else lands between them.
      const dump = flags.hex ? hexDump(data.subarray(0, maxBytes)).trimEnd() : "";
      printLine(dump === "" ? line : `${line}\n${dump}`);
    }
  }
  if (summary === undefined) return;
  if (flags.json) printLine(formatJsonEvent("summary", summaryFields(summary, flags.echo)));
  printError(summaryLine(summary, stdout.stats.dropped, flags.echo));
}

function summaryFields(summary: ReceiveSummary, echo: boolean): Record<string, unknown> {
  const { kernelDrops } = summary;
  return {
    local: formatAddr(summary.local),
    datagrams: summary.datagrams,
    bytes: summary.bytes,
    kernel_dropped: kernelDrops.dropped,
    ...(kernelDrops.dropped === null
      ? { kernel_dropped_unknown: kernelDrops.unknown }
      : { kernel_dropped_source: kernelDrops.source }),
    undecodable: summary.undecodable,
    truncated: summary.truncated,
    ...(echo ? { echoed: summary.echoed, echo_failed: summary.echoFailed } : {}),
    // This line itself is printed after the count is taken.
    output_dropped: stdout.stats.dropped,
    drain_cut: summary.drainCut,
  };
}

if (import.meta.main) runMain("udp_receive", () => main(Deno.args));
