/**
 * The event source of the multiplexer: the completion-based stand-in for `select()`. It starts
 * accepts, reads, writes and shutdowns, and turns each completion into one event in a single
 * queue that one `for await` loop consumes. It decides nothing and changes no field of a
 * connection's state: the loop does both.
 * @module
 */
import { type AcceptErrorReport, acceptLoop } from "../net/accept.ts";
import { STARVATION_MIN_PENDING } from "../turn_pacer.ts";
import { EventQueue } from "./event_queue.ts";
import type { ConnState } from "./state.ts";

/** What the loop learns from the event source. */
export type MuxEvent =
  /** A new connection came in. */
  | { type: "accepted"; conn: Deno.Conn }
  /** A read completed: `n` bytes sit at the start of the connection's read buffer. */
  | { type: "data"; state: ConnState; n: number }
  /** The peer ended its sending side. */
  | { type: "eof"; state: ConnState }
  /** The chunk in flight (`n` bytes) was written out completely. */
  | { type: "drained"; state: ConnState; n: number }
  /** The write side was shut down (`closeWrite()` completed). */
  | { type: "shut"; state: ConnState }
  /** A read, write or handshake failed: reset, broken pipe, TLS, a deadline, ... */
  | { type: "failed"; state: ConnState; error: unknown }
  /** Accepting hit errors (reported at most once a second per kind). */
  | { type: "acceptError"; report: AcceptErrorReport }
  /** The accept loop ended: the listener was closed. */
  | { type: "listenerClosed" }
  /** A periodic tick, for the idle sweep. */
  | { type: "tick" }
  /** Stop: from `stop()` or the abort signal. */
  | { type: "stop" }
  /** The grace period for a stop is over. */
  | { type: "grace" };

/**
 * Starts operations and yields their completions as {@linkcode MuxEvent}s, in order.
 * `pending` counts the operations still in flight, so the loop knows when nothing can come.
 *
 * @example Reading one message through the event source
 * ```ts
 * import { EventSource } from "./events.ts";
 * import { ConnState } from "./state.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const events = new EventSource();
 * events.accept(listener);
 * await client.write(new TextEncoder().encode("hi"));
 * for await (const event of events) {
 *   if (event.type === "accepted") {
 *     const state = new ConnState(1, event.conn);
 *     events.read(state, state.readBuffer());
 *   }
 *   if (event.type === "data") {
 *     if (event.n !== 2) throw new Error("expected 2 bytes");
 *     event.state.conn.close();
 *     listener.close();
 *   }
 *   if (event.type === "listenerClosed") events.end();
 * }
 * client.close();
 * ```
 */
export class EventSource implements AsyncIterable<MuxEvent> {
  #queue: EventQueue<MuxEvent>;
  #pending = 0;

  /**
   * An event source; `onIdle` hears when the loop waited at least 1 ms for an event while
   * {@linkcode STARVATION_MIN_PENDING} or more operations were in flight (with fewer, the
   * loop's pacer never acts, so its waits are not timed).
   */
  constructor(onIdle?: () => void) {
    this.#queue = new EventQueue<MuxEvent>({
      onIdle,
      timeWaits: () => this.#pending >= STARVATION_MIN_PENDING,
    });
  }

  /** Operations (accept loop, reads, writes, shutdowns) still in flight. */
  get pending(): number {
    return this.#pending;
  }

  /** Adds an event of the caller's own, e.g. a timer's `tick`. */
  push(event: MuxEvent): void {
    this.#queue.push(event);
  }

  /** Ends the iteration after the events already queued. */
  end(): void {
    this.#queue.end();
  }

  /**
   * Accepts connections until the listener is closed or `signal` aborts (lib/net's one accept
   * loop); while `hasRoom` says no, new connections wait in the kernel's backlog.
   */
  accept(
    listener: { accept(): Promise<Deno.Conn> },
    options: { hasRoom?: () => boolean; signal?: AbortSignal } = {},
  ): void {
    this.#pending++;
    acceptLoop(listener, {
      ...options,
      onConnection: (conn) => this.#queue.push({ type: "accepted", conn }),
      onError: (report) => this.#queue.push({ type: "acceptError", report }),
    }).finally(() => {
      this.#pending--;
      this.#queue.push({ type: "listenerClosed" });
    });
  }

  /** Reads into `buffer`; completes with `data`, `eof` or `failed`. */
  read(state: ConnState, buffer: Uint8Array): void {
    this.#pending++;
    state.conn.read(buffer).then(
      (n) => {
        this.#pending--;
        this.#queue.push(n === null ? { type: "eof", state } : { type: "data", state, n });
      },
      (error) => this.#fail(state, error),
    );
  }

  /** Writes all of `chunk` (a write may be partial); completes with `drained` or `failed`. */
  write(state: ConnState, chunk: Uint8Array): void {
    this.#pending++;
    let rest = chunk;
    const onWritten = (n: number): void => {
      if (n < rest.length) {
        rest = rest.subarray(n);
        state.conn.write(rest).then(onWritten, onFailed);
      } else {
        this.#pending--;
        this.#queue.push({ type: "drained", state, n: chunk.length });
      }
    };
    const onFailed = (error: unknown) => this.#fail(state, error);
    state.conn.write(rest).then(onWritten, onFailed);
  }

  /** Shuts down the write side (FIN); completes with `shut` or `failed`. */
  shutdown(state: ConnState): void {
    this.#pending++;
    state.conn.closeWrite().then(
      () => {
        this.#pending--;
        this.#queue.push({ type: "shut", state });
      },
      (error) => this.#fail(state, error),
    );
  }

  #fail(state: ConnState, error: unknown): void {
    this.#pending--;
    this.#queue.push({ type: "failed", state, error });
  }

  /** The events, in the order they completed, for one `for await` loop. */
  [Symbol.asyncIterator](): AsyncIterator<MuxEvent> {
    return this.#queue;
  }
}
