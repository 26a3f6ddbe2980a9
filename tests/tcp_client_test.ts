/**
 * tcp_client.ts and echo_client.ts as netcat users use them: `HOST PORT`, standard input sent
 * while the reply comes back, a half-close at its end, what arrived kept on a timeout, escaping
 * in chunks, hex dumps that match `xxd`, and `-z` port probes (loopback only).
 * @module
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { serveEcho } from "../lib/mux/mod.ts";
import { hasPeer, runScript, spawnScript, startPortPeer } from "./_process.ts";
import { xxd } from "./_xxd.ts";

const NET = ["--allow-net=127.0.0.1"];

/** A one-shot server: runs `serve` on the first connection, then closes it. */
async function withServer(
  serve: (conn: Deno.Conn) => Promise<void>,
  test: (port: number) => Promise<void>,
): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = listener.accept().then(async (conn) => {
    try {
      await serve(conn);
    } finally {
      try {
        conn.close();
      } catch { /* closed by the test */ }
    }
  });
  try {
    await test(listener.addr.port);
  } finally {
    await served;
  }
}

function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

Deno.test("tcp_client.ts HOST PORT sends piped stdin while the echo comes back, then half-closes", async () => {
  const server = await serveEcho({ port: 0 });
  try {
    const port = (server.addr as Deno.NetAddr).port;
    // 4 MiB is more than both sides' socket buffers hold: sending all before reading would
    // stall against an echo server that stops reading a client that does not read.
    const line = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(3) + "\n";
    const input = line.repeat(Math.ceil(4 * 1024 * 1024 / line.length));
    await using client = spawnScript(
      "tcp_client.ts",
      ["127.0.0.1", `${port}`, "--max-bytes", "8M"],
      { permissions: NET, stdin: true },
    );
    await client.write(input);
    await client.child.stdin.close(); // EOF: the client shuts down its side, the server ends
    const result = await client.result();
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout.length, input.length);
    assert(result.stdout === input, "the echo differs from what was sent");
  } finally {
    server.close();
    await server.finished;
  }
});

Deno.test("tcp_client.ts: --host and --port win over HOST PORT", async () => {
  await withServer(
    (conn) => conn.write(new TextEncoder().encode("hi")).then(() => {}),
    async (port) => {
      const result = await runScript(
        "tcp_client.ts",
        ["127.0.0.1", `${freePort()}`, "--port", `${port}`],
        { permissions: NET },
      );
      assertEquals(result, { code: 0, signal: null, stdout: "hi\n", stderr: "" });
    },
  );
});

Deno.test("tcp_client.ts -w prints what arrived before the timeout and names the address", async () => {
  const { promise: done, resolve } = Promise.withResolvers<void>();
  await withServer(async (conn) => {
    await conn.write(new TextEncoder().encode("partial \x1b[2J"));
    await done; // then say nothing
  }, async (port) => {
    const result = await runScript("tcp_client.ts", ["-w", "300ms", "127.0.0.1", `${port}`], {
      permissions: NET,
    });
    resolve();
    assertEquals(result.stdout, "partial \\x1b[2J\n");
    assertEquals(result.stderr, `tcp_client: 127.0.0.1:${port}: No data for 300 ms\n`);
    assertEquals(result.code, 1);
  });
});

Deno.test("tcp_client.ts --timeout bounds the TLS handshake with a peer that never speaks TLS", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const accepted = listener.accept();
  const started = performance.now();
  const result = await runScript("tcp_client.ts", [
    "--tls",
    "--timeout",
    "500ms",
    "127.0.0.1",
    `${port}`,
  ], {
    permissions: NET,
  });
  (await accepted).close();
  assert(performance.now() - started < 5000, "the handshake was not bounded");
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    `tcp_client: The TLS handshake to 127.0.0.1:${port} took longer than 500 ms\n`,
  );
});

Deno.test("tcp_client.ts escapes megabytes of control bytes chunk by chunk, and a character cut between reads stays whole", async () => {
  const size = 3 * 1024 * 1024;
  await withServer(async (conn) => {
    const chunk = new Uint8Array(64 * 1024).fill(0x01);
    for (let sent = 0; sent < size; sent += chunk.length) await conn.write(chunk);
    // "é" is two bytes: send them apart, so they arrive in two reads.
    await conn.write(new Uint8Array([0xc3]));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await conn.write(new Uint8Array([0xa9]));
  }, async (port) => {
    const result = await runScript(
      "tcp_client.ts",
      ["127.0.0.1", `${port}`, "--max-bytes", `${size + 2}`],
      { permissions: NET },
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout.length, size * 4 + 2);
    assert(result.stdout.startsWith("\\x01\\x01"));
    assert(result.stdout.endsWith("\\x01é\n"), JSON.stringify(result.stdout.slice(-12)));
  });
});

Deno.test("tcp_client.ts --max-bytes prints that much and says it stopped", async () => {
  await withServer(
    (conn) => conn.write(new TextEncoder().encode("0123456789")).then(() => {}),
    async (port) => {
      const result = await runScript(
        "tcp_client.ts",
        ["--max-bytes", "4", "127.0.0.1", `${port}`],
        {
          permissions: NET,
        },
      );
      assertEquals(result, {
        code: 0,
        signal: null,
        stdout: "0123\n",
        stderr: "tcp_client: stopped reading after 4 bytes (--max-bytes)\n",
      });
    },
  );
});

