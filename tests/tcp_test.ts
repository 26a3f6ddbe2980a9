import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fetchGreeting } from "../scripts/tcp_client.ts";
import { serveGreeting } from "../scripts/tcp_server.ts";
import { hasPeer, runPeer, runScript, spawnScript, startPortPeer } from "./_process.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const NET = ["--allow-net=127.0.0.1"];
const decoder = new TextDecoder();

async function readAll(conn: Deno.Conn): Promise<string> {
  return await new Response(conn.readable).text();
}

Deno.test("serveGreeting() greets every client and stops after count", async () => {
  const seen: string[] = [];
  const server = await serveGreeting({
    port: 0,
    count: 3,
    onConnection: (a) => seen.push(a.transport),
  });
  const { port } = server.addr as Deno.NetAddr;
  const replies = await Promise.all(
    [1, 2, 3].map(async () => readAll(await Deno.connect({ hostname: "127.0.0.1", port }))),
  );
  await server.finished;
  assertEquals(replies, Array(3).fill("Thank you for connecting"));
  assertEquals(seen, ["tcp", "tcp", "tcp"]);
});

Deno.test("serveGreeting() delivers the greeting to a client that sends data it never reads", async () => {
  const server = await serveGreeting({ port: 0, count: 1, message: "hello" });
  const { port } = server.addr as Deno.NetAddr;
  const result = await fetchGreeting({ port, send: new Uint8Array(100_000).fill(65) });
  await server.finished;
  assertEquals(decoder.decode(result.data), "hello");
});

Deno.test("serveGreeting() stops on its signal and close() is safe twice", async () => {
  const controller = new AbortController();
  const server = await serveGreeting({ port: 0, signal: controller.signal });
  controller.abort();
  server.close();
  await server.finished;
});

Deno.test("fetchGreeting() stops at maxBytes and reports the truncation", async () => {
  const server = await serveGreeting({ port: 0, count: 1, message: "0123456789" });
  const { port } = server.addr as Deno.NetAddr;
  const result = await fetchGreeting({ port, maxBytes: 4 });
  await server.finished;
  assertEquals(decoder.decode(result.data), "0123");
  assertEquals(result.truncated, true);
});

