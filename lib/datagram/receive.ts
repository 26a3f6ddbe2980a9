/**
 * The receiving loop of `udp_receive.ts`: `recvfrom` in a loop, done so that no datagram is
 * lost without a count. Datagrams come whole (one buffer sized for the family; a Unix datagram
 * longer than it is marked as cut), a sender address Deno cannot decode is counted instead of
 * ending the loop, and a stop drains what the kernel had already queued, bounded in time, then
 * reads the kernel's drop counter before the socket closes.
 * @module
 */
import { equals } from "@std/bytes/equals";
import { isPeerGone } from "../errors.ts";
import { isGranted, netHost } from "../permissions.ts";
import { type KernelDrops, readKernelDrops } from "./drops.ts";
import { EchoReplies } from "./echo.ts";
import { receiveBufferSize } from "./limits.ts";
import { closeQuietly } from "../io.ts";
import { type BoundDatagram, isUndecodableAddress, openUnnamedUnix } from "./socket.ts";

/** A stop drains what the kernel already holds for at most this long (a flood may never end). */
export const DRAIN_MAX_MS = 2000;
/** Without a stop marker, a drain also ends once nothing has arrived for this long. */
const DRAIN_QUIET_MS = 50;
/** How long the marker may wait to be queued on a Unix socket. */
const MARKER_WAIT_MS = 100;

/** One datagram as received. */
export interface ReceivedDatagram {
  /** Its bytes; valid only until the next iteration (one buffer is reused). */
  data: Uint8Array;
  /** Who sent it. */
  peer: Deno.Addr;
  /** Whether it filled the buffer: the kernel cut it there and discarded the rest. */
  truncated: boolean;
}

/** What a receiver did, given to `onSummary` before its socket closes. */
export interface ReceiveSummary {
  /** The address it was bound to. */
  local: Deno.Addr;
  /** Datagrams received. */
  datagrams: number;
  /** Their bytes. */
  bytes: number;
  /** Datagrams cut because they filled the buffer (only a Unix socket can be sent those). */
  truncated: number;
  /** Datagrams whose sender's address Deno could not decode: received, not yielded. */
  undecodable: number;
  /** Replies sent with `echo`. */
  echoed: number;
  /** Replies that could not be sent (over a bound, no permission, an unnamed peer). */
  echoFailed: number;
  /** The kernel's count of datagrams dropped for want of buffer room (0 on a Unix socket,
   * where a sender waits instead). */
  kernelDrops: KernelDrops;
  /** Whether the drain after a stop ended at its time bound with datagrams still arriving. */
  drainCut: boolean;
}

/** Options for {@linkcode receiveFrom}. */
export interface ReceiveOptions {
  /** Stop after this many datagrams. @default {Infinity} */
  count?: number;
  /** Stops receiving when aborted, after draining what is already queued. */
  signal?: AbortSignal;
  /** Answer every datagram to its sender with the same bytes. @default {false} */
  echo?: boolean;
  /** Called once bound, with the address really bound. */
  onListen?: (addr: Deno.Addr) => void;
  /** Called once, with a line for the user, when a reply cannot be sent for want of a
   * permission. */
  onNotice?: (text: string) => void;
  /** Called at the end, before the socket closes. */
  onSummary?: (summary: ReceiveSummary) => void;
}

/**
 * Yields every datagram that reaches `socket` until `count` is reached or `signal` aborts, then
 * closes the socket, however the iteration ends. On a stop it sends itself a marker and reads
 * until the marker comes back, so that exactly what was queued before the stop is still
 * yielded, for {@linkcode DRAIN_MAX_MS} at most.
 *
 * @example Receiving one datagram
 * ```ts
 * import { bindDatagram } from "./socket.ts";
 * import { receiveFrom } from "./receive.ts";
 * const socket = await bindDatagram({ hostname: "127.0.0.1", port: 0 });
 * const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await sender.send(new TextEncoder().encode("hi"), socket.addr);
 * sender.close();
 * for await (const { data } of receiveFrom(socket, { count: 1 })) {
 *   if (new TextDecoder().decode(data) !== "hi") throw new Error("lost");
 * }
 * ```
 */
