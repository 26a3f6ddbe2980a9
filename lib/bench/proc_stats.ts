/**
 * What a benchmark reads about a process from Linux's `/proc` and the shell: resident memory,
 * CPU time between two moments, clock ticks per second and open-file limits. Deno reads
 * `/proc` only with `--allow-all`, so `cat` reads it (`--allow-run` is needed anyway); every
 * reader returns `null` when it cannot tell.
 * @module
 */
import { outputOf } from "./process.ts";

/**
 * A process's resident memory (VmRSS) in KiB, or `null`.
 *
 * @example
 * ```ts
 * import { readRssKiB } from "./proc_stats.ts";
 * const kib = await readRssKiB(Deno.pid);
 * if (kib !== null && kib <= 0) throw new Error(`${kib}`);
 * ```
 */
export async function readRssKiB(pid: number): Promise<number | null> {
  const status = await outputOf("cat", [`/proc/${pid}/status`]);
  const match = status === null ? null : /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) : null;
}

/**
 * The CPU time (user + system) a process has used, in clock ticks, or `null`.
 *
 * @example
 * ```ts
 * import { readCpuTicks } from "./proc_stats.ts";
 * const ticks = await readCpuTicks(Deno.pid);
 * if (ticks !== null && !(ticks >= 0)) throw new Error(`${ticks}`);
 * ```
 */
export async function readCpuTicks(pid: number): Promise<number | null> {
  const stat = await outputOf("cat", [`/proc/${pid}/stat`]);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat?.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields && fields.length > 12 ? Number(fields[11]) + Number(fields[12]) : null;
}

/**
 * Clock ticks per second (`getconf CLK_TCK`), 100 when it cannot tell.
 *
 * @example
 * ```ts
 * import { clockTicksPerSecond } from "./proc_stats.ts";
 * if (!(await clockTicksPerSecond() > 0)) throw new Error("no ticks");
 * ```
 */
export async function clockTicksPerSecond(): Promise<number> {
  return Number(await outputOf("getconf", ["CLK_TCK"])) || 100;
}

/**
 * A process's CPU time between two moments: {@linkcode CpuWindow.start} and
 * {@linkcode CpuWindow.end} take samples (the first call of each counts), and
 * {@linkcode CpuWindow.result} waits for both.
 *
 * @example This process's own CPU use
 * ```ts
 * import { clockTicksPerSecond, CpuWindow } from "./proc_stats.ts";
 * const window = new CpuWindow(Deno.pid, await clockTicksPerSecond());
 * window.start();
 * await new Promise((resolve) => setTimeout(resolve, 20));
 * window.end();
 * const used = await window.result();
 * if (used !== null && !(used.percent >= 0)) throw new Error(JSON.stringify(used));
 * ```
 */
export class CpuWindow {
  readonly #pid: number;
  readonly #ticksPerSecond: number;
  #start: Promise<[number | null, number]> | null = null;
  #end: Promise<[number | null, number]> | null = null;

  /**
   * Watches `pid`.
   *
   * @param pid The process to watch.
   * @param ticksPerSecond From {@linkcode clockTicksPerSecond}.
   */
  constructor(pid: number, ticksPerSecond: number) {
    this.#pid = pid;
    this.#ticksPerSecond = ticksPerSecond;
  }

  async #sample(): Promise<[number | null, number]> {
    return [await readCpuTicks(this.#pid), performance.now()];
  }

  /** Takes the first sample (once). */
  start(): void {
    this.#start ??= this.#sample();
  }

  /** Takes the second sample (once, and only after a start). */
  end(): void {
    if (this.#start) this.#end ??= this.#sample();
  }

  /** The CPU seconds used and the use in % of one CPU, or `null`. */
  async result(): Promise<{ seconds: number; percent: number } | null> {
    if (!this.#start || !this.#end) return null;
    const [[ticks0, t0], [ticks1, t1]] = await Promise.all([this.#start, this.#end]);
    if (ticks0 === null || ticks1 === null || t1 <= t0) return null;
    const seconds = (ticks1 - ticks0) / this.#ticksPerSecond;
    return { seconds, percent: (seconds / ((t1 - t0) / 1000)) * 100 };
  }
}

/**
 * The soft and hard open-file limits that children inherit, or `null`.
 *
 * @example
 * ```ts
 * import { openFileLimits } from "./proc_stats.ts";
 * const limits = await openFileLimits();
 * if (limits !== null && limits.soft > limits.hard) throw new Error(JSON.stringify(limits));
 * ```
 */
export async function openFileLimits(): Promise<{ soft: number; hard: number } | null> {
  const output = await outputOf("sh", ["-c", "ulimit -Sn; ulimit -Hn"]);
  const match = output === null ? null : /^(\d+|unlimited)\s+(\d+|unlimited)$/.exec(output);
  if (!match) return null;
  const value = (text: string) => text === "unlimited" ? Infinity : Number(text);
  return { soft: value(match[1]), hard: value(match[2]) };
}
