/**
 * `deno task compile`: every program of the tasks becomes a binary with its task's permissions;
 * without the denort runtime it needs, it fails in one line that says so; and a compiled
 * tcp_server greets a client where denort can be had (skipped, not passed, where it cannot).
 * @module
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { compileArgs, programsFromTasks } from "../scripts/install.ts";

const ROOT = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
const programs = programsFromTasks(config.tasks);

/**
 * Whether `deno compile` can get its runtime here: a local one named by DENORT_BIN, or the
 * download host resolves (machines without network access cannot download denort).
 */
async function denortReason(): Promise<string | undefined> {
  const local = Deno.env.get("DENORT_BIN");
  if (local) return undefined;
  try {
    await Deno.resolveDns("dl.deno.land", "A", { signal: AbortSignal.timeout(3000) });
    return undefined;
  } catch {
    return "deno compile cannot download its runtime (denort) from dl.deno.land here, and " +
      "DENORT_BIN is not set";
  }
}
const noDenort = await denortReason();
if (noDenort) console.warn(`skipping the compiled-binary test: ${noDenort}`);

/** Runs scripts/install.ts as `deno task compile` does, with `args` added. */
async function runCompileTask(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...config.tasks.compile.replace(/^deno run /, "").split(" ").slice(0, -2),
      "scripts/install.ts",
      "--compile",
      ...args,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("deno task compile builds every program with its task's permissions, which cover its header's", async () => {
  assertEquals(
    config.tasks.compile,
    "deno run --no-prompt --allow-read=deno.json --allow-run=deno scripts/install.ts --compile",
  );
  assert(programs.length >= 11, `only ${programs.length} programs among the tasks`);
  for (const program of programs) {
    const args = compileArgs(program, "dist", ROOT);
    assertEquals(args.slice(-3), [
      "--output",
      `dist/${program.name}`,
      new URL(program.script, ROOT).pathname,
    ]);
    const header = await Deno.readTextFile(new URL(program.script, ROOT));
    const run = new RegExp(`deno run ((?:--\\S+ )*)${program.script}`).exec(header);
    if (!run) {
      throw new Error(`${program.script}: no "deno run ... ${program.script}" in its header`);
    }
    for (const flag of run[1].trim().split(" ")) {
      const [name, value] = flag.split("=");
      const granted = program.permissions.find((f) => f.split("=")[0] === name);
      if (!granted) throw new Error(`${program.name}: its task lacks ${name} (header: ${flag})`);
      if (name !== "--allow-net" || value === undefined) continue;
      const hosts = granted.split("=")[1].split(",");
      for (const address of value.split(",")) {
        const host = address.replace(/:\d+$/, "");
        assert(hosts.includes(host), `${program.name}: its task does not allow ${address}`);
      }
    }
  }
});

Deno.test("deno task compile fails in one line when DENORT_BIN names no file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await runCompileTask(["--only", "tcp-client", "--output", dir], {
      DENORT_BIN: `${dir}/no-denort`,
    });
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      `compile: tcp-client: DENORT_BIN="${dir}/no-denort" is not a denort binary (it does not exist)\n`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno task compile without denort names what it needs in one line",
  ignore: noDenort === undefined,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const result = await runCompileTask(["--only", "tcp-client", "--output", dir]);
      assertEquals(result.code, 1);
      assertMatch(
        result.stderr,
        /^compile: tcp-client: deno compile needs the denort runtime of Deno [\d.]+, and could not download it \(.*\): set DENORT_BIN to a local denort of the same version\n$/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a compiled tcp_server greets a client",
  ignore: noDenort !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const compiled = await runCompileTask(["--only", "tcp-server", "--output", dir]);
      assertEquals(compiled.code, 0, compiled.stderr);
      const server = new Deno.Command(`${dir}/tcp-server`, {
        args: ["--port", "0", "--count", "1"],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const lines = server.stderr.pipeThrough(new TextDecoderStream()).values();
      const listening = (await lines.next()).value ?? "";
      const port = Number(/:(\d+)\n?$/.exec(listening)?.[1]);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      assertEquals(await new Response(conn.readable).text(), "Thank you for connecting");
      for await (const _ of lines) { /* drain stderr until the server exits */ }
      assertEquals((await server.status).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
