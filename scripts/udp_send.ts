/**
 * UDP sender — the tutorial's sender: prints the target and the message, then sends the
 * message as one datagram (`sendto`). UDP has no connection: nothing says whether it arrived.
 *
 * Run:    deno run --allow-net=127.0.0.1 scripts/udp_send.ts
 * Try it: deno task udp-receive, or `socat -u UDP-RECV:5005,bind=127.0.0.1 -`, then this
 *
 * @module
 */
import { formatTarget } from "../lib/address.ts";
import { printLine, runMain } from "../lib/cli.ts";
import { UsageError, withAddress } from "../lib/errors.ts";
import { escapeText } from "../lib/escape.ts";
import { isIPv6, parseCount, parseEndpoint, parseFlags } from "../lib/flags.ts";

/** The largest payload one UDP datagram can carry over IPv4 (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD = 65507;

/** Options for {@linkcode sendDatagrams}. */
export interface SendOptions {
  /** Target host. @default {"127.0.0.1"} */
  hostname?: string;
  /** Target port. @default {5005} */
  port?: number;
  /** Send to a Unix datagram socket at this path instead of UDP. */
  path?: string;
  /** How many copies of the message to send. @default {1} */
  count?: number;
}

/**
 * Sends `message` as `count` datagrams and resolves with the number of bytes sent.
 *
 * @example Sending one datagram to a receiver
 * ```ts
 * import { sendDatagrams } from "./udp_send.ts";
 * const receiver = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const { port } = receiver.addr as Deno.NetAddr;
 * await sendDatagrams(new TextEncoder().encode("Hello, World!"), { port });
 * const [data] = await receiver.receive();
 * receiver.close();
 * if (new TextDecoder().decode(data) !== "Hello, World!") throw new Error("lost");
 * ```
 */
export async function sendDatagrams(
  message: Uint8Array,
  options: SendOptions = {},
): Promise<number> {
  const { path, hostname = "127.0.0.1", port = 5005, count = 1 } = options;
  const target: Deno.Addr = path === undefined
    ? { transport: "udp", hostname, port }
    : { transport: "unixpacket", path };
  const socket = path === undefined
    ? Deno.listenDatagram({ transport: "udp", hostname: localAddressFor(hostname), port: 0 })
    : Deno.listenDatagram({ transport: "unixpacket" });
  let sent = 0;
  try {
    for (let i = 0; i < count; i++) sent += await socket.send(message, target);
  } catch (error) {
    throw withAddress(error, formatTarget({ path, hostname, port }));
  } finally {
    socket.close();
  }
  return sent;
}

/** The sending socket binds loopback for a loopback target (so `--allow-net=127.0.0.1` is
 * enough), and the wildcard address of the target's family otherwise. */
function localAddressFor(target: string): string {
  if (target === "::1") return "::1";
  if (isIPv6(target)) return "::";
  return target.startsWith("127.") || target === "localhost" ? "127.0.0.1" : "0.0.0.0";
}

const USAGE = `Usage: udp_send.ts [options]

The tutorial's UDP sender: prints the target and the message, then sends it as a datagram.

Options:
  --host HOST       target host (IPv4, IPv6 or name)      [default: 127.0.0.1]
  --port PORT       target port                           [default: 5005]
  --unix PATH       send to a Unix datagram socket instead of UDP
  --message TEXT    what to send                          [default: Hello, World!]
  --count N         send the message N times              [default: 1]
  --quiet           do not print the target and message
  -h, --help        show this help

Run:    deno run --allow-net=127.0.0.1 scripts/udp_send.ts
Try it: deno task udp-receive, then this`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "message", "count"],
    boolean: ["quiet", "help"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
  const { hostname, port, path } = parseEndpoint(flags, 5005);
  const text = flags.message ?? "Hello, World!";
  const message = new TextEncoder().encode(text);
  if (message.length > MAX_UDP_PAYLOAD) {
    throw new UsageError(
      `Cannot send --message of ${message.length} bytes: a UDP datagram holds at most ${MAX_UDP_PAYLOAD}`,
    );
  }
  const count = parseCount(flags.count ?? "1", "--count");
  if (!flags.quiet) {
    if (flags.unix === undefined) {
      printLine(`UDP target IP: ${hostname}`);
      printLine(`UDP target port: ${port}`);
    } else {
      printLine(`Unix datagram target: ${flags.unix}`);
    }
    printLine(`message: ${escapeText(text)}`);
  }
  await sendDatagrams(message, { hostname, port, path, count });
}

if (import.meta.main) runMain("udp_send", () => main(Deno.args));
