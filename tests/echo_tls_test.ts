import { assertEquals, assertStringIncludes } from "@std/assert";
import { runBench } from "../scripts/echo_bench.ts";
import { serveEcho } from "../lib/mux/mod.ts";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

Deno.test({
  name: "echo_server.ts --tls echoes to echo_client.ts --tls and to socat OPENSSL",
  ignore: !hasOpenssl() || !hasPeer("socat"),
  async fn() {
    await using certs = await createTestCertificates();
    const permissions = ["--allow-net=127.0.0.1", `--allow-read=${certs.dir}`];
    await using server = spawnScript(
      "echo_server.ts",
      ["--port", "0", "--quiet", "--tls", "--cert", certs.certFile, "--key", certs.keyFile],
      { permissions },
    );
    const port = await server.listeningPort();
    const client = await runScript(
      "echo_client.ts",
      ["--port", `${port}`, "--tls", "--ca", certs.caFile, "--message", "over TLS"],
      { permissions },
    );
    assertEquals(client.code, 0, client.stderr);
    assertEquals(client.stdout.match(/received "over TLS"/g)?.length, 2);

    const socat = await runPeer("socat", [
      "-",
      `OPENSSL:127.0.0.1:${port},cafile=${certs.caFile},verify=1,commonname=127.0.0.1,shut-down`,
    ], { stdin: "hello from socat\n" });
    assertEquals(new TextDecoder().decode(socat.stdout), "hello from socat\n", socat.stderr);
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});

Deno.test({
  name: "echo_client.ts --tls without the server's CA fails in one line with exit code 1",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const server = await serveEcho({ port: 0, tls: { cert: certs.cert, key: certs.key } });
    try {
      const { port } = server.addr as Deno.NetAddr;
      const client = await runScript("echo_client.ts", ["--port", `${port}`, "--tls"], {
        permissions: ["--allow-net=127.0.0.1"],
      });
      assertEquals(client.code, 1);
      assertStringIncludes(client.stderr, "echo_client: TLS handshake with 127.0.0.1:");
      assertStringIncludes(client.stderr, "--ca FILE");
    } finally {
      server.close();
      await server.finished;
    }
  },
});

Deno.test({
  name: "runBench() verifies every byte over TLS against serveEcho()",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const server = await serveEcho({ port: 0, tls: { cert: certs.cert, key: certs.key } });
    try {
      const result = await runBench({
        mode: "pingpong",
        port: (server.addr as Deno.NetAddr).port,
        connections: 4,
        durationMs: 200,
        tls: { caCerts: [certs.caCert] },
      });
      assertEquals(result.errors.total, 0, String(result.firstError));
      assertEquals(result.connectionsOpened, 4);
    } finally {
      server.close();
      await server.finished;
    }
  },
});

Deno.test({
  name: "serveEcho() over TLS echoes to ncat --ssl, which verifies the certificate",
  ignore: !hasOpenssl() || !hasPeer("ncat"),
  async fn() {
    await using certs = await createTestCertificates();
    const server = await serveEcho({ port: 0, tls: { cert: certs.cert, key: certs.key } });
    try {
      const { port } = server.addr as Deno.NetAddr;
      const ncat = await runPeer("ncat", [
        "--ssl",
        "--ssl-verify",
        "--ssl-trustfile",
        certs.caFile,
        // ncat checks host names only, not IP addresses, against the certificate.
        "--ssl-servername",
        "localhost",
        "127.0.0.1",
        `${port}`,
      ], { stdin: "hello from ncat\n" });
      assertEquals(new TextDecoder().decode(ncat.stdout), "hello from ncat\n", ncat.stderr);
    } finally {
      server.close();
      await server.finished;
    }
  },
});
