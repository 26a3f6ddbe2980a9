/**
 * Clients that hold a server's resources without doing anything wrong byte by byte: slowloris
 * (many connections that trickle) with and without the limits, and TLS clients that connect and
 * never say hello. A fresh client is served once they go, a stop is not held by them, and the
 * descriptors they cost stay within `--max-connections`.
 */
import { assert, assertEquals, assertLess, assertLessOrEqual } from "@std/assert";
import {
  FaultServer,
  GREETING,
  HTTP2,
  readToEnd,
  type ServerSpec,
  STREAM_SERVERS,
  survives,
  waitUntil,
  writeAll,
} from "./_faults.ts";
import { createTestCertificates, hasOpenssl } from "./_tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Connections that send one byte each every `intervalMs` (after an opening), never read. */
class Slowloris implements AsyncDisposable {
  readonly conns: Deno.Conn[] = [];
  readonly closedByServer = new Set<Deno.Conn>();
  /** Bytes the server sent them, all together. */
  bytesReceived = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #reads: Promise<void>[] = [];

  static async open(
    server: FaultServer,
    count: number,
    options: { opening?: string; intervalMs?: number } = {},
  ): Promise<Slowloris> {
    const slow = new Slowloris();
    for (let i = 0; i < count; i++) {
      const conn = await server.connectPlain();
      slow.conns.push(conn);
      slow.#reads.push(slow.#watch(conn));
      if (options.opening) await conn.write(encoder.encode(options.opening)).catch(() => {});
    }
    if (options.intervalMs !== undefined) {
      slow.#timer = setInterval(() => {
        for (const conn of slow.conns) {
          if (!slow.closedByServer.has(conn)) conn.write(encoder.encode("a")).catch(() => {});
        }
      }, options.intervalMs);
    }
    return slow;
  }

  /** Reads (and counts) what the server sends, to see when it closes the connection. */
  async #watch(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    try {
      // An echo, a greeting or a broadcast: counted, not kept.
      for (let n; (n = await conn.read(buffer)) !== null;) this.bytesReceived += n;
    } catch { /* reset by the server, or closed by us */ }
    this.closedByServer.add(conn);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#timer);
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
    await Promise.all(this.#reads);
  }
}

/** What each server needs to be held by a trickle: HTTP gets a request line and headers that
 * never end. */
function opening(spec: ServerSpec): string | undefined {
  return spec === HTTP2 ? "GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: " : undefined;
}

for (const spec of STREAM_SERVERS) {
  Deno.test(`${spec.script} serves a fresh client while 30 slowloris clients trickle`, async () => {
    await using server = await FaultServer.start(spec);
    await survives(server, async () => {
      await using _slow = await Slowloris.open(server, 30, {
        opening: opening(spec),
        intervalMs: 100,
      });
      await server.servesFreshClient(5000);
    });
  });
}

/** The flags that limit connections and how long one may sit silent: the idle timeout, and
 * also http2_server's header deadline (a connection that has not sent its first request yet)
 * and tcp_server's greeting deadline. */
function limitFlags(spec: ServerSpec, max: number): string[] {
  const limit = ["--max-connections", `${max}`];
  if (spec === GREETING) return [...limit, "--timeout", "1s"];
  if (spec === HTTP2) return [...limit, "--idle-timeout", "1s", "--header-timeout", "1s"];
  return [...limit, "--idle-timeout", "1s"];
}

for (const spec of STREAM_SERVERS) {
  Deno.test(
    `${spec.script} refuses slowloris clients beyond --max-connections and times out the silent ones`,
    async () => {
      await using server = await FaultServer.start(spec, { args: limitFlags(spec, 10) });
      await survives(server, async () => {
        await using slow = await Slowloris.open(server, 10);
        await waitUntil(async () => await server.backlog() === 0, "the server accepts them");
        // Full: a new client is closed at once, served by nobody.
        if (spec.kind === "broker") {
          await assertBrokerRefuses(server, slow);
        } else {
          const refused = await server.exchange(encoder.encode("GET / HTTP/1.1\r\n\r\n"), 5000)
            .catch(() => new Uint8Array(0));
          assertEquals(decoder.decode(refused), "", "a client beyond the limit was served");
        }
        // The idle timeout (the greeting's linger for tcp_server) ends all of them.
        await waitUntil(
          () => slow.closedByServer.size === slow.conns.length,
          "the server closes silent clients",
          10_000,
        );
      });
    },
  );
}

