/**
 * Faults that come from where a server runs rather than from its clients: a stdout nobody reads,
 * a non-blocking stdout pipe, a full disk behind stdout, a pseudo-terminal with permissions
 * missing, and SIGINT twice in a row. Logging must never stop service, nothing may prompt, and a
 * doubled signal is one stop. A stdout nobody reads is also tried behind `--proxy-protocol` and
 * with `--workers` (whose lines cross from the worker threads to the main thread's queue).
 */
import { assert, assertEquals, assertLess, assertMatch, assertNotMatch } from "@std/assert";
import {
  ALL_SERVERS,
  CHAT,
  ECHO,
  FaultServer,
  GREETING,
  hasPython,
  HTTP2,
  pattern,
  PROXIED_ECHO,
  readToEnd,
  RELAY,
  sameScript,
  type ServerSpec,
  specName,
  UDP,
  waitUntil,
  withTimeout,
  WORKER_SERVERS,
  writeAll,
} from "./_faults.ts";
import { hasPeer, readExactly } from "./_process.ts";

const SERVERS = ALL_SERVERS;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ROOT = new URL("../", import.meta.url).pathname;

/** Flags that make each server log a line per event, as long a line as it prints. */
function logFlags(spec: ServerSpec): string[] {
  if (sameScript(spec, GREETING)) return ["--json", "--backlog", "128"]; // a backlog for the flood
  return sameScript(spec, CHAT) || sameScript(spec, RELAY) ? ["--json"] : [];
}

/** How much each server is made to log: past the 64 KiB of a pipe, and past the 1 MiB of the
 * output queue where a flood of that size is cheap (so that lines are dropped and counted);
 * tcp_server and tcp_relay.ts log per connection only. */
function floodBytes(spec: ServerSpec): number {
  return sameScript(spec, GREETING) || sameScript(spec, RELAY) ? 96 * 1024 : 1280 * 1024;
}

