/**
 * Resets at every phase of a connection: while the server still reads what the client sent,
 * while its writes are stalled on a client that does not read, half-way through a TLS
 * ClientHello, and during the drain of a stop. Also what a drain promises (every byte counted as
 * echoed arrives, no reset, the rest reported) and a UDP receiver that stops under traffic.
 */
import { assert, assertEquals, assertLess, assertMatch, assertNotMatch } from "@std/assert";
import {
  attackServer,
  CHAT,
  ECHO,
  FaultServer,
  GREETING,
  hasPython,
  hex,
  HTTP2,
  python,
  PythonPeer,
  type ServerSpec,
  STREAM_SERVERS,
  UDP,
  waitUntil,
} from "./_faults.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const encoder = new TextEncoder();

/** A request whose body keeps coming: what an HTTP server reads for a long time. */
const UPLOAD = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";

/** What a client sends first so that the server is busy reading it. */
function opening(spec: ServerSpec): string {
  return spec === HTTP2 ? hex(encoder.encode(UPLOAD)) : "";
}

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} serves a fresh client after a reset mid-read`,
    ignore: !hasPython(),
    async fn() {
      await attackServer(spec, {}, async (server) => {
        for (let i = 0; i < 3; i++) {
          assertMatch(await python("reset-reading", server.target, opening(spec)), /^reset/);
        }
      });
    },
  });
}

for (const spec of STREAM_SERVERS.filter((spec) => spec.kind === "echo")) {
  Deno.test({
    name: `${spec.script} serves a fresh client after a reset mid-write`,
    ignore: !hasPython(),
    async fn() {
      await attackServer(spec, {}, async (server) => {
        const out = await python("reset-writing", server.target, hex(new Uint8Array(4096)));
        assertMatch(out, /^reset after \d+/m);
      });
    },
  });
}

Deno.test({
  name: "chat_server.ts serves a fresh client after a reset mid-write",
  ignore: !hasPython(),
  async fn() {
    await attackServer(CHAT, {}, async (server) => {
      // A receiver that never reads, while another client sends it 8 MiB; then it resets.
      await using receiver = new PythonPeer("connect-reset", server.target);
      await receiver.waitFor(/^connected$/m);
      await waitUntil(async () => await server.backlog() === 0, "the server accepts it");
      const sender = await server.connect();
      try {
        const chunk = new Uint8Array(64 * 1024);
        for (let i = 0; i < 128; i++) {
          if (await sender.write(chunk).catch(() => 0) === 0) break;
        }
        // Its end of stream comes after its last byte: once the server closes it, every byte
        // it sent has been broadcast, and none can reach the fresh clients checked next.
        await sender.closeWrite().catch(() => {});
        const scratch = new Uint8Array(64 * 1024);
        while (await sender.read(scratch).catch(() => null) !== null) { /* until the close */ }
      } finally {
        sender.close();
      }
      await receiver.poke();
      await receiver.waitFor(/^reset$/m);
    });
  },
});

Deno.test({
  name: "tcp_server.ts serves a fresh client after a reset mid-write",
  ignore: !hasPython(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deno-sockets-fault-" });
    try {
      // A greeting far larger than the socket buffers: the reset comes while it is written.
      const file = `${dir}/big`;
      await Deno.writeFile(file, new Uint8Array(8 << 20));
      await using server = await FaultServer.start(GREETING, {
        args: ["--message-file", file],
        permissions: [`--allow-read=${file}`],
      });
      // The fresh client check expects the usual greeting: check the big one by hand.
      const before = server.rssKiB();
      for (let i = 0; i < 3; i++) {
        assertMatch(await python("reset-writing", server.target), /^reset after/m);
      }
      assertEquals((await server.exchange(new Uint8Array(0))).length, 8 << 20);
      assertLess((server.rssKiB() - before) / 1024, 100);
      assertEquals((await server.stop("SIGINT")).code, 0, server.describe());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "http2_server.ts serves a fresh client after a reset mid-write",
  ignore: !hasPython(),
  async fn() {
    await attackServer(HTTP2, {}, async (server) => {
      // Pipelined requests with big headers and big answers, never read.
      const request = `GET /pipelined HTTP/1.1\r\nHost: x\r\nX-Fill: ${"f".repeat(4000)}\r\n\r\n`;
      const out = await python("reset-writing", server.target, hex(encoder.encode(request)));
      assertMatch(out, /^reset after \d+/m);
    });
  },
});

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} serves a fresh TLS client after a reset mid-handshake`,
    ignore: !hasPython() || !hasOpenssl(),
    async fn() {
      await using tls = await createTestCertificates();
      await attackServer(spec, { tls }, async (server) => {
        for (let i = 0; i < 3; i++) {
          assertMatch(await python("half-hello", server.target), /^reset after \d+ of/);
        }
      });
    },
  });
}

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} exits 0 when a client resets during the drain of a stop`,
    ignore: !hasPython(),
    async fn() {
      await using server = await FaultServer.start(spec);
      await server.servesFreshClient();
      const before = server.rssKiB();
      await using peer = new PythonPeer("pump-reset", server.target, opening(spec));
      await peer.waitFor(/^sending$/m);
      // Measured before the stop: a quick drain may end the process before the check.
      assertLess((server.rssKiB() - before) / 1024, 100);
      server.child.kill("SIGINT");
      // The listener closes as the drain begins: then the client resets.
      await waitUntil(async () => await server.backlog() === null, "the stop closes the listener");
      await peer.poke();
      await peer.finish();
      const result = await server.result();
      assertEquals(result.code, 0, server.describe());
      assertNotMatch(result.stderr, /second stop signal|Uncaught|error:/i);
    },
  });
}

Deno.test({
  name: "echo_server.ts delivers on SIGINT every byte it counts as echoed, with no reset",
  ignore: !hasPython(),
  async fn() {
    // Not --quiet: the summary line says how many bytes were echoed.
    await using server = await FaultServer.start(ECHO, { verbose: true });
    await server.servesFreshClient();
    await using peer = new PythonPeer("echo-drain", server.target);
    await peer.waitFor(/^sending$/m);
    server.child.kill("SIGINT");
    const report = JSON.parse((await peer.finish()).trim().split("\n").at(-1)!);
    const { code, stderr } = await server.result();
    assertEquals(code, 0, stderr);
    assertEquals(report.reset, false, "the client saw a reset");
    assertEquals(report.intact, true, "the echo differs from what was sent");
    const echoed = Number(/stopped after 2 connections and (\d+) bytes echoed/.exec(stderr)?.[1]);
    const dropped = Number(/the stop dropped (\d+) bytes/.exec(stderr)?.[1] ?? 0);
    // The fresh client's 64 KiB were echoed too.
    assertEquals(report.received, echoed - 64 * 1024, stderr);
    assertEquals(report.sent, report.received + dropped, stderr);
    assert(dropped > 0, `the client was still sending, so some bytes were not echoed:\n${stderr}`);
  },
});

Deno.test("udp_receive.ts stops on SIGINT while a sender keeps sending every 20 ms", async () => {
  await using server = await FaultServer.start(UDP, { args: ["--quiet"] });
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: server.port };
  let sent = 0;
  const timer = setInterval(() => {
    socket.send(encoder.encode("tick"), to).then(() => sent++, () => {});
  }, 20);
  try {
    await waitUntil(() => sent >= 5, "the sender is under way");
    const result = await server.stop("SIGINT", 5000);
    assertEquals(result.code, 0, server.describe());
    assertLess(result.elapsedMs, 3000, "the stop waited for the sender to pause");
    assertMatch(result.stderr, /received \d+ datagram/);
    // The drain ended on its own marker, not on its time bound.
    assertNotMatch(result.stderr, /stopped draining/);
  } finally {
    clearInterval(timer);
    socket.close();
  }
});
