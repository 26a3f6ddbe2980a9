/**
 * Test fixture for the fault-injection suite (`tests/fault_*_test.ts`): start a server as a real
 * subprocess (behind a wrapper that changes its limits or its stdout before `exec`, so the pid
 * stays the server's), watch its state through `/proc` and `ss` instead of sleeping, attack it
 * with raw peers (python3 where Deno cannot express the fault: `SO_LINGER` 0, a non-UTF-8
 * abstract Unix address, half a ClientHello), and check that it still serves a fresh client.
 * @module
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { Collector, hex, python } from "./_fault_peers.ts";
import { readToEnd, waitUntil } from "./_process.ts";
import type { TestCertificates } from "./_tls.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How a server is talked to: what "a fresh client is served" means for it. */
export type ServerKind = "echo" | "greeting" | "http" | "datagram" | "broker";

/** One server under attack. */
export interface ServerSpec {
  /** The file under `scripts/`. */
  readonly script: string;
  readonly kind: ServerKind;
  /** Flags that make it print nothing per event (empty when it has none or it must log). */
  readonly quiet: readonly string[];
  /** Hosts it needs net access to besides where it listens. */
  readonly alsoNet?: readonly string[];
  /** A relay: it listens with `--listen ADDR` and relays to an echo server (`--to`) that the
   * fixture starts, so that to its clients it is an echo server. */
  readonly relay?: boolean;
  /** It runs with `--proxy-protocol`: every client the fixture opens (but
   * {@linkcode FaultServer.connectPlain}'s) sends a PROXY v1 header first. */
  readonly proxyProtocol?: boolean;
  /** It runs with `--workers N`: N threads, each with its own accept loop on one port, each
   * loading the script and lib/ again (which takes `--allow-read` of both). */
  readonly workers?: number;
}

/** scripts/echo_server.ts */
export const ECHO: ServerSpec = { script: "echo_server.ts", kind: "echo", quiet: ["--quiet"] };
/** scripts/tcp_server.ts */
export const GREETING: ServerSpec = {
  script: "tcp_server.ts",
  kind: "greeting",
  quiet: ["--quiet"],
};
/** scripts/http2_server.ts: its HTTP engine runs on a private loopback port. */
export const HTTP2: ServerSpec = {
  script: "http2_server.ts",
  kind: "http",
  quiet: ["--quiet"],
  alsoNet: ["127.0.0.1"],
};
/** scripts/udp_receive.ts: logs every datagram, the only sign that it received one. */
export const UDP: ServerSpec = { script: "udp_receive.ts", kind: "datagram", quiet: [] };
/** scripts/chat_server.ts, in its default broker mode. */
export const CHAT: ServerSpec = { script: "chat_server.ts", kind: "broker", quiet: ["--quiet"] };
/** scripts/tcp_relay.ts, in front of an echo_server.ts. */
export const RELAY: ServerSpec = {
  script: "tcp_relay.ts",
  kind: "echo",
  quiet: ["--quiet"],
  relay: true,
};

/** The servers that accept connections. */
export const STREAM_SERVERS: readonly ServerSpec[] = [ECHO, GREETING, HTTP2, CHAT, RELAY];
/** Every server. */
export const ALL_SERVERS: readonly ServerSpec[] = [...STREAM_SERVERS, UDP];

/** scripts/echo_server.ts --proxy-protocol: its connections reach the echo through a second
 * accept path (lib/net/proxy_listener.ts), which reads headers off the accept loop. */
export const PROXIED_ECHO: ServerSpec = { ...ECHO, proxyProtocol: true };
/** The servers that take `--workers`, with two workers each. */
export const WORKER_SERVERS: readonly ServerSpec[] = [ECHO, GREETING, HTTP2].map((spec) => ({
  ...spec,
  workers: 2,
}));

/** The spec as a test title names it: the script and the flags that make it another server. */
export function specName(spec: ServerSpec): string {
  const flags = [
    ...spec.proxyProtocol ? ["--proxy-protocol"] : [],
    ...spec.workers === undefined ? [] : ["--workers", `${spec.workers}`],
  ];
  return [spec.script, ...flags].join(" ");
}

