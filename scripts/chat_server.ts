/**
 * Chat and broker server — ncat's `--broker` and `--chat` on the multiplexer. Broker (the
 * default): every byte a client sends goes to every other client, unchanged. Chat (`--chat`):
 * line by line, each prefixed with its sender (`<user3> hi`), control characters escaped, long
 * lines cut with a notice, and ncat's `<announce>` lines when clients come and go.
 *
 * Unlike ncat's broker, a client that stops reading never holds up the others: once
 * `--high-water-mark` bytes wait for it, it is disconnected (and, in chat mode, the others are
 * told why). `-x` prints what each client sends as a hex dump (xxd's layout). The default port
 * is ncat's own, 31337. `--workers` above 1 is refused: every client must be in one map, which
 * worker threads with their own listeners would split.
 *
 * Run:    deno run --allow-net=127.0.0.1:31337 scripts/chat_server.ts --chat
 * Unix:   deno run --allow-read=/tmp/chat.sock --allow-write=/tmp/chat.sock \
 *           --allow-net=unix:/tmp/chat.sock scripts/chat_server.ts --unix /tmp/chat.sock
 * Try it: nc 127.0.0.1 31337   (in two terminals)
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { limitsFromFlags } from "../lib/mux/server_flags.ts";
import { escapeBytes } from "../lib/escape.ts";
import { parseEndpoint, parseFlags, parseSize, rejectTogether } from "../lib/flags.ts";
import { hexDump } from "../lib/hexdump.ts";
import { describeError, UsageError } from "../lib/errors.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import {
  type ChatEvent,
  type ChatMode,
  type ConnView,
  serveChat,
  type ServeChatOptions,
} from "../lib/mux/mod.ts";
import { describeAcceptError } from "../lib/net/accept.ts";
import { serverTlsFromFlags } from "../lib/tls.ts";
import { parseWorkers } from "../lib/workers/mod.ts";

export { serveChat, type ServeChatOptions } from "../lib/mux/mod.ts";

/** The port ncat listens on when it is given none. */
export const DEFAULT_PORT = 31337;

/** How much of a broker message a log line shows. */
const SHOWN_BYTES = 72;

/** One narration line per event. */
export function narrate(event: ChatEvent, mode: ChatMode): string {
  const { user } = event;
  switch (event.type) {
    case "join":
      return `${user} joined from ${formatAddr(event.conn.peer)}`;
    case "message":
      return mode === "chat"
        ? `<${user}> ${escapeBytes(event.bytes)}${event.cut ? " [cut]" : ""}`
        : `${user} sent ${plural(event.bytes.length, "byte")} to ${
          plural(event.receivers, "client")
        }`;
    case "drop":
      return `dropping ${user} (${formatAddr(event.conn.peer)}): ${
        plural(event.queued, "byte")
      } queued for it, over --high-water-mark`;
    case "leave": {
      const why = event.reason === "idle"
        ? " (idle)"
        : event.reason === "stop"
        ? " (server stopping)"
        : event.reason === "dropped"
        ? " (too slow)"
        : event.reason === "error"
        ? ` (${describeError(event.error)})`
        : "";
      return `${user} left${why}`;
    }
  }
}

/** The same event as one line of JSON in the collection's schema. */
export function toJson(event: ChatEvent, mode: ChatMode): string {
  const common = { peer: event.conn.peer, user: event.user };
  switch (event.type) {
    case "join":
      return formatJsonEvent("join", common);
    case "message":
      return formatJsonEvent("message", {
        ...common,
        data: event.bytes,
        receivers: event.receivers,
        ...(event.cut && { cut: true }),
      }, { maxDataBytes: mode === "chat" ? Infinity : SHOWN_BYTES });
    case "drop":
      return formatJsonEvent("drop", { ...common, bytes: event.queued });
    case "leave":
      return formatJsonEvent("leave", {
        ...common,
        bytes: event.conn.bytesIn,
        bytes_sent: event.conn.bytesOut,
        reason: event.reason,
        ...(event.error !== undefined && { error: describeError(event.error) }),
      });
  }
}

/**
 * What `-x` prints for bytes a client sent: a line naming it, then the bytes in the layout of
 * `xxd`, offsets counted in that client's stream.
 */
