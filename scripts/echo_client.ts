/**
 * Multi-socket echo client — PyMOTW's `select()` client: opens two connections to the echo
 * server, sends each message in turn on every connection, prints what it sends and what comes
 * back, and exits 0 only when every echo matches what was sent (1 with the mismatch otherwise).
 *
 * Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_client.ts
 * Try it: deno task echo-server   (in another terminal; or `socat TCP-LISTEN:10000,fork EXEC:cat`)
 *
 * @module
 */
import { equals } from "@std/bytes/equals";
import { clientTlsFromFlags, type ClientTlsOptions } from "../lib/tls.ts";
import { closeQuietly, writeAll } from "../lib/io.ts";
import { connect as dial } from "../lib/net/connect.ts";
import { formatAddr, formatTarget } from "../lib/address.ts";
import { printError, printLine, runMain } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { escapeBytes } from "../lib/escape.ts";
import {
  parseCount,
  parseDuration,
  parseEndpoint,
  parseFlags,
  rejectTogether,
} from "../lib/flags.ts";
import { hexDump } from "../lib/hexdump.ts";

/** The original's three messages. */
export const DEFAULT_MESSAGES: readonly string[] = [
  "This is the message. ",
  "It will be sent ",
  "in parts.",
];

export type { ClientTlsOptions };
/** Options for {@linkcode runEchoClient}. */
export interface EchoClientOptions {
  /** Server host. @default {"127.0.0.1"} */
  hostname?: string;
  /** Server port. @default {10000} */
  port?: number;
  /** Connect to a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** TLS trust and ALPN; when given, every connection is TLS. */
  tls?: ClientTlsOptions;
  /** How many connections to open. @default {2} */
  connections?: number;
  /** Messages sent in turn on every connection. @default {DEFAULT_MESSAGES} */
  messages?: readonly string[];
  /** How long to wait for each connect (with its TLS handshake) and each round of echoes, in
   * milliseconds. @default {5000} */
  timeout?: number;
  /** Called before a message is sent and after its echo came back in full. */
  onEvent?: (event: { type: "sending" | "received"; socket: string; bytes: Uint8Array }) => void;
}

/**
 * Sends every message on every connection and checks each echo; throws on the first mismatch,
 * early end of stream or timeout. Connections are closed before it returns.
 *
 * @example Against the multiplexed echo server
 * ```ts
 * import { runEchoClient } from "./echo_client.ts";
 * import { serveEcho } from "../lib/mux/mod.ts";
 * const server = await serveEcho({ port: 0 });
 * await runEchoClient({ port: (server.addr as Deno.NetAddr).port });
 * server.close();
 * await server.finished;
 * ```
 */
export async function runEchoClient(options: EchoClientOptions = {}): Promise<void> {
  const { connections = 2, messages = DEFAULT_MESSAGES, timeout = 5000, onEvent } = options;
  const encoder = new TextEncoder();
  const sockets: { conn: Deno.Conn; name: string }[] = [];
  const { path, hostname = "127.0.0.1", port = 10000 } = options;
  const server = formatTarget({ path, hostname, port });
  try {
    for (let i = 0; i < connections; i++) {
      const conn = await connect(options);
      // The original names each socket by its own address; Unix client sockets have none.
      const name = options.path === undefined ? formatAddr(conn.localAddr) : `socket ${i + 1}`;
      sockets.push({ conn, name });
    }
    for (const message of messages) {
      const bytes = encoder.encode(message);
      for (const { conn, name } of sockets) {
        onEvent?.({ type: "sending", socket: name, bytes });
        await writeAll(conn, bytes);
      }
      await withTimeout(
        Promise.all(sockets.map(async ({ conn, name }) => {
          const echoed = await readExactly(conn, bytes.length, `${server} closed ${name}`);
          if (!(equals(echoed, bytes) as boolean)) {
            throw new Error(
              `Echo mismatch on ${name} (server ${server}): sent "${
                escapeBytes(bytes)
              }", received "${escapeBytes(echoed)}"`,
            );
          }
          return { name, echoed };
        })).then((echoes) => {
          for (const { name, echoed } of echoes) {
            onEvent?.({ type: "received", socket: name, bytes: echoed });
          }
        }),
        timeout,
        server,
        () => sockets.forEach(({ conn }) => closeQuietly(conn)),
      );
    }
  } finally {
    for (const { conn } of sockets) closeQuietly(conn);
  }
}

