/**
 * `deno task bench`: starts each echo server under test as its own process on a free port —
 * the project's multiplexer (`scripts/echo_server.ts --quiet`), the plain read/write loop, the
 * `pipeTo` style, Node's `net` when `node` is installed and Python's asyncio when `python3` is —
 * and drives it with `scripts/echo_bench.ts`, also its own process, through the same scenarios.
 * With `taskset`, servers run on CPU 0 and the load on CPU 1. Each scenario gets a fresh server,
 * so memory figures start from an idle process. Prints one table with every figure and the
 * ratios to the read/write loop. The work is in `lib/bench/` (`measure.ts`, `table.ts`); this
 * file is its command line.
 *
 * Run:    deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-write --allow-env \
 *           --allow-sys scripts/bench/run.ts [--quick] [--only NAME]... [--out FILE]
 * Try it: deno task bench --quick --only rw --only pingpong-50
 * @module
 */
import { printError, printLine, runMain } from "../../lib/cli.ts";
import { EXIT_OK, EXIT_RUNTIME } from "../../lib/errors.ts";
import { parseCount, parseDuration, parseFlags } from "../../lib/flags.ts";
import { toJsonText } from "../../lib/json_event.ts";
import { measure, type Measurement, type MeasureSettings } from "../../lib/bench/measure.ts";
import { outputOf } from "../../lib/bench/process.ts";
import { clockTicksPerSecond, openFileLimits } from "../../lib/bench/proc_stats.ts";
import { SCENARIOS, selectRuns, type ServerSpec } from "../../lib/bench/scenarios.ts";
import { formatTable } from "../../lib/bench/table.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DENO = [Deno.execPath(), "run", "--allow-net=127.0.0.1"];
const SERVER_NAMES = ["mux", "rw", "pipeto", "node", "python"];

const USAGE = `Usage: run.ts [options]

Benchmarks echo servers (each its own process) with scripts/echo_bench.ts.

Options:
  --only NAME        run only these servers and/or scenarios (repeatable); servers:
                     mux, rw, pipeto, node, python; scenarios: pingpong-1, pingpong-50,
                     pingpong-500, bulk-1, bulk-8, hold; modes: pingpong, bulk
  --duration TIME    measured time per scenario, and idle time of hold  [default: 5s]
  --warmup TIME      unmeasured load before each scenario               [default: 1s]
  --quick            a smoke run: --duration 1s --warmup 200ms
  --hold N           connections in the hold scenario                   [default: 5000]
  --repeat N         sweeps over everything; the table shows medians    [default: 1]
  --no-pin           do not pin servers to CPU 0 and the load to CPU 1 with taskset
  --out FILE         also write every figure as JSON
  -h, --help         show this help
  --version          print the version

Run:    deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-write --allow-env \\
          --allow-sys scripts/bench/run.ts
Try it: deno task bench --quick --only rw --only pingpong-50`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    string: ["duration", "warmup", "out", "hold", "repeat"],
    boolean: ["quick", "no-pin"],
    collect: ["only"],
    usage: USAGE,
  });
  const durationMs = flags.duration === undefined
    ? (flags.quick ? 1000 : 5000)
    : parseDuration(flags.duration, "--duration");
  const warmupMs = flags.warmup === undefined
    ? (flags.quick ? 200 : 1000)
    : parseDuration(flags.warmup, "--warmup", { allowZero: true });
  const repeat = flags.repeat === undefined
    ? 1
    : parseCount(flags.repeat, "--repeat", { max: 100 });
  const holdCount = flags.hold === undefined
    ? 5000
    : parseCount(flags.hold, "--hold", { max: 100_000 });

  const notes: string[] = [];
  const versions = {
    node: await outputOf("node", ["--version"]),
    python: await outputOf("python3", ["--version"]),
  };
  const { servers, scenarios } = selectRuns(
    flags.only,
    serversUnderTest(holdCount, versions, notes),
    SCENARIOS,
    {
      knownServers: SERVER_NAMES,
      holdCount,
    },
  );
  const settings: MeasureSettings = {
    client: [...DENO, `${ROOT}scripts/echo_bench.ts`],
    durationMs,
    warmupMs,
    pin: !flags["no-pin"] && await canPin(notes),
    nofile: scenarios.some((s) => s.mode === "hold")
      ? await raisedFileLimit(holdCount, notes)
      : null,
    ticksPerSecond: await clockTicksPerSecond(),
    cwd: ROOT,
  };

  const measurements: Measurement[] = [];
  const started = new Date();
  for (let sweep = 1; sweep <= repeat; sweep++) {
    for (const scenario of scenarios) {
      for (const server of servers) {
        const m = await measure(server, scenario, settings);
        measurements.push(m);
        printError(
          `${repeat > 1 ? `sweep ${sweep} ` : ""}${scenario.name.padEnd(13)} ` +
            `${server.name.padEnd(7)} ${summary(m)}`,
        );
      }
    }
  }

  const meta = {
    date: started.toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    ...versions,
    cpus: navigator.hardwareConcurrency,
    pinned: settings.pin,
    durationMs,
    warmupMs,
    repeat,
    openFileLimit: (await openFileLimits())?.soft ?? null,
    servers: Object.fromEntries(servers.map((s) => [s.name, s.description])),
  };
  printLine(
    `deno ${meta.deno}, ${meta.cpus} CPUs, ` +
      `${settings.pin ? "servers on CPU 0, load on CPU 1" : "not pinned"}, ` +
      `${durationMs / 1000} s per scenario after ${warmupMs / 1000} s warmup, ` +
      `${repeat > 1 ? `median of ${repeat} sweeps, ` : ""}` +
      `open-file limit ${settings.nofile ?? meta.openFileLimit ?? "unknown"}`,
  );
  for (const server of servers) printLine(`  ${server.name.padEnd(7)} ${server.description}`);
  for (const note of notes) printLine(`  note: ${note}`);
  printLine("");
  for (const line of formatTable(servers.map((s) => s.name), scenarios, measurements)) {
    printLine(line);
  }
  printLine("");
  printLine("x/y columns divide the figures: above 1 is better for msg/s, MB/s, held and the");
  printLine("fairness rows (slowest/median, Jain index: 1 is perfectly even), below 1 is better");
  printLine("for latency and memory. MB = 10^6 bytes echoed (one direction).");
  const problems = measurements.filter((m) => m.problem);
  for (const m of problems) printLine(`problem: ${m.server} ${m.scenario}: ${m.problem}`);
  if (flags.out !== undefined) {
    // toJsonText rounds the figures; parsing it back lets the file be indented for people.
    const report = JSON.parse(toJsonText({ meta, notes, scenarios, measurements }));
    await Deno.writeTextFile(flags.out, JSON.stringify(report, null, 2) + "\n");
    printError(`wrote ${flags.out}`);
  }
  return problems.length > 0 ? EXIT_RUNTIME : EXIT_OK;
}

