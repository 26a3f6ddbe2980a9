/**
 * Test fixture: run a script as a real subprocess, wait for a line it prints, stop it, and read
 * back everything it printed. Also: which real peers (socat, nc, curl, …) this machine has, and
 * the small socket and polling helpers every test file would otherwise write again.
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** Everything a finished script printed, and how it ended. */
export interface ScriptResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Gathers a stream's text as it arrives and lets a test wait for a line matching a pattern. */
class TextCollector {
  text = "";
  finished = false;
  #waiters = new Set<() => void>();
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#collect(stream);
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      this.text += chunk;
      for (const wake of this.#waiters) wake();
    }
    this.finished = true;
    for (const wake of this.#waiters) wake();
  }

  /** Resolves with the first match of `pattern` in a complete line; rejects when the stream ends. */
  async waitFor(pattern: RegExp, ended: () => boolean): Promise<RegExpMatchArray> {
    while (true) {
      const match = completeLines(this.text).match(pattern);
      if (match) return match;
      if (this.finished || ended()) {
        throw new Error(`Stream ended without a line matching ${pattern}`);
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.add(resolve);
      await promise;
      this.#waiters.delete(resolve);
    }
  }
}

function completeLines(text: string): string {
  return text.slice(0, text.lastIndexOf("\n") + 1);
}

/** A running script; `await using` stops it (SIGKILL if still running) when the test ends. */
export class ScriptProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stdout: TextCollector;
  readonly stderr: TextCollector;
  #ended = false;
  readonly #status: Promise<Deno.CommandStatus>;

  constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.stdout = new TextCollector(child.stdout);
    this.stderr = new TextCollector(child.stderr);
    this.#status = child.status.then((status) => {
      this.#ended = true;
      return status;
    });
  }

  /** Waits (at most `timeoutMs`) for a stderr line that matches, e.g. the listening line. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return this.#withTimeout(this.stderr, pattern, timeoutMs);
  }

  /** Waits (at most `timeoutMs`) for a stdout line that matches. */
  waitForStdout(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return this.#withTimeout(this.stdout, pattern, timeoutMs);
  }

  /** Waits for `Listening on <addr>` and returns the port the script really bound. */
  async listeningPort(timeoutMs = 10_000): Promise<number> {
    const match = await this.waitForStderr(/^Listening on .*:(\d+)$/m, timeoutMs);
    return Number(match[1]);
  }

  async #withTimeout(
    collector: TextCollector,
    pattern: RegExp,
    timeoutMs: number,
  ): Promise<RegExpMatchArray> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`No line matching ${pattern} after ${timeoutMs} ms:\n${this.describe()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([collector.waitFor(pattern, () => this.#ended), timeout]);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("Stream ended")) {
        throw new Error(`${error.message}:\n${this.describe()}`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes text to the script's stdin (spawned with `stdin: "piped"`). */
  async write(text: string): Promise<void> {
    const writer = this.child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(text));
    } finally {
      writer.releaseLock();
    }
  }

  /** Sends `signal` (if still running) and waits for the script to end. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<ScriptResult> {
    if (!this.#ended) {
      try {
        this.child.kill(signal);
      } catch { /* it ended between the check and the kill */ }
    }
    return await this.result();
  }

  /** Waits for the script to end by itself and returns what it printed. */
  async result(): Promise<ScriptResult> {
    const status = await this.#status;
    await Promise.all([this.stdout.done, this.stderr.done]);
    return {
      code: status.code,
      signal: status.signal,
      stdout: this.stdout.text,
      stderr: this.stderr.text,
    };
  }

  describe(): string {
    return `stdout:\n${this.stdout.text}\nstderr:\n${this.stderr.text}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.child.stdin?.close();
    } catch { /* not piped, or already closed */ }
    await this.stop("SIGKILL");
  }
}

/** Options for {@linkcode spawnScript}. */
export interface SpawnOptions {
  /** Deno permission flags, e.g. `["--allow-net=127.0.0.1"]`. */
  permissions: string[];
  /** Give the script a stdin to write to. @default {false} */
  stdin?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Starts `scripts/<name>` with `deno run <permissions> <script> <args>`. */
export function spawnScript(name: string, args: string[], options: SpawnOptions): ScriptProcess {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", ...options.permissions, new URL(`scripts/${name}`, ROOT).pathname, ...args],
    cwd: ROOT.pathname,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  });
  return new ScriptProcess(command.spawn());
}

