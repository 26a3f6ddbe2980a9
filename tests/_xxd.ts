/** The reference for every hex dump test: what `xxd` itself prints. */
import { assertEquals } from "@std/assert";
import { runPeer } from "./_process.ts";

/** What `xxd` prints for `bytes` (`-o` shifts the offsets); callers skip when it is missing. */
export async function xxd(bytes: Uint8Array, offset = 0): Promise<string> {
  const { code, stdout, stderr } = await runPeer("xxd", ["-o", `${offset}`], { stdin: bytes });
  assertEquals(code, 0, stderr);
  return new TextDecoder().decode(stdout);
}
