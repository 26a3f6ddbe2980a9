/**
 * `deno task bench`: starts each echo server under test as its own process on a free port —
 * the project's multiplexer (`scripts/echo_server.ts`), the plain read/write loop, the `pipeTo`
 * style and Node's `net` when `node` is installed — and drives it with `scripts/echo_bench.ts`,
 * also its own process, through the same scenarios. With `taskset`, servers run on CPU 0 and the
 * load on CPU 1. Each scenario gets a fresh server, so memory figures start from an idle process.
 * Prints one table with every figure and the ratios to the read/write loop.
 *
 *   deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-write --allow-env \
 *     --allow-sys scripts/bench/run.ts [--quick] [--only NAME]... [--out FILE]
 *
 * Try it: `deno task bench --quick --only rw --only pingpong-50`.
 * @module
 */
import { printError, printLine, runMain } from "../../lib/cli.ts";
import { EXIT_OK, EXIT_RUNTIME, UsageError } from "../../lib/errors.ts";
import { parseCount, parseDuration, parseFlags } from "../../lib/flags.ts";
import type { BenchMode, BenchResult } from "../echo_bench.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A server under test. */
interface ServerSpec {
  /** Short name for `--only` and the table. */
  name: string;
  /** What it is, for the notes. */
  description: string;
  /** Program and arguments; `--port 0` is appended by the caller. */
  command: string[];
}

/** One load scenario. */
interface Scenario {
  name: string;
  label: string;
  mode: BenchMode;
  connections: number;
  size: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: "pingpong-1", label: "pingpong 64 B x 1", mode: "pingpong", connections: 1, size: 64 },
  { name: "pingpong-50", label: "pingpong 64 B x 50", mode: "pingpong", connections: 50, size: 64 },
  {
    name: "pingpong-500",
    label: "pingpong 64 B x 500",
    mode: "pingpong",
    connections: 500,
    size: 64,
  },
  { name: "bulk-1", label: "bulk 64 KiB x 1", mode: "bulk", connections: 1, size: 65536 },
  { name: "bulk-8", label: "bulk 64 KiB x 8", mode: "bulk", connections: 8, size: 65536 },
  { name: "hold", label: "hold x 5000", mode: "hold", connections: 5000, size: 64 },
];

/** One server in one scenario. */
interface Measurement {
  server: string;
  scenario: string;
  /** What echo_bench reported, or `null` when it did not report. */
  bench: BenchResult | null;
  /** Why there is no result, or what went wrong around it (server crash, bench failure). */
  problem: string | null;
  /** Server VmRSS in KiB: idle after start, while holding (hold only), after the load. */
  rssStartKiB: number | null;
  rssHeldKiB: number | null;
  rssEndKiB: number | null;
  /** (held - start) / connections held, hold only. */
  perConnectionKiB: number | null;
  /** CPU use over the measured interval (pingpong, bulk), in % of one CPU. A client near 100 %
   * caps every server at the same figure: compare the servers' CPU per message then. */
  serverCpuPercent: number | null;
  clientCpuPercent: number | null;
  /** Server CPU time per message (bulk: per `size` chunk), in microseconds. */
  serverCpuUsPerMessage: number | null;
  serverExitCode: number | null;
}

/**
 * Reads a process's resident memory (VmRSS) in KiB, or `null` when it cannot. Deno reads /proc
 * only with --allow-all, so `cat` reads it (--allow-run is needed anyway).
 */
export async function readRssKiB(pid: number): Promise<number | null> {
  const status = await outputOf("cat", [`/proc/${pid}/status`]);
  const match = status === null ? null : /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) : null;
}

/** CPU time (user + system) a process has used, in clock ticks, or `null` when it cannot tell. */
async function readCpuTicks(pid: number): Promise<number | null> {
  const stat = await outputOf("cat", [`/proc/${pid}/stat`]);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat?.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields && fields.length > 12 ? Number(fields[11]) + Number(fields[12]) : null;
}

/** A server's CPU time between two moments (the bench measures its own). */
class CpuWindow {
  #start: Promise<[number | null, number]> | null = null;
  #end: Promise<[number | null, number]> | null = null;
  constructor(readonly pid: number, readonly ticksPerSecond: number) {}

