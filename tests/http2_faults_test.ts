/**
 * http2_server attacked as issue 9 describes: descriptors run out, slowloris, idle and silent
 * TLS clients, too many connections, a stalled non-blocking stdout, a doubled Ctrl-C. After
 * each it still serves a fresh client and stops with exit 0.
 * @module
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, ScriptProcess } from "./_process.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";
import { curl, NET, pythonWithH2, SCRIPT, startServer, tlsArgs } from "./http2_fixture.ts";

const noCurl = !hasPeer("curl");
const SCRIPT_PATH = new URL(`../scripts/${SCRIPT}`, import.meta.url).pathname;
const encoder = new TextEncoder();

/** Starts the server as `program args... deno run ... http2_server.ts`, e.g. under prlimit. */
async function startWrapped(
  program: string,
  programArgs: string[],
  args: string[],
): Promise<{ server: ScriptProcess; port: number }> {
  const command = new Deno.Command(program, {
    args: [...programArgs, Deno.execPath(), "run", ...NET, SCRIPT_PATH, "--port", "0", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const server = new ScriptProcess(command.spawn());
  try {
    return { server, port: await server.listeningPort() };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

/** Reads until the server closes the connection; false if it never does within `limit` reads
 * (`onRead` runs before each read: a slow client's next byte). */
async function closedByServer(
  conn: Deno.Conn,
  onRead: () => Promise<void> = () => Promise.resolve(),
  limit = 1000,
): Promise<boolean> {
  const buffer = new Uint8Array(16 * 1024);
  for (let i = 0; i < limit; i++) {
    await onRead();
    try {
      if (await conn.read(buffer) === null) return true;
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) return true;
      throw error;
    }
  }
  return false;
}

function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

Deno.test({
  name: "http2_server survives running out of descriptors and serves a fresh request",
  ignore: noCurl || !hasPeer("prlimit"),
  async fn() {
    const { server, port } = await startWrapped("prlimit", ["--nofile=64:64"], ["--quiet"]);
    await using _ = server;
    // More idle connections than the server has descriptors.
    const idle: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 100; i++) idle.push(await connect(port));
      await server.waitForStderr(/accept failed: Too many open files; pausing \d+ ms/);
    } finally {
      for (const conn of idle) conn.close();
    }
    const { status, body } = await curl(["-m", "30", `http://127.0.0.1:${port}/fresh`]);
    assertEquals([status, body.path], ["HTTP/1.1 200 OK", "/fresh"]);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    // At most one report a second: far fewer lines than failed accepts.
    assert(result.stderr.split("\n").length < 40, result.stderr);
  },
});

Deno.test("http2_server closes slowloris connections at the header deadline", async () => {
  const { server, port } = await startServer(["--header-timeout", "500ms"]);
  await using _ = server;
  // Silent: connects and never sends a byte.
  using silent = await connect(port);
  assert(await closedByServer(silent));
  // HTTP/1.1: a request line, then one header line every 100 ms, never the empty line.
  using slow = await connect(port);
  await slow.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n"));
  let n = 0;
  const trickle = async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await slow.write(encoder.encode(`x-${n++}: y\r\n`)).catch(() => {});
  };
  assert(await closedByServer(slow, trickle, 300), "still open");
  // HTTP/2: HEADERS without END_HEADERS, and the CONTINUATION never comes.
  using h2 = await connect(port);
  const preface = encoder.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
  const headers = [0, 0, 1, 1, 0x1, 0, 0, 0, 1, 0x82]; // END_STREAM, no END_HEADERS
  await h2.write(new Uint8Array([...preface, ...settings, ...headers]));
  assert(await closedByServer(h2));
  const { body } = await curl(["--http2-prior-knowledge", `http://127.0.0.1:${port}/after`]);
  assertEquals(body.path, "/after");
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
  const closed = result.stdout.match(/: no complete request headers within 500 ms$/gm);
  assertEquals(closed?.length, 3, result.stdout);
});

Deno.test("http2_server closes connections idle past --idle-timeout (GOAWAY over HTTP/2)", async () => {
  const { server, port } = await startServer(["--idle-timeout", "300ms", "--json"]);
  await using _ = server;
  using h1 = await connect(port);
  await h1.write(encoder.encode("GET /keep HTTP/1.1\r\nhost: x\r\n\r\n"));
  assert(await closedByServer(h1));
  using h2 = await connect(port);
  const preface = encoder.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  await h2.write(new Uint8Array([...preface, 0, 0, 0, 4, 0, 0, 0, 0, 0]));
  const frames: number[] = [];
  const received = new Uint8Array(64 * 1024);
  let filled = 0;
  while (true) {
    const n = await h2.read(received.subarray(filled)).catch(() => null);
    if (n === null) break;
    filled += n;
  }
  for (let at = 0; at + 9 <= filled; at += 9 + ((received[at + 1] << 8) | received[at + 2])) {
    frames.push(received[at + 3]);
  }
  assert(frames.includes(7), `GOAWAY among frame types ${frames}`);
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
  const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  const idle = events.filter((event) => event.event === "timeout" && event.phase === "idle");
  assertEquals(idle.length, 2, result.stdout);
  assertMatch(idle[0].peer, /^127\.0\.0\.1:\d+$/);
});

Deno.test("http2_server refuses connections beyond --max-connections", async () => {
  const { server, port } = await startServer(["--max-connections", "2"]);
  await using _ = server;
  using first = await connect(port);
  using second = await connect(port);
  // A request on each proves that both are accepted before the third arrives.
  for (const conn of [first, second]) {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
    assert(await conn.read(new Uint8Array(4096)));
  }
  using third = await connect(port);
  assert(await closedByServer(third));
  await server.waitForStdout(/^refusing 127\.0\.0\.1:\d+: too many connections$/m);
  first.close();
  second.close();
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
});

Deno.test({
  name: "http2_server does not wait for a silent TLS client: deadline, and stop",
  ignore: noCurl || !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const { args, permissions } = tlsArgs(certs);
    const { server, port } = await startServer(
      [...args, "--handshake-timeout", "300ms"],
      permissions,
    );
    await using _ = server;
    using silent = await connect(port);
    await server.waitForStdout(/^closing 127\.0\.0\.1:\d+: no TLS handshake within 300 ms$/m);
    // Deno keeps that socket until the client acts (lib/net/handshake.ts); one more silent
    // client, and a stop that must not wait for either.
    using another = await connect(port);
    const { body } = await curl(["--cacert", certs.caFile, `https://127.0.0.1:${port}/`]);
    assertEquals(body.protocol, "HTTP/2");
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    silent.close();
    another.close();
  },
});

