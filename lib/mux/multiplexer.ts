/**
 * The readiness map and the one loop that drives it: PyMOTW's `select()` echo server in Deno's
 * completion-based idiom, as an engine. Each event from the {@linkcode EventSource} updates the
 * map, and the loop starts the next read, write or shutdown for that connection. What happens to
 * received bytes is a {@linkcode Decision}: echo them back, broadcast them, relay them to another
 * connection — the same loop for each.
 * @module
 */
import {
  closeConn,
  closeLingering,
  handshakeWithDeadline,
  lingeringTlsConnections,
} from "../net/handshake.ts";
import type { AcceptErrorReport } from "../net/accept.ts";
import { closeQuietly } from "../io.ts";
import { EventSource } from "./events.ts";
import { TURN_BUDGET_MS, TurnPacer } from "../turn_pacer.ts";
import { largeBuffers } from "./buffer_pool.ts";
import { idleCollector } from "./idle_gc.ts";
import { ConnState, type ConnView } from "./state.ts";
import type {
  Acceptor,
  CloseReason,
  DataDecision,
  Decision,
  MultiplexerOptions,
  MuxControl,
  MuxStats,
  ServerEvent,
} from "./types.ts";

// What a closed connection leaves to the garbage collector, about (measured: ~25 MiB of heap
// per 5000), and private read buffers beyond the pool: both count towards a collection when
// the loop goes quiet (idle_gc.ts).
const CLOSED_CONNECTION_KIB = 8;
largeBuffers.onOverflow = (kib) => idleCollector.churn(kib);

// The idle sweep runs IDLE_TICKS times per idleTimeout, so a connection is closed after idling
// between idleTimeout and (1 + 1/IDLE_TICKS) × idleTimeout, with one timer for all of them.
const IDLE_TICKS = 4;

/**
 * Serves connections from one listener with one loop: the readiness map, the event source, and
 * a {@linkcode Decision} about received bytes.
 *
 * @example An upper-casing echo server
 * ```ts
 * import { Multiplexer } from "./multiplexer.ts";
 * const mux = new Multiplexer((mux, conn, bytes) => {
 *   mux.send(conn, new TextEncoder().encode(new TextDecoder().decode(bytes).toUpperCase()));
 * });
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const finished = mux.run(listener);
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await conn.write(new TextEncoder().encode("hi"));
 * await conn.closeWrite();
 * const reply = await new Response(conn.readable).text();
 * mux.stop();
 * await finished;
 * if (reply !== "HI") throw new Error(reply);
 * ```
 */
export class Multiplexer implements MuxControl {
  /** Live counters. */
  readonly stats: MuxStats = {
    open: 0,
    total: 0,
    refused: 0,
    timedOut: 0,
    failed: 0,
    bytesIn: 0,
    bytesOut: 0,
    queued: 0,
    dropped: 0,
  };
  #states = new Set<ConnState>();
  #listener: Acceptor | undefined;
  #decision: Decision;
  #pacer: TurnPacer;
  #events: EventSource;
  #maxConnections: number;
  #idleTimeout: number;
  #highWaterMark: number;
  #graceTimeout: number;
  #handshakeTimeout: number;
  #signal: AbortSignal | undefined;
  #onEvent: ((event: ServerEvent) => void) | undefined;
  #onAcceptError: ((report: AcceptErrorReport) => void) | undefined;
  #ids = 0;
  #stopRequested = false;
  #stopping = false;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #grace: ReturnType<typeof setTimeout> | undefined;
  /** Ends the accept loop at a stop, also while it waits for room. */
  #acceptStop = new AbortController();
  /** The connection whose bytes a decision is handling: `send` may write views of its buffer. */
  #lender: ConnState | null = null;

  /** Checks the options (a `RangeError` for a bad limit) before anything listens. */
  constructor(decision: Decision | DataDecision, options: MultiplexerOptions = {}) {
    this.#decision = typeof decision === "function" ? { onData: decision } : decision;
    this.#maxConnections = positive("maxConnections", options.maxConnections ?? 10_000);
    this.#idleTimeout = positive("idleTimeout", options.idleTimeout ?? Infinity);
    this.#highWaterMark = positive("highWaterMark", options.highWaterMark ?? 64 * 1024);
    this.#graceTimeout = positive("graceTimeout", options.graceTimeout ?? 5000, 0);
    this.#handshakeTimeout = positive("handshakeTimeout", options.handshakeTimeout ?? 10_000);
    this.#signal = options.signal;
    this.#onEvent = options.onEvent;
    this.#onAcceptError = options.onAcceptError;
    const pacer = new TurnPacer(options.turnBudgetMs ?? TURN_BUDGET_MS);
    this.#pacer = pacer;
    this.#events = new EventSource(() => pacer.restart());
  }