Deno.test("tcp_server.ts prints its address, greets, and exits 0 after --count", async () => {
  await using server = spawnScript("tcp_server.ts", ["--port", "0", "--count", "1"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = conn.localAddr as Deno.NetAddr;
  assertEquals(await readAll(conn), "Thank you for connecting");
  const result = await server.result();
  assertEquals(result.code, 0);
  assertEquals(result.stdout, `Got connection from 127.0.0.1:${local.port}\n`);
  assertEquals(result.stderr, `Listening on 127.0.0.1:${port}\n`);
});

Deno.test("tcp_server.ts --json prints one object per connection and SIGINT stops it with 0", async () => {
  await using server = spawnScript("tcp_server.ts", ["--port", "0", "--json"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = conn.localAddr as Deno.NetAddr;
  await readAll(conn);
  await server.waitForStdout(/connection/);
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
  const { time, ...event } = JSON.parse(result.stdout);
  assertEquals(event, {
    event: "connection",
    peer: `127.0.0.1:${local.port}`,
    local: `127.0.0.1:${port}`,
  });
  assert(!Number.isNaN(Date.parse(time)), time);
});

Deno.test("tcp_server.ts and tcp_client.ts talk over IPv6 and print bracketed addresses", async () => {
  await using server = spawnScript("tcp_server.ts", ["--host", "::1", "--port", "0"], {
    permissions: ["--allow-net=[::1]"],
  });
  const port = await server.listeningPort();
  assertStringIncludes(server.stderr.text, `Listening on [::1]:${port}`);
  const client = await runScript("tcp_client.ts", ["--host", "[::1]", "--port", `${port}`], {
    permissions: ["--allow-net=[::1]"],
  });
  assertEquals(client, { code: 0, signal: null, stdout: "Thank you for connecting\n", stderr: "" });
  await server.waitForStdout(/Got connection from \[::1\]:\d+/);
});

Deno.test("tcp_server.ts and tcp_client.ts talk over a Unix socket, and the file is removed", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/greet.sock`;
  const permissions = [`--allow-net=unix:${path}`, `--allow-read=${path}`, `--allow-write=${path}`];
  try {
    await using server = spawnScript("tcp_server.ts", ["--unix", path, "--count", "1"], {
      permissions,
    });
    await server.waitForStderr(new RegExp(`^Listening on unix:${path}$`, "m"));
    const client = await runScript("tcp_client.ts", ["--unix", path], { permissions });
    assertEquals(client.stdout, "Thank you for connecting\n");
    const result = await server.result();
    assertEquals(result.code, 0);
    assertEquals(result.stdout, "Got connection from unix:(unnamed)\n");
    assertEquals(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tcp_server.ts refuses to bind over a file that is not a socket", async () => {
  const path = await Deno.makeTempFile();
  try {
    const result = await runScript("tcp_server.ts", ["--unix", path], {
      permissions: [`--allow-net=unix:${path}`, `--allow-read=${path}`, `--allow-write=${path}`],
    });
    assertEquals(result.code, 1);
    assertEquals(result.stderr, `tcp_server: Refusing to replace "${path}": it is not a socket\n`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("tcp_server.ts rejects bad flags with one line and exit code 2", async () => {
  const cases: [string[], string][] = [
    [["--port", "70000"], 'Cannot parse --port "70000": must be an integer from 0 to 65535'],
    [["--port", "abc"], 'Cannot parse --port "abc": must be an integer from 0 to 65535'],
    [["--bogus"], 'Unknown flag "--bogus"'],
    [["--host", "no such host!"], 'Cannot parse --host "no such host!"'],
    [["--unix", "/tmp/x.sock", "--port", "1"], 'Flags "--unix" and "--port" exclude each other'],
  ];
  for (const [args, message] of cases) {
    const result = await runScript("tcp_server.ts", args, { permissions: NET });
    assertEquals(result.code, 2, args.join(" "));
    assertEquals(result.stderr.trim().split("\n").length, 1);
    assertStringIncludes(result.stderr, `tcp_server: ${message}`);
  }
});

Deno.test("tcp_server.ts --help prints usage and exits 0", async () => {
  const result = await runScript("tcp_server.ts", ["--help"], { permissions: [] });
  assertEquals(result.code, 0);
  assertStringIncludes(result.stdout, "--backlog N");
});

Deno.test("tcp_server.ts reports a port in use and a missing permission in one line, exit 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  const inUse = await runScript("tcp_server.ts", ["--port", `${port}`], { permissions: NET });
  assertEquals(inUse.code, 1);
  assertEquals(
    inUse.stderr,
    `tcp_server: 127.0.0.1:${port}: Address already in use (is another server running there?)\n`,
  );
  const denied = await runScript("tcp_server.ts", ["--port", "0"], { permissions: [] });
  assertEquals(denied.code, 1);
  assertEquals(
    denied.stderr,
    "tcp_server: Cannot listen on 127.0.0.1:0 without permission: run again with --allow-net=127.0.0.1\n",
  );
  assertEquals(denied.stderr.trim().split("\n").length, 1);
});

Deno.test("tcp_client.ts reports a refused connection in one line with exit code 1", async () => {
  const port = (() => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return listener.addr.port;
  })();
  const result = await runScript("tcp_client.ts", ["--port", `${port}`], { permissions: NET });
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    `tcp_client: 127.0.0.1:${port}: Connection refused (is the server running?)\n`,
  );
});

Deno.test("tcp_client.ts escapes control characters and gives up after --timeout", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const args = ["--port", `${listener.addr.port}`, "--timeout", "300ms"];
  const client = runScript("tcp_client.ts", args, { permissions: NET });
  // The first client gets hostile bytes; the second gets nothing and times out.
  const first = await listener.accept();
  await first.write(new Uint8Array([...new TextEncoder().encode("ok\x1b[2J\x07\n"), 0xff]));
  first.close();
  const escaped = await client;
  assertEquals(escaped.stdout, "ok\\x1b[2J\\x07\n\\xff\n");

  const silent = runScript("tcp_client.ts", args, { permissions: NET });
  using _silentPeer = await listener.accept();
  const timedOut = await silent;
  assertEquals(timedOut.code, 1);
  assertEquals(
    timedOut.stderr,
    `tcp_client: 127.0.0.1:${listener.addr.port}: No data for 300 ms\n`,
  );
});

Deno.test({
  name: "tcp_server.ts greets the tutorial's own Python client",
  ignore: !hasPeer("python3"),
  async fn() {
    await using server = spawnScript("tcp_server.ts", ["--port", "0", "--count", "1"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    // client.py from the tutorial, with the port it is told and the missing close() call.
    const clientPy = `
import socket
s = socket.socket()
s.connect(("127.0.0.1", ${port}))
print(s.recv(1024).decode())
s.close()`;
    const python = await runPeer("python3", ["-c", clientPy]);
    assertEquals(decoder.decode(python.stdout), "Thank you for connecting\n");
    assertEquals((await server.result()).code, 0);
  },
});

Deno.test({
  name: "tcp_client.ts reads everything from the tutorial's Python server",
  ignore: !hasPeer("python3"),
  async fn() {
    // server.py from the tutorial, on a free port it prints, sending in two parts.
    const serverPy = `
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(5)
print(s.getsockname()[1], flush=True)
c, addr = s.accept()
c.send(b"Thank you ")
time.sleep(0.05)
c.send(b"for connecting")
c.close()`;
    await using python = await startPortPeer("python3", ["-c", serverPy]);
    const client = await runScript("tcp_client.ts", ["--port", `${python.port}`], {
      permissions: NET,
    });
    assertEquals(client.stdout, "Thank you for connecting\n");
    assertEquals(client.code, 0);
  },
});

Deno.test({
  name: "tcp_server.ts greets nc, which sees the whole message and the close",
  ignore: !hasPeer("nc"),
  async fn() {
    await using server = spawnScript("tcp_server.ts", ["--port", "0", "--count", "1"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    const nc = await runPeer("nc", ["-N", "127.0.0.1", `${port}`], { stdin: "" });
    assertEquals(decoder.decode(nc.stdout), "Thank you for connecting");
    assert((await server.result()).code === 0);
  },
});

Deno.test({
  name: "tcp_server.ts --tls greets tcp_client.ts --tls --ca, and openssl s_client verifies it",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const read = `--allow-read=${certs.dir}`;
    await using server = spawnScript(
      "tcp_server.ts",
      ["--port", "0", "--tls", "--cert", certs.certFile, "--key", certs.keyFile, "--count", "2"],
      { permissions: [...NET, read] },
    );
    const port = await server.listeningPort();
    const client = await runScript(
      "tcp_client.ts",
      ["--port", `${port}`, "--tls", "--ca", certs.caFile],
      { permissions: [...NET, read] },
    );
    assertEquals(client.stdout, "Thank you for connecting\n");
    assertEquals(client.code, 0);
    const sClient = await runPeer("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-CAfile",
      certs.caFile,
      "-verify_return_error",
      "-verify_ip",
      "127.0.0.1",
      "-quiet",
    ], { stdin: "" });
    assertEquals(decoder.decode(sClient.stdout), "Thank you for connecting");
    assertEquals((await server.result()).code, 0);
  },
});

Deno.test({
  name: "tcp_client.ts --tls refuses a server its --ca does not vouch for, in one line",
  ignore: !hasOpenssl(),
  async fn() {
    await using trusted = await createTestCertificates();
    await using other = await createTestCertificates();
    const server = await serveGreeting({
      port: 0,
      count: 1,
      tls: { cert: other.cert, key: other.key },
    });
    const { port } = server.addr as Deno.NetAddr;
    const client = await runScript(
      "tcp_client.ts",
      ["--port", `${port}`, "--tls", "--ca", trusted.caFile],
      { permissions: [...NET, `--allow-read=${trusted.dir}`] },
    );
    await server.finished;
    assertEquals(client.code, 1);
    assertEquals(client.stderr.trim().split("\n").length, 1);
    assertStringIncludes(client.stderr, "not signed by a trusted CA: trust its CA with --ca FILE");
  },
});