Deno.test({
  name: "http2_server keeps serving with a stalled non-blocking stdout, and stops on SIGINT",
  ignore: !hasPeer("h2load") || pythonWithH2() === null,
  async fn() {
    // The server's stdout: a non-blocking pipe that nobody reads (the server holds its read end).
    const nonBlockingStdout = [
      "import os, fcntl, sys",
      "r, w = os.pipe()",
      "fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)",
      "os.dup2(w, 1)",
      "os.set_inheritable(r, True)",
      "os.execvp(sys.argv[1], sys.argv[1:])",
    ].join("\n");
    const { server, port } = await startWrapped(pythonWithH2()!, ["-c", nonBlockingStdout], []);
    await using _ = server;
    const { code, stdout } = await runPeer(
      "h2load",
      ["-n", "3000", "-c", "4", "-m", "10", `http://127.0.0.1:${port}/log`],
      { timeoutMs: 60_000 },
    );
    const report = new TextDecoder().decode(stdout);
    assertEquals(code, 0, report);
    assertStringIncludes(report, "3000 succeeded, 0 failed");
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assert(!/error|at /i.test(result.stderr.replace(/^Listening on .*\n/, "")), result.stderr);
  },
});

Deno.test("http2_server takes a second SIGINT within a second for the same stop", async () => {
  const { server, port } = await startServer(["--quiet"]);
  await using _ = server;
  using conn = await connect(port);
  await conn.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
  assert(await conn.read(new Uint8Array(4096)));
  server.child.kill("SIGINT");
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stderr.includes("second stop signal"), false);
});
