/**
 * Raw sockets end to end over FFI, on loopback only: SYN probes, and what every raw script
 * shares (permissions, help); ping and the sniffer have their own files. These
 * need root (or CAP_NET_RAW); without it they are skipped with a message. The checks that the
 * scripts fail with one clear line run everywhere.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { hasPeer, isRoot, runScript } from "./_process.ts";
import { sendSyn } from "../scripts/raw_syn.ts";

const root = isRoot();
if (!root) console.warn("skipping raw socket tests: they need root (run the tests as root)");
const FFI = ["--allow-ffi"];
const SCRIPTS = ["raw_ping.ts", "raw_syn.ts", "raw_sniff.ts"];
/** Flags that make each script do one thing and exit, should the socket open after all. */
const QUICK_ARGS: Record<string, string[]> = {
  "raw_ping.ts": ["--count", "1"],
  "raw_syn.ts": [],
  "raw_sniff.ts": ["--count", "1"],
};

function scriptPath(name: string): string {
  return new URL(`../scripts/${name}`, import.meta.url).pathname;
}

/** `count` different ports that were free a moment ago and that nothing listens on any more:
 * the closed destination of a probe, and its source port (no socket of ours uses it). */
function closedPorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  for (const listener of listeners) listener.close();
  return listeners.map((listener) => listener.addr.port);
}

/** A source port for a probe: a free one, never one a test listens on. */
function probePort(): number {
  return closedPorts(1)[0];
}

Deno.test({
  name: "sendSyn() gets a SYN-ACK from a port where a listener waits",
  ignore: !root,
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const result = await sendSyn({
      dstPort: listener.addr.port,
      srcPort: probePort(),
      listenReply: true,
      timeout: 5000,
    });
    assertEquals(result.reply?.kind, "syn-ack");
    assertEquals(result.reply?.flags, "S.");
    assertEquals(result.reply?.ack, (result.seq + 1) >>> 0);
  },
});

Deno.test({
  name: "sendSyn() gets its SYN-ACK while other loopback TCP traffic floods the host",
  ignore: !root,
  async fn() {
    // A raw TCP socket receives every TCP packet of the host; the kernel filter it attaches
    // keeps only the answer, so a busy loopback cannot crowd it out.
    using echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served: Promise<void>[] = [];
    const accepting = (async () => {
      for await (const conn of echo) {
        served.push(conn.readable.pipeTo(conn.writable).catch(() => {}));
      }
    })();
    const clients = await Promise.all(
      Array.from(
        { length: 8 },
        () => Deno.connect({ hostname: "127.0.0.1", port: echo.addr.port }),
      ),
    );
    let flooding = true;
    const floods = clients.map(async (conn) => {
      const chunk = new Uint8Array(1024);
      const scratch = new Uint8Array(64 * 1024);
      while (flooding) {
        await conn.write(chunk);
        await conn.read(scratch);
      }
    });
    try {
      using target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      for (let i = 0; i < 5; i++) {
        const result = await sendSyn({
          dstPort: target.addr.port,
          srcPort: probePort(),
          listenReply: true,
          timeout: 5000,
        });
        assertEquals(result.reply?.kind, "syn-ack");
      }
    } finally {
      flooding = false;
      await Promise.allSettled(floods);
      for (const conn of clients) conn.close();
      echo.close();
      await accepting.catch(() => {});
      await Promise.allSettled(served);
    }
  },
});

Deno.test({
  name: "sendSyn() gets a RST from a closed port",
  ignore: !root,
  async fn() {
    const payload = new TextEncoder().encode("Hello, how are you");
    const [dstPort, srcPort] = closedPorts(2);
    const result = await sendSyn({
      dstPort,
      srcPort,
      payload,
      listenReply: true,
      timeout: 5000,
    });
    assertEquals(result.packet.length, 20 + 20 + payload.length);
    assertEquals(result.reply?.kind, "rst");
    // A RST acknowledges the SYN and the data it carried.
    assertEquals(result.reply?.ack, (result.seq + 1 + payload.length) >>> 0);
  },
});

Deno.test({
  name: "raw_syn.ts reports an open port and a closed one",
  ignore: !root,
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const open = await runScript("raw_syn.ts", [
      "--dport",
      String(listener.addr.port),
      "--sport",
      String(probePort()),
      "--listen-reply",
      "--timeout",
      "5s",
    ], { permissions: FFI });
    assertEquals(open.code, 0, open.stderr);
    assertMatch(
      open.stdout,
      /^Sent SYN 127\.0\.0\.1:\d+ > 127\.0\.0\.1:\d+ seq \d+ \(40 bytes\)$/m,
    );
    assertMatch(open.stdout, /^Reply from 127\.0\.0\.1:\d+: SYN-ACK: port open \[S\.\]/m);

    const [dport, sport] = closedPorts(2);
    const closed = await runScript("raw_syn.ts", [
      "--dport",
      String(dport),
      "--sport",
      String(sport),
      "--listen-reply",
      "--json",
    ], { permissions: FFI });
    assertEquals(closed.code, 0, closed.stderr);
    const [sent, reply] = closed.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assertEquals(Object.keys(sent).slice(0, 5), ["event", "time", "peer", "local", "bytes"]);
    assertEquals([sent.event, sent.peer, sent.bytes], ["sent", `127.0.0.1:${dport}`, 40]);
    assertEquals([reply.event, reply.kind, reply.flags], ["reply", "rst", "R."]);
  },
});

for (const name of SCRIPTS) {
  Deno.test(`${name} without --allow-ffi exits 1 with one line saying so`, async () => {
    const result = await runScript(name, [], { permissions: [] });
    assertEquals(result.code, 1);
    assertEquals(result.stdout, "");
    assertEquals(
      result.stderr,
      `${name.slice(0, -3)}: Raw sockets reach libc through FFI: run again with the --allow-ffi ` +
        "flag (and as root)\n",
    );
  });

  Deno.test({
    name: `${name} without CAP_NET_RAW exits 1 with one line saying so`,
    ignore: root && !hasPeer("setpriv"),
    async fn() {
      // As root, drop the capability from the bounding set; as anyone else, just run it.
      const deno = [Deno.execPath(), "run", "--allow-ffi", scriptPath(name), ...QUICK_ARGS[name]];
      const [program, ...args] = root ? ["setpriv", "--bounding-set=-net_raw", ...deno] : deno;
      const command = new Deno.Command(program, {
        args,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      });
      const output = await command.output();
      const stderr = new TextDecoder().decode(output.stderr);
      assertEquals(output.code, 1, stderr);
      assertEquals(
        stderr,
        `${name.slice(0, -3)}: socket() failed: Operation not permitted (EPERM): ` +
          "raw sockets need root or CAP_NET_RAW\n",
      );
    },
  });

  Deno.test(`${name} --help prints usage and exits 0; a bad flag exits 2`, async () => {
    const help = await runScript(name, ["--help"], { permissions: [] });
    assertEquals(help.code, 0);
    assertMatch(help.stdout, new RegExp(`^Usage: ${name} \\[options\\]`));
    const bad = await runScript(name, ["--bogus"], { permissions: [] });
    assertEquals(bad.code, 2);
    assertEquals(bad.stderr, `${name.slice(0, -3)}: Unknown flag "--bogus" (see --help)\n`);
  });
}
