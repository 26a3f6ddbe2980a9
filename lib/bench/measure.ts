/**
 * One server in one scenario: start the server as its own process on a free port, drive it
 * with the load client (another process, reporting on its `--json` lines), sample the server's
 * memory and CPU at the moments the client announces, stop the server, and gather it all in a
 * {@linkcode Measurement}. Each scenario gets a fresh server, so memory starts from idle.
 * @module
 */
import { deadline } from "@std/async/deadline";
import { delay } from "@std/async/delay";
import { parseBenchEvent } from "./events.ts";
import { linesOf, spawnChild, stopChild, Tail } from "./process.ts";
import { CpuWindow, readRssKiB } from "./proc_stats.ts";
import type { BenchResult } from "./result.ts";
import type { Scenario, ServerSpec } from "./scenarios.ts";

/** One server in one scenario. */
export interface Measurement {
  /** The server's name. */
  server: string;
  /** The scenario's name. */
  scenario: string;
  /** What the load client reported, or `null` when it did not report. */
  bench: BenchResult | null;
  /** Why there is no result, or what went wrong around it (server crash, client failure). */
  problem: string | null;
  /** Server VmRSS in KiB, idle after its start. */
  rssStartKiB: number | null;
  /** Server VmRSS in KiB while holding (hold only). */
  rssHeldKiB: number | null;
  /** Server VmRSS in KiB after the load. */
  rssEndKiB: number | null;
  /** (held - start) / connections held, hold only. */
  perConnectionKiB: number | null;
  /**
   * Server CPU use over the measured interval (pingpong, bulk), in % of one CPU. A client near
   * 100 % caps every server at the same figure: compare the servers' CPU per message then.
   */
  serverCpuPercent: number | null;
  /** The load client's CPU use over the measured interval, in % of one CPU. */
  clientCpuPercent: number | null;
  /** Server CPU time per message (bulk: per `size` chunk), in microseconds. */
  serverCpuUsPerMessage: number | null;
  /** The server's exit code after SIGTERM. */
  serverExitCode: number | null;
}

/** How {@linkcode measure} runs. */
export interface MeasureSettings {
  /**
   * The load client's command, to which `--json --port P --mode M --connections N --size S
   * --duration D [--warmup W]` are appended.
   */
  client: readonly string[];
  /** Measured time per scenario (hold: the idle time), in ms. */
  durationMs: number;
  /** Unmeasured load before each scenario (not in hold), in ms. */
  warmupMs: number;
  /** Pin the server to CPU 0 and the client to CPU 1. */
  pin: boolean;
  /** Open-file limit for both processes, or `null` to inherit. */
  nofile: number | null;
  /** From `clockTicksPerSecond()`. */
  ticksPerSecond: number;
  /** Working directory of both processes. */
  cwd?: string;
}

/** The server's listening line; every server under test prints it on stderr. */
const LISTENING = /^Listening on .*:(\d+)$/;

/**
 * Starts `server`, runs `scenario` against it with the load client, stops the server.
 *
 * @example The read/write fixture under a tiny ping-pong load
 * ```ts
 * import { measure } from "./measure.ts";
 * const deno = [Deno.execPath(), "run", "--allow-net=127.0.0.1"];
 * const root = new URL("../../", import.meta.url).pathname;
 * const m = await measure(
 *   { name: "rw", description: "", command: [...deno, `${root}scripts/bench/read_write_server.ts`] },
 *   { name: "pingpong-1", label: "", mode: "pingpong", connections: 1, size: 64 },
 *   {
 *     client: [...deno, `${root}scripts/echo_bench.ts`],
 *     durationMs: 100, warmupMs: 0, pin: false, nofile: null, ticksPerSecond: 100,
 *   },
 * );
 * if (m.problem !== null || !(m.bench!.messages > 0)) throw new Error(m.problem ?? "no messages");
 * ```
 */
