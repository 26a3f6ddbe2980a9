/**
 * The sending side of `udp_send.ts`: `sendto` a message `count` times, and with `waitReply`
 * collect the answers (one expected per datagram) the way `nc -u -w` waits: until they have all
 * come, or nothing has happened for `timeout`. A broadcast address is refused unless asked for,
 * a message larger than its family allows is refused before it is sent, and a send that cannot
 * proceed (a Unix receiver whose queue stays full) ends at the timeout instead of hanging.
 * @module
 */
import { formatTarget } from "../address.ts";
import { withAddress } from "../errors.ts";
import { requireNet, requirePermission } from "../permissions.ts";
import { broadcastReason, localIpv4Networks } from "./broadcast.ts";
import { describeFamily, maxPayload, receiveBufferSize } from "./limits.ts";
import { type BoundDatagram, isUndecodableAddress, openSender } from "./socket.ts";

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
  /** The address to send from (UDP), or the path to bind (Unix: needed to get a reply). */
  source?: string;
  /** Allow a broadcast destination (`SO_BROADCAST` is always on in Deno). @default {false} */
  broadcast?: boolean;
  /** Wait for one reply per datagram sent. @default {false} */
  waitReply?: boolean;
  /** How long a send, or the wait for the next reply, may take (ms). @default {2000} */
  timeout?: number;
  /** Called once the destination has passed every check and the sending socket is bound,
   * with its address: before the first datagram. */
  onLocal?: (local: Deno.Addr) => void;
  /** Called after each datagram is sent. */
  onSent?: (bytes: number) => void;
  /** Called for each reply; the bytes are valid only during the call. */
  onReply?: (data: Uint8Array, peer: Deno.Addr) => void;
}

/** What {@linkcode sendDatagrams} did. */
export interface SendResult {
  /** Datagrams sent. */
  sent: number;
  /** Their bytes. */
  bytes: number;
  /** Replies received (with `waitReply`). */
  replies: number;
  /** The address the datagrams were sent from. */
  local: Deno.Addr;
}

/**
 * Sends `message` as `count` datagrams, then with `waitReply` waits for as many replies.
 * Throws before sending when the message is too large for its family (`RangeError`), when the
 * target is a broadcast address and `broadcast` is not set (`Deno.errors.PermissionDenied`, as
 * the kernel answers `sendto` without `SO_BROADCAST`), or when a permission is missing
 * (`Deno.errors.NotCapable`, naming the flag); `Deno.errors.TimedOut` when a send takes longer
 * than `timeout`. Fewer replies than datagrams is not an error: compare `replies` with `sent`.
 *
 * @example Sending one datagram to a receiver
 * ```ts
 * import { sendDatagrams } from "./send.ts";
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
): Promise<SendResult> {
  const { path, hostname = "127.0.0.1", port = 5005, count = 1, timeout = 2000 } = options;
  const text = formatTarget({ path, hostname, port });
  checkDestination(message, options);
  const target: Deno.Addr = path === undefined
    ? { transport: "udp", hostname, port }
    : { transport: "unixpacket", path };
  const socket = await openSender({ hostname, path }, options.source);
  const result: SendResult = { sent: 0, bytes: 0, replies: 0, local: socket.addr };
  const timer = new IdleTimer(timeout, () => socket.close());
  let replies: Promise<void> | undefined;
  const sendOne = async () => {
    timer.restart();
    // Closing the socket does not end a send that waits (a Unix receiver whose queue stays
    // full): the timer's expiry does.
    result.bytes += await Promise.race([socket.conn.send(message, target), timer.expiry]);
    result.sent++;
    options.onSent?.(message.length);
  };
  try {
    options.onLocal?.(socket.addr);
    if (options.waitReply && path !== undefined) {
      // Deno will not send on a Unix socket while a receive is pending on it (Busy): one
      // datagram, then its reply, in turn.
      while (result.sent < count && result.replies === result.sent) {
        await sendOne();
        timer.restart();
        await collectReplies(socket, result.sent, result, timer, options.onReply);
      }
      return result;
    }
    if (options.waitReply) {
      replies = collectReplies(socket, count, result, timer, options.onReply);
      // Handled where it is awaited; this keeps an early failure from counting as unhandled.
      replies.catch(() => {});
    }
    while (result.sent < count) await sendOne();
    timer.restart();
    await replies;
  } catch (error) {
    if (timer.expired && result.sent < count) {
      throw new Deno.errors.TimedOut(`${text}: a send took longer than ${timeout} ms`);
    }
    throw withAddress(error, text);
  } finally {
    timer.clear();
    socket.close();
    await replies?.catch(() => {});
  }
  return result;
}

/**
 * Throws what {@linkcode sendDatagrams} would throw before sending anything: a message too large
 * for its family, a broadcast destination without `broadcast`, a missing permission. For a
 * program that wants to say so before it prints anything.
 *
 * @example
 * ```ts
 * import { checkDestination } from "./send.ts";
 * let refused = false;
 * try {
 *   checkDestination(new Uint8Array(1), { hostname: "255.255.255.255", port: 9 });
 * } catch (error) {
 *   refused = error instanceof Deno.errors.PermissionDenied;
 * }
 * if (!refused) throw new Error("a broadcast went out without being asked for");
 * ```
 */
