import { assert, assertEquals, assertGreater, assertMatch, assertRejects } from "@std/assert";
import { runBench } from "../lib/bench/load.ts";
import type { BenchResult } from "../lib/bench/result.ts";
import { describeFailure } from "../lib/bench/report.ts";
import { LatencyHistogram } from "../lib/bench/histogram.ts";
import { servePipeTo } from "../scripts/bench/pipe_to_server.ts";
import { serveReadWrite } from "../scripts/bench/read_write_server.ts";
import { isPeerGone } from "../lib/errors.ts";
import { hasPeer, runScript, ScriptProcess } from "./_process.ts";

/** How the in-test server treats what it reads. */
type Behaviour = "echo" | "flip" | "close" | "swallow";

/** A tiny echo server on port 0 (or a Unix socket) that can also misbehave on purpose. */
class TestServer implements AsyncDisposable {
  readonly listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #handlers = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  accepted = 0;

  constructor(readonly behaviour: Behaviour, path?: string) {
    this.listener = path === undefined
      ? Deno.listen({ hostname: "127.0.0.1", port: 0 })
      : Deno.listen({ transport: "unix", path });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.listener) {
        this.accepted++;
        this.#conns.add(conn);
        const handler = this.#handle(conn).finally(() => this.#handlers.delete(handler));
        this.#handlers.add(handler);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  async #handle(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null || this.behaviour === "close") break;
        if (this.behaviour === "swallow") continue;
        if (this.behaviour === "flip") buffer[n - 1] ^= 0x01;
        let written = 0;
        while (written < n) written += await conn.write(buffer.subarray(written, n));
      }
    } catch (error) {
      if (!isPeerGone(error)) throw error;
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed by dispose */ }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    for (const conn of this.#conns) conn.close();
    await this.#accepting;
    await Promise.all(this.#handlers);
  }
}

function assertClean(result: BenchResult): void {
  assertEquals(result.errors.total, 0, result.firstError ?? undefined);
  assertEquals(result.firstError, null);
  assertEquals(result.connectionsOpened, result.connections);
  assertEquals(result.connectionsHeld, result.connections);
}

