import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";
import { curl, NET, SCRIPT, startServer, tlsArgs } from "./http2_fixture.ts";

const noCurl = !hasPeer("curl");
const decoder = new TextDecoder();

Deno.test({
  name: "http2_server answers curl --http2-prior-knowledge with its headers as JSON",
  ignore: noCurl,
  async fn() {
    const { server, port } = await startServer([]);
    await using _ = server;
    const { status, headers, body } = await curl([
      "--http2-prior-knowledge",
      "-H",
      "x-trace: 42",
      `http://127.0.0.1:${port}/some/path?q=1`,
    ]);
    assertEquals(status, "HTTP/2 200");
    assertEquals(headers.get("content-type"), "application/json");
    assertEquals(headers.get("server"), "deno-sockets-http2");
    assertEquals(body, {
      method: "GET",
      path: "/some/path?q=1",
      protocol: "HTTP/2",
      headers: {
        ":method": "GET",
        ":scheme": "http",
        ":authority": `127.0.0.1:${port}`,
        ":path": "/some/path?q=1",
        "accept": "*/*",
        "user-agent": (body.headers as Record<string, string>)["user-agent"],
        "x-trace": "42",
      },
      body_bytes: 0,
    });
    await server.waitForStdout(/"GET \/some\/path\?q=1 HTTP\/2" 200 \d+$/m);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assertMatch(result.stdout, /^127\.0\.0\.1:\d+ "GET \/some\/path\?q=1 HTTP\/2" 200 \d+\n$/);
  },
});

Deno.test({
  name: "http2_server answers HTTP/1.1 on the same cleartext port and logs JSON with --json",
  ignore: noCurl,
  async fn() {
    const { server, port } = await startServer(["--json"]);
    await using _ = server;
    const { status, body } = await curl([
      "--http1.1",
      "--data-binary",
      "hello",
      `http://127.0.0.1:${port}/`,
    ]);
    assertEquals(status, "HTTP/1.1 200 OK");
    assertEquals([body.method, body.protocol, body.body_bytes], ["POST", "HTTP/1.1", 5]);
    assertEquals((body.headers as Record<string, string>).host, `127.0.0.1:${port}`);
    assert(!(":method" in (body.headers as object)), "no pseudo-headers over HTTP/1.1");
    const [line] = await server.waitForStdout(/^\{.*\}$/m);
    const entry = JSON.parse(line);
    assertEquals(Object.keys(entry).slice(0, 4), ["event", "time", "peer", "bytes"]);
    assertEquals(entry.event, "request");
    assertMatch(entry.peer, /^127\.0\.0\.1:\d+$/);
    assertEquals(
      [entry.method, entry.path, entry.protocol, entry.status, entry.body_bytes],
      ["POST", "/", "HTTP/1.1", 200, 5],
    );
    assert(entry.bytes > 0);
    assertEquals((await server.stop("SIGTERM")).code, 0);
  },
});

Deno.test({
  name: "http2_server listens on [::1] and prints the address in brackets",
  ignore: noCurl,
  async fn() {
    await using server = spawnScript(SCRIPT, ["--host", "::1", "--port", "0", "--quiet"], {
      permissions: ["--allow-net=[::1],127.0.0.1"],
    });
    const [, port] = await server.waitForStderr(/^Listening on \[::1\]:(\d+)$/m);
    const { status, body } = await curl([
      "-g",
      "--http2-prior-knowledge",
      `http://[::1]:${port}/v6`,
    ]);
    assertEquals(status, "HTTP/2 200");
    assertEquals((body.headers as Record<string, string>)[":authority"], `[::1]:${port}`);
    const result = await server.stop("SIGINT");
    assertEquals([result.code, result.stdout], [0, ""]);
  },
});

