/**
 * UDP sender — the tutorial's sender: prints the target and the message, then sends the
 * message as one datagram (`sendto`). UDP has no connection: nothing says whether it arrived,
 * unless the receiver answers (`--wait-reply`, against `udp_receive.ts --echo`).
 *
 * Run:    deno run --allow-net=127.0.0.1 scripts/udp_send.ts
 * Try it: deno task udp-receive, or `socat -u UDP-RECV:5005,bind=127.0.0.1 -`, then this
 *
 * @module
 */
import { formatAddr, formatTarget } from "../lib/address.ts";
import { printError, printLine, runMain } from "../lib/cli.ts";
import {
  describeFamily,
  maxPayload,
  UDP_IPV4_MAX_PAYLOAD,
  UDP_IPV6_MAX_PAYLOAD,
  UNIX_DATAGRAM_SEND_MAX,
} from "../lib/datagram/limits.ts";
import { sendDatagrams, type SendOptions } from "../lib/datagram/send.ts";
import { EXIT_RUNTIME, UsageError } from "../lib/errors.ts";
import { escapeBytes, escapeText } from "../lib/escape.ts";
import { readBoundedFile } from "../lib/files.ts";
import {
  parseCount,
  parseDuration,
  parseEndpoint,
  parseFlags,
  parseHost,
  rejectTogether,
} from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { requireRead } from "../lib/permissions.ts";

export { sendDatagrams, UDP_IPV4_MAX_PAYLOAD, UDP_IPV6_MAX_PAYLOAD };
export type { SendOptions, SendResult } from "../lib/datagram/send.ts";

/** The message line shows at most this much of a message (a file may be 200 KiB). */
const SHOWN_BYTES = 1024;

const USAGE = `Usage: udp_send.ts [options] [HOST [PORT]]

The tutorial's UDP sender: prints the target and the message, then sends it as one datagram.
HOST and PORT may be given as nc takes them; flags win. With --wait-reply it prints what
comes back, against udp_receive.ts --echo or any peer that answers.

Options:
      --host HOST          target host (IPv4, IPv6 or name)     [default: 127.0.0.1]
  -p, --port PORT          target port                          [default: 5005]
      --unix PATH          send to a Unix datagram socket instead of UDP
  -s, --source ADDR        send from this address; with --unix, bind this path (a reply
                           needs one)       [default: 127.0.0.1 for a loopback target]
      --message TEXT       what to send; '' sends an empty datagram, and
                           --message=-x a text that starts with -
                                                                [default: Hello, World!]
      --message-file PATH  send a regular file's bytes, or standard input's for -
                           (needs --allow-read=PATH)
  -c, --count N            send the message N times             [default: 1]
  -b, --broadcast          allow a broadcast destination (see below)
      --wait-reply         wait for one reply per datagram, print it; exit 1 if one is missing
  -w, --timeout DURATION   longest wait for a send or for the next reply  [default: 2s]
  -v, --verbose            say where it sends from, and who each reply came from
      --json               one JSON object per datagram sent ("sent") and reply ("reply")
  -q, --quiet              do not print the target and message
  -h, --help               show this help
      --version            show the version

A datagram holds at most ${UDP_IPV4_MAX_PAYLOAD} bytes over IPv4, ${UDP_IPV6_MAX_PAYLOAD} over IPv6, and
${UNIX_DATAGRAM_SEND_MAX} to a Unix socket (its default send buffer less 32 bytes).

Broadcast only when asked: Deno sets SO_BROADCAST on every UDP socket, so where Python's
sendto and nc -u fail with EACCES, this refuses by address unless -b is given:
255.255.255.255, 127.255.255.255, and every interface's broadcast address when it may read
them (--allow-sys=networkInterfaces); without that, every IPv4 address ending in .255.

Replies are printed escaped like received data; any datagram that reaches the sending
socket counts as one.

Run:    deno run --allow-net=127.0.0.1 scripts/udp_send.ts
Try it: deno task udp-receive, then this; or udp_receive.ts --echo, then this --wait-reply`;

