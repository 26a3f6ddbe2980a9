/**
 * echo_bench.ts — a load generator for any echo server (what `tcpkali` does for TCP echo):
 *
 * - `pingpong`: each connection sends `--size` bytes, waits until all of them came back, repeats;
 *   every round trip's latency goes into a fixed-size histogram (p50/p90/p99/max).
 * - `bulk`: each connection keeps up to `--window` bytes in flight, in writes of `--size` bytes,
 *   and reads everything back.
 * - `hold`: opens `--connections` in bounded parallel batches, keeps them idle for `--duration`,
 *   then makes one round trip on each (memory per idle connection is measured on the server).
 *
 * Every echoed byte is checked against a deterministic pattern (a native range compare, no copy).
 * Mismatches, resets, refused connections, early closes and stalls are counted, and any of them
 * makes the exit code 1.
 *
 *   deno run --allow-net=127.0.0.1:10000 scripts/echo_bench.ts --mode pingpong --connections 50
 *
 * (`--unix PATH` needs `--allow-net=unix:PATH --allow-read=PATH --allow-write=PATH`; `--tls
 * --ca FILE` adds `--allow-read=FILE`.)
 * Try it: `deno task echo-server --quiet`, or `socat TCP-LISTEN:10000,bind=127.0.0.1,fork,reuseaddr
 * EXEC:cat`, in another terminal, then the line above.
 * @module
 */
import { Buffer } from "node:buffer";
import { LatencyHistogram, type LatencySummary } from "./bench/latency_histogram.ts";
import process from "node:process";
import { clientTlsFromFlags, type ClientTlsOptions } from "../lib/tls.ts";
import { closeQuietly, writeAll } from "../lib/io.ts";
import { connect } from "../lib/net/connect.ts";
import { formatAddr, formatHostPort } from "../lib/address.ts";
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { describeError, EXIT_OK, EXIT_RUNTIME, UsageError } from "../lib/errors.ts";
import { parseCount, parseDuration, parseEndpoint, parseFlags, parseSize } from "../lib/flags.ts";

/** What the load looks like; see the module documentation. */
export type BenchMode = "pingpong" | "bulk" | "hold";

/** The modes {@linkcode runBench} knows. */
export const BENCH_MODES: readonly BenchMode[] = ["pingpong", "bulk", "hold"];

/** Options for {@linkcode runBench}. */
export interface BenchOptions {
  /** The load to generate. @default {"pingpong"} */
  mode?: BenchMode;
  /** Server host (IPv6 without brackets). Ignored with `path`. @default {"127.0.0.1"} */
  hostname?: string;
  /** Server port. @default {10000} */
  port?: number;
  /** Connect to this Unix socket instead of TCP. */
  path?: string;
  /** TLS trust and ALPN; when given, every connection is TLS. */
  tls?: ClientTlsOptions;
  /** How many connections to open. @default {1} */
  connections?: number;
  /** Bytes per message (pingpong, hold) or per write (bulk). @default {64, or 65536 in bulk} */
  size?: number;
  /** Bulk: bytes a connection may have in flight, at least `size`. @default {4 * size} */
  window?: number;
  /** How long to measure (pingpong, bulk) or to stay idle (hold), in ms. @default {5000} */
  durationMs?: number;
  /** Load before measuring starts, not counted (pingpong, bulk), in ms. @default {0} */
  warmupMs?: number;
  /** A connection whose echo makes no progress for this long fails, in ms. @default {5000} */
  timeoutMs?: number;
  /** How many connection attempts run at once. @default {100} */
  connectConcurrency?: number;
  /** Stops the load early; the run still drains and reports. */
  signal?: AbortSignal;
  /** Called about once a second while the load runs. */
  onProgress?: (progress: BenchProgress) => void;
  /**
   * Called when the run enters a phase, with the connections open: `warmup` and `measuring`
   * (pingpong, bulk), `holding` once every connection that could be opened is open and idle
   * (hold), `draining` when the measured interval (or the idle time) ends.
   */
  onPhase?: (phase: BenchProgress["phase"], open: number) => void;
}

