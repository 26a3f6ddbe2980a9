/**
 * The sniffer end to end on loopback, judged by tcpdump: on the same flow (1 MiB of TCP and a
 * few datagrams on a port chosen at run time) it must see every frame tcpdump sees, in the same
 * order with the same ports and lengths, and report 0 frames dropped by the kernel. Needs root
 * (raw sockets); the comparison also needs tcpdump. Without them the tests skip and say so.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { hasPeer, isRoot, runScript, ScriptProcess, spawnScript } from "./_process.ts";
import { sendSyn } from "../scripts/raw_syn.ts";
import { sniff } from "../scripts/raw_sniff.ts";

const root = isRoot();
if (!root) console.warn("skipping sniffer tests: they need root (run the tests as root)");
const FFI = ["--allow-ffi"];
const SUMMARY = /^\d+ frames? captured, \d+ dropped by the kernel$/m;

/** `count` different ports that were free a moment ago and that nothing listens on any more. */
function closedPorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  for (const listener of listeners) listener.close();
  return listeners.map((listener) => listener.addr.port);
}

Deno.test({
  name: "raw_sniff.ts decodes the ports and payload of a datagram from udp_send.ts",
  ignore: !root,
  async fn() {
    // A bound receiver, so the datagram is delivered rather than answered with an ICMP error.
    const receiver = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const port = (receiver.addr as Deno.NetAddr).port;
      await using script = spawnScript("raw_sniff.ts", [
        "--proto",
        "udp",
        "-p",
        String(port),
        "-c",
        "1",
        "--json",
      ], { permissions: FFI });
      await script.waitForStderr(/^Listening on lo$/m);
      const sent = await runScript("udp_send.ts", [
        "--port",
        String(port),
        "--message",
        "Hello, World!",
      ], { permissions: ["--allow-net=127.0.0.1"] });
      assertEquals(sent.code, 0, sent.stderr);
      const [, from] = await receiver.receive();
      const result = await script.result();
      assertEquals(result.code, 0, result.stderr);
      const [frame, summary] = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
      assertEquals(Object.keys(frame).slice(0, 4), ["event", "time", "bytes", "data"]);
      assertEquals([frame.event, frame.protocol, frame.interface], ["frame", "udp", "lo"]);
      assertEquals([frame.src, frame.dst], ["127.0.0.1", "127.0.0.1"]);
      assertEquals(frame.src_port, (from as Deno.NetAddr).port);
      assertEquals(frame.dst_port, port);
      assertEquals([frame.bytes, frame.data], [13, "Hello, World!"]);
      // The kernel's timestamp, to the microsecond, agrees with the ISO time.
      assertEquals(Math.floor(frame.time_us / 1000), Date.parse(frame.time));
      assertEquals(summary.event, "summary");
      assertEquals([summary.captured, summary.dropped], [1, 0]);
      assertEquals(result.stderr, "Listening on lo\n1 frame captured, 0 dropped by the kernel\n");
    } finally {
      receiver.close();
    }
  },
});

Deno.test({
  name: "raw_sniff.ts stops on SIGINT while it waits and reports the kernel's drops",
  ignore: !root,
  async fn() {
    await using script = spawnScript("raw_sniff.ts", ["--port", String(closedPorts(1)[0])], {
      permissions: FFI,
    });
    await script.waitForStderr(/^Listening on lo$/m);
    const result = await script.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, "");
    assertEquals(result.stderr, "Listening on lo\n0 frames captured, 0 dropped by the kernel\n");
  },
});

