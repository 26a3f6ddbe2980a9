import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function echoOnce(port: number, text: string): Promise<{ local: string; echoed: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = `127.0.0.1:${conn.localAddr.port}`;
  await conn.write(encoder.encode(text));
  await conn.closeWrite();
  const echoed = decoder.decode(await new Response(conn.readable).arrayBuffer());
  return { local, echoed };
}

Deno.test("echo_server.ts narrates each connection like the original", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0"], { permissions: NET });
  const port = await server.listeningPort();
  const { local, echoed } = await echoOnce(port, "This is the message. \x1b[31m");
  assertEquals(echoed, "This is the message. \x1b[31m");
  await server.waitForStdout(/^closing /m);
  const { code, stdout, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(
    stdout,
    [
      `new connection from ${local}`,
      `received "This is the message. \\x1b[31m" from ${local}`,
      `sending "This is the message. \\x1b[31m" to ${local}`,
      `closing ${local}`,
      "",
    ].join("\n"),
  );
  assertEquals(
    stderr,
    [
      `Listening on 127.0.0.1:${port}`,
      "stopped after 1 connection and 26 bytes echoed",
      "",
    ].join("\n"),
  );
});

Deno.test("echo_server.ts --quiet prints only the listening line", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  assertEquals((await echoOnce(port, "quiet please")).echoed, "quiet please");
  const { code, stdout, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(stdout, "");
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
});

Deno.test("echo_server.ts --json prints one object per event", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--json"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const { local } = await echoOnce(port, "hi\n");
  await server.waitForStdout(/"closing"/);
  const { code, stdout } = await server.stop("SIGINT");
  assertEquals(code, 0);
  const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
  for (const event of events) assert(!Number.isNaN(Date.parse(event.time)), event.time);
  assertEquals(events.map(({ time: _, ...rest }) => rest), [
    { event: "connection", peer: local },
    { event: "received", peer: local, bytes: 3, data: "hi\n" },
    { event: "sending", peer: local, bytes: 3, data: "hi\n" },
    { event: "closing", peer: local, reason: "eof" },
  ]);
});

Deno.test("echo_server.ts drains and exits 0 on SIGINT with clients connected", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const conns = await Promise.all(
    Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  // Each client has had its echo and stays connected, idle, when the signal comes.
  for (const conn of conns) {
    await conn.write(encoder.encode("hello"));
    const echo = new Uint8Array(5);
    for (let got = 0; got < 5;) got += (await conn.read(echo.subarray(got))) ?? 5;
    assertEquals(decoder.decode(echo), "hello");
  }
  const { code, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
  // The server closed every connection: each client reads the end of stream.
  for (const conn of conns) {
    assertEquals(await conn.read(new Uint8Array(1)), null);
    conn.close();
  }
});

Deno.test("echo_server.ts exits 2 on bad flags", async () => {
  for (
    const args of [["--port", "abc"], ["--bogus"], ["--unix", "/tmp/x", "--host", "::1"], [
      "--idle-timeout",
      "soon",
    ], ["--high-water-mark", "0"]]
  ) {
    const { code, stdout, stderr } = await runScript("echo_server.ts", args, { permissions: NET });
    assertEquals(code, 2, args.join(" "));
    assertEquals(stdout, "");
    assertMatch(stderr, /^echo_server: .* \(see --help\)\n$/);
  }
});

Deno.test("echo_server.ts --help prints usage and exits 0", async () => {
  const { code, stdout } = await runScript("echo_server.ts", ["--help"], { permissions: NET });
  assertEquals(code, 0);
  assertStringIncludes(stdout, "--max-connections N");
});

Deno.test("echo_server.ts exits 1 when the port is in use", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stderr } = await runScript("echo_server.ts", ["--port", `${taken.addr.port}`], {
    permissions: NET,
  });
  assertEquals(code, 1);
  assertStringIncludes(stderr, "Address already in use");
});

