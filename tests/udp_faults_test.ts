/**
 * What a UDP receiver and sender must survive or refuse: senders whose address Deno cannot
 * decode or that put terminal escapes in it, a flood that overflows the kernel's buffer (every
 * datagram received or counted as dropped), datagrams larger than 64 KiB on a Unix socket, echo
 * replies the permissions do not allow, and broadcast destinations nobody asked for. (A stop
 * under traffic is in `fault_reset_test.ts`.)
 */
import { assert, assertEquals, assertFalse, assertStringIncludes } from "@std/assert";
import { deadline } from "@std/async/deadline";
import { UNIX_DATAGRAM_RECEIVE_MAX } from "../lib/datagram/limits.ts";
import {
  hasPeer,
  runPeer,
  runScript,
  type ScriptProcess,
  type ScriptResult,
  spawnScript,
  startPortPeer,
} from "./_process.ts";
import { startUnixReceiver, unixPermissions } from "./_udp.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs python3 with `code`; `sys.argv[1:]` are `args`. */
async function python(code: string, ...args: string[]): Promise<string> {
  const result = await runPeer("python3", ["-c", code, ...args]);
  assertEquals(result.code, 0, result.stderr);
  return new TextDecoder().decode(result.stdout);
}

/** The JSON lines a script printed, by event. */
function jsonEvents(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter((line) => line).map((line) => JSON.parse(line));
}

const UNIX_SENDERS_PY = `
import socket, sys
path = sys.argv[1]
for name, data in [(b"\\0\\xff", b"odd"), (b"\\0peer\\x1b[2J", b"escaped"), (None, b"after")]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if name is not None:
        s.bind(name)
    s.sendto(data, path)
    s.close()
`;

/** What `udp_receive.ts --unix -c 2 ...flags` printed after {@linkcode UNIX_SENDERS_PY} ran. */
async function receiveFromOddSenders(flags: string[]): Promise<ScriptResult> {
  await using receiver = await startUnixReceiver(["-c", "2", ...flags]);
  await python(UNIX_SENDERS_PY, receiver.path);
  return await receiver.script.result();
}

Deno.test({
  name: "udp_receive.ts --unix counts a sender it cannot name, prints escaped ones, keeps going",
  ignore: !hasPeer("python3"),
  async fn() {
    const result = await receiveFromOddSenders(["-v"]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stdout,
      "received message from unix:\\0peer\\x1b[2J: escaped\n" +
        "received message from unix:(unnamed): after\n",
    );
    assertStringIncludes(result.stderr, "1 from an address Deno cannot decode (not printed)");
    assertFalse((result.stdout + result.stderr).includes("\x1b"), "a raw escape got through");
  },
});

Deno.test({
  name: "udp_receive.ts --unix --json counts undecodable senders in its summary",
  ignore: !hasPeer("python3"),
  async fn() {
    const events = jsonEvents((await receiveFromOddSenders(["--json"])).stdout);
    assertEquals(events.map((event) => event.event), ["datagram", "datagram", "summary"]);
    assertEquals(events[0].peer, "unix:\\0peer\\x1b[2J");
    assertEquals([events[2].datagrams, events[2].undecodable], [2, 1]);
    assertEquals([events[2].kernel_dropped, events[2].kernel_dropped_source], [0, "unix"]);
  },
});

/**
 * Floods a stopped receiver with far more than its kernel buffer holds, lets it read, and stops
 * it once it has printed a probe sent after the flood (so its queue is empty). Returns how many
 * datagrams were sent and the receiver's JSON summary.
 */
async function flood(
  receiver: ScriptProcess,
): Promise<{ sent: number; summary: Record<string, unknown> }> {
  const port = await receiver.listeningPort();
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  let sent = 0;
  try {
    receiver.child.kill("SIGSTOP");
    // The default receive buffer (212992 bytes) holds a few hundred small datagrams.
    for (; sent < 3000; sent++) await socket.send(encoder.encode(`flood ${sent}`), to);
    receiver.child.kill("SIGCONT");
    for (let probe = 0;; probe++) {
      await socket.send(encoder.encode(`probe ${probe}`), to);
      sent++;
      try {
        await receiver.waitForStdout(new RegExp(`"probe ${probe}"`), 500);
        break;
      } catch (error) {
        // A probe that found the buffer still full was dropped (and counted): send another.
        if (probe === 20) throw error;
      }
    }
  } finally {
    socket.close();
  }
  const result = await receiver.stop("SIGINT");
  assertEquals(result.code, 0, result.stderr);
  const events = jsonEvents(result.stdout);
  const datagrams = events.filter((event) => event.event === "datagram").length;
  const summary = events.at(-1)!;
  assertEquals(summary.event, "summary");
  assertEquals(summary.datagrams, datagrams, "the summary counts what was printed");
  return { sent, summary };
}

