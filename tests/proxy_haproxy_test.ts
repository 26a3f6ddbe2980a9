import { assert, assertEquals } from "@std/assert";
import { equals } from "@std/bytes/equals";
import { hasHaproxy, startHaproxy } from "./_haproxy.ts";
import { echoThrough, startProxiedEcho } from "./_echo_fixtures.ts";
import { spawnScript } from "./_process.ts";

const NET = ["--allow-net=127.0.0.1"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function connectionPeers(jsonLines: string): string[] {
  return jsonLines.trim().split("\n").map((line) => JSON.parse(line))
    .filter((event) => event.event === "connection").map((event) => event.peer);
}

Deno.test({
  name: "echo_server.ts --proxy-protocol behind HAProxy logs the client's own address, v1 and v2",
  ignore: !hasHaproxy(),
  async fn() {
    await using first = startProxiedEcho();
    await using second = startProxiedEcho();
    await using haproxy = await startHaproxy([
      { port: await first.listeningPort(), sendProxy: "v1" },
      { port: await second.listeningPort(), sendProxy: "v2" },
    ]);
    // Round robin: one client connection to each server.
    const a = await echoThrough(haproxy.port, encoder.encode("through HAProxy\n"));
    const b = await echoThrough(haproxy.port, encoder.encode("through HAProxy\n"));
    assertEquals(decoder.decode(a.echo), "through HAProxy\n");
    assertEquals(decoder.decode(b.echo), "through HAProxy\n");
    await first.waitForStdout(/"closing"[^\n]*"reason":"eof"/);
    await second.waitForStdout(/"closing"[^\n]*"reason":"eof"/);
    const results = [await first.stop("SIGINT"), await second.stop("SIGINT")];
    for (const result of results) assertEquals(result.code, 0, result.stderr);
    const peers = results.map((result) => connectionPeers(result.stdout));
    // Each server saw one of the two clients by its own address and port (and HAProxy's health
    // checks by HAProxy's), never a rejected header.
    const clients = [a.local, b.local];
    const seen = peers.map((list) => list.filter((peer) => clients.includes(peer)));
    assertEquals(seen.flat().sort(), [...clients].sort(), JSON.stringify(peers));
    assertEquals(seen.map((list) => list.length), [1, 1]);
    for (const result of results) assert(!result.stderr.includes("without a valid PROXY header"));
  },
});

Deno.test({
  name: "echo_server.ts --proxy-protocol echoes 16 MiB through HAProxy whole",
  ignore: !hasHaproxy(),
  async fn() {
    await using server = spawnScript("echo_server.ts", [
      "--port",
      "0",
      "--proxy-protocol",
      "--quiet",
    ], {
      permissions: NET,
    });
    await using haproxy = await startHaproxy([{
      port: await server.listeningPort(),
      sendProxy: "v2",
    }]);
    const bytes = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    const { echo } = await echoThrough(haproxy.port, bytes);
    assertEquals(echo.length, bytes.length);
    assert(equals(echo, bytes), "the echo differs from what was sent");
    assertEquals((await server.stop("SIGINT")).code, 0);
  },
});
