/**
 * TCP client — the tutorial's `client.py`, grown into what `nc` is used for: connect, print
 * what the server sends until it closes (escaped for the terminal, raw, or as a hex dump), send
 * standard input at the same time when it is not a terminal (`echo hi | tcp_client.ts`, then a
 * half-close at its end, like `nc -N`), or probe a range of ports (`-z`, nc's zero-I/O mode).
 * `--send-proxy v1|v2` first sends a PROXY protocol header naming this client's own address, as
 * a load balancer would, to test a server behind `--proxy-protocol`.
 *
 * Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_client.ts
 * Try it: deno task tcp-server, then this; or against `nc -l 127.0.0.1 12345`
 *
 * @module
 */
import { formatAddr, formatHostPort, formatTarget } from "../lib/address.ts";
import { printError, printLine, runMain, writeData } from "../lib/cli.ts";
import { isPeerGone, UsageError, withAddress } from "../lib/errors.ts";
import { StreamEscaper } from "../lib/escape.ts";
import { HexDumper } from "../lib/hexdump.ts";
import { closeQuietly, writeAll } from "../lib/io.ts";
import { connect as dial } from "../lib/net/connect.ts";
import { encodeProxyHeader, parseProxyVersion } from "../lib/net/proxy_protocol.ts";
import { probePorts } from "../lib/net/probe.ts";
import { requireNet } from "../lib/permissions.ts";
import { clientTlsFromFlags, type ClientTlsOptions } from "../lib/tls.ts";
import {
  parseCount,
  parseDuration,
  parseEndpoint,
  parseFlags,
  parseHost,
  parsePortRange,
  parseSize,
  rejectTogether,
} from "../lib/flags.ts";

export type { ClientTlsOptions };
/** Options for {@linkcode talk} and {@linkcode fetchGreeting}. */
export interface ClientOptions {
  /** Server host. @default {"127.0.0.1"} */
  hostname?: string;
  /** Server port. @default {12345} */
  port?: number;
  /** Connect to a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** TLS trust and ALPN; when given, the connection is TLS. */
  tls?: ClientTlsOptions;
  /** What to send while receiving; its end shuts down the sending side, like `nc -N`. */
  send?: Uint8Array | ReadableStream<Uint8Array>;
  /** Stop reading after this many bytes. @default {1048576} */
  maxBytes?: number;
  /** Give up when connecting, the TLS handshake, or a pause in both directions takes longer (ms). */
  timeout?: number;
  /** Send a PROXY protocol header of this version first, naming this connection's own
   * addresses (as a load balancer names its client's); not with `tls`, whose handshake
   * `connect()` has done before anything could be sent. */
  sendProxy?: 1 | 2;
}

/** Options for {@linkcode talk}: where received bytes go, as they arrive. */
export interface TalkOptions extends ClientOptions {
  /** Called with each chunk received (a view of a reused buffer: copy what you keep). */
  onData?: (bytes: Uint8Array) => void | Promise<void>;
  /** Called once connected (and, with TLS, after the handshake). */
  onConnect?: (conn: Deno.Conn) => void;
}

/** What one conversation did. */
export interface TalkResult {
  /** Bytes received (at most `maxBytes`). */
  received: number;
  /** Bytes sent. */
  sent: number;
  /** Whether reading stopped at `maxBytes` before the server closed. */
  truncated: boolean;
}

/** What the server sent. */
export interface ClientResult {
  /** The bytes received, at most `maxBytes`. */
  data: Uint8Array;
  /** Whether reading stopped at `maxBytes` before the server closed. */
  truncated: boolean;
}

const READ_SIZE = 64 * 1024;

/**
 * Connects, sends `send` (if any) while receiving, and reads until the server closes. Received
 * bytes go to `onData` as they come, so a reply of any size takes one buffer of memory; once the
 * server has closed, whatever `send` still had is not sent (as `nc` stops). Throws
 * `Deno.errors.TimedOut` naming the address when `timeout` passes with nothing new either way;
 * what arrived before has been handed to `onData`.
 *
 * @example Talking to an echo server
 * ```ts
 * import { talk } from "./tcp_client.ts";
 * import { serveEcho } from "../lib/mux/mod.ts";
 * const server = await serveEcho({ port: 0 });
 * const chunks: string[] = [];
 * const result = await talk({
 *   port: (server.addr as Deno.NetAddr).port,
 *   send: new TextEncoder().encode("hello"),
 *   onData: (bytes) => void chunks.push(new TextDecoder().decode(bytes)),
 * });
 * server.close();
 * await server.finished;
 * if (chunks.join("") !== "hello" || result.sent !== 5) throw new Error(chunks.join(""));
 * ```
 */