export function hexLines(conn: ConnView, user: string, bytes: Uint8Array): string {
  const offset = conn.bytesIn - bytes.length;
  const dump = hexDump(bytes, { offset });
  return `${user} (${formatAddr(conn.peer)}) sent ${plural(bytes.length, "byte")}:\n${
    dump.slice(0, -1)
  }`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

const USAGE = `Usage: chat_server.ts [options]

ncat's --broker and --chat: every client's bytes go to every other client (broker), or every
line, prefixed with its sender's name, with join and leave notices (chat).

Options:
  --host HOST                   address to bind (IPv4, IPv6 or name)     [default: 127.0.0.1]
  -p, --port PORT               port to bind, 0 for any free port         [default: 31337]
  --unix PATH                   bind a Unix stream socket instead of TCP
  --broker                      relay bytes unchanged                     [default: on]
  --chat                        relay lines as "<userN> text", with notices [default: off]
  --max-line SIZE               --chat: cut longer lines, with a notice   [default: 4k]
  --high-water-mark SIZE        disconnect a client SIZE bytes behind     [default: 256k]
  --max-connections N           close connections beyond N at once        [default: 10000]
  --idle-timeout DURATION       close a connection idle this long (5s, 2m) [default: never]
  --backlog N                   pending connections queued by the kernel [default: 4096]
  --tls                         serve TLS, with --cert FILE and --key FILE (PEM; needs --allow-read)
  --alpn P1,P2                  ALPN protocols to offer with --tls (repeatable)
  --handshake-timeout DURATION  close a TLS client that has not finished its handshake [default: 10s]
  --grace DURATION              after a stop, time left to deliver what is queued [default: 5s]
  --workers N                   only 1: every client must share one map   [default: 1]
  -x, --hex                     print what each client sends as a hex dump (xxd's layout)
  -q, --quiet                   print only the listening line and errors
  --json                        print one JSON object per event (join, message, drop, leave)
  -h, --help                    show this help
  --version                     print the version

A slow reader: a client that already has --high-water-mark bytes waiting (behind the write in
progress) when more comes for it is disconnected, and what waited is discarded. Nobody else
waits for it, and what is queued for it stays under the mark plus two messages (a message is
what one read of a sender brings, at most 256 KiB; in chat mode, its lines with prefixes).
Dropping bytes instead would corrupt its stream without telling it.

Ctrl-C (SIGINT) or SIGTERM stops accepting, delivers what is queued, shuts down each
connection's sending side (within --grace) and exits 0.

Run:    deno run --allow-net=127.0.0.1:31337 scripts/chat_server.ts --chat
Try it: nc 127.0.0.1 31337   (in two terminals)`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: [
      "host",
      "port",
      "unix",
      "max-line",
      "max-connections",
      "idle-timeout",
      "high-water-mark",
      "backlog",
      "handshake-timeout",
      "grace",
      "cert",
      "key",
      "workers",
    ],
    boolean: ["quiet", "json", "tls", "chat", "broker", "hex"],
    collect: ["alpn"],
    alias: { p: "port", q: "quiet", x: "hex" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json", "hex"]);
  // Workers would each have their own clients: a message would reach only its worker's.
  if (parseWorkers(flags.workers ?? "1") > 1) {
    throw new UsageError("Cannot use --workers with chat_server: its clients must share one map");
  }
  // As with ncat, --chat is a broker that speaks in lines: the two flags go together.
  const mode: ChatMode = flags.chat ? "chat" : "broker";
  const options: ServeChatOptions = {
    ...parseEndpoint(flags, DEFAULT_PORT),
    mode,
    maxLine: parseSize(flags["max-line"] ?? "4k", "--max-line", { max: 1024 * 1024 }),
    ...limitsFromFlags(flags, { highWaterMark: "256k" }),
    tls: await serverTlsFromFlags(flags),
  };

  using stop = stopSignal();
  const server = await serveChat({
    ...options,
    signal: stop.signal,
    // With --quiet no event is even built.
    onChatEvent: flags.quiet ? undefined : flags.json
      ? (event) => printLine(toJson(event, mode))
      // With -x the dump shows what was sent; the message lines would only repeat it.
      : (event) => (!flags.hex || event.type !== "message") && printLine(narrate(event, mode)),
    onReceived: flags.hex
      ? (conn, user, bytes) => printLine(hexLines(conn, user, bytes))
      : undefined,
    onEvent: flags.quiet ? undefined : (event) => {
      if (event.type !== "refused") return;
      printLine(
        flags.json
          ? formatJsonEvent("refused", { peer: event.peer })
          : `refusing ${formatAddr(event.peer)}: too many connections or stopping`,
      );
    },
    onAcceptError: (report) => printError(`chat_server: ${describeAcceptError(report)}`),
  });
  printError(`Listening on ${formatAddr(server.addr)}`);
  await server.finished;
  const { total, bytesIn, bytesOut, dropped } = server.stats;
  if (dropped > 0) {
    printError(`chat_server: the stop dropped ${dropped} bytes it could not deliver`);
  }
  if (!flags.quiet && !flags.json) {
    const connections = total === 1 ? "1 connection" : `${total} connections`;
    printError(`stopped after ${connections}: ${bytesIn} bytes in, ${bytesOut} bytes out`);
  }
}

if (import.meta.main) runMain("chat_server", () => main(Deno.args));