  async #sample(): Promise<[number | null, number]> {
    return [await readCpuTicks(this.pid), performance.now()];
  }
  start(): void {
    this.#start ??= this.#sample();
  }
  end(): void {
    if (this.#start) this.#end ??= this.#sample();
  }
  /** The server's CPU seconds and its use in % of one CPU, or `null`. */
  async result(): Promise<{ seconds: number; percent: number } | null> {
    if (!this.#start || !this.#end) return null;
    const [[ticks0, t0], [ticks1, t1]] = await Promise.all([this.#start, this.#end]);
    if (ticks0 === null || ticks1 === null || t1 <= t0) return null;
    const seconds = (ticks1 - ticks0) / this.ticksPerSecond;
    return { seconds, percent: (seconds / ((t1 - t0) / 1000)) * 100 };
  }
}

/** The soft and hard open-file limits that children inherit. */
async function openFileLimits(): Promise<{ soft: number; hard: number } | null> {
  const output = await outputOf("sh", ["-c", "ulimit -Sn; ulimit -Hn"]);
  const match = output === null ? null : /^(\d+|unlimited)\s+(\d+|unlimited)$/.exec(output);
  if (!match) return null;
  const value = (text: string) => text === "unlimited" ? Infinity : Number(text);
  return { soft: value(match[1]), hard: value(match[2]) };
}

async function succeeds(program: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(program, { args, stdout: "null", stderr: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

async function outputOf(program: string, args: string[]): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command(program, { args, stderr: "null" }).output();
    return success ? new TextDecoder().decode(stdout).trim() : null;
  } catch {
    return null;
  }
}

/** Splits a byte stream into lines and hands each to `onLine`; resolves when it ends. */
async function eachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let end;
    while ((end = rest.indexOf("\n")) !== -1) {
      onLine(rest.slice(0, end));
      rest = rest.slice(end + 1);
    }
  }
  if (rest) onLine(rest);
}

/** The last lines a child printed, bounded, for error messages. */
class Tail {
  #lines: string[] = [];
  add(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > 20) this.#lines.shift();
  }
  toString(): string {
    return this.#lines.join(" | ");
  }
}

/** Runs `command`, optionally pinned to `cpu` and with a raised open-file limit. */
function spawn(command: string[], cpu: number | null, nofile: number | null): Deno.ChildProcess {
  let argv = command;
  // exec keeps the pid, so /proc/<pid> is the server itself.
  if (nofile !== null) argv = ["sh", "-c", `ulimit -n ${nofile} && exec "$@"`, "sh", ...argv];
  if (cpu !== null) argv = ["taskset", "-c", String(cpu), ...argv];
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already ended */ }
}

/** Waits for `promise`, or gives up after `ms` and returns `undefined`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface RunSettings {
  ticksPerSecond: number;
  durationMs: number;
  warmupMs: number;
  pin: boolean;
  nofile: number | null;
}

/** Starts `server`, runs `scenario` against it with echo_bench, stops the server. */
async function measure(
  server: ServerSpec,
  scenario: Scenario,
  settings: RunSettings,
): Promise<Measurement> {
  const result: Measurement = {
    server: server.name,
    scenario: scenario.name,
    bench: null,
    problem: null,
    rssStartKiB: null,
    rssHeldKiB: null,
    rssEndKiB: null,
    perConnectionKiB: null,
    serverCpuPercent: null,
    clientCpuPercent: null,
    serverCpuUsPerMessage: null,
    serverExitCode: null,
  };
  const child = spawn([...server.command, "--port", "0"], settings.pin ? 0 : null, settings.nofile);
  const serverTail = new Tail();
  const listening = Promise.withResolvers<number>();
  const serverOutput = Promise.all([
    eachLine(child.stdout, (line) => serverTail.add(line)),
    eachLine(child.stderr, (line) => {
      serverTail.add(line);
      const match = /^Listening on .*:(\d+)$/.exec(line);
      if (match) listening.resolve(Number(match[1]));
    }),
  ]).finally(() => listening.reject(new Error("exited before listening")));
  const status = child.status;
  try {
    const port = await within(listening.promise, 30_000).catch(() => undefined);
    if (port === undefined) {
      result.problem = `server did not start: ${serverTail}`;
      return result;
    }
    result.rssStartKiB = await readRssKiB(child.pid);
    await runBench(port, scenario, settings, child.pid, result);
    result.rssEndKiB = await readRssKiB(child.pid);
    if (
      result.rssHeldKiB !== null && result.rssStartKiB !== null && result.bench &&
      result.bench.connectionsHeld > 0
    ) {
      result.perConnectionKiB = (result.rssHeldKiB - result.rssStartKiB) /
        result.bench.connectionsHeld;
    }
  } finally {
    kill(child, "SIGTERM");
    let ended = await within(status, 10_000);
    if (ended === undefined) {
      kill(child, "SIGKILL");
      ended = await status;
      result.problem ??= "server did not stop within 10 s of SIGTERM";
    }
    await serverOutput.catch(() => {});
    result.serverExitCode = ended.code;
    if (ended.code !== 0 && ended.signal === null) {
      result.problem ??= `server exited with code ${ended.code}: ${serverTail}`;
    }
  }
  return result;
}

