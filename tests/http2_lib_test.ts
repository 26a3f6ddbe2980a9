import { assert, assertEquals, assertRejects } from "@std/assert";
import { ClientFrameFilter } from "../lib/http/h2_frames.ts";
import { LoopbackPairs } from "../lib/http/pair.ts";
import { serveHttp } from "../lib/http/server.ts";
import { HTTP2_PREFACE, sniffVersion } from "../lib/http/sniff.ts";

const encoder = new TextEncoder();

Deno.test("sniffVersion() reads the version from the preface or the request line", () => {
  const cases: [string, string][] = [
    ["GET / HTTP/1.1\r\n", "HTTP/1.1"],
    ["\r\nPOST /x?y HTTP/1.0\r\n", "HTTP/1.0"],
    ["OPTIONS * HTTP/1.1\n", "HTTP/1.1"],
    ["GET / HTTP/2.0\r\n", "unknown"],
    ["GET /\r\n", "unknown"], // HTTP/0.9
    ["\x16\x03\x01\x02\x00\x01", "more"], // a TLS hello on a cleartext port: no end of line yet
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2"],
    ["PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", "unknown"],
  ];
  for (const [text, version] of cases) {
    assertEquals(sniffVersion(encoder.encode(text)), version, JSON.stringify(text));
  }
  assertEquals(sniffVersion(new Uint8Array(9000).fill(0x41)), "unknown");
});

Deno.test("ClientFrameFilter removes GOAWAY frames however the bytes are split", () => {
  const frame = (type: number, flags: number, stream: number, payload: number[]) => [
    0,
    payload.length >> 8,
    payload.length & 0xff,
    type,
    flags,
    0,
    0,
    0,
    stream,
    ...payload,
  ];
  const settings = frame(0x4, 0, 0, []);
  const headers = frame(0x1, 0x1, 1, [0x82, 0x86]); // no END_HEADERS: a CONTINUATION follows
  const continuation = frame(0x9, 0x4, 1, [0x84]);
  const goaway = frame(0x7, 0, 0, [0, 0, 0, 1, 0, 0, 0, 2]);
  const data = frame(0x0, 0x1, 1, Array.from({ length: 300 }, (_, i) => i & 0xff));
  const input = new Uint8Array([
    ...HTTP2_PREFACE,
    ...settings,
    ...headers,
    ...goaway,
    ...continuation,
    ...data,
    ...goaway,
  ]);
  const expected = [...HTTP2_PREFACE, ...settings, ...headers, ...continuation, ...data];
  for (const size of [1, 2, 7, 9, 10, 33, input.length]) {
    const seen: string[] = [];
    const filter = new ClientFrameFilter({
      onGoaway: (code, last) => seen.push(`goaway ${code} ${last}`),
      onHeaderBlock: (open) => seen.push(open ? "open" : "end"),
    });
    const out: number[] = [];
    for (let at = 0; at < input.length; at += size) {
      out.push(...filter.filter(input.subarray(at, at + size)));
    }
    assertEquals(out, expected, `chunks of ${size}`);
    assertEquals(seen, ["open", "goaway 2 1", "end", "goaway 2 1"], `chunks of ${size}`);
  }
});

Deno.test("ClientFrameFilter passes a chunk without GOAWAY through without a copy", () => {
  const filter = new ClientFrameFilter();
  filter.filter(HTTP2_PREFACE);
  const chunk = new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]);
  assert(filter.filter(chunk) === chunk);
});

Deno.test("LoopbackPairs closes a connection that does not know a token", async () => {
  const pairs = await LoopbackPairs.open({ timeout: 2000 });
  try {
    using stranger = await Deno.connect({ hostname: "127.0.0.1", port: pairs.addr.port });
    await stranger.write(new Uint8Array(16).fill(7));
    assertEquals(await stranger.read(new Uint8Array(16)), null);
    const [outer, inner] = await pairs.pair();
    outer.close();
    inner.close();
  } finally {
    await pairs.close();
  }
});

Deno.test("serveHttp() answers 400 to bytes that are no HTTP, and stops within the grace", async () => {
  let requests = 0;
  const server = await serveHttp((request) => {
    requests++;
    // Answers only when the connection is gone: the stop must not wait for it.
    const { promise, resolve } = Promise.withResolvers<Response>();
    request.signal.addEventListener("abort", () => resolve(new Response("late")));
    return promise;
  }, {
    port: 0,
    graceTimeout: 100,
  });
  const { port } = server.addr as Deno.NetAddr;
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    using garbage = await Deno.connect({ hostname: "127.0.0.1", port });
    await garbage.write(encoder.encode("SSH-2.0-OpenSSH_9.2\r\n"));
    const reply = await new Response(garbage.readable).text();
    assertEquals(reply.split("\r\n")[0], "HTTP/1.1 400 Bad Request");
    // A request whose handler never answers: the stop ends it when the grace runs out.
    await stuck.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
    while (requests === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    server.close();
    await server.finished;
    stuck.close();
  }
  assertEquals(server.stats.forced, 1);
});

Deno.test("serveHttp() refuses to start without its private loopback permission", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deno-sockets-http-" });
  try {
    const program = `${dir}/serve.ts`;
    await Deno.writeTextFile(
      program,
      `import { serveHttp } from "${new URL("../lib/http/server.ts", import.meta.url)}";
       await serveHttp(() => new Response(), { hostname: "::1", port: 0 });`,
    );
    const config = new URL("../deno.json", import.meta.url).pathname;
    const denied = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", config, "--allow-net=[::1]", program],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(!denied.success);
    assert(new TextDecoder().decode(denied.stderr).includes("--allow-net=127.0.0.1"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assertRejects(
    () => serveHttp(() => new Response(), { port: 0, idleTimeout: 0 }),
    RangeError,
  );
});
