/**
 * netcat and ping habits: hex dumps that match `xxd`, positional `HOST PORT`, short flags,
 * `--version`, "did you mean" for a mistyped flag, and no permission prompt on a terminal.
 * @module
 */
import { assertEquals } from "@std/assert";
import { hexDump, HexDumper } from "../lib/hexdump.ts";
import { hasPeer, runPeer } from "./_process.ts";

/** What `xxd` prints for `bytes` (`-o` shifts the offsets). */
async function xxd(bytes: Uint8Array, offset = 0): Promise<string> {
  const { code, stdout, stderr } = await runPeer("xxd", ["-o", `${offset}`], { stdin: bytes });
  assertEquals(code, 0, stderr);
  return new TextDecoder().decode(stdout);
}

/** Every byte value, then a few lines of random bytes: what a peer may send. */
function sampleBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < Math.min(length, 256); i++) bytes[i] = i;
  if (length > 256) crypto.getRandomValues(bytes.subarray(256));
  return bytes;
}

Deno.test({
  name: "hexDump() prints what xxd prints for the same bytes",
  ignore: !hasPeer("xxd"),
  async fn() {
    for (const length of [0, 1, 2, 15, 16, 17, 31, 33, 256, 1000]) {
      const bytes = sampleBytes(length);
      assertEquals(hexDump(bytes), await xxd(bytes), `${length} bytes`);
    }
    const bytes = sampleBytes(40);
    assertEquals(hexDump(bytes, { offset: 0x1_0000_0005 }), await xxd(bytes, 0x1_0000_0005));
  },
});

Deno.test({
  name: "HexDumper dumps a stream cut anywhere as xxd dumps it whole",
  ignore: !hasPeer("xxd"),
  async fn() {
    const bytes = sampleBytes(1000);
    const expected = await xxd(bytes);
    for (const cut of [1, 3, 15, 16, 17, 100, 999]) {
      const dumper = new HexDumper();
      let dump = "";
      for (let at = 0; at < bytes.length; at += cut) {
        dump += dumper.push(bytes.subarray(at, at + cut));
      }
      dump += dumper.flush();
      assertEquals(dump, expected, `chunks of ${cut}`);
      assertEquals(dumper.offset, bytes.length);
    }
  },
});

Deno.test({
  name: "HexDumper.flush() mid-stream goes on at the next offset, as xxd -o does",
  ignore: !hasPeer("xxd"),
  async fn() {
    const bytes = sampleBytes(50);
    const dumper = new HexDumper();
    const first = dumper.push(bytes.subarray(0, 20)) + dumper.flush();
    assertEquals(dumper.pending, 0);
    const rest = dumper.push(bytes.subarray(20)) + dumper.flush();
    assertEquals(first, await xxd(bytes.subarray(0, 20)));
    assertEquals(rest, await xxd(bytes.subarray(20), 20));
  },
});
