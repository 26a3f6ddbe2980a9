import { assert, assertEquals, assertMatch } from "@std/assert";
import { describeError } from "../lib/errors.ts";
import { writeAll } from "../lib/io.ts";
import {
  type MuxServer,
  type RelayEvent,
  type RelayServer,
  serveEcho,
  serveRelay,
  type ServeRelayOptions,
} from "../lib/mux/mod.ts";
import { MAX_READ_SIZE } from "../lib/mux/state.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

function connect(server: { addr: Deno.Addr }): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
}

/** Reads until the end of stream, leaving the connection open (`conn.readable` closes it). */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const buffer = new Uint8Array(256 * 1024);
  for (let n; (n = await conn.read(buffer)) !== null;) {
    chunks.push(buffer.slice(0, n));
    length += n;
  }
  const all = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  for (let got = 0; got < length;) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) throw new Error(`End of stream after ${got} of ${length} bytes`);
    got += n;
  }
  return buffer;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Bytes that differ at every offset modulo 251, so a lost or reordered chunk shows. */
function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i + seed) % 251;
  return bytes;
}

/** Resolves once `condition()` holds, checked at every relay or multiplexer event. */
type Waiter = (condition: () => boolean) => Promise<void>;

/** A relay on a free port in front of `upstream`, with every event kept and a way to wait. */
async function startRelay(
  upstream: ServeRelayOptions["upstream"],
  options: Partial<ServeRelayOptions> = {},
): Promise<{ relay: RelayServer; events: RelayEvent[]; until: Waiter }> {
  const events: RelayEvent[] = [];
  const waiters = new Set<{ condition: () => boolean; resolve: () => void }>();
  // After the event, so that counters the event handler updates later are seen too.
  const check = () =>
    queueMicrotask(() => {
      for (const waiter of waiters) {
        if (waiter.condition()) {
          waiters.delete(waiter);
          waiter.resolve();
        }
      }
    });
  const relay = await serveRelay({
    port: 0,
    ...options,
    upstream,
    onRelayEvent(event) {
      events.push(event);
      options.onRelayEvent?.(event);
      check();
    },
    onEvent(event) {
      options.onEvent?.(event);
      check();
    },
  });
  const until: Waiter = (condition) => {
    if (condition()) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    waiters.add({ condition, resolve });
    return promise;
  };
  return { relay, events, until };
}

async function stopAll(...servers: MuxServer[]): Promise<void> {
  for (const server of servers) {
    server.close();
    await server.finished;
  }
}

Deno.test("serveRelay() passes 16 MiB and a half-close to serveEcho() and back unchanged", async () => {
  const echo = await serveEcho({ port: 0 });
  const { relay, events } = await startRelay({ port: portOf(echo.addr) });
  const conn = await connect(relay);
  const message = new Uint8Array(16 * 1024 * 1024);
  // getRandomValues fills at most 64 KiB at a time.
  for (let offset = 0; offset < message.length; offset += 65536) {
    crypto.getRandomValues(message.subarray(offset, offset + 65536));
  }
  const [, echoed] = await Promise.all([
    writeAll(conn, message).then(() => conn.closeWrite()),
    readToEnd(conn),
  ]);
  assertEquals(echoed.length, message.length);
  assertEquals(await sha256(echoed), await sha256(message));
  await stopAll(relay, echo);
  const close = events.find((event) => event.type === "close");
  assertEquals(close?.type === "close" && [close.reason, close.toUpstream, close.toClient], [
    "eof",
    message.length,
    message.length,
  ]);
  assertEquals(relay.relays.open, 0);
  assertEquals(relay.stats.open, 0);
  assertEquals(relay.stats.queued, 0);
});

Deno.test("serveRelay() passes the upstream's half-close to the client, which may still send", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    using conn = await upstream.accept();
    await writeAll(conn, encoder.encode("hello, then FIN"));
    await conn.closeWrite();
    return decoder.decode(await readToEnd(conn));
  })();
  const { relay } = await startRelay({ port: upstream.addr.port });
  const conn = await connect(relay);
  // The client reads the whole reply and the end of stream while its own side is still open.
  assertEquals(decoder.decode(await readToEnd(conn)), "hello, then FIN");
  await writeAll(conn, encoder.encode("and my answer after it"));
  await conn.closeWrite();
  assertEquals(await served, "and my answer after it");
  conn.close();
  await stopAll(relay);
});