/** A port nothing listens on: bind one, read it back, close it. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("runBench() verifies every echoed byte in pingpong mode", async () => {
  await using server = new TestServer("echo");
  const result = await runBench({ port: server.port, connections: 3, durationMs: 300 });
  assertClean(result);
  assertEquals(result.mode, "pingpong");
  assertEquals(result.target, `127.0.0.1:${server.port}`);
  assertGreater(result.messages, 0);
  assertEquals(result.bytes, result.messages * 64);
  assertEquals(result.latencyMs?.count, result.messages);
  assert(result.latencyMs!.p50 <= result.latencyMs!.p99);
  assert(result.latencyMs!.p99 <= result.latencyMs!.max);
});

Deno.test("runBench() keeps a window in flight in bulk mode and reads it all back", async () => {
  await using server = new TestServer("echo");
  const result = await runBench({
    mode: "bulk",
    port: server.port,
    connections: 2,
    size: 4096,
    window: 16384,
    durationMs: 300,
    warmupMs: 50,
  });
  assertClean(result);
  assertEquals(result.window, 16384);
  assertEquals(result.latencyMs, null);
  assertGreater(result.bytes, 0);
  assertEquals(result.messages, Math.floor(result.bytes / 4096));
});

Deno.test("runBench() holds idle connections, then makes one round trip on each", async () => {
  await using server = new TestServer("echo");
  const phases: string[] = [];
  const result = await runBench({
    mode: "hold",
    port: server.port,
    connections: 20,
    connectConcurrency: 4,
    durationMs: 200,
    onPhase: (phase, open) => phases.push(`${phase} ${open}`),
  });
  assertClean(result);
  assertEquals(phases, ["holding 20", "draining 20"]);
  assertEquals(server.accepted, 20);
  assertEquals(result.messages, 20);
  assertEquals(result.latencyMs?.count, 20);
});

for (const mode of ["pingpong", "bulk", "hold"] as const) {
  Deno.test(`runBench() counts echoes that differ from what was sent in ${mode} mode`, async () => {
    await using server = new TestServer("flip");
    const result = await runBench({
      mode,
      port: server.port,
      connections: 2,
      size: 1000,
      durationMs: 200,
    });
    assertEquals(result.errors.mismatch, 2);
    assertEquals(result.errors.total, 2);
    assertEquals(result.connectionsHeld, 0);
    assertMatch(result.firstError!, /^Echo differs at byte \d+: got 0x[0-9a-f]{2}, sent/);
  });
}

for (const mode of ["pingpong", "bulk"] as const) {
  Deno.test(`runBench() counts only live connections as open in ${mode} mode`, async () => {
    // Both connections fail on the first wrong echo; the run then ends long before its
    // duration, and the draining phase (like the pacer) sees no connection open.
    await using server = new TestServer("flip");
    const phases: string[] = [];
    const result = await runBench({
      mode,
      port: server.port,
      connections: 2,
      size: 1000,
      durationMs: 60_000,
      onPhase: (phase, open) => phases.push(`${phase} ${open}`),
    });
    assertEquals(result.errors.mismatch, 2);
    assertEquals(phases.at(-1), "draining 0");
  });
}

Deno.test("runBench() in hold mode reports no negative idle time when stopped while connecting", async () => {
  // A TLS handshake that the server never answers keeps the connect pending while the run is
  // aborted; the connect then times out, after the stop.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const running = runBench({
    mode: "hold",
    port: listener.addr.port,
    tls: {},
    connections: 1,
    timeoutMs: 200,
    signal: controller.signal,
  });
  using _accepted = await listener.accept();
  controller.abort();
  const result = await running;
  assertEquals(result.connectionsOpened, 0);
  assertEquals(result.errors.total, 1);
  assertEquals(result.durationMs, 0);
});

Deno.test("runBench() names a Unix socket as connect() does, so the failure line names it once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/no\x01such.sock`;
    const result = await runBench({ path, connections: 1, durationMs: 100 });
    assertEquals(result.target, `unix:${path}`);
    assert(result.firstError!.startsWith(`${result.target}: `), result.firstError!);
    const line = describeFailure(result)!;
    assertEquals(line.split(result.target).length, 2, line);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runBench() counts refused connections", async () => {
  const result = await runBench({ port: closedPort(), connections: 3, durationMs: 100 });
  assertEquals(result.errors.refused, 3);
  assertEquals(result.errors.total, 3);
  assertEquals(result.connectionsOpened, 0);
  assertEquals(result.messages, 0);
  assertMatch(result.firstError!, /^127\.0\.0\.1:\d+: Connection refused/);
});

Deno.test("runBench() counts a server that closes before echoing", async () => {
  await using server = new TestServer("close");
  const result = await runBench({ port: server.port, connections: 2, durationMs: 200 });
  assertEquals(result.errors.eof + result.errors.reset, 2);
  assertEquals(result.connectionsHeld, 0);
});

Deno.test("runBench() fails a connection whose echo stalls for the timeout", async () => {
  await using server = new TestServer("swallow");
  const result = await runBench({
    port: server.port,
    connections: 1,
    durationMs: 100,
    timeoutMs: 200,
  });
  assertEquals(result.errors.timeout, 1);
  assertMatch(result.firstError!, /^No echo for 200 ms \(64 bytes due\)$/);
});

Deno.test("runBench() stops early on an aborted signal and still reports", async () => {
  await using server = new TestServer("echo");
  const controller = new AbortController();
  const running = runBench({
    port: server.port,
    connections: 2,
    durationMs: 60_000,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 100);
  const result = await running;
  assertClean(result);
  assert(result.durationMs < 60_000);
});

Deno.test("runBench() connects to a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/echo.sock`;
  try {
    await using server = new TestServer("echo", path);
    for (const mode of ["pingpong", "bulk", "hold"] as const) {
      const result = await runBench({ mode, path, connections: 2, durationMs: 100 });
      assertClean(result);
      assertEquals(result.target, `unix:${path}`);
      assertEquals(server.behaviour, "echo");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runBench() rejects a window smaller than the size", async () => {
  await assertRejects(
    () => runBench({ mode: "bulk", size: 1000, window: 10 }),
    RangeError,
    "Cannot use window 10: must be at least the size (1000)",
  );
});

Deno.test("LatencyHistogram reports percentiles within 3 % and the exact max", () => {
  const histogram = new LatencyHistogram();
  assertEquals(histogram.summary(), null);
  for (let us = 1; us <= 10_000; us++) histogram.record(us / 1000);
  const summary = histogram.summary()!;
  assertEquals(summary.count, 10_000);
  assertEquals(summary.max, 10);
  for (const [actual, expected] of [[summary.p50, 5], [summary.p90, 9], [summary.p99, 9.9]]) {
    assert(Math.abs(actual - expected) / expected < 0.03, `${actual} is not about ${expected}`);
  }
  assert(Math.abs(summary.mean - 5.0005) < 1e-9);
});

for (
  const [name, serve] of [["serveReadWrite()", serveReadWrite], [
    "servePipeTo()",
    servePipeTo,
  ]] as const
) {
  Deno.test(`${name} echoes every byte under pingpong and bulk load`, async () => {
    const controller = new AbortController();
    const listening = Promise.withResolvers<number>();
    const serving = serve({
      signal: controller.signal,
      onListen: (a) => listening.resolve(a.port),
    });
    try {
      const port = await listening.promise;
      assertClean(await runBench({ port, connections: 4, durationMs: 150 }));
      assertClean(await runBench({ mode: "bulk", port, connections: 2, durationMs: 150 }));
    } finally {
      controller.abort();
      await serving;
    }
  });
}

const PERMISSIONS = ["--allow-net=127.0.0.1"];

Deno.test("echo_bench.ts --json prints one result line and exits 0", async () => {
  await using server = new TestServer("echo");
  const { code, stdout, stderr } = await runScript("echo_bench.ts", [
    "--json",
    "--port",
    String(server.port),
    "--connections",
    "2",
    "--duration",
    "200ms",
  ], { permissions: PERMISSIONS });
  assertEquals(code, 0, stderr);
  assertEquals(stderr, "");
  const events = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  assertEquals(events.map((e) => e.event), ["measuring", "draining", "result"]);
  const result = events[2];
  assertEquals(result.errors.total, 0);
  assertGreater(result.messages, 0);
});

Deno.test("echo_bench.ts --json in hold mode says when the connections are held", async () => {
  await using server = new TestServer("echo");
  const { code, stdout } = await runScript("echo_bench.ts", [
    "--json",
    "--mode",
    "hold",
    "--port",
    String(server.port),
    "--connections",
    "5",
    "--duration",
    "100ms",
  ], { permissions: PERMISSIONS });
  assertEquals(code, 0);
  const [holding, draining, result] = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  // Every --json line has the shared schema's `time` (lib/json_event.ts): compare the rest.
  for (const event of [holding, draining, result]) {
    assertEquals(new Date(event.time).toISOString(), event.time);
    delete event.time;
  }
  assertEquals(holding, { event: "holding", connections: 5 });
  assertEquals(draining, { event: "draining", connections: 5 });
  assertEquals(result.connectionsHeld, 5);
});

Deno.test("echo_bench.ts exits 1 and reports mismatches from a wrong echo", async () => {
  await using server = new TestServer("flip");
  const { code, stdout } = await runScript("echo_bench.ts", [
    "--port",
    String(server.port),
    "--mode",
    "bulk",
    "--duration",
    "200ms",
  ], { permissions: PERMISSIONS });
  assertEquals(code, 1);
  assertMatch(stdout, /^errors {6}1 \(mismatch 1\)$/m);
  assertMatch(stdout, /^first error Echo differs at byte/m);
});

Deno.test("echo_bench.ts exits 1 when the connection is refused", async () => {
  const { code, stdout } = await runScript("echo_bench.ts", [
    "--json",
    "--port",
    String(closedPort()),
    "--connections",
    "2",
  ], { permissions: PERMISSIONS });
  assertEquals(code, 1);
  const result = JSON.parse(stdout.trimEnd().split("\n").at(-1)!);
  assertEquals(result.event, "result");
  assertEquals(result.errors.refused, 2);
  assertEquals(result.connectionsOpened, 0);
});

Deno.test("echo_bench.ts --help exits 0 and a bad flag exits 2", async () => {
  const help = await runScript("echo_bench.ts", ["--help"], { permissions: [] });
  assertEquals(help.code, 0);
  assertMatch(help.stdout, /^Usage: echo_bench\.ts/);
  const bad = await runScript("echo_bench.ts", ["--mode", "flood"], { permissions: [] });
  assertEquals(bad.code, 2);
  assertEquals(
    bad.stderr,
    'echo_bench: Cannot parse --mode "flood": must be one of pingpong, bulk, hold (see --help)\n',
  );
});

/**
 * Starts a peer echo server nobody here wrote a client for, waits for its ready line on stderr,
 * checks both load modes against it, then stops it with SIGTERM and returns its exit code.
 * The port is the one the ready line names, unless the caller chose it.
 */
