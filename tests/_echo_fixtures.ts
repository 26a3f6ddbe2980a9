/**
 * Echo servers the tests stand up, and the clients that check them: the PROXY-protocol
 * `echo_server.ts` (a subprocess), the read/write fixture of the benchmarks (in process), and
 * clients that stay connected after their echo to see how a stop ends them.
 * @module
 */
import { assertEquals } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { serveReadWrite } from "../scripts/bench/read_write_server.ts";
import { readExactly, type ScriptProcess, spawnScript } from "./_process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `echo_server.ts --proxy-protocol --json` on a free port of 127.0.0.1. */
export function startProxiedEcho(): ScriptProcess {
  return spawnScript("echo_server.ts", ["--port", "0", "--proxy-protocol", "--json"], {
    permissions: ["--allow-net=127.0.0.1"],
  });
}

/** Sends `bytes` and reads the echo at the same time (a 16 MiB echo cannot wait for the end);
 * returns the client's address too. */
export async function echoThrough(
  port: number,
  bytes: Uint8Array,
): Promise<{ local: string; echo: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const local = `127.0.0.1:${conn.localAddr.port}`;
  const sending = (async () => {
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at, at + 65536));
    await conn.closeWrite();
  })();
  const echo = new Uint8Array(await new Response(conn.readable).arrayBuffer());
  await sending;
  return { local, echo };
}

/** Runs `fn` with the port of the benchmarks' read/write echo fixture, then stops the fixture. */
export async function withEchoServer(fn: (port: number) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  const serving = serveReadWrite({
    signal: controller.signal,
    onListen: (addr) => listening.resolve(addr.port),
  });
  try {
    await fn(await listening.promise);
  } finally {
    controller.abort();
    await serving;
  }
}

/** Opens `count` connections to the echo server on `port` of 127.0.0.1 and has each one echo
 * `text` once (checked byte for byte); they stay open, idle, for the caller. */
export async function openEchoed(
  port: number,
  count: number,
  text = "hello",
): Promise<Deno.Conn[]> {
  const conns = await Promise.all(
    Array.from({ length: count }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  try {
    const bytes = encoder.encode(text);
    for (const conn of conns) {
      await writeAll(conn, bytes);
      assertEquals(decoder.decode(await readExactly(conn, bytes.length)), text);
    }
  } catch (error) {
    for (const conn of conns) conn.close();
    throw error;
  }
  return conns;
}

/** Checks that the server ended every one of `conns` (each reads the end of stream, with no
 * byte before it), then closes them. */
export async function assertAllEnded(conns: readonly Deno.Conn[]): Promise<void> {
  try {
    for (const [i, conn] of conns.entries()) {
      assertEquals(await conn.read(new Uint8Array(1)), null, `connection ${i + 1} did not end`);
    }
  } finally {
    for (const conn of conns) conn.close();
  }
}
