/**
 * TCP greeting server — the tutorial's `server.py`: listen with a backlog of 5, and for every
 * connection print `Got connection from <addr>`, send `Thank you for connecting`, close.
 *
 * Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_server.ts
 * Workers: deno run --allow-net=127.0.0.1:12345 --allow-read=scripts/tcp_server.ts,lib \
 *           scripts/tcp_server.ts --workers auto
 * Try it: nc 127.0.0.1 12345
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printError, runMain, stopSignal } from "../lib/cli.ts";
import { isPeerGone, UsageError } from "../lib/errors.ts";
import {
  parseCount,
  parseDuration,
  parseEndpoint,
  parseFlags,
  rejectTogether,
} from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { readBoundedFile } from "../lib/files.ts";
import { type AcceptErrorReport, acceptLoop, describeAcceptError } from "../lib/net/accept.ts";
import { closeConn, handshakeWithDeadline, lingeringTlsConnections } from "../lib/net/handshake.ts";
import { listen } from "../lib/net/listen.ts";
import {
  describeProxyRejection,
  type ProxyProtocolOptions,
  proxyTimeoutFromFlags,
} from "../lib/net/proxy_listener.ts";
import { serverTlsFromFlags, type ServerTlsOptions } from "../lib/tls.ts";
import { writeAll } from "../lib/io.ts";
import {
  isWorkerThread,
  serveAsWorker,
  type ServeIo,
  serveOnWorkers,
  workersFromFlags,
} from "../lib/workers/mod.ts";

/** Options for {@linkcode serveGreeting}. */
export interface GreetingServerOptions {
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {12345} */
  port?: number;
  /** Bind a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** TLS certificate and key (PEM); when given, connections are TLS. */
  tls?: ServerTlsOptions;
  /** Pending connections the kernel queues before refusing more (`listen(5)`). @default {5} */
  backlog?: number;
  /** Let other listeners (workers) bind the same port; the kernel spreads connections.
   * @default {false} */
  reusePort?: boolean;
  /** Read a PROXY protocol header first: `onConnection` then gets the client's address. */
  proxyProtocol?: ProxyProtocolOptions;
  /** What each client is sent. @default {"Thank you for connecting"} */
  message?: string | Uint8Array;
  /** Stop after greeting this many clients. @default {Infinity} */
  count?: number;
  /** Clients greeted at once; more are closed as soon as they are accepted. @default {1000} */
  maxConnections?: number;
  /** Give up on a client whose TLS handshake and greeting take longer (ms). @default {10000} */
  timeout?: number;
  /** Stops accepting and closes the listener when aborted. */
  signal?: AbortSignal;
  /** Called once for every accepted connection, before it is greeted. */
  onConnection?: (remote: Deno.Addr, local: Deno.Addr) => void;
  /** Called for accept errors (at most once a second per kind); accepting goes on. */
  onAcceptError?: (report: AcceptErrorReport) => void;
}

/** A running greeting server. */
export interface GreetingServer {
  /** The address really bound (read back from the listener). */
  readonly addr: Deno.Addr;
  /** Resolves when the server has stopped and every greeting in progress has ended. */
  readonly finished: Promise<void>;
  /** Stops accepting; safe to call twice. */
  close(): void;
}

/** How long a closing connection keeps reading what the client still sends, so the kernel
 * does not answer unread data with a reset that could destroy the greeting in flight. */
const LINGER_MS = 2000;

/**
 * Starts the greeting server.
 *
 * @example Greeting one client
 * ```ts
 * import { serveGreeting } from "./tcp_server.ts";
 * const server = await serveGreeting({ port: 0, count: 1 });
 * const { port } = server.addr as Deno.NetAddr;
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * const text = await new Response(conn.readable).text();
 * await server.finished;
 * if (text !== "Thank you for connecting") throw new Error(text);
 * ```
 */
export async function serveGreeting(options: GreetingServerOptions = {}): Promise<GreetingServer> {
  const { hostname = "127.0.0.1", port = 12345, path, tls, backlog = 5 } = options;
  const { reusePort, proxyProtocol } = options;
  const listener = await listen({ hostname, port, path, tls, backlog, reusePort, proxyProtocol });
  const stop = new AbortController();
  const close = () => {
    stop.abort();
    listener.close();
  };
  options.signal?.addEventListener("abort", close, { once: true });
  if (options.signal?.aborted) close();
  const finished = serve(listener, options, close, stop.signal).finally(() => {
    options.signal?.removeEventListener("abort", close);
  });
  return { addr: listener.addr, finished, close };
}