Deno.test({
  name: "sniff() sees a SYN and its RST on lo, each once",
  ignore: !root,
  async fn() {
    const [dstPort, srcPort] = closedPorts(2);
    const controller = new AbortController();
    // Ends the capture if the frames never come, so the test fails instead of hanging.
    const timer = setTimeout(() => controller.abort(), 10_000);
    const { promise: listening, resolve } = Promise.withResolvers<void>();
    const frames = sniff({
      protocol: "tcp",
      port: dstPort,
      count: 2,
      signal: controller.signal,
      onListening: resolve,
    });
    const collected = Array.fromAsync(frames, ({ frame }) => frame);
    try {
      await Promise.race([listening, collected]);
      await sendSyn({ dstPort, srcPort, listenReply: true, timeout: 5000 });
      const [syn, rst] = await collected;
      assertEquals([syn?.srcPort, syn?.dstPort, syn?.flags], [srcPort, dstPort, "S"]);
      assertEquals([rst?.srcPort, rst?.dstPort, rst?.flags], [dstPort, srcPort, "R."]);
    } finally {
      controller.abort();
      clearTimeout(timer);
      await collected.catch(() => {});
    }
  },
});

/** The last datagram of the flow: both tools have seen everything once they show it. */
const MARKER_BYTES = 1234;

/** 1 MiB over TCP to `port`, then datagrams of a few sizes and the marker over UDP. */
async function loopbackFlow(listener: Deno.TcpListener, receiver: Deno.DatagramConn) {
  const port = listener.addr.port;
  const accepted = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(64 * 1024);
    let total = 0;
    for (let n; (n = await conn.read(buffer)) !== null;) total += n;
    conn.close();
    return total;
  })();
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(client, new Uint8Array(1024 * 1024).fill(0x78));
  client.close();
  assertEquals(await accepted, 1024 * 1024);
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (const size of [1, 7, 100, 1400, MARKER_BYTES]) {
      await sender.send(new Uint8Array(size), { transport: "udp", hostname: "127.0.0.1", port });
      await receiver.receive();
    }
  } finally {
    sender.close();
  }
}

Deno.test({
  name: "raw_sniff.ts sees every frame tcpdump sees on a 1 MiB loopback flow, and drops none",
  ignore: !root || !hasPeer("tcpdump"),
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    const receiver = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
    try {
      // A 64 MiB buffer for tcpdump too, so the reference itself drops nothing.
      await using tcpdump = new ScriptProcess(
        new Deno.Command("tcpdump", {
          args: ["-i", "lo", "-n", "-l", "-B", "65536", "port", String(port)],
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
      );
      await tcpdump.waitForStderr(/^listening on lo/m);
      await using sniffer = spawnScript("raw_sniff.ts", ["--port", String(port), "--json"], {
        permissions: FFI,
      });
      await sniffer.waitForStderr(/^Listening on lo$/m);
      await loopbackFlow(listener, receiver);
      await sniffer.waitForStdout(new RegExp(`"bytes":${MARKER_BYTES},`));
      await tcpdump.waitForStdout(new RegExp(`UDP, length ${MARKER_BYTES}$`, "m"));
      const reference = await tcpdump.stop("SIGINT");
      const result = await sniffer.stop("SIGINT");
      assertMatch(reference.stderr, /^0 packets dropped by kernel$/m, "tcpdump itself dropped");

      // One "src>dst length" per frame, tcpdump's length being the TCP/UDP payload.
      const expected = reference.stdout.trimEnd().split("\n").map((line) => {
        const match = line.match(/ IP [\d.]+\.(\d+) > [\d.]+\.(\d+): .*?length (\d+)/);
        return match ? `${match[1]}>${match[2]} ${match[3]}` : `unparsed: ${line}`;
      });
      const lines = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
      const summary = lines.pop();
      const seen = lines.map((frame) => `${frame.src_port}>${frame.dst_port} ${frame.bytes}`);
      assertEquals(seen, expected);
      assertEquals([summary.event, summary.captured, summary.dropped], [
        "summary",
        expected.length,
        0,
      ]);
      assertMatch(result.stderr, SUMMARY);
      assertMatch(result.stderr, new RegExp(`^${expected.length} frames captured, 0 dropped`, "m"));
    } finally {
      receiver.close();
    }
  },
});
