/**
 * The load engine: {@linkcode runBench} opens connections to an echo server, runs one loop per
 * connection in the chosen mode (`load_loops.ts`), measures a fixed interval after a warmup,
 * fails connections whose echo stalls, and returns a typed {@linkcode BenchResult}. It never
 * prints: the CLI (`scripts/echo_bench.ts`) reports through the callbacks and the result.
 * @module
 */
import { pooledMap as pooledMapUntyped } from "@std/async/pool";
import { formatTarget } from "../address.ts";
import { closeQuietly } from "../io.ts";
import { TURN_BUDGET_MS } from "../turn_pacer.ts";
import { connect, type DialConfig } from "../net/connect.ts";
import type { ClientTlsOptions } from "../tls.ts";
import { fairnessOf } from "./fairness.ts";
import { bulkLoop, holdLoop, pingpongLoop } from "./load_loops.ts";
import { LoadState } from "./load_state.ts";
import { BENCH_MODES, type BenchMode, type BenchPhase, type BenchResult } from "./result.ts";

// The npm mirror of @std ships no types.
const pooledMap = pooledMapUntyped as <T, R>(
  limit: number,
  items: Iterable<T> | AsyncIterable<T>,
  map: (item: T) => Promise<R>,
) => AsyncIterableIterator<R>;

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
  /**
   * How long the connection loops may run, in ms, before they let the event loop turn so the
   * runtime completes every ready read: they pause together once they have run this long and
   * handled 128 events with 128 or more connections busy (lib/turn_pacer.ts). Without it a
   * connection can starve for seconds at 500 connections: the README's "Fairness: no connection
   * starves" has the figures. `Infinity` never pauses (`--turn-budget off`).
   * @default {2}
   */
  turnBudgetMs?: number;
  /** Stops the load early; the run still drains and reports. */
  signal?: AbortSignal;
  /** Called about once a second while the load runs. */
  onProgress?: (progress: BenchProgress) => void;
  /**
   * Called when the run enters a phase, with the connections open: `warmup` and `measuring`
   * (pingpong, bulk), `holding` once every connection that could be opened is open and idle
   * (hold), `draining` when the measured interval (or the idle time) ends.
   */
  onPhase?: (phase: BenchPhase, open: number) => void;
}

/** A snapshot passed to {@linkcode BenchOptions.onProgress}. */
export interface BenchProgress {
  /** What the run is doing now. */
  phase: BenchPhase;
  /** Milliseconds since the run started. */
  elapsedMs: number;
  /** Connections open now: opened, and neither failed nor finished. */
  open: number;
  /** Messages counted so far (after warmup). */
  messages: number;
  /** Echoed bytes counted so far (after warmup). */
  bytes: number;
  /** Errors so far. */
  errors: number;
}