async function serve(
  listener: { accept(): Promise<Deno.Conn> },
  options: GreetingServerOptions,
  close: () => void,
  stopped: AbortSignal,
): Promise<void> {
  const message = options.message ?? "Thank you for connecting";
  const greeting = typeof message === "string" ? new TextEncoder().encode(message) : message;
  const { count = Infinity, maxConnections = 1000, timeout = 10_000 } = options;
  const greetings = new Set<Promise<void>>();
  let accepted = 0;
  const hasRoom = () => greetings.size + lingeringTlsConnections() < maxConnections;
  await acceptLoop(listener, {
    onError: options.onAcceptError,
    // A TLS connection accepted and closed keeps its socket until the peer acts (Deno 2.9, see
    // lib/net/handshake.ts): with TLS, clients beyond the limit wait in the kernel's backlog.
    hasRoom: options.tls ? hasRoom : undefined,
    signal: stopped,
    onConnection(conn) {
      if (!hasRoom()) return closeConn(conn);
      accepted++;
      options.onConnection?.(conn.remoteAddr, conn.localAddr);
      // Greet without awaiting, so a slow client never holds up the next accept.
      const done = greet(conn, greeting, timeout).finally(() => greetings.delete(done));
      greetings.add(done);
      if (accepted >= count) close();
    },
  });
  close();
  await Promise.all(greetings);
}

/** Sends the whole greeting, then ends the connection without losing it. */
async function greet(conn: Deno.Conn, greeting: Uint8Array, timeoutMs: number): Promise<void> {
  // One deadline for the handshake and the greeting: a client that says nothing (TLS) or reads
  // nothing cannot hold the connection, or a stop, for longer.
  const timer = setTimeout(() => closeConn(conn), timeoutMs);
  try {
    await handshakeWithDeadline(conn, timeoutMs);
    await writeAll(conn, greeting);
    await conn.closeWrite();
    clearTimeout(timer);
    await discardUntilEof(conn);
  } catch (error) {
    if (!isPeerGone(error) && !(error instanceof Deno.errors.TimedOut)) throw error;
  } finally {
    clearTimeout(timer);
    closeConn(conn);
  }
}

async function discardUntilEof(conn: Deno.Conn): Promise<void> {
  const scratch = new Uint8Array(4096);
  const timer = setTimeout(() => closeConn(conn), LINGER_MS);
  try {
    while (await conn.read(scratch) !== null) { /* the greeting server reads nothing */ }
  } finally {
    clearTimeout(timer);
  }
}

/** The largest --message-file: the greeting is held in memory and sent to every client. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const USAGE = `Usage: tcp_server.ts [options]

The tutorial's TCP server: greets every client with a message and closes the connection.

Options:
  --host HOST              address to bind (IPv4, IPv6 or name)      [default: 127.0.0.1]
  -p, --port PORT          port to bind, 0 for any free port         [default: 12345]
  --unix PATH              bind a Unix stream socket instead of TCP
  --backlog N              pending connections queued by the kernel [default: 5]
  --message TEXT           what each client is sent       [default: Thank you for connecting]
  --message-file PATH      send the bytes of PATH instead (- for standard input; at most 16M)
  --count N                exit after greeting N clients
  --max-connections N      clients greeted at once; more are closed at once [default: 1000]
  --timeout DURATION       give up on a client whose TLS handshake and greeting take longer
                                                                     [default: 10s]
  --tls                    serve TLS, with --cert FILE and --key FILE (PEM; needs --allow-read)
  --alpn P1,P2             ALPN protocols to offer with --tls (repeatable)
  --proxy-protocol         read a PROXY protocol header (v1 or v2) first on every connection:
                           its client address is the one printed (not with --tls)
  --proxy-timeout DURATION close a connection whose PROXY header is not complete by then
                                                                     [default: 5s]
  --workers N              N worker threads on one port (reusePort, Linux), or auto for one
                           per CPU; needs --allow-read of the program's files [default: 1]
  -q, --quiet              print nothing per connection
  --json                   print one JSON object per connection
  -h, --help               show this help
  --version                print the version

With --proxy-protocol, a connection without a valid header (garbage, too long, cut short, or
too slow) is closed with one line on stderr and never greeted. With --workers, --json lines say
which worker served them, a worker that dies is reported and restarted, and --unix and --count
are refused (a Unix socket cannot be shared by reusePort; a count is per server).

Errors about one connection end that connection; running out of descriptors pauses accepting
until some are free. SIGINT/SIGTERM stop accepting, let greetings in progress finish within
--timeout, and exit 0.

Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_server.ts
Try it: nc 127.0.0.1 12345`;

/** What one greeting server (or each worker of one) serves: plain data, so a worker can get it. */
export interface GreetingPlan {
  /** Where to listen, the message and the limits: everything but the hooks. */
  options: Omit<
    GreetingServerOptions,
    "signal" | "onConnection" | "onAcceptError" | "proxyProtocol"
  >;
  /** Read a PROXY header first, with this deadline (ms). */
  proxyTimeout?: number;
  /** What to print per connection. */
  output: "text" | "json" | "quiet";
}