Deno.test({
  name: "udp_receive.ts reports what the kernel dropped: received + dropped = sent (ss)",
  ignore: !hasPeer("ss"),
  async fn() {
    await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "--json"], {
      permissions: [...NET, "--allow-run=ss"],
    });
    const { sent, summary } = await flood(receiver);
    assertEquals(summary.kernel_dropped_source, "ss");
    assert((summary.kernel_dropped as number) > 0, "the flood overflowed nothing");
    assertEquals((summary.datagrams as number) + (summary.kernel_dropped as number), sent);
  },
});

Deno.test("udp_receive.ts reads the drop counter from /proc/net/udp with --allow-all", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "--json"], {
    permissions: ["--allow-all"],
  });
  const { sent, summary } = await flood(receiver);
  assertEquals(summary.kernel_dropped_source, "/proc/net/udp");
  assert((summary.kernel_dropped as number) > 0, "the flood overflowed nothing");
  assertEquals((summary.datagrams as number) + (summary.kernel_dropped as number), sent);
});

Deno.test("udp_receive.ts --unix receives datagrams over 64 KiB whole", async () => {
  await using receiver = await startUnixReceiver(["-c", "2", "--json"]);
  const { path } = receiver;
  for (const size of [65537, 100_000]) {
    const file = receiver.at(`${size}`);
    await Deno.writeFile(file, new Uint8Array(size).fill(0x61));
    const sender = await runScript(
      "udp_send.ts",
      ["-q", "--unix", path, "--message-file", file],
      { permissions: [...unixPermissions(path), `--allow-read=${file}`] },
    );
    assertEquals(sender.code, 0, sender.stderr);
  }
  const events = jsonEvents((await receiver.script.result()).stdout);
  assertEquals(events.slice(0, 2).map((event) => event.bytes), [65537, 100_000]);
  assertEquals(events.slice(0, 2).map((event) => event.truncated), [undefined, undefined]);
});

/** The kernel's `net.core.wmem_max`: how large a send buffer an unprivileged sender may ask for. */
function wmemMax(): number {
  // Deno reads /proc only with --allow-all; cat needs no such thing.
  const { stdout } = new Deno.Command("cat", { args: ["/proc/sys/net/core/wmem_max"] })
    .outputSync();
  return Number(new TextDecoder().decode(stdout));
}

Deno.test({
  name: "udp_receive.ts --unix says when a datagram was longer than it takes",
  // A sender reaches past the receiver's limit only where wmem_max allows a larger send buffer.
  ignore: !hasPeer("python3") || 2 * wmemMax() - 32 <= UNIX_DATAGRAM_RECEIVE_MAX + 1,
  async fn() {
    await using receiver = await startUnixReceiver(["-c", "1"]);
    await python(
      `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.sendto(b"y" * 500000, sys.argv[1])`,
      receiver.path,
    );
    const result = await receiver.script.result();
    // What the buffer held, one byte past the limit, and a word that the rest is gone.
    const kept = "y".repeat(UNIX_DATAGRAM_RECEIVE_MAX + 1);
    assert(
      result.stdout === `received message: ${kept} (cut by the kernel: the datagram was longer)\n`,
      result.stdout.slice(-100),
    );
    assertStringIncludes(
      result.stderr,
      `1 cut by the kernel (longer than ${UNIX_DATAGRAM_RECEIVE_MAX} bytes)`,
    );
  },
});