Deno.test("serveRelay() keeps its queues bounded when the upstream never reads", async () => {
  const highWaterMark = 16 * 1024;
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = upstream.accept(); // and never read
  let maxQueued = 0;
  const { relay } = await startRelay({ port: upstream.addr.port }, {
    highWaterMark,
    onEvent: () => maxQueued = Math.max(maxQueued, relay.stats.queued),
  });
  const conn = await connect(relay);
  let sent = 0;
  const writer = (async () => {
    const chunk = pattern(64 * 1024);
    try {
      while (sent < 256 * 1024 * 1024) sent += await conn.write(chunk);
    } catch { /* closed below while a write waits */ }
  })();
  // Once the client's writes stall, every buffer on the way is full.
  for (let last = -1; sent !== last;) {
    last = sent;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert(sent < 256 * 1024 * 1024, "the writes never stalled");
  assert(relay.stats.bytesIn < sent, "the relay read everything the client sent");
  assert(maxQueued <= highWaterMark + MAX_READ_SIZE, `queued ${maxQueued} bytes`);
  conn.close();
  await writer;
  (await accepted).close();
  await stopAll(relay);
});

Deno.test("serveRelay() keeps its queues bounded when the client never reads", async () => {
  const highWaterMark = 16 * 1024;
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let sent = 0;
  const flooder = (async () => {
    const conn = await upstream.accept();
    const chunk = pattern(64 * 1024);
    try {
      while (sent < 256 * 1024 * 1024) sent += await conn.write(chunk);
    } catch { /* the relay closed it */ }
    conn.close();
  })();
  let maxQueued = 0;
  const { relay } = await startRelay({ port: upstream.addr.port }, {
    highWaterMark,
    onEvent: () => maxQueued = Math.max(maxQueued, relay.stats.queued),
  });
  const conn = await connect(relay); // and never read
  for (let last = -1; sent !== last;) {
    last = sent;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert(sent > 0 && sent < 256 * 1024 * 1024, `sent ${sent}`);
  assert(maxQueued <= highWaterMark + MAX_READ_SIZE, `queued ${maxQueued} bytes`);
  conn.close();
  await stopAll(relay);
  await flooder;
});

Deno.test("serveRelay() closes the client and reports one failure when the upstream refuses", async () => {
  // A port nothing listens on: bind one, then free it.
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  taken.close();
  const { relay, events, until } = await startRelay({ port });
  const conn = await connect(relay);
  await writeAll(conn, encoder.encode("anyone there?"));
  await until(() => relay.relays.open === 0 && relay.relays.total === 1);
  // The relay closed the client: end of stream, or a reset for the bytes it never read.
  const end = await conn.read(new Uint8Array(16)).catch((error) => error);
  assert(end === null || end instanceof Deno.errors.ConnectionReset, String(end));
  conn.close();
  await stopAll(relay);
  assertEquals(events.map((event) => event.type), ["failed"]);
  const [failed] = events;
  if (failed.type !== "failed") throw new Error(failed.type);
  assertEquals(failed.during, "connect");
  assertMatch(describeError(failed.error), /^127\.0\.0\.1:\d+: Connection refused/);
  assertEquals(relay.relays.failed, 1);
});

Deno.test("serveRelay() gives up on an upstream that does not finish its TLS handshake in time", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const silent = upstream.accept(); // accepts and never answers the TLS hello
  const { relay, events, until } = await startRelay({
    port: upstream.addr.port,
    tls: {},
    timeout: 100,
  });
  const conn = await connect(relay);
  await until(() => relay.relays.failed === 1);
  assertEquals(await conn.read(new Uint8Array(1)), null);
  conn.close();
  (await silent).close();
  await stopAll(relay);
  const [failed] = events;
  if (failed.type !== "failed") throw new Error(failed.type);
  assert(failed.error instanceof Deno.errors.TimedOut, String(failed.error));
});

Deno.test("serveRelay() stops without waiting for an upstream connect still pending", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const silent = upstream.accept(); // accepts and never answers the TLS hello
  const { relay, events, until } = await startRelay({
    port: upstream.addr.port,
    tls: {},
    timeout: 60_000,
  });
  const conn = await connect(relay);
  const pending = await silent;
  await until(() => relay.relays.open === 1);
  relay.close();
  // The stop shuts the waiting client down at once; its own end then closes it.
  assertEquals(await conn.read(new Uint8Array(1)), null);
  conn.close();
  await until(() => relay.relays.open === 0);
  const [close] = events;
  assertEquals(close.type === "close" && [close.reason, close.upstream], ["stop", undefined]);
  // The connect ends when the upstream goes; `finished` waits for it, so nothing leaks.
  pending.close();
  await relay.finished;
});