/** A snapshot passed to {@linkcode BenchOptions.onProgress}. */
export interface BenchProgress {
  /** What the run is doing now. */
  phase: "connecting" | "warmup" | "measuring" | "holding" | "draining";
  /** Milliseconds since the run started. */
  elapsedMs: number;
  /** Connections open now. */
  open: number;
  /** Messages counted so far (after warmup). */
  messages: number;
  /** Echoed bytes counted so far (after warmup). */
  bytes: number;
  /** Errors so far. */
  errors: number;
}

/** Error counts by kind; any of them makes the run fail. */
export interface BenchErrors {
  /** All errors. */
  total: number;
  /** Echoed bytes that differ from what was sent, or more bytes than were sent. */
  mismatch: number;
  /** Connections reset or broken by the server (ECONNRESET, EPIPE). */
  reset: number;
  /** Connection attempts refused. */
  refused: number;
  /** Connections the server closed before echoing everything. */
  eof: number;
  /** Connections whose echo made no progress for `timeoutMs`. */
  timeout: number;
  /** Anything else (e.g. too many open files). */
  other: number;
}

/** What {@linkcode runBench} measured. */
export interface BenchResult {
  /** The mode that ran. */
  mode: BenchMode;
  /** The server's address as printed (`127.0.0.1:10000`, `unix:/path`). */
  target: string;
  /** Connections asked for. */
  connections: number;
  /** Connections that were established. */
  connectionsOpened: number;
  /** Connections that were open, and echoed correctly, until the end of the run. */
  connectionsHeld: number;
  /** Milliseconds it took to open (or fail) every connection. */
  connectMs: number;
  /** Message (or write) size in bytes. */
  size: number;
  /** Bulk window in bytes; `null` in the other modes. */
  window: number | null;
  /** The measured interval in ms (hold: the idle time). */
  durationMs: number;
  /** The unmeasured warmup in ms. */
  warmupMs: number;
  /** Round trips (pingpong, hold) or `size`-byte chunks echoed (bulk) in the interval. */
  messages: number;
  /** Echoed bytes received and verified in the interval (one direction). */
  bytes: number;
  /** `messages` per second (hold: over the final round-trip phase). */
  messagesPerSecond: number;
  /** `bytes` per second, in MB (10^6 bytes). */
  megabytesPerSecond: number;
  /** Round-trip latency; `null` in bulk mode or when no round trip finished. */
  latencyMs: LatencySummary | null;
  /** CPU this process used in the interval, in % of one CPU: near 100 means the client, not
   * the server, may be what limits the figures. `null` when it cannot tell. */
  clientCpuPercent: number | null;
  /** Error counts. */
  errors: BenchErrors;
  /** The first error's description, for the report. */
  firstError: string | null;
}

/** One connection under load. Its buffers are allocated once and reused for every message. */
interface Connection {
  conn: Deno.Conn;
  /** Where this connection's stream starts in the pattern, so connections differ. */
  seed: number;
  readBuffer: Uint8Array;
  /** Bytes written and bytes read back (verified). */
  sent: number;
  received: number;
  /** When the current round trip started (bulk: when the echo last made progress while some
   * is outstanding); 0 when nothing is due. The watchdog fails it after `timeoutMs`. */
  waitingSince: number;
  failed: boolean;
  done: boolean;
}

/** Shared state of one run; the per-connection loops read the flags and add to the totals. */
class Run {
  readonly histogram = new LatencyHistogram();
  readonly errors: BenchErrors = {
    total: 0,
    mismatch: 0,
    reset: 0,
    refused: 0,
    eof: 0,
    timeout: 0,
    other: 0,
  };
  firstError: string | null = null;
  phase: BenchProgress["phase"] = "connecting";
  onPhase?: (phase: BenchProgress["phase"], open: number) => void;
  /** Set when the measured interval ends: loops finish what is in flight and stop. */
  stopping = false;
  measureStart = Infinity;
  measureEnd = Infinity;
  messages = 0;
  bytes = 0;
  open = 0;
  readonly connections: Connection[] = [];
  /** The payload: pseudo-random bytes with a period of `slots * size`, extended to be read
   * anywhere within one period plus a read buffer's length. */
  readonly pattern: Uint8Array;
  readonly period: number;
  readonly #patternBuffer: Buffer;
  /** Views of `size` bytes at each slot, created once, so sending allocates nothing. */
  readonly #slotViews: Uint8Array[] = [];