/** Every server this machine can run, in table order; what is missing goes into `notes`. */
function serversUnderTest(
  holdCount: number,
  versions: { node: string | null; python: string | null },
  notes: string[],
): ServerSpec[] {
  const servers: ServerSpec[] = [
    {
      name: "mux",
      description: "scripts/echo_server.ts (the multiplexer)",
      command: [
        ...DENO,
        `${ROOT}scripts/echo_server.ts`,
        "--quiet",
        ...["--max-connections", String(holdCount * 2)],
      ],
    },
    {
      name: "rw",
      description: "per-connection read/write loop, 64 KiB buffer",
      command: [...DENO, `${ROOT}scripts/bench/read_write_server.ts`],
    },
    {
      name: "pipeto",
      description: "per-connection conn.readable.pipeTo(conn.writable)",
      command: [...DENO, `${ROOT}scripts/bench/pipe_to_server.ts`],
    },
  ];
  if (versions.node === null) notes.push("node skipped: node is not installed");
  else {
    servers.push({
      name: "node",
      description: `Node ${versions.node} net, socket.pipe(socket)`,
      command: ["node", `${ROOT}scripts/bench/node_net_server.mjs`],
    });
  }
  if (versions.python === null) notes.push("python skipped: python3 is not installed");
  else {
    servers.push({
      name: "python",
      description: `${versions.python} asyncio Protocol (uvloop when installed)`,
      command: ["python3", `${ROOT}scripts/bench/python_asyncio_server.py`],
    });
  }
  return servers;
}

/** Whether servers and load can go on CPUs 0 and 1: two CPUs and a working `taskset`. */
async function canPin(notes: string[]): Promise<boolean> {
  const pin = navigator.hardwareConcurrency >= 2 &&
    await outputOf("taskset", ["-c", "1", "true"]) !== null;
  if (!pin) notes.push("not pinned: taskset is missing or fewer than 2 CPUs");
  return pin;
}

/** The open-file limit hold needs (each side of each connection, plus Deno's own), or `null`. */
async function raisedFileLimit(holdCount: number, notes: string[]): Promise<number | null> {
  const limits = await openFileLimits();
  const needed = holdCount + 512;
  if (!limits || limits.soft >= needed) return null;
  if (limits.hard >= needed) {
    notes.push(`open-file limit raised from ${limits.soft} to ${needed} for the children`);
    return needed;
  }
  notes.push(
    `open-file limit ${limits.soft} (hard ${limits.hard}) is below ${needed}: ` +
      "hold will count the refused connections; raise the hard limit as root",
  );
  return null;
}

/** One line per measurement while the run goes on. */
function summary(m: Measurement): string {
  const r = m.bench;
  const text = r === null
    ? "no result"
    : r.mode === "hold"
    ? `${r.connectionsHeld} held, ${m.perConnectionKiB?.toFixed(1) ?? "-"} KiB/conn`
    : `${Math.round(r.messagesPerSecond)} msg/s, ${r.megabytesPerSecond.toFixed(1)} MB/s` +
      (r.latencyMs ? `, p99 ${r.latencyMs.p99.toFixed(3)} ms` : "");
  return text + (m.problem ? ` (${m.problem})` : "");
}

if (import.meta.main) runMain("bench", () => main(Deno.args));
