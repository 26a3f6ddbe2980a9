import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { sendDatagrams, UDP_IPV4_MAX_PAYLOAD, UDP_IPV6_MAX_PAYLOAD } from "../scripts/udp_send.ts";
import { receiveDatagrams, type ReceiveSummary } from "../scripts/udp_receive.ts";
import { openSender } from "../lib/datagram/socket.ts";
import {
  hasIPv6Loopback,
  hasPeer,
  runPeer,
  runScript,
  spawnScript,
  startPortPeer,
} from "./_process.ts";
import { startUnixReceiver, unixPermissions } from "./_udp.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Starts receiveDatagrams() on a free port and collects what it yields. */
function receiveInBackground(options: { hostname?: string; count?: number; signal?: AbortSignal }) {
  const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const received = (async () => {
    const lengths: number[] = [];
    const onListen = (addr: Deno.Addr) => resolve(addr as Deno.NetAddr);
    for await (const { data } of receiveDatagrams({ ...options, port: 0, onListen })) {
      lengths.push(data.length);
    }
    return lengths;
  })();
  return { bound, received };
}

Deno.test("receiveDatagrams() yields every datagram whole, up to the IPv4 maximum", async () => {
  const sizes = [0, 1, 1024, 1025, UDP_IPV4_MAX_PAYLOAD];
  const { bound, received } = receiveInBackground({ count: sizes.length });
  const { port } = await bound;
  for (const size of sizes) await sendDatagrams(new Uint8Array(size).fill(7), { port });
  assertEquals(await received, sizes);
});

Deno.test({
  name: "receiveDatagrams() yields IPv6 datagrams whole, up to the IPv6 maximum",
  ignore: !hasIPv6Loopback(),
  async fn() {
    const sizes = [UDP_IPV4_MAX_PAYLOAD + 1, UDP_IPV6_MAX_PAYLOAD];
    const { bound, received } = receiveInBackground({ hostname: "::1", count: sizes.length });
    const { port } = await bound;
    for (const size of sizes) {
      await sendDatagrams(new Uint8Array(size), { hostname: "::1", port });
    }
    assertEquals(await received, sizes);
  },
});

/** The host `openSender()` bound for a datagram to `hostname`. */
async function senderHost(hostname: string): Promise<string> {
  using socket = await openSender({ hostname });
  return (socket.addr as Deno.NetAddr).hostname;
}

Deno.test("openSender() sends from loopback to loopback, else from the wildcard", async () => {
  assertEquals(await senderHost("127.0.0.1"), "127.0.0.1");
  assertEquals(await senderHost("127.0.0.5"), "127.0.0.1");
  assertEquals(await senderHost("192.0.2.1"), "0.0.0.0");
});

Deno.test({
  name: "openSender() sends from [::1] to [::1], else from the IPv6 wildcard",
  ignore: !hasIPv6Loopback(),
  async fn() {
    assertEquals(await senderHost("::1"), "::1");
    assertEquals(await senderHost("2001:db8::1"), "::");
  },
});

Deno.test("receiveDatagrams() ends without error when its signal aborts", async () => {
  const controller = new AbortController();
  const { bound, received } = receiveInBackground({ signal: controller.signal });
  await bound;
  controller.abort();
  assertEquals(await received, []);
});

Deno.test("receiveDatagrams() still yields what is queued when its signal aborts", async () => {
  const controller = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const texts: string[] = [];
  let summary: ReceiveSummary | undefined;
  const sending = bound.then(({ port }) => sendDatagrams(encoder.encode("first"), { port }));
  const options = {
    port: 0,
    signal: controller.signal,
    onListen: (a: Deno.Addr) => resolve(a as Deno.NetAddr),
    onSummary: (s: ReceiveSummary) => summary = s,
  };
  for await (const { data } of receiveDatagrams(options)) {
    texts.push(decoder.decode(data));
    if (texts.length === 1) {
      // The generator waits at its yield: these two are queued in the kernel, unread, when
      // the stop comes.
      await sending;
      await sendDatagrams(encoder.encode("second"), { port: (await bound).port });
      await sendDatagrams(encoder.encode("third"), { port: (await bound).port });
      controller.abort();
    }
  }
  assertEquals(texts, ["first", "second", "third"]);
  assertEquals(summary?.datagrams, 3);
  assertEquals(summary?.drainCut, false);
});