/**
 * A broker answers nobody directly, so an empty answer proves nothing: a client it took in would
 * see its message reach the members, `slow`, who never speak. The client beyond the limit sends
 * one and keeps its side open until the server closes it (at once when it refuses, after the
 * idle timeout were it a member) or, should it be left in the backlog, for 5 s: nothing may
 * reach anybody either way.
 */
async function assertBrokerRefuses(server: FaultServer, slow: Slowloris): Promise<void> {
  const before = slow.bytesReceived;
  const conn = await server.connect();
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    await writeAll(conn, encoder.encode("beyond the limit\n")).catch(() => {});
    // A reset (the write reached a socket already closed) is a close as well.
    const heard = await readToEnd(conn).catch((error) => {
      if (error instanceof Deno.errors.ConnectionReset) return new Uint8Array(0);
      throw error;
    });
    assertEquals(decoder.decode(heard), "", "the broker sent a client beyond the limit something");
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  assertEquals(slow.bytesReceived, before, "a client beyond the limit was served: it was heard");
}

/** The header deadline flag http2_server.ts lists in its --help, if any. */
async function headerDeadlineFlag(): Promise<string | undefined> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "scripts/http2_server.ts", "--help"],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "null",
  }).output();
  return /^\s*(--[a-z-]*header[a-z-]*)\s/m.exec(decoder.decode(stdout))?.[1];
}

Deno.test("http2_server.ts closes a slowloris client that never finishes its headers", async () => {
  const flag = await headerDeadlineFlag();
  assert(flag !== undefined, "http2_server.ts --help names no header deadline flag");
  await using server = await FaultServer.start(HTTP2, {
    args: ["--idle-timeout", "5s", flag!, "1s"],
  });
  await survives(server, async () => {
    // One header byte every 200 ms: never idle, never done.
    await using slow = await Slowloris.open(server, 5, {
      opening: opening(HTTP2),
      intervalMs: 200,
    });
    await waitUntil(
      () => slow.closedByServer.size === slow.conns.length,
      "the header deadline closes them",
      4000,
    );
  });
});

/** Flags that make a TLS server give up on a handshake quickly. */
function handshakeFlags(spec: ServerSpec, ms: number): string[] {
  return spec === GREETING ? ["--timeout", `${ms}ms`] : ["--handshake-timeout", `${ms}ms`];
}

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} stops within its grace while silent TLS clients hold connections`,
    ignore: !hasOpenssl(),
    async fn() {
      await using tls = await createTestCertificates();
      // --grace, but tcp_server's greetings end within --timeout.
      const grace = spec === GREETING ? ["--timeout", "1s"] : ["--grace", "1s"];
      await using server = await FaultServer.start(spec, { tls, args: grace });
      await server.servesFreshClient();
      await using _silent = await Slowloris.open(server, 5);
      await waitUntil(async () => await server.backlog() === 0, "the server accepts them");
      const result = await server.stop("SIGINT");
      assertEquals(result.code, 0, server.describe());
      assertLess(result.elapsedMs, 1000 + 2000, "silent TLS clients held the stop");
    },
  });
}

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} counts silent TLS clients toward --max-connections`,
    ignore: !hasOpenssl(),
    async fn() {
      await using tls = await createTestCertificates();
      // tcp_server's backlog of 5 would make the kernel drop the silent clients' SYNs.
      const backlog = spec === GREETING ? ["--backlog", "64"] : [];
      await using server = await FaultServer.start(spec, {
        tls,
        args: ["--max-connections", "5", ...backlog, ...handshakeFlags(spec, 300)],
      });
      await survives(server, async () => {
        const baseline = server.openFds();
        await using _silent = await Slowloris.open(server, 40);
        // Deno keeps the socket of an accepted TLS connection until its peer acts, whatever the
        // server does (lib/net/handshake.ts), so only a server that stops accepting at its
        // limit bounds the descriptors. Watch them through a few handshake deadlines.
        let most = 0;
        for (const until = performance.now() + 1500; performance.now() < until;) {
          most = Math.max(most, server.openFds() - baseline);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        // A relay holds an upstream connection for each client as well.
        const limit = 5 * (spec.relay ? 2 : 1) + 2;
        assertLessOrEqual(most, limit, "descriptors held beyond --max-connections");
      });
    },
  });
}
