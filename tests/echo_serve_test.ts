import { assert, assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import { Multiplexer, serveEcho, type ServeEchoOptions, type ServerEvent } from "../lib/mux/mod.ts";
import { EventQueue } from "../lib/mux/event_queue.ts";
import { ConnState, MAX_READ_SIZE, MIN_READ_SIZE } from "../lib/mux/state.ts";
import { largeBuffers } from "../lib/mux/buffer_pool.ts";
import { writeAll } from "../lib/io.ts";
import { hasIPv6Loopback, hasPeer, runPeer } from "./_process.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

function connect(addr: Deno.Addr, hostname = "127.0.0.1"): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname, port: portOf(addr) });
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

async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  return new Uint8Array(await new Response(conn.readable).arrayBuffer());
}

/** Bytes that differ at every offset modulo 251, so a lost or reordered chunk shows. */
function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i + seed) % 251;
  return bytes;
}

/** A server on a free port, and a way to wait for an event or for its stats to reach a state
 * (checked at every event, so a condition on `bytesIn` is seen when the data arrives). */
async function startServer(options: ServeEchoOptions = {}) {
  const seen: ServerEvent[] = [];
  const waiters: { match: (e: ServerEvent) => boolean; resolve: (e: ServerEvent) => void }[] = [];
  const server = await serveEcho({
    port: 0,
    ...options,
    onEvent(event) {
      options.onEvent?.(event);
      // Byte views are valid only during the call: keep the other events only.
      if (event.type !== "received" && event.type !== "sending") seen.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.match(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
      }
    },
  });
  /** Resolves with the first event (already seen or still to come) that matches. */
  function waitFor(match: (e: ServerEvent) => boolean): Promise<ServerEvent> {
    const found = seen.find(match);
    if (found) return Promise.resolve(found);
    const { promise, resolve } = Promise.withResolvers<ServerEvent>();
    waiters.push({ match, resolve });
    return promise;
  }
  /** Resolves with the first `closing` event. */
  async function closing(): Promise<Extract<ServerEvent, { type: "closing" }>> {
    const event = await waitFor((e) => e.type === "closing");
    if (event.type !== "closing") throw new Error("unreachable");
    return event;
  }
  return { server, seen, waitFor, closing };
}

Deno.test("EventQueue hands events to one consumer in order, then ends", async () => {
  const queue = new EventQueue<number>();
  queue.push(1);
  queue.push(2);
  const seen: number[] = [];
  const consumer = (async () => {
    for await (const value of queue) seen.push(value);
  })();
  await Promise.resolve();
  queue.push(3);
  queue.end();
  queue.push(4); // after end: dropped
  await consumer;
  assertEquals(seen, [1, 2, 3]);
  assertEquals(queue.size, 0);
});

Deno.test("EventQueue refuses a second waiting consumer", async () => {
  const queue = new EventQueue<number>();
  const first = queue.next();
  await assertRejects(() => queue.next(), TypeError, "single consumer");
  queue.push(1);
  assertEquals(await first, { value: 1, done: false });
});

Deno.test("ConnState reads into its own small buffer, and a pooled large one only after a full read", () => {
  const state = new ConnState(1, { remoteAddr: {}, localAddr: {} } as Deno.Conn);
  assertEquals(state.readBuffer().length, MIN_READ_SIZE);
  state.afterRead(MIN_READ_SIZE); // full: more is waiting
  const large = state.readBuffer();
  assertEquals(large.length, MAX_READ_SIZE);
  state.afterRead(MAX_READ_SIZE); // full again: the same large buffer, no allocation
  assert(state.readBuffer() === large);
  state.lent = 1; // a write sends from the large buffer
  state.afterRead(64); // partial: the socket is drained, the next read may wait
  assertEquals(state.readBuffer().length, MIN_READ_SIZE);
  state.lent = 0;
  state.settle(); // the write is done: the large buffer goes back to the pool
  state.afterRead(MIN_READ_SIZE);
  assert(state.readBuffer() === large, "the pooled buffer was not reused");
  assert(state.isReadBuffer(large.subarray(0, 10)));
  assert(!state.isReadBuffer(new Uint8Array(10)));
  state.dispose();
});

Deno.test("serveEcho() echoes a message and closes after the client's half-close", async () => {
  const { server, seen } = await startServer();
  const conn = await connect(server.addr);
  await writeAll(conn, encoder.encode("This is the message. "));
  await conn.closeWrite();
  assertEquals(decoder.decode(await readToEnd(conn)), "This is the message. ");
  server.close();
  server.close(); // safe twice
  await server.finished;
  assertEquals(seen.map((e) => e.type), ["connection", "closing"]);
  assertEquals(seen[1].type === "closing" && seen[1].reason, "eof");
  assertEquals(server.stats.bytesIn, 21);
  assertEquals(server.stats.bytesOut, 21);
  assertEquals(server.stats.open, 0);
  assertEquals(server.stats.queued, 0);
});