async function runBench(
  port: number,
  scenario: Scenario,
  settings: RunSettings,
  serverPid: number,
  result: Measurement,
): Promise<void> {
  const args = [
    Deno.execPath(),
    "run",
    "--allow-net=127.0.0.1",
    `${ROOT}scripts/echo_bench.ts`,
    "--json",
    "--port",
    String(port),
    "--mode",
    scenario.mode,
    "--connections",
    String(scenario.connections),
    "--size",
    String(scenario.size),
    "--duration",
    `${settings.durationMs}ms`,
  ];
  if (scenario.mode !== "hold") args.push("--warmup", `${settings.warmupMs}ms`);
  const child = spawn(args, settings.pin ? 1 : null, settings.nofile);
  const tail = new Tail();
  let heldSample: Promise<void> = Promise.resolve();
  const cpu = new CpuWindow(serverPid, settings.ticksPerSecond);
  const output = Promise.all([
    eachLine(child.stdout, (line) => {
      let event: { event?: string };
      try {
        event = JSON.parse(line);
      } catch {
        tail.add(line);
        return;
      }
      if (event.event === "result") result.bench = event as unknown as BenchResult;
      if (event.event === "measuring") cpu.start();
      if (event.event === "draining") cpu.end();
      if (event.event === "holding") {
        // Sample late in the idle time, once the server has settled (and shrunk buffers).
        heldSample = new Promise((resolve) => setTimeout(resolve, settings.durationMs * 0.8))
          .then(() => readRssKiB(serverPid))
          .then((kib) => {
            result.rssHeldKiB = kib;
          });
      }
    }),
    eachLine(child.stderr, (line) => tail.add(line)),
  ]);
  // Connecting 5000 sockets can take a while on a loaded machine; a run never takes a minute more.
  const limit = settings.warmupMs + settings.durationMs + 60_000;
  let status = await within(child.status, limit);
  if (status === undefined) {
    kill(child, "SIGKILL");
    status = await child.status;
    result.problem = `echo_bench did not finish within ${limit / 1000} s`;
  }
  await output;
  await heldSample;
  result.clientCpuPercent = result.bench?.clientCpuPercent ?? null;
  const used = await cpu.result();
  if (used) {
    result.serverCpuPercent = used.percent;
    if (result.bench && result.bench.messages > 0) {
      result.serverCpuUsPerMessage = (used.seconds / result.bench.messages) * 1e6;
    }
  }
  if (result.bench === null) {
    result.problem ??= `echo_bench exited with code ${status.code}: ${tail}`;
  } else if (result.bench.errors.total > 0) {
    result.problem ??= `${result.bench.errors.total} errors: ${result.bench.firstError}`;
  }
}

/** One row of the table: a label and a figure taken from each measurement. */
interface Row {
  scenario: string;
  metric: string;
  value: (m: Measurement) => number | null;
}