Deno.test("udp_send.ts prints like the original and udp_receive.ts prints every datagram", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["--port", "0", "--count", "3"], {
    permissions: NET,
  });
  const port = await receiver.listeningPort();
  const sender = await runScript("udp_send.ts", ["--port", `${port}`, "--count", "2"], {
    permissions: NET,
  });
  assertEquals(sender.code, 0);
  assertEquals(
    sender.stdout,
    `UDP target IP: 127.0.0.1\nUDP target port: ${port}\nmessage: Hello, World!\n`,
  );
  await runScript("udp_send.ts", ["-q", "-p", `${port}`, "--message", "\x1b]0;pwned\x07"], {
    permissions: NET,
  });
  const result = await receiver.result();
  assertEquals(result.code, 0);
  assertEquals(
    result.stdout,
    "received message: Hello, World!\nreceived message: Hello, World!\n" +
      "received message: \\x1b]0;pwned\\x07\n",
  );
  assertStringIncludes(result.stderr, "received 3 datagrams, 36 bytes; ");
});

Deno.test("udp_send.ts takes HOST PORT like nc, and flags win over them", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "-c", "1", "-v"], {
    permissions: NET,
  });
  const port = await receiver.listeningPort();
  const sender = await runScript(
    "udp_send.ts",
    ["127.0.0.1", "1", "-p", `${port}`, "-q", "-s", "127.0.0.1", "--message", "positional"],
    { permissions: NET },
  );
  assertEquals(sender.code, 0, sender.stderr);
  assertMatch(
    (await receiver.result()).stdout,
    /^received message from 127\.0\.0\.1:\d+: positional\n$/,
  );
});

for (const form of [["--message", ""], ["--message="]]) {
  const shown = form.map((arg) => arg === "" ? "''" : arg).join(" ");
  Deno.test(`udp_send.ts ${shown} sends an empty datagram, as sendto(b"") does`, async () => {
    await using receiver = spawnScript("udp_receive.ts", ["--port", "0", "-c", "1", "--json"], {
      permissions: NET,
    });
    const port = await receiver.listeningPort();
    const sender = await runScript("udp_send.ts", ["-p", `${port}`, ...form], { permissions: NET });
    assertEquals(sender.code, 0, sender.stderr);
    assertEquals(sender.stdout.split("\n")[2], "message: ");
    const [datagram] = (await receiver.result()).stdout.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals([datagram.event, datagram.bytes, datagram.data], ["datagram", 0, ""]);
  });
}

Deno.test("udp_receive.ts --json uses the shared schema, with data_base64 and a summary", async () => {
  await using receiver = spawnScript(
    "udp_receive.ts",
    ["--port", "0", "--count", "2", "--json", "--max-bytes", "4"],
    { permissions: NET },
  );
  const port = await receiver.listeningPort();
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    await socket.send(encoder.encode("0123456789"), to);
    await socket.send(new Uint8Array([0xff, 0x1b, 0x41]), to);
  } finally {
    socket.close();
  }
  const result = await receiver.result();
  const [text, binary, summary] = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  const peer = `127.0.0.1:${(socket.addr as Deno.NetAddr).port}`;
  assertEquals(Object.keys(text).slice(0, 2), ["event", "time"]);
  const { time: _, ...rest } = text;
  assertEquals(rest, { event: "datagram", peer, bytes: 10, data: "0123", data_omitted: 6 });
  assertEquals([binary.bytes, binary.data_base64], [3, "/xtB"]);
  assertEquals(summary.event, "summary");
  assertEquals([summary.datagrams, summary.bytes, summary.local], [2, 13, `127.0.0.1:${port}`]);
  assertEquals(summary.kernel_dropped, null, "the drop counter needs --allow-run=ss");
  assertStringIncludes(summary.kernel_dropped_unknown, "--allow-run=ss");
});

Deno.test("udp_receive.ts stops on SIGTERM with exit 0 and --quiet prints a count", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const port = await receiver.listeningPort();
  await sendDatagrams(encoder.encode("abc"), { port, count: 2 });
  await sendDatagrams(encoder.encode("x"), { port });
  // The datagrams wait in the kernel's buffer: the receiver must drain them when it stops.
  const result = await receiver.stop("SIGTERM");
  assertEquals(result.code, 0);
  assertEquals(result.stdout, "");
  assertStringIncludes(result.stderr, "received 3 datagrams, 7 bytes");
});