async function checkEchoPeer(
  program: string,
  args: string[],
  ready: RegExp,
  port?: number,
): Promise<number> {
  const child = new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).spawn();
  await using peer = new ScriptProcess(child);
  const [, printedPort] = await peer.waitForStderr(ready);
  const target = port ?? Number(printedPort);
  assertClean(await runBench({ port: target, connections: 3, durationMs: 150 }));
  assertClean(await runBench({ mode: "bulk", port: target, durationMs: 150 }));
  return (await peer.stop("SIGTERM")).code;
}

const FIXTURE_READY = /^Listening on 127\.0\.0\.1:(\d+)$/m;

Deno.test({
  name: "node_net_server.mjs echoes every byte and stops on SIGTERM",
  ignore: !hasPeer("node"),
  async fn() {
    const fixture = new URL("../scripts/bench/node_net_server.mjs", import.meta.url).pathname;
    assertEquals(await checkEchoPeer("node", [fixture], FIXTURE_READY), 0);
  },
});

Deno.test({
  name: "python_asyncio_server.py echoes every byte and stops on SIGTERM",
  ignore: !hasPeer("python3"),
  async fn() {
    const fixture = new URL("../scripts/bench/python_asyncio_server.py", import.meta.url).pathname;
    assertEquals(await checkEchoPeer("python3", [fixture], FIXTURE_READY), 0);
  },
});