/** Whether `spec` runs the same script as `other`, whatever its flags. */
export function sameScript(spec: ServerSpec, other: ServerSpec): boolean {
  return spec.script === other.script;
}

/** Where a server listens: a loopback host (port 0), or a Unix socket path. */
export type Endpoint = { hostname: string } | { path: string };

/** Options for {@linkcode FaultServer.start}. */
export interface StartOptions {
  /** @default {{ hostname: "127.0.0.1" }} */
  endpoint?: Endpoint;
  /** Flags after the endpoint's; the spec's quiet flags are added unless `verbose`. */
  args?: string[];
  /** Keep the per-event log. @default {false} */
  verbose?: boolean;
  /** Extra Deno permissions, e.g. `--allow-read` for a file a flag names. */
  permissions?: string[];
  /** Serve TLS with these certificates. */
  tls?: TestCertificates;
  /** A command that sets something up and `exec`s the rest (`prlimit --nofile=64:64 --`). */
  wrapper?: string[];
  /** `stall`: nobody reads stdout until {@linkcode FaultServer.unstall}; `elsewhere`: the
   * wrapper sent it somewhere else (`>/dev/full`). @default {"collect"} */
  stdout?: "collect" | "stall" | "elsewhere";
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** How a server ended. */
export interface ServerResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** From the stop signal to the exit. */
  elapsedMs: number;
}

/** A fresh client got no answer at all: closed, reset, or refused at a limit. */
class Refused extends Error {}

/** A server under test, running as a subprocess; `await using` kills it if still running. */
export class FaultServer implements AsyncDisposable {
  readonly spec: ServerSpec;
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  readonly stderr: Collector;
  readonly tls: TestCertificates | undefined;
  /** A relay's echo server. */
  readonly upstream: FaultServer | undefined;
  #stdout: Collector | null = null;
  #ended = false;
  #status: Promise<Deno.CommandStatus>;
  /** `127.0.0.1:PORT`, `[::1]:PORT` or `unix:PATH`, as python3 peers take it. */
  target = "";
  hostname = "127.0.0.1";
  port = 0;
  path: string | undefined;
  #freshClients = 0;

  private constructor(
    spec: ServerSpec,
    child: Deno.ChildProcess,
    tls?: TestCertificates,
    upstream?: FaultServer,
  ) {
    this.spec = spec;
    this.upstream = upstream;
    this.child = child;
    this.pid = child.pid;
    this.tls = tls;
    this.stderr = new Collector(child.stderr);
    this.#status = child.status.finally(() => this.#ended = true);
  }