Deno.test({
  name: "http2_server negotiates h2 and http/1.1 by ALPN with --tls",
  ignore: noCurl || !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const { args, permissions } = tlsArgs(certs);
    const { server, port } = await startServer(["--quiet", ...args], permissions);
    await using _ = server;
    for (const host of ["127.0.0.1", "localhost"]) {
      const h2 = await curl(["--http2", "--cacert", certs.caFile, `https://${host}:${port}/tls`]);
      assertStringIncludes(h2.verbose, "ALPN: server accepted h2");
      assertEquals(h2.status, "HTTP/2 200");
      assertEquals(h2.body.protocol, "HTTP/2");
      assertEquals((h2.body.headers as Record<string, string>)[":scheme"], "https");
    }
    const h1 = await curl(["--http1.1", "--cacert", certs.caFile, `https://127.0.0.1:${port}/`]);
    assertStringIncludes(h1.verbose, "ALPN: server accepted http/1.1");
    assertEquals(h1.status, "HTTP/1.1 200 OK");
    assertEquals(h1.body.protocol, "HTTP/1.1");
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test({
  name: "http2_server answers every request of a bounded h2load run",
  ignore: !hasPeer("h2load"),
  async fn() {
    const { server, port } = await startServer(["--quiet"]);
    await using _ = server;
    const { code, stdout, stderr } = await runPeer(
      "h2load",
      ["-n", "200", "-c", "4", "-m", "10", `http://127.0.0.1:${port}/load`],
      { timeoutMs: 30_000 },
    );
    const report = decoder.decode(stdout);
    assertEquals(code, 0, report + stderr);
    assertStringIncludes(report, "200 succeeded, 0 failed, 0 errored, 0 timeout");
    assertStringIncludes(report, "status codes: 200 2xx");
    assertStringIncludes(report, "Application protocol: h2c");
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test("http2_server stops on SIGINT even when an HTTP/2 client ignores GOAWAY", async () => {
  const { server, port } = await startServer(["--grace", "200ms"]);
  await using _ = server;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // The HTTP/2 preface and an empty SETTINGS frame, then silence: an idle h2c connection.
  const preface = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  await conn.write(new Uint8Array([...preface, 0, 0, 0, 4, 0, 0, 0, 0, 0]));
  const buffer = new Uint8Array(4096);
  assert(await conn.read(buffer), "the server's SETTINGS");
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0, result.stderr);
  assertStringIncludes(
    result.stderr,
    "Closed 1 connection still open 200 ms after the stop signal",
  );
  while (await conn.read(buffer) !== null) { /* GOAWAY and PING frames, then the end */ }
});

Deno.test({
  name: "http2_server serves h2c on a Unix socket and removes it on SIGINT",
  ignore: noCurl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deno-sockets-http2-" });
    const path = `${dir}/h2.sock`;
    try {
      await using server = spawnScript(SCRIPT, ["--unix", path, "--quiet"], {
        permissions: [
          `--allow-net=127.0.0.1,unix:${path}`,
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
        ],
      });
      await server.waitForStderr(/^Listening on unix:/m);
      const { status, body } = await curl([
        "--http2-prior-knowledge",
        "--unix-socket",
        path,
        "http://localhost/unix",
      ]);
      assertEquals([status, body.protocol, body.path], ["HTTP/2 200", "HTTP/2", "/unix"]);
      assertEquals((await server.stop("SIGINT")).code, 0);
      assertEquals(await Deno.lstat(path).catch((error) => error.name), "NotFound");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "http2_server logs the client a PROXY header names (--proxy-protocol), h2c and HTTP/1.1",
  ignore: noCurl,
  async fn() {
    const { server, port } = await startServer(["--proxy-protocol", "--json"]);
    await using _ = server;
    // curl sends a PROXY v1 header with its own addresses, then speaks h2c.
    const { body } = await curl([
      "--haproxy-protocol",
      "--http2-prior-knowledge",
      `http://127.0.0.1:${port}/curl`,
    ]);
    assertEquals(body.protocol, "HTTP/2");
    // A balancer's header naming a client elsewhere (a documentation address, RFC 5737).
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(
      "PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\n" +
        "GET /balanced HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    const reply = await new Response(conn.readable).text();
    assertMatch(reply, /^HTTP\/1\.1 200 OK\r\n/);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    const peers = result.stdout.trim().split("\n").map((line) => JSON.parse(line).peer);
    assertMatch(peers[0], /^127\.0\.0\.1:\d+$/);
    assertEquals(peers[1], "203.0.113.7:51000");
  },
});

Deno.test("http2_server exits 2 with one line for bad flags", async () => {
  for (
    const args of [
      ["--prot", "1"],
      ["--port", "70000"],
      ["--cert", "server.pem", "--key", "server.key"],
      ["--tls", "--cert", "server.pem"],
      ["--unix", "/tmp/x.sock", "--tls", "--cert", "a", "--key", "b"],
      ["--quiet", "--json"],
      ["--max-body", "lots"],
      ["--idle-timeout", "0"],
      ["--header-timeout", "soon"],
      ["--proxy-timeout", "1s"],
      ["--proxy-protocol", "--tls", "--cert", "a", "--key", "b"],
    ]
  ) {
    const result = await runScript(SCRIPT, args, { permissions: NET });
    assertEquals(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assertMatch(result.stderr, /^http2_server: .* \(see --help\)\n$/);
  }
  const help = await runScript(SCRIPT, ["--help"], { permissions: NET });
  assertEquals(help.code, 0);
  for (const text of ["--http2-prior-knowledge", "[default: 64M]", "\nRun:", "\nTry it:"]) {
    assertStringIncludes(help.stdout, text);
  }
});

Deno.test("http2_server exits 1 with one line when the port is in use", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = await runScript(SCRIPT, ["--port", String(taken.addr.port)], {
    permissions: NET,
  });
  assertEquals(result.code, 1);
  assertMatch(result.stderr, /^http2_server: [^\n]*Address already in use[^\n]*\n$/);
});

Deno.test("http2_server names the flag it needs instead of prompting", async () => {
  const result = await runScript(SCRIPT, ["--host", "::1", "--port", "0"], {
    permissions: ["--allow-net=[::1]"],
  });
  assertEquals(result.code, 1);
  assertStringIncludes(result.stderr, "run again with --allow-net=127.0.0.1");
});

Deno.test("http2_server exits 1 naming a certificate file it cannot read", async () => {
  const missing = "/nonexistent/server.pem";
  const result = await runScript(SCRIPT, ["--tls", "--cert", missing, "--key", missing], {
    permissions: [...NET, "--allow-read=/nonexistent"],
  });
  assertEquals(result.code, 1);
  assertEquals(result.stderr, `http2_server: Cannot read --cert "${missing}": no such file\n`);
});
