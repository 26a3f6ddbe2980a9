import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { SCENARIOS } from "../lib/bench/scenarios.ts";
import { hasPeer, runScript } from "./_process.ts";
import { withEchoServer } from "./_echo_fixtures.ts";

const ECHO_BENCH = new URL("../scripts/echo_bench.ts", import.meta.url).pathname;

/** A port nothing listens on: bind one, read it back, close it. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("echo_bench.ts against a closed port says so in one stderr line naming it", async () => {
  const port = closedPort();
  for (const json of [[], ["--json"]]) {
    const { code, stderr } = await runScript(
      "echo_bench.ts",
      [...json, "--port", String(port), "--connections", "2"],
      { permissions: ["--allow-net=127.0.0.1"] },
    );
    assertEquals(code, 1);
    assertEquals(
      stderr,
      `echo_bench: 127.0.0.1:${port}: 2 of 2 connections failed (refused 2): ` +
        "Connection refused (is the server running?)\n",
    );
  }
});

Deno.test("echo_bench.ts names the address when the echo is wrong", async () => {
  // An echo that answers with the wrong bytes: the read/write fixture is right, so use a
  // listener that sends its own bytes.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await listener.accept();
    await conn.write(new Uint8Array(64).fill(0x2a));
    await conn.read(new Uint8Array(1024)).catch(() => null);
  })();
  const { code, stderr } = await runScript(
    "echo_bench.ts",
    ["--port", String(listener.addr.port), "--duration", "500ms"],
    { permissions: ["--allow-net=127.0.0.1"] },
  );
  await serving;
  assertEquals(code, 1);
  assertMatch(
    stderr,
    new RegExp(
      `^echo_bench: 127\\.0\\.0\\.1:${listener.addr.port}: the connection failed \\(mismatch 1\\): ` +
        "Echo differs at byte 0: got 0x2a, sent 0x[0-9a-f]{2}\\n$",
    ),
  );
});

/**
 * Runs echo_bench under a pseudo-terminal (`script`), as a person would, with `env` on top of a
 * minimal environment, and returns everything the terminal showed.
 */
async function onTerminal(args: string[], env: Record<string, string>): Promise<string> {
  const command = [
    Deno.execPath(),
    "run",
    "--allow-net=127.0.0.1",
    "--allow-env=TERM",
    ECHO_BENCH,
    ...args,
  ].map((word) => `'${word}'`).join(" ");
  const { code, stdout } = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH")!, HOME: Deno.env.get("HOME")!, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assertEquals(code, 0, text);
  return text;
}

Deno.test({
  name:
    "echo_bench.ts redraws its progress line on a terminal, plainly under NO_COLOR or TERM=dumb",
  ignore: !hasPeer("script"),
  async fn() {
    await withEchoServer(async (port) => {
      const args = ["--port", String(port), "--connections", "2", "--duration", "1300ms"];
      const redrawn = await onTerminal(args, { TERM: "xterm" });
      // deno-lint-ignore no-control-regex -- the escape sequence is what is under test
      assertMatch(redrawn, /\r\x1b\[Kpingpong measuring 1s: 2 open, \d+ msgs, [\d.]+ MB, 0 errors/);
      assertStringIncludes(redrawn, "\r\x1b[Kmode        pingpong");
      const plainEnvs: Record<string, string>[] = [{ TERM: "xterm", NO_COLOR: "1" }, {
        TERM: "dumb",
      }];
      for (const env of plainEnvs) {
        const plain = await onTerminal(args, env);
        assert(!plain.includes("\x1b"), `an escape sequence under ${JSON.stringify(env)}`);
        assertMatch(plain, /^pingpong measuring 1s: 2 open, \d+ msgs, [\d.]+ MB, 0 errors\r?$/m);
      }
    });
  },
});

Deno.test({
  name: "echo_bench.ts --json on a terminal prints only JSON lines",
  ignore: !hasPeer("script"),
  async fn() {
    await withEchoServer(async (port) => {
      const shown = await onTerminal(
        ["--json", "--port", String(port), "--connections", "2", "--duration", "1300ms"],
        { TERM: "xterm" },
      );
      assert(!shown.includes("\x1b"), JSON.stringify(shown));
      const lines = shown.split(/\r?\n/).filter((line) => line !== "");
      assertEquals(lines.map((line) => JSON.parse(line).event), [
        "measuring",
        "draining",
        "result",
      ]);
    });
  },
});

Deno.test("bench/run.ts --help lists every scenario and exits 0", async () => {
  const { code, stdout } = await runScript("bench/run.ts", ["--help"], { permissions: [] });
  assertEquals(code, 0);
  assertMatch(stdout, /^Usage: run\.ts \[options\]/);
  for (const scenario of SCENARIOS) assertStringIncludes(stdout, scenario.name);
  assertMatch(stdout, /^Run: {4}deno run /m);
  assertMatch(stdout, /^Try it: deno task bench/m);
  const bad = await runScript("bench/run.ts", ["--only", "flood"], { permissions: [] });
  assertEquals(bad.code, 2);
  assertEquals(
    bad.stderr,
    'bench: Cannot parse --only "flood": not a server, scenario or mode (see --help)\n',
  );
});

Deno.test("echo_bench.ts --help shows every default in one format", async () => {
  const { code, stdout } = await runScript("echo_bench.ts", ["--help"], { permissions: [] });
  assertEquals(code, 0);
  for (
    const flag of ["--mode", "--host", "--port", "--connections", "--duration", "--turn-budget"]
  ) {
    const at = stdout.indexOf(`  ${flag} `);
    assert(at !== -1, `${flag} is not in --help`);
    assertMatch(stdout.slice(at, stdout.indexOf("\n  -", at + 1)), /\[default: [^\]]+\]/);
  }
  assertMatch(stdout, /^Run: {4}deno run --allow-net=127\.0\.0\.1:10000 scripts\/echo_bench\.ts/m);
  assertMatch(stdout, /^Try it: /m);
});
