/**
 * Fan-out with a bound, for the broker and chat servers: bytes go to every other connection,
 * and a connection that already has `highWaterMark` bytes waiting behind the write in flight is
 * disconnected instead of being sent more. That is the slow-reader policy: one client that does
 * not read can neither stall the others (nobody waits for it) nor grow the server (what is
 * queued for it never exceeds the mark plus two messages: the one in flight and the last one).
 * Dropping bytes from the middle of its stream instead would hand it a corrupt stream without
 * saying so; disconnecting is what it can notice. The write in flight does not count: a reader
 * that keeps up may have a whole large message in flight when the next one comes.
 *
 * A sender that keeps the server busy is read at most once per turn of the event loop: after a
 * broadcast of a read of 1 KiB or more (a full first read buffer: more is probably waiting) it
 * is paused until a timer fires. One read makes a write for every receiver, and Deno completes reads of
 * ready sockets without polling the others; a sender that never pauses starves the runtime of
 * the turns in which the receivers' writes complete (measured: a fresh client's first write
 * never completed while one client sent 32 KiB a millisecond, and it was dropped as slow). The
 * pause is what makes "slow" mean the reader, not the server.
 *
 * A broadcast never lends the sender's read buffer (what `send` does with a view of it): the
 * sender would not be read again until the slowest receiver had taken it — the very stall this
 * module is for. Its bytes are copied once, and the multiplexer copies them into each queue.
 * @module
 */
import type { MuxControl } from "./types.ts";
import { type ConnView, MIN_READ_SIZE } from "./state.ts";

/** The default mark: one bulk read (256 KiB) may wait behind the write in flight. */
export const BROADCAST_HIGH_WATER_MARK = 256 * 1024;

// A read that fills the smallest read buffer may have left more waiting. A line typed now and
// then is sent on at once, without a timer.
const PACE_BYTES = MIN_READ_SIZE;

/** Options for {@linkcode Broadcaster}. */
export interface BroadcasterOptions {
  /** Disconnect a receiver that already has this many bytes waiting behind its write.
   * @default {BROADCAST_HIGH_WATER_MARK} */
  highWaterMark?: number;
  /** Hears about each receiver dropped, just before it is closed, with the bytes queued for
   * it (in flight and waiting). */
  onDrop?: (mux: MuxControl, conn: ConnView, queued: number) => void;
}

/**
 * Sends to many connections of one multiplexer and drops the ones that do not keep up.
 *
 * @example A broker decision: every byte to every other client
 * ```ts
 * import { Broadcaster } from "./broadcast.ts";
 * import { serveMux } from "./serve.ts";
 * const broadcaster = new Broadcaster({ highWaterMark: 64 * 1024 });
 * const server = await serveMux((mux, from, bytes) => {
 *   broadcaster.send(mux, bytes, { except: from });
 * }, { port: 0 });
 * const port = (server.addr as Deno.NetAddr).port;
 * const alice = await Deno.connect({ hostname: "127.0.0.1", port });
 * const bob = await Deno.connect({ hostname: "127.0.0.1", port });
 * while (server.stats.open < 2) await new Promise((resolve) => setTimeout(resolve, 1));
 * await alice.write(new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(2);
 * for (let got = 0; got < 2;) got += (await bob.read(buffer.subarray(got))) ?? 2;
 * alice.close();
 * bob.close();
 * server.close();
 * await server.finished;
 * if (new TextDecoder().decode(buffer) !== "hi") throw new Error("not relayed");
 * ```
 */
export class Broadcaster {
  readonly #highWaterMark: number;
  readonly #onDrop: BroadcasterOptions["onDrop"];
  readonly #dropped = new WeakMap<ConnView, number>();
  #drops = 0;
  readonly #paused = new Set<ConnView>();
  #resume: ReturnType<typeof setTimeout> | undefined;

  /** Checks the mark (a `RangeError` below 1). */
  constructor(options: BroadcasterOptions = {}) {
    this.#highWaterMark = options.highWaterMark ?? BROADCAST_HIGH_WATER_MARK;
    if (!(this.#highWaterMark >= 1)) {
      throw new RangeError(`Cannot use highWaterMark "${this.#highWaterMark}": must be at least 1`);
    }
    this.#onDrop = options.onDrop;
  }

  /** Receivers dropped so far. */
  get drops(): number {
    return this.#drops;
  }

  /** How many bytes were waiting for `conn` when it was dropped, or `undefined` if it was not. */
  droppedWith(conn: ConnView): number | undefined {
    return this.#dropped.get(conn);
  }

  /**
   * Sends `bytes` to every open connection but `except`, and drops the ones over the mark —
   * after the others have the message, so every receiver sees the same order. `except` is the
   * sender: after 1 KiB or more it is not read again until the next turn of the event loop.
   * Returns how many connections were sent the bytes.
   */
  send(mux: MuxControl, bytes: Uint8Array, options: { except?: ConnView } = {}): number {
    const slow: ConnView[] = [];
    let sent = 0;
    let own: Uint8Array | undefined;
    for (const conn of mux.connections()) {
      if (conn === options.except) continue;
      if (conn.waiting >= this.#highWaterMark) slow.push(conn);
      else {
        mux.send(conn, own ??= bytes.slice());
        sent++;
      }
    }
    for (const conn of slow) this.drop(mux, conn);
    if (options.except && bytes.length >= PACE_BYTES) this.#pace(mux, options.except);
    return sent;
  }

  /** Cancels the timer that resumes paused senders (for a multiplexer that has stopped). */
  cancel(): void {
    clearTimeout(this.#resume);
    this.#resume = undefined;
    this.#paused.clear();
  }

  /** Sends `bytes` to `conn` alone, or drops it when it is over the mark; returns whether sent. */
  sendTo(mux: MuxControl, conn: ConnView, bytes: Uint8Array): boolean {
    if (conn.closed) return false;
    if (conn.waiting >= this.#highWaterMark) {
      this.drop(mux, conn);
      return false;
    }
    mux.send(conn, bytes.slice());
    return true;
  }

  /** Disconnects `conn` now as too slow: what waits for it is discarded. */
  drop(mux: MuxControl, conn: ConnView): void {
    if (conn.closed) return;
    this.#drops++;
    this.#dropped.set(conn, conn.queued);
    this.#onDrop?.(mux, conn, conn.queued);
    mux.close(conn);
  }

  #pace(mux: MuxControl, sender: ConnView): void {
    if (sender.closed || mux.stopping) return;
    mux.pause(sender);
    this.#paused.add(sender);
    this.#resume ??= setTimeout(() => {
      this.#resume = undefined;
      const paused = [...this.#paused];
      this.#paused.clear();
      for (const conn of paused) if (!conn.closed) mux.resume(conn);
    }, 0);
  }
}