/** Runs a script to completion (killed after `timeoutMs`) and returns what it printed. */
export async function runScript(
  name: string,
  args: string[],
  options: SpawnOptions & { timeoutMs?: number },
): Promise<ScriptResult> {
  await using script = spawnScript(name, args, options);
  const timer = setTimeout(() => script.stop("SIGKILL"), options.timeoutMs ?? 20_000);
  try {
    return await script.result();
  } finally {
    clearTimeout(timer);
  }
}

const peerCache = new Map<string, boolean>();

/**
 * Whether a real peer program is installed. When it is not, prints once why the tests that need
 * it are skipped; use as `ignore: !hasPeer("socat")`.
 */
export function hasPeer(program: string): boolean {
  let found = peerCache.get(program);
  if (found === undefined) {
    const { success } = new Deno.Command("sh", {
      args: ["-c", `command -v ${program}`],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    found = success;
    peerCache.set(program, found);
    if (!found) {
      console.warn(`skipping tests that need ${program}: it is not installed (apt-get install it)`);
    }
  }
  return found;
}

/** Runs a peer program to completion with optional stdin, killed after `timeoutMs`. */
export async function runPeer(
  program: string,
  args: string[],
  options: { stdin?: string | Uint8Array; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
  }, options.timeoutMs ?? 10_000);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      const input = typeof options.stdin === "string"
        ? new TextEncoder().encode(options.stdin)
        : options.stdin;
      await writer.write(input);
      await writer.close();
    }
    const output = await child.output();
    return {
      code: output.code,
      stdout: output.stdout,
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

let ipv6Loopback: boolean | undefined;

/**
 * Whether this machine can listen on `[::1]`. When it cannot, prints once why the IPv6 tests
 * are skipped; use as `ignore: !hasIPv6Loopback()`.
 */
export function hasIPv6Loopback(): boolean {
  if (ipv6Loopback === undefined) {
    try {
      Deno.listen({ hostname: "::1", port: 0 }).close();
      ipv6Loopback = true;
    } catch {
      ipv6Loopback = false;
      console.warn("skipping tests that need IPv6: this machine has no [::1] loopback");
    }
  }
  return ipv6Loopback;
}

/** Whether this process runs as root (raw sockets, binding low ports). */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** A peer program that prints the port it bound on its first line. */
export interface PortPeer extends AsyncDisposable {
  port: number;
  /** Everything it printed after the first line, once it has exited. */
  rest(): Promise<string>;
}

/** Starts `program args` and waits for the port it prints on its first line. */
export async function startPortPeer(program: string, args: string[]): Promise<PortPeer> {
  const child = new Deno.Command(program, { args, stdout: "piped", stderr: "null" }).spawn();
  const stdout = new TextCollector(child.stdout);
  let ended = false;
  const status = child.status.finally(() => ended = true);
  const [line] = await stdout.waitFor(/^.*\n/, () => ended);
  return {
    port: Number(line.trim()),
    async rest() {
      await status;
      await stdout.done;
      return stdout.text.slice(line.length);
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* already ended */ }
      await status;
      await stdout.done;
    },
  };
}

/** A port that was free a moment ago, for a program that cannot be told to use port 0. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** One `--json` line of a script, parsed (its fields differ from event to event). */
// deno-lint-ignore no-explicit-any
export type JsonEvent = Record<string, any>;

/** Parses every non-empty line of a script's `--json` output. */
export function jsonLines(text: string): JsonEvent[] {
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

/** Polls `condition` (a state, never a duration) every 10 ms until it holds, or throws after
 * `timeoutMs` naming `what` was awaited. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads exactly `length` bytes from `conn`; throws if the stream ends first. */
export async function readExactly(
  conn: Deno.Conn,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = new Uint8Array(length);
  for (let n = 0; n < length;) {
    const read = await conn.read(bytes.subarray(n));
    if (read === null) throw new Error(`End of stream after ${n} of ${length} bytes`);
    n += read;
  }
  return bytes;
}

/** Reads until EOF (a reset also ends it, as does a close of `conn` by this side); returns what
 * arrived. */
export async function readToEnd(conn: Deno.Conn): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        break;
      }
      throw error;
    }
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}