Deno.test("echo_server.ts --unix replaces a stale socket and removes it on SIGINT", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/echo.sock`;
  const permissions = [`--allow-read=${dir}`, `--allow-write=${dir}`, `--allow-net=unix:${path}`];
  try {
    Deno.listen({ transport: "unix", path }).close(); // leaves a stale socket file
    await using server = spawnScript("echo_server.ts", ["--unix", path], { permissions });
    await server.waitForStderr(/^Listening on unix:/m);
    const conn = await Deno.connect({ transport: "unix", path });
    await conn.write(encoder.encode("via unix"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await new Response(conn.readable).arrayBuffer()), "via unix");
    const { code, stderr } = await server.stop("SIGINT");
    assertEquals(code, 0);
    assertStringIncludes(stderr, `Listening on unix:${path}\n`);
    assertEquals(await Deno.lstat(path).then(() => "exists", () => "removed"), "removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("echo_server.ts --unix refuses to replace a file that is not a socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notes.txt`;
  try {
    await Deno.writeTextFile(path, "keep me");
    const { code, stderr } = await runScript("echo_server.ts", ["--unix", path], {
      permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`, `--allow-net=unix:${path}`],
    });
    assertEquals(code, 1);
    assertStringIncludes(stderr, "not a socket");
    assertEquals(await Deno.readTextFile(path), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("echo_client.ts talks to echo_server.ts like the original pair", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const { code, stdout, stderr } = await runScript("echo_client.ts", ["--port", `${port}`], {
    permissions: NET,
  });
  assertEquals(code, 0, stderr);
  assertEquals(stderr, `connecting to 127.0.0.1:${port}\n`);
  const lines = stdout.trim().split("\n");
  const sockets = [...new Set(lines.map((line) => line.split(": ")[0]))];
  assertEquals(sockets.length, 2);
  const [a, b] = sockets;
  assertEquals(lines, [
    `${a}: sending "This is the message. "`,
    `${b}: sending "This is the message. "`,
    `${a}: received "This is the message. "`,
    `${b}: received "This is the message. "`,
    `${a}: sending "It will be sent "`,
    `${b}: sending "It will be sent "`,
    `${a}: received "It will be sent "`,
    `${b}: received "It will be sent "`,
    `${a}: sending "in parts."`,
    `${b}: sending "in parts."`,
    `${a}: received "in parts."`,
    `${b}: received "in parts."`,
  ]);
  assertEquals((await server.stop("SIGINT")).code, 0);
});

Deno.test("echo_client.ts exits 1 when an echo does not match", async () => {
  // A server that shouts back: every echo differs from what was sent.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    await conn.write(encoder.encode(decoder.decode(buffer.subarray(0, n ?? 0)).toUpperCase()));
    await conn.read(buffer).catch(() => null); // until the client gives up
    conn.close();
  })();
  const { code, stderr } = await runScript(
    "echo_client.ts",
    ["--port", `${listener.addr.port}`, "--connections", "1", "--message", "quiet"],
    { permissions: NET },
  );
  await served;
  assertEquals(code, 1);
  assertMatch(stderr, /echo_client: Echo mismatch on .*: sent "quiet", received "QUIET"\n$/);
});

Deno.test("echo_client.ts exits 2 on bad flags", async () => {
  const { code, stderr } = await runScript("echo_client.ts", ["--connections", "0"], {
    permissions: NET,
  });
  assertEquals(code, 2);
  assertStringIncludes(stderr, "--connections");
});

Deno.test({
  name: "echo_server.ts echoes an nc session",
  ignore: !hasPeer("nc"),
  async fn() {
    await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    // -N: shut down the sending side at the end of stdin, as a half-close.
    const { code, stdout } = await runPeer("nc", ["-N", "127.0.0.1", `${port}`], {
      stdin: "hello from nc\n",
    });
    assertEquals(code, 0);
    assertEquals(decoder.decode(stdout), "hello from nc\n");
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test({
  name: "echo_server.ts echoes a socat session",
  ignore: !hasPeer("socat"),
  async fn() {
    await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    const { code, stdout } = await runPeer("socat", ["-", `TCP:127.0.0.1:${port}`], {
      stdin: "hello from socat\n",
    });
    assertEquals(code, 0);
    assertEquals(decoder.decode(stdout), "hello from socat\n");
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test({
  name: "echo_server.ts answers the original Python client's calls",
  ignore: !hasPeer("python3"),
  async fn() {
    await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    // PyMOTW's select_echo_multiclient.py, with the port of this run and the output on stdout.
    const client = `
import socket
import sys

messages = [
    'This is the message. ',
    'It will be sent ',
    'in parts.',
]
server_address = ('127.0.0.1', ${port})
socks = [
    socket.socket(socket.AF_INET, socket.SOCK_STREAM),
    socket.socket(socket.AF_INET, socket.SOCK_STREAM),
]
for s in socks:
    s.connect(server_address)
for message in messages:
    outgoing_data = message.encode()
    for s in socks:
        s.send(outgoing_data)
    for s in socks:
        data = s.recv(1024)
        print('received {!r}'.format(data))
for s in socks:
    s.close()
`;
    const { code, stdout, stderr } = await runPeer("python3", ["-c", client]);
    assertEquals(code, 0, stderr);
    assertEquals(
      decoder.decode(stdout),
      [
        "received b'This is the message. '",
        "received b'This is the message. '",
        "received b'It will be sent '",
        "received b'It will be sent '",
        "received b'in parts.'",
        "received b'in parts.'",
        "",
      ].join("\n"),
    );
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test("echo_server.ts stops with exit 0 when a connection's echo can never drain", async () => {
  await using server = spawnScript(
    "echo_server.ts",
    ["--port", "0", "--quiet", "--grace", "200ms"],
    {
      permissions: NET,
    },
  );
  const port = await server.listeningPort();
  // A client that sends and never reads: once its kernel buffers fill, its echo cannot drain.
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  const sending = (async () => {
    try {
      while (sent < 64 * 1024 * 1024) sent += await conn.write(chunk);
    } catch { /* the server closed the connection at the end of the grace period */ }
  })();
  // Once the client's writes stall, every buffer on the way is full and the server holds
  // bytes it cannot send: stop it then. (--grace keeps the wait for them short.)
  for (let last = -1; sent !== last && sent < 64 * 1024 * 1024;) {
    last = sent;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const result = await server.stop("SIGINT");
  await sending;
  assertEquals(result.code, 0);
  // The bytes it could not echo are reported, not silently lost.
  assertMatch(
    result.stderr,
    /^Listening on .*\necho_server: the stop dropped [1-9]\d* bytes it could not echo\n$/,
  );
});
