/**
 * TCP greeting server — the tutorial's `server.py`: listen with a backlog of 5, and for every
 * connection print `Got connection from <addr>`, send `Thank you for connecting`, close.
 *
 * Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_server.ts
 * Try it: nc 127.0.0.1 12345
 *
 * @module
 */
import { formatAddr, formatTarget } from "../lib/address.ts";
import { printLine, runMain, stopSignal } from "../lib/cli.ts";
import { closeOnce, isPeerGone, withAddress } from "../lib/errors.ts";
import { parseCount, parseEndpoint, parseFlags, rejectTogether } from "../lib/flags.ts";
import { listenTlsOrTcp, serverTlsFromFlags, type ServerTlsOptions } from "../lib/tls.ts";
import { claimUnixPath, releaseUnixPath } from "../lib/net/unix_path.ts";

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
  /** What each client is sent. @default {"Thank you for connecting"} */
  message?: string;
  /** Stop after greeting this many clients. @default {Infinity} */
  count?: number;
  /** Stops accepting and closes the listener when aborted. */
  signal?: AbortSignal;
  /** Called once for every accepted connection, before it is greeted. */
  onConnection?: (remote: Deno.Addr) => void;
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
 * const server = serveGreeting({ port: 0, count: 1 });
 * const { port } = server.addr as Deno.NetAddr;
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * const text = await new Response(conn.readable).text();
 * await server.finished;
 * if (text !== "Thank you for connecting") throw new Error(text);
 * ```
 */
export function serveGreeting(options: GreetingServerOptions = {}): GreetingServer {
  const listener = listen(options);
  const { signal } = options;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    signal?.removeEventListener("abort", close);
    try {
      listener.close();
    } catch (error) {
      // Leaving a `for await` over the listener has already closed it.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  };
  signal?.addEventListener("abort", close, { once: true });
  if (signal?.aborted) close();
  const finished = acceptLoop(listener, options, close);
  return { addr: listener.addr, finished, close };
}

function listen(options: GreetingServerOptions): Deno.Listener {
  const { path, hostname = "127.0.0.1", port = 12345, backlog = 5 } = options;
  try {
    if (path !== undefined) return Deno.listen({ transport: "unix", path });
    return listenTlsOrTcp({ hostname, port, tcpBacklog: backlog, tls: options.tls });
  } catch (error) {
    throw withAddress(error, formatTarget({ path, hostname, port }));
  }
}

async function acceptLoop(
  listener: Deno.Listener,
  options: GreetingServerOptions,
  close: () => void,
): Promise<void> {
  const greeting = new TextEncoder().encode(options.message ?? "Thank you for connecting");
  const limit = options.count ?? Infinity;
  const greetings = new Set<Promise<void>>();
  let accepted = 0;
  try {
    for await (const conn of listener) {
      accepted++;
      options.onConnection?.(conn.remoteAddr);
      // Greet without awaiting, so a slow client never holds up the next accept.
      const greetingDone = greet(conn, greeting).finally(() => greetings.delete(greetingDone));
      greetings.add(greetingDone);
      if (accepted >= limit) break;
    }
  } catch (error) {
    // close() while accept() waits ends the iteration with BadResource: a normal stop.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  } finally {
    close();
    await Promise.all(greetings);
  }
}

/** Sends the whole greeting, then ends the connection without losing it. */
async function greet(conn: Deno.Conn, greeting: Uint8Array): Promise<void> {
  const closer = closeOnce(conn);
  try {
    for (let sent = 0; sent < greeting.length;) {
      sent += await conn.write(greeting.subarray(sent));
    }
    await conn.closeWrite();
    await discardUntilEof(conn, closer);
  } catch (error) {
    if (!isPeerGone(error)) throw error;
  } finally {
    closer();
  }
}

async function discardUntilEof(conn: Deno.Conn, close: () => void): Promise<void> {
  const scratch = new Uint8Array(4096);
  const timer = setTimeout(close, LINGER_MS);
  try {
    while (await conn.read(scratch) !== null) { /* the greeting server reads nothing */ }
  } finally {
    clearTimeout(timer);
  }
}

const USAGE = `Usage: tcp_server.ts [options]

The tutorial's TCP server: greets every client with a message and closes the connection.

Options:
  --host HOST       address to bind (IPv4, IPv6 or name)        [default: 127.0.0.1]
  --port PORT       port to bind, 0 for any free port           [default: 12345]
  --unix PATH       bind a Unix stream socket instead of TCP
  --backlog N       pending connections queued by the kernel   [default: 5]
  --message TEXT    what each client is sent                   [default: Thank you for connecting]
  --count N         exit after greeting N clients
  --tls             serve TLS, with --cert FILE and --key FILE (PEM; needs --allow-read)
  --alpn P1,P2      ALPN protocols to offer with --tls (repeatable)
  --quiet           print nothing per connection
  --json            print one JSON object per connection
  -h, --help        show this help

Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_server.ts
Try it: nc 127.0.0.1 12345`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "backlog", "message", "count", "cert", "key"],
    boolean: ["quiet", "json", "tls", "help"],
    collect: ["alpn"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
  rejectTogether(flags, ["quiet", "json"]);
  const options: GreetingServerOptions = {
    ...parseEndpoint(flags, 12345),
    backlog: parseCount(flags.backlog ?? "5", "--backlog", { max: 65535 }),
    message: flags.message,
    count: flags.count === undefined ? undefined : parseCount(flags.count, "--count"),
    tls: await serverTlsFromFlags(flags),
  };

  using stop = stopSignal();
  if (options.path !== undefined) await claimUnixPath(options.path);
  const server = serveGreeting({
    ...options,
    signal: stop.signal,
    onConnection(remote) {
      if (flags.json) printLine(JSON.stringify({ event: "connection", from: formatAddr(remote) }));
      else if (!flags.quiet) printLine(`Got connection from ${formatAddr(remote)}`);
    },
  });
  console.error(`Listening on ${formatAddr(server.addr)}`);
  try {
    await server.finished;
  } finally {
    if (options.path !== undefined) releaseUnixPath(options.path);
  }
}

if (import.meta.main) runMain("tcp_server", () => main(Deno.args));
