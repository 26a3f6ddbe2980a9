/**
 * The layout of `lib/packet/` and `lib/ffi/` as drawn in the design: the codecs import only the
 * checksum and the shared fields module (as gopacket's `layers/tcpip.go`), never each other, and
 * no import circle forms anywhere in the two folders.
 */
import { assert, assertEquals } from "@std/assert";
import { findCycles, type ImportGraph, readImportGraph } from "./_layout.ts";

const FOLDERS = ["lib/packet", "lib/ffi"];
const CODECS = ["ethernet.ts", "ipv4.ts", "tcp.ts", "udp.ts", "icmp.ts"];
const SHARED = ["lib/packet/checksum.ts", "lib/packet/packet_fields.ts"];

/** Every module of the two folders and the modules of the same folders that it imports. */
async function importGraph(): Promise<ImportGraph> {
  const inFolders = (path: string) => FOLDERS.some((folder) => path.startsWith(`${folder}/`));
  const graph = await readImportGraph(FOLDERS);
  return new Map([...graph].map(([path, targets]) => [path, targets.filter(inFolders)]));
}

Deno.test("lib/packet codecs import only checksum.ts and packet_fields.ts", async () => {
  const graph = await importGraph();
  for (const path of SHARED) assert(graph.has(path), `${path} is missing`);
  for (const codec of CODECS) {
    const path = `lib/packet/${codec}`;
    assert(graph.has(path), `${path} is missing`);
    const others = graph.get(path)!.filter((target) => !SHARED.includes(target));
    assertEquals(others, [], `${path} imports another codec`);
  }
  assertEquals(graph.get("lib/packet/checksum.ts"), [], "checksum.ts imports nothing");
  assertEquals(graph.get("lib/packet/packet_fields.ts"), ["lib/packet/checksum.ts"]);
});

Deno.test("lib/packet and lib/ffi have no import circle", async () => {
  const graph = await importGraph();
  for (const folder of FOLDERS) {
    assert([...graph.keys()].some((path) => path.startsWith(`${folder}/`)), `${folder} is empty`);
  }
  const circles = findCycles(graph).map((cycle) => cycle.join(" -> "));
  assertEquals(circles, []);
});
