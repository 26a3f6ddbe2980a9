/**
 * echo_bench.ts — a load generator for any echo server (what `tcpkali` does for TCP echo):
 *
 * - `pingpong`: each connection sends `--size` bytes, waits until all of them came back, repeats;
 *   every round trip's latency goes into a fixed-size histogram (p50/p90/p99/p99.9/max), and
 *   each connection's count of round trips shows how evenly the server served them.
 * - `bulk`: each connection keeps up to `--window` bytes in flight, in writes of `--size` bytes,
 *   and reads everything back.
 * - `hold`: opens `--connections` in bounded parallel batches, keeps them idle for `--duration`,
 *   then makes one round trip on each (memory per idle connection is measured on the server).
 *
 * Every echoed byte is checked. Mismatches, resets, refused connections, early closes and
 * stalls are counted, and any of them makes the exit code 1 with one line on stderr. The engine
 * is `lib/bench/load.ts`; this file is its command line.
 *
 * Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_bench.ts --connections 50
 * Try it: deno task echo-server --quiet   (in another terminal), then the line above
 *
 * (`--unix PATH` needs `--allow-net=unix:PATH --allow-read=PATH --allow-write=PATH`; `--tls
 * --ca FILE` adds `--allow-read=FILE`.)
 * @module
 */
import { printError, printLine, runMain, stopSignal } from "../lib/cli.ts";
import { EXIT_OK, EXIT_RUNTIME, UsageError } from "../lib/errors.ts";
import { parseCount, parseDuration, parseEndpoint, parseFlags, parseSize } from "../lib/flags.ts";
import { clientTlsFromFlags } from "../lib/tls.ts";
import { formatBenchEvent } from "../lib/bench/events.ts";
import { type BenchOptions, runBench } from "../lib/bench/load.ts";
import { formatProgress, ProgressLine, progressStyle } from "../lib/bench/progress.ts";
import { describeFailure, formatResult } from "../lib/bench/report.ts";
import { BENCH_MODES, type BenchMode } from "../lib/bench/result.ts";

export { type BenchOptions, runBench } from "../lib/bench/load.ts";
export type { BenchResult } from "../lib/bench/result.ts";

const USAGE = `Usage: echo_bench.ts [options]

Load generator for an echo server: every echoed byte is verified.

Options:
  --mode MODE           pingpong, bulk or hold                      [default: pingpong]
  --host HOST           server host, IPv4, IPv6 or name             [default: 127.0.0.1]
  --port PORT           server port                                 [default: 10000]
  --unix PATH           connect to a Unix socket instead
  --connections N       connections to open                         [default: 1]
  --size BYTES          message size; in bulk, write size           [default: 64, bulk 64k]
  --window BYTES        bulk: bytes in flight per connection        [default: 4 x size]
  --duration TIME       how long to measure, or to hold             [default: 5s]
  --warmup TIME         unmeasured load first, pingpong and bulk    [default: 0]
  --timeout TIME        fail a connection whose round trip (bulk: echo) stalls this long
                                                                    [default: 5s]
  --parallel N          connection attempts at once                 [default: 100]
  --turn-budget TIME    once the loops have run this long and handled 128 events with
                        128 or more connections busy, pause them all for one timer turn,
                        so the runtime serves every connection ("off": never)
                                                                    [default: 2ms]
  --tls                 connect with TLS; --ca FILE trusts a CA (needs --allow-read)
  --alpn P1,P2          ALPN protocols to offer with --tls (repeatable)
  --insecure            with --tls, skip the host name check (not the chain)
  --json                print one JSON object per line: each phase as it starts
                        (warmup, measuring, holding, draining), then the result
  -h, --help            show this help
  --version             print the version

Exit status: 0 when every byte came back right, 1 on any error, 2 on bad usage.

Run:    deno run --allow-net=127.0.0.1:10000 scripts/echo_bench.ts --connections 50
Try it: deno task echo-server --quiet   (in another terminal), then the line above`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    string: [
      ...["mode", "host", "port", "unix", "connections", "size", "window", "duration"],
      ...["warmup", "timeout", "parallel", "turn-budget", "ca"],
    ],
    boolean: ["json", "tls", "insecure"],
    collect: ["alpn"],
    usage: USAGE,
  });
  const options = await benchOptions(flags);
  const mode = options.mode!;

  using stop = stopSignal();
  const style = flags.json ? null : progressStyle();
  const progress = style === null ? null : new ProgressLine(style);
  const result = await runBench({
    ...options,
    signal: stop.signal,
    onProgress: progress ? (p) => progress.show(formatProgress(mode, p)) : undefined,
    onPhase: (phase, open) => {
      if (flags.json && phase !== "connecting") {
        printLine(formatBenchEvent({ event: phase, connections: open }));
      } else if (phase === "holding") progress?.show(`hold: ${open} connections open, idle`);
    },
  });
  await progress?.clear();
  if (flags.json) printLine(formatBenchEvent({ event: "result", result }));
  else for (const line of formatResult(result)) printLine(line);
  const failure = describeFailure(result);
  if (failure === null) return EXIT_OK;
  printError(`echo_bench: ${failure}`);
  return EXIT_RUNTIME;
}

/** Turns the flags into the engine's options, or throws a `UsageError`. */
async function benchOptions(flags: Record<string, string | boolean | string[] | undefined>) {
  const text = (name: string) => flags[name] as string | undefined;
  const mode = (text("mode") ?? "pingpong") as BenchMode;
  if (!BENCH_MODES.includes(mode)) {
    throw new UsageError(
      `Cannot parse --mode "${text("mode")}": must be one of ${BENCH_MODES.join(", ")}`,
    );
  }
  const optional = <T>(name: string, parse: (value: string) => T) =>
    text(name) === undefined ? undefined : parse(text(name)!);
  const size = optional("size", (v) => parseSize(v, "--size", { max: 4 * 1024 ** 2 })) ??
    (mode === "bulk" ? 65536 : 64);
  const options: BenchOptions = {
    mode,
    ...parseEndpoint(flags, 10000),
    tls: await clientTlsFromFlags(flags),
    connections: optional("connections", (v) => parseCount(v, "--connections", { max: 1e6 })),
    size,
    window: optional(
      "window",
      (v) => parseSize(v, "--window", { min: size, max: 256 * 1024 ** 2 }),
    ),
    durationMs: optional("duration", (v) => parseDuration(v, "--duration")),
    warmupMs: optional("warmup", (v) => parseDuration(v, "--warmup", { allowZero: true })),
    timeoutMs: optional("timeout", (v) => parseDuration(v, "--timeout")),
    connectConcurrency: optional("parallel", (v) => parseCount(v, "--parallel", { max: 10_000 })),
    turnBudgetMs: optional(
      "turn-budget",
      (v) => v === "off" ? Infinity : parseDuration(v, "--turn-budget", { allowZero: true }),
    ),
  };
  if (options.port === 0) throw new UsageError(`Cannot connect to --port "0"`);
  return options;
}

if (import.meta.main) runMain("echo_bench", () => main(Deno.args));