  constructor(readonly size: number, readLength: number) {
    const slots = size <= 65536 ? 61 : 5;
    this.period = slots * size;
    this.pattern = new Uint8Array(this.period + Math.max(size, readLength));
    let x = 0x9e3779b9;
    for (let i = 0; i < this.pattern.length; i++) {
      if (i >= this.period) {
        this.pattern[i] = this.pattern[i - this.period];
        continue;
      }
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.pattern[i] = x >>> 24;
    }
    this.#patternBuffer = Buffer.from(this.pattern.buffer);
    for (let slot = 0; slot < slots; slot++) {
      this.#slotViews.push(this.pattern.subarray(slot * size, (slot + 1) * size));
    }
  }

  /** CPU time (µs) and clock (ms) when the measured interval started, and how much it used. */
  #cpuStart: [number, number] | null = null;
  clientCpuPercent: number | null = null;

  setPhase(phase: BenchProgress["phase"]): void {
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

  /** Where stream offset `offset` of connection `c` is in the pattern. */
  patternIndex(c: Connection, offset: number): number {
    return (offset + c.seed) % this.period;
  }

  /** The next `size` bytes that `c` sends when its stream is at a message boundary. */
  messageView(c: Connection): Uint8Array {
    const index = this.patternIndex(c, c.sent);
    return index % this.size === 0
      ? this.#slotViews[index / this.size]
      : this.pattern.subarray(index, index + this.size);
  }

  /** Whether `buffer[from, from + length)` is what `c` sent at stream offset `c.received`. */
  verify(c: Connection, buffer: Uint8Array, from: number, length: number): boolean {
    const index = this.patternIndex(c, c.received);
    return this.#patternBuffer.compare(buffer, from, from + length, index, index + length) === 0;
  }

  fail(c: Connection | null, kind: Exclude<keyof BenchErrors, "total">, message: string): void {
    if (c) {
      if (c.failed) return;
      c.failed = true;
      closeQuietly(c.conn);
    }
    this.errors[kind]++;
    this.errors.total++;
    this.firstError ??= message;
  }

  failWith(c: Connection | null, error: unknown): void {
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

  mismatch(c: Connection, buffer: Uint8Array, from: number, length: number): void {
    const index = this.patternIndex(c, c.received);
    let at = 0;
    while (at < length && buffer[from + at] === this.pattern[index + at]) at++;
    const offset = c.received + at;
    this.fail(
      c,
      "mismatch",
      at < length
        ? `Echo differs at byte ${offset}: got 0x${hex(buffer[from + at])}, sent 0x${
          hex(this.pattern[index + at])
        }`
        : `Echo has more bytes than were sent (at byte ${offset})`,
    );
  }
}

function cpuMicroseconds(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/**
 * Runs one benchmark against an echo server and returns what it measured. Never throws for
 * what the server does (refusals, resets, wrong bytes are counted in `errors`); throws a
 * `RangeError` for impossible options.
 *
 * @example Ping-pong against a local echo server
 * ```ts ignore
 * import { runBench } from "./echo_bench.ts";
 * const result = await runBench({ port: 10000, connections: 50, durationMs: 5000 });
 * console.log(result.messagesPerSecond, result.latencyMs?.p99, result.errors.total);
 * ```
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchResult> {
  const mode = options.mode ?? "pingpong";
  const count = options.connections ?? 1;
  const size = options.size ?? (mode === "bulk" ? 65536 : 64);
  const window = options.window ?? 4 * size;
  const durationMs = options.durationMs ?? 5000;
  const warmupMs = mode === "hold" ? 0 : options.warmupMs ?? 0;
  const timeoutMs = options.timeoutMs ?? 5000;
  const concurrency = options.connectConcurrency ?? 100;
  if (!BENCH_MODES.includes(mode)) {
    throw new RangeError(`Cannot run mode "${mode}": must be one of ${BENCH_MODES.join(", ")}`);
  }
  for (const [name, value] of [["connections", count], ["size", size], ["window", window]]) {
    if (!(Number.isInteger(value) && (value as number) >= 1)) {
      throw new RangeError(`Cannot use ${name} ${value}: must be a positive integer`);
    }
  }
  if (mode === "bulk" && window < size) {
    throw new RangeError(`Cannot use window ${window}: must be at least the size (${size})`);
  }
  const target = options.path !== undefined
    ? formatAddr({ transport: "unix", path: options.path })
    : formatHostPort(options.hostname ?? "127.0.0.1", options.port ?? 10000);
  // A pingpong read buffer a little larger than a message shows extra echoed bytes at once.
  const readLength = mode === "bulk" ? Math.min(Math.max(size, 65536), window) : size + 64;
  const run = new Run(size, readLength);
  run.onPhase = options.onPhase;
  const started = performance.now();
  const signal = options.signal;
  const onAbort = () => stop();
  const stopped = Promise.withResolvers<void>();
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  function stop() {
    if (run.stopping) return;
    run.stopping = true;
    run.measureEnd = Math.min(run.measureEnd, performance.now());
    clearTimeout(stopTimer);
    run.setPhase("draining");
    stopped.resolve();
  }
  signal?.addEventListener("abort", onAbort, { once: true });

  const progress = options.onProgress
    ? setInterval(() => {
      options.onProgress!({
        phase: run.phase,
        elapsedMs: performance.now() - started,
        open: run.open,
        messages: run.messages,
        bytes: run.bytes,
        errors: run.errors.total,
      });
    }, 1000)
    : undefined;
  // A stalled echo never resolves its read: close the connection after `timeoutMs` without
  // progress, which counts it and ends its read.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const c of run.connections) {
      if (!c.failed && !c.done && c.waitingSince > 0 && now - c.waitingSince > timeoutMs) {
        run.fail(c, "timeout", `No echo for ${timeoutMs} ms (${c.sent - c.received} bytes due)`);
      }
    }
  }, Math.min(250, timeoutMs));

  let connectMs = 0;
  let roundTripStart = 0;
  let roundTripEnd = 0;
  try {
    if (signal?.aborted) stop();
    await openConnections(run, options, count, concurrency);
    connectMs = performance.now() - started;
    const loops: Promise<void>[] = [];
    if (mode === "hold") {
      if (!run.stopping) run.setPhase("holding");
      run.measureStart = performance.now();
      if (!run.stopping) stopTimer = setTimeout(stop, durationMs);
      // Each connection keeps one read pending while idle, so a server that closes or resets
      // an idle connection is noticed; that read then receives the final echo.
      for (const c of run.connections) loops.push(holdLoop(run, c, stopped.promise));
      await stopped.promise;
      roundTripStart = performance.now();
      await Promise.all(loops);
      roundTripEnd = performance.now();
    } else {
      run.measureStart = performance.now() + warmupMs;
      run.measureEnd = run.measureStart + durationMs;
      const warmupTimer = setTimeout(() => {
        if (!run.stopping) run.setPhase("measuring");
      }, warmupMs);
      if (warmupMs > 0 && !run.stopping) run.setPhase("warmup");
      if (!run.stopping) stopTimer = setTimeout(stop, warmupMs + durationMs);
      for (const c of run.connections) {
        loops.push(mode === "bulk" ? bulkLoop(run, c, window) : pingpongLoop(run, c));
      }
      await Promise.race([stopped.promise, Promise.all(loops)]);
      clearTimeout(warmupTimer);
      stop();
      await Promise.all(loops);
    }
  } finally {
    stop();
    clearInterval(watchdog);
    clearInterval(progress);
    signal?.removeEventListener("abort", onAbort);
    for (const c of run.connections) if (!c.failed) closeQuietly(c.conn);
  }

  const measuredMs = mode === "hold"
    ? run.measureEnd - run.measureStart
    : Math.max(0, run.measureEnd - run.measureStart);
  const rateMs = mode === "hold" ? roundTripEnd - roundTripStart : measuredMs;
  // Bulk counts whole writes' worth of echoed bytes as messages.
  const messages = mode === "bulk" ? Math.floor(run.bytes / size) : run.messages;
  const held = run.connections.filter((c) => c.done && !c.failed).length;
  return {
    mode,
    target,
    connections: count,
    connectionsOpened: run.connections.length,
    connectionsHeld: held,
    connectMs: Math.round(connectMs),
    size,
    window: mode === "bulk" ? window : null,
    durationMs: Math.round(measuredMs),
    warmupMs,
    messages,
    bytes: run.bytes,
    messagesPerSecond: rateMs > 0 ? messages / (rateMs / 1000) : 0,
    megabytesPerSecond: rateMs > 0 ? run.bytes / 1e6 / (rateMs / 1000) : 0,
    latencyMs: mode === "bulk" ? null : run.histogram.summary(),
    clientCpuPercent: run.clientCpuPercent,
    errors: run.errors,
    firstError: run.firstError,
  };
}

/** Opens `count` connections, at most `concurrency` attempts at a time. */
async function openConnections(
  run: Run,
  options: BenchOptions,
  count: number,
  concurrency: number,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count && !run.stopping) {
      const index = next++;
      try {
        // Small messages must leave at once, not wait for Nagle's algorithm; the timeout
        // also bounds a TLS handshake with a server that never answers it.
        const conn = await connect({
          path: options.path,
          hostname: options.hostname ?? "127.0.0.1",
          port: options.port ?? 10000,
          tls: options.tls,
          timeout: options.timeoutMs ?? 5000,
          noDelay: true,
        });
        run.connections.push({
          conn,
          seed: (index % (run.period / run.size)) * run.size,
          readBuffer: new Uint8Array(run.pattern.length - run.period),
          sent: 0,
          received: 0,
          waitingSince: 0,
          failed: false,
          done: false,
        });
        run.open++;
      } catch (error) {
        run.failWith(null, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/**
 * Reads until everything `c` sent has come back, verifying each read. `pending` is a read that
 * was already started into `c.readBuffer` (hold mode).
 */
async function readEcho(
  run: Run,
  c: Connection,
  pending?: Promise<number | null>,
): Promise<void> {
  const buffer = c.readBuffer;
  const due = c.sent - c.received;
  let got = 0;
  while (got < due) {
    const length = pending !== undefined
      ? await pending
      : await c.conn.read(got === 0 ? buffer : buffer.subarray(got));
    pending = undefined;
    if (c.failed) return;
    if (length === null) {
      run.fail(c, "eof", `Server closed the connection with ${due - got} bytes not echoed`);
      return;
    }
    if (got + length > due || !run.verify(c, buffer, got, length)) {
      run.mismatch(c, buffer, got, length);
      return;
    }
    got += length;
    c.received += length;
  }
}

async function pingpongLoop(run: Run, c: Connection): Promise<void> {
  try {
    // One clock read per round trip: a round trip ends where the next one starts.
    let start = performance.now();
    while (!run.stopping && !c.failed) {
      c.waitingSince = start;
      await writeAll(c.conn, run.messageView(c));
      c.sent += run.size;
      await readEcho(run, c);
      if (c.failed) return;
      const end = performance.now();
      if (start >= run.measureStart && end <= run.measureEnd) {
        run.histogram.record(end - start);
        run.messages++;
        run.bytes += run.size;
      }
      start = end;
    }
    c.done = true;
  } catch (error) {
    run.failWith(c, error);
  }
}

async function holdLoop(run: Run, c: Connection, idleEnd: Promise<void>): Promise<void> {
  try {
    const pending = c.conn.read(c.readBuffer);
    const early = await Promise.race([pending, idleEnd]);
    if (c.failed) return;
    if (early !== undefined) {
      if (early === null) run.fail(c, "eof", "Server closed an idle connection");
      else run.mismatch(c, c.readBuffer, 0, early); // nothing was sent: any byte is extra
      return;
    }
    const start = performance.now();
    c.waitingSince = start;
    await writeAll(c.conn, run.messageView(c));
    c.sent += run.size;
    await readEcho(run, c, pending);
    if (c.failed) return;
    run.histogram.record(performance.now() - start);
    run.messages++;
    run.bytes += run.size;
    c.done = true;
  } catch (error) {
    run.failWith(c, error);
  }
}

async function bulkLoop(run: Run, c: Connection, window: number): Promise<void> {
  const size = run.size;
  // The writer waits here when the window is full; the reader wakes it.
  let wake: (() => void) | null = null;
  const resume = () => {
    const waiting = wake;
    wake = null;
    waiting?.();
  };
  let writerDone = false;
  const writer = async () => {
    try {
      while (!run.stopping && !c.failed) {
        if (c.sent - c.received + size > window) {
          const { promise, resolve } = Promise.withResolvers<void>();
          wake = resolve;
          await promise;
          continue;
        }
        if (c.waitingSince === 0) c.waitingSince = performance.now();
        // Writes start at message boundaries (see Run.messageView) unless one was partial.
        const view = run.messageView(c);
        const written = await c.conn.write(view);
        c.sent += written;
        if (written < size) {
          await writeAll(c.conn, view.subarray(written));
          c.sent += size - written;
        }
      }
    } catch (error) {
      run.failWith(c, error);
    } finally {
      writerDone = true;
      // All echoed already: the reader's pending read would wait forever, so end it.
      if (c.sent === c.received && !c.failed) {
        c.done = true;
        closeQuietly(c.conn);
      }
    }
  };
  const reader = async () => {
    const buffer = c.readBuffer;
    try {
      while (!c.failed && !c.done) {
        const length = await c.conn.read(buffer);
        if (c.failed || c.done) return;
        if (length === null) {
          if (writerDone && c.sent === c.received) c.done = true;
          else run.fail(c, "eof", `Server closed the connection with bytes not echoed`);
          return;
        }
        if (c.received + length > c.sent || !run.verify(c, buffer, 0, length)) {
          run.mismatch(c, buffer, 0, length);
          return;
        }
        c.received += length;
        const now = performance.now();
        c.waitingSince = c.received === c.sent ? 0 : now;
        if (now >= run.measureStart && now <= run.measureEnd) run.bytes += length;
        if (c.sent - c.received + size <= window) resume();
        if (writerDone && c.sent === c.received) {
          c.done = true;
          closeQuietly(c.conn);
        }
      }
    } catch (error) {
      if (!c.done) run.failWith(c, error);
    } finally {
      // A failed connection must not leave the writer waiting for room.
      resume();
    }
  };
  await Promise.all([writer(), reader()]);
}

const USAGE = `Usage: echo_bench.ts [options]

Load generator for an echo server: every echoed byte is verified.

Options:
  --mode MODE          pingpong, bulk or hold (default pingpong)
  --host HOST          server host, IPv4, IPv6 or name (default 127.0.0.1)
  --port PORT          server port (default 10000)
  --unix PATH          connect to a Unix socket instead
  --connections N      connections to open (default 1)
  --size BYTES         message size; in bulk, write size (default 64, bulk 64k)
  --window BYTES       bulk: bytes in flight per connection (default 4 x size)
  --duration TIME      how long to measure, or to hold (default 5s)
  --warmup TIME        unmeasured load first, pingpong and bulk (default 0)
  --timeout TIME       fail a connection whose round trip (bulk: echo) stalls
                       this long (default 5s)
  --parallel N         connection attempts at once (default 100)
  --tls                connect with TLS; --ca FILE trusts a CA (needs --allow-read)
  --alpn P1,P2         ALPN protocols to offer with --tls (repeatable)
  --insecure           with --tls, skip the host name check (not the chain)
  --json               print one JSON object per line: each phase as it starts
                       (warmup, measuring, holding, draining), then the result
  -h, --help           show this help

Exit status: 0 when every byte came back right, 1 on any error, 2 on bad usage.`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    string: [
      "mode",
      "host",
      "port",
      "unix",
      "connections",
      "size",
      "window",
      "duration",
      "warmup",
      "timeout",
      "parallel",
      "ca",
    ],
    boolean: ["json", "tls", "insecure", "help"],
    collect: ["alpn"],
    alias: { h: "help" },
  });
  if (flags.help) {
    printLine(USAGE);
    return EXIT_OK;
  }
  const mode = (flags.mode ?? "pingpong") as BenchMode;
  if (!BENCH_MODES.includes(mode)) {
    throw new UsageError(
      `Cannot parse --mode "${flags.mode}": must be one of ${BENCH_MODES.join(", ")}`,
    );
  }
  const size = flags.size === undefined
    ? (mode === "bulk" ? 65536 : 64)
    : parseSize(flags.size, "--size", { max: 4 * 1024 ** 2 });
  const window = flags.window === undefined
    ? undefined
    : parseSize(flags.window, "--window", { min: size, max: 256 * 1024 ** 2 });
  const options: BenchOptions = {
    mode,
    ...parseEndpoint(flags, 10000),
    tls: await clientTlsFromFlags(flags),
    connections: flags.connections === undefined
      ? undefined
      : parseCount(flags.connections, "--connections", { max: 1_000_000 }),
    size,
    window,
    durationMs: flags.duration === undefined
      ? undefined
      : parseDuration(flags.duration, "--duration"),
    warmupMs: flags.warmup === undefined
      ? undefined
      : parseDuration(flags.warmup, "--warmup", { allowZero: true }),
    timeoutMs: flags.timeout === undefined ? undefined : parseDuration(flags.timeout, "--timeout"),
    connectConcurrency: flags.parallel === undefined
      ? undefined
      : parseCount(flags.parallel, "--parallel", { max: 10_000 }),
  };
  if (options.port === 0) throw new UsageError(`Cannot connect to --port "0"`);

  using stop = stopSignal();
  const terminal = Deno.stderr.isTerminal();
  const result = await runBench({
    ...options,
    signal: stop.signal,
    onProgress: terminal ? (p) => printProgress(mode, p) : undefined,
    onPhase: (phase, open) => {
      if (flags.json) printLine(JSON.stringify({ event: phase, connections: open }));
      else if (terminal && phase === "holding") {
        printProgressLine(`hold: ${open} connections open, idle`);
      }
    },
  });
  if (terminal) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
  if (flags.json) printLine(JSON.stringify({ event: "result", ...result }));
  else for (const line of formatResult(result)) printLine(line);
  if (result.connectionsOpened === 0 && result.errors.total === 0) {
    printError("echo_bench: no connection was opened");
    return EXIT_RUNTIME;
  }
  return result.errors.total > 0 ? EXIT_RUNTIME : EXIT_OK;
}

function printProgress(mode: BenchMode, p: BenchProgress): void {
  const seconds = (p.elapsedMs / 1000).toFixed(0);
  printProgressLine(
    `${mode} ${p.phase} ${seconds}s: ${p.open} open, ${p.messages} msgs, ` +
      `${(p.bytes / 1e6).toFixed(1)} MB, ${p.errors} errors`,
  );
}

function printProgressLine(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
}

/** The result as aligned `name  value` lines, for people. */
export function formatResult(result: BenchResult): string[] {
  const number = (value: number, digits = 0) =>
    value.toLocaleString("en-US", { maximumFractionDigits: digits });
  const lines = [
    ["mode", result.mode],
    ["target", result.target],
    [
      "connections",
      `${result.connectionsHeld} held of ${result.connections} ` +
      `(${result.connectionsOpened} opened in ${(result.connectMs / 1000).toFixed(2)} s)`,
    ],
    [
      "size",
      `${number(result.size)} B${result.window ? `, window ${number(result.window)} B` : ""}`,
    ],
    [
      result.mode === "hold" ? "idle" : "duration",
      `${(result.durationMs / 1000).toFixed(2)} s` +
      (result.warmupMs ? ` after ${(result.warmupMs / 1000).toFixed(2)} s warmup` : ""),
    ],
    ["messages", `${number(result.messages)} (${number(result.messagesPerSecond)}/s)`],
    ["throughput", `${number(result.megabytesPerSecond, 2)} MB/s`],
    [
      "client CPU",
      result.clientCpuPercent === null ? "unknown" : `${number(result.clientCpuPercent)} %`,
    ],
  ];
  const l = result.latencyMs;
  if (l) {
    const ms = (value: number) => value.toFixed(3);
    lines.push([
      "latency ms",
      `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  max ${ms(l.max)}`,
    ]);
  }
  const e = result.errors;
  const kinds = (["mismatch", "reset", "refused", "eof", "timeout", "other"] as const)
    .filter((kind) => e[kind] > 0).map((kind) => `${kind} ${e[kind]}`);
  lines.push(["errors", e.total === 0 ? "0" : `${e.total} (${kinds.join(", ")})`]);
  if (result.firstError) lines.push(["first error", result.firstError]);
  return lines.map(([name, value]) => `${name.padEnd(12)}${value}`);
}

if (import.meta.main) runMain("echo_bench", () => main(Deno.args));
