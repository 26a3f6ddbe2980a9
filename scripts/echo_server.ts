/**
 * Multiplexed echo server — PyMOTW's `select()` echo server: one loop serves every connection,
 * keeps what each one still has to send, and narrates each step. Unlike the original it bounds
 * every queue, finishes echoing after a half-close, survives resets, limits connections and
 * idle time, and drains before it stops on Ctrl-C. `-x` adds a hex dump of what each client
 * sends.
 *
 * Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_server.ts
 * Workers: deno run --allow-net=127.0.0.1:10000 --allow-read=scripts/echo_server.ts,lib \
 *           scripts/echo_server.ts --workers auto
 * Unix:   deno run --allow-read=/tmp/echo.sock --allow-write=/tmp/echo.sock \
 *           --allow-net=unix:/tmp/echo.sock scripts/echo_server.ts --unix /tmp/echo.sock
 * Try it: nc 127.0.0.1 10000   (or `deno task echo-client`)
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printError, runMain, stopSignal } from "../lib/cli.ts";
import { limitsFromFlags } from "../lib/mux/server_flags.ts";
import { describeError } from "../lib/errors.ts";
import { escapeBytes } from "../lib/escape.ts";
import { hexDump } from "../lib/hexdump.ts";
import { parseEndpoint, parseFlags, rejectTogether } from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import {
  type MuxStats,
  serveEcho,
  type ServeEchoOptions,
  type ServerEvent,
} from "../lib/mux/mod.ts";
import { describeAcceptError } from "../lib/net/accept.ts";
import { describeProxyRejection, proxyTimeoutFromFlags } from "../lib/net/proxy_listener.ts";
import { serverTlsFromFlags } from "../lib/tls.ts";
import {
  isWorkerThread,
  serveAsWorker,
  type ServeIo,
  serveOnWorkers,
  workersFromFlags,
} from "../lib/workers/mod.ts";

export { serveEcho, type ServeEchoOptions } from "../lib/mux/mod.ts";

/** How much of a message a narration line shows. */
const SHOWN_BYTES = 72;

/** One narration line per event, in the words of the original. */
export function narrate(event: ServerEvent): string {
  switch (event.type) {
    case "connection":
      return `new connection from ${formatAddr(event.peer)}`;
    case "received":
      return `received "${show(event.bytes)}" from ${formatAddr(event.peer)}`;
    case "sending":
      return `sending "${show(event.bytes)}" to ${formatAddr(event.peer)}`;
    case "refused":
      return `refusing ${formatAddr(event.peer)}: too many connections`;
    case "closing": {
      const why = event.reason === "idle"
        ? " (idle)"
        : event.reason === "stop"
        ? " (server stopping)"
        : event.reason === "error"
        ? ` (${describeError(event.error)})`
        : "";
      return `closing ${formatAddr(event.peer)}${why}`;
    }
  }
}

/** The same event as one line of JSON in the collection's schema; with `--workers`, `worker`
 * names the worker that served it. */
export function toJson(event: ServerEvent, worker?: number): string {
  const served = worker === undefined ? {} : { worker };
  switch (event.type) {
    case "received":
    case "sending":
      return formatJsonEvent(event.type, { peer: event.peer, data: event.bytes, ...served }, {
        maxDataBytes: SHOWN_BYTES,
      });
    case "closing":
      return formatJsonEvent("closing", {
        peer: event.peer,
        reason: event.reason,
        ...(event.error === undefined ? {} : { error: describeError(event.error) }),
        ...(event.dropped === undefined ? {} : { dropped: event.dropped }),
        ...served,
      });
    default:
      return formatJsonEvent(event.type, { peer: event.peer, ...served });
  }
}

/** With `-x`: the narration line, and under a "received" line the bytes in the layout of `xxd`,
 * offsets counted in that client's stream. */
export function narrateHex(event: ServerEvent): string {
  const line = narrate(event);
  if (event.type !== "received") return line;
  return `${line}\n${hexDump(event.bytes, { offset: event.offset }).trimEnd()}`;
}

function show(bytes: Uint8Array): string {
  return escapeBytes(bytes, { maxBytes: SHOWN_BYTES });
}

