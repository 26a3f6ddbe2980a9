/**
 * The readiness map and the one loop that drives it: PyMOTW's `select()` echo server in Deno's
 * completion-based idiom. Each event from the {@linkcode EventSource} updates the map, and the
 * loop starts the next read or write for that connection. What to do with received bytes is a
 * separate {@linkcode Decision}: echo them back, or broadcast them, with the same loop.
 * @module
 */
import { EventSource } from "./events.ts";
import { ConnState } from "./state.ts";

/**
 * What to do with bytes a connection sent, e.g. `(mux, state, bytes) => mux.send(state, bytes)`.
 * `bytes` is a view of the connection's read buffer: valid only during the call. The high-water
 * mark pauses reading a connection whose own queue is full; a decision that sends to other
 * connections (a chat) should watch their `queued` and drop or close the slow ones.
 */
export type Decision = (mux: Multiplexer, state: ConnState, bytes: Uint8Array) => void;

/** Why a connection was closed. */
export type CloseReason = "eof" | "idle" | "error" | "stop";

/** What the server reports to `onEvent`, for logging. Byte views are valid only during the call. */
export type ServerEvent =
  | { type: "connection"; peer: Deno.Addr }
  | { type: "refused"; peer: Deno.Addr }
  | { type: "received"; peer: Deno.Addr; bytes: Uint8Array }
  | { type: "sending"; peer: Deno.Addr; bytes: Uint8Array }
  | { type: "closing"; peer: Deno.Addr; reason: CloseReason; error?: unknown };

/** Live counters of a running server. */
export interface MuxStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted and served since the start. */
  total: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Connections closed for sending nothing for `idleTimeout`. */
  timedOut: number;
  /** Connections ended by an error (reset, broken pipe, ...). */
  failed: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes written. */
  bytesOut: number;
  /** Bytes received and not yet written, over all connections. */
  queued: number;
}

/** Limits and hooks of a {@linkcode Multiplexer}. */
export interface MultiplexerOptions {
  /** Connections served at once; more are closed as soon as they are accepted. @default {10000} */
  maxConnections?: number;
  /** Close a connection that moved no byte for this many milliseconds. @default {Infinity} */
  idleTimeout?: number;
  /** Stop reading a connection while this many bytes wait to be written to it. @default {65536} */
  highWaterMark?: number;
  /** After a stop, how long queued bytes may take to go out before closing. @default {5000} */
  graceTimeout?: number;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
  /** Called for every {@linkcode ServerEvent}; nothing is built for it when unset. */
  onEvent?: (event: ServerEvent) => void;
  /** Called when accepting fails (e.g. out of file descriptors); the server retries after a
   * pause, or stops and rejects `finished` when the listener is broken for good. */
  onError?: (error: unknown) => void;
}

// The idle sweep runs IDLE_TICKS times per idleTimeout, so a connection is closed after idling
// between idleTimeout and (1 + 1/IDLE_TICKS) × idleTimeout, with one timer for all of them.
const IDLE_TICKS = 4;

/**
 * Serves connections from one listener with one loop: the readiness map
 * (`connections`), the event source, and a {@linkcode Decision} about received bytes.
 *
 * @example An upper-casing echo server
 * ```ts
 * import { Multiplexer } from "./multiplexer.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const mux = new Multiplexer(listener, (mux, state, bytes) => {
 *   mux.send(state, new TextEncoder().encode(new TextDecoder().decode(bytes).toUpperCase()));
 * });
 * const finished = mux.run();
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await conn.write(new TextEncoder().encode("hi"));
 * await conn.closeWrite();
 * const reply = await new Response(conn.readable).text();
 * mux.close();
 * await finished;
 * if (reply !== "HI") throw new Error(reply);
 * ```
 */
