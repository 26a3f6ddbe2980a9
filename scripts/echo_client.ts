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
import { parseCount, parseDuration, parseEndpoint, parseFlags } from "../lib/flags.ts";

/** The original's three messages. */
export const DEFAULT_MESSAGES: readonly string[] = [
  "This is the message. ",
  "It will be sent ",
  "in parts.",
];

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
  /** How long to wait for each round of echoes, in milliseconds. @default {5000} */
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
          const echoed = await readExactly(conn, bytes.length, name);
          if (!(equals(echoed, bytes) as boolean)) {
            throw new Error(
              `Echo mismatch on ${name}: sent "${escapeBytes(bytes)}", received "${
                escapeBytes(echoed)
              }"`,
            );
          }
          return { name, echoed };
        })).then((echoes) => {
          for (const { name, echoed } of echoes) {
            onEvent?.({ type: "received", socket: name, bytes: echoed });
          }
        }),
        timeout,
        () => sockets.forEach(({ conn }) => closeQuietly(conn)),
      );
    }
  } finally {
    for (const { conn } of sockets) closeQuietly(conn);
  }
}

/** Reads exactly `length` bytes — never more, so each echo is checked on its own. */
async function readExactly(conn: Deno.Conn, length: number, name: string): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  for (let got = 0; got < length;) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) {
      throw new Error(`Server closed ${name} after ${got} of ${length} echoed bytes`);
    }
    got += n;
  }
  return buffer;
}

async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    onTimeout(); // closing the sockets ends the reads in flight
  }, ms);
  try {
    return await work;
  } catch (error) {
    if (timedOut) throw new Error(`No complete echo within ${ms} ms`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function connect(options: EchoClientOptions): Promise<Deno.Conn> {
  const { path, hostname = "127.0.0.1", port = 10000, tls, timeout = 5000 } = options;
  return dial({ path, hostname, port, tls, timeout, noDelay: true });
}

const USAGE = `Usage: echo_client.ts [options]

The multi-socket echo client: sends each message in turn on every connection and checks
that every byte comes back. Exits 0 when all echoes match, 1 otherwise.

Options:
  --host HOST         server host (IPv4, IPv6 or name)             [default: 127.0.0.1]
  --port PORT         server port                                  [default: 10000]
  --unix PATH         connect to a Unix stream socket instead of TCP
  --connections N     connections to open                         [default: 2]
  --message TEXT      a message to send; repeat for several
                      [default: "This is the message. " "It will be sent " "in parts."]
  --timeout DURATION  how long to wait for each round of echoes   [default: 5s]
  --tls               connect with TLS; --ca FILE trusts a CA (PEM; needs --allow-read)
  --alpn P1,P2        ALPN protocols to offer with --tls (repeatable)
  --insecure          with --tls, skip the host name check (not the certificate chain)
  -h, --help          show this help

Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_client.ts
Try it: deno task echo-server   (in another terminal)`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "connections", "timeout", "ca"],
    boolean: ["tls", "insecure", "help"],
    collect: ["message", "alpn"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
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
  printError(
    `connecting to ${
      formatTarget({ ...options, hostname: options.hostname!, port: options.port! })
    }`,
  );
  await runEchoClient({
    ...options,
    onEvent: ({ type, socket, bytes }) => printLine(`${socket}: ${type} "${escapeBytes(bytes)}"`),
  });
}

if (import.meta.main) runMain("echo_client", () => main(Deno.args));