const USAGE = `Usage: echo_server.ts [options]

The multiplexed echo server: sends back every byte each client sends, serving all clients
from one event loop (PyMOTW's select() server).

Options:
  --host HOST                   address to bind (IPv4, IPv6 or name)     [default: 127.0.0.1]
  -p, --port PORT               port to bind, 0 for any free port         [default: 10000]
  --unix PATH                   bind a Unix stream socket instead of TCP
  --max-connections N           close connections beyond N at once        [default: 10000]
  --idle-timeout DURATION       close a connection idle this long (5s, 2m) [default: never]
  --high-water-mark SIZE        stop reading a client while SIZE bytes wait for it [default: 64k]
  --backlog N                   pending connections queued by the kernel [default: 4096]
  --tls                         serve TLS, with --cert FILE and --key FILE (PEM; needs --allow-read)
  --alpn P1,P2                  ALPN protocols to offer with --tls (repeatable)
  --handshake-timeout DURATION  close a TLS client that has not finished its handshake [default: 10s]
  --grace DURATION              after a stop, time left to finish echoing  [default: 5s]
  --proxy-protocol              read a PROXY protocol header (v1 or v2) first on every
                                connection: its client address is the one logged (not with --tls)
  --proxy-timeout DURATION      close a connection whose PROXY header is not complete by then
                                                                          [default: 5s]
  --workers N                   N worker threads on one port (reusePort, Linux), or auto for one
                                per CPU; needs --allow-read of the program's files [default: 1]
  -x, --hex                     under each "received" line, the bytes as a hex dump (xxd's
                                layout, offsets counting that client's bytes)
  -q, --quiet                   print only the listening line and errors
  --json                        print one JSON object per event
  -h, --help                    show this help
  --version                     print the version

With --proxy-protocol, a connection without a valid header (garbage, too long, cut short, or
too slow) is closed with one line on stderr and never echoed. With --workers, --json events say
which worker served them, a worker that dies is reported and restarted, and --unix is refused
(a Unix socket cannot be shared by reusePort).

Ctrl-C (SIGINT) or SIGTERM stops accepting, finishes echoing what was received, shuts down each
connection's sending side, discards what still arrives until the client closes (within --grace),
and exits 0; bytes it could not echo are reported. Errors about one connection end that
connection; running out of descriptors pauses accepting until some are free.

Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_server.ts
Try it: nc 127.0.0.1 10000`;

/** What one echo server (or each worker of one) serves: plain data, so a worker can get it. */
export interface EchoPlan {
  /** Where to listen, limits and TLS: everything but the hooks. */
  options: Omit<ServeEchoOptions, "signal" | "onEvent" | "onAcceptError" | "proxyProtocol">;
  /** Read a PROXY header first, with this deadline (ms). */
  proxyTimeout?: number;
  /** What to print per event. */
  output: "text" | "hex" | "json" | "quiet";
}

/** Serves `plan` until `io.signal` stops it; resolves with the final counters. */
export async function serveEchoPlan(plan: EchoPlan, io: ServeIo<MuxStats>): Promise<MuxStats> {
  const { printLine, printError, id } = io;
  const server = await serveEcho({
    ...plan.options,
    proxyProtocol: plan.proxyTimeout === undefined ? undefined : {
      timeout: plan.proxyTimeout,
      onRejected: (rejection) => printError(`echo_server: ${describeProxyRejection(rejection)}`),
    },
    signal: io.signal,
    // With --quiet no event is even built: the loop skips them when nobody listens.
    onEvent: plan.output === "quiet"
      ? undefined
      : plan.output === "json"
      ? (event) => printLine(toJson(event, id))
      : plan.output === "hex"
      ? (event) => printLine(narrateHex(event))
      : (event) => printLine(narrate(event)),
    onAcceptError: (report) => printError(`echo_server: ${describeAcceptError(report)}`),
  });
  io.listening(server.addr, () => ({ ...server.stats }));
  await server.finished;
  return { ...server.stats };
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: [
      "host",
      "port",
      "unix",
      "max-connections",
      "idle-timeout",
      "high-water-mark",
      "backlog",
      "handshake-timeout",
      "grace",
      "cert",
      "key",
      "proxy-timeout",
      "workers",
    ],
    boolean: ["quiet", "json", "hex", "tls", "proxy-protocol"],
    collect: ["alpn"],
    alias: { p: "port", q: "quiet", x: "hex" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json", "hex"]);
  const workers = workersFromFlags(flags);
  // Before the certificate is read: --tls with --proxy-protocol is refused for what it is.
  const proxyTimeout = proxyTimeoutFromFlags(flags);
  const plan: EchoPlan = {
    options: {
      ...parseEndpoint(flags, 10000),
      ...limitsFromFlags(flags),
      tls: await serverTlsFromFlags(flags),
      reusePort: workers > 1,
    },
    proxyTimeout,
    output: flags.quiet ? "quiet" : flags.json ? "json" : flags.hex ? "hex" : "text",
  };

  using stop = stopSignal();
  const listening = (addr: Deno.Addr) => printError(`Listening on ${formatAddr(addr)}`);
  const stats = await serveOnWorkers({
    name: "echo_server",
    module: import.meta.url,
    count: workers,
    config: plan,
    withPort: (plan, port) => ({ ...plan, options: { ...plan.options, port } }),
    serve: serveEchoPlan,
    signal: stop.signal,
    listening,
  });
  const { total = 0, bytesOut = 0, dropped = 0 } = stats;
  if (dropped > 0) printError(`echo_server: the stop dropped ${dropped} bytes it could not echo`);
  if (!flags.quiet && !flags.json) {
    const connections = total === 1 ? "1 connection" : `${total} connections`;
    printError(`stopped after ${connections} and ${bytesOut} bytes echoed`);
  }
}

if (import.meta.main) {
  // With --workers, each worker thread runs this file again and serves what main() sends it.
  if (isWorkerThread()) {
    serveAsWorker<EchoPlan, MuxStats>((worker) => serveEchoPlan(worker.config, worker));
  } else runMain("echo_server", () => main(Deno.args));
}
