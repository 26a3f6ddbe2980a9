/**
 * The house as drawn (README, "Where things live"), checked: no module of `lib/` imports a
 * script, a script imports only `lib/` (never another script or a script's folder), and no
 * import circle exists anywhere. `deno task check` runs it; so does `tests/layout_test.ts`.
 *
 *   deno run --allow-read tests/_layout.ts
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** One module's relative imports, as paths from the repository root. */
export type ImportGraph = Map<string, string[]>;

// Static imports and re-exports (the clause never holds a quote, a semicolon or a slash, so a
// match cannot run on into a comment's example), and dynamic imports of a literal path.
const IMPORT =
  /(?:^|\n)[ \t]*(?:import|export)\s[^;"'/]*?\sfrom\s+["']([^"']+)["']|(?:^|[^*\s]\s*)import\(\s*["']([^"']+)["']\s*\)/g;

/** Reads every `.ts` file under `dirs` and the relative imports each one makes. */
export async function readImportGraph(
  dirs: readonly string[] = ["lib", "scripts", "tests"],
): Promise<ImportGraph> {
  const graph: ImportGraph = new Map();
  for (const dir of dirs) {
    for await (const path of walk(dir)) {
      const text = await Deno.readTextFile(new URL(path, ROOT));
      const imports: string[] = [];
      for (const match of text.matchAll(IMPORT)) {
        const specifier = match[1] ?? match[2];
        if (specifier.startsWith(".")) imports.push(resolve(path, specifier));
      }
      graph.set(path, imports);
    }
  }
  return graph;
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(new URL(`${dir}/`, ROOT))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile && /\.(ts|mts)$/.test(entry.name)) yield path;
  }
}

function resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/**
 * What breaks the layout, one line each; empty when the house is as drawn.
 *
 * @example
 * ```ts
 * import { layoutProblems } from "./_layout.ts";
 * const graph = new Map([["lib/a.ts", ["scripts/b.ts"]], ["scripts/b.ts", ["lib/a.ts"]]]);
 * const problems = layoutProblems(graph);
 * if (problems.length !== 2) throw new Error(problems.join("\n"));
 * ```
 */
export function layoutProblems(graph: ImportGraph): string[] {
  const problems: string[] = [];
  for (const [module, imports] of graph) {
    for (const target of imports) {
      if (module.startsWith("lib/") && target.startsWith("scripts/")) {
        problems.push(`${module} imports the script ${target}: lib/ must not depend on a program`);
      }
      if (module.startsWith("scripts/") && !target.startsWith("lib/")) {
        problems.push(`${module} imports ${target}: a script imports only from lib/`);
      }
    }
  }
  for (const cycle of findCycles(graph)) problems.push(`import circle: ${cycle.join(" -> ")}`);
  return problems;
}

/**
 * Every strongly connected group of modules that import each other (Tarjan), each as a path
 * that ends where it starts; a module that imports itself is one too.
 *
 * @example
 * ```ts
 * import { findCycles } from "./_layout.ts";
 * const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["a.ts"]], ["c.ts", ["a.ts"]]]);
 * const cycles = findCycles(graph);
 * if (JSON.stringify(cycles) !== JSON.stringify([["a.ts", "b.ts", "a.ts"]])) {
 *   throw new Error(JSON.stringify(cycles));
 * }
 * ```
 */
export function findCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (module: string) => {
    index.set(module, next);
    low.set(module, next++);
    stack.push(module);
    onStack.add(module);
    for (const target of graph.get(module) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(module, Math.min(low.get(module)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(module, Math.min(low.get(module)!, index.get(target)!));
      }
    }
    if (low.get(module) !== index.get(module)) return;
    const group: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      group.push(member);
    } while (member !== module);
    const selfImport = graph.get(module)?.includes(module);
    if (group.length > 1 || selfImport) cycles.push([...group.reverse(), group[0]]);
  };
  for (const module of graph.keys()) if (!index.has(module)) visit(module);
  return cycles;
}

if (import.meta.main) {
  const problems = layoutProblems(await readImportGraph());
  for (const problem of problems) console.error(`layout: ${problem}`);
  Deno.exit(problems.length === 0 ? 0 : 1);
}
