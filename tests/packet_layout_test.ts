/**
 * The layout of `lib/packet/` and `lib/ffi/` as drawn in the design: the codecs import only the
 * checksum and the shared fields module (as gopacket's `layers/tcpip.go`), never each other, and
 * no import circle forms anywhere in the two folders.
 */
import { assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url);
const FOLDERS = ["lib/packet/", "lib/ffi/"];
const CODECS = ["ethernet.ts", "ipv4.ts", "tcp.ts", "udp.ts", "icmp.ts"];
const SHARED = ["lib/packet/checksum.ts", "lib/packet/packet_fields.ts"];

/** Every module of the two folders and the modules of the same folders that it imports. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const folder of FOLDERS) {
    for await (const entry of Deno.readDir(new URL(folder, ROOT))) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const path = folder + entry.name;
      const text = await Deno.readTextFile(new URL(path, ROOT));
      const targets = [...text.matchAll(/^(?:import|export)\b[^;]*?from "(\.[^"]+)";/gms)]
        .map(([, spec]) => new URL(spec, new URL(path, ROOT)).pathname.slice(ROOT.pathname.length))
        .filter((target) => FOLDERS.some((other) => target.startsWith(other)));
      graph.set(path, targets);
    }
  }
  return graph;
}

Deno.test("lib/packet codecs import only checksum.ts and packet_fields.ts", async () => {
  const graph = await importGraph();
  for (const codec of CODECS) {
    const path = `lib/packet/${codec}`;
    const others = (graph.get(path) ?? []).filter((target) => !SHARED.includes(target));
    assertEquals(others, [], `${path} imports another codec`);
  }
  assertEquals(graph.get("lib/packet/checksum.ts"), [], "checksum.ts imports nothing");
  assertEquals(graph.get("lib/packet/packet_fields.ts"), ["lib/packet/checksum.ts"]);
});

Deno.test("lib/packet and lib/ffi have no import circle", async () => {
  const graph = await importGraph();
  const done = new Set<string>();
  const circles: string[] = [];
  const visit = (path: string, stack: string[]) => {
    if (stack.includes(path)) {
      circles.push([...stack.slice(stack.indexOf(path)), path].join(" -> "));
      return;
    }
    if (done.has(path)) return;
    for (const target of graph.get(path) ?? []) visit(target, [...stack, path]);
    done.add(path);
  };
  for (const path of graph.keys()) visit(path, []);
  assertEquals(circles, []);
});
