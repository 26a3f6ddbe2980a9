/**
 * UDP that serves many peers: `udp_receive.ts --echo` answers every datagram to its own sender
 * (where ncat's UDP listen mode serves only the first), and `udp_send.ts --wait-reply` is its
 * client, checked against python3 and socat peers at the same time.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { hasPeer, runPeer, runScript, spawnScript } from "./_process.ts";
import { startUnixReceiver, unixPermissions } from "./_udp.ts";

const NET = ["--allow-net=127.0.0.1"];
const COUNT = 5;

/** `udp_send.ts --wait-reply` sending `message` COUNT times; resolves with its output lines. */
async function denoClient(port: number, message: string): Promise<string[]> {
  const result = await runScript(
    "udp_send.ts",
    ["-q", "-p", `${port}`, "-c", `${COUNT}`, "--wait-reply", "-w", "5s", "--message", message],
    { permissions: NET },
  );
  assertEquals(result.code, 0, result.stderr);
  return result.stdout.trim().split("\n");
}

/** A python3 client: sends COUNT numbered datagrams from one socket, prints every reply. */
async function pythonClient(port: number): Promise<string[]> {
  const code = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for i in range(${COUNT}):
    s.sendto(b"python %d" % i, ("127.0.0.1", ${port}))
for i in range(${COUNT}):
    print(s.recvfrom(100)[0].decode())`;
  const result = await runPeer("python3", ["-c", code]);
  assertEquals(result.code, 0, result.stderr);
  return new TextDecoder().decode(result.stdout).trim().split("\n").sort();
}

/** A socat client: one datagram from stdin, then whatever comes back within a second. */
async function socatClient(port: number): Promise<string> {
  const result = await runPeer("socat", ["-T", "1", "-", `UDP:127.0.0.1:${port}`], {
    stdin: "from socat",
  });
  assertEquals(result.code, 0, result.stderr);
  return new TextDecoder().decode(result.stdout);
}

Deno.test({
  name: "udp_receive.ts --echo answers every sender with its own replies, at the same time",
  ignore: !hasPeer("python3") || !hasPeer("socat"),
  async fn() {
    await using server = spawnScript("udp_receive.ts", ["-p", "0", "--echo", "-q"], {
      permissions: NET,
    });
    const port = await server.listeningPort();
    const [a, b, c, python, socat] = await Promise.all([
      denoClient(port, "client a"),
      denoClient(port, "client b"),
      denoClient(port, "client c"),
      pythonClient(port),
      socatClient(port),
    ]);
    for (const [lines, name] of [[a, "a"], [b, "b"], [c, "c"]] as const) {
      assertEquals(lines, Array(COUNT).fill(`received reply: client ${name}`));
    }
    assertEquals(python, [...Array(COUNT).keys()].map((i) => `python ${i}`));
    assertEquals(socat, "from socat");
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    const total = 4 * COUNT + 1;
    assertStringIncludes(result.stderr, `received ${total} datagrams`);
    assertStringIncludes(result.stderr, `${total} replies sent, 0 not`);
  },
});

Deno.test("udp_send.ts --wait-reply exits 1 when no reply comes within the timeout", async () => {
  // A bound socket that never answers: the datagram arrives, nothing comes back.
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = silent.addr as Deno.NetAddr;
    const result = await runScript(
      "udp_send.ts",
      ["-q", "-p", `${port}`, "--wait-reply", "-w", "200ms"],
      { permissions: NET },
    );
    assertEquals(result.code, 1);
    assertEquals(result.stdout, "");
    assertEquals(result.stderr, `udp_send: no reply from 127.0.0.1:${port} within 200ms\n`);
    const [data] = await silent.receive();
    assertEquals(new TextDecoder().decode(data), "Hello, World!");
  } finally {
    silent.close();
  }
});

Deno.test("udp_send.ts --wait-reply --json prints each reply in the shared schema", async () => {
  await using server = spawnScript("udp_receive.ts", ["-p", "0", "--echo", "-q"], {
    permissions: NET,
  });
  const port = await server.listeningPort();
  const result = await runScript(
    "udp_send.ts",
    ["-p", `${port}`, "--json", "--wait-reply", "--message", "\x1b[2J\u202e"],
    { permissions: NET },
  );
  assertEquals(result.code, 0, result.stderr);
  const [sent, reply] = result.stdout.trim().split("\n");
  assertMatch(
    sent,
    /^\{"event":"sent","time":"[^"]+","peer":"127\.0\.0\.1:\d+","local":"127\.0\.0\.1:\d+","bytes":7\}$/,
  );
  // The payload travels as JSON text: escapes a JSON decoder turns back into the same text.
  assertStringIncludes(reply, '"data":"\\u001b[2J\\u202e"');
  const event = JSON.parse(reply);
  assertEquals([event.event, event.peer, event.bytes, event.data], [
    "reply",
    `127.0.0.1:${port}`,
    7,
    "\x1b[2J\u202e",
  ]);
  await server.stop("SIGINT");
});

Deno.test("udp_receive.ts --echo answers Unix senders bound to a path, one at a time", async () => {
  await using server = await startUnixReceiver(["--echo", "-q"], {
    name: "server.sock",
    peers: ["client.sock"],
  });
  const [path, client] = [server.path, server.at("client.sock")];
  const args = ["-q", "--unix", path, "-s", client, "-c", "3", "--wait-reply", "--message", "hi"];
  const result = await runScript("udp_send.ts", args, {
    permissions: unixPermissions(path, client),
  });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stdout, "received reply: hi\n".repeat(3));
  const unnamed = await runScript("udp_send.ts", ["--unix", path, "--wait-reply"], {
    permissions: unixPermissions(path),
  });
  assertEquals(unnamed.code, 2);
  assertStringIncludes(unnamed.stderr, "needs -s PATH");
  const stopped = await server.script.stop("SIGINT");
  assertStringIncludes(stopped.stderr, "3 replies sent, 0 not");
  assertEquals(
    await Array.fromAsync(Deno.readDir(server.dir)),
    [],
    "a socket file was left behind",
  );
});

Deno.test({
  name: "udp_receive.ts --echo keeps answering while a Unix sender stops reading its replies",
  ignore: !hasPeer("python3"),
  async fn() {
    await using server = await startUnixReceiver(["--echo", "-q"], {
      name: "s.sock",
      peers: ["stuck.sock", "c.sock"],
    });
    const [path, stuck, client] = [server.path, server.at("stuck.sock"), server.at("c.sock")];
    // More datagrams than its receive queue holds (net.unix.max_dgram_qlen, 10 by default),
    // and it never reads: the server's replies to it can only wait.
    const stuckPy = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[2])
for i in range(30):
    s.sendto(b"never read", sys.argv[1])
print("sent", flush=True)
sys.stdin.read()`;
    const stuckPeer = new Deno.Command("python3", {
      args: ["-c", stuckPy, path, stuck],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    // It stays alive, not reading, until its stdin closes at the end of the test.
    const reader = stuckPeer.stdout.getReader();
    // The line may come in more than one read (print() writes "sent" and "\n" apart when
    // Python is unbuffered).
    let said = "";
    while (!said.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      said += new TextDecoder().decode(value);
    }
    assertEquals(said, "sent\n");
    const args = ["-q", "--unix", path, "-s", client, "-c", "2", "--wait-reply", "-w", "5s"];
    const result = await runScript("udp_send.ts", [...args, "--message", "still served"], {
      permissions: unixPermissions(path, client),
    });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, "received reply: still served\n".repeat(2));
    const stopped = await server.script.stop("SIGINT");
    await stuckPeer.stdin.close();
    await reader.cancel();
    await stuckPeer.status;
    assertEquals(stopped.code, 0);
    const notSent = Number(/replies sent, (\d+) not/.exec(stopped.stderr)?.[1]);
    assert(
      notSent > 0,
      `some replies to the sender that never reads were given up:\n${stopped.stderr}`,
    );
  },
});
