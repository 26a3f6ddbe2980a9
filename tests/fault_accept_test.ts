/**
 * Faults at accept time, for every server that accepts: a connection that resets while it waits
 * in the backlog (the server is stopped with SIGSTOP so the order is certain), one that resets
 * just after the accept, a Unix peer bound to an address that is not UTF-8, and running out of
 * file descriptors. After each: a fresh client is served, memory stayed bounded, SIGINT exits 0.
 * The resets and the exhaustion also hit the second accept path of `--proxy-protocol` (headers
 * read off the accept loop) and the accept loops of `--workers`.
 */
import { assert, assertFalse, assertLessOrEqual, assertNotMatch } from "@std/assert";
import {
  attackServer,
  FaultServer,
  GREETING,
  hasPython,
  hex,
  PROXIED_ECHO,
  python,
  PythonPeer,
  sameScript,
  specName,
  STREAM_SERVERS,
  survives,
  tempSocketPath,
  UDP,
  waitUntil,
  WORKER_SERVERS,
} from "./_faults.ts";
import { hasIPv6Loopback, hasPeer } from "./_process.ts";

const encoder = new TextEncoder();

for (const spec of [...STREAM_SERVERS, PROXIED_ECHO]) {
  for (const [family, hostname] of [["IPv4", "127.0.0.1"], ["IPv6", "::1"]]) {
    Deno.test({
      name: `${specName(spec)} serves a fresh client after a reset before accept (${family})`,
      ignore: !hasPython() || (family === "IPv6" && !hasIPv6Loopback()),
      async fn() {
        const { stderr } = await attackServer(spec, { endpoint: { hostname } }, async (server) => {
          await server.freeze();
          try {
            await python("reset", server.target);
            await waitUntil(
              async () => (await server.backlog() ?? 0) >= 1,
              "the reset connection waits in the backlog",
            );
          } finally {
            server.thaw();
          }
          await waitUntil(async () => await server.backlog() === 0, "the server accepts it");
        });
        assertNotMatch(stderr, /accept failed|Error|\n\s+at /);
      },
    });
  }

  Deno.test({
    name: `${specName(spec)} serves a fresh client after a reset just after accept`,
    ignore: !hasPython(),
    async fn() {
      await attackServer(spec, {}, async (server) => {
        await using peer = new PythonPeer("connect-reset", server.target);
        await peer.waitFor(/^connected$/m);
        await waitUntil(async () => await server.backlog() === 0, "the server accepts it");
        await peer.poke();
        await peer.waitFor(/^reset$/m);
      });
    },
  });
}

/** What the odd Unix peer sends each kind of server. */
const UNIX_PAYLOAD: Record<string, string> = {
  echo: "odd but welcome\n",
  greeting: "",
  http: "GET /odd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  broker: "odd but welcome\n",
};

for (const spec of STREAM_SERVERS) {
  Deno.test({
    name: `${spec.script} --unix keeps serving after a peer bound to a non-UTF-8 address`,
    ignore: !hasPython(),
    async fn() {
      await using socket = await tempSocketPath();
      const send = UNIX_PAYLOAD[spec.kind];
      const { stdout, stderr } = await attackServer(
        spec,
        { endpoint: { path: socket.path }, verbose: true },
        async (server) => {
          // Served or skipped, the odd peer must not stop the server (checked after this).
          await python("odd-unix", server.target, hex(encoder.encode(send)));
          await python("odd-unix", server.target, hex(encoder.encode(send)));
        },
      );
      assertFalse((stdout + stderr).includes("\x1b"), "a raw escape reached the terminal");
    },
  });
}

Deno.test({
  name: "udp_receive.ts --unix keeps receiving after a datagram from a non-UTF-8 address",
  ignore: !hasPython(),
  async fn() {
    await using socket = await tempSocketPath();
    const { stdout, stderr } = await attackServer(
      UDP,
      { endpoint: { path: socket.path }, args: ["--json"] },
      async (server) => {
        await python("odd-unix-dgram", server.target, hex(encoder.encode("odd datagram")));
        await python("odd-unix-dgram", server.target, hex(encoder.encode("odd datagram")));
      },
    );
    assertFalse((stdout + stderr).includes("\x1b"), "a raw escape reached the terminal");
  },
});

/** A line about running out of descriptors. */
const EXHAUSTED = /Too many open files|EMFILE/;

for (const spec of [...STREAM_SERVERS, PROXIED_ECHO, ...WORKER_SERVERS]) {
  Deno.test({
    name: `${specName(spec)} recovers after running out of file descriptors`,
    ignore: !hasPeer("prlimit"),
    async fn() {
      // tcp_server's own backlog of 5 would keep most clients out of the kernel's queue.
      const args = sameScript(spec, GREETING) ? ["--backlog", "200"] : [];
      await using server = await FaultServer.start(spec, {
        wrapper: ["prlimit", "--nofile=64:64", "--"],
        args,
      });
      await survives(server, async () => {
        const conns: Deno.Conn[] = [];
        try {
          // A server that dies of it refuses the rest: the check below says so.
          for (let i = 0; i < 100 && !server.ended; i++) {
            const conn = await server.connect().catch(() => null);
            if (conn === null) break;
            conns.push(conn);
          }
          await waitUntil(() => server.openFds() >= 60, "the server runs out of descriptors");
          // Watch the reports for a while: at most about one a second from each accept loop
          // (each worker has its own), not a flood.
          const from = server.stderr.text.length;
          const started = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 2500));
          const seconds = (performance.now() - started) / 1000;
          const reports = server.stderr.text.slice(from).split("\n").filter((line) =>
            EXHAUSTED.test(line)
          ).length;
          const loops = spec.workers ?? 1;
          assertLessOrEqual(reports, loops * (Math.ceil(seconds) + 1), server.describe());
          assert(!server.ended, server.describe());
        } finally {
          for (const conn of conns) conn.close();
        }
        // Recovery: the backlog empties as descriptors come back.
        await waitUntil(async () => await server.backlog() === 0, "the backlog drains", 15_000);
      });
    },
  });
}