function rowsFor(scenario: Scenario): Row[] {
  const b = (f: (r: BenchResult) => number | null | undefined) => (m: Measurement) =>
    m.bench ? f(m.bench) ?? null : null;
  const label = scenario.label;
  const errors: Row = {
    scenario: label,
    metric: "errors",
    value: b((r) => r.errors.total),
  };
  if (scenario.mode === "hold") {
    return [
      { scenario: label, metric: "held", value: b((r) => r.connectionsHeld) },
      {
        scenario: label,
        metric: "connect s",
        value: b((r) => r.connectMs / 1000),
      },
      {
        scenario: label,
        metric: "RSS idle MiB",
        value: (m) => m.rssStartKiB === null ? null : m.rssStartKiB / 1024,
      },
      {
        scenario: label,
        metric: "RSS held MiB",
        value: (m) => m.rssHeldKiB === null ? null : m.rssHeldKiB / 1024,
      },
      {
        scenario: label,
        metric: "KiB/conn",
        value: (m) => m.perConnectionKiB,
      },
      {
        scenario: label,
        metric: "p99 ms",
        value: b((r) => r.latencyMs?.p99),
      },
      errors,
    ];
  }
  const rows: Row[] = [
    {
      scenario: label,
      metric: "msg/s",
      value: b((r) => r.messagesPerSecond),
    },
    {
      scenario: label,
      metric: "MB/s",
      value: b((r) => r.megabytesPerSecond),
    },
  ];
  if (scenario.mode === "bulk") rows.reverse();
  else {
    for (const p of ["p50", "p90", "p99", "max"] as const) {
      rows.push({
        scenario: label,
        metric: `${p} ms`,
        value: b((r) => r.latencyMs?.[p]),
      });
    }
  }
  rows.push(
    { scenario: label, metric: "server CPU %", value: (m) => m.serverCpuPercent },
    { scenario: label, metric: "client CPU %", value: (m) => m.clientCpuPercent },
    { scenario: label, metric: "server CPU us/msg", value: (m) => m.serverCpuUsPerMessage },
    {
      scenario: label,
      metric: "RSS end MiB",
      value: (m) => m.rssEndKiB === null ? null : m.rssEndKiB / 1024,
    },
    errors,
  );
  return rows;
}

function figure(value: number | null, metric: string): string {
  if (value === null || !Number.isFinite(value)) return "-";
  if (metric === "errors" || metric === "held") return String(value);
  if (value >= 100) return Math.round(value).toString();
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(metric.endsWith("ms") ? 3 : 2);
}

/** The median of the known values (the mean of the middle two for an even count). */
function median(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (known.length === 0) return null;
  const middle = known.length >> 1;
  return known.length % 2 ? known[middle] : (known[middle - 1] + known[middle]) / 2;
}

/** Renders the table (medians over sweeps): a column per server, then ratios to the read/write loop. */
function formatTable(
  servers: readonly string[],
  scenarios: readonly Scenario[],
  measurements: readonly Measurement[],
): string[] {
  const ratios: [string, string][] = servers.filter((name) =>
    name !== "rw" && servers.includes("rw")
  )
    .map((name) => [name, "rw"]);
  if (servers.includes("mux") && servers.includes("pipeto")) ratios.push(["mux", "pipeto"]);
  const header = [
    "scenario",
    "metric",
    ...servers,
    ...ratios.map(([a, b]) => `${a}/${b}`),
  ];
  const table = [header];
  for (const scenario of scenarios) {
    let first = true;
    for (const row of rowsFor(scenario)) {
      const values = new Map(servers.map((s) => {
        const runs = measurements.filter((m) => m.server === s && m.scenario === scenario.name);
        return [s, median(runs.map(row.value))];
      }));
      table.push([
        first ? row.scenario : "",
        row.metric,
        ...servers.map((s) => figure(values.get(s)!, row.metric)),
        ...ratios.map(([a, b]) => {
          const x = values.get(a), y = values.get(b);
          return row.metric === "errors" || x == null || y == null || y === 0
            ? ""
            : (x / y).toFixed(2);
        }),
      ]);
      first = false;
    }
  }
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) =>
    row.map((cell, i) => i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
      .trimEnd()
  );
}