export async function talk(options: TalkOptions = {}): Promise<TalkResult> {
  const { path, hostname = "127.0.0.1", port = 12345, tls, timeout, sendProxy } = options;
  const { maxBytes = 1024 * 1024, send, onData } = options;
  if (sendProxy !== undefined && tls) {
    throw new TypeError(
      "Cannot send a PROXY header over TLS: it must precede the handshake, which connect() does",
    );
  }
  const target = formatTarget({ path, hostname, port });
  using conn = await dial({ path, hostname, port, tls, timeout });
  if (sendProxy !== undefined) {
    // Before anything else: the server reads it before the first byte of data.
    const header = encodeProxyHeader(sendProxy, {
      source: conn.localAddr,
      destination: conn.remoteAddr,
    });
    await writeAll(conn, header).catch((error) => {
      throw withAddress(error, target);
    });
  }
  options.onConnect?.(conn);
  const idle = new IdleTimer(conn, timeout);
  const result: TalkResult = { received: 0, sent: 0, truncated: false };
  const sender = send === undefined ? undefined : new Sender(conn, send, (n) => {
    result.sent += n;
    idle.touch();
  });
  try {
    const buffer = new Uint8Array(Math.min(READ_SIZE, maxBytes + 1));
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      idle.touch();
      const room = maxBytes - result.received;
      result.received += Math.min(n, room);
      if (room > 0) await onData?.(buffer.subarray(0, Math.min(n, room)));
      if (n > room) {
        result.truncated = true;
        break;
      }
    }
    // The server has closed: what is left to send goes nowhere, as with nc.
    await sender?.stop();
    return result;
  } catch (error) {
    if (idle.fired) throw new Deno.errors.TimedOut(`${target}: No data for ${timeout} ms`);
    throw withAddress(error, target);
  } finally {
    idle.clear();
    await sender?.stop();
  }
}

/**
 * Connects, optionally sends, and collects what the server sends until it closes (at most
 * `maxBytes`, 1 MiB by default).
 */
export async function fetchGreeting(options: ClientOptions = {}): Promise<ClientResult> {
  const chunks: Uint8Array[] = [];
  const { received, truncated } = await talk({
    ...options,
    onData: (bytes) => void chunks.push(bytes.slice()),
  });
  const data = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  return { data, truncated };
}

/** Sends a buffer or a stream on `conn`, then shuts down the sending side. */
class Sender {
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #done: Promise<void>;
  #stopped = false;

