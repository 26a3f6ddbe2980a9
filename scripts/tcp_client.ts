/**
 * TCP client — the tutorial's `client.py`: connect, read what the server sends until it
 * closes, print it, close. Where the original's single `recv(1024)` may return part of the
 * data, this reads to the end (up to `--max-bytes`).
 *
 * Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_client.ts
 * Try it: deno task tcp-server, then this; or against `nc -l 127.0.0.1 12345`
 *
 * @module
 */
import { printError, printLine, runMain } from "../lib/cli.ts";
import { escapeBytes } from "../lib/escape.ts";
import { clientTlsFromFlags, type ClientTlsOptions } from "../lib/tls.ts";
import { connect as dial } from "../lib/net/connect.ts";
import { parseDuration, parseEndpoint, parseFlags, parseSize } from "../lib/flags.ts";

/** Options for {@linkcode fetchGreeting}. */
export interface ClientOptions {
  /** Server host. @default {"127.0.0.1"} */
  hostname?: string;
  /** Server port. @default {12345} */
  port?: number;
  /** Connect to a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** TLS trust and ALPN; when given, the connection is TLS. */
  tls?: ClientTlsOptions;
  /** Bytes to send (then shut down the sending side, like `nc -N`) before reading. */
  send?: Uint8Array;
  /** Stop reading after this many bytes. @default {1048576} */
  maxBytes?: number;
  /** Give up when connecting, or waiting for the next bytes, takes longer (ms). */
  timeout?: number;
}

/** What the server sent. */
export interface ClientResult {
  /** The bytes received, at most `maxBytes`. */
  data: Uint8Array;
  /** Whether reading stopped at `maxBytes` before the server closed. */
  truncated: boolean;
}

/**
 * Connects, optionally sends, and reads until the server closes the connection.
 * Throws `Deno.errors.TimedOut` when `timeout` passes with nothing new.
 */
export async function fetchGreeting(options: ClientOptions = {}): Promise<ClientResult> {
  const { timeout, maxBytes = 1024 * 1024 } = options;
  using conn = await connect(options);
  const idle = new IdleTimer(conn, timeout);
  try {
    if (options.send) {
      for (let sent = 0; sent < options.send.length;) {
        sent += await conn.write(options.send.subarray(sent));
      }
      await conn.closeWrite();
    }
    return await readToEnd(conn, maxBytes, () => idle.touch());
  } catch (error) {
    if (idle.fired) throw new Deno.errors.TimedOut(`No data for ${timeout} ms`);
    throw error;
  } finally {
    idle.clear();
  }
}

function connect(options: ClientOptions): Promise<Deno.Conn> {
  const { path, hostname = "127.0.0.1", port = 12345, tls, timeout } = options;
  return dial({ path, hostname, port, tls, timeout });
}

/** Closes the connection when nothing has happened on it for `timeout` ms. */
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
    if (this.#timeout === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.#conn.close();
    }, this.#timeout);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

async function readToEnd(
  conn: Deno.Conn,
  maxBytes: number,
  onData: () => void,
): Promise<ClientResult> {
  // Start small and double: most replies are short, and --max-bytes may be large.
  let data = new Uint8Array(Math.min(maxBytes + 1, 64 * 1024));
  let length = 0;
  // Read one byte past the limit to tell "exactly maxBytes" from "more than maxBytes".
  while (length <= maxBytes) {
    if (length === data.length) {
      const grown = new Uint8Array(Math.min(data.length * 2, maxBytes + 1));
      grown.set(data);
      data = grown;
    }
    const n = await conn.read(data.subarray(length));
    if (n === null) break;
    length += n;
    onData();
  }
  const truncated = length > maxBytes;
  return { data: data.subarray(0, Math.min(length, maxBytes)), truncated };
}

const USAGE = `Usage: tcp_client.ts [options]

The tutorial's TCP client: connects, prints everything the server sends until it closes.

Options:
  --host HOST        server host (IPv4, IPv6 or name)       [default: 127.0.0.1]
  --port PORT        server port                            [default: 12345]
  --unix PATH        connect to a Unix stream socket instead of TCP
  --send TEXT        send TEXT first, then shut down the sending side (like nc -N)
  --max-bytes SIZE   stop reading after SIZE bytes (k, M units) [default: 1M]
  --timeout DUR      give up connecting or waiting for data after DUR (500ms, 5s)
  --raw              write the bytes as received, without escaping control characters
  --tls              connect with TLS; --ca FILE trusts a CA (PEM; needs --allow-read)
  --alpn P1,P2       ALPN protocols to offer with --tls (repeatable)
  --insecure         with --tls, skip the host name check (not the certificate chain)
  -h, --help         show this help

Run:    deno run --allow-net=127.0.0.1:12345 scripts/tcp_client.ts
Try it: deno task tcp-server, then this`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "send", "max-bytes", "timeout", "ca"],
    boolean: ["raw", "tls", "insecure", "help"],
    collect: ["alpn"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
  const maxBytes = parseSize(flags["max-bytes"] ?? "1M", "--max-bytes", { max: 1024 ** 3 });
  const result = await fetchGreeting({
    ...parseEndpoint(flags, 12345),
    send: flags.send === undefined ? undefined : new TextEncoder().encode(flags.send),
    maxBytes,
    timeout: flags.timeout === undefined ? undefined : parseDuration(flags.timeout, "--timeout"),
    tls: await clientTlsFromFlags(flags),
  });
  if (flags.raw) await Deno.stdout.write(result.data);
  else printLine(escapeBytes(result.data, { keepLineBreaks: true }));
  if (result.truncated) {
    printError(`tcp_client: stopped reading after ${maxBytes} bytes (--max-bytes)`);
  }
}

if (import.meta.main) runMain("tcp_client", () => main(Deno.args));