export function checkDestination(message: Uint8Array, options: SendOptions): void {
  const { path, hostname = "127.0.0.1", port = 5005 } = options;
  const text = formatTarget({ path, hostname, port });
  const max = maxPayload({ hostname, path });
  if (message.length > max) {
    throw new RangeError(
      `Cannot send ${message.length} bytes: ${
        describeFamily({ hostname, path })
      } holds at most ${max}`,
    );
  }
  if (path !== undefined) {
    const flag = `--allow-net=unix:${path}`;
    requirePermission({ name: "net", host: `unix:${path}` }, flag, `send to ${text}`);
    if (options.waitReply && options.source === undefined) {
      throw new TypeError("Cannot wait for a reply over a Unix socket without a source path");
    }
    return;
  }
  const reason = options.broadcast ? undefined : broadcastReason(hostname, localIpv4Networks());
  if (reason !== undefined) {
    throw new Deno.errors.PermissionDenied(
      `${text} is ${reason}: add -b (--broadcast) to send a broadcast`,
    );
  }
  requireNet(hostname, port, `send to ${text}`);
}

async function collectReplies(
  socket: BoundDatagram,
  count: number,
  result: SendResult,
  timer: IdleTimer,
  onReply?: (data: Uint8Array, peer: Deno.Addr) => void,
): Promise<void> {
  const buffer = new Uint8Array(receiveBufferSize(socket.addr.transport as "udp"));
  while (result.replies < count) {
    let data: Uint8Array, peer: Deno.Addr;
    try {
      [data, peer] = await socket.conn.receive(buffer);
    } catch (error) {
      if (isUndecodableAddress(error)) continue;
      // The timer closed the socket: the replies that came are all there will be.
      if (timer.expired) return;
      throw error;
    }
    result.replies++;
    timer.restart();
    onReply?.(data, peer);
  }
}

/** Calls `onExpire` once nothing has restarted it for `ms`; `expiry` then rejects. */
class IdleTimer {
  expired = false;
  /** Rejects with `Deno.errors.TimedOut` when the timer expires; never resolves. */
  readonly expiry: Promise<never>;
  #ms: number;
  #onExpire: () => void;
  #reject: (error: Error) => void;
  #timer?: ReturnType<typeof setTimeout>;

  constructor(ms: number, onExpire: () => void) {
    this.#ms = ms;
    this.#onExpire = onExpire;
    const { promise, reject } = Promise.withResolvers<never>();
    promise.catch(() => {});
    this.expiry = promise;
    this.#reject = reject;
  }

  restart(): void {
    if (this.expired) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.expired = true;
      this.#onExpire();
      this.#reject(new Deno.errors.TimedOut("timed out"));
    }, this.#ms);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}