Deno.test({
  name: "runBench() verifies the echo of socat, a peer nobody here wrote",
  ignore: !hasPeer("socat"),
  async fn() {
    const port = closedPort();
    const listen = `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`;
    // socat's exit code on SIGTERM is its own affair: only its echo is under test.
    await checkEchoPeer("socat", ["-d", "-d", listen, "EXEC:cat"], /listening on/, port);
  },
});

Deno.test("bench/run.ts --quick runs one server and one scenario and writes JSON", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/bench.json`;
    const { code, stdout, stderr } = await runScript(
      "bench/run.ts",
      ["--quick", "--duration", "200ms", "--only", "rw", "--only", "pingpong-1", "--out", out],
      {
        permissions: [
          "--allow-net=127.0.0.1",
          "--allow-run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-sys",
        ],
        timeoutMs: 60_000,
      },
    );
    assertEquals(code, 0, stderr);
    assertMatch(stdout, /^pingpong 64 B x 1 +msg\/s +\d+$/m);
    const report = JSON.parse(await Deno.readTextFile(out));
    assertEquals(report.measurements.length, 1);
    assertEquals(report.measurements[0].server, "rw");
    assertEquals(report.measurements[0].bench.errors.total, 0);
    assertEquals(report.measurements[0].serverExitCode, 0);
    // The new figures reach the table and the file: p99.9 and the per-connection spread.
    assertMatch(stdout, /^ +p99\.9 ms +[\d.]+$/m);
    assertMatch(stdout, /^ +slowest\/median +[\d.]+$/m);
    assertMatch(stdout, /^ +Jain index +[\d.]+$/m);
    assertGreater(report.measurements[0].bench.latencyMs.p999, 0);
    assertEquals(report.measurements[0].bench.fairness.connections, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
