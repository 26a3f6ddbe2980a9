/**
 * Every datagram printed or counted as dropped: when the reader of `udp_receive.ts`'s stdout
 * stalls, its bounded output queue drops lines instead of freezing, and the summary counts them.
 */
import { assert, assertEquals } from "@std/assert";
import { hasPeer } from "./_process.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test({
  name: "udp_receive.ts counts the lines a stalled stdout cost, and the kernel's drops",
  ignore: !hasPeer("ss"),
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-run=ss",
        `${ROOT}scripts/udp_receive.ts`,
        "-p",
        "0",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let errors = "";
    try {
      while (!/Listening on .*:(\d+)\n/.test(errors)) {
        const { value, done } = await stderr.read();
        if (done) throw new Error(`udp_receive.ts ended early:\n${errors}`);
        errors += value;
      }
      const port = Number(/Listening on .*:(\d+)\n/.exec(errors)![1]);
      // Nobody reads stdout yet: after the pipe (64 KiB) and the output queue (1 MiB) fill, each
      // line is dropped and counted. 2500 lines of about 1 KiB are more than both hold.
      const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
      const line = new Uint8Array(1000).fill(0x61);
      const sent = 2500;
      try {
        for (let i = 0; i < sent; i++) {
          await socket.send(line, to);
          // Give the receiver a turn now and then, so most datagrams reach it.
          if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 1));
        }
      } finally {
        socket.close();
      }
      child.kill("SIGINT");
      // Now read: what was queued before the stop is written out before the exit.
      const printed = (await new Response(child.stdout).text()).split("\n").length - 1;
      for (let chunk = await stderr.read(); !chunk.done; chunk = await stderr.read()) {
        errors += chunk.value;
      }
      const status = await child.status;
      assertEquals(status.code, 0, errors);
      const summary =
        /received (\d+) datagrams, \d+ bytes; (\d+) dropped by the kernel; (\d+) lines? not printed/
          .exec(errors);
      if (summary === null) throw new Error(`no summary with lines not printed:\n${errors}`);
      const [received, dropped, notPrinted] = summary.slice(1).map(Number);
      assert(notPrinted > 0, `the stalled stdout cost no line:\n${errors}`);
      assertEquals(received + dropped, sent, "every datagram received or dropped by the kernel");
      assertEquals(printed + notPrinted, received, "every datagram received printed or counted");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await stderr.cancel().catch(() => {});
    }
  },
});
