/**
 * TCP relay — socat's `TCP-LISTEN:9000,fork TCP:host:port` on the multiplexer: every accepted
 * connection gets its own upstream connection, and one loop moves the bytes of all of them,
 * both ways. A side that does not read stops the other from being read (bounded queues both
 * ways), a half-close on one side is passed to the other, and an upstream that refuses or does
 * not answer in time closes that client with one line saying why. Either side may be TCP, a Unix
 * socket or TLS (terminated on the listening side, originated towards the upstream), and a TLS
 * client's ALPN protocol is offered upstream. `-x` prints every relayed chunk as a hex dump
 * (xxd's layout, offsets counted per direction, as socat's `-x` counts them).
 *
 * Behind a load balancer, `--proxy-protocol` reads a PROXY v1/v2 header from every client first
 * (its client address is the one logged); `--send-proxy v1|v2` sends one upstream before any
 * relayed byte (HAProxy's `send-proxy`), naming the client; `--workers N` runs N threads on one
 * port (reusePort, Linux). A stop abandons upstream connects still pending.
 *
 * Run:    deno run --allow-net=127.0.0.1:9000,127.0.0.1:10000 scripts/tcp_relay.ts \
 *           --listen 127.0.0.1:9000 --to 127.0.0.1:10000
 * PROXY:  ... scripts/tcp_relay.ts --to 127.0.0.1:10000 --send-proxy v2, in front of
 *           echo_server.ts --proxy-protocol
 * Workers: deno run --allow-net=127.0.0.1:9000,127.0.0.1:10000 \
 *           --allow-read=scripts/tcp_relay.ts,lib scripts/tcp_relay.ts --workers auto
 * Try it: deno task echo-server, then: nc 127.0.0.1 9000
 *
 * @module
 */
import { formatAddr, formatTarget } from "../lib/address.ts";
import { printError, runMain, stopSignal } from "../lib/cli.ts";
import { limitsFromFlags } from "../lib/mux/server_flags.ts";
import { describeError, UsageError } from "../lib/errors.ts";
import {
  type Endpoint,
  parseDuration,
  parseFlags,
  parseHost,
  parsePort,
  rejectTogether,
} from "../lib/flags.ts";
import { hexDump } from "../lib/hexdump.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import {
  type RelayData,
  type RelayEvent,
  serveRelay,
  type ServeRelayOptions,
} from "../lib/mux/mod.ts";
import { describeAcceptError, isExhaustion } from "../lib/net/accept.ts";
import { describeProxyRejection, proxyTimeoutFromFlags } from "../lib/net/proxy_listener.ts";
import { parseProxyVersion } from "../lib/net/proxy_protocol.ts";
import { requireNet, requireUnixPath } from "../lib/permissions.ts";
import { clientTlsFromFlags, serverTlsFromFlags } from "../lib/tls.ts";
import {
  isWorkerThread,
  parseWorkers,
  serveAsWorker,
  type ServeIo,
  serveOnWorkers,
} from "../lib/workers/mod.ts";

export { serveRelay, type ServeRelayOptions } from "../lib/mux/mod.ts";

/**
 * Parses an address flag: `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH`, or a bare `PORT` on
 * 127.0.0.1.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./tcp_relay.ts";
 * const to = parseAddress("[::1]:10000", "--to");
 * if (to.hostname !== "::1" || to.port !== 10000) throw new Error(JSON.stringify(to));
 * if (parseAddress("unix:/tmp/echo.sock", "--to").path !== "/tmp/echo.sock") throw new Error();
 * ```
 */
export function parseAddress(text: string, flag: string): Endpoint {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length);
    if (path === "") throw new UsageError(`Cannot parse ${flag} "${text}": the path is empty`);
    return { hostname: "127.0.0.1", port: 0, path };
  }
  if (/^\d+$/.test(text)) return { hostname: "127.0.0.1", port: parsePort(text, flag) };
  const match = /^(\[[^\]]*\]|[^:]*):([^:]*)$/.exec(text);
  if (match === null) {
    throw new UsageError(
      `Cannot parse ${flag} "${text}": must be HOST:PORT, [IPv6]:PORT, PORT or unix:PATH`,
    );
  }
  return { hostname: parseHost(match[1], flag), port: parsePort(match[2], flag) };
}

