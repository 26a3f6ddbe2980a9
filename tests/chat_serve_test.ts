import { assert, assertEquals, assertMatch } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import {
  type ChatEvent,
  type ChatOptions,
  chatRoom,
  LineSplitter,
  Multiplexer,
  type MultiplexerOptions,
  serveChat,
} from "../lib/mux/mod.ts";
import { MAX_READ_SIZE } from "../lib/mux/state.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client that keeps what it has read, so a test can wait for text and then for more. */
class Client {
  readonly conn: Deno.Conn;
  #parts: string[] = [];
  #recent = "";
  #buffer = new Uint8Array(64 * 1024);

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Everything read so far. */
  get text(): string {
    const text = this.#parts.join("");
    this.#parts = [text];
    return text;
  }

  /** Reads until the text read since the last match contains `expected`; returns all text. */
  async readUntil(expected: string): Promise<string> {
    // Only the new text is searched: a reader slower than the room would be dropped from it.
    while (!this.#recent.includes(expected)) {
      if (!(await this.#read())) {
        throw new Error(`End of stream before "${expected}" in:\n${this.text.slice(-500)}`);
      }
      this.#recent = this.#recent.slice(-expected.length) + this.#parts.at(-1);
    }
    this.#recent = this.#recent.slice(this.#recent.indexOf(expected) + expected.length);
    return this.text;
  }

  /** Reads until the end of stream; returns everything read. */
  async readToEnd(): Promise<string> {
    while (await this.#read());
    return this.text;
  }

  async #read(): Promise<boolean> {
    const n = await this.conn.read(this.#buffer);
    if (n === null) return false;
    this.#parts.push(decoder.decode(this.#buffer.subarray(0, n), { stream: true }));
    return true;
  }

  send(text: string | Uint8Array): Promise<void> {
    return writeAll(this.conn, typeof text === "string" ? encoder.encode(text) : text);
  }

  close(): void {
    this.conn.close();
  }
}

/** A chat or broker room on a free port, with its events and a way to wait for a state. */
function startRoom(options: ChatOptions & MultiplexerOptions = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // the stop closes it
  const events: ChatEvent[] = [];
  const waiters = new Set<{ condition: () => boolean; resolve: () => void }>();
  const check = () =>
    queueMicrotask(() => {
      for (const waiter of waiters) {
        if (waiter.condition()) {
          waiters.delete(waiter);
          waiter.resolve();
        }
      }
    });
  const mux = new Multiplexer(
    chatRoom({
      ...options,
      onChatEvent(event) {
        // Byte views are valid only during the call.
        events.push(event.type === "message" ? { ...event, bytes: event.bytes.slice() } : event);
        check();
      },
    }),
    {
      ...options,
      onEvent() {
        for (const conn of mux.connections()) {
          room.maxQueued = Math.max(room.maxQueued, conn.queued);
        }
        check();
      },
    },
  );
  const finished = mux.run(listener);
  const port = listener.addr.port;
  const room = {
    /** The most bytes that waited for one connection, seen at any event. */
    maxQueued: 0,
    mux,
    events,
    finished,
    async join(): Promise<Client> {
      const client = new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
      const before = events.filter((event) => event.type === "join").length;
      await this.until(() => events.filter((event) => event.type === "join").length > before);
      return client;
    },
    until(condition: () => boolean): Promise<void> {
      if (condition()) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.add({ condition, resolve });
      return promise;
    },
    async stop(): Promise<void> {
      mux.stop();
      await finished;
    },
  };
  return room;
}

Deno.test("LineSplitter cuts a long line at a character boundary and skips its rest", () => {
  const seen: [string, boolean][] = [];
  const lines = new LineSplitter(5, (line, cut) => seen.push([decoder.decode(line), cut]));
  lines.push(encoder.encode("abé€xyz")); // é is 2 bytes, € is 3: byte 5 is inside €
  lines.push(encoder.encode(" still the same line\nnext\r\n"));
  lines.push(encoder.encode("exact\npart"));
  assertEquals(lines.pending, 4);
  lines.flush();
  assertEquals(seen, [
    ["abé", true],
    ["next", false],
    ["exact", false],
    ["part", false],
  ]);
});

Deno.test("chatRoom() as a broker sends every byte to every other client, unchanged", async () => {
  const room = startRoom({ mode: "broker" });
  const [alice, bob, carol] = [await room.join(), await room.join(), await room.join()];
  const bytes = new Uint8Array(256).map((_, i) => i); // control characters and all
  await alice.send(bytes);
  for (const client of [bob, carol]) {
    const got = new Uint8Array(256);
    for (let n = 0; n < 256;) n += (await client.conn.read(got.subarray(n))) ?? 256;
    assertEquals(got, bytes);
  }
  await room.until(() => room.mux.stats.queued === 0);
  alice.close();
  // Alice was never sent her own bytes: nothing else came to anyone.
  bob.close();
  carol.close();
  await room.stop();
  assertEquals(room.mux.stats.bytesOut, 512);
  assertEquals(room.events.filter((event) => event.type === "leave").length, 3);
});

Deno.test("chatRoom() in chat mode names each sender, escapes control characters and announces who comes and goes", async () => {
  const room = startRoom({ mode: "chat" });
  const alice = await room.join();
  await alice.readUntil("already connected: nobody.\n");
  const bob = await room.join();
  await bob.readUntil("already connected: 127.0.0.1:");
  await bob.send("hi \x1b[2Jall\r\n");
  await alice.readUntil("<user2> hi");
  bob.close();
  assertMatch(
    await alice.readUntil("<user2> is disconnected.\n"),
    new RegExp(
      [
        "^<announce> 127\\.0\\.0\\.1:\\d+ is connected as <user1>\\.",
        "<announce> already connected: nobody\\.",
        "<announce> 127\\.0\\.0\\.1:\\d+ is connected as <user2>\\.",
        "<user2> hi \\\\x1b\\[2Jall",
        "<announce> <user2> is disconnected\\.",
        "$",
      ].join("\n"),
    ),
  );
  assertMatch(bob.text, /already connected: 127\.0\.0\.1:\d+ as <user1>\.\n$/);
  alice.close();
  await room.stop();
});

Deno.test("chatRoom() cuts an over-long line and tells its sender", async () => {
  const room = startRoom({ mode: "chat", maxLine: 8 });
  const alice = await room.join();
  const bob = await room.join();
  await bob.send("0123456789abcdef\nok\n");
  await alice.readUntil("<user2> ok\n");
  assert(alice.text.includes("<user2> 01234567 [cut at 8 bytes]\n<user2> ok\n"), alice.text);
  await bob.readUntil("<announce> your line was cut at 8 bytes.\n");
  const message = room.events.find((event) => event.type === "message");
  assertEquals(message?.type === "message" && message.cut, true);
  alice.close();
  bob.close();
  await room.stop();
});

Deno.test("chatRoom() drops a client that never reads while the others keep chatting", async () => {
  const highWaterMark = 64 * 1024;
  const room = startRoom({ mode: "chat", highWaterMark, maxLine: 2048 });
  const sleeper = await room.join(); // never reads
  const alice = await room.join();
  const bob = await room.join();
  const line = `${"x".repeat(1000)}\n`;
  // Alice talks, Bob listens, until the sleeper is dropped; then they go on.
  const listening = bob.readUntil("<user1> is disconnected (too slow:");
  let said = 0;
  while (!room.events.some((event) => event.type === "drop")) {
    await alice.send(line.repeat(16));
    said += 16;
    // Server, talker and listener share this process: a timer lets the runtime poll Bob's
    // socket too (a loop of ready reads and writes alone would starve his reads).
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert(said < 64 * 1024, "the sleeper was never dropped");
  }
  await listening;
  await alice.send("still here?\n");
  await bob.readUntil("<user2> still here?\n");
  // Bob heard every line, in order, with the notice among them.
  assertEquals(bob.text.split(`<user2> ${"x".repeat(1000)}\n`).length - 1, said);
  const drop = room.events.find((event) => event.type === "drop");
  assert(drop?.type === "drop" && drop.user === "user1" && drop.queued >= highWaterMark);
  const leave = room.events.find((event) => event.type === "leave");
  assertEquals(leave?.type === "leave" && [leave.user, leave.reason], ["user1", "dropped"]);
  // What was queued for it never exceeded the mark and two messages, each at most what one
  // read of Alice's completes (and the start of a line before it), with prefixes.
  const message = Math.ceil((MAX_READ_SIZE + 2048) * 1009 / 1001);
  assert(room.maxQueued < highWaterMark + 2 * message, `queued ${room.maxQueued} bytes`);
  for (const client of [sleeper, alice, bob]) client.close();
  await room.stop();
});

Deno.test("chatRoom() delivers what is queued and announces no departures when it stops", async () => {
  const room = startRoom({ mode: "chat" });
  const alice = await room.join();
  const bob = await room.join();
  await alice.send("goodnight\n");
  await room.until(() => room.events.some((event) => event.type === "message"));
  room.mux.stop();
  // Each hears the end of stream after what was queued; no "is disconnected" comes after.
  const [heardByBob, heardByAlice] = await Promise.all([bob.readToEnd(), alice.readToEnd()]);
  assert(heardByBob.endsWith("<user1> goodnight\n"), heardByBob);
  assert(!heardByAlice.includes("disconnected"), heardByAlice);
  alice.close();
  bob.close();
  await room.finished;
  assertEquals(room.mux.stats.dropped, 0);
  assertEquals(
    room.events.filter((event) => event.type === "leave").map((event) =>
      event.type === "leave" && event.reason
    ),
    ["stop", "stop"],
  );
});

Deno.test("chatRoom() says goodbye to a client idle for idleTimeout", async () => {
  const room = startRoom({ mode: "chat", idleTimeout: 50 });
  const alice = await room.join();
  const text = await alice.readToEnd();
  assert(text.endsWith("already connected: nobody.\n"), text);
  const leave = room.events.find((event) => event.type === "leave");
  assertEquals(leave?.type === "leave" && leave.reason, "idle");
  alice.close();
  await room.stop();
});

Deno.test("serveChat() refuses connections beyond maxConnections", async () => {
  const server = await serveChat({ port: 0, mode: "chat", maxConnections: 1 });
  const port = (server.addr as Deno.NetAddr).port;
  const alice = new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  await alice.readUntil("nobody.\n");
  const bob = new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  assertEquals(await bob.readToEnd(), "");
  assertEquals(server.stats.refused, 1);
  alice.close();
  bob.close();
  server.close();
  await server.finished;
});

Deno.test("serveChat() serves a room on a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.sock`;
  try {
    const server = await serveChat({ path, mode: "chat" });
    const alice = new Client(await Deno.connect({ transport: "unix", path }));
    await alice.readUntil("nobody.\n");
    const bob = new Client(await Deno.connect({ transport: "unix", path }));
    await bob.readUntil("as <user1>.\n");
    await bob.send("over unix\n");
    await alice.readUntil("<user2> over unix\n");
    assert(alice.text.startsWith("<announce> unix:(unnamed) is connected as <user1>."));
    alice.close();
    bob.close();
    server.close();
    await server.finished;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serveChat() serves a room over TLS",
  ignore: !hasOpenssl(),
  async fn() {
    await using certs = await createTestCertificates();
    const server = await serveChat({
      port: 0,
      mode: "chat",
      tls: { cert: certs.cert, key: certs.key },
    });
    const options = {
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
      caCerts: [certs.caCert],
    };
    const alice = new Client(await Deno.connectTls(options));
    await alice.readUntil("nobody.\n");
    const bob = new Client(await Deno.connectTls(options));
    await bob.readUntil("as <user1>.\n");
    await bob.send("secret\n");
    await alice.readUntil("<user2> secret\n");
    alice.close();
    bob.close();
    server.close();
    await server.finished;
  },
});
