import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { hasPeer, runPeer, runScript, type ScriptProcess, spawnScript } from "./_process.ts";
import { xxd } from "./_xxd.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The echo server as a subprocess, and its port. */
async function startEcho(): Promise<{ echo: ScriptProcess; port: number }> {
  const echo = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], { permissions: NET });
  return { echo, port: await echo.listeningPort() };
}

/** tcp_relay.ts on a free port in front of `to`, and its port. */
async function startRelay(
  to: string,
  args: string[] = [],
  permissions = NET,
): Promise<{ relay: ScriptProcess; port: number }> {
  const relay = spawnScript("tcp_relay.ts", ["--port", "0", "--to", to, ...args], {
    permissions,
  });
  return { relay, port: await relay.listeningPort() };
}

/** Waits until `path` exists (a peer creating its Unix socket). */
async function waitForPath(path: string): Promise<void> {
  for (let tries = 0; tries < 500; tries++) {
    try {
      await Deno.lstat(path);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  throw new Error(`${path} never appeared`);
}

Deno.test({
  name: "tcp_relay.ts relays nc and socat sessions to echo_server.ts and narrates them",
  ignore: !hasPeer("nc") || !hasPeer("socat"),
  async fn() {
    const { echo, port: echoPort } = await startEcho();
    await using _echo = echo;
    const { relay, port } = await startRelay(`127.0.0.1:${echoPort}`);
    await using _relay = relay;
    // nc -N half-closes at the end of its input; socat does by default.
    const nc = await runPeer("nc", ["-N", "127.0.0.1", `${port}`], { stdin: "hello via nc\n" });
    assertEquals([nc.code, decoder.decode(nc.stdout)], [0, "hello via nc\n"], nc.stderr);
    const socat = await runPeer("socat", ["-", `TCP:127.0.0.1:${port}`], {
      stdin: "hello via socat\n",
    });
    assertEquals([socat.code, decoder.decode(socat.stdout)], [0, "hello via socat\n"]);
    await relay.waitForStdout(/^closed .*16 bytes to upstream, 16 back$/m);
    const { code, stdout, stderr } = await relay.stop("SIGINT");
    assertEquals(code, 0);
    assertMatch(
      stdout,
      new RegExp(
        [
          `^relaying 127\\.0\\.0\\.1:\\d+ to 127\\.0\\.0\\.1:${echoPort}`,
          "closed 127\\.0\\.0\\.1:\\d+: 13 bytes to upstream, 13 back",
          `relaying 127\\.0\\.0\\.1:\\d+ to 127\\.0\\.0\\.1:${echoPort}`,
          "closed 127\\.0\\.0\\.1:\\d+: 16 bytes to upstream, 16 back",
          "$",
        ].join("\n"),
      ),
    );
    assertEquals(
      stderr,
      [
        `Listening on 127.0.0.1:${port}`,
        `relaying each connection to 127.0.0.1:${echoPort}`,
        "stopped after 2 connections: 29 bytes to upstream, 29 bytes back",
        "",
      ].join("\n"),
    );
  },
});

Deno.test({
  name: "tcp_relay.ts passes half-closes both ways between a client and an nc upstream",
  ignore: !hasPeer("nc"),
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/nc.sock`;
    try {
      // nc on a Unix socket: says hello, shuts its side down (-N), prints what it is sent.
      const nc = new Deno.Command("nc", {
        args: ["-N", "-lU", path],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = nc.stdin.getWriter();
      await writer.write(encoder.encode("hello from nc\n"));
      await writer.close();
      await waitForPath(path);
      const { relay, port } = await startRelay(`unix:${path}`, ["--quiet"], [
        `--allow-net=127.0.0.1,unix:${path}`,
        `--allow-read=${path}`,
        `--allow-write=${path}`,
      ]);
      await using _relay = relay;
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      // The client reads nc's hello and its end of stream while its own side is still open.
      const buffer = new Uint8Array(64);
      let heard = "";
      for (let n; (n = await conn.read(buffer)) !== null;) {
        heard += decoder.decode(buffer.subarray(0, n));
      }
      assertEquals(heard, "hello from nc\n");
      await writeAll(conn, encoder.encode("and back to nc\n"));
      await conn.closeWrite();
      const { code, stdout } = await nc.output();
      assertEquals([code, decoder.decode(stdout)], [0, "and back to nc\n"]);
      assertEquals((await relay.stop("SIGINT")).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "tcp_relay.ts relays to a socat upstream on a Unix socket",
  ignore: !hasPeer("socat"),
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/socat.sock`;
    const socat = new Deno.Command("socat", {
      args: [`UNIX-LISTEN:${path},fork`, "EXEC:rev"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitForPath(path);
      const { relay, port } = await startRelay(`unix:${path}`, ["--quiet"], [
        `--allow-net=127.0.0.1,unix:${path}`,
        `--allow-read=${path}`,
        `--allow-write=${path}`,
      ]);
      await using _relay = relay;
      const client = await runPeer("socat", ["-", `TCP:127.0.0.1:${port}`], {
        stdin: "relayed to socat\n",
      });
      assertEquals(decoder.decode(client.stdout), "tacos ot deyaler\n");
      assertEquals((await relay.stop("SIGINT")).code, 0);
    } finally {
      socat.kill("SIGTERM");
      await socat.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("tcp_relay.ts logs one line and closes the client when the upstream refuses", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = taken.addr.port;
  taken.close();
  const { relay, port } = await startRelay(`127.0.0.1:${deadPort}`, ["--quiet"]);
  await using _relay = relay;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  assertEquals(await conn.read(new Uint8Array(1)), null);
  await relay.waitForStderr(/cannot relay/);
  const { code, stdout, stderr } = await relay.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(stdout, "");
  assertEquals(
    stderr,
    [
      `Listening on 127.0.0.1:${port}`,
      `127.0.0.1:${conn.localAddr.port}: cannot relay: 127.0.0.1:${deadPort}: Connection refused (is the server running?)`,
      "",
    ].join("\n"),
  );
});

Deno.test("tcp_relay.ts --json reports the bytes each way when a relay closes", async () => {
  const { echo, port: echoPort } = await startEcho();
  await using _echo = echo;
  const { relay, port } = await startRelay(`127.0.0.1:${echoPort}`, ["--json"]);
  await using _relay = relay;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = `127.0.0.1:${conn.localAddr.port}`;
  await writeAll(conn, encoder.encode("count me"));
  await conn.closeWrite();
  assertEquals(decoder.decode(await new Response(conn.readable).arrayBuffer()), "count me");
  await relay.waitForStdout(/"event":"close"/);
  const { code, stdout } = await relay.stop("SIGINT");
  assertEquals(code, 0);
  const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
  for (const event of events) assert(!Number.isNaN(Date.parse(event.time)), event.time);
  assertEquals(events.map(({ time: _, ...rest }) => rest), [
    { event: "open", peer: local, upstream: `127.0.0.1:${echoPort}` },
    {
      event: "close",
      peer: local,
      upstream: `127.0.0.1:${echoPort}`,
      bytes: 16,
      bytes_to_upstream: 8,
      bytes_to_client: 8,
      reason: "eof",
    },
  ]);
});

Deno.test({
  name: "tcp_relay.ts -x dumps each direction as xxd does",
  ignore: !hasPeer("xxd"),
  async fn() {
    const { echo, port: echoPort } = await startEcho();
    await using _echo = echo;
    const { relay, port } = await startRelay(`127.0.0.1:${echoPort}`, ["-x"]);
    await using _relay = relay;
    const message = new Uint8Array(40).map((_, i) => (i * 37) % 256); // escapes and high bytes
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, message);
    await conn.closeWrite();
    assertEquals(new Uint8Array(await new Response(conn.readable).arrayBuffer()), message);
    await relay.waitForStdout(/^closed /m);
    const { stdout } = await relay.stop("SIGINT");
    const dump = await xxd(message);
    const local = `127.0.0.1:${conn.localAddr.port}`;
    const upstream = `127.0.0.1:${echoPort}`;
    // The echo may come back in more than one piece: compare the client's direction whole.
    assertStringIncludes(stdout, `${local} > ${upstream}: 40 bytes\n${dump}`);
    assertStringIncludes(stdout, `${local} < ${upstream}: `);
  },
});

Deno.test("tcp_relay.ts drains and exits 0 on SIGINT with clients connected", async () => {
  const { echo, port: echoPort } = await startEcho();
  await using _echo = echo;
  const { relay, port } = await startRelay(`127.0.0.1:${echoPort}`, ["--quiet"]);
  await using _relay = relay;
  const conns = await Promise.all(
    Array.from({ length: 10 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  for (const conn of conns) {
    await writeAll(conn, encoder.encode("ping"));
    const got = new Uint8Array(4);
    for (let n = 0; n < 4;) n += (await conn.read(got.subarray(n))) ?? 4;
    assertEquals(decoder.decode(got), "ping");
  }
  // Each client reads its end of stream and closes, as clients do when a server goes.
  const closing = conns.map(async (conn) => {
    assertEquals(await conn.read(new Uint8Array(1)), null);
    conn.close();
  });
  const [{ code, stderr }] = await Promise.all([relay.stop("SIGINT"), ...closing]);
  assertEquals(code, 0);
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
});

Deno.test("tcp_relay.ts asks for the upstream's permission once, at the start", async () => {
  const { code, stderr } = await runScript(
    "tcp_relay.ts",
    ["--port", "0", "--to", "127.0.0.2:10000"],
    { permissions: NET },
  );
  assertEquals(code, 1);
  assertEquals(
    stderr,
    "tcp_relay: Cannot relay to 127.0.0.2:10000 without permission: run again with --allow-net=127.0.0.2:10000\n",
  );
});

Deno.test("tcp_relay.ts exits 2 on bad flags", async () => {
  for (
    const args of [
      ["--to", "localhost"],
      ["--to", "::1:80"],
      ["--listen", "unix:"],
      ["--to", "127.0.0.1:0"],
      ["--listen", "unix:/tmp/x.sock", "--tls"],
      ["--ca", "ca.pem"],
      ["--connect-timeout", "soon"],
      ["--hex", "--json"],
    ]
  ) {
    const { code, stdout, stderr } = await runScript("tcp_relay.ts", args, { permissions: NET });
    assertEquals(code, 2, args.join(" "));
    assertEquals(stdout, "");
    assertMatch(stderr, /^tcp_relay: .* \(see --help\)\n$/);
  }
});

Deno.test("tcp_relay.ts --help names its defaults", async () => {
  const { code, stdout } = await runScript("tcp_relay.ts", ["--help"], { permissions: NET });
  assertEquals(code, 0);
  assertStringIncludes(stdout, "[default: 127.0.0.1:9000]");
  assertStringIncludes(stdout, "[default: 127.0.0.1:10000]");
});
