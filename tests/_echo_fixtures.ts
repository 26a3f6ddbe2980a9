/**
 * Echo servers the tests stand up, and the client that checks them: the PROXY-protocol
 * `echo_server.ts` (a subprocess) and the read/write fixture of the benchmarks (in process).
 * @module
 */
import { serveReadWrite } from "../scripts/bench/read_write_server.ts";
import { type ScriptProcess, spawnScript } from "./_process.ts";

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