Deno.test("serveRelay() refuses clients beyond maxConnections at once", async () => {
  const echo = await serveEcho({ port: 0 });
  const { relay, events, until } = await startRelay({ port: portOf(echo.addr) }, {
    maxConnections: 1,
  });
  const first = await connect(relay);
  await until(() => events.some((event) => event.type === "open"));
  const second = await connect(relay);
  await until(() => relay.relays.refused === 1);
  assertEquals(await second.read(new Uint8Array(1)), null);
  // The first still relays.
  await writeAll(first, encoder.encode("still here"));
  assertEquals(decoder.decode(await readExactly(first, 10)), "still here");
  first.close();
  second.close();
  await stopAll(relay, echo);
});

Deno.test("serveRelay() closes both sides of a relay idle for idleTimeout", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { relay, events, until } = await startRelay({ port: upstream.addr.port }, {
    idleTimeout: 50,
  });
  const conn = await connect(relay);
  const upstreamSide = await upstream.accept();
  assertEquals(await conn.read(new Uint8Array(1)), null);
  assertEquals(await upstreamSide.read(new Uint8Array(1)), null);
  await until(() => relay.relays.open === 0);
  const close = events.find((event) => event.type === "close");
  assertEquals(close?.type === "close" && close.reason, "idle");
  conn.close();
  upstreamSide.close();
  await stopAll(relay);
});

Deno.test("serveRelay() delivers what it read each way before it stops", async () => {
  const echo = await serveEcho({ port: 0 });
  const { relay, until } = await startRelay({ port: portOf(echo.addr) });
  const conn = await connect(relay);
  await writeAll(conn, encoder.encode("last words"));
  await until(() => relay.stats.bytesIn >= 20); // both ways: to the echo server and back
  relay.close();
  // What was relayed comes back, then the end of stream: the stop shuts the client down.
  assertEquals(decoder.decode(await readToEnd(conn)), "last words");
  conn.close(); // the relay waits for this (or for its grace period) to finish
  await relay.finished;
  assertEquals(relay.stats.open, 0);
  assertEquals(relay.stats.dropped, 0);
  await stopAll(echo);
});

Deno.test("serveRelay() relays from a Unix socket to a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const echo = await serveEcho({ path: `${dir}/echo.sock` });
    const { relay } = await startRelay(
      { port: 0, path: `${dir}/echo.sock` },
      { path: `${dir}/relay.sock` },
    );
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/relay.sock` });
    await writeAll(conn, encoder.encode("unix to unix"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readToEnd(conn)), "unix to unix");
    await stopAll(relay, echo);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serveRelay() terminates TLS and offers the upstream the client's ALPN protocol",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    // A TLS upstream that speaks both protocols and reports the one negotiated.
    using upstream = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: certs.cert,
      key: certs.key,
      alpnProtocols: ["http/1.1", "h2"],
    });
    const served = (async () => {
      using conn = await upstream.accept();
      const { alpnProtocol } = await conn.handshake();
      const request = decoder.decode(await readExactly(conn, 5));
      await writeAll(conn, encoder.encode(`${request} over ${alpnProtocol}`));
      await conn.closeWrite();
      await readToEnd(conn);
    })();
    const { relay, events } = await startRelay(
      { port: upstream.addr.port, tls: { caCerts: [certs.caCert] } },
      { tls: { cert: certs.cert, key: certs.key, alpnProtocols: ["h2", "http/1.1"] } },
    );
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: portOf(relay.addr),
      caCerts: [certs.caCert],
      alpnProtocols: ["h2"],
    });
    assertEquals((await conn.handshake()).alpnProtocol, "h2");
    await writeAll(conn, encoder.encode("hello"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readToEnd(conn)), "hello over h2");
    await served;
    await stopAll(relay);
    const open = events.find((event) => event.type === "open");
    assertEquals(open?.type === "open" && open.alpn, "h2");
  },
});