/** Serves `plan` until `io.signal` stops it (or `count` clients were greeted). */
export async function serveGreetingPlan(
  plan: GreetingPlan,
  io: ServeIo<Record<string, never>>,
): Promise<void> {
  const { printLine, printError, id } = io;
  const served = id === undefined ? {} : { worker: id };
  const server = await serveGreeting({
    ...plan.options,
    proxyProtocol: plan.proxyTimeout === undefined ? undefined : {
      timeout: plan.proxyTimeout,
      onRejected: (rejection) => printError(`tcp_server: ${describeProxyRejection(rejection)}`),
    },
    signal: io.signal,
    onConnection(peer, local) {
      if (plan.output === "json") {
        printLine(formatJsonEvent("connection", { peer, local, ...served }));
      } else if (plan.output === "text") printLine(`Got connection from ${formatAddr(peer)}`);
    },
    onAcceptError: (report) => printError(`tcp_server: ${describeAcceptError(report)}`),
  });
  io.listening(server.addr);
  await server.finished;
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: [
      "host",
      "port",
      "unix",
      "backlog",
      "message",
      "message-file",
      "count",
      "max-connections",
      "timeout",
      "cert",
      "key",
      "proxy-timeout",
      "workers",
    ],
    boolean: ["quiet", "json", "tls", "proxy-protocol"],
    collect: ["alpn"],
    alias: { p: "port", q: "quiet" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json"]);
  rejectTogether(flags, ["message", "message-file"]);
  const workers = workersFromFlags(flags);
  // Before the certificate is read: --tls with --proxy-protocol is refused for what it is.
  const proxyTimeout = proxyTimeoutFromFlags(flags);
  refuseCountWithWorkers(flags, workers);
  const plan: GreetingPlan = {
    options: {
      ...parseEndpoint(flags, 12345),
      backlog: parseCount(flags.backlog ?? "5", "--backlog", { max: 65535 }),
      message: flags["message-file"] === undefined ? flags.message : await readBoundedFile(
        flags["message-file"],
        { flag: "--message-file", maxBytes: MAX_MESSAGE_BYTES, allowStdin: true },
      ),
      count: flags.count === undefined ? undefined : parseCount(flags.count, "--count"),
      maxConnections: parseCount(flags["max-connections"] ?? "1000", "--max-connections"),
      timeout: parseDuration(flags.timeout ?? "10s", "--timeout"),
      tls: await serverTlsFromFlags(flags),
      reusePort: workers > 1,
    },
    proxyTimeout,
    output: flags.quiet ? "quiet" : flags.json ? "json" : "text",
  };

  using stop = stopSignal();
  const listening = (addr: Deno.Addr) => printError(`Listening on ${formatAddr(addr)}`);
  await serveOnWorkers({
    name: "tcp_server",
    module: import.meta.url,
    count: workers,
    config: plan,
    withPort: (plan, port) => ({ ...plan, options: { ...plan.options, port } }),
    serve: async (plan, io) => {
      await serveGreetingPlan(plan, io);
      return {};
    },
    signal: stop.signal,
    listening,
  });
}

/** --count is per server: with workers, each would count its own clients. */
function refuseCountWithWorkers(flags: { count?: string }, workers: number): void {
  if (workers > 1 && flags.count !== undefined) {
    throw new UsageError(
      "Cannot use --workers with --count: each worker would count its own clients (use one worker)",
    );
  }
}

if (import.meta.main) {
  // With --workers, each worker thread runs this file again and serves what main() sends it.
  if (isWorkerThread()) {
    serveAsWorker<GreetingPlan, void>((worker) => serveGreetingPlan(worker.config, worker));
  } else {
    runMain("tcp_server", () => main(Deno.args));
  }
}