Deno.test("serveEcho() serves 200 clients at once with interleaved messages", async () => {
  const { server } = await startServer();
  const messages = ["This is the message. ", "It will be sent ", "in parts."];
  const conns = await Promise.all(Array.from({ length: 200 }, () => connect(server.addr)));
  for (const message of messages) {
    const bytes = encoder.encode(message);
    await Promise.all(conns.map((conn) => writeAll(conn, bytes)));
    const echoes = await Promise.all(conns.map((conn) => readExactly(conn, bytes.length)));
    for (const echo of echoes) assertEquals(decoder.decode(echo), message);
  }
  for (const conn of conns) conn.close();
  server.close();
  await server.finished;
  assertEquals(server.stats.total, 200);
  assertEquals(server.stats.bytesOut, 200 * 46);
});

Deno.test("serveEcho() echoes several MiB sent while the echo is read", async () => {
  const { server } = await startServer();
  const conn = await connect(server.addr);
  const message = pattern(6 * 1024 * 1024);
  const [, echoed] = await Promise.all([
    writeAll(conn, message).then(() => conn.closeWrite()),
    readToEnd(conn),
  ]);
  assertEquals(echoed.length, message.length);
  assert(echoed.every((byte, i) => byte === message[i]), "echo differs from what was sent");
  server.close();
  await server.finished;
});

Deno.test("serveEcho() drains the queue after a half-close", async () => {
  const { server, waitFor } = await startServer();
  const conn = await connect(server.addr);
  const message = pattern(256 * 1024, 7);
  await writeAll(conn, message); // fits in the socket buffers without reading
  await conn.closeWrite();
  // Read only once the server has seen the end of stream.
  await waitFor((e) => e.type === "closing" || server.stats.bytesIn === message.length);
  const echoed = await readToEnd(conn);
  assertEquals(echoed, message);
  server.close();
  await server.finished;
});

Deno.test({
  name: "serveEcho() ends only the connection that was reset",
  ignore: !hasPeer("python3"),
  async fn() {
    const { server, closing } = await startServer();
    // SO_LINGER with a zero timeout makes close() send a reset; Deno has no such option.
    const peer = await runPeer("python3", [
      "-c",
      `import socket, struct
s = socket.create_connection(("127.0.0.1", ${portOf(server.addr)}))
s.sendall(b"x" * 4096)
s.recv(1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()`,
    ]);
    assertEquals(peer.code, 0, peer.stderr);
    const { reason, error } = await closing();
    assertEquals(reason, "error");
    assertInstanceOf(error, Deno.errors.ConnectionReset);
    assertEquals(server.stats.failed, 1);

    const next = await connect(server.addr);
    await writeAll(next, encoder.encode("still there?"));
    await next.closeWrite();
    assertEquals(decoder.decode(await readToEnd(next)), "still there?");
    server.close();
    await server.finished;
  },
});

Deno.test("serveEcho() survives clients that close before reading their echo", async () => {
  const { server, waitFor } = await startServer();
  for (let i = 0; i < 20; i++) {
    const conn = await connect(server.addr);
    await writeAll(conn, pattern(8192));
    conn.close(); // the echo meets a closed socket: a reset or a broken pipe for the server
  }
  await waitFor(() => server.stats.open === 0 && server.stats.total === 20);
  const next = await connect(server.addr);
  await writeAll(next, encoder.encode("still there?"));
  await next.closeWrite();
  assertEquals(decoder.decode(await readToEnd(next)), "still there?");
  server.close();
  await server.finished;
  assertEquals(server.stats.open, 0);
  assertEquals(server.stats.queued, 0);
});

Deno.test("serveEcho() keeps its queue bounded for a client that never reads", async () => {
  const highWaterMark = 16 * 1024;
  let maxQueued = 0;
  const { server } = await startServer({
    highWaterMark,
    onEvent: () => maxQueued = Math.max(maxQueued, server.stats.queued),
  });
  const conn = await connect(server.addr);
  const chunk = pattern(64 * 1024);
  const { promise: enough, resolve } = Promise.withResolvers<void>();
  const writer = (async () => {
    try {
      while (true) {
        await writeAll(conn, chunk);
        if (server.stats.bytesIn >= 1024 * 1024) resolve();
      }
    } catch (error) {
      // Closed below while a write waits.
      assert(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted);
    }
  })();
  await enough;
  conn.close();
  await writer;
  server.close();
  await server.finished;
  assert(server.stats.bytesIn >= 1024 * 1024);
  assert(maxQueued <= highWaterMark + MAX_READ_SIZE, `queued ${maxQueued} bytes`);
});