/** One narration line per event (a failure's error names the upstream already). */
export function narrate(event: RelayEvent): string {
  const client = formatAddr(event.client);
  switch (event.type) {
    case "open":
      return `relaying ${client} to ${formatAddr(event.upstream)}${
        event.alpn ? ` (ALPN ${event.alpn})` : ""
      }`;
    case "refused":
      return `refusing ${client}: too many connections`;
    case "failed":
      return event.during === "handshake"
        ? `${client}: TLS handshake failed: ${describeError(event.error)}`
        : `${client}: cannot relay: ${describeError(event.error)}`;
    case "close": {
      const why = event.reason === "eof"
        ? ""
        : event.reason === "error" && event.error !== undefined
        ? ` (${describeError(event.error)})`
        : ` (${event.reason === "stop" ? "relay stopping" : event.reason})`;
      return `closed ${client}${why}: ${event.toUpstream} bytes to upstream, ${event.toClient} back`;
    }
  }
}

/**
 * What `-x` prints for a relayed chunk: `CLIENT > UPSTREAM` (to the upstream) or `CLIENT <
 * UPSTREAM` (back), the byte count, then the bytes in the layout of `xxd`, offsets counted in
 * that direction's stream (as socat's `-x` counts them).
 */
export function hexLines({ client, upstream, from, bytes }: RelayData): string {
  const arrow = from === client ? ">" : "<";
  const dump = hexDump(bytes, { offset: from.bytesIn - bytes.length });
  return `${formatAddr(client.peer)} ${arrow} ${
    formatAddr(upstream.peer)
  }: ${bytes.length} bytes\n${dump.slice(0, -1)}`;
}

/** The same event as one line of JSON in the collection's schema; with `--workers`, `worker`
 * names the worker that served it. */
export function toJson(event: RelayEvent, upstream: string, worker?: number): string {
  const served = worker === undefined ? {} : { worker };
  switch (event.type) {
    case "open":
      return formatJsonEvent("open", {
        peer: event.client,
        upstream: formatAddr(event.upstream),
        ...(event.alpn && { alpn: event.alpn }),
        ...served,
      });
    case "refused":
      return formatJsonEvent("refused", { peer: event.client, ...served });
    case "failed":
      return formatJsonEvent("failed", {
        peer: event.client,
        upstream,
        during: event.during,
        error: describeError(event.error),
        ...served,
      });
    case "close":
      return formatJsonEvent("close", {
        peer: event.client,
        ...(event.upstream && { upstream: formatAddr(event.upstream) }),
        bytes: event.toUpstream + event.toClient,
        bytes_to_upstream: event.toUpstream,
        bytes_to_client: event.toClient,
        reason: event.reason,
        ...(event.error !== undefined && { error: describeError(event.error) }),
        ...served,
      });
  }
}

const USAGE = `Usage: tcp_relay.ts [options]

socat's TCP-LISTEN,fork TCP:HOST:PORT: relays every connection to its own upstream connection,
both ways, with back-pressure and half-close, all on one event loop.

Addresses are HOST:PORT, [IPv6]:PORT, PORT (on 127.0.0.1) or unix:PATH.

Options:
  --listen ADDR                 where to accept connections          [default: 127.0.0.1:9000]
  -p, --port PORT               port to listen on, 0 for any free port (overrides --listen's)
  --to ADDR                     where to relay each connection       [default: 127.0.0.1:10000]
  --connect-timeout DURATION    give up on an upstream connect (and TLS handshake) [default: 10s]
  --tls                         terminate TLS, with --cert FILE and --key FILE (PEM)
  --alpn P1,P2                  ALPN protocols to offer clients with --tls (repeatable)
  --to-tls                      connect to the upstream with TLS
  --ca FILE                     --to-tls: also trust this CA (PEM)
  --insecure                    --to-tls: skip the upstream's host name check (not the chain)
  --to-alpn P1,P2               --to-tls: ALPN to offer when the client negotiated none
  --max-connections N           relayed connections at once (each holds two sockets) [default: 10000]
  --idle-timeout DURATION       close a relay with a side idle this long (5s, 2m) [default: never]
  --high-water-mark SIZE        stop reading a side while SIZE bytes wait for the other [default: 64k]
  --backlog N                   pending connections queued by the kernel [default: 4096]
  --handshake-timeout DURATION  close a TLS client that has not finished its handshake [default: 10s]
  --grace DURATION              after a stop, time left to deliver what is queued [default: 5s]
  --proxy-protocol              read a PROXY protocol header (v1 or v2) first from every client:
                                its client address is the one logged (not with --tls)
  --proxy-timeout DURATION      close a client whose PROXY header is not complete by then
                                                                     [default: 5s]
  --send-proxy v1|v2            send the upstream a PROXY header naming the client before any
                                relayed byte (HAProxy's send-proxy); not with --to-tls
                                                                     [default: none]
  --workers N                   N worker threads on one port (reusePort, Linux), or auto for one
                                per CPU; needs --allow-read of the program's files [default: 1]
  -x, --hex                     print every relayed chunk as a hex dump (xxd's layout)
  -q, --quiet                   print only the listening line and errors
  --json                        print one JSON object per event (open, failed, refused, close)
  -h, --help                    show this help
  --version                     print the version

With --tls and --to-tls, the upstream is offered the one ALPN protocol the client negotiated
from --alpn, so both ends agree on it (or the upstream handshake fails and says so).

With --proxy-protocol, a client without a valid header (garbage, too long, cut short, or too
slow) is closed with one line on stderr and never relayed. --send-proxy names the client as the
relay saw it, or as its own PROXY header said (both flags: the balancer's client goes on).
With --workers, --json events say which worker served them, a worker that dies is reported
and restarted, and a unix: --listen is refused.

Ctrl-C (SIGINT) or SIGTERM stops accepting, abandons upstream connects still pending, delivers
what is queued each way, shuts down every connection's sending side (within --grace) and
exits 0.

Run:    deno run --allow-net=127.0.0.1:9000,127.0.0.1:10000 scripts/tcp_relay.ts
Try it: deno task echo-server, then: nc 127.0.0.1 9000`;

