import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";
import { createTestCertificates, hasOpenssl, type TestCertificates } from "./_tls.ts";

const SCRIPT = "http2_server.ts";
/** The header's permissions, host-only because the tests bind port 0. */
const NET = ["--allow-net=127.0.0.1"];
const noCurl = !hasPeer("curl");
const decoder = new TextDecoder();

interface CurlResult {
  status: string;
  headers: Headers;
  body: Record<string, unknown>;
  verbose: string;
}

/** Runs curl with `-i`, splits the status line, headers and JSON body. */
async function curl(args: string[]): Promise<CurlResult> {
  const { code, stdout, stderr } = await runPeer("curl", ["-sS", "-i", "-v", ...args]);
  assertEquals(code, 0, stderr);
  const text = decoder.decode(stdout);
  const split = text.indexOf("\r\n\r\n");
  const [status, ...lines] = text.slice(0, split).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const body = JSON.parse(text.slice(split + 4));
  return { status: status.trimEnd(), headers, body, verbose: stderr };
}

function tlsPermissions(certs: TestCertificates): string[] {
  return [...NET, `--allow-read=${certs.certFile},${certs.keyFile}`];
}

Deno.test({
  name: "http2_server answers curl --http2-prior-knowledge with its headers as JSON",
  ignore: noCurl,
  async fn() {
    await using server = spawnScript(SCRIPT, ["--port", "0"], { permissions: NET });
    const port = await server.listeningPort();
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
    await using server = spawnScript(SCRIPT, ["--port", "0", "--json"], { permissions: NET });
    const port = await server.listeningPort();
    const { status, body } = await curl(["--http1.1", "-X", "POST", `http://127.0.0.1:${port}/`]);
    assertEquals(status, "HTTP/1.1 200 OK");
    assertEquals(body.method, "POST");
    assertEquals(body.protocol, "HTTP/1.1");
    assertEquals((body.headers as Record<string, string>).host, `127.0.0.1:${port}`);
    assert(!(":method" in (body.headers as object)), "no pseudo-headers over HTTP/1.1");
    const [line] = await server.waitForStdout(/^\{.*\}$/m);
    const entry = JSON.parse(line);
    assertEquals(entry.event, "request");
    assertEquals([entry.method, entry.path, entry.protocol, entry.status], [
      "POST",
      "/",
      "HTTP/1.1",
      200,
    ]);
    assertMatch(entry.remote, /^127\.0\.0\.1:\d+$/);
    assertEquals((await server.stop("SIGTERM")).code, 0);
  },
});

Deno.test({
  name: "http2_server listens on [::1] and prints the address in brackets",
  ignore: noCurl,
  async fn() {
    await using server = spawnScript(SCRIPT, ["--host", "::1", "--port", "0", "--quiet"], {
      permissions: ["--allow-net=[::1]"],
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
  name: "http2_server negotiates h2 and http/1.1 by ALPN over TLS",
  ignore: noCurl || !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    await using server = spawnScript(
      SCRIPT,
      ["--port", "0", "--quiet", "--cert", certs.certFile, "--key", certs.keyFile],
      { permissions: tlsPermissions(certs) },
    );
    const port = await server.listeningPort();
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
    await using server = spawnScript(SCRIPT, ["--port", "0", "--quiet"], { permissions: NET });
    const port = await server.listeningPort();
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
  await using server = spawnScript(SCRIPT, ["--port", "0", "--grace", "200ms"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
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
    "Closing connections still open 200 ms after the stop signal",
  );
  while (await conn.read(buffer) !== null) { /* GOAWAY frames, then the end */ }
});

Deno.test({
  name: "http2_server serves h2c on a Unix socket and removes it on SIGINT",
  ignore: noCurl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deno-sockets-http2-" });
    const path = `${dir}/h2.sock`;
    try {
      await using server = spawnScript(SCRIPT, ["--unix", path, "--quiet"], {
        permissions: [`--allow-net=unix:${path}`, `--allow-read=${dir}`, `--allow-write=${dir}`],
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

Deno.test("http2_server exits 2 with one line for bad flags", async () => {
  for (
    const args of [
      ["--prot", "1"],
      ["--port", "70000"],
      ["--cert", "server.pem"],
      ["--unix", "/tmp/x.sock", "--cert", "a", "--key", "b"],
      ["--quiet", "--json"],
    ]
  ) {
    const result = await runScript(SCRIPT, args, { permissions: NET });
    assertEquals(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assertMatch(result.stderr, /^http2_server: .* \(see --help\)\n$/);
  }
  const help = await runScript(SCRIPT, ["--help"], { permissions: NET });
  assertEquals(help.code, 0);
  assertStringIncludes(help.stdout, "--http2-prior-knowledge");
});

Deno.test("http2_server exits 1 with one line when the port is in use", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = await runScript(SCRIPT, ["--port", String(taken.addr.port)], {
    permissions: NET,
  });
  assertEquals(result.code, 1);
  assertMatch(result.stderr, /^http2_server: Address already in use[^\n]*\n$/);
});

Deno.test("http2_server exits 1 naming a certificate file it cannot read", async () => {
  const missing = "/nonexistent/server.pem";
  const result = await runScript(SCRIPT, ["--cert", missing, "--key", missing], {
    permissions: [...NET, "--allow-read=/nonexistent"],
  });
  assertEquals(result.code, 1);
  assertEquals(result.stderr, `http2_server: Cannot read --cert "${missing}": no such file\n`);
});
