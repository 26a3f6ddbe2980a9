/**
 * The event source of the multiplexer: the completion-based stand-in for `select()`. It starts
 * accepts, reads and writes, and turns each completion into one event in a single queue that one
 * `for await` loop consumes. It never decides anything; the loop does.
 * @module
 */
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
  /** A read or a write failed: reset, broken pipe, closed resource, TLS handshake, ... */
  | { type: "failed"; state: ConnState; error: unknown }
  /** `accept()` failed; `retrying` is false when the listener gave up. */
  | { type: "acceptFailed"; error: unknown; retrying: boolean }
  /** The accept loop ended (the listener was closed, or failed for good). */
  | { type: "listenerClosed" }
  /** A periodic tick, for the idle sweep. */
  | { type: "tick" }
  /** Stop: from `close()` or the abort signal. */
  | { type: "stop" }
  /** The grace period for a stop is over. */
  | { type: "grace" };

/** How long to wait before accepting again after running out of file descriptors. */
const ACCEPT_RETRY_MS = 100;

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
 *   if (event.type === "accepted") events.read(new ConnState(event.conn));
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
  #queue = new EventQueue<MuxEvent>();
  #pending = 0;

  /** Operations (accept loop, reads, writes) still in flight. */
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

  /** Accepts connections until the listener is closed; never waits on a connection's work. */
  accept(listener: Deno.Listener): void {
    this.#pending++;
    this.#acceptLoop(listener).finally(() => {
      this.#pending--;
      this.#queue.push({ type: "listenerClosed" });
    });
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource) return; // closed by the loop: a stop
        const retrying = isTransient(error);
        this.#queue.push({ type: "acceptFailed", error, retrying });
        if (!retrying) return;
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      this.#queue.push({ type: "accepted", conn });
    }
  }

  /** Reads into the connection's read buffer; completes with `data`, `eof` or `failed`. */
  read(state: ConnState): void {
    state.reading = true;
    this.#pending++;
    state.conn.read(state.readBuffer()).then(
      (n) => {
        this.#pending--;
        this.#queue.push(n === null ? { type: "eof", state } : { type: "data", state, n });
      },
      (error) => this.#fail(state, error),
    );
  }

  /** Writes all of `chunk` (a write may be partial); completes with `drained` or `failed`. */
  write(state: ConnState, chunk: Uint8Array): void {
    state.writing = chunk;
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

  #fail(state: ConnState, error: unknown): void {
    this.#pending--;
    this.#queue.push({ type: "failed", state, error });
  }

  [Symbol.asyncIterator](): AsyncIterator<MuxEvent> {
    return this.#queue;
  }
}

// Out of file descriptors (EMFILE, ENFILE) or a connection that died in the backlog: accepting
// again later works. Anything else means the listener itself is broken.
function isTransient(error: unknown): boolean {
  if (error instanceof Deno.errors.ConnectionAborted) return true;
  if (error instanceof Deno.errors.ConnectionReset) return true;
  return error instanceof Error && /os error (23|24)\)/.test(error.message);
}
