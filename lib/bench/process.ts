/**
 * Child processes for a benchmark: start one pinned to a CPU with a raised open-file limit,
 * read its output line by line, keep the last lines for error messages, stop it with a
 * deadline, and run small helper programs for their output.
 * @module
 */
import { deadline } from "@std/async/deadline";

/** Options for {@linkcode spawnChild}. */
export interface SpawnOptions {
  /** Pin the child to this CPU with `taskset`. @default {null} */
  cpu?: number | null;
  /** Raise the child's open-file limit to this with `ulimit -n`. @default {null} */
  nofile?: number | null;
  /** Working directory. @default {Deno.cwd()} */
  cwd?: string;
}

/**
 * Runs `command` with stdout and stderr piped and `NO_COLOR=1`. With `cpu` or `nofile` it runs
 * under `taskset` or `sh -c 'ulimit -n N && exec …'`; `exec` keeps the pid, so `/proc/<pid>` is
 * the program itself.
 *
 * @example
 * ```ts
 * import { linesOf, spawnChild } from "./process.ts";
 * const child = spawnChild(["sh", "-c", "echo ready"]);
 * const lines: string[] = [];
 * await Promise.all([linesOf(child.stdout, (line) => lines.push(line)), child.stderr.cancel()]);
 * if ((await child.status).code !== 0 || lines[0] !== "ready") throw new Error(lines.join());
 * ```
 */
export function spawnChild(
  command: readonly string[],
  options: SpawnOptions = {},
): Deno.ChildProcess {
  let argv = [...command];
  const { cpu = null, nofile = null } = options;
  if (nofile !== null) argv = ["sh", "-c", `ulimit -n ${nofile} && exec "$@"`, "sh", ...argv];
  if (cpu !== null) argv = ["taskset", "-c", String(cpu), ...argv];
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/**
 * Sends `signal` to `child` and waits for it to end; after `graceMs` it sends SIGKILL. Returns
 * its status and whether it had to be killed.
 *
 * @example
 * ```ts
 * import { spawnChild, stopChild } from "./process.ts";
 * const child = spawnChild(["sleep", "30"]);
 * await Promise.all([child.stdout.cancel(), child.stderr.cancel()]);
 * const { status, killed } = await stopChild(child, "SIGTERM", 5000);
 * if (status.signal !== "SIGTERM" || killed) throw new Error(JSON.stringify(status));
 * ```
 */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal,
  graceMs: number,
): Promise<{ status: Deno.CommandStatus; killed: boolean }> {
  signalChild(child, signal);
  try {
    return { status: await deadline(child.status, graceMs), killed: false };
  } catch {
    signalChild(child, "SIGKILL");
    return { status: await child.status, killed: true };
  }
}

/**
 * Sends `signal` to `child`, ignoring that it has ended already.
 *
 * @example
 * ```ts
 * import { signalChild, spawnChild } from "./process.ts";
 * const child = spawnChild(["true"]);
 * await Promise.all([child.stdout.cancel(), child.stderr.cancel(), child.status]);
 * signalChild(child, "SIGTERM"); // no error: it has ended
 * ```
 */
export function signalChild(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already ended */ }
}

/**
 * Splits a byte stream into lines and hands each to `onLine`; resolves when it ends.
 *
 * @example
 * ```ts
 * import { linesOf } from "./process.ts";
 * const lines: string[] = [];
 * await linesOf(ReadableStream.from([new TextEncoder().encode("a\nb")]), (l) => lines.push(l));
 * if (lines.join() !== "a,b") throw new Error(lines.join());
 * ```
 */
export async function linesOf(
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

/**
 * The last lines a child printed, bounded, for error messages.
 *
 * @example
 * ```ts
 * import { Tail } from "./process.ts";
 * const tail = new Tail(2);
 * for (const line of ["a", "b", "c"]) tail.add(line);
 * if (`${tail}` !== "b | c") throw new Error(`${tail}`);
 * ```
 */
export class Tail {
  readonly #lines: string[] = [];
  readonly #limit: number;

  /**
   * Keeps the last `limit` lines.
   *
   * @param limit How many lines to keep.
   */
  constructor(limit = 20) {
    this.#limit = limit;
  }

  /** Keeps `line`, forgetting the oldest beyond the limit. */
  add(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.#limit) this.#lines.shift();
  }

  /** The lines kept, joined with ` | `. */
  toString(): string {
    return this.#lines.join(" | ");
  }
}

/**
 * Runs `program args` and returns its trimmed stdout, or `null` when it cannot be run or fails.
 *
 * @example
 * ```ts
 * import { outputOf } from "./process.ts";
 * if (await outputOf("echo", ["hi"]) !== "hi") throw new Error("echo failed");
 * if (await outputOf("no-such-program-here", []) !== null) throw new Error("ran a ghost");
 * ```
 */
export async function outputOf(program: string, args: readonly string[]): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command(program, { args: [...args], stderr: "null" })
      .output();
    return success ? new TextDecoder().decode(stdout).trim() : null;
  } catch {
    return null;
  }
}