export class Multiplexer {
  /** The readiness map: every open connection and what it still has to do. */
  readonly connections: Map<Deno.Conn, ConnState> = new Map();
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
  };
  #listener: Deno.Listener;
  #decide: Decision;
  #events = new EventSource();
  #maxConnections: number;
  #idleTimeout: number;
  #highWaterMark: number;
  #graceTimeout: number;
  #signal: AbortSignal | undefined;
  #onEvent: ((event: ServerEvent) => void) | undefined;
  #onError: ((error: unknown) => void) | undefined;
  #stopRequested = false;
  #stopping = false;
  #failure: unknown;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #grace: ReturnType<typeof setTimeout> | undefined;

  constructor(listener: Deno.Listener, decide: Decision, options: MultiplexerOptions = {}) {
    this.#listener = listener;
    this.#decide = decide;
    this.#maxConnections = positive("maxConnections", options.maxConnections ?? 10_000);
    this.#idleTimeout = positive("idleTimeout", options.idleTimeout ?? Infinity);
    this.#highWaterMark = positive("highWaterMark", options.highWaterMark ?? 64 * 1024);
    this.#graceTimeout = positive("graceTimeout", options.graceTimeout ?? 5000, 0);
    this.#signal = options.signal;
    this.#onEvent = options.onEvent;
    this.#onError = options.onError;
  }

  /** Runs the loop until a stop has drained and closed every connection. Call once. */
  async run(): Promise<void> {
    const events = this.#events;
    this.#signal?.addEventListener("abort", this.close, { once: true });
    if (this.#signal?.aborted) this.close();
    if (Number.isFinite(this.#idleTimeout)) {
      const every = Math.max(1, this.#idleTimeout / IDLE_TICKS);
      this.#ticker = setInterval(() => events.push({ type: "tick" }), every);
    }
    events.accept(this.#listener);
    try {
      for await (const event of events) {
        const state = "state" in event ? event.state : undefined;
        // A late completion for a connection already closed (its read was interrupted) only
        // counts towards the end of a stop.
        if (state === undefined || !state.closed) {
          switch (event.type) {
            case "accepted":
              this.#add(event.conn);
              break;
            case "data":
              this.#received(event.state, event.n);
              break;
            case "eof":
              event.state.reading = false;
              event.state.ended = true;
              break;
            case "drained":
              this.#drained(event.state, event.n);
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
              for (const open of this.connections.values()) this.#close(open, "stop");
              break;
            case "acceptFailed":
              this.#acceptFailed(event.error, event.retrying);
              break;
            case "listenerClosed":
              break; // it only wakes the loop to see whether a stop is complete
          }
          // Decide what this connection does next: read, wait for its write, or close.
          if (state !== undefined && !state.closed) this.#next(state);
        }
        if (this.#stopping && this.connections.size === 0 && events.pending === 0) break;
      }
    } finally {
      this.#cleanUp();
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Queues `bytes` to be written to `state`'s connection. A view of that connection's own read
   * buffer is written as it is when nothing else waits (the usual echo); anything that has to
   * wait is copied, as the buffer it came from will be read into again.
   */
  send(state: ConnState, bytes: Uint8Array): void {
    if (state.closed || bytes.length === 0) return;
    state.queued += bytes.length;
    this.stats.queued += bytes.length;
    this.#emit("sending", state, bytes);
    if (state.writing === null) {
      this.#events.write(state, state.isReadBuffer(bytes) ? bytes : bytes.slice());
    } else {
      state.queue.push(bytes.slice());
    }
  }

  /** Stops accepting, lets queued bytes go out within the grace period, closes everything.
   * Safe to call any number of times. */
  close = (): void => {
    if (this.#stopRequested) return;
    this.#stopRequested = true;
    this.#events.push({ type: "stop" });
  };

  #received(state: ConnState, n: number): void {
    state.reading = false;
    state.idleTicks = 0;
    this.stats.bytesIn += n;
    const bytes = state.buffer.subarray(0, n);
    state.fit(n);
    this.#emit("received", state, bytes);
    this.#decide(this, state, bytes);
  }

  #drained(state: ConnState, n: number): void {
    state.writing = null;
    state.idleTicks = 0;
    state.queued -= n;
    this.stats.queued -= n;
    this.stats.bytesOut += n;
    const next = state.queue.shift();
    if (next !== undefined) this.#events.write(state, next);
  }

  #next(state: ConnState): void {
    if (state.writing === null && (state.ended || this.#stopping)) {
      return this.#close(state, state.ended ? "eof" : "stop");
    }
    if (state.reading || state.ended || this.#stopping) return;
    // Bounded memory: a connection whose queue is over the mark is not read until it drains,
    // and its read buffer is not read into while it is being sent from.
    if (state.queued >= this.#highWaterMark) return;
    if (state.writing !== null && state.isReadBuffer(state.writing)) return;
    this.#events.read(state);
  }

  #add(conn: Deno.Conn): void {
    if (this.#stopping || this.connections.size >= this.#maxConnections) {
      if (!this.#stopping) this.stats.refused++;
      if (this.#onEvent) this.#onEvent({ type: "refused", peer: conn.remoteAddr });
      return closeQuietly(conn);
    }
    const state = new ConnState(conn);
    this.connections.set(conn, state);
    this.stats.open++;
    this.stats.total++;
    if (this.#onEvent) this.#onEvent({ type: "connection", peer: conn.remoteAddr });
    this.#next(state);
  }

  #close(state: ConnState, reason: CloseReason, error?: unknown): void {
    state.closed = true;
    this.connections.delete(state.conn);
    this.stats.open--;
    this.stats.queued -= state.queued;
    if (reason === "error") this.stats.failed++;
    if (reason === "idle") this.stats.timedOut++;
    if (this.#onEvent) {
      this.#onEvent({ type: "closing", peer: state.conn.remoteAddr, reason, error });
    }
    closeQuietly(state.conn); // a read or write in flight completes with an error, ignored
  }

  #emit(type: "received" | "sending", state: ConnState, bytes: Uint8Array): void {
    if (this.#onEvent) this.#onEvent({ type, peer: state.conn.remoteAddr, bytes });
  }

  #sweepIdle(): void {
    for (const state of this.connections.values()) {
      if (++state.idleTicks > IDLE_TICKS) this.#close(state, "idle");
    }
  }

  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopRequested = true;
    closeQuietly(this.#listener);
    clearInterval(this.#ticker);
    this.#grace = setTimeout(() => this.#events.push({ type: "grace" }), this.#graceTimeout);
    for (const state of this.connections.values()) this.#next(state);
  }

  #acceptFailed(error: unknown, retrying: boolean): void {
    this.#onError?.(error);
    if (retrying) return;
    this.#failure = error;
    this.#stop();
  }

  #cleanUp(): void {
    clearInterval(this.#ticker);
    clearTimeout(this.#grace);
    this.#signal?.removeEventListener("abort", this.close);
    this.#events.end();
    // Only after a failure in the loop itself is anything still open here.
    closeQuietly(this.#listener);
    for (const state of this.connections.values()) closeQuietly(state.conn);
  }
}

function positive(name: string, value: number, min = 1): number {
  if (!(value >= min)) {
    throw new RangeError(`Cannot use ${name} "${value}": must be at least ${min}`);
  }
  return value;
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* already closed */ }
}
