/**
 * `-x` on the servers that print what they receive: `echo_server.ts` and `udp_receive.ts` show
 * the bytes as `xxd` does, under the line that escapes them.
 */
import { assertEquals } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { hasPeer, readExactly, runScript, spawnScript } from "./_process.ts";
import { xxd } from "./_xxd.ts";

const NET = ["--allow-net=127.0.0.1"];

/** Bytes a terminal must not see raw: escapes, a NUL, high bytes. */
function binary(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 37 + seed) % 256);
}

Deno.test({
  name: "echo_server.ts -x dumps what each client sends as xxd does, offsets running on",
  ignore: !hasPeer("xxd"),
  async fn() {
    await using server = spawnScript("echo_server.ts", ["--port", "0", "-x"], { permissions: NET });
    const port = await server.listeningPort();
    const first = binary(20, 0);
    const second = binary(30, 7);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      // Each message is echoed before the next is sent, so each arrives in one read.
      for (const message of [first, second]) {
        await writeAll(conn, message);
        assertEquals(await readExactly(conn, message.length), message);
      }
    } finally {
      conn.close();
    }
    await server.waitForStdout(/^closing /m);
    const { stdout } = await server.stop("SIGINT");
    const peer = `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`;
    const lines = stdout.split("\n");
    const received = lines.flatMap((line, i) => line.startsWith("received ") ? [i] : []);
    assertEquals(received.length, 2, stdout);
    for (const i of received) assertEquals(lines[i].endsWith(`from ${peer}`), true, lines[i]);
    // Under each "received" line: its dump, the second one going on at offset 20 (0x14).
    assertEquals(lines.slice(received[0] + 1, received[0] + 3).join("\n") + "\n", await xxd(first));
    assertEquals(
      lines.slice(received[1] + 1, received[1] + 3).join("\n") + "\n",
      await xxd(second, first.length),
    );
    assertEquals(lines[received[1] + 3].startsWith("sending "), true, stdout);
  },
});

Deno.test({
  name: "udp_receive.ts -x dumps each datagram as xxd does, and no more than --max-bytes",
  ignore: !hasPeer("xxd"),
  async fn() {
    const args = ["--port", "0", "--count", "2", "-x", "--max-bytes", "40"];
    await using receiver = spawnScript("udp_receive.ts", args, { permissions: NET });
    const port = await receiver.listeningPort();
    const small = binary(20, 3);
    const large = binary(100, 5);
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      for (const datagram of [small, large]) {
        await socket.send(datagram, { transport: "udp", hostname: "127.0.0.1", port });
      }
    } finally {
      socket.close();
    }
    const { code, stdout } = await receiver.result();
    assertEquals(code, 0);
    const lines = stdout.split("\n");
    assertEquals(lines[0].startsWith("received message: "), true, stdout);
    assertEquals(lines.slice(1, 3).join("\n") + "\n", await xxd(small));
    assertEquals(lines[3].startsWith("received message: "), true, stdout);
    assertEquals(lines.slice(4, 7).join("\n") + "\n", await xxd(large.subarray(0, 40)));
    assertEquals(lines[7], "", stdout);
  },
});

Deno.test("echo_server.ts and udp_receive.ts refuse -x with --json in one line", async () => {
  for (
    const [script, flags] of [["echo_server.ts", ["-x", "--json"]], ["udp_receive.ts", [
      "-x",
      "--json",
    ]]] as const
  ) {
    const { code, stdout, stderr } = await runScript(script, ["--port", "0", ...flags], {
      permissions: NET,
    });
    assertEquals([code, stdout], [2, ""]);
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
  }
});
