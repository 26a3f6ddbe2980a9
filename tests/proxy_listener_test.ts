import { assert, assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import { serveEcho } from "../lib/mux/mod.ts";
import { listen } from "../lib/net/listen.ts";
import {
  acceptProxyProtocol,
  ProxiedConn,
  type ProxyRejection,
  readProxyHeader,
} from "../lib/net/proxy_listener.ts";
import { encodeProxyHeader, ProxyHeaderError } from "../lib/net/proxy_protocol.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});
const CLIENT = tcp("203.0.113.7", 50123);
const SERVICE = tcp("192.0.2.1", 443);

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

async function readAll(conn: Deno.Conn): Promise<string> {
  return decoder.decode(await new Response(conn.readable).arrayBuffer());
}

Deno.test("readProxyHeader() gives the header's addresses and the bytes after it, v1 and v2", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  for (const version of [1, 2] as const) {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const header = encodeProxyHeader(version, { source: CLIENT, destination: SERVICE });
    // Header and data in one write: the data must not be lost with the header's read.
    await client.write(new Uint8Array([...header, ...encoder.encode("after the header")]));
    await client.closeWrite();
    using conn = await readProxyHeader(await listener.accept());
    assertEquals(conn.remoteAddr, CLIENT);
    assertEquals(conn.localAddr, SERVICE);
    assertEquals(conn.header.version, version);
    const small = new Uint8Array(5);
    assertEquals(await conn.read(small), 5); // a read smaller than what is left over
    assertEquals(decoder.decode(small), "after");
    assertEquals(await readAll(conn), " the header");
    client.close();
  }
});

Deno.test("readProxyHeader() keeps the socket's addresses for LOCAL and UNKNOWN", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  for (
    const header of [
      encodeProxyHeader(2, { command: "local" }),
      encoder.encode("PROXY UNKNOWN\r\n"),
    ]
  ) {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await client.write(header);
    using conn = await readProxyHeader(await listener.accept());
    assertEquals(conn.remoteAddr, client.localAddr);
    assertEquals(conn.localAddr, client.remoteAddr);
  }
});

Deno.test("readProxyHeader() reads a header that arrives one byte at a time", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  client.setNoDelay(true);
  const reading = listener.accept().then((conn) => readProxyHeader(conn));
  for (const byte of encodeProxyHeader(2, { source: CLIENT, destination: SERVICE, crc32c: true })) {
    await client.write(new Uint8Array([byte]));
  }
  using conn = await reading;
  assertEquals(conn.remoteAddr, CLIENT);
});

Deno.test("readProxyHeader() rejects garbage, a cut-short header, and a slow one, and closes them", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(encoder.encode("GET / HTTP/1.1\r\n\r\n"));
    const error = await assertRejects(() =>
      listener.accept().then((conn) => readProxyHeader(conn))
    );
    assertInstanceOf(error, ProxyHeaderError);
    assertEquals(await client.read(new Uint8Array(1)).catch(() => null), null);
  }
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(encoder.encode("PROXY TCP4 1.2.3.4"));
    await client.closeWrite();
    await assertRejects(
      () => listener.accept().then((conn) => readProxyHeader(conn)),
      Deno.errors.UnexpectedEof,
      "Closed after 18 bytes of a PROXY header",
    );
  }
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(encoder.encode("PROXY "));
    await assertRejects(
      () => listener.accept().then((conn) => readProxyHeader(conn, { timeout: 100 })),
      Deno.errors.TimedOut,
      "No complete PROXY header within 100 ms (got 6 bytes)",
    );
    assertEquals(await client.read(new Uint8Array(1)).catch(() => null), null);
  }
});

Deno.test("acceptProxyProtocol() hands out a fast client while a slow one is still sending its header", async () => {
  const rejections: ProxyRejection[] = [];
  using listener = acceptProxyProtocol(await listen({ port: 0 }), {
    timeout: 60_000,
    onRejected: (rejection) => rejections.push(rejection),
  });
  const port = portOf(listener.addr);
  using slow = await Deno.connect({ hostname: "127.0.0.1", port });
  await slow.write(encoder.encode("PROXY TCP4 "));
  const accepted = listener.accept();
  using fast = await Deno.connect({ hostname: "127.0.0.1", port });
  await fast.write(encodeProxyHeader(1, { source: CLIENT, destination: SERVICE }));
  using conn = await accepted;
  assertEquals(conn.remoteAddr, CLIENT);
  assertInstanceOf(conn, ProxiedConn);
  // Garbage is closed and reported once; it never comes out of accept().
  using bad = await Deno.connect({ hostname: "127.0.0.1", port });
  await bad.write(encoder.encode("hello"));
  const next = listener.accept();
  assertEquals(await bad.read(new Uint8Array(1)).catch(() => null), null);
  assertEquals(rejections.length, 1);
  assertEquals(rejections[0].peer, bad.localAddr);
  // Closing the listener closes the slow one and ends the waiting accept().
  listener.close();
  await assertRejects(() => next, Deno.errors.BadResource);
  assertEquals(await slow.read(new Uint8Array(1)).catch(() => null), null);
  assertEquals(rejections.length, 1, "a connection closed by the stop is not a rejection");
});

Deno.test("serveEcho() with proxyProtocol logs the header's client and echoes what followed it", async () => {
  const peers: string[] = [];
  const server = await serveEcho({
    port: 0,
    proxyProtocol: { timeout: 5000 },
    onEvent: (event) => {
      if (event.type === "connection") peers.push(JSON.stringify(event.peer));
    },
  });
  try {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
    const header = encodeProxyHeader(2, { source: CLIENT, destination: SERVICE });
    await client.write(new Uint8Array([...header, ...encoder.encode("echo me")]));
    await client.closeWrite();
    assertEquals(await readAll(client), "echo me");
    assertEquals(peers, [JSON.stringify(CLIENT)]);
  } finally {
    server.close();
    await server.finished;
  }
});

Deno.test("listen() refuses proxyProtocol with TLS before binding", async () => {
  const error = await assertRejects(() =>
    listen({ port: 0, tls: { cert: "", key: "" }, proxyProtocol: {} })
  );
  assertInstanceOf(error, TypeError);
  assert(String(error).includes("before TLS"));
});