/** What one relay (or each worker of one) serves: plain data, so a worker can get it. */
export interface RelayPlan {
  /** Where to listen and relay, limits and TLS: everything but the hooks. */
  options: Omit<
    ServeRelayOptions,
    "signal" | "onEvent" | "onAcceptError" | "onRelayEvent" | "onRelayData" | "proxyProtocol"
  >;
  /** Read a PROXY header first, with this deadline (ms). */
  proxyTimeout?: number;
  /** The upstream as the lines name it. */
  target: string;
  /** What to print per event. */
  output: "text" | "json" | "quiet" | "hex";
}

/** A relay's counters at the end, added up over the workers. */
export interface RelayTotals {
  /** Client connections taken. */
  total: number;
  /** Bytes relayed to the upstreams. */
  toUpstream: number;
  /** Bytes relayed back to the clients. */
  toClient: number;
  /** Bytes a stop could not deliver. */
  dropped: number;
}

/** Serves `plan` until `io.signal` stops it; resolves with the final counters. */
export async function serveRelayPlan(
  plan: RelayPlan,
  io: ServeIo<RelayTotals>,
): Promise<RelayTotals> {
  const { printLine, printError, id } = io;
  const { output, target } = plan;
  let toUpstream = 0;
  let toClient = 0;
  let exhausted = 0, exhaustedReported = -Infinity;
  const server = await serveRelay({
    ...plan.options,
    proxyProtocol: plan.proxyTimeout === undefined ? undefined : {
      timeout: plan.proxyTimeout,
      onRejected: (rejection) => printError(`tcp_relay: ${describeProxyRejection(rejection)}`),
    },
    signal: io.signal,
    onRelayEvent(event) {
      if (event.type === "close") {
        toUpstream += event.toUpstream;
        toClient += event.toClient;
      }
      if (output === "json") return printLine(toJson(event, target, id));
      // A client that got no upstream is an error worth a line even with --quiet; running out
      // of descriptors fails every client alike, so that is said once a second.
      if (event.type === "failed") {
        if (!isExhaustion(event.error)) return printError(narrate(event));
        const now = performance.now();
        exhausted++;
        if (now - exhaustedReported < 1000) return;
        const times = exhausted > 1 ? ` (${exhausted} clients since the last report)` : "";
        exhaustedReported = now;
        exhausted = 0;
        return printError(narrate(event) + times);
      }
      if (output !== "quiet") printLine(narrate(event));
    },
    onRelayData: output === "hex" ? (data) => printLine(hexLines(data)) : undefined,
    onAcceptError: (report) => printError(`tcp_relay: ${describeAcceptError(report)}`),
  });
  const totals = (): RelayTotals => ({
    total: server.relays.total,
    toUpstream,
    toClient,
    dropped: server.stats.dropped,
  });
  io.listening(server.addr, totals);
  await server.finished;
  return totals();
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: [
      "listen",
      "port",
      "to",
      "connect-timeout",
      "max-connections",
      "idle-timeout",
      "high-water-mark",
      "backlog",
      "handshake-timeout",
      "grace",
      "cert",
      "key",
      "ca",
      "proxy-timeout",
      "send-proxy",
      "workers",
    ],
    boolean: ["quiet", "json", "tls", "to-tls", "insecure", "hex", "proxy-protocol"],
    collect: ["alpn", "to-alpn"],
    alias: { p: "port", q: "quiet", x: "hex" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json", "hex"]);
  const listen = parseAddress(flags.listen ?? "127.0.0.1:9000", "--listen");
  if (flags.port !== undefined) {
    if (listen.path !== undefined) throw new UsageError(`Flag "--port" needs a TCP --listen`);
    listen.port = parsePort(flags.port);
  }
  const to = parseAddress(flags.to ?? "127.0.0.1:10000", "--to");
  if (to.path === undefined && to.port === 0) throw new UsageError(`Cannot relay to port 0`);
  if (listen.path !== undefined && flags.tls) {
    throw new UsageError(`Flag "--tls" needs a TCP --listen (TLS runs over TCP only)`);
  }
  if (to.path !== undefined && flags["to-tls"]) {
    throw new UsageError(`Flag "--to-tls" needs a TCP --to (TLS runs over TCP only)`);
  }
  if (!flags["to-tls"]) {
    for (const name of ["ca", "insecure", "to-alpn"] as const) {
      const value = flags[name];
      if (value === true || typeof value === "string" || (Array.isArray(value) && value.length)) {
        throw new UsageError(`Flag "--${name}" needs "--to-tls"`);
      }
    }
  }
  const workers = parseWorkers(flags.workers ?? "1");
  if (workers > 1 && listen.path !== undefined) {
    throw new UsageError(
      "Cannot use --workers with a unix: --listen: reusePort shares TCP ports only (run one relay per socket path)",
    );
  }
  // Before any certificate is read: a refused combination is refused for what it is.
  const proxyTimeout = proxyTimeoutFromFlags(flags);
  const sendProxy = flags["send-proxy"] === undefined
    ? undefined
    : parseProxyVersion(flags["send-proxy"]);
  if (sendProxy !== undefined && flags["to-tls"]) {
    throw new UsageError(
      "Cannot use --send-proxy with --to-tls: the PROXY header must precede the upstream's TLS handshake, which the relay's connect does itself",
    );
  }
  const target = formatTarget(to);
  const plan: RelayPlan = {
    options: {
      ...listen,
      upstream: {
        ...to,
        timeout: parseDuration(flags["connect-timeout"] ?? "10s", "--connect-timeout"),
        tls: await clientTlsFromFlags({
          tls: flags["to-tls"],
          ca: flags.ca,
          insecure: flags.insecure,
          alpn: flags["to-alpn"],
        }),
      },
      sendProxy,
      ...limitsFromFlags(flags),
      tls: await serverTlsFromFlags(flags),
      reusePort: workers > 1,
    },
    proxyTimeout,
    target,
    output: flags.quiet ? "quiet" : flags.json ? "json" : flags.hex ? "hex" : "text",
  };
  // Every connection will need it: a missing permission is one error now, not one per client.
  if (to.path !== undefined) requireUnixPath(to.path, `relay to ${target}`);
  else requireNet(to.hostname, to.port, `relay to ${target}`);

  using stop = stopSignal();
  const listening = (addr: Deno.Addr) => {
    printError(`Listening on ${formatAddr(addr)}`);
    if (!flags.quiet && !flags.json) printError(`relaying each connection to ${target}`);
  };
  const totals = await serveOnWorkers({
    name: "tcp_relay",
    module: import.meta.url,
    count: workers,
    config: plan,
    withPort: (plan, port) => ({ ...plan, options: { ...plan.options, port } }),
    serve: serveRelayPlan,
    signal: stop.signal,
    listening,
  });
  const { total = 0, toUpstream = 0, toClient = 0, dropped = 0 } = totals;
  if (dropped > 0) printError(`tcp_relay: the stop dropped ${dropped} bytes it could not deliver`);
  if (!flags.quiet && !flags.json) {
    const connections = total === 1 ? "1 connection" : `${total} connections`;
    printError(
      `stopped after ${connections}: ${toUpstream} bytes to upstream, ${toClient} bytes back`,
    );
  }
}

if (import.meta.main) {
  // With --workers, each worker thread runs this file again and serves what main() sends it.
  if (isWorkerThread()) {
    serveAsWorker<RelayPlan, RelayTotals>((worker) => serveRelayPlan(worker.config, worker));
  } else runMain("tcp_relay", () => main(Deno.args));
}
