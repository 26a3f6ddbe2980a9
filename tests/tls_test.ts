import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { UsageError } from "../lib/errors.ts";
import {
  clientTlsFromFlags,
  INSECURE_WARNING,
  isTlsFailure,
  parseAlpn,
  serverTlsFromFlags,
} from "../lib/tls.ts";
import { connect } from "../lib/net/connect.ts";
import { listen, type ServerListener } from "../lib/net/listen.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const noOpenssl = !hasOpenssl();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Accepts one connection, echoes what it reads until EOF, and reports how it ended. */
function portOf(listener: ServerListener): number {
  return (listener.addr as Deno.NetAddr).port;
}

async function echoOnce(listener: ServerListener): Promise<unknown> {
  const conn = await listener.accept();
  try {
    const buffer = new Uint8Array(1024);
    for (let n; (n = await conn.read(buffer)) !== null;) {
      for (let sent = 0; sent < n;) sent += await conn.write(buffer.subarray(sent, n));
    }
    return undefined;
  } catch (error) {
    return error;
  } finally {
    conn.close();
  }
}

async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  await conn.write(encoder.encode(text));
  await conn.closeWrite();
  return await new Response(conn.readable).text();
}

Deno.test("parseAlpn() splits commas, keeps order and drops duplicates", () => {
  assertEquals(parseAlpn([]), undefined);
  assertEquals(parseAlpn(["h2,http/1.1", "echo", "h2"]), ["h2", "http/1.1", "echo"]);
});

Deno.test("parseAlpn() rejects empty, spaced and overlong names", () => {
  for (const value of ["", "h2,", "h 2", "x".repeat(256)]) {
    assertThrows(() => parseAlpn([value]), UsageError, "Cannot parse --alpn");
  }
});

Deno.test("serverTlsFromFlags() is plain TCP without --tls and rejects TLS-only flags", async () => {
  assertEquals(await serverTlsFromFlags({ tls: false, alpn: [] }), undefined);
  await assertRejects(
    () => serverTlsFromFlags({ cert: "server.pem" }),
    UsageError,
    `Flag "--cert" needs "--tls"`,
  );
  await assertRejects(
    () => serverTlsFromFlags({ alpn: ["h2"] }),
    UsageError,
    `Flag "--alpn" needs "--tls"`,
  );
  await assertRejects(
    () => serverTlsFromFlags({ tls: true, cert: "server.pem" }),
    UsageError,
    `needs "--cert FILE" and "--key FILE"`,
  );
});

Deno.test({
  name: "serverTlsFromFlags() reads the PEM files and the ALPN list",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    const tls = await serverTlsFromFlags({
      tls: true,
      cert: certs.certFile,
      key: certs.keyFile,
      alpn: ["echo,h2"],
    });
    assertEquals(tls, { cert: certs.cert, key: certs.key, alpnProtocols: ["echo", "h2"] });
  },
});

Deno.test({
  name: "serverTlsFromFlags() names the file that is missing or holds the wrong PEM",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    const missing = `${certs.dir}/missing.pem`;
    await assertRejects(
      () => serverTlsFromFlags({ tls: true, cert: missing, key: certs.keyFile }),
      Error,
      `Cannot read --cert "${missing}": no such file`,
    );
    await assertRejects(
      () => serverTlsFromFlags({ tls: true, cert: certs.dir, key: certs.keyFile }),
      Error,
      "it is not a regular file",
    );
    // The classic mistake: certificate and key swapped.
    await assertRejects(
      () => serverTlsFromFlags({ tls: true, cert: certs.keyFile, key: certs.certFile }),
      Error,
      "holds no PEM",
    );
    await assertRejects(
      () => serverTlsFromFlags({ tls: true, cert: certs.certFile, key: certs.certFile }),
      Error,
      `Cannot use --key "${certs.certFile}": it holds no PEM private key`,
    );
  },
});

Deno.test({
  name: "clientTlsFromFlags() reads --ca and announces --insecure",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    const warnings: string[] = [];
    const tls = await clientTlsFromFlags(
      { tls: true, ca: certs.caFile, insecure: true, alpn: ["echo"] },
      { onWarning: (line) => warnings.push(line) },
    );
    assertEquals(tls, {
      caCerts: [certs.caCert],
      alpnProtocols: ["echo"],
      unsafelyDisableHostnameVerification: true,
    });
    assertEquals(warnings, [INSECURE_WARNING]);
    assertEquals(await clientTlsFromFlags({ tls: true }), {});
    await assertRejects(
      () => clientTlsFromFlags({ insecure: true }),
      UsageError,
      `Flag "--insecure" needs "--tls"`,
    );
    await assertRejects(
      () => clientTlsFromFlags({ tls: true, ca: certs.keyFile }),
      Error,
      `Cannot use --ca "${certs.keyFile}": it holds no PEM certificate`,
    );
  },
});