  /** Starts `spec` and waits for its `Listening on` line. */
  static async start(spec: ServerSpec, options: StartOptions = {}): Promise<FaultServer> {
    const endpoint = options.endpoint ?? { hostname: "127.0.0.1" };
    const upstream = spec.relay ? await FaultServer.start(ECHO) : undefined;
    const net = ["path" in endpoint ? `unix:${endpoint.path}` : bracket(endpoint.hostname)];
    const args: string[] = [];
    const permissions: string[] = [];
    if (upstream !== undefined) {
      const listen = "path" in endpoint ? `unix:${endpoint.path}` : `${net[0]}:0`;
      args.push("--listen", listen, "--to", upstream.target);
      net.push(upstream.hostname);
    } else if ("path" in endpoint) {
      args.push("--unix", endpoint.path);
    } else {
      args.push("--host", endpoint.hostname, "--port", "0");
    }
    const read: string[] = [];
    if ("path" in endpoint) read.push(endpoint.path);
    if (spec.proxyProtocol) args.push("--proxy-protocol");
    if (spec.workers !== undefined) {
      args.push("--workers", `${spec.workers}`);
      read.push(`${ROOT}lib`, `${ROOT}scripts/${spec.script}`);
    }
    if (options.tls) {
      const { certFile, keyFile } = options.tls;
      args.push(...await tlsFlags(spec), "--cert", certFile, "--key", keyFile);
      read.push(certFile, keyFile);
    }
    for (const host of spec.alsoNet ?? []) if (!net.includes(host)) net.push(host);
    permissions.push(`--allow-net=${net.join(",")}`);
    if (read.length > 0) permissions.push(`--allow-read=${read.join(",")}`);
    if ("path" in endpoint) permissions.push(`--allow-write=${endpoint.path}`);
    permissions.push(...options.permissions ?? []);
    if (!options.verbose) args.push(...spec.quiet);
    args.push(...options.args ?? []);
    const deno = [Deno.execPath(), "run", ...permissions, `${ROOT}scripts/${spec.script}`, ...args];
    const [program, ...rest] = [...options.wrapper ?? [], ...deno];
    const child = new Deno.Command(program, {
      args: rest,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    const server = new FaultServer(spec, child, options.tls, upstream);
    if ((options.stdout ?? "collect") === "collect") server.unstall();
    try {
      const [, address] = await server.waitForStderr(/^Listening on (.+)$/m);
      server.#parseAddress(address);
    } catch (error) {
      await server[Symbol.asyncDispose]();
      throw error;
    }
    return server;
  }

  #parseAddress(address: string): void {
    if (address.startsWith("unix:")) {
      this.path = address.slice("unix:".length);
      this.target = address;
      return;
    }
    const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
    if (!match) throw new Error(`Cannot read the address in "Listening on ${address}"`);
    [this.hostname, this.port] = [match[1], Number(match[2])];
    this.target = address;
  }

  /** Whether the process has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** stdout so far ("" while stalled). */
  get stdout(): string {
    return this.#stdout?.text ?? "";
  }

  /** Starts reading stdout (a stalled reader that comes back). */
  unstall(): void {
    this.#stdout ??= new Collector(this.child.stdout);
  }

  /** Waits for a stderr line that matches. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return this.#waitFor(this.stderr, pattern, timeoutMs);
  }

  /** Waits for a stdout line that matches. */
  waitForStdout(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    if (this.#stdout === null) throw new Error("stdout is stalled");
    return this.#waitFor(this.#stdout, pattern, timeoutMs);
  }

  async #waitFor(collector: Collector, pattern: RegExp, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const text = collector.text.slice(0, collector.text.lastIndexOf("\n") + 1);
      const match = text.match(pattern);
      if (match) return match;
      const left = deadline - performance.now();
      if (this.#ended || left <= 0) {
        await Promise.race([this.#status, new Promise((r) => setTimeout(r, 200))]);
        const why = this.#ended ? "the server exited" : `${timeoutMs} ms passed`;
        throw new Error(`No line matching ${pattern} (${why}):\n${this.describe()}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        collector.changed,
        this.#status,
        new Promise((resolve) => timer = setTimeout(resolve, left)),
      ]);
      clearTimeout(timer);
    }
  }

  /** What it printed so far, for assertion messages. */
  describe(): string {
    const stdout = this.#stdout === null ? "(stalled)" : this.stdout.slice(-2000);
    return `stdout:\n${stdout}\nstderr:\n${this.stderr.text.slice(-4000)}`;
  }

  /** Resident memory in KiB (`VmRSS` of /proc/PID/status). */
  rssKiB(): number {
    const status = procText(`cat /proc/${this.pid}/status`);
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (rss === null) throw new Error(`No memory figure for ${this.spec.script}: it has exited`);
    return Number(rss[1]);
  }

  /** Descriptors the process holds. */
  openFds(): number {
    return Number(procText(`ls /proc/${this.pid}/fd | wc -l`));
  }

  /** SIGSTOP, and wait until every thread is stopped. */
  async freeze(): Promise<void> {
    Deno.kill(this.pid, "SIGSTOP");
    await waitUntil(() => {
      // One line per thread (a thread that ended meanwhile is simply not there).
      const stats = procText(`cat /proc/${this.pid}/task/*/stat 2>/dev/null`).split("\n");
      return stats.every((stat) => stat === "" || stat.slice(stat.lastIndexOf(")") + 2)[0] === "T");
    }, "the server stops on SIGSTOP");
  }

  /** SIGCONT. */
  thaw(): void {
    Deno.kill(this.pid, "SIGCONT");
  }

  /** Connections waiting in the listener's accept queue (`ss` Recv-Q), or null when not
   * listening. */
  async backlog(): Promise<number | null> {
    const args = this.path === undefined
      ? ["-ltnH", `sport = :${this.port}`]
      : ["-lxH", "src", this.path];
    const output = await new Deno.Command("ss", { args, stdout: "piped", stderr: "null" })
      .output();
    const line = decoder.decode(output.stdout).trim().split("\n")[0];
    if (!line) return null;
    const fields = line.split(/\s+/);
    return Number(fields[this.path === undefined ? 1 : 2]);
  }

  /** Bytes waiting in a datagram server's receive queue (`ss` Recv-Q). */
  async datagramQueue(): Promise<number> {
    const args = this.path === undefined
      ? ["-ulnH", `sport = :${this.port}`]
      : ["-xaH", "src", this.path];
    const output = await new Deno.Command("ss", { args, stdout: "piped", stderr: "null" })
      .output();
    const fields = decoder.decode(output.stdout).trim().split(/\s+/);
    return Number(fields[this.path === undefined ? 1 : 2]);
  }

  /** Checks that a fresh client is served correctly (an echo compared byte for byte, the
   * greeting, a 200 response, a datagram logged) within `timeoutMs`. A refusal (closed or reset
   * before any answer: the server may not yet have seen that its attackers left) is tried
   * again; a wrong answer fails at once. */
  async servesFreshClient(timeoutMs = 10_000): Promise<void> {
    const n = ++this.#freshClients;
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const left = deadline - performance.now();
      try {
        const what = `${this.spec.script} serves fresh client ${n}`;
        return await withTimeout(this.#serveOne(n, left), left + 1000, what);
      } catch (error) {
        if (!(error instanceof Refused) || performance.now() > deadline || this.#ended) {
          throw new Error(`Fresh client ${n} not served: ${error}\n${this.describe()}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #serveOne(n: number, timeoutMs: number): Promise<void> {
    switch (this.spec.kind) {
      case "echo": {
        const sent = pattern(64 * 1024, n);
        const echoed = await this.#answer(sent, timeoutMs);
        assertEquals(echoed.length, sent.length, `echo of fresh client ${n}`);
        assert(echoed.every((byte, i) => byte === sent[i]), `echo of fresh client ${n} differs`);
        return;
      }
      case "greeting": {
        const text = decoder.decode(await this.#answer(new Uint8Array(0), timeoutMs));
        assertEquals(text, "Thank you for connecting");
        return;
      }
      case "http": {
        const request = `GET /fresh-${n} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`;
        const text = decoder.decode(await this.#answer(encoder.encode(request), timeoutMs));
        assert(text.startsWith("HTTP/1.1 200"), `fresh client ${n} got: ${text.slice(0, 200)}`);
        assert(text.includes(`/fresh-${n}`), `fresh client ${n} got: ${text.slice(0, 400)}`);
        return;
      }
      case "broker":
        return await this.#broadcastOnce(n, timeoutMs);
      case "datagram": {
        const marker = `fresh-${n}-${crypto.randomUUID()}`;
        await this.sendDatagram(encoder.encode(marker));
        if (this.#stdout === null) {
          // Without its log (stalled, or sent elsewhere), the receive queue emptying shows that
          // it still reads.
          await waitUntil(async () => await this.datagramQueue() === 0, "datagrams read");
        } else {
          await this.waitForStdout(new RegExp(marker), timeoutMs);
        }
        return;
      }
    }
  }

  /** Two fresh clients: what one sends reaches the other unchanged. The sender repeats its
   * message until the receiver sees it, since nothing says when the receiver has joined. */
  async #broadcastOnce(n: number, timeoutMs: number): Promise<void> {
    let receiver: Deno.Conn, sender: Deno.Conn;
    try {
      receiver = await this.connect();
      sender = await this.connect();
    } catch (error) {
      throw new Refused(`${error}`);
    }
    const message = `broadcast ${n} ${crypto.randomUUID()}\n`;
    let heard = "";
    let receiverDone = false;
    const reading = (async () => {
      const buffer = new Uint8Array(4096);
      while (!heard.includes(message)) {
        const got = await receiver.read(buffer);
        if (got === null) break;
        heard += decoder.decode(buffer.subarray(0, got));
      }
    })().catch(() => {}).finally(() => receiverDone = true);
    try {
      const deadline = performance.now() + timeoutMs;
      while (!heard.includes(message)) {
        if (receiverDone) throw new Refused(`the receiver was closed after "${heard}"`);
        if (performance.now() > deadline) throw new Error(`the broadcast never arrived: ${heard}`);
        try {
          await writeAll(sender, encoder.encode(message));
        } catch (error) {
          throw new Refused(`${error}`);
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([reading, new Promise((resolve) => timer = setTimeout(resolve, 200))]);
        clearTimeout(timer);
      }
      assertEquals(heard.replaceAll(message, ""), "", "the broker changed the bytes");
    } finally {
      receiver.close();
      sender.close();
      await reading;
    }
  }

  /** {@linkcode exchange}, with a refusal (no answer at all) thrown as {@linkcode Refused}. */
  async #answer(bytes: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    let answer: Uint8Array;
    try {
      answer = await this.exchange(bytes, timeoutMs);
    } catch (error) {
      throw new Refused(`${error}`);
    }
    if (answer.length === 0) throw new Refused("closed without an answer");
    return answer;
  }

  /** Opens a connection (TLS when the server serves it, after a PROXY header when it reads
   * one), as the fresh clients do. */
  async connect(): Promise<Deno.Conn> {
    if (this.path !== undefined) {
      const conn = await Deno.connect({ transport: "unix", path: this.path });
      // A Unix socket has no address to pass on: UNKNOWN, as a balancer sends for it.
      if (this.spec.proxyProtocol) await this.#sendHeader(conn, "PROXY UNKNOWN\r\n");
      return conn;
    }
    if (this.tls) {
      return await Deno.connectTls({
        hostname: this.hostname,
        port: this.port,
        caCerts: [this.tls.caCert],
      });
    }
    const conn = await Deno.connect({ hostname: this.hostname, port: this.port });
    if (this.spec.proxyProtocol) {
      // The client's own addresses, as a balancer in front of it would pass them on.
      const family = this.hostname.includes(":") ? "TCP6" : "TCP4";
      const header =
        `PROXY ${family} ${this.hostname} ${this.hostname} ${conn.localAddr.port} ${this.port}\r\n`;
      await this.#sendHeader(conn, header);
    }
    return conn;
  }

  async #sendHeader(conn: Deno.Conn, header: string): Promise<void> {
    try {
      await writeAll(conn, encoder.encode(header));
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Opens a plain connection even to a TLS server: a client that never says hello. */
  async connectPlain(timeoutMs = 5000): Promise<Deno.Conn> {
    if (this.path !== undefined) return await Deno.connect({ transport: "unix", path: this.path });
    const signal = AbortSignal.timeout(timeoutMs);
    return await Deno.connect({ hostname: this.hostname, port: this.port, signal });
  }

  /** Connects, sends `bytes` while reading, half-closes, and returns all it read until EOF. */
  async exchange(bytes: Uint8Array, timeoutMs = 10_000): Promise<Uint8Array> {
    const conn = await this.connect();
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      const reading = readToEnd(conn);
      if (bytes.length > 0) await writeAll(conn, bytes);
      await conn.closeWrite().catch(() => {});
      return await reading;
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    }
  }

  /** Sends one datagram to a datagram server. */
  async sendDatagram(bytes: Uint8Array): Promise<void> {
    if (this.path !== undefined) {
      await python("dgram", this.target, hex(bytes));
      return;
    }
    const socket = Deno.listenDatagram({ transport: "udp", hostname: this.hostname, port: 0 });
    try {
      await socket.send(bytes, { transport: "udp", hostname: this.hostname, port: this.port });
    } finally {
      socket.close();
    }
  }

  /** Sends `signal` (none: null) and waits (at most `timeoutMs`, then SIGKILL) for the exit. */
  async stop(signal: Deno.Signal | null = "SIGINT", timeoutMs = 10_000): Promise<ServerResult> {
    const started = performance.now();
    if (!this.#ended && signal !== null) this.child.kill(signal);
    const timer = setTimeout(() => this.#kill(), timeoutMs);
    try {
      return await this.result(started);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the exit and returns what it printed. */
  async result(since = performance.now()): Promise<ServerResult> {
    const status = await this.#status;
    const elapsedMs = performance.now() - since;
    this.unstall();
    await Promise.all([this.stderr.done, this.#stdout?.done]);
    return {
      code: status.code,
      signal: status.signal,
      stdout: this.stdout,
      stderr: this.stderr.text,
      elapsedMs,
    };
  }

  #kill(): void {
    if (this.#ended) return;
    try {
      Deno.kill(this.pid, "SIGCONT");
      this.child.kill("SIGKILL");
    } catch { /* it ended meanwhile */ }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#kill();
    await this.#status;
    if (this.#stdout === null) await this.child.stdout.cancel();
    await Promise.all([this.stderr.done, this.#stdout?.done]);
    if (this.path !== undefined) await Deno.remove(this.path).catch(() => {});
    await this.upstream?.[Symbol.asyncDispose]();
  }
}

/**
 * The checks after an attack: the server served a fresh client before it (so memory is
 * measured warm), serves one after it, grew less than `maxGrowthMiB`, and exits 0 on SIGINT.
 * Returns the final result for further checks.
 */
export async function survives(
  server: FaultServer,
  attack: () => Promise<void>,
  options: { maxGrowthMiB?: number; exitCode?: number } = {},
): Promise<ServerResult> {
  await server.servesFreshClient();
  const before = server.rssKiB();
  await attack();
  assert(!server.ended, `the server exited during the attack:\n${server.describe()}`);
  await server.servesFreshClient();
  const growthMiB = (server.rssKiB() - before) / 1024;
  assertLess(growthMiB, options.maxGrowthMiB ?? 100, `memory grew by ${growthMiB} MiB`);
  const result = await server.stop("SIGINT");
  assertEquals(result.code, options.exitCode ?? 0, `exit code\n${server.describe()}`);
  return result;
}

/** Starts `spec`, runs `attack`, and applies {@linkcode survives}'s checks. */
export async function attackServer(
  spec: ServerSpec,
  options: StartOptions,
  attack: (server: FaultServer) => Promise<void>,
): Promise<ServerResult> {
  await using server = await FaultServer.start(spec, options);
  return await survives(server, () => attack(server));
}

/** A fresh socket path in a fresh directory; `await using` removes the directory. */
export async function tempSocketPath(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "deno-sockets-fault-" });
  return {
    path: `${dir}/server.sock`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function bracket(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

const tlsFlagCache = new Map<string, string[]>();

/** The flag that turns TLS on besides `--cert`/`--key`: `--tls` where the help lists it. */
async function tlsFlags(spec: ServerSpec): Promise<string[]> {
  let flags = tlsFlagCache.get(spec.script);
  if (flags === undefined) {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", `${ROOT}scripts/${spec.script}`, "--help"],
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).output();
    flags = /^\s*--tls\b/m.test(decoder.decode(stdout)) ? ["--tls"] : [];
    tlsFlagCache.set(spec.script, flags);
  }
  return flags;
}

/** `size` bytes that differ from client to client and from offset to offset. */
export function pattern(size: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return bytes;
}

/** Rejects with `what` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a shell command prints: Deno 2.9 reads /proc only with --allow-all, which the test task
 * does not grant; `cat` and `ls` read it under --allow-run. */
function procText(command: string): string {
  const { stdout } = new Deno.Command("sh", { args: ["-c", command], stderr: "null" }).outputSync();
  return new TextDecoder().decode(stdout).trim();
}

export { hasPython, hex, python, PythonPeer } from "./_fault_peers.ts";
export { writeAll } from "../lib/io.ts";
export { readToEnd, waitUntil } from "./_process.ts";