/** Makes `server` log about `bytes` bytes, whether or not anybody reads them. */
async function flood(server: FaultServer, bytes: number): Promise<void> {
  const spec = server.spec;
  if (sameScript(spec, ECHO)) {
    // Control bytes are printed escaped, four characters each: ~650 bytes of log per echo.
    await roundTrips(await server.connect(), null, Math.ceil(bytes / 650));
  } else if (sameScript(spec, CHAT)) {
    // A message of control bytes is ~600 bytes of JSON: one message at a time, each heard.
    const receiver = await server.connect();
    await waitUntil(async () => await server.backlog() === 0, "the receiver is accepted");
    await roundTrips(await server.connect(), receiver, Math.ceil(bytes / 600));
    receiver.close();
  } else if (sameScript(spec, GREETING) || sameScript(spec, RELAY)) {
    // Some 110 (tcp_server) or 300 (tcp_relay) bytes of JSON per connection.
    const relay = sameScript(spec, RELAY);
    let left = Math.ceil(bytes / (relay ? 250 : 100));
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (left-- > 0) await server.exchange(new Uint8Array(relay ? 16 : 0));
    }));
  } else if (sameScript(spec, HTTP2)) {
    // An access line holds the path: 7 KiB paths (a request line stays under the 8 KiB that
    // lib/http/sniff.ts reads at most), 20 requests a connection.
    const path = `/${"p".repeat(7 * 1024)}`;
    for (let logged = 0; logged < bytes; logged += 20 * path.length) {
      const request = (close: boolean) =>
        `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
      const requests = Array.from({ length: 20 }, (_, i) => request(i === 19)).join("");
      const answer = decoder.decode(await server.exchange(encoder.encode(requests)));
      assertEquals(answer.match(/^HTTP\/1.1 200/gm)?.length, 20);
    }
  } else {
    // A 60000-byte datagram of control bytes is a 240 KB line; one at a time, each read
    // before the next, so the kernel drops none.
    const datagram = new Uint8Array(60_000).fill(1);
    for (let logged = 0; logged < bytes; logged += 4 * datagram.length) {
      await server.sendDatagram(datagram);
      await waitUntil(async () => await server.datagramQueue() === 0, "the datagram is read");
    }
  }
}

/** Sends `count` messages of 1000 control bytes on `conn`, each read back (on `to`, or on
 * `conn` itself) before the next, so that each is one event; then closes `conn`. */
async function roundTrips(conn: Deno.Conn, to: Deno.Conn | null, count: number): Promise<void> {
  const message = new Uint8Array(1000).fill(1);
  const buffer = new Uint8Array(4096);
  try {
    for (let i = 0; i < count; i++) {
      await writeAll(conn, message);
      for (let got = 0; got < message.length;) {
        const n = await (to ?? conn).read(buffer);
        if (n === null) throw new Error("the connection ended early");
        got += n;
      }
    }
  } finally {
    conn.close();
  }
}

/** The notice lib/output.ts prints when log lines had to be dropped. */
const DROPPED = /\(\d+ output lines? dropped: the output did not keep up\)/;

for (const spec of [...SERVERS, PROXIED_ECHO, ...WORKER_SERVERS]) {
  Deno.test(`${specName(spec)} keeps serving while nobody reads its stdout`, async () => {
    await using server = await FaultServer.start(spec, {
      verbose: true,
      args: logFlags(spec),
      stdout: "stall",
    });
    await server.servesFreshClient();
    const before = server.rssKiB();
    await withTimeout(
      flood(server, floodBytes(spec)),
      30_000,
      `a flood of log\n${server.describe()}`,
    );
    await server.servesFreshClient();
    assertLess((server.rssKiB() - before) / 1024, 100);
    // The reader comes back: what was kept arrives, and the loss is counted on stderr.
    server.unstall();
    if (floodBytes(spec) > 1024 * 1024) await server.waitForStderr(DROPPED);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, server.describe());
    assert(result.stdout.length > 64 * 1024, "the log kept in the queue was lost");
  });
}

for (const spec of SERVERS) {
  Deno.test({
    name: `${spec.script} keeps serving through a non-blocking stdout pipe`,
    ignore: !hasPython(),
    async fn() {
      // python3 makes the pipe non-blocking (shared with whoever writes it) and execs the server.
      const nonBlocking =
        "import os, sys; os.set_blocking(1, False); os.execvp(sys.argv[1], sys.argv[1:])";
      await using server = await FaultServer.start(spec, {
        verbose: true,
        args: logFlags(spec),
        stdout: "stall",
        wrapper: ["python3", "-c", nonBlocking],
      });
      await server.servesFreshClient();
      await withTimeout(flood(server, 256 * 1024), 30_000, `a flood of log\n${server.describe()}`);
      await server.servesFreshClient();
      server.unstall();
      const result = await server.stop("SIGINT");
      assertEquals(result.code, 0, server.describe());
      assertNotMatch(result.stderr, /Resource temporarily unavailable|os error 11|Uncaught/);
    },
  });
}

for (const spec of SERVERS) {
  Deno.test(`${spec.script} keeps serving with stdout on a full disk and counts the lost lines`, async () => {
    await using server = await FaultServer.start(spec, {
      verbose: true,
      args: logFlags(spec),
      stdout: "elsewhere",
      wrapper: ["sh", "-c", 'exec "$@" >/dev/full', "sh"],
    });
    await server.servesFreshClient();
    await server.servesFreshClient();
    await server.waitForStderr(DROPPED);
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0, server.describe());
    assertNotMatch(result.stderr, /No space left|Uncaught/);
  });
}

/** Runs `command` (a shell line) on a pseudo-terminal with `script`, killed after 20 s. */
async function onTerminal(
  command: string,
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const { code, stdout, stderr } = await child.output();
    return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** What a Deno permission prompt prints. */
const PROMPT = /Deno requests|Allow\?|\[y\/n/i;

for (const spec of SERVERS) {
  Deno.test({
    name: `${spec.script} on a terminal without --allow-net prints one error naming the flag`,
    ignore: !hasPeer("script"),
    async fn() {
      const { code, output } = await onTerminal(
        `${Deno.execPath()} run scripts/${spec.script} --port 0`,
      );
      assertNotMatch(output, PROMPT, output);
      assertMatch(output, /--allow-net=/, output);
      assertEquals(output.trim().split(/\r?\n/).length, 1, output);
      assertEquals(code, 1, output);
    },
  });
}

for (const debug of [undefined, "1"]) {
  for (const spec of SERVERS) {
    Deno.test({
      name:
        `${spec.script} on a terminal reports a port in use without a prompt (DENO_SOCKETS_DEBUG ${
          debug === undefined ? "unset" : "set"
        }, no --allow-env)`,
      ignore: !hasPeer("script"),
      async fn() {
        const taken = spec === UDP
          ? Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
          : Deno.listen({ hostname: "127.0.0.1", port: 0 });
        try {
          const { port } = taken.addr as Deno.NetAddr;
          const { code, output } = await onTerminal(
            `${Deno.execPath()} run --allow-net=127.0.0.1 scripts/${spec.script} --port ${port}`,
            debug === undefined ? {} : { DENO_SOCKETS_DEBUG: debug },
          );
          assertNotMatch(output, PROMPT, output);
          assertMatch(output, /in use/i, output);
          assertEquals(code, 1, output);
        } finally {
          taken.close();
        }
      },
    });
  }
}

/** A client in the middle of something when the stop comes; resolves when it is done. */
async function clientInProgress(server: FaultServer): Promise<() => Promise<void>> {
  switch (server.spec.kind) {
    case "echo": {
      // Echoed once; the drain must then end the connection cleanly.
      const conn = await server.connect();
      const sent = pattern(1000);
      await writeAll(conn, sent);
      assertEquals(
        await readExactly(conn, sent.length),
        sent,
        "the echo differs from what was sent",
      );
      return async () => {
        assertEquals((await readToEnd(conn)).length, 0, "bytes after the echo");
        conn.close();
      };
    }
    case "greeting": {
      // Greeted: the server then waits for the client to close, which the stop must allow.
      const conn = await server.connect();
      const greeting = await readExactly(conn, "Thank you for connecting".length);
      assertEquals(decoder.decode(greeting), "Thank you for connecting");
      return async () => {
        assertEquals((await readToEnd(conn)).length, 0, "bytes after the greeting");
        conn.close();
      };
    }
    case "http": {
      // A keep-alive connection after one answer: the stop must end it.
      const conn = await server.connect();
      await writeAll(conn, encoder.encode("GET /kept HTTP/1.1\r\nHost: x\r\n\r\n"));
      const answer = new Uint8Array(4096);
      const n = await conn.read(answer);
      assertMatch(decoder.decode(answer.subarray(0, n ?? 0)), /^HTTP\/1.1 200/);
      return async () => {
        await readToEnd(conn);
        conn.close();
      };
    }
    case "broker": {
      const conn = await server.connect();
      await waitUntil(async () => await server.backlog() === 0, "the server accepts it");
      return async () => {
        await readToEnd(conn);
        conn.close();
      };
    }
    case "datagram":
      return () => Promise.resolve();
  }
}

for (const spec of SERVERS) {
  Deno.test(`${spec.script} takes SIGINT twice within 10 ms as one stop, drains, and exits 0`, async () => {
    await using server = await FaultServer.start(spec);
    await server.servesFreshClient();
    const finish = await clientInProgress(server);
    server.child.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 5));
    server.child.kill("SIGINT");
    await withTimeout(finish(), 10_000, "the client in progress is drained");
    const result = await server.stop(null);
    assertEquals(result.code, 0, server.describe());
    assertNotMatch(result.stderr, /second stop signal/);
  });
}
