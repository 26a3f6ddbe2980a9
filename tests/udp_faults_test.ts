/**
 * What a UDP receiver and sender must survive or refuse: senders whose address Deno cannot
 * decode or that put terminal escapes in it, a stop under traffic, a flood that overflows the
 * kernel's buffer (every datagram received or counted as dropped), datagrams larger than 64 KiB
 * on a Unix socket, and broadcast destinations nobody asked for.
 */
import { assert, assertEquals, assertFalse, assertStringIncludes } from "@std/assert";
import { UNIX_DATAGRAM_RECEIVE_MAX } from "../lib/datagram/limits.ts";
import {
  hasPeer,
  runPeer,
  runScript,
  type ScriptProcess,
  spawnScript,
  startPortPeer,
} from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();

function unixPermissions(...paths: string[]): string[] {
  const list = paths.join(",");
  return [
    `--allow-net=${paths.map((path) => `unix:${path}`).join(",")}`,
    `--allow-read=${list}`,
    `--allow-write=${list}`,
  ];
}

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

Deno.test({
  name: "udp_receive.ts --unix counts a sender it cannot name, prints escaped ones, keeps going",
  ignore: !hasPeer("python3"),
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/r.sock`;
    try {
      await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "-c", "2", "-v"], {
        permissions: unixPermissions(path),
      });
      await receiver.waitForStderr(/^Listening on unix:/m);
      await python(UNIX_SENDERS_PY, path);
      const result = await receiver.result();
      assertEquals(result.code, 0, result.stderr);
      assertEquals(
        result.stdout,
        "received message from unix:\\0peer\\x1b[2J: escaped\n" +
          "received message from unix:(unnamed): after\n",
      );
      assertStringIncludes(result.stderr, "1 from an address Deno cannot decode (not printed)");
      assertFalse((result.stdout + result.stderr).includes("\x1b"), "a raw escape got through");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "udp_receive.ts --unix --json counts undecodable senders in its summary",
  ignore: !hasPeer("python3"),
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/r.sock`;
    try {
      await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "-c", "2", "--json"], {
        permissions: unixPermissions(path),
      });
      await receiver.waitForStderr(/^Listening on unix:/m);
      await python(UNIX_SENDERS_PY, path);
      const events = jsonEvents((await receiver.result()).stdout);
      assertEquals(events.map((event) => event.event), ["datagram", "datagram", "summary"]);
      assertEquals(events[0].peer, "unix:\\0peer\\x1b[2J");
      assertEquals([events[2].datagrams, events[2].undecodable], [2, 1]);
      assertEquals([events[2].kernel_dropped, events[2].kernel_dropped_source], [0, "unix"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("udp_receive.ts stops on SIGINT while a sender keeps sending every 20 ms", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "-q"], { permissions: NET });
  const port = await receiver.listeningPort();
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const { promise: sending, resolve: underWay } = Promise.withResolvers<void>();
  let sent = 0;
  const timer = setInterval(() => {
    socket.send(encoder.encode("tick"), to).then(() => ++sent === 3 && underWay(), () => {});
  }, 20);
  // A watchdog, not a timing assertion: a receiver that never stops fails the test.
  const watchdog = setTimeout(() => receiver.stop("SIGKILL"), 10_000);
  try {
    await sending;
    const result = await receiver.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assertStringIncludes(result.stderr, "received ");
    assertFalse(result.stderr.includes("stopped draining"), result.stderr);
  } finally {
    clearTimeout(watchdog);
    clearInterval(timer);
    socket.close();
  }
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
  assertEquals((summary.datagrams as number) + (summary.kernel_dropped as number), sent);
});

Deno.test("udp_receive.ts --unix receives datagrams over 64 KiB whole", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/r.sock`;
  try {
    await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "-c", "2", "--json"], {
      permissions: unixPermissions(path),
    });
    await receiver.waitForStderr(/^Listening on unix:/m);
    for (const size of [65537, 100_000]) {
      const file = `${dir}/${size}`;
      await Deno.writeFile(file, new Uint8Array(size).fill(0x61));
      const sender = await runScript(
        "udp_send.ts",
        ["-q", "--unix", path, "--message-file", file],
        {
          permissions: [...unixPermissions(path), `--allow-read=${file}`],
        },
      );
      assertEquals(sender.code, 0, sender.stderr);
    }
    const events = jsonEvents((await receiver.result()).stdout);
    assertEquals(events.slice(0, 2).map((event) => event.bytes), [65537, 100_000]);
    assertEquals(events.slice(0, 2).map((event) => event.truncated), [undefined, undefined]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
    const dir = await Deno.makeTempDir();
    const path = `${dir}/r.sock`;
    try {
      await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "-c", "1"], {
        permissions: unixPermissions(path),
      });
      await receiver.waitForStderr(/^Listening on unix:/m);
      await python(
        `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.sendto(b"y" * 500000, sys.argv[1])`,
        path,
      );
      const result = await receiver.result();
      // What the buffer held, one byte past the limit, and a word that the rest is gone.
      const kept = "y".repeat(UNIX_DATAGRAM_RECEIVE_MAX + 1);
      assert(
        result.stdout ===
          `received message: ${kept} (cut by the kernel: the datagram was longer)\n`,
        result.stdout.slice(-100),
      );
      assertStringIncludes(
        result.stderr,
        `1 cut by the kernel (longer than ${UNIX_DATAGRAM_RECEIVE_MAX} bytes)`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

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
  name: "udp_send.ts -b sends a broadcast a wildcard-bound Python receiver gets",
  ignore: !hasPeer("python3"),
  async fn() {
    const receiverPy = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
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
