import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { startWorkers, sumStats, type WorkerDeath } from "../lib/workers/mod.ts";
import type { FixtureConfig, FixtureStats } from "./workers_fixture.ts";
import { assertAllEnded, echoThrough, openEchoed } from "./_echo_fixtures.ts";
import { jsonLines, runScript, spawnScript } from "./_process.ts";

const FIXTURE = new URL("./workers_fixture.ts", import.meta.url);
const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function permissions(script: string): string[] {
  return ["--allow-net=127.0.0.1", `--allow-read=${ROOT}scripts/${script},${ROOT}lib`];
}

async function echoOnce(port: number, text: string): Promise<string> {
  return decoder.decode((await echoThrough(port, encoder.encode(text))).echo);
}

/** Lines the workers print, and a way to wait (at most `timeoutMs`) for the ones expected. */
function lineLog() {
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  return {
    lines,
    onLine(_stream: "stdout" | "stderr", line: string) {
      lines.push(line);
      for (const wake of waiters.splice(0)) wake();
    },
    async waitFor(
      predicate: (lines: string[]) => boolean,
      what: string,
      timeoutMs = 10_000,
    ): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let expired = false;
      try {
        while (!predicate(lines)) {
          if (expired) {
            throw new Error(
              `No ${what} after ${timeoutMs} ms; the workers printed:\n${lines.join("\n")}`,
            );
          }
          const { promise, resolve } = Promise.withResolvers<void>();
          waiters.push(resolve);
          timer ??= setTimeout(() => {
            expired = true;
            for (const wake of waiters.splice(0)) wake();
          }, timeoutMs);
          await promise;
        }
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** How many workers have said they listen. */
const listening = (count: number) => (lines: string[]) =>
  lines.filter((line) => line.endsWith("listening")).length === count;

Deno.test("startWorkers() reports a worker that crashed, restarts it, and the port keeps serving", async () => {
  const log = lineLog();
  const deaths: WorkerDeath[] = [];
  const pool = await startWorkers<FixtureConfig, FixtureStats>({
    module: FIXTURE,
    count: 2,
    config: { port: 0 },
    onLine: log.onLine,
    onWorkerDied: (death) => deaths.push(death),
  });
  const { port } = pool.addr as Deno.NetAddr;
  await log.waitFor(listening(2), "two workers listening");
  // The worker that gets "crash" throws an uncaught exception; its connection goes with it.
  await echoOnce(port, "crash").catch(() => "");
  await log.waitFor(listening(3), "the crashed worker listening again");
  assertEquals(deaths.length, 1);
  assertMatch(deaths[0].error, /crashed on request/);
  assertEquals(deaths[0].restarting, true);
  assertEquals(log.lines.at(-1), `worker ${deaths[0].worker} listening`);
  for (let i = 0; i < 10; i++) assertEquals(await echoOnce(port, `hello ${i}`), `hello ${i}`);
  pool.stop();
  const stats = sumStats(await pool.finished);
  assert(stats.total >= 10, JSON.stringify(stats));
});

Deno.test("startWorkers() gives up when workers keep dying, and finished rejects", async () => {
  const deaths: WorkerDeath[] = [];
  const pool = await startWorkers<FixtureConfig, FixtureStats>({
    module: FIXTURE,
    count: 1,
    config: { port: 0, dieAfterListening: true },
    onLine: () => {},
    onWorkerDied: (death) => deaths.push(death),
    maxRestarts: 2,
  });
  await assertRejects(() => pool.finished, Error, "Workers died 3 times within 60 s");
  assertEquals(deaths.map((death) => death.restarting), [true, true, false]);
});

Deno.test("startWorkers() fails to start with the first worker's error and stops the rest", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // no reusePort: nobody can share it
  await assertRejects(
    () =>
      startWorkers<FixtureConfig, FixtureStats>({
        module: FIXTURE,
        count: 2,
        config: { port: taken.addr.port },
        onLine: () => {},
      }),
    Error,
    "Address already in use",
  );
});

Deno.test("echo_server.ts --workers 2 spreads connections over both workers and names them in --json", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--workers", "2", "--json"], {
    permissions: permissions("echo_server.ts"),
  });
  const port = await server.listeningPort();
  // The kernel picks a worker by a hash of each connection's ports: 40 connections all on one
  // of two workers would be a 1-in-2^39 chance.
  for (let i = 0; i < 40; i++) assertEquals(await echoOnce(port, `${i}`), `${i}`);
  const { code, stdout, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
  const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
  const connections = events.filter((event) => event.event === "connection");
  assertEquals(connections.length, 40);
  const workers = new Set(connections.map((event) => event.worker));
  assertEquals([...workers].sort(), [1, 2]);
  // Every event of a connection names the same worker.
  for (const event of events) {
    assertEquals(event.worker, connections.find((c) => c.peer === event.peer).worker);
  }
});