  /** Pauses the loop took so that every connection gets its turn (see lib/turn_pacer.ts). */
  get pauses(): number {
    return this.#pacer.pauses;
  }

  /** Whether a stop has begun: a decision starts nothing new (no greeting, no upstream). */
  get stopping(): boolean {
    return this.#stopRequested;
  }

  /** The open connections, as decisions see them. */
  connections(): IterableIterator<ConnView> {
    return this.#states.values();
  }

  /** Serves `listener` until a stop has drained and closed every connection; closes the
   * listener when it stops. Call once. */
  async run(listener: Acceptor): Promise<void> {
    if (this.#listener !== undefined) throw new TypeError("Cannot run a Multiplexer twice");
    this.#listener = listener;
    const events = this.#events;
    this.#signal?.addEventListener("abort", this.stop, { once: true });
    if (this.#signal?.aborted) this.stop();
    if (Number.isFinite(this.#idleTimeout)) {
      const every = Math.max(1, this.#idleTimeout / IDLE_TICKS);
      this.#ticker = setInterval(() => events.push({ type: "tick" }), every);
    }
    // A TLS connection accepted and closed keeps its socket until the peer acts (Deno 2.9, see
    // lib/net/handshake.ts), so for TLS the limit is kept before the accept: beyond it, clients
    // wait in the kernel's backlog. A TCP or Unix connection over the limit is closed at once.
    const tls = "tls" in listener && listener.tls === true;
    events.accept(listener, {
      signal: this.#acceptStop.signal,
      hasRoom: tls ? () => this.#hasRoom() : undefined,
    });
    idleCollector.retain();
    try {
      for await (const event of events) {
        idleCollector.event();
        const state = "state" in event ? event.state : undefined;
        if (state?.closed) {
          // A late completion for a connection already closed: it may release a buffer.
          if (event.type === "drained" || event.type === "failed") this.#releaseBorrow(state);
        } else {
          switch (event.type) {
            case "accepted":
              this.#accept(event.conn);
              break;
            case "data":
              this.#received(event.state, event.n);
              break;
            case "eof":
              this.#ended(event.state);
              break;
            case "drained":
              this.#drained(event.state, event.n);
              break;
            case "shut":
              event.state.shuttingDown = false;
              event.state.writeShut = true;
              break;
            case "failed":
              this.#close(event.state, "error", event.error);
              break;
            case "tick":
              this.#sweepIdle();
              break;
            case "stop":
              this.#stop();
              break;
            case "grace":
              for (const open of this.#states) this.#close(open, "stop");
              // Those closed mid-handshake were parked with reads in flight: end them too.
              closeLingering();
              break;
            case "acceptError":
              this.#onAcceptError?.(event.report);
              break;
            case "listenerClosed":
              break; // it only wakes the loop to see whether a stop is complete
          }
          // Decide what this connection does next: read, write, shut down, or close.
          if (state !== undefined) this.#next(state);
        }
        if (this.#stopping && this.#states.size === 0 && events.pending === 0) break;
        // Fairness (lib/turn_pacer.ts): completions that arrive meanwhile wait in the queue.
        if (this.#pacer.due(events.pending)) await this.#pacer.pause();
      }
    } finally {
      this.#cleanUp();
    }
  }

  /**
   * Queues `bytes` to be written to `conn`. A view of the read buffer of the connection being
   * handled is written as it is when nothing else waits (the usual echo: no copy), and that
   * connection is not read again until the write is done; anything that has to wait is copied.
   */
  send(conn: ConnView, bytes: Uint8Array): void {
    const target = conn as ConnState;
    if (target.closed || bytes.length === 0) return;
    target.queued += bytes.length;
    this.stats.queued += bytes.length;
    if (this.#onEvent) this.#onEvent({ type: "sending", peer: target.peer, bytes });
    if (target.writing === null && !target.shuttingDown) {
      const lender = this.#lender;
      if (lender !== null && lender.isReadBuffer(bytes)) {
        target.borrowedFrom = lender;
        lender.lent++;
        this.#write(target, bytes);
      } else {
        this.#write(target, bytes.slice());
      }
    } else {
      target.queue.push(bytes.slice());
    }
  }

  /** Writes what is queued for `conn`, then closes it. */
  end(conn: ConnView): void {
    this.#after(conn as ConnState, "close");
  }

  /** Writes what is queued for `conn`, then shuts down its sending side (a half-close, passed
   * on); it closes once its peer has ended too. */
  shutdown(conn: ConnView): void {
    this.#after(conn as ConnState, "shutdown");
  }

  /** Closes `conn` now; what is queued for it is dropped. */
  close(conn: ConnView): void {
    const state = conn as ConnState;
    if (!state.closed) this.#close(state, "closed");
  }

  /** Stops reading `conn` until {@linkcode Multiplexer.resume}. */
  pause(conn: ConnView): void {
    (conn as ConnState).paused = true;
  }

  /** Reads `conn` again after {@linkcode Multiplexer.pause}. */
  resume(conn: ConnView): void {
    const state = conn as ConnState;
    state.paused = false;
    if (!state.closed) this.#next(state);
  }

  /** Makes `from`'s bytes go to `to` for back-pressure: `from` is not read while `to`'s queue is
   * over the high-water mark (a relay pipes both ways). The decision still does the sending. */
  pipe(from: ConnView, to: ConnView): void {
    const source = from as ConnState;
    const sink = to as ConnState;
    source.sink = sink;
    sink.feeds.push(source);
  }

  /** Adds a connection this process opened (a relay's upstream) to the map. */
  add(conn: Deno.Conn): ConnView {
    return this.#open(conn);
  }

  /** Stops accepting, lets queued bytes go out within the grace period, shuts down each
   * connection's sending side and discards what still arrives until the peer closes, then
   * closes everything. Safe to call any number of times. */
  stop = (): void => {
    if (this.#stopRequested) return;
    this.#stopRequested = true;
    this.#events.push({ type: "stop" });
  };

  #hasRoom(): boolean {
    if (this.#states.size + lingeringTlsConnections() >= this.#maxConnections) return false;
    return this.#decision.hasRoom?.(this) ?? true;
  }

  #accept(conn: Deno.Conn): void {
    const full = this.#states.size + lingeringTlsConnections() >= this.#maxConnections;
    if (this.#stopping || full) {
      if (!this.#stopping) this.stats.refused++;
      if (this.#onEvent) this.#onEvent({ type: "refused", peer: conn.remoteAddr });
      return closeConn(conn);
    }
    const state = this.#open(conn);
    if ("handshake" in conn) {
      handshakeWithDeadline(conn, this.#handshakeTimeout).catch((error) => {
        // Other handshake failures reach the loop through the read in flight.
        if (error instanceof Deno.errors.TimedOut) {
          this.#events.push({ type: "failed", state: state as ConnState, error });
        }
      });
    }
  }

  #open(conn: Deno.Conn): ConnState {
    const state = new ConnState(++this.#ids, conn);
    this.#states.add(state);
    this.stats.open++;
    this.stats.total++;
    if (this.#onEvent) this.#onEvent({ type: "connection", peer: state.peer });
    this.#decision.onOpen?.(this, state);
    if (!state.closed) this.#next(state);
    return state;
  }

  #received(state: ConnState, n: number): void {
    state.reading = false;
    state.idleTicks = 0;
    state.bytesIn += n;
    this.stats.bytesIn += n;
    const bytes = state.buffer.subarray(0, n);
    if (state.discarding) {
      this.stats.dropped += n;
      return state.afterRead(n);
    }
    if (this.#onEvent) {
      this.#onEvent({
        type: "received",
        peer: state.peer,
        bytes,
        offset: state.bytesIn - n,
      });
    }
    this.#lender = state;
    try {
      this.#decision.onData(this, state, bytes);
    } finally {
      this.#lender = null;
      // Only now: a large buffer goes back to the pool after a partial read, and the decision
      // may have lent it to a write (`lent`), which keeps it out of the pool until it is done.
      state.afterRead(n);
    }
  }

  #ended(state: ConnState): void {
    state.reading = false;
    state.ended = true;
    if (state.discarding) return this.#close(state, "stop");
    if (this.#decision.onEnd) this.#decision.onEnd(this, state);
    else this.end(state);
  }

  #drained(state: ConnState, n: number): void {
    state.writing = null;
    state.idleTicks = 0;
    state.queued -= n;
    state.bytesOut += n;
    this.stats.queued -= n;
    this.stats.bytesOut += n;
    this.#releaseBorrow(state);
    const next = state.queue.shift();
    if (next !== undefined) this.#write(state, next);
    // Room in this queue: the connections whose bytes come here may be read again.
    for (const source of state.feeds) if (source !== state && !source.closed) this.#next(source);
  }

  #releaseBorrow(state: ConnState): void {
    const lender = state.borrowedFrom;
    if (lender === null) return;
    state.borrowedFrom = null;
    lender.lent--;
    lender.settle();
    if (lender !== state && !lender.closed) this.#next(lender);
  }

  #write(state: ConnState, chunk: Uint8Array): void {
    state.writing = chunk;
    this.#events.write(state, chunk);
  }

  #after(state: ConnState, action: "close" | "shutdown"): void {
    if (state.closed) return;
    if (state.afterDrain !== "close") state.afterDrain = action;
    this.#next(state);
  }

  #next(state: ConnState): void {
    if (state.closed) return;
    const drained = state.idleWriter && state.queue.length === 0;
    if (drained && state.afterDrain === "close") {
      return this.#close(state, state.discarding ? "stop" : state.ended ? "eof" : "closed");
    }
    if (drained && state.afterDrain === "shutdown" && !state.writeShut) {
      state.shuttingDown = true;
      this.#events.shutdown(state);
    }
    if (state.ended && state.writeShut) {
      return this.#close(state, state.discarding ? "stop" : "eof");
    }
    if (state.reading || state.ended || state.paused || state.lent > 0) return;
    if (!state.discarding) {
      if (this.#stopping) return;
      // Bounded memory: a connection whose bytes have nowhere to go is not read until they do.
      if (state.sink.queued >= this.#highWaterMark) return;
    }
    state.reading = true;
    this.#events.read(state, state.readBuffer());
  }

  #close(state: ConnState, reason: CloseReason, error?: unknown): void {
    state.closed = true;
    this.#states.delete(state);
    this.stats.open--;
    this.stats.queued -= state.queued;
    if (reason === "error") this.stats.failed++;
    if (reason === "idle") this.stats.timedOut++;
    const dropped = reason === "stop" && state.queued > 0 ? state.queued : undefined;
    if (dropped !== undefined) this.stats.dropped += dropped;
    if (this.#onEvent) {
      this.#onEvent({ type: "closing", peer: state.peer, reason, error, dropped });
    }
    this.#decision.onClose?.(this, state, reason, error);
    state.dispose();
    idleCollector.churn(CLOSED_CONNECTION_KIB);
    // A read or write in flight completes with an error, ignored as a late completion.
    closeConn(state.conn);
  }

  #sweepIdle(): void {
    for (const state of this.#states) {
      if (++state.idleTicks > IDLE_TICKS) this.#close(state, "idle");
    }
  }

  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopRequested = true;
    if (this.#listener) closeQuietly(this.#listener);
    this.#acceptStop.abort();
    clearInterval(this.#ticker);
    // Connections parked mid-handshake hold reads in flight: end them, or the stop waits.
    closeLingering();
    this.#grace = setTimeout(() => this.#events.push({ type: "grace" }), this.#graceTimeout);
    for (const state of this.#states) {
      // What is queued still goes out; then a FIN, and what arrives after it is discarded until
      // the peer closes: closing with unread input would make the kernel answer with a reset,
      // which can destroy the echo still in flight.
      state.discarding = true;
      state.paused = false; // a paused connection's input is discarded too, or its end unseen
      state.afterDrain = state.ended ? "close" : "shutdown";
      this.#next(state);
    }
  }

  #cleanUp(): void {
    idleCollector.release();
    clearInterval(this.#ticker);
    clearTimeout(this.#grace);
    this.#signal?.removeEventListener("abort", this.stop);
    this.#events.end();
    // Only after a failure in the loop itself is anything still open here.
    if (this.#listener) closeQuietly(this.#listener);
    for (const state of this.#states) closeQuietly(state.conn);
  }
}

function positive(name: string, value: number, min = 1): number {
  if (!(value >= min)) {
    throw new RangeError(`Cannot use ${name} "${value}": must be at least ${min}`);
  }
  return value;
}
