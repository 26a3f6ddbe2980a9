/**
 * http2_server `--workers N`: N threads on one port (reusePort), the kernel spreading
 * connections over them; one Listening line, `worker` in every --json line, one combined stats
 * line, a stop that drains every worker, and `--unix` refused.
 * @module
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, runScript, type ScriptProcess, spawnScript } from "./_process.ts";
import { curl, SCRIPT } from "./http2_fixture.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** The header's Workers line: the engine's loopback host, and the program's own files. */
const PERMISSIONS = ["--allow-net=127.0.0.1", `--allow-read=${ROOT}scripts/${SCRIPT},${ROOT}lib`];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function startWorkers(args: string[]): Promise<{ server: ScriptProcess; port: number }> {
  const server = spawnScript(SCRIPT, ["--port", "0", "--workers", "2", ...args], {
    permissions: PERMISSIONS,
  });
  try {
    return { server, port: await server.listeningPort() };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

async function h2load(args: string[]): Promise<string> {
  const { code, stdout, stderr } = await runPeer("h2load", args, { timeoutMs: 30_000 });
  const report = decoder.decode(stdout);
  assertEquals(code, 0, report + stderr);
  return report;
}

Deno.test({
  name: "http2_server --workers 2 spreads connections over both workers and names them in --json",
  ignore: !hasPeer("h2load") || !hasPeer("curl"),
  async fn() {
    const { server, port } = await startWorkers(["--json"]);
    await using _ = server;
    // The kernel picks a worker by a hash of each connection's addresses: 40 connections all
    // on one of two workers would be a 1-in-2^39 chance.
    const report = await h2load(["-n", "120", "-c", "40", "-m", "2", `http://127.0.0.1:${port}/`]);
    assertStringIncludes(report, "120 succeeded, 0 failed, 0 errored, 0 timeout");
    const h1 = await curl(["--http1.1", `http://127.0.0.1:${port}/h1`]);
    assertEquals([h1.status, h1.body.protocol], ["HTTP/1.1 200 OK", "HTTP/1.1"]);
    const h2 = await curl(["--http2-prior-knowledge", `http://127.0.0.1:${port}/h2`]);
    assertEquals([h2.status, h2.body.protocol], ["HTTP/2 200", "HTTP/2"]);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stderr, `Listening on 127.0.0.1:${port}\n`);
    const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assertEquals(events.length, 122);
    assert(events.every((event) => event.event === "request" && event.status === 200));
    assertEquals([...new Set(events.map((event) => event.worker))].sort(), [1, 2]);
    // Every request of a connection names the same worker.
    const workerOf = new Map<string, number>();
    for (const { peer, worker } of events) {
      assertEquals(workerOf.get(peer) ?? worker, worker, peer);
      workerOf.set(peer, worker);
    }
    assertEquals(workerOf.size, 42);
    assertEquals(
      events.filter((event) => event.path !== "/").map((event) => event.protocol),
      ["HTTP/1.1", "HTTP/2"],
    );
  },
});

Deno.test("http2_server --workers 2 lets the uploads in flight on every worker finish after SIGINT, and exits 0", async () => {
  const { server, port } = await startWorkers(["--json", "--grace", "20s"]);
  await using _ = server;
  const conns = await Promise.all(
    Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  try {
    // Each worker's 100 Continue says its handler is reading the body: a request in flight.
    await Promise.all(conns.map(async (conn, i) => {
      await conn.write(encoder.encode(
        `POST /up/${i} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n`,
      ));
      const buffer = new Uint8Array(256);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`connection ${i} closed before 100 Continue`);
        head += decoder.decode(buffer.subarray(0, n));
      }
      assertMatch(head, /^HTTP\/1\.1 100 Continue\r\n/);
    }));
    server.child.kill("SIGINT");
    // The rest of every body after the stop began: each is answered, then the worker closes.
    const replies = await Promise.all(conns.map(async (conn) => {
      await conn.write(encoder.encode("hello"));
      return await new Response(conn.readable).text();
    }));
    for (const reply of replies) {
      assertMatch(reply, /^HTTP\/1\.1 200 OK\r\n/);
      assertStringIncludes(reply, '"body_bytes": 5');
    }
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* read to its end: already closed */ }
    }
  }
  const result = await server.result();
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stderr, `Listening on 127.0.0.1:${port}\n`);
  const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  assertEquals(events.length, 20);
  assert(events.every((event) => event.status === 200 && event.body_bytes === 5));
  // 20 connections all on one worker would be a 1-in-2^19 chance.
  assertEquals([...new Set(events.map((event) => event.worker))].sort(), [1, 2]);
});

Deno.test({
  name: "http2_server --workers 2 prints one stats line over every worker on SIGTERM",
  ignore: !hasPeer("h2load"),
  async fn() {
    const { server, port } = await startWorkers(["--quiet"]);
    await using _ = server;
    await h2load(["-n", "100", "-c", "10", "-m", "5", `http://127.0.0.1:${port}/`]);
    const quiet = await server.stop("SIGTERM");
    assertEquals([quiet.code, quiet.stdout, quiet.stderr], [
      0,
      "",
      `Listening on 127.0.0.1:${port}\n`,
    ]);

    const text = await startWorkers([]);
    await using __ = text.server;
    await h2load(["-n", "100", "-c", "10", "-m", "5", `http://127.0.0.1:${text.port}/`]);
    const result = await text.server.stop("SIGTERM");
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stderr,
      `Listening on 127.0.0.1:${text.port}\nstopped after 100 requests on 10 connections\n`,
    );
    assertEquals(result.stdout.trim().split("\n").length, 100);
  },
});

Deno.test("http2_server --workers refuses --unix (exit 2) and names the --allow-read it needs (exit 1)", async () => {
  const unix = await runScript(SCRIPT, ["--workers", "2", "--unix", "/tmp/h2-workers.sock"], {
    permissions: PERMISSIONS,
  });
  assertEquals(unix.code, 2);
  assertMatch(
    unix.stderr,
    /^http2_server: Cannot use --workers with --unix: [^\n]* \(see --help\)\n$/,
  );
  const unread = await runScript(SCRIPT, ["--port", "0", "--workers", "2"], {
    permissions: ["--allow-net=127.0.0.1"],
  });
  assertEquals(unread.code, 1);
  assertEquals(
    unread.stderr,
    `http2_server: Cannot start workers (each loads the program's files) without permission: run again with --allow-read=${ROOT}scripts/${SCRIPT},${ROOT}lib\n`,
  );
  const help = await runScript(SCRIPT, ["--help"], { permissions: PERMISSIONS });
  assertStringIncludes(help.stdout, "--allow-read=scripts/http2_server.ts,lib");
});