const USAGE = `Usage: deno task bench [options]

Benchmarks echo servers (each its own process) with scripts/echo_bench.ts.

Options:
  --only NAME        run only these servers and/or scenarios (repeatable):
                     servers mux, rw, pipeto, node, python; scenarios ${
  SCENARIOS.map((s) => s.name).join(", ")
}
                     (or a mode: pingpong, bulk)
  --duration TIME    measured time per scenario, and idle time of hold (default 5s)
  --warmup TIME      unmeasured load before each scenario (default 1s)
  --quick            a smoke run: --duration 1s --warmup 200ms
  --hold N           connections in the hold scenario (default 5000)
  --repeat N         sweeps over everything; the table shows medians (default 1)
  --no-pin           do not pin servers to CPU 0 and the load to CPU 1 with taskset
  --out FILE         also write every figure as JSON
  -h, --help         show this help`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    string: ["duration", "warmup", "out", "hold", "repeat"],
    boolean: ["quick", "no-pin", "help"],
    collect: ["only"],
    alias: { h: "help" },
  });
  if (flags.help) {
    printLine(USAGE);
    return EXIT_OK;
  }
  const durationMs = flags.duration !== undefined
    ? parseDuration(flags.duration, "--duration")
    : flags.quick
    ? 1000
    : 5000;
  const warmupMs = flags.warmup !== undefined
    ? parseDuration(flags.warmup, "--warmup", { allowZero: true })
    : flags.quick
    ? 200
    : 1000;
  const repeat = flags.repeat === undefined
    ? 1
    : parseCount(flags.repeat, "--repeat", { max: 100 });
  const holdCount = flags.hold === undefined
    ? 5000
    : parseCount(flags.hold, "--hold", { max: 100_000 });

  const notes: string[] = [];
  const deno = [Deno.execPath(), "run", "--allow-net=127.0.0.1"];
  const candidates: ServerSpec[] = [];
  const muxPath = `${ROOT}scripts/echo_server.ts`;
  if (await exists(muxPath)) {
    candidates.push({
      name: "mux",
      description: "scripts/echo_server.ts (the multiplexer)",
      command: [...deno, muxPath, "--quiet", ...await muxExtraFlags(deno, muxPath, holdCount)],
    });
  } else notes.push("mux skipped: scripts/echo_server.ts does not exist yet");
  candidates.push(
    {
      name: "rw",
      description: "per-connection read/write loop, 64 KiB buffer",
      command: [...deno, `${ROOT}scripts/bench/read_write_server.ts`],
    },
    {
      name: "pipeto",
      description: "per-connection conn.readable.pipeTo(conn.writable)",
      command: [...deno, `${ROOT}scripts/bench/pipe_to_server.ts`],
    },
  );
  const nodeVersion = await outputOf("node", ["--version"]);
  if (nodeVersion !== null) {
    candidates.push({
      name: "node",
      description: `Node ${nodeVersion} net, socket.pipe(socket)`,
      command: ["node", `${ROOT}scripts/bench/node_net_server.mjs`],
    });
  } else notes.push("node skipped: node is not installed");
  const pythonVersion = await outputOf("python3", ["--version"]);
  if (pythonVersion !== null) {
    candidates.push({
      name: "python",
      description: `${pythonVersion} asyncio Protocol (uvloop when installed)`,
      command: ["python3", `${ROOT}scripts/bench/python_asyncio_server.py`],
    });
  } else notes.push("python skipped: python3 is not installed");

  const serverNames = ["mux", "rw", "pipeto", "node", "python"];
  const modes = ["pingpong", "bulk"];
  for (const name of flags.only) {
    if (![...serverNames, ...modes, ...SCENARIOS.map((s) => s.name)].includes(name)) {
      throw new UsageError(`Cannot parse --only "${name}": not a server, scenario or mode`);
    }
  }
  const onlyServers = flags.only.filter((name) => serverNames.includes(name));
  const onlyScenarios = flags.only.filter((name) => !serverNames.includes(name));
  const servers = candidates.filter((s) =>
    onlyServers.length === 0 || onlyServers.includes(s.name)
  );
  const scenarios = SCENARIOS
    .filter((s) =>
      onlyScenarios.length === 0 || onlyScenarios.includes(s.mode) || onlyScenarios.includes(s.name)
    )
    .map((s) =>
      s.mode === "hold" ? { ...s, label: `hold x ${holdCount}`, connections: holdCount } : s
    );

  // Pinning needs two CPUs and a working taskset.
  const cpus = navigator.hardwareConcurrency;
  const pin = !flags["no-pin"] && cpus >= 2 && await succeeds("taskset", ["-c", "1", "true"]);
  if (!flags["no-pin"] && !pin) notes.push("not pinned: taskset is missing or fewer than 2 CPUs");
  // Each side of 5000 held connections needs as many descriptors, plus Deno's own.
  const limits = await openFileLimits();
  let nofile: number | null = null;
  const needed = holdCount + 512;
  if (limits && limits.soft < needed && scenarios.some((s) => s.mode === "hold")) {
    if (limits.hard >= needed) {
      nofile = needed;
      notes.push(`open-file limit raised from ${limits.soft} to ${needed} for the children`);
    } else {
      notes.push(
        `open-file limit ${limits.soft} (hard ${limits.hard}) is below ${needed}: ` +
          "hold will count the refused connections; raise the hard limit as root",
      );
    }
  }

  const ticksPerSecond = Number(await outputOf("getconf", ["CLK_TCK"])) || 100;
  const measurements: Measurement[] = [];
  const started = Date.now();
  for (let sweep = 1; sweep <= repeat; sweep++) {
    for (const scenario of scenarios) {
      for (const server of servers) {
        const m = await measure(server, scenario, {
          durationMs,
          warmupMs,
          pin,
          nofile,
          ticksPerSecond,
        });
        measurements.push(m);
        const r = m.bench;
        const summary = r === null
          ? "no result"
          : scenario.mode === "hold"
          ? `${r.connectionsHeld} held, ${m.perConnectionKiB?.toFixed(1) ?? "-"} KiB/conn`
          : `${Math.round(r.messagesPerSecond)} msg/s, ${r.megabytesPerSecond.toFixed(1)} MB/s` +
            (r.latencyMs ? `, p99 ${r.latencyMs.p99.toFixed(3)} ms` : "");
        printError(
          `${repeat > 1 ? `sweep ${sweep} ` : ""}${scenario.name.padEnd(13)} ${
            server.name.padEnd(7)
          } ` +
            summary + (m.problem ? ` (${m.problem})` : ""),
        );
      }
    }
  }

  const meta = {
    date: new Date(started).toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    node: nodeVersion,
    python: pythonVersion,
    cpus,
    pinned: pin,
    durationMs,
    warmupMs,
    repeat,
    openFileLimit: limits?.soft ?? null,
    servers: Object.fromEntries(servers.map((s) => [s.name, s.description])),
  };
  printLine(
    `deno ${meta.deno}, ${cpus} CPUs, ${pin ? "servers on CPU 0, load on CPU 1" : "not pinned"}, ` +
      `${durationMs / 1000} s per scenario after ${warmupMs / 1000} s warmup, ` +
      `${repeat > 1 ? `median of ${repeat} sweeps, ` : ""}` +
      `open-file limit ${meta.openFileLimit ?? "unknown"}`,
  );
  for (const server of servers) printLine(`  ${server.name.padEnd(7)} ${server.description}`);
  for (const note of notes) printLine(`  note: ${note}`);
  printLine("");
  for (const line of formatTable(servers.map((s) => s.name), scenarios, measurements)) {
    printLine(line);
  }
  printLine("");
  printLine("x/y columns divide the figures: above 1 is better for msg/s, MB/s and held,");
  printLine("below 1 is better for latency and memory. MB = 10^6 bytes echoed (one direction).");
  const problems = measurements.filter((m) => m.problem);
  for (const m of problems) printLine(`problem: ${m.server} ${m.scenario}: ${m.problem}`);
  if (flags.out !== undefined) {
    await Deno.writeTextFile(
      flags.out,
      JSON.stringify({ meta, notes, scenarios, measurements }, null, 2) + "\n",
    );
    printError(`wrote ${flags.out}`);
  }
  return problems.length > 0 ? EXIT_RUNTIME : EXIT_OK;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Flags the multiplexer needs to hold `holdCount` idle connections, if its --help has them. */
async function muxExtraFlags(deno: string[], path: string, holdCount: number): Promise<string[]> {
  const usage = await outputOf(deno[0], [...deno.slice(1), path, "--help"]) ?? "";
  const extra: string[] = [];
  if (usage.includes("--max-connections")) extra.push("--max-connections", String(holdCount * 2));
  return extra;
}

if (import.meta.main) runMain("bench", () => main(Deno.args));
