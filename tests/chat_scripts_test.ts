import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";
import { xxd } from "./_xxd.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads from `conn` until the text read contains `expected`; returns all of it. */
async function readUntil(conn: Deno.Conn, expected: string, text = ""): Promise<string> {
  const buffer = new Uint8Array(64 * 1024);
  const parts = [text];
  // Only the new text is searched: a reader slower than the room would be dropped from it.
  let recent = text;
  while (!recent.includes(expected)) {
    const n = await conn.read(buffer);
    if (n === null) {
      throw new Error(`End of stream before "${expected}" in:\n${parts.join("").slice(-300)}`);
    }
    const chunk = decoder.decode(buffer.subarray(0, n), { stream: true });
    parts.push(chunk);
    recent = recent.slice(-expected.length) + chunk;
  }
  return parts.join("");
}

/** Reads `conn` to its end, then closes it: what a client does when the server stops. */
async function closeAtEnd(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while ((await conn.read(buffer)) !== null);
  } finally {
    conn.close();
  }
}

Deno.test("chat_server.ts --chat lets an nc client talk to the room and narrates it", {
  ignore: !hasPeer("nc"),
}, async () => {
  await using server = spawnScript("chat_server.ts", ["--port", "0", "--chat"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const alice = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = `127.0.0.1:${alice.localAddr.port}`;
  await readUntil(alice, "already connected: nobody.\n");
  // -N: nc shuts its sending side down at the end of its input, and the server lets it go.
  const nc = await runPeer("nc", ["-N", "127.0.0.1", `${port}`], { stdin: "hello \x07room\n" });
  assertEquals(nc.code, 0, nc.stderr);
  assertMatch(decoder.decode(nc.stdout), /already connected: 127\.0\.0\.1:\d+ as <user1>\.\n/);
  // The server announces a departure after it has logged it.
  const heard = await readUntil(alice, "<user2> is disconnected.\n");
  assertStringIncludes(heard, "<user2> hello \\x07room\n");
  const [{ code, stdout, stderr }] = await Promise.all([server.stop("SIGINT"), closeAtEnd(alice)]);
  assertEquals(code, 0);
  assertMatch(
    stdout,
    new RegExp(
      [
        `^user1 joined from ${local}`,
        "user2 joined from 127\\.0\\.0\\.1:\\d+",
        "<user2> hello \\\\x07room",
        "user2 left",
        "user1 left \\(server stopping\\)",
        "$",
      ].join("\n"),
    ),
  );
  assertMatch(stderr, /^Listening on 127\.0\.0\.1:\d+\nstopped after 2 connections: /);
});

Deno.test("chat_server.ts relays bytes unchanged between socat and nc in broker mode", {
  ignore: !hasPeer("socat") || !hasPeer("nc"),
}, async () => {
  await using server = spawnScript("chat_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const listener = await Deno.connect({ hostname: "127.0.0.1", port });
  // The listener connected first, so the server accepts it before the peers below.
  const payload = "\x00binary\x1b[31m\r\nbytes\xff";
  const [socat, nc] = await Promise.all([
    runPeer("socat", ["-u", "-", `TCP:127.0.0.1:${port}`], { stdin: payload }),
    runPeer("nc", ["-N", "127.0.0.1", `${port}`], { stdin: "from nc" }),
  ]);
  assertEquals([socat.code, nc.code], [0, 0], socat.stderr + nc.stderr);
  // The listener gets both, each unchanged (their order depends on who was first).
  const bytes = encoder.encode(payload).length + 7;
  const got = new Uint8Array(bytes);
  for (let n = 0; n < bytes;) n += (await listener.read(got.subarray(n))) ?? bytes;
  const text = decoder.decode(got);
  assert(text === payload + "from nc" || text === "from nc" + payload, JSON.stringify(text));
  const [{ code, stdout }] = await Promise.all([server.stop("SIGINT"), closeAtEnd(listener)]);
  assertEquals(code, 0);
  assertEquals(stdout, "");
});

Deno.test("chat_server.ts --json prints join, message, drop and leave events", async () => {
  await using server = spawnScript(
    "chat_server.ts",
    ["--port", "0", "--chat", "--json", "--high-water-mark", "64k"],
    { permissions: NET },
  );
  const port = await server.listeningPort();
  const sleeper = await Deno.connect({ hostname: "127.0.0.1", port }); // never reads
  const alice = await Deno.connect({ hostname: "127.0.0.1", port });
  const bob = await Deno.connect({ hostname: "127.0.0.1", port });
  const heard = await readUntil(bob, "as <user2>.\n"); // Bob is user3
  const line = `${"y".repeat(500)}\n`.repeat(32);
  // Alice talks until the sleeper is dropped; Bob listens.
  const dropped = readUntil(bob, "<user1> is disconnected (too slow:", heard);
  let stop = false;
  dropped.finally(() => stop = true).catch(() => {});
  while (!stop) {
    await writeAll(alice, encoder.encode(line));
    await new Promise((resolve) => setTimeout(resolve, 1)); // a chat, not a flood
  }
  await dropped;
  sleeper.close();
  await server.waitForStdout(/"event":"leave".*"user":"user1"/);
  const [{ code, stdout }] = await Promise.all([
    server.stop("SIGINT"),
    closeAtEnd(alice),
    closeAtEnd(bob),
  ]);
  assertEquals(code, 0);
  const events = stdout.trim().split("\n").map((text) => JSON.parse(text));
  for (const event of events) assert(!Number.isNaN(Date.parse(event.time)), event.time);
  const [join] = events;
  assertEquals(join.event, "join");
  assertEquals(join.peer, `127.0.0.1:${sleeper.localAddr.port}`);
  const message = events.find((event) => event.event === "message");
  assertEquals([message.user, message.bytes, message.data], ["user2", 500, "y".repeat(500)]);
  const drop = events.find((event) => event.event === "drop");
  assertEquals(drop.user, "user1");
  assert(drop.bytes >= 64 * 1024, drop.bytes);
  const leave = events.find((event) => event.event === "leave");
  assertEquals([leave.user, leave.reason], ["user1", "dropped"]);
});

Deno.test("chat_server.ts drains and exits 0 on SIGINT with clients connected", async () => {
  await using server = spawnScript("chat_server.ts", ["--port", "0", "--chat", "--quiet"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const conns = [];
  for (let i = 0; i < 10; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await readUntil(conn, "already connected:");
    conns.push(conn);
  }
  // What was queued arrives, then the end of stream; each client then closes.
  const [{ code, stderr }] = await Promise.all([
    server.stop("SIGINT"),
    ...conns.map((conn) => closeAtEnd(conn)),
  ]);
  assertEquals(code, 0);
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
});

Deno.test("chat_server.ts --unix serves the room and removes its socket on SIGINT", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.sock`;
  try {
    await using server = spawnScript("chat_server.ts", ["--unix", path, "--chat"], {
      permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`, `--allow-net=unix:${path}`],
    });
    await server.waitForStderr(/^Listening on unix:/m);
    const alice = await Deno.connect({ transport: "unix", path });
    await readUntil(alice, "nobody.\n");
    const bob = await Deno.connect({ transport: "unix", path });
    await readUntil(bob, "<user1>.\n");
    await writeAll(bob, encoder.encode("over unix\n"));
    await readUntil(alice, "<user2> over unix\n");
    const [{ code }] = await Promise.all([
      server.stop("SIGINT"),
      closeAtEnd(alice),
      closeAtEnd(bob),
    ]);
    assertEquals(code, 0);
    assertEquals(await Deno.lstat(path).then(() => "exists", () => "removed"), "removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "chat_server.ts --tls serves socat OPENSSL clients",
  ignore: !hasOpenssl() || !hasPeer("socat"),
  async fn() {
    await using certs = await createTestCertificates();
    await using server = spawnScript(
      "chat_server.ts",
      ["--port", "0", "--chat", "--tls", "--cert", certs.certFile, "--key", certs.keyFile],
      { permissions: ["--allow-net=127.0.0.1", `--allow-read=${certs.dir}`] },
    );
    const port = await server.listeningPort();
    const alice = await Deno.connectTls({
      hostname: "127.0.0.1",
      port,
      caCerts: [certs.caCert],
    });
    await readUntil(alice, "nobody.\n");
    const socat = await runPeer("socat", [
      "-",
      `OPENSSL:127.0.0.1:${port},cafile=${certs.caFile},verify=1,commonname=127.0.0.1,shut-down`,
    ], { stdin: "hello over TLS\n" });
    assertEquals(socat.code, 0, socat.stderr);
    await readUntil(alice, "<user2> hello over TLS\n");
    const [{ code }] = await Promise.all([server.stop("SIGINT"), closeAtEnd(alice)]);
    assertEquals(code, 0);
  },
});

Deno.test({
  name: "chat_server.ts -x dumps what a client sends as xxd does",
  ignore: !hasPeer("xxd"),
  async fn() {
    await using server = spawnScript("chat_server.ts", ["--port", "0", "-x"], { permissions: NET });
    const port = await server.listeningPort();
    const listener = await Deno.connect({ hostname: "127.0.0.1", port });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const message = new Uint8Array(40).map((_, i) => (i * 37) % 256); // escapes and high bytes
    await writeAll(conn, message);
    await conn.closeWrite();
    const got = new Uint8Array(40);
    for (let n = 0; n < 40;) n += (await listener.read(got.subarray(n))) ?? 40;
    assertEquals(got, message);
    assertEquals(await conn.read(new Uint8Array(1)), null); // broker: nothing comes back
    conn.close();
    const [{ stdout }] = await Promise.all([server.stop("SIGINT"), closeAtEnd(listener)]);
    const dump = await xxd(message);
    const [one, two] = [listener, conn].map((c) => `127.0.0.1:${c.localAddr.port}`);
    // This small a message arrives in one piece.
    assertEquals(
      stdout,
      [
        `user1 joined from ${one}`,
        `user2 joined from ${two}`,
        `user2 (${two}) sent 40 bytes:\n${dump}user2 left`,
        "user1 left (server stopping)",
        "",
      ].join("\n"),
    );
  },
});

Deno.test("chat_server.ts exits 2 on bad flags", async () => {
  for (
    const args of [
      ["--port", "abc"],
      ["--chat-mode"],
      ["--max-line", "0"],
      ["--high-water-mark", "lots"],
      ["--unix", "/tmp/x", "--port", "1"],
      ["--cert", "x.pem"],
      ["-x", "--json"],
    ]
  ) {
    const { code, stdout, stderr } = await runScript("chat_server.ts", args, { permissions: NET });
    assertEquals(code, 2, args.join(" "));
    assertEquals(stdout, "");
    assertMatch(stderr, /^chat_server: .* \(see --help\)\n$/);
  }
});

Deno.test("chat_server.ts --help names its defaults", async () => {
  const { code, stdout } = await runScript("chat_server.ts", ["--help"], { permissions: NET });
  assertEquals(code, 0);
  assertStringIncludes(stdout, "[default: 31337]");
  assertStringIncludes(stdout, "--high-water-mark SIZE");
});