Deno.test({
  name: "tcp_client.ts -x prints what xxd prints for the bytes received",
  ignore: !hasPeer("xxd"),
  async fn() {
    const bytes = new Uint8Array(1000).map((_, i) => (i * 7) % 256);
    await withServer(async (conn) => {
      await conn.write(bytes.subarray(0, 333)); // offsets run on across reads
      await new Promise((resolve) => setTimeout(resolve, 50));
      await conn.write(bytes.subarray(333));
    }, async (port) => {
      const result = await runScript("tcp_client.ts", ["-x", "127.0.0.1", `${port}`], {
        permissions: NET,
      });
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, await xxd(bytes));
    });
  },
});

Deno.test({
  name: "echo_client.ts -x prints each echo as xxd dumps it",
  ignore: !hasPeer("xxd"),
  async fn() {
    const server = await serveEcho({ port: 0 });
    try {
      const port = (server.addr as Deno.NetAddr).port;
      const message = "hex \x1b[2J dump of an echo, longer than one line";
      const result = await runScript(
        "echo_client.ts",
        ["-x", "--connections", "1", "--message", message, "127.0.0.1", `${port}`],
        { permissions: NET },
      );
      assertEquals(result.code, 0, result.stderr);
      const lines = result.stdout.split("\n");
      const received = lines.findIndex((line) => line.includes(": received "));
      const dump = await xxd(new TextEncoder().encode(message));
      assertEquals(lines.slice(received + 1).join("\n"), dump);
    } finally {
      server.close();
      await server.finished;
    }
  },
});

Deno.test({
  name: "tcp_client.ts -z reports open, closed and filtered ports and exits 0 when one is open",
  ignore: !hasPeer("python3"),
  async fn() {
    // A listener whose backlog is full drops new SYNs: a port that does not answer (filtered).
    const fullBacklog = `
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for i in range(4):
    c = socket.socket(); c.settimeout(0.3)
    try:
        c.connect(("127.0.0.1", port)); held.append(c)
    except OSError:
        break
print(port, flush=True)
time.sleep(30)`;
    await using filtered = await startPortPeer("python3", ["-c", fullBacklog]);
    using open = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = freePort();
    const ports = `${open.addr.port},${closed},${filtered.port}`;
    const result = await runScript("tcp_client.ts", ["-z", "-w", "300ms", "127.0.0.1", ports], {
      permissions: NET,
    });
    assertEquals(
      result.stdout,
      [
        `127.0.0.1:${open.addr.port} open`,
        `127.0.0.1:${closed} closed (refused)`,
        `127.0.0.1:${filtered.port} filtered (no answer within 300 ms)`,
        "",
      ].join("\n"),
    );
    assertEquals(result.code, 0, result.stderr);
    const none = await runScript("tcp_client.ts", ["-z", "127.0.0.1", `${closed}-${closed}`], {
      permissions: NET,
    });
    assertEquals(none, {
      code: 1,
      signal: null,
      stdout: `127.0.0.1:${closed} closed (refused)\n`,
      stderr: "",
    });
  },
});

Deno.test("tcp_client.ts -z over a range names the one permission the whole range needs", async () => {
  const result = await runScript("tcp_client.ts", ["-z", "127.0.0.1", "1-100"], {
    permissions: ["--allow-net=127.0.0.1:1"],
  });
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    "tcp_client: Cannot probe 127.0.0.1 without permission: run again with --allow-net=127.0.0.1\n",
  );
});

Deno.test("tcp_client.ts -v says where it connected and what moved", async () => {
  await withServer(async (conn) => {
    const buffer = new Uint8Array(16);
    const n = await conn.read(buffer);
    await conn.write(buffer.subarray(0, n ?? 0));
  }, async (port) => {
    await using client = spawnScript("tcp_client.ts", ["-v", "127.0.0.1", `${port}`], {
      permissions: NET,
      stdin: true,
    });
    await client.write("ping");
    await client.child.stdin.close();
    const result = await client.result();
    assertEquals(result.stdout, "ping\n");
    assertMatch(
      result.stderr,
      new RegExp(
        `^Connected to 127\\.0\\.0\\.1:${port} from 127\\.0\\.0\\.1:\\d+\nClosed: 4 bytes received, 4 bytes sent\n$`,
      ),
    );
  });
});

Deno.test({
  name:
    "make_certs.ts makes a CA and a certificate that tcp_server.ts --tls and tcp_client.ts --tls --ca accept",
  ignore: !hasPeer("openssl"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deno-sockets-certs-" });
    try {
      const made = await runScript("make_certs.ts", ["--dir", dir, "--days", "1"], {
        permissions: ["--allow-run=openssl", `--allow-read=${dir}`, `--allow-write=${dir}`],
      });
      assertEquals(made.code, 0, made.stderr);
      const again = await runScript("make_certs.ts", ["--dir", dir], {
        permissions: ["--allow-run=openssl", `--allow-read=${dir}`, `--allow-write=${dir}`],
      });
      assertEquals(
        again.stderr,
        `make_certs: ${dir}/ca.pem exists already (--force replaces it)\n`,
      );
      await using server = spawnScript(
        "tcp_server.ts",
        [
          "--port",
          "0",
          "--count",
          "1",
          "--tls",
          "--cert",
          `${dir}/server.pem`,
          "--key",
          `${dir}/server.key`,
        ],
        { permissions: [...NET, `--allow-read=${dir}`] },
      );
      const port = await server.listeningPort();
      const client = await runScript(
        "tcp_client.ts",
        ["--tls", "--ca", `${dir}/ca.pem`, "127.0.0.1", `${port}`],
        { permissions: [...NET, `--allow-read=${dir}`] },
      );
      assertEquals(client, {
        code: 0,
        signal: null,
        stdout: "Thank you for connecting\n",
        stderr: "",
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