Deno.test("serveEcho() pauses and resumes a slow reader without losing bytes", async () => {
  const highWaterMark = 8 * 1024;
  let maxQueued = 0;
  const { server } = await startServer({
    highWaterMark,
    onEvent: () => maxQueued = Math.max(maxQueued, server.stats.queued),
  });
  const conn = await connect(server.addr);
  const message = pattern(2 * 1024 * 1024, 3);
  const reader = (async () => {
    const echoed = new Uint8Array(message.length);
    const small = new Uint8Array(16 * 1024);
    for (let got = 0; got < message.length;) {
      const n = await conn.read(small);
      if (n === null) break;
      echoed.set(small.subarray(0, n), got);
      got += n;
      await new Promise((resolve) => setTimeout(resolve, 0)); // read slowly
    }
    return echoed;
  })();
  await writeAll(conn, message);
  await conn.closeWrite();
  assertEquals(await reader, message);
  conn.close();
  server.close();
  await server.finished;
  assert(maxQueued <= highWaterMark + MAX_READ_SIZE, `queued ${maxQueued} bytes`);
});

Deno.test("serveEcho() closes connections beyond maxConnections at once", async () => {
  const { server, waitFor } = await startServer({ maxConnections: 2 });
  const first = await connect(server.addr);
  const second = await connect(server.addr);
  await waitFor(() => server.stats.open === 2);
  const third = await connect(server.addr);
  await waitFor((e) => e.type === "refused");
  assertEquals(await third.read(new Uint8Array(1)), null);
  assertEquals(server.stats.refused, 1);
  // The two served connections still echo.
  await writeAll(first, encoder.encode("ok"));
  assertEquals(decoder.decode(await readExactly(first, 2)), "ok");
  for (const conn of [first, second, third]) conn.close();
  server.close();
  await server.finished;
});

Deno.test("serveEcho() closes a connection idle for idleTimeout", async () => {
  const { server, closing } = await startServer({ idleTimeout: 50 });
  const conn = await connect(server.addr);
  assertEquals(await conn.read(new Uint8Array(1)), null);
  assertEquals((await closing()).reason, "idle");
  assertEquals(server.stats.timedOut, 1);
  conn.close();
  server.close();
  await server.finished;
});

Deno.test("serveEcho() writes what it received before stopping on the signal", async () => {
  const controller = new AbortController();
  const { server, waitFor } = await startServer({ signal: controller.signal });
  const conn = await connect(server.addr);
  const message = pattern(512 * 1024);
  await writeAll(conn, message);
  await waitFor(() => server.stats.bytesIn > 0);
  controller.abort();
  // Everything the server read before the stop comes back, then the end of stream; what it
  // read after the stop began is discarded and reported as dropped.
  const echoed = await readToEnd(conn);
  await server.finished;
  assertEquals(echoed.length, server.stats.bytesIn - server.stats.dropped);
  assertEquals(echoed, message.subarray(0, echoed.length));
  assert(echoed.length > 0);
  assertEquals(server.stats.open, 0);
  // No new connection after the stop.
  await assertRejects(() => connect(server.addr), Deno.errors.ConnectionRefused);
});

Deno.test("serveEcho() stops while a client sends and never reads", async () => {
  const { server, waitFor, closing } = await startServer({ graceTimeout: 20 });
  const conn = await connect(server.addr);
  const chunk = pattern(64 * 1024);
  const writer = (async () => {
    try {
      while (true) await writeAll(conn, chunk);
    } catch { /* the server closed, or the test did */ }
  })();
  await waitFor(() => server.stats.bytesIn >= 1024 * 1024); // its queue is stuck by now
  server.close();
  await server.finished;
  assertEquals((await closing()).reason, "stop");
  conn.close();
  await writer;
});