Deno.test("connect() speaks plain TCP without TLS options", async () => {
  using listener = await listen({ hostname: "127.0.0.1", port: 0 });
  const served = echoOnce(listener);
  using conn = await connect({ hostname: "127.0.0.1", port: portOf(listener) });
  assertEquals(await roundTrip(conn, "plain"), "plain");
  assertEquals(await served, undefined);
});

for (const hostname of ["127.0.0.1", "::1"]) {
  Deno.test({
    name: `connect() echoes over TLS on ${hostname} and negotiates ALPN`,
    ignore: noOpenssl,
    async fn() {
      await using certs = await createTestCertificates();
      using listener = await listen({
        hostname,
        port: 0,
        tls: { cert: certs.cert, key: certs.key, alpnProtocols: ["echo"] },
      });
      const served = echoOnce(listener);
      using conn = await connect({
        hostname,
        port: portOf(listener),
        tls: { caCerts: [certs.caCert], alpnProtocols: ["h2", "echo"] },
      });
      assertEquals((await (conn as Deno.TlsConn).handshake()).alpnProtocol, "echo");
      const text = "x".repeat(3000) + "\n";
      assertEquals(await roundTrip(conn, text), text);
      assertEquals(await served, undefined);
    },
  });
}

Deno.test({
  name: "connect() refuses an untrusted server and says what to do",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    using listener = await listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
    });
    const served = echoOnce(listener);
    const port = portOf(listener);
    const error = await assertRejects(() => connect({ hostname: "127.0.0.1", port, tls: {} }));
    assert(error instanceof Error);
    assertStringIncludes(error.message, `TLS handshake with 127.0.0.1:${port} failed`);
    assertStringIncludes(error.message, "--ca FILE");
    assertStringIncludes(error.message, "--unsafely-ignore-certificate-errors=127.0.0.1");
    // The server side sees the refused handshake as a TLS failure of that one connection.
    assert(isTlsFailure(await served), String(await served));
  },
});

Deno.test({
  name: "connect() skips only the host name check with --insecure",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates({ names: ["DNS:elsewhere.example"] });
    using listener = await listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
    });
    const address = { hostname: "127.0.0.1", port: portOf(listener) };
    const refused = echoOnce(listener);
    await assertRejects(
      () => connect({ ...address, tls: { caCerts: [certs.caCert] } }),
      Error,
      "the certificate does not name this host (--insecure skips that check)",
    );
    assert(isTlsFailure(await refused));

    const served = echoOnce(listener);
    using conn = await connect({
      ...address,
      tls: { caCerts: [certs.caCert], unsafelyDisableHostnameVerification: true },
    });
    assertEquals(await roundTrip(conn, "named or not"), "named or not");
    assertEquals(await served, undefined);
  },
});

Deno.test({
  name: "connect() fails when the server speaks none of the ALPN protocols",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    using listener = await listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: certs.cert, key: certs.key, alpnProtocols: ["echo"] },
    });
    const served = echoOnce(listener);
    await assertRejects(
      () =>
        connect({
          hostname: "127.0.0.1",
          port: portOf(listener),
          tls: { caCerts: [certs.caCert], alpnProtocols: ["h2"] },
        }),
      Error,
      "the server speaks none of the --alpn protocols",
    );
    assert(isTlsFailure(await served));
  },
});

Deno.test({
  name: "listen() reports a key that does not belong to the certificate",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    const otherKey = await Deno.readTextFile(`${certs.dir}/ca.key`);
    await assertRejects(
      () =>
        listen({
          hostname: "127.0.0.1",
          port: 0,
          tls: { cert: certs.cert, key: otherKey },
        }),
      Error,
      "the --key private key does not belong to the --cert certificate",
    );
  },
});

Deno.test({
  name: "listen() serves an openssl s_client that verifies the chain and ALPN",
  ignore: noOpenssl,
  async fn() {
    await using certs = await createTestCertificates();
    using listener = await listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: certs.cert, key: certs.key, alpnProtocols: ["echo"] },
    });
    // Echo one line, then close: s_client (-ign_eof) ends when the server closes.
    const served = (async () => {
      using conn = await listener.accept() as Deno.TlsConn;
      const buffer = new Uint8Array(256);
      let received = "";
      while (!received.endsWith("\n")) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += decoder.decode(buffer.subarray(0, n));
      }
      await conn.write(encoder.encode(received.toUpperCase()));
      return (await conn.handshake()).alpnProtocol;
    })();
    const child = new Deno.Command("openssl", {
      args: [
        "s_client",
        "-connect",
        `127.0.0.1:${portOf(listener)}`,
        "-CAfile",
        certs.caFile,
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
        "-alpn",
        "echo",
        "-brief",
        "-ign_eof",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("hello over tls\n"));
    await writer.close();
    const output = await child.output();
    assertEquals(await served, "echo");
    const stderr = decoder.decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    assertEquals(decoder.decode(output.stdout), "HELLO OVER TLS\n");
    assertStringIncludes(stderr, "Verification: OK");
  },
});