export async function* receiveFrom(
  socket: BoundDatagram,
  options: ReceiveOptions = {},
): AsyncGenerator<ReceivedDatagram> {
  const { count = Infinity, signal } = options;
  const summary: ReceiveSummary = {
    local: socket.addr,
    datagrams: 0,
    bytes: 0,
    truncated: 0,
    undecodable: 0,
    echoed: 0,
    echoFailed: 0,
    kernelDrops: { dropped: null, unknown: "not read" },
    drainCut: false,
  };
  // Read once, while the socket is still open: a closed socket is gone from the kernel's tables.
  let drops: Promise<void> | undefined;
  const readDrops = () =>
    drops ??= countKernelDrops(socket).then((found) => void (summary.kernelDrops = found));
  const drain = new Drain(socket, {
    onCut: () => summary.drainCut = true,
    beforeClose: () => options.onSummary ? readDrops() : Promise.resolve(),
  });
  const replies = options.echo ? new EchoReplies(socket, summary, options.onNotice) : undefined;
  const stop = () => drain.start();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    options.onListen?.(socket.addr);
    if (signal?.aborted) stop();
    const buffer = new Uint8Array(receiveBufferSize(socket.addr.transport as "udp"));
    while (summary.datagrams < count) {
      let data: Uint8Array, peer: Deno.Addr;
      try {
        [data, peer] = await socket.conn.receive(buffer);
      } catch (error) {
        if (isUndecodableAddress(error)) {
          summary.undecodable++;
          continue;
        }
        if (drain.closed && isPeerGone(error)) break;
        throw error;
      }
      if (drain.isMarker(data)) break;
      drain.arrived();
      summary.datagrams++;
      summary.bytes += data.length;
      const truncated = data.length === buffer.length;
      if (truncated) summary.truncated++;
      replies?.send(data, peer);
      yield { data, peer, truncated };
    }
    if (options.onSummary) {
      await readDrops();
      options.onSummary(summary);
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    socket.close();
    await drain.finish();
    await replies?.settled();
  }
}

async function countKernelDrops(socket: BoundDatagram): Promise<KernelDrops> {
  // A Unix datagram socket never drops: a sender waits (or gets EAGAIN) while its queue is full.
  if (socket.addr.transport !== "udp") return { dropped: 0, source: "unix" };
  try {
    return await readKernelDrops(socket.addr as Deno.NetAddr);
  } catch (error) {
    return { dropped: null, unknown: error instanceof Error ? error.message : String(error) };
  }
}

/** What a {@linkcode Drain} calls. */
interface DrainHooks {
  /** The drain ended at its time bound. */
  onCut: () => void;
  /** The drain is about to close the socket. */
  beforeClose: () => Promise<void>;
}

/**
 * The end of a receiver's life: after a stop, what the kernel had queued is still read. The
 * socket sends itself a random marker, which the kernel queues behind everything already there;
 * the drain ends when the marker is read back. Should the marker not be sent (no permission to
 * reach the socket's own address), a quiet spell of {@linkcode DRAIN_QUIET_MS} ends the drain
 * instead; either way it ends after {@linkcode DRAIN_MAX_MS} (a marker lost to a full queue,
 * or a flood) by closing the socket.
 */
class Drain {
  started = false;
  closed = false;
  #socket: BoundDatagram;
  #hooks: DrainHooks;
  #marker: Uint8Array | undefined;
  #deadline?: ReturnType<typeof setTimeout>;
  #quiet?: ReturnType<typeof setTimeout>;
  #sending: Promise<void> | undefined;
  #finished = false;

  constructor(socket: BoundDatagram, hooks: DrainHooks) {
    this.#socket = socket;
    this.#hooks = hooks;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.#deadline = setTimeout(() => {
      this.#hooks.onCut();
      this.#close();
    }, DRAIN_MAX_MS);
    const self = netHost(this.#socket.addr);
    if (self === undefined || !isGranted({ name: "net", host: self })) return this.arrived();
    const marker = crypto.getRandomValues(new Uint8Array(16));
    this.#marker = marker;
    this.#sending = this.#sendMarker(marker).catch(() => {
      this.#marker = undefined;
      this.arrived();
    });
  }

  async #sendMarker(marker: Uint8Array): Promise<void> {
    const addr = this.#socket.addr;
    if (!("path" in addr)) {
      await this.#socket.conn.send(marker, addr);
      return;
    }
    // Deno will not send on a Unix socket that has a receive pending (Busy): send from another.
    // Should our own queue be full, that send waits without ever being woken: give it up soon.
    const sender = openUnnamedUnix();
    const giveUp = setTimeout(() => closeQuietly(sender), MARKER_WAIT_MS);
    try {
      await sender.send(marker, addr);
    } finally {
      clearTimeout(giveUp);
      closeQuietly(sender);
    }
  }

  /** Whether `data` is this drain's marker: the end of what was queued before the stop. */
  isMarker(data: Uint8Array): boolean {
    return this.#marker !== undefined && equals(data, this.#marker);
  }

  /** A datagram arrived: without a marker, the quiet spell starts again. */
  arrived(): void {
    if (!this.started || this.#marker !== undefined || this.closed || this.#finished) return;
    clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => this.#close(), DRAIN_QUIET_MS);
  }

  /** Ends the drain's timers and waits for its marker's send (the socket is closed by now). */
  async finish(): Promise<void> {
    this.#finished = true;
    this.#clear();
    await this.#sending;
  }

  #clear(): void {
    clearTimeout(this.#deadline);
    clearTimeout(this.#quiet);
  }

  #close(): void {
    this.#clear();
    this.#hooks.beforeClose().finally(() => {
      this.closed = true;
      this.#socket.close();
    });
  }
}