Deno.test(
  "udp_receive.ts --echo names the missing permission once, counts each reply not sent, still answers the others",
  async () => {
    // Allowed to bind 127.0.0.1 and to answer there, not to reach 127.0.0.2.
    await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "--echo", "-q"], {
      permissions: NET,
    });
    const port = await receiver.listeningPort();
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    const outsider = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.2", port: 0 });
    const insider = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      for (let i = 0; i < 20; i++) await outsider.send(encoder.encode(`outsider ${i}`), to);
      // The receiver reads in order: this one's reply comes after the 20 were dealt with.
      await insider.send(encoder.encode("insider"), to);
      const [reply] = await deadline(insider.receive(), 10_000);
      assertEquals(decoder.decode(reply), "insider");
      const result = await receiver.stop("SIGINT");
      assertEquals(result.code, 0, result.stderr);
      const { port: outsiderPort } = outsider.addr as Deno.NetAddr;
      assertEquals(
        result.stderr.split("\n").filter((line) => line.includes("run again with")),
        [`cannot reply to 127.0.0.2:${outsiderPort}: run again with --allow-net=127.0.0.2`],
      );
      assertStringIncludes(result.stderr, "received 21 datagrams");
      assertStringIncludes(result.stderr, "1 reply sent, 20 not");
    } finally {
      outsider.close();
      insider.close();
    }
  },
);

Deno.test("udp_send.ts refuses broadcast destinations unless asked", async () => {
  for (const host of ["255.255.255.255", "127.255.255.255"]) {
    const refused = await runScript("udp_send.ts", [host, "9"], {
      permissions: [`--allow-net=127.0.0.1,${host}`],
    });
    assertEquals(refused.code, 1);
    assertEquals(refused.stdout, "", "nothing was printed as if it had been sent");
    assertStringIncludes(refused.stderr, `${host}:9 is the `);
    assertStringIncludes(refused.stderr, "add -b (--broadcast) to send a broadcast");
  }
  // Without the netmasks, x.x.x.255 may be a broadcast: refused, unless the interfaces say not.
  const unknown = await runScript("udp_send.ts", ["127.0.0.255", "9"], {
    permissions: ["--allow-net=127.0.0.1,127.0.0.255"],
  });
  assertEquals(unknown.code, 1);
  assertStringIncludes(unknown.stderr, "possibly a broadcast address");
  const host = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.255", port: 0 });
  try {
    const { port } = host.addr as Deno.NetAddr;
    const known = await runScript("udp_send.ts", ["-q", "127.0.0.255", `${port}`], {
      permissions: ["--allow-net=127.0.0.1,127.0.0.255", "--allow-sys=networkInterfaces"],
    });
    assertEquals(known.code, 0, known.stderr);
    const [data] = await host.receive();
    assertEquals(new TextDecoder().decode(data), "Hello, World!");
  } finally {
    host.close();
  }
});

Deno.test({
  name: "udp_send.ts -b sends a broadcast a Python receiver on the broadcast address gets",
  ignore: !hasPeer("python3"),
  async fn() {
    // Bound to the broadcast address itself (one bound to 127.0.0.1 does not get it): no
    // wildcard that other tests' traffic could reach.
    const receiverPy = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.255.255.255", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(10)
print(s.recvfrom(100)[0].decode())`;
    await using python = await startPortPeer("python3", ["-c", receiverPy]);
    const sender = await runScript(
      "udp_send.ts",
      ["-b", "-q", "127.255.255.255", `${python.port}`, "--message", "to all"],
      { permissions: [`--allow-net=127.0.0.1,127.255.255.255:${python.port}`] },
    );
    assertEquals(sender.code, 0, sender.stderr);
    assertEquals(await python.rest(), "to all\n");
  },
});

Deno.test("udp_send.ts -w gives up on a Unix receiver whose queue stays full", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/full.sock`;
  // Bound, never read: its queue (net.unix.max_dgram_qlen, 10 by default) fills, then a
  // sender waits for room that never comes.
  const receiver = Deno.listenDatagram({ transport: "unixpacket", path });
  try {
    const result = await runScript(
      "udp_send.ts",
      ["-q", "--unix", path, "-c", "100", "-w", "300ms"],
      { permissions: unixPermissions(path) },
    );
    assertEquals(result.code, 1);
    assertEquals(result.stderr, `udp_send: unix:${path}: a send took longer than 300 ms\n`);
  } finally {
    receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
