/**
 * Log output that never stops service. A server's log lines go into a bounded queue per stream
 * that one writer drains with asynchronous writes, so a stalled reader (`| less`, paused), a
 * non-blocking pipe that answers EAGAIN, or a full disk (`>/dev/full`) costs log lines — counted,
 * and reported once the stream takes writes again — never an event loop frozen in a blocking
 * write or a server killed by its own logging.
 *
 * Data a client receives is not log: {@linkcode OutputQueue.writeData} waits for room instead
 * of dropping, which pushes back on the connection it came from.
 * @module
 */

/** What an output stream did since the program started. */
export interface OutputStats {
  /** Lines written (or queued to be). */
  lines: number;
  /** Lines dropped because the queue was full or the stream refused them. */
  dropped: number;
  /** Whether the reader went away (a broken pipe): later lines are discarded silently. */
  closed: boolean;
}

/** Options for {@linkcode OutputQueue}. */
export interface OutputQueueOptions {
  /** Bytes the queue holds before it drops lines. @default {1048576} */
  limit?: number;
  /** Where the "lines dropped" notice goes; unset, it goes into this queue. */
  onDropped?: (count: number) => void;
}

/** A stream the queue can write to: `Deno.stdout`, `Deno.stderr`, or a test double. */
export interface OutputSink {
  /** Writes some of `bytes` and resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

// One write hands the runtime at most this much, so a drop count can be reported between.
const WRITE_CHUNK = 64 * 1024;
// A non-blocking pipe that is full answers EAGAIN: try again after this pause, doubling.
const RETRY_MIN_MS = 5;
const RETRY_MAX_MS = 200;

const encoder = new TextEncoder();

/**
 * A bounded, asynchronous writer for one output stream.
 *
 * @example A stalled stream drops lines instead of blocking
 * ```ts
 * import { OutputQueue } from "./output.ts";
 * const stalled = { write: () => new Promise<number>(() => {}) }; // a reader that never reads
 * const queue = new OutputQueue(stalled, { limit: 11 }); // one line and its newline
 * for (let i = 0; i < 5; i++) queue.writeLine("0123456789");
 * if (queue.stats.dropped !== 4) throw new Error(`dropped ${queue.stats.dropped}`);
 * ```
 */
export class OutputQueue {
  /** What this queue wrote and dropped so far. */
  readonly stats: OutputStats = { lines: 0, dropped: 0, closed: false };
  #sink: OutputSink;
  #limit: number;
  #onDropped: ((count: number) => void) | undefined;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #unreported = 0;
  #pump: Promise<void> | null = null;
  #room: (() => void)[] = [];

  /** A queue in front of `sink` (e.g. `Deno.stdout`); nothing is written until a line comes. */
  constructor(sink: OutputSink, options: OutputQueueOptions = {}) {
    this.#sink = sink;
    this.#limit = options.limit ?? 1024 * 1024;
    this.#onDropped = options.onDropped;
  }

  /** Bytes waiting to be written. */
  get queued(): number {
    return this.#queued;
  }

  /** Queues `line` and a newline; drops it (and counts it) when the queue is full. */
  writeLine(line: string): void {
    if (this.stats.closed) return;
    const bytes = encoder.encode(line + "\n");
    if (this.#queued + bytes.length > this.#limit) {
      this.stats.dropped++;
      this.#unreported++;
      return;
    }
    this.stats.lines++;
    this.#enqueue(bytes);
  }

  /**
   * Queues `bytes` (received data, not log) and resolves once the queue has room again, so a
   * slow reader slows the producer down instead of losing bytes. Resolves at once when the
   * reader has gone away.
   */
  async writeData(bytes: Uint8Array): Promise<void> {
    while (!this.stats.closed && this.#queued > 0 && this.#queued + bytes.length > this.#limit) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#room.push(resolve);
      await promise;
    }
    if (!this.stats.closed) this.#enqueue(bytes.slice());
  }

  /** Resolves when everything queued is written, or after `timeoutMs`, whichever is first. */
  async flush(timeoutMs = 2000): Promise<void> {
    if (this.#pump === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    try {
      await Promise.race([this.#idle(), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #idle(): Promise<void> {
    while (this.#pump !== null) await this.#pump;
  }

  #enqueue(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#queued += bytes.length;
    this.#start();
  }

  #start(): void {
    this.#pump ??= this.#drain().finally(() => {
      this.#pump = null;
      // A line queued while the last write was finishing would otherwise wait for the next one.
      if (this.#chunks.length > 0 && !this.stats.closed) this.#start();
    });
  }

  async #drain(): Promise<void> {
    let retryMs = RETRY_MIN_MS;
    while (this.#chunks.length > 0 && !this.stats.closed) {
      const chunk = this.#take();
      let offset = 0;
      while (offset < chunk.length) {
        try {
          offset += await this.#sink.write(chunk.subarray(offset));
          retryMs = RETRY_MIN_MS;
        } catch (error) {
          if (error instanceof Deno.errors.WouldBlock) {
            // Someone made the pipe non-blocking and it is full: wait and try again.
            await new Promise((resolve) => setTimeout(resolve, retryMs));
            retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
            continue;
          }
          if (error instanceof Deno.errors.BrokenPipe) {
            this.#close();
            return;
          }
          // A full disk or another refusal: these lines are lost; the next ones may not be.
          this.stats.dropped += countLines(chunk.subarray(offset));
          this.#unreported += countLines(chunk.subarray(offset));
          break;
        }
      }
      this.#queued -= chunk.length;
      for (const wake of this.#room.splice(0)) wake();
      if (this.#unreported > 0 && this.#chunks.length === 0) this.#reportDropped();
    }
  }

  /** Takes up to one write's worth of queued chunks, joined. */
  #take(): Uint8Array {
    let length = 0, count = 0;
    while (count < this.#chunks.length && length + this.#chunks[count].length <= WRITE_CHUNK) {
      length += this.#chunks[count++].length;
    }
    if (count <= 1) return this.#chunks.shift()!;
    const joined = new Uint8Array(length);
    let at = 0;
    for (const chunk of this.#chunks.splice(0, count)) {
      joined.set(chunk, at);
      at += chunk.length;
    }
    return joined;
  }

  #reportDropped(): void {
    const count = this.#unreported;
    this.#unreported = 0;
    if (this.#onDropped) this.#onDropped(count);
    else this.writeLine(droppedNotice(count));
  }

  #close(): void {
    this.stats.closed = true;
    this.#chunks.length = 0;
    this.#queued = 0;
    for (const wake of this.#room.splice(0)) wake();
  }
}

/** The line that says how many lines were lost while a stream did not take writes. */
export function droppedNotice(count: number): string {
  return `(${count} output ${count === 1 ? "line" : "lines"} dropped: the output did not keep up)`;
}

function countLines(bytes: Uint8Array): number {
  let lines = 0;
  for (const byte of bytes) if (byte === 0x0a) lines++;
  return Math.max(lines, 1);
}

/** The queue in front of stdout: data and log lines; its drop notices go to stderr. */
export const stdout: OutputQueue = new OutputQueue(Deno.stdout, {
  onDropped: (count) => stderr.writeLine(droppedNotice(count)),
});
/** The queue in front of stderr: what a program says about itself. */
export const stderr: OutputQueue = new OutputQueue(Deno.stderr);

/** Writes what both queues still hold, within `timeoutMs` each: before a program exits.
 * stdout goes first, since its "lines dropped" notice is written to stderr. */
export async function flushOutput(timeoutMs = 2000): Promise<void> {
  await stdout.flush(timeoutMs);
  await stderr.flush(timeoutMs);
}
