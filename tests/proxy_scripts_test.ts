import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { encodeProxyHeader } from "../lib/net/proxy_protocol.ts";
import { runScript, spawnScript } from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CLIENT: Deno.NetAddr = { transport: "tcp", hostname: "198.51.100.23", port: 61000 };
const SERVICE: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.10", port: 10000 };

/** Resolves when the server closes `conn` (end of stream or a reset). */
async function closedByServer(conn: Deno.Conn): Promise<void> {
  const scratch = new Uint8Array(1024);
  try {
    while (await conn.read(scratch) !== null) { /* nothing is echoed before a valid header */ }
  } catch { /* a reset is a close too */ }
}

Deno.test("echo_server.ts --proxy-protocol closes a client with no header, a bad one, or a slow one, one line each, and keeps serving", async () => {
  await using server = spawnScript(
    "echo_server.ts",
    ["--port", "0", "--proxy-protocol", "--proxy-timeout", "2s", "--json"],
    { permissions: NET },
  );
  const port = await server.listeningPort();
  const peers: string[] = [];
  // No header: a client that just talks.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    peers.push(`127.0.0.1:${conn.localAddr.port}`);
    await conn.write(encoder.encode("hello\n"));
    await closedByServer(conn);
  }
  // A header that breaks the specification.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    peers.push(`127.0.0.1:${conn.localAddr.port}`);
    await conn.write(encoder.encode("PROXY TCP4 10.0.0.1 10.0.0.300 1 2\r\nhello\n"));
    await closedByServer(conn);
  }
  // A valid header, one byte a second: the 2 s deadline is for the whole header.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    peers.push(`127.0.0.1:${conn.localAddr.port}`);
    let closed = false;
    const closing = closedByServer(conn).then(() => closed = true);
    for (const byte of encodeProxyHeader(1, { source: CLIENT, destination: SERVICE })) {
      if (closed) break;
      await conn.write(new Uint8Array([byte])).catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closing, new Promise((resolve) => timer = setTimeout(resolve, 1000))]);
      clearTimeout(timer);
    }
    await closing;
  }
  // The server still serves a client behind a valid header.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const header = encodeProxyHeader(2, { source: CLIENT, destination: SERVICE });
    await conn.write(new Uint8Array([...header, ...encoder.encode("still here")]));
    await conn.closeWrite();
    assertEquals(decoder.decode(await new Response(conn.readable).arrayBuffer()), "still here");
  }
  await server.waitForStdout(/"closing"/);
  const { code, stdout, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  const lines = stderr.trim().split("\n");
  assertEquals(lines.length, 4, stderr);
  assertEquals(lines[0], `Listening on 127.0.0.1:${port}`);
  assertEquals(
    lines[1],
    `echo_server: closed ${
      peers[0]
    } without a valid PROXY header: Not a PROXY protocol header: starts with "hello\\n"`,
  );
  assertEquals(
    lines[2],
    `echo_server: closed ${
      peers[1]
    } without a valid PROXY header: Bad PROXY v1 TCP4 destination address "10.0.0.300"`,
  );
  assertMatch(
    lines[3],
    new RegExp(
      `^echo_server: closed ${
        peers[2]
      } without a valid PROXY header: No complete PROXY header within 2000 ms \\(got \\d+ bytes\\)$`,
    ),
  );
  // Rejected clients never reached the echo: every event is about the one valid client.
  const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
  assertEquals(events.map((event) => event.event), [
    "connection",
    "received",
    "sending",
    "closing",
  ]);
  for (const event of events) assertEquals(event.peer, "198.51.100.23:61000");
});

Deno.test("echo_server.ts without --proxy-protocol echoes a PROXY header as data", async () => {
  await using server = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const header = "PROXY TCP4 198.51.100.23 192.0.2.10 61000 10000\r\n";
  await conn.write(encoder.encode(header));
  await conn.closeWrite();
  assertEquals(decoder.decode(await new Response(conn.readable).arrayBuffer()), header);
  assertEquals((await server.stop("SIGINT")).code, 0);
});

Deno.test("tcp_server.ts --proxy-protocol says Got connection from the client behind the header", async () => {
  await using server = spawnScript("tcp_server.ts", ["--port", "0", "--proxy-protocol"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  for (const version of [1, 2] as const) {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encodeProxyHeader(version, { source: CLIENT, destination: SERVICE }));
    assertEquals(
      decoder.decode(await new Response(conn.readable).arrayBuffer()),
      "Thank you for connecting",
    );
  }
  // LOCAL (a balancer's health check): the socket's own address.
  using check = await Deno.connect({ hostname: "127.0.0.1", port });
  await check.write(encodeProxyHeader(2, { command: "local" }));
  await new Response(check.readable).arrayBuffer();
  await server.waitForStdout(new RegExp(`:${check.localAddr.port}$`, "m"));
  const { code, stdout } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(
    stdout,
    [
      "Got connection from 198.51.100.23:61000",
      "Got connection from 198.51.100.23:61000",
      `Got connection from 127.0.0.1:${check.localAddr.port}`,
      "",
    ].join("\n"),
  );
});

Deno.test("the servers refuse --proxy-protocol with --tls and --proxy-timeout alone, exit 2", async () => {
  for (const script of ["echo_server.ts", "tcp_server.ts"]) {
    for (
      const [args, message] of [
        [
          ["--proxy-protocol", "--tls", "--cert", "c.pem", "--key", "k.pem"],
          "before the TLS handshake",
        ],
        [["--proxy-timeout", "1s"], "--proxy-timeout needs --proxy-protocol"],
        [["--proxy-protocol", "--proxy-timeout", "soon"], "--proxy-timeout"],
      ] as const
    ) {
      const { code, stderr } = await runScript(script, [...args], { permissions: NET });
      assertEquals(code, 2, `${script} ${args.join(" ")}`);
      assertStringIncludes(stderr, message);
      assertEquals(stderr.trim().split("\n").length, 1, stderr);
    }
  }
});