Deno.test("echo_server.ts --workers 2 drains every worker on SIGTERM, exits 0, and prints one stats line", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--workers", "2"], {
    permissions: permissions("echo_server.ts"),
  });
  const port = await server.listeningPort();
  const conns = await openEchoed(port, 20, "hello");
  const { code, stderr } = await server.stop("SIGTERM");
  assertEquals(code, 0);
  assertEquals(
    stderr,
    `Listening on 127.0.0.1:${port}\nstopped after 20 connections and 100 bytes echoed\n`,
  );
  await assertAllEnded(conns);
});

Deno.test("tcp_server.ts --workers auto greets from every worker and names it in --json", async () => {
  await using server = spawnScript(
    "tcp_server.ts",
    ["--port", "0", "--workers", "auto", "--json"],
    {
      permissions: permissions("tcp_server.ts"),
    },
  );
  const port = await server.listeningPort();
  for (let i = 0; i < 40; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    assertEquals(
      decoder.decode(await new Response(conn.readable).arrayBuffer()),
      "Thank you for connecting",
    );
  }
  await server.waitForStdout(/(.*\n){40}/);
  const { code, stdout } = await server.stop("SIGINT");
  assertEquals(code, 0);
  // One line per connection, each naming one of the workers auto started: one per CPU (on one
  // CPU, auto serves on the main thread and no line names a worker).
  const events = jsonLines(stdout);
  assertEquals(events.length, 40, stdout);
  assertEquals(events.map((event) => event.event), Array(40).fill("connection"));
  const cpus = Math.max(1, navigator.hardwareConcurrency);
  for (const { worker } of events) {
    if (cpus === 1) {
      assertEquals(worker, undefined);
      continue;
    }
    assert(
      Number.isInteger(worker) && worker >= 1 && worker <= cpus,
      `worker ${worker} of ${cpus}`,
    );
  }
  const workers = new Set(events.map((event) => event.worker));
  assert(workers.size > 1 || navigator.hardwareConcurrency === 1, [...workers].join());
});

Deno.test("the servers refuse bad --workers values and --workers with --unix or --count, exit 2", async () => {
  const cases: [string, string[], string][] = [
    ["echo_server.ts", ["--workers", "0"], '--workers "0"'],
    ["echo_server.ts", ["--workers", "many"], "auto or an integer"],
    ["echo_server.ts", ["--workers", "2", "--unix", "/tmp/x.sock"], "--unix"],
    ["tcp_server.ts", ["--workers", "2", "--count", "1"], "--count"],
    ["tcp_server.ts", ["--workers", "257"], "from 1 to 256"],
  ];
  for (const [script, args, message] of cases) {
    const { code, stderr } = await runScript(script, args, { permissions: permissions(script) });
    assertEquals(code, 2, `${script} ${args.join(" ")}`);
    assertStringIncludes(stderr, message);
  }
});

Deno.test("echo_server.ts --workers names the --allow-read it needs, in one line, exit 1", async () => {
  const { code, stderr } = await runScript("echo_server.ts", ["--port", "0", "--workers", "2"], {
    permissions: ["--allow-net=127.0.0.1"],
  });
  assertEquals(code, 1);
  assertEquals(
    stderr,
    `echo_server: Cannot start workers (each loads the program's files) without permission: run again with --allow-read=${ROOT}scripts/echo_server.ts,${ROOT}lib\n`,
  );
});