Deno.test({
  name: "udp_send.ts and udp_receive.ts work over IPv6, with its larger maximum",
  ignore: !hasIPv6Loopback(),
  async fn() {
    const permissions = ["--allow-net=[::1]"];
    await using receiver = spawnScript(
      "udp_receive.ts",
      ["--host", "::1", "--port", "0", "--count", "1", "--json"],
      { permissions },
    );
    const port = await receiver.listeningPort();
    assertStringIncludes(receiver.stderr.text, `Listening on [::1]:${port}`);
    const dir = await Deno.makeTempDir();
    try {
      const file = `${dir}/max`;
      await Deno.writeFile(file, new Uint8Array(UDP_IPV6_MAX_PAYLOAD).fill(0x61));
      const sender = await runScript(
        "udp_send.ts",
        ["::1", `${port}`, "--message-file", file],
        { permissions: [...permissions, `--allow-read=${file}`] },
      );
      assertEquals(sender.stdout.split("\n")[0], "UDP target IP: ::1");
      const event = JSON.parse((await receiver.result()).stdout.split("\n")[0]);
      assertEquals(event.bytes, UDP_IPV6_MAX_PAYLOAD);
      assertStringIncludes(event.peer, "[::1]:");
      await Deno.writeFile(file, new Uint8Array(UDP_IPV6_MAX_PAYLOAD + 1));
      const tooBig = await runScript("udp_send.ts", ["::1", "9", "--message-file", file], {
        permissions: [...permissions, `--allow-read=${file}`],
      });
      assertEquals(tooBig.code, 1);
      assertStringIncludes(tooBig.stderr, `it is larger than ${UDP_IPV6_MAX_PAYLOAD} bytes`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("udp_send.ts --message-file reads a regular file or standard input, nothing else", async () => {
  await using receiver = spawnScript("udp_receive.ts", ["-p", "0", "-c", "2", "--json"], {
    permissions: NET,
  });
  const port = await receiver.listeningPort();
  const dir = await Deno.makeTempDir();
  try {
    // More than one command-line argument may hold (128 KiB) is not the point over UDP; a
    // file's exact bytes are.
    const file = `${dir}/message`;
    await Deno.writeFile(file, new Uint8Array([0, 1, 2, 0xff]));
    const read = [`--allow-read=${file}`];
    const fromFile = await runScript(
      "udp_send.ts",
      ["-q", "-p", `${port}`, "--message-file", file],
      {
        permissions: [...NET, ...read],
      },
    );
    assertEquals(fromFile.code, 0, fromFile.stderr);
    await using fromStdin = spawnScript("udp_send.ts", [
      "-q",
      "-p",
      `${port}`,
      "--message-file",
      "-",
    ], {
      permissions: NET,
      stdin: true,
    });
    await fromStdin.write("from stdin");
    await fromStdin.child.stdin.close();
    assertEquals((await fromStdin.result()).code, 0);
    const lines = (await receiver.result()).stdout.trim().split("\n").map((l) => JSON.parse(l));
    const datagrams = lines.filter((line) => line.event === "datagram");
    assertEquals(datagrams.map((l) => l.data_base64 ?? l.data), ["AAEC/w==", "from stdin"]);

    const fifo = `${dir}/fifo`;
    await runPeer("mkfifo", [fifo]);
    const notFile = await runScript("udp_send.ts", ["-p", "9", "--message-file", fifo], {
      permissions: [...NET, `--allow-read=${fifo}`],
    });
    assertEquals(notFile.code, 1);
    assertStringIncludes(notFile.stderr, "it is not a regular file");
    const noPermission = await runScript("udp_send.ts", ["-p", "9", "--message-file", file], {
      permissions: NET,
    });
    assertStringIncludes(noPermission.stderr, `run again with --allow-read=${file}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("udp_send.ts and udp_receive.ts work over a Unix datagram socket", async () => {
  await using receiver = await startUnixReceiver(["--count", "1"], { name: "dgram.sock" });
  const { path } = receiver;
  const sender = await runScript("udp_send.ts", ["--unix", path, "--message", "via unix"], {
    permissions: unixPermissions(path),
  });
  assertEquals(sender.stdout, `Unix datagram target: ${path}\nmessage: via unix\n`);
  const result = await receiver.script.result();
  assertEquals(result.stdout, "received message: via unix\n");
  assertStringIncludes(result.stderr, "received 1 datagram, 8 bytes; 0 dropped by the kernel");
  assertEquals(await Array.fromAsync(Deno.readDir(receiver.dir)), [], "socket file left behind");
});

Deno.test("udp_send.ts and udp_receive.ts reject bad input with one line", async () => {
  const badPort = await runScript("udp_send.ts", ["--port", "70000"], { permissions: NET });
  assertEquals(badPort.code, 2);
  assertEquals(
    badPort.stderr,
    'udp_send: Cannot parse --port "70000": must be an integer from 0 to 65535 (see --help)\n',
  );
  const tooBig = await runScript(
    "udp_send.ts",
    ["--message", "x".repeat(UDP_IPV4_MAX_PAYLOAD + 1)],
    {
      permissions: NET,
    },
  );
  assertEquals(tooBig.code, 2);
  assertStringIncludes(tooBig.stderr, "a UDP datagram over IPv4 holds at most 65507");
  const noValue = await runScript("udp_send.ts", ["--message"], { permissions: NET });
  assertEquals(noValue.stderr, 'udp_send: Flag "--message" needs a value (see --help)\n');
  const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const inUse = await runScript("udp_receive.ts", ["--port", `${port}`], { permissions: NET });
    assertEquals(inUse.code, 1);
    assertEquals(
      inUse.stderr,
      `udp_receive: 127.0.0.1:${port}: Address already in use (is another server running there?)\n`,
    );
  } finally {
    taken.close();
  }
  const denied = await runScript("udp_receive.ts", [], { permissions: [] });
  assertEquals(denied.code, 1);
  assertStringIncludes(denied.stderr, "run again with --allow-net=127.0.0.1:5005");
});

Deno.test({
  name: "udp_receive.ts prints what the tutorial's Python sender sends",
  ignore: !hasPeer("python3"),
  async fn() {
    await using receiver = spawnScript("udp_receive.ts", ["--port", "0", "--count", "1"], {
      permissions: NET,
    });
    const port = await receiver.listeningPort();
    const senderPy = `
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.sendto(b"Hello, World!", ("127.0.0.1", ${port}))`;
    await runPeer("python3", ["-c", senderPy]);
    assertEquals((await receiver.result()).stdout, "received message: Hello, World!\n");
  },
});

Deno.test({
  name: "udp_send.ts reaches a Python receiver with the exact bytes, an empty datagram included",
  ignore: !hasPeer("python3"),
  async fn() {
    const receiverPy = `
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
for _ in range(2):
    data, addr = sock.recvfrom(65535)
    print(len(data), data.decode())`;
    await using python = await startPortPeer("python3", ["-c", receiverPy]);
    for (const message of ["héllo", ""]) {
      const sender = await runScript(
        "udp_send.ts",
        ["-p", `${python.port}`, "--message", message],
        {
          permissions: NET,
        },
      );
      assertEquals(sender.code, 0, sender.stderr);
    }
    assertEquals(await python.rest(), "6 héllo\n0 \n");
  },
});

Deno.test({
  name: "udp_receive.ts on a Unix datagram socket receives from socat",
  ignore: !hasPeer("socat"),
  async fn() {
    await using receiver = await startUnixReceiver(["--count", "1"], { name: "d.sock" });
    await runPeer("socat", ["-u", "-", `UNIX-SENDTO:${receiver.path}`], { stdin: "from socat\n" });
    assertEquals((await receiver.script.result()).stdout, "received message: from socat\\n\n");
  },
});

Deno.test("udp_receive.ts --help names the drop counter's permission and the short flags", async () => {
  const help = await runScript("udp_receive.ts", ["-h"], { permissions: [] });
  assertEquals(help.code, 0);
  for (const text of ["-p, --port", "-c, --count", "-q, --quiet", "-v, --verbose", "--echo"]) {
    assertStringIncludes(help.stdout, text);
  }
  assert(help.stdout.includes("Run:    deno run --allow-net=127.0.0.1:5005 --allow-run=ss"));
});