  constructor(
    conn: Deno.Conn,
    source: Uint8Array | ReadableStream<Uint8Array>,
    sent: (n: number) => void,
  ) {
    this.#done = this.#run(conn, source, sent).catch((error) => {
      // The server went away or we stopped: the reading side reports what matters.
      if (!this.#stopped && !isPeerGone(error)) throw error;
    });
  }

  async #run(
    conn: Deno.Conn,
    source: Uint8Array | ReadableStream<Uint8Array>,
    sent: (n: number) => void,
  ): Promise<void> {
    if (source instanceof Uint8Array) {
      await writeAll(conn, source);
      sent(source.length);
    } else {
      this.#reader = source.getReader();
      while (true) {
        const { done, value } = await this.#reader.read();
        if (done || this.#stopped) break;
        await writeAll(conn, value);
        sent(value.length);
      }
    }
    if (!this.#stopped) await conn.closeWrite();
  }

  /** Stops reading the source (a pending stdin read is cancelled) and waits for the sender. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      await this.#reader?.cancel().catch(() => {});
    }
    await this.#done;
  }
}

/** Closes the connection when nothing has happened on it, either way, for `timeout` ms. */
class IdleTimer {
  fired = false;
  #timer?: ReturnType<typeof setTimeout>;
  #conn: Deno.Conn;
  #timeout?: number;

  constructor(conn: Deno.Conn, timeout?: number) {
    this.#conn = conn;
    this.#timeout = timeout;
    this.touch();
  }

  touch(): void {
    if (this.#timeout === undefined || this.fired) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = true;
      closeQuietly(this.#conn);
    }, this.#timeout);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

const USAGE = `Usage: tcp_client.ts [options] [HOST [PORT]]
       tcp_client.ts -z [options] HOST PORT[-PORT][,...]

The tutorial's TCP client, with netcat's habits: connects, prints everything the server sends
until it closes, and sends its standard input at the same time when that is not a terminal
(echo hi | tcp_client.ts HOST PORT), then shuts down its sending side (like nc -N).
HOST and PORT may be given as arguments, as with nc; --host and --port win over them.

Options:
  --host HOST          server host (IPv4, IPv6 or name)        [default: 127.0.0.1]
  --port PORT          server port                             [default: 12345]
  --unix PATH          connect to a Unix stream socket instead of TCP
  --send TEXT          send TEXT instead of standard input, then shut down the sending side
  --max-bytes SIZE     stop reading after SIZE bytes (k, M, G units) [default: 1M]
  -w, --timeout DUR    give up when connecting, or when nothing moves either way, takes DUR
                       (500ms, 5s; a bare number is seconds, as with nc -w); what arrived
                       before is printed
  --raw                write the bytes as received, without escaping control characters
  -x, --hex            print what arrives as a hex dump (the layout of xxd, offsets running on)
  -v, --verbose        say on stderr when connected (addresses, TLS ALPN) and what moved at the end
  -z, --probe          nc's zero-I/O mode: report each PORT as open, closed (refused) or
                       filtered (no answer within --timeout); exit 0 when any is open
  --parallel N         with -z, ports probed at once                [default: 16]
  --tls                connect with TLS; --ca FILE trusts a CA (PEM; needs --allow-read)
  --alpn P1,P2         ALPN protocols to offer with --tls (repeatable)
  --insecure           with --tls, skip the host name check (not the certificate chain)
  --send-proxy v1|v2   first send a PROXY protocol header naming this client's own address
                       (as HAProxy's send-proxy does), for a server behind --proxy-protocol;
                       not with --tls                           [default: none]
  -s ADDR, -p PORT     nc's source address and port: not available, Deno cannot bind a
                       connecting socket (give the server's port as PORT or --port)
  -h, --help           show this help
  --version            print the version

Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_client.ts
Probe:  deno run --allow-net=127.0.0.1 scripts/tcp_client.ts -z 127.0.0.1 8000-8100
Try it: deno task tcp-server, then this; or echo hi | deno task tcp-client 127.0.0.1 10000`;

async function main(args: string[]): Promise<number | void> {
  const flags = parseFlags(args, {
    string: [
      "host",
      "port",
      "unix",
      "send",
      "max-bytes",
      "timeout",
      "ca",
      "parallel",
      "source",
      "source-port",
      "send-proxy",
    ],
    boolean: ["raw", "tls", "insecure", "hex", "verbose", "probe"],
    collect: ["alpn"],
    alias: { w: "timeout", x: "hex", v: "verbose", z: "probe", s: "source", p: "source-port" },
    positional: ["host", "port"],
    usage: USAGE,
  });
  if (flags.source !== undefined || flags["source-port"] !== undefined) {
    throw new UsageError(
      `"-s"/"-p" are nc's source address and port, which Deno cannot choose for a TCP client; give the server's port as the second argument (tcp_client.ts HOST PORT) or with --port`,
    );
  }
  rejectTogether(flags, ["raw", "hex"]);
  const timeout = flags.timeout === undefined
    ? undefined
    : parseDuration(flags.timeout, "--timeout");
  if (flags.probe) return await probeMain(flags, timeout);
  if (flags.parallel !== undefined) throw new UsageError(`Flag "--parallel" needs "-z"`);
  const sendProxy = flags["send-proxy"] === undefined
    ? undefined
    : parseProxyVersion(flags["send-proxy"]);
  if (sendProxy !== undefined && flags.tls) {
    throw new UsageError(
      "Cannot use --send-proxy with --tls: the PROXY header must precede the TLS handshake, which is done while connecting",
    );
  }
  const maxBytes = parseSize(flags["max-bytes"] ?? "1M", "--max-bytes", { max: 1024 ** 3 });
  const endpoint = parseEndpoint(flags, 12345);
  const output = new Output(flags.raw ? "raw" : flags.hex ? "hex" : "text");
  const result = await talk({
    ...endpoint,
    send: flags.send !== undefined
      ? new TextEncoder().encode(flags.send)
      : Deno.stdin.isTerminal()
      ? undefined
      : Deno.stdin.readable,
    maxBytes,
    timeout,
    sendProxy,
    tls: await clientTlsFromFlags(flags),
    onData: (bytes) => output.write(bytes),
    onConnect: (conn) => {
      if (flags.verbose) reportConnect(conn, endpoint.path !== undefined).catch(() => {});
    },
  }).finally(() => output.end());
  if (result.truncated) {
    printError(`tcp_client: stopped reading after ${maxBytes} bytes (--max-bytes)`);
  }
  if (flags.verbose) {
    printError(`Closed: ${result.received} bytes received, ${result.sent} bytes sent`);
  }
}

async function reportConnect(conn: Deno.Conn, unix: boolean): Promise<void> {
  const from = unix ? "" : ` from ${formatAddr(conn.localAddr)}`;
  let alpn = "";
  if ("handshake" in conn) {
    const { alpnProtocol } = await (conn as unknown as Deno.TlsConn).handshake();
    alpn = `, TLS${alpnProtocol ? ` (ALPN ${alpnProtocol})` : ""}`;
  }
  printError(`Connected to ${formatAddr(conn.remoteAddr)}${from}${alpn}`);
}

/** Received bytes to stdout, never dropped: escaped text, raw bytes, or a hex dump. */
class Output {
  #escaper = new StreamEscaper();
  #dumper = new HexDumper();
  #lastByte = 0x0a;
  #pause?: ReturnType<typeof setTimeout>;
  #pending: Promise<void> = Promise.resolve();

  constructor(readonly mode: "text" | "raw" | "hex") {}

  async write(bytes: Uint8Array): Promise<void> {
    if (this.mode === "raw") return await writeData(bytes);
    if (this.mode === "text") {
      this.#lastByte = bytes[bytes.length - 1];
      return await this.#text(this.#escaper.push(bytes));
    }
    clearTimeout(this.#pause);
    await this.#text(this.#dumper.push(bytes));
    // A peer that pauses mid-line still gets its bytes shown (the next line goes on from there).
    this.#pause = setTimeout(() => this.#pending = this.#text(this.#dumper.flush()), 200);
  }

  async end(): Promise<void> {
    clearTimeout(this.#pause);
    await this.#pending;
    if (this.mode === "hex") await this.#text(this.#dumper.flush());
    if (this.mode !== "text") return;
    const rest = this.#escaper.flush();
    await this.#text(rest);
    // Leave the terminal's prompt on a line of its own, as the tutorial's print() does.
    if (rest !== "" || this.#lastByte !== 0x0a) await this.#text("\n");
  }

  async #text(text: string): Promise<void> {
    if (text !== "") await writeData(new TextEncoder().encode(text));
  }
}

async function probeMain(
  flags: Record<string, unknown> & { host?: string; port?: string; parallel?: string },
  timeout = 2000,
): Promise<number> {
  for (const name of ["unix", "tls", "send", "hex", "raw", "max-bytes", "send-proxy"] as const) {
    rejectTogether(flags, ["probe", name]);
  }
  if (flags.host === undefined || flags.port === undefined) {
    throw new UsageError(
      `Flag "-z" needs HOST and PORT[-PORT] (tcp_client.ts -z 127.0.0.1 8000-8100)`,
    );
  }
  const hostname = parseHost(flags.host);
  const ports = parsePortRange(flags.port);
  const parallel = parseCount(flags.parallel ?? "16", "--parallel", { max: 1024 });
  // One flag for the whole range, rather than the first port's.
  requireNet(hostname, ports.length === 1 ? ports[0] : 0, `probe ${hostname}`);
  let open = 0;
  await probePorts({
    hostname,
    ports,
    timeout,
    parallel,
    onResult: ({ port, state }) => {
      if (state === "open") open++;
      const why = state === "closed"
        ? " (refused)"
        : state === "filtered"
        ? ` (no answer within ${timeout} ms)`
        : "";
      printLine(`${formatHostPort(hostname, port)} ${state}${why}`);
    },
  });
  return open > 0 ? 0 : 1;
}

if (import.meta.main) runMain("tcp_client", () => main(Deno.args));