Deno.test("serveEcho() serves a Unix socket and removes its file when it stops", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/echo.sock`;
  try {
    const { server } = await startServer({ path });
    assertEquals(server.addr, { transport: "unix", path });
    const conn = await Deno.connect({ transport: "unix", path });
    await writeAll(conn, encoder.encode("over unix"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readToEnd(conn)), "over unix");
    server.close();
    await server.finished;
    await assertRejects(() => Deno.lstat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serveEcho() serves IPv6 on [::1]",
  ignore: !hasIPv6Loopback(),
  async fn() {
    const server = await serveEcho({ hostname: "::1", port: 0 });
    assertEquals((server.addr as Deno.NetAddr).hostname, "::1");
    const conn = await connect(server.addr, "::1");
    await writeAll(conn, encoder.encode("v6"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readToEnd(conn)), "v6");
    server.close();
    await server.finished;
  },
});

Deno.test({
  name: "serveEcho() serves TLS with a PEM certificate and key",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const { server } = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: portOf(server.addr),
      caCerts: [certs.caCert],
    });
    await writeAll(conn, encoder.encode("over TLS"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readToEnd(conn)), "over TLS");
    server.close();
    await server.finished;
  },
});

Deno.test("serveEcho() rejects a bad limit with a RangeError", async () => {
  // Throwing before anything listens: no listener is left open.
  await assertRejects(
    () => serveEcho({ port: 0, maxConnections: 0 }),
    RangeError,
    'Cannot use maxConnections "0": must be at least 1',
  );
});

Deno.test("Multiplexer closes a write stuck on a client that never reads after the grace period", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reasons: string[] = [];
  const sending = Promise.withResolvers<void>();
  // More than the socket buffers of both ends can hold, so the write cannot finish.
  const flood = new Uint8Array(16 * 1024 * 1024);
  const mux = new Multiplexer((mux, conn) => mux.send(conn, flood), {
    graceTimeout: 20,
    onEvent(event) {
      if (event.type === "sending") sending.resolve();
      if (event.type === "closing") reasons.push(event.reason);
    },
  });
  const finished = mux.run(listener);
  const conn = await connect(listener.addr);
  await writeAll(conn, encoder.encode("flood me"));
  await sending.promise;
  mux.stop();
  await finished;
  assertEquals(reasons, ["stop"]);
  assert(mux.stats.bytesOut < flood.length);
  conn.close();
});

Deno.test("Multiplexer runs the same loop with a broadcast decision", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const allIn = Promise.withResolvers<void>();
  const mux = new Multiplexer((mux, from, bytes) => {
    for (const conn of mux.connections()) if (conn !== from) mux.send(conn, bytes);
  }, { onEvent: () => mux.stats.open === 3 && allIn.resolve() });
  const finished = mux.run(listener);
  const [alice, bob, carol] = await Promise.all([0, 1, 2].map(() => connect(listener.addr)));
  await allIn.promise;
  await writeAll(alice, encoder.encode("hello all\n"));
  assertEquals(decoder.decode(await readExactly(bob, 10)), "hello all\n");
  assertEquals(decoder.decode(await readExactly(carol, 10)), "hello all\n");
  for (const conn of [alice, bob, carol]) conn.close();
  mux.stop();
  await finished;
});

Deno.test("Multiplexer pauses for a timer turn while 128 or more operations are in flight", async () => {
  // 150 connections keep 150 reads in flight; with a budget of 0 the loop pauses as soon as it
  // has handled a few events in a row (lib/turn_pacer.ts), and with no budget it never does.
  for (const [turnBudgetMs, expectPauses] of [[0, true], [Infinity, false]] as const) {
    const { server } = await startServer({ turnBudgetMs });
    const conns = await Promise.all(Array.from({ length: 150 }, () => connect(server.addr)));
    const message = encoder.encode("ping");
    for (let round = 0; round < 20; round++) {
      await Promise.all(conns.map((conn) => writeAll(conn, message)));
      const echoes = await Promise.all(conns.map((conn) => readExactly(conn, message.length)));
      for (const echo of echoes) assertEquals(decoder.decode(echo), "ping");
    }
    for (const conn of conns) conn.close();
    server.close();
    await server.finished;
    assertEquals(
      server.pauses > 0,
      expectPauses,
      `${server.pauses} pauses, budget ${turnBudgetMs}`,
    );
  }
});

Deno.test("Multiplexer keeps a pooled read buffer out of the pool while a write sends from it", async () => {
  // A full 1 KiB read makes the next read use a pooled large buffer; that read is partial, so
  // the buffer is due back to the pool — but only once the write the decision lent it to is
  // done. Were it released first, another connection could read into it mid-write.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reused: boolean[] = [];
  const mux = new Multiplexer((mux, conn, bytes) => {
    mux.send(conn, bytes); // the echo: a view of the read buffer, no copy
    if (bytes.length === MIN_READ_SIZE) return;
    const other = largeBuffers.acquire();
    reused.push(other.buffer === bytes.buffer);
    largeBuffers.release(other);
  });
  const finished = mux.run(listener);
  const conn = await connect(listener.addr);
  await writeAll(conn, pattern(MIN_READ_SIZE));
  await readExactly(conn, MIN_READ_SIZE);
  await writeAll(conn, pattern(100));
  await readExactly(conn, 100);
  conn.close();
  mux.stop();
  await finished;
  assertEquals(reused, [false]);
});
