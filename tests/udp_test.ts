import { assertEquals, assertStringIncludes } from "@std/assert";
import { MAX_UDP_PAYLOAD, sendDatagrams } from "../scripts/udp_send.ts";
import { receiveDatagrams } from "../scripts/udp_receive.ts";
import { hasPeer, runPeer, runScript, spawnScript, startPortPeer } from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();

Deno.test("receiveDatagrams() yields every datagram whole, up to the UDP maximum", async () => {
  const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const sizes = [0, 1, 1024, 1025, MAX_UDP_PAYLOAD];
  const received = (async () => {
    const lengths: number[] = [];
    const options = {
      port: 0,
      count: sizes.length,
      onListen: (a: Deno.Addr) => resolve(a as Deno.NetAddr),
    };
    for await (const [data] of receiveDatagrams(options)) lengths.push(data.length);
    return lengths;
  })();
  const { port } = await bound;
  for (const size of sizes) await sendDatagrams(new Uint8Array(size).fill(7), { port });
  assertEquals(await received, sizes);
});

Deno.test("receiveDatagrams() ends without error when its signal aborts", async () => {
  const controller = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<void>();
  const done = Array.fromAsync(
    receiveDatagrams({ port: 0, signal: controller.signal, onListen: () => resolve() }),
  );
  await bound;
  controller.abort();
  assertEquals(await done, []);
});

Deno.test("receiveDatagrams() still yields what is queued when its signal aborts", async () => {
  const controller = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const texts: string[] = [];
  const sending = bound.then(({ port }) => sendDatagrams(encoder.encode("first"), { port }));
  const options = {
    port: 0,
    signal: controller.signal,
    onListen: (a: Deno.Addr) => resolve(a as Deno.NetAddr),
  };
  for await (const [data] of receiveDatagrams(options)) {
    texts.push(new TextDecoder().decode(data));
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
  await runScript(
    "udp_send.ts",
    ["--port", `${port}`, "--quiet", "--message", "\x1b]0;pwned\x07"],
    {
      permissions: NET,
    },
  );
  const result = await receiver.result();
  assertEquals(result.code, 0);
  assertEquals(
    result.stdout,
    "received message: Hello, World!\nreceived message: Hello, World!\n" +
      "received message: \\x1b]0;pwned\\x07\n",
  );
});

Deno.test("udp_receive.ts --json names the sender and --max-bytes says what it left out", async () => {
  await using receiver = spawnScript(
    "udp_receive.ts",
    ["--port", "0", "--count", "1", "--json", "--max-bytes", "4"],
    { permissions: NET },
  );
  const port = await receiver.listeningPort();
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    await socket.send(encoder.encode("0123456789"), to);
  } finally {
    socket.close();
  }
  const result = await receiver.result();
  assertEquals(JSON.parse(result.stdout), {
    from: `127.0.0.1:${(socket.addr as Deno.NetAddr).port}`,
    bytes: 10,
    data: "0123…(+6 bytes)",
  });
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

Deno.test("udp_send.ts and udp_receive.ts work over IPv6", async () => {
  const permissions = ["--allow-net=[::1]"];
  await using receiver = spawnScript("udp_receive.ts", [
    "--host",
    "::1",
    "--port",
    "0",
    "--count",
    "1",
    "--json",
  ], {
    permissions,
  });
  const port = await receiver.listeningPort();
  assertStringIncludes(receiver.stderr.text, `Listening on [::1]:${port}`);
  const sender = await runScript("udp_send.ts", ["--host", "::1", "--port", `${port}`], {
    permissions,
  });
  assertEquals(sender.stdout.split("\n")[0], "UDP target IP: ::1");
  const result = await receiver.result();
  const event = JSON.parse(result.stdout);
  assertEquals(event.data, "Hello, World!");
  assertStringIncludes(event.from, "[::1]:");
});

Deno.test("udp_send.ts and udp_receive.ts work over a Unix datagram socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/dgram.sock`;
  const permissions = [`--allow-net=unix:${path}`, `--allow-read=${path}`, `--allow-write=${path}`];
  try {
    await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "--count", "1"], {
      permissions,
    });
    await receiver.waitForStderr(/^Listening on unix:/m);
    const sender = await runScript("udp_send.ts", ["--unix", path, "--message", "via unix"], {
      permissions,
    });
    assertEquals(sender.stdout, `Unix datagram target: ${path}\nmessage: via unix\n`);
    const result = await receiver.result();
    assertEquals(result.stdout, "received message: via unix\n");
    assertEquals(await Array.fromAsync(Deno.readDir(dir)), [], "socket file left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("udp_send.ts and udp_receive.ts reject bad input with one line", async () => {
  const badPort = await runScript("udp_send.ts", ["--port", "70000"], { permissions: NET });
  assertEquals(badPort.code, 2);
  assertEquals(
    badPort.stderr,
    'udp_send: Cannot parse --port "70000": must be an integer from 0 to 65535 (see --help)\n',
  );
  const tooBig = await runScript("udp_send.ts", ["--message", "x".repeat(MAX_UDP_PAYLOAD + 1)], {
    permissions: NET,
  });
  assertEquals(tooBig.code, 2);
  assertStringIncludes(tooBig.stderr, "a UDP datagram holds at most 65507");
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
  assertStringIncludes(denied.stderr, 'udp_receive: Requires net access to "127.0.0.1:5005"');
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
  name: "udp_send.ts reaches a Python receiver with the exact bytes",
  ignore: !hasPeer("python3"),
  async fn() {
    const receiverPy = `
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
data, addr = sock.recvfrom(65535)
print(len(data), data.decode())`;
    await using python = await startPortPeer("python3", ["-c", receiverPy]);
    await runScript("udp_send.ts", ["--port", `${python.port}`, "--message", "héllo"], {
      permissions: NET,
    });
    assertEquals(await python.rest(), "6 héllo\n");
  },
});

Deno.test({
  name: "udp_receive.ts on a Unix datagram socket receives from socat",
  ignore: !hasPeer("socat"),
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/d.sock`;
    try {
      await using receiver = spawnScript("udp_receive.ts", ["--unix", path, "--count", "1"], {
        permissions: [`--allow-net=unix:${path}`, `--allow-read=${path}`, `--allow-write=${path}`],
      });
      await receiver.waitForStderr(/^Listening on/m);
      await runPeer("socat", ["-u", "-", `UNIX-SENDTO:${path}`], { stdin: "from socat\n" });
      assertEquals((await receiver.result()).stdout, "received message: from socat\\n\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
