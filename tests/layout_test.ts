import { assertEquals } from "@std/assert";
import { layoutProblems, readImportGraph } from "./_layout.ts";

Deno.test("the tree keeps its layout: lib/ imports no script, scripts import only lib/, no import circle", async () => {
  assertEquals(layoutProblems(await readImportGraph()), []);
});

Deno.test("layoutProblems() finds a script imported by lib/, a script importing a script, and a circle", () => {
  const graph = new Map([
    ["lib/a.ts", ["lib/b.ts", "scripts/x.ts"]],
    ["lib/b.ts", ["lib/a.ts"]],
    ["scripts/x.ts", ["scripts/y.ts"]],
    ["scripts/y.ts", []],
  ]);
  assertEquals(layoutProblems(graph), [
    "lib/a.ts imports the script scripts/x.ts: lib/ must not depend on a program",
    "scripts/x.ts imports scripts/y.ts: a script imports only from lib/",
    "import circle: lib/a.ts -> lib/b.ts -> lib/a.ts",
  ]);
});
