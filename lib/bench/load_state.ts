/**
 * The shared state of one load run: the connections, the phase, the measured interval, the
 * totals and the error counts, which the per-connection loops (`load_loops.ts`) read and add to.
 * @module
 */
import process from "node:process";
import { describeError } from "../errors.ts";
import { closeQuietly } from "../io.ts";
import { LatencyHistogram } from "./histogram.ts";
import { EchoPattern } from "./pattern.ts";
import type { BenchErrorKind, BenchErrors, BenchPhase } from "./result.ts";
import { TurnPacer } from "../turn_pacer.ts";

/** One connection under load. Its buffers are allocated once and reused for every message. */
export interface LoadConnection {
  /** The connection. */
  conn: Deno.Conn;
  /** Where this connection's stream starts in the pattern, so connections differ. */
  seed: number;
  /** Where echoes are read into. */
  readBuffer: Uint8Array;
  /** Bytes written. */
  sent: number;
  /** Bytes read back and verified. */
  received: number;
  /** Round trips (pingpong) or echoed bytes (bulk) in the measured interval. */
  progress: number;
  /**
   * When the current round trip started (bulk: when the echo last made progress while some is
   * outstanding); 0 when nothing is due. The watchdog fails it after the timeout.
   */
  waitingSince: number;
  /** Counted as an error and closed (see {@linkcode LoadState.fail}). */
  failed: boolean;
  /** Finished cleanly (see {@linkcode LoadState.finish}). */
  done: boolean;
}

/**
 * Shared state of one run; the per-connection loops read its flags and add to its totals.
 *
 * @example Counting an error
 * ```ts
 * import { LoadState } from "./load_state.ts";
 * const state = new LoadState({ size: 64, readLength: 128, turnBudgetMs: 2 });
 * state.failWith(null, new Deno.errors.ConnectionRefused("127.0.0.1:1: Connection refused"));
 * if (state.errors.refused !== 1 || state.errors.total !== 1) throw new Error("not counted");
 * ```
 */
export class LoadState {
  /** Round-trip latencies in the measured interval. */
  readonly histogram: LatencyHistogram = new LatencyHistogram();
  /** Error counts. */
  readonly errors: BenchErrors = {
    total: 0,
    mismatch: 0,
    reset: 0,
    refused: 0,
    eof: 0,
    timeout: 0,
    other: 0,
  };
  /** The first error's description. */
  firstError: string | null = null;
  /** What the run is doing. */
  phase: BenchPhase = "connecting";
  /** Called when the phase changes, with the connections open then. */
  onPhase?: (phase: BenchPhase, open: number) => void;
  /** Set when the measured interval ends: loops finish what is in flight and stop. */
  stopping = false;
  /** `performance.now()` when the measured interval starts and ends. */
  measureStart: number = Infinity;
  /** See {@linkcode LoadState.measureStart}. */
  measureEnd: number = Infinity;
  /** Messages counted in the interval. */
  messages = 0;
  /** Echoed bytes counted in the interval. */
  bytes = 0;
  /** Connections open now: added, and neither failed nor finished. Their loops are the busy
   * ones the pacer weighs. */
  open = 0;
  /** Every connection that was opened. */
  readonly connections: LoadConnection[] = [];
  /** What is sent and how echoes are checked. */
  readonly pattern: EchoPattern;
  /** Pauses every loop together now and then, so that Deno's op driver serves every
   * connection, not the same ~128 again and again (lib/turn_pacer.ts). */
  readonly pacer: TurnPacer;
  /** CPU this process used in the measured interval, in % of one CPU. */
  clientCpuPercent: number | null = null;
  /** CPU time (µs) and clock (ms) when the measured interval started. */
  #cpuStart: [number, number] | null = null;

  /**
   * Starts a run's state: `size` bytes per message, reads of at most `readLength` bytes checked
   * at once, loops that pause together after `turnBudgetMs` (see `TurnPacer`).
   */
  constructor(options: { size: number; readLength: number; turnBudgetMs: number }) {
    this.pattern = new EchoPattern(options.size, options.readLength);
    this.pacer = new TurnPacer(options.turnBudgetMs);
  }

  /** A pause to await before the next message when the loops are due for one, else `null`
   * (the common case: go on at once). */
  turn(): Promise<void> | null {
    return this.pacer.due(this.open) ? this.pacer.pause() : null;
  }

  /** Bytes per message. */
  get size(): number {
    return this.pattern.size;
  }

  /** Adds a freshly opened connection number `index`. */
  add(conn: Deno.Conn, index: number): void {
    this.connections.push({
      conn,
      seed: this.pattern.seedFor(index),
      readBuffer: new Uint8Array(this.pattern.bytes.length - this.pattern.period),
      sent: 0,
      received: 0,
      progress: 0,
      waitingSince: 0,
      failed: false,
      done: false,
    });
    this.open++;
  }

  /** Enters `phase`; the measured interval's CPU use is taken between `measuring` and `draining`. */
  setPhase(phase: BenchPhase): void {
    if (phase === this.phase) return;
    if (phase === "measuring" || phase === "holding") {
      this.#cpuStart = [cpuMicroseconds(), performance.now()];
    } else if (phase === "draining" && this.#cpuStart !== null) {
      const [cpu, clock] = this.#cpuStart;
      const elapsedMs = performance.now() - clock;
      if (elapsedMs > 0) this.clientCpuPercent = (cpuMicroseconds() - cpu) / elapsedMs / 10;
    }
    this.phase = phase;
    this.onPhase?.(phase, this.open);
  }

  /** The next `size` bytes that `c` sends when its stream is at a message boundary. */
  messageView(c: LoadConnection): Uint8Array {
    return this.pattern.message(c.seed, c.sent);
  }

  /** Whether `buffer[from, from + length)` is what `c` sent at stream offset `c.received`. */
  verify(c: LoadConnection, buffer: Uint8Array, from: number, length: number): boolean {
    return this.pattern.matches(c.seed, c.received, buffer, from, length);
  }

  /** Marks `c` finished cleanly, unless it failed or finished already; it is no longer open. */
  finish(c: LoadConnection): void {
    if (c.failed || c.done) return;
    c.done = true;
    this.open--;
  }

  /** Counts an error of `kind` (once per connection) and closes `c`. */
  fail(c: LoadConnection | null, kind: BenchErrorKind, message: string): void {
    if (c) {
      if (c.failed) return;
      c.failed = true;
      if (!c.done) this.open--;
      closeQuietly(c.conn);
    }
    this.errors[kind]++;
    this.errors.total++;
    this.firstError ??= message;
  }

  /** Counts a thrown error by its class. */
  failWith(c: LoadConnection | null, error: unknown): void {
    if (c?.failed) return; // our own close (a stall, or a mismatch) ended the pending read
    const message = describeError(error);
    if (error instanceof Deno.errors.ConnectionRefused) this.fail(c, "refused", message);
    else if (
      error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.ConnectionAborted
    ) {
      this.fail(c, "reset", message);
    } else if (error instanceof Deno.errors.UnexpectedEof) this.fail(c, "eof", message);
    else this.fail(c, "other", message);
  }

  /** Counts echoed bytes that are not what `c` sent. */
  mismatch(c: LoadConnection, buffer: Uint8Array, from: number, length: number): void {
    const message = this.pattern.describeMismatch(c.seed, c.received, buffer, from, length);
    this.fail(c, "mismatch", message);
  }
}

function cpuMicroseconds(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}