export async function measure(
  server: ServerSpec,
  scenario: Scenario,
  settings: MeasureSettings,
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
  const child = spawnChild([...server.command, "--port", "0"], {
    cpu: settings.pin ? 0 : null,
    nofile: settings.nofile,
    cwd: settings.cwd,
  });
  const serverTail = new Tail();
  const listening = Promise.withResolvers<number>();
  const serverOutput = Promise.all([
    linesOf(child.stdout, (line) => serverTail.add(line)),
    linesOf(child.stderr, (line) => {
      serverTail.add(line);
      const match = LISTENING.exec(line);
      if (match) listening.resolve(Number(match[1]));
    }),
  ]).finally(() => listening.reject(new Error("exited before listening")));
  try {
    const port = await deadline(listening.promise, 30_000).catch(() => undefined);
    if (port === undefined) {
      result.problem = `server did not start: ${serverTail}`;
      return result;
    }
    result.rssStartKiB = await readRssKiB(child.pid);
    await runClient(port, scenario, settings, child.pid, result);
    result.rssEndKiB = await readRssKiB(child.pid);
    const held = result.bench?.connectionsHeld ?? 0;
    if (result.rssHeldKiB !== null && result.rssStartKiB !== null && held > 0) {
      result.perConnectionKiB = (result.rssHeldKiB - result.rssStartKiB) / held;
    }
  } finally {
    const { status, killed } = await stopChild(child, "SIGTERM", 10_000);
    if (killed) result.problem ??= "server did not stop within 10 s of SIGTERM";
    await serverOutput.catch(() => {});
    result.serverExitCode = status.code;
    if (status.code !== 0 && status.signal === null) {
      result.problem ??= `server exited with code ${status.code}: ${serverTail}`;
    }
  }
  return result;
}

/** Runs the load client against `port` and fills in what it and the server's samples say. */
async function runClient(
  port: number,
  scenario: Scenario,
  settings: MeasureSettings,
  serverPid: number,
  result: Measurement,
): Promise<void> {
  const args = [
    ...settings.client,
    "--json",
    ...["--port", String(port), "--mode", scenario.mode],
    ...["--connections", String(scenario.connections), "--size", String(scenario.size)],
    ...["--duration", `${settings.durationMs}ms`],
  ];
  if (scenario.mode !== "hold") args.push("--warmup", `${settings.warmupMs}ms`);
  const child = spawnChild(args, {
    cpu: settings.pin ? 1 : null,
    nofile: settings.nofile,
    cwd: settings.cwd,
  });
  const tail = new Tail();
  let heldSample: Promise<void> = Promise.resolve();
  const cpu = new CpuWindow(serverPid, settings.ticksPerSecond);
  const output = Promise.all([
    linesOf(child.stdout, (line) => {
      let event;
      try {
        event = parseBenchEvent(line);
      } catch (error) {
        tail.add(error instanceof SyntaxError ? `${line} (${error.message})` : line);
        return;
      }
      if (event.event === "result") result.bench = event.result;
      else if (event.event === "measuring") cpu.start();
      else if (event.event === "draining") cpu.end();
      else if (event.event === "holding") {
        // Sample late in the idle time, once the server has settled (and shrunk buffers).
        heldSample = delay(settings.durationMs * 0.8)
          .then(() => readRssKiB(serverPid))
          .then((kib: number | null) => {
            result.rssHeldKiB = kib;
          });
      }
    }),
    linesOf(child.stderr, (line) => tail.add(line)),
  ]);
  // Connecting 5000 sockets can take a while on a loaded machine; a run never takes a minute more.
  const limitMs = settings.warmupMs + settings.durationMs + 60_000;
  let status: Deno.CommandStatus;
  try {
    status = await deadline(child.status, limitMs);
  } catch {
    status = (await stopChild(child, "SIGKILL", 0)).status;
    result.problem = `the load client did not finish within ${limitMs / 1000} s`;
  }
  await output;
  await heldSample;
  const bench = result.bench;
  result.clientCpuPercent = bench?.clientCpuPercent ?? null;
  const used = await cpu.result();
  if (used) {
    result.serverCpuPercent = used.percent;
    if (bench && bench.messages > 0) {
      result.serverCpuUsPerMessage = (used.seconds / bench.messages) * 1e6;
    }
  }
  if (bench === null) {
    result.problem ??= `the load client exited with code ${status.code}: ${tail}`;
  } else if (bench.errors.total > 0) {
    result.problem ??= `${bench.errors.total} errors: ${bench.firstError}`;
  }
}