/**
 * Runs one benchmark against an echo server and returns what it measured. Never throws for
 * what the server does (refusals, resets, wrong bytes are counted in `errors`); throws a
 * `RangeError` for impossible options.
 *
 * @example Ping-pong against a local echo server
 * ```ts
 * import { runBench } from "./load.ts";
 * import { serveEcho } from "../mux/mod.ts";
 * const server = await serveEcho({ port: 0 });
 * const result = await runBench({
 *   port: (server.addr as Deno.NetAddr).port,
 *   connections: 2,
 *   durationMs: 100,
 * });
 * server.close();
 * await server.finished;
 * if (result.errors.total !== 0 || result.messages === 0) throw new Error(result.firstError!);
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
  // Where every connection goes, defaults resolved once; connect() names it the same way in
  // its errors, which describeFailure() strips after the target it prints first.
  const endpoint = {
    path: options.path,
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 10000,
  };
  const target = formatTarget(endpoint);
  // A pingpong read buffer a little larger than a message shows extra echoed bytes at once.
  const readLength = mode === "bulk" ? Math.min(Math.max(size, 65536), window) : size + 64;
  const state = new LoadState({
    size,
    readLength,
    turnBudgetMs: options.turnBudgetMs ?? TURN_BUDGET_MS,
  });
  state.onPhase = options.onPhase;
  const started = performance.now();
  const signal = options.signal;
  const onAbort = () => stop();
  const stopped = Promise.withResolvers<void>();
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  function stop() {
    if (state.stopping) return;
    state.stopping = true;
    state.measureEnd = Math.min(state.measureEnd, performance.now());
    clearTimeout(stopTimer);
    state.setPhase("draining");
    stopped.resolve();
  }
  signal?.addEventListener("abort", onAbort, { once: true });

  const progress = options.onProgress
    ? setInterval(() => {
      options.onProgress!({
        phase: state.phase,
        elapsedMs: performance.now() - started,
        open: state.open,
        messages: state.messages,
        bytes: state.bytes,
        errors: state.errors.total,
      });
    }, 1000)
    : undefined;
  // A stalled echo never resolves its read: close the connection after `timeoutMs` without
  // progress, which counts it and ends its read.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const c of state.connections) {
      if (!c.failed && !c.done && c.waitingSince > 0 && now - c.waitingSince > timeoutMs) {
        state.fail(c, "timeout", `No echo for ${timeoutMs} ms (${c.sent - c.received} bytes due)`);
      }
    }
  }, Math.min(250, timeoutMs));

  let connectMs = 0;
  let roundTripStart = 0;
  let roundTripEnd = 0;
  try {
    if (signal?.aborted) stop();
    await openConnections(
      state,
      {
        ...endpoint,
        tls: options.tls,
        // The timeout also bounds a TLS handshake with a server that never answers it.
        timeout: timeoutMs,
        // Small messages must leave at once, not wait for Nagle's algorithm.
        noDelay: true,
      },
      count,
      concurrency,
    );
    connectMs = performance.now() - started;
    const loops: Promise<void>[] = [];
    if (mode === "hold") {
      if (!state.stopping) state.setPhase("holding");
      state.measureStart = performance.now();
      if (!state.stopping) stopTimer = setTimeout(stop, durationMs);
      for (const c of state.connections) loops.push(holdLoop(state, c, stopped.promise));
      await stopped.promise;
      roundTripStart = performance.now();
      await Promise.all(loops);
      roundTripEnd = performance.now();
    } else {
      state.measureStart = performance.now() + warmupMs;
      state.measureEnd = state.measureStart + durationMs;
      const warmupTimer = setTimeout(() => {
        if (!state.stopping) state.setPhase("measuring");
      }, warmupMs);
      if (warmupMs > 0 && !state.stopping) state.setPhase("warmup");
      if (!state.stopping) stopTimer = setTimeout(stop, warmupMs + durationMs);
      for (const c of state.connections) {
        loops.push(mode === "bulk" ? bulkLoop(state, c, window) : pingpongLoop(state, c));
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
    for (const c of state.connections) if (!c.failed) closeQuietly(c.conn);
  }

  // Never negative: a stop during connect comes before hold mode's interval starts.
  const measuredMs = Math.max(0, state.measureEnd - state.measureStart);
  const rateMs = mode === "hold" ? roundTripEnd - roundTripStart : measuredMs;
  // Bulk counts whole writes' worth of echoed bytes as messages.
  const messages = mode === "bulk" ? Math.floor(state.bytes / size) : state.messages;
  const held = state.connections.filter((c) => c.done && !c.failed).length;
  return {
    mode,
    target,
    connections: count,
    connectionsOpened: state.connections.length,
    connectionsHeld: held,
    connectMs: Math.round(connectMs),
    size,
    window: mode === "bulk" ? window : null,
    durationMs: Math.round(measuredMs),
    warmupMs,
    messages,
    bytes: state.bytes,
    messagesPerSecond: rateMs > 0 ? messages / (rateMs / 1000) : 0,
    megabytesPerSecond: rateMs > 0 ? state.bytes / 1e6 / (rateMs / 1000) : 0,
    latencyMs: mode === "bulk" ? null : state.histogram.summary(),
    fairness: mode === "hold" ? null : fairnessOf(state.connections.map((c) => c.progress)),
    clientCpuPercent: state.clientCpuPercent,
    errors: state.errors,
    firstError: state.firstError,
  };
}

/** Opens `count` connections as `dial` says, at most `concurrency` attempts at a time, until
 * the run stops. */
async function openConnections(
  state: LoadState,
  dial: DialConfig,
  count: number,
  concurrency: number,
): Promise<void> {
  function* indexes() {
    for (let index = 0; index < count && !state.stopping; index++) yield index;
  }
  const attempts = pooledMap(Math.min(concurrency, count), indexes(), async (index: number) => {
    try {
      state.add(await connect(dial), index);
    } catch (error) {
      state.failWith(null, error);
    }
  });
  for await (const _ of attempts) { /* each attempt counted itself */ }
}
