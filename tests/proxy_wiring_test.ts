/**
 * Issue 15 wired into the clients and the relay: `tcp_client.ts --send-proxy`, `tcp_relay.ts
 * --send-proxy`, `--proxy-protocol` (behind a real HAProxy) and `--workers`, chat_server's
 * refusal of workers, and a relay stop that does not wait for an upstream connect. Real
 * sockets on loopback, port 0, every program a subprocess.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { equals } from "@std/bytes/equals";
import { hasHaproxy, startHaproxy } from "./_haproxy.ts";
import { echoThrough, startProxiedEcho } from "./_echo_fixtures.ts";
import {
  hasPeer,
  jsonLines,
  runScript,
  type ScriptProcess,
  spawnScript,
  waitUntil,
} from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("tcp_client.ts --send-proxy v1 and v2: echo_server.ts --proxy-protocol logs the client's own address", async () => {
  await using server = startProxiedEcho();
  const port = await server.listeningPort();
  const clients: string[] = [];
  for (const version of ["v1", "v2"]) {
    const { code, stdout, stderr } = await runScript(
      "tcp_client.ts",
      ["127.0.0.1", `${port}`, "--send-proxy", version, "--send", `hello ${version}`, "-v"],
      { permissions: NET },
    );
    assertEquals(code, 0, stderr);
    // The header is not data: only the message comes back.
    assertEquals(stdout, `hello ${version}\n`);
    const from = stderr.match(/^Connected to 127\.0\.0\.1:\d+ from (127\.0\.0\.1:\d+)$/m);
    if (from === null) throw new Error(`no "Connected to" line: ${stderr}`);
    clients.push(from[1]);
  }
  await server.waitForStdout(new RegExp(`"closing"[^\\n]*"peer":"${clients[1]}"`));
  const { code, stdout, stderr } = await server.stop("SIGINT");
  assertEquals(code, 0);
  assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
  const peers = jsonLines(stdout).filter((event) => event.event === "connection")
    .map((event) => event.peer);
  assertEquals(peers, clients);
  const received = jsonLines(stdout).filter((event) => event.event === "received");
  assertEquals(received.map((event) => event.data).join(""), "hello v1hello v2");
});

Deno.test("tcp_relay.ts --send-proxy v2 in front of echo_server.ts --proxy-protocol: the client's address reaches the server, 1 MiB comes back whole", async () => {
  await using echo = startProxiedEcho();
  const echoPort = await echo.listeningPort();
  await using relay = spawnScript(
    "tcp_relay.ts",
    ["--port", "0", "--to", `127.0.0.1:${echoPort}`, "--send-proxy", "v2", "--json"],
    { permissions: NET },
  );
  const port = await relay.listeningPort();
  const bytes = new Uint8Array(1024 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  const { local, echo: back } = await echoThrough(port, bytes);
  assertEquals(back.length, bytes.length);
  assert(equals(back, bytes), "the echo differs from what was sent");
  await relay.waitForStdout(/"event":"close"/);
  await echo.waitForStdout(/"closing"/);
  const relayed = await relay.stop("SIGINT");
  const served = await echo.stop("SIGINT");
  assertEquals([relayed.code, served.code], [0, 0], relayed.stderr + served.stderr);
  // The echo server saw the relay's client, by address and port, and never the relay itself.
  const events = jsonLines(served.stdout);
  assert(events.length > 0);
  for (const event of events) assertEquals(event.peer, local);
  assertEquals(served.stderr, `Listening on 127.0.0.1:${echoPort}\n`);
  // The relay counts relayed bytes: the header it sent is not one of them.
  const close = jsonLines(relayed.stdout).find((event) => event.event === "close");
  assertEquals(
    [close?.peer, close?.bytes_to_upstream, close?.bytes_to_client],
    [local, bytes.length, bytes.length],
  );
});

Deno.test({
  name:
    "tcp_relay.ts --proxy-protocol behind HAProxy (send-proxy and send-proxy-v2) logs the real client",
  ignore: !hasHaproxy(),
  async fn() {
    await using echo = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
      permissions: NET,
    });
    const echoPort = await echo.listeningPort();
    const startRelay = () =>
      spawnScript(
        "tcp_relay.ts",
        ["--port", "0", "--to", `127.0.0.1:${echoPort}`, "--proxy-protocol", "--json"],
        { permissions: NET },
      );
    await using first = startRelay();
    await using second = startRelay();
    await using haproxy = await startHaproxy([
      { port: await first.listeningPort(), sendProxy: "v1" },
      { port: await second.listeningPort(), sendProxy: "v2" },
    ]);
    // Round robin: one client connection through each relay.
    const a = await echoThrough(haproxy.port, encoder.encode("through HAProxy\n"));
    const b = await echoThrough(haproxy.port, encoder.encode("through HAProxy\n"));
    assertEquals(decoder.decode(a.echo), "through HAProxy\n");
    assertEquals(decoder.decode(b.echo), "through HAProxy\n");
    const clients = [a.local, b.local];
    const closed = (relay: ScriptProcess) =>
      relay.waitForStdout(
        new RegExp(`"event":"close","[^\\n]*"peer":"(${clients.join("|")})"[^\\n]*"reason":"eof"`),
      );
    await Promise.all([closed(first), closed(second)]);
    const results = [await first.stop("SIGINT"), await second.stop("SIGINT")];
    for (const result of results) assertEquals(result.code, 0, result.stderr);
    // Each relay saw one of the two clients by its own address and port (HAProxy's health
    // checks by HAProxy's), and never a rejected header.
    const opens = results.map((result) =>
      jsonLines(result.stdout).filter((event) => event.event === "open").map((event) => event.peer)
    );
    const seen = opens.map((peers) => peers.filter((peer) => clients.includes(peer)));
    assertEquals(seen.flat().sort(), [...clients].sort(), JSON.stringify(opens));
    assertEquals(seen.map((peers) => peers.length), [1, 1]);
    for (const result of results) {
      assert(!result.stderr.includes("without a valid PROXY header"), result.stderr);
    }
  },
});

Deno.test("tcp_relay.ts --workers 2 spreads connections over both workers, adds up their stats, and exits 0 on SIGINT", async () => {
  await using echo = spawnScript("echo_server.ts", ["--port", "0", "--quiet"], {
    permissions: NET,
  });
  const echoPort = await echo.listeningPort();
  const permissions = [...NET, `--allow-read=${ROOT}scripts/tcp_relay.ts,${ROOT}lib`];
  for (const output of ["--json", "text"]) {
    await using relay = spawnScript(
      "tcp_relay.ts",
      [
        "--port",
        "0",
        "--to",
        `127.0.0.1:${echoPort}`,
        "--workers",
        "2",
        ...(output === "--json" ? [output] : []),
      ],
      { permissions },
    );
    const port = await relay.listeningPort();
    // The kernel picks a worker by a hash of each connection's ports: 40 connections all on
    // one of two workers would be a 1-in-2^39 chance.
    for (let i = 0; i < 40; i++) {
      const { echo: back } = await echoThrough(port, encoder.encode(`${i}`));
      assertEquals(decoder.decode(back), `${i}`);
    }
    const { code, stdout, stderr } = await relay.stop("SIGINT");
    assertEquals(code, 0, stderr);
    if (output === "--json") {
      assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
      const opens = jsonLines(stdout).filter((event) => event.event === "open");
      assertEquals(opens.length, 40);
      assertEquals([...new Set(opens.map((event) => event.worker))].sort(), [1, 2]);
    } else {
      // One listening line, and one stats line for both workers together.
      const bytes = Array.from({ length: 40 }, (_, i) => `${i}`.length).reduce((a, b) => a + b);
      assertEquals(
        stderr,
        [
          `Listening on 127.0.0.1:${port}`,
          `relaying each connection to 127.0.0.1:${echoPort}`,
          `stopped after 40 connections: ${bytes} bytes to upstream, ${bytes} bytes back`,
          "",
        ].join("\n"),
      );
    }
  }
});

/** Whether process `pid` has a TCP connect to `port` waiting for its SYN to be answered. */
async function synSent(port: number, pid: number): Promise<boolean> {
  const { stdout } = await new Deno.Command("ss", {
    args: ["-Htnp", "state", "syn-sent", "dport", "=", `:${port}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return decoder.decode(stdout).includes(`pid=${pid},`);
}

Deno.test({
  name: "tcp_relay.ts stops on SIGINT without waiting for an upstream connect still pending",
  ignore: !hasPeer("ss"),
  async fn() {
    // An upstream that never accepts, with its backlog full: a connect to it waits for an
    // answer to its SYN that never comes (the kernel drops it).
    using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0, tcpBacklog: 1 });
    const upstreamPort = upstream.addr.port;
    const fill = new AbortController();
    const fillers = Array.from(
      { length: 4 },
      () =>
        Deno.connect({ hostname: "127.0.0.1", port: upstreamPort, signal: fill.signal })
          .catch(() => null),
    );
    try {
      await waitUntil(() => synSent(upstreamPort, Deno.pid), "the upstream's backlog is full");
      await using relay = spawnScript(
        "tcp_relay.ts",
        [
          "--port",
          "0",
          "--to",
          `127.0.0.1:${upstreamPort}`,
          "--connect-timeout",
          "10m",
          "--grace",
          "10m",
          "--json",
        ],
        { permissions: NET },
      );
      const port = await relay.listeningPort();
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await waitUntil(() => synSent(upstreamPort, relay.child.pid), "the relay connects upstream");
      relay.child.kill("SIGINT");
      // The stop shuts the waiting client down; it closes, as clients do when a server goes.
      assertEquals(await conn.read(new Uint8Array(1)), null);
      conn.close();
      // Without the abort, the relay would wait out the 10 minute connect timeout here.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const watchdog = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`still running:\n${relay.describe()}`)),
          60_000,
        );
      });
      const { code, stdout, stderr } = await Promise.race([relay.result(), watchdog])
        .finally(() => clearTimeout(timer));
      assertEquals(code, 0, stderr);
      // Not a failure: the client's relay closed because the relay stopped.
      assertEquals(stderr, `Listening on 127.0.0.1:${port}\n`);
      const events = jsonLines(stdout);
      assertEquals(events.map((event) => [event.event, event.peer, event.reason]), [
        ["close", `127.0.0.1:${conn.localAddr.port}`, "stop"],
      ]);
    } finally {
      fill.abort();
      for (const filler of await Promise.all(fillers)) filler?.close();
    }
  },
});

Deno.test("chat_server.ts refuses --workers above 1 in one line, exit 2, and takes --workers 1", async () => {
  const refused = await runScript("chat_server.ts", ["--port", "0", "--workers", "2"], {
    permissions: NET,
  });
  assertEquals(refused.code, 2);
  assertEquals(refused.stdout, "");
  assertEquals(
    refused.stderr,
    "chat_server: Cannot use --workers with chat_server: its clients must share one map (see --help)\n",
  );
  await using one = spawnScript("chat_server.ts", ["--port", "0", "--workers", "1"], {
    permissions: NET,
  });
  await one.listeningPort();
  assertEquals((await one.stop("SIGINT")).code, 0);
});

Deno.test("--send-proxy is refused over TLS and for a bad version, one line, exit 2", async () => {
  for (
    const [script, args, message] of [
      ["tcp_client.ts", ["--send-proxy", "v2", "--tls"], "Cannot use --send-proxy with --tls"],
      ["tcp_client.ts", ["--send-proxy", "v3"], 'Cannot parse --send-proxy "v3"'],
      ["tcp_client.ts", ["-z", "127.0.0.1", "9", "--send-proxy", "v1"], "exclude each other"],
      ["tcp_relay.ts", ["--send-proxy", "v1", "--to-tls"], "Cannot use --send-proxy with --to-tls"],
      ["tcp_relay.ts", ["--send-proxy", "3"], 'Cannot parse --send-proxy "3"'],
      ["tcp_relay.ts", ["--proxy-protocol", "--tls"], "before the TLS handshake"],
      ["tcp_relay.ts", ["--proxy-timeout", "1s"], "--proxy-timeout needs --proxy-protocol"],
      ["tcp_relay.ts", ["--workers", "2", "--listen", "unix:/tmp/x.sock"], "unix: --listen"],
    ] as const
  ) {
    const { code, stdout, stderr } = await runScript(script, [...args], { permissions: NET });
    assertEquals(code, 2, `${script} ${args.join(" ")}: ${stderr}`);
    assertEquals(stdout, "");
    assertStringIncludes(stderr, message);
    assertMatch(stderr, /^[a-z_]+: [^\n]* \(see --help\)\n$/);
  }
});

Deno.test("--help of the relay, the chat server and the client names the new flags and defaults", async () => {
  for (
    const [script, texts] of [
      ["tcp_relay.ts", ["--send-proxy v1|v2", "--proxy-protocol", "--workers N", "[default: 1]"]],
      ["chat_server.ts", ["--workers N", "[default: 1]"]],
      ["tcp_client.ts", ["--send-proxy v1|v2", "[default: none]"]],
    ] as const
  ) {
    const { code, stdout } = await runScript(script, ["--help"], { permissions: NET });
    assertEquals(code, 0);
    for (const text of texts) assertStringIncludes(stdout, text);
  }
});