async function main(args: string[]): Promise<number | void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "source", "message", "message-file", "count", "timeout"],
    boolean: ["quiet", "verbose", "broadcast", "json", "wait-reply"],
    // An empty message is a message: `--message ''` sends an empty datagram.
    allowEmpty: ["message"],
    alias: {
      p: "port",
      s: "source",
      c: "count",
      w: "timeout",
      q: "quiet",
      v: "verbose",
      b: "broadcast",
    },
    positional: ["host", "port"],
    usage: USAGE,
  });
  rejectTogether(flags, ["message", "message-file"]);
  rejectTogether(flags, ["quiet", "json"]);
  const { hostname, port, path } = parseEndpoint(flags, 5005);
  const options: SendOptions = {
    hostname,
    port,
    path,
    count: parseCount(flags.count ?? "1", "--count"),
    source: flags.source === undefined || path !== undefined
      ? flags.source
      : parseHost(flags.source, "--source"),
    broadcast: flags.broadcast,
    waitReply: flags["wait-reply"],
    timeout: parseDuration(flags.timeout ?? "2s", "--timeout"),
  };
  if (options.waitReply && path !== undefined && options.source === undefined) {
    throw new UsageError("--wait-reply over --unix needs -s PATH: an unnamed socket gets no reply");
  }
  const message = await readMessage(flags.message, flags["message-file"], {
    path,
    hostname,
  });
  const target = formatTarget({ path, hostname, port });
  let local: Deno.Addr | undefined;
  const result = await sendDatagrams(message, {
    ...options,
    // Once the destination has passed every check: a refused send prints nothing as if it
    // had been sent.
    onLocal: (addr) => {
      local = addr;
      if (!flags.quiet && !flags.json) {
        for (const line of targetLines(message, options)) printLine(line);
      }
      if (flags.verbose) printError(`Sending from ${formatAddr(addr)}`);
    },
    onSent: (bytes) => {
      if (flags.json) printLine(formatJsonEvent("sent", { peer: target, local, bytes }));
    },
    onReply: (data, peer) => {
      if (flags.json) return printLine(formatJsonEvent("reply", { peer, local, data }));
      const from = flags.verbose ? ` from ${formatAddr(peer)}` : "";
      printLine(`received reply${from}: ${escapeBytes(data)}`);
    },
  });
  if (!options.waitReply || result.replies >= result.sent) return;
  const wait = flags.timeout ?? "2s";
  if (flags.json) {
    printLine(formatJsonEvent("no-reply", {
      peer: target,
      local,
      replies: result.replies,
      sent: result.sent,
    }));
  }
  printError(
    result.replies === 0
      ? `udp_send: no reply from ${escapeText(target)} within ${wait}`
      : `udp_send: ${result.replies} of ${result.sent} replies from ${
        escapeText(target)
      } came within ${wait}`,
  );
  return EXIT_RUNTIME;
}

/** What the tutorial's sender prints before it sends: the target, then the message. */
function targetLines(message: Uint8Array, { hostname, port, path }: SendOptions): string[] {
  const target = path === undefined
    ? [`UDP target IP: ${hostname}`, `UDP target port: ${port}`]
    : [`Unix datagram target: ${escapeText(path)}`];
  return [...target, `message: ${escapeBytes(message, { maxBytes: SHOWN_BYTES })}`];
}

/** The message: `--message` (may be empty), a file, or the tutorial's default. */
async function readMessage(
  text: string | undefined,
  file: string | undefined,
  target: { hostname: string; path?: string },
): Promise<Uint8Array> {
  const max = maxPayload(target);
  if (file !== undefined) {
    if (file !== "-") {
      // Opening a FIFO blocks until something writes to it: look before opening.
      requireRead(file, `read --message-file "${file}"`);
      const info = await Deno.stat(file).catch(() => undefined);
      if (info !== undefined && !info.isFile) {
        throw new Error(`Cannot read --message-file "${file}": it is not a regular file`);
      }
    }
    return await readBoundedFile(file, { flag: "--message-file", maxBytes: max, allowStdin: true });
  }
  const message = new TextEncoder().encode(text ?? "Hello, World!");
  if (message.length > max) {
    throw new UsageError(
      `Cannot send --message of ${message.length} bytes: ${
        describeFamily(target)
      } holds at most ${max}`,
    );
  }
  return message;
}

if (import.meta.main) runMain("udp_send", () => main(Deno.args));