/** Reads exactly `length` bytes — never more, so each echo is checked on its own. */
async function readExactly(conn: Deno.Conn, length: number, what: string): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  for (let got = 0; got < length;) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) {
      throw new Error(`Server ${what} after ${got} of ${length} echoed bytes`);
    }
    got += n;
  }
  return buffer;
}

async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  server: string,
  onTimeout: () => void,
): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    onTimeout(); // closing the sockets ends the reads in flight
  }, ms);
  try {
    return await work;
  } catch (error) {
    if (timedOut) throw new Deno.errors.TimedOut(`No complete echo from ${server} within ${ms} ms`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function connect(options: EchoClientOptions): Promise<Deno.Conn> {
  const { path, hostname = "127.0.0.1", port = 10000, tls, timeout = 5000 } = options;
  return dial({ path, hostname, port, tls, timeout, noDelay: true });
}

const USAGE = `Usage: echo_client.ts [options] [HOST [PORT]]

The multi-socket echo client: sends each message in turn on every connection and checks
that every byte comes back. Exits 0 when all echoes match, 1 otherwise. HOST and PORT may be
given as arguments, as with nc; --host and --port win over them.

Options:
  --host HOST          server host (IPv4, IPv6 or name)             [default: 127.0.0.1]
  --port PORT          server port                                  [default: 10000]
  --unix PATH          connect to a Unix stream socket instead of TCP
  --connections N      connections to open                         [default: 2]
  --message TEXT       a message to send; repeat for several
                       [default: "This is the message. " "It will be sent " "in parts."]
  -w, --timeout DUR    how long to wait for each connect, TLS handshake and round of
                       echoes (500ms, 5s; a bare number is seconds, as with nc -w) [default: 5s]
  -x, --hex            print each echo as a hex dump too (the layout of xxd)
  -q, --quiet          print nothing but errors: the exit code tells
  --tls                connect with TLS; --ca FILE trusts a CA (PEM; needs --allow-read)
  --alpn P1,P2         ALPN protocols to offer with --tls (repeatable)
  --insecure           with --tls, skip the host name check (not the certificate chain)
  -h, --help           show this help
  --version            print the version

Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_client.ts
Try it: deno task echo-server   (in another terminal), then deno task echo-client`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "connections", "timeout", "ca"],
    boolean: ["tls", "insecure", "hex", "quiet"],
    collect: ["message", "alpn"],
    alias: { w: "timeout", x: "hex", q: "quiet" },
    positional: ["host", "port"],
    usage: USAGE,
  });
  rejectTogether(flags, ["hex", "quiet"]);
  const options: EchoClientOptions = {
    ...parseEndpoint(flags, 10000),
    connections: parseCount(flags.connections ?? "2", "--connections", { max: 1000 }),
    messages: flags.message.length > 0 ? flags.message : DEFAULT_MESSAGES,
    timeout: parseDuration(flags.timeout ?? "5s", "--timeout"),
    tls: await clientTlsFromFlags(flags),
  };
  if (options.messages!.some((message) => message === "")) {
    throw new UsageError('Flag "--message" needs a non-empty value');
  }
  const target = formatTarget({ ...options, hostname: options.hostname!, port: options.port! });
  if (!flags.quiet) printError(`connecting to ${target}`);
  await runEchoClient({
    ...options,
    onEvent: flags.quiet ? undefined : ({ type, socket, bytes }) => {
      printLine(`${socket}: ${type} "${escapeBytes(bytes)}"`);
      if (flags.hex && type === "received") printLine(hexDump(bytes).trimEnd());
    },
  });
}

if (import.meta.main) runMain("echo_client", () => main(Deno.args));
