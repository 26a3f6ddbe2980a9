/**
 * UDP receiver — the tutorial's receiver: bind, then print `received message: <data>` for
 * every datagram (`recvfrom` in a loop). The original reads into 1024 bytes and silently cuts
 * longer datagrams; this receives up to the UDP maximum and says when it shortens a print.
 *
 * Run:    deno run --allow-net=127.0.0.1:5005 scripts/udp_receive.ts
 * Try it: deno task udp-send, or `echo -n hi | socat - UDP-SENDTO:127.0.0.1:5005`
 *
 * @module
 */
import { formatAddr, formatTarget } from "../lib/address.ts";
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { closeOnce, isPeerGone, withAddress } from "../lib/errors.ts";
import { escapeBytes } from "../lib/escape.ts";
import { parseCount, parseEndpoint, parseFlags, parseSize, rejectTogether } from "../lib/flags.ts";
import { claimUnixPath, releaseUnixPath } from "../lib/net/unix_path.ts";

/** Big enough for any UDP datagram (the IPv4 payload limit is 65507, IPv6's 65527). */
const RECEIVE_BUFFER_BYTES = 65536;
/** After a stop, datagrams already queued in the kernel are still read and printed until
 * none has arrived for this long. */
const DRAIN_QUIET_MS = 50;

/** Options for {@linkcode receiveDatagrams}. */
export interface ReceiveOptions {
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {5005} */
  port?: number;
  /** Bind a Unix datagram socket at this path instead of UDP. */
  path?: string;
  /** Stop after this many datagrams. @default {Infinity} */
  count?: number;
  /** Stops receiving when aborted. */
  signal?: AbortSignal;
  /** Called once bound, with the address really bound. */
  onListen?: (addr: Deno.Addr) => void;
}

/**
 * Binds and yields every datagram with its sender until `count` is reached or `signal` aborts
 * (then what is already queued is still yielded); the socket is closed when the iteration
 * ends, however it ends. The yielded bytes are only
 * valid until the next iteration (one buffer is reused).
 *
 * @example Receiving one datagram
 * ```ts
 * import { receiveDatagrams } from "./udp_receive.ts";
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
 * const received = (async () => {
 *   for await (const [data] of receiveDatagrams({ port: 0, count: 1, onListen: (a) => resolve(a as Deno.NetAddr) })) {
 *     return new TextDecoder().decode(data);
 *   }
 * })();
 * const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await sender.send(new TextEncoder().encode("hi"), await bound);
 * sender.close();
 * if (await received !== "hi") throw new Error("lost");
 * ```
 */
export async function* receiveDatagrams(
  options: ReceiveOptions = {},
): AsyncGenerator<[Uint8Array, Deno.Addr]> {
  const { path, hostname = "127.0.0.1", port = 5005, count = Infinity, signal } = options;
  let socket: Deno.DatagramConn;
  try {
    socket = path === undefined
      ? Deno.listenDatagram({ transport: "udp", hostname, port })
      : Deno.listenDatagram({ transport: "unixpacket", path });
  } catch (error) {
    throw withAddress(error, formatTarget({ path, hostname, port }));
  }
  const close = closeOnce(socket);
  const drain = new DrainTimer(close);
  const stop = () => drain.start();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    options.onListen?.(socket.addr);
    if (signal?.aborted) stop();
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    for (let received = 0; received < count; received++) {
      let datagram: [Uint8Array, Deno.Addr];
      try {
        datagram = await socket.receive(buffer);
      } catch (error) {
        if (drain.started && isPeerGone(error)) return;
        throw error;
      }
      drain.extend();
      yield datagram;
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    drain.clear();
    close();
  }
}

/** Closes the socket once it has been quiet for {@linkcode DRAIN_QUIET_MS} after a stop. */
class DrainTimer {
  started = false;
  #timer?: ReturnType<typeof setTimeout>;
  #close: () => void;

  constructor(close: () => void) {
    this.#close = close;
  }

  start(): void {
    this.started = true;
    this.extend();
  }

  extend(): void {
    if (!this.started) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#close, DRAIN_QUIET_MS);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

const USAGE = `Usage: udp_receive.ts [options]

The tutorial's UDP receiver: prints "received message: <data>" for every datagram.

Options:
  --host HOST        address to bind (IPv4, IPv6 or name)   [default: 127.0.0.1]
  --port PORT        port to bind, 0 for any free port      [default: 5005]
  --unix PATH        bind a Unix datagram socket instead of UDP
  --count N          exit after N datagrams
  --max-bytes SIZE   print at most SIZE bytes of a datagram, saying how many were left out
  --json             print one JSON object per datagram, with its sender
  --quiet            print nothing per datagram; a count on exit
  -h, --help         show this help

Control characters in received data are printed escaped (\\n, \\x1b, \\u{202e}).

Run:    deno run --allow-net=127.0.0.1:5005 scripts/udp_receive.ts
Try it: deno task udp-send`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "count", "max-bytes"],
    boolean: ["json", "quiet", "help"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
  rejectTogether(flags, ["quiet", "json"]);
  const maxBytes = flags["max-bytes"] === undefined
    ? Infinity
    : parseSize(flags["max-bytes"], "--max-bytes", { max: RECEIVE_BUFFER_BYTES });
  const options: ReceiveOptions = {
    ...parseEndpoint(flags, 5005),
    count: flags.count === undefined ? undefined : parseCount(flags.count, "--count"),
    onListen: (addr) => printError(`Listening on ${formatAddr(addr)}`),
  };

  using stop = stopSignal();
  if (options.path !== undefined) await claimUnixPath(options.path);
  let datagrams = 0, bytes = 0;
  try {
    for await (const [data, from] of receiveDatagrams({ ...options, signal: stop.signal })) {
      datagrams++;
      bytes += data.length;
      const text = escapeBytes(data, { maxBytes });
      if (flags.json) {
        printLine(JSON.stringify({ from: formatAddr(from), bytes: data.length, data: text }));
      } else if (!flags.quiet) {
        printLine(`received message: ${text}`);
      }
    }
  } finally {
    if (options.path !== undefined) releaseUnixPath(options.path);
    if (flags.quiet) printError(`received ${datagrams} datagrams, ${bytes} bytes`);
  }
}

if (import.meta.main) runMain("udp_receive", () => main(Deno.args));
