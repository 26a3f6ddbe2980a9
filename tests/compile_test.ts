import { assert, assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url).pathname;
const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));

/** `deno compile` fetches a runtime (denort); without network access that download fails. */
const DOWNLOAD_FAILED =
  /denort|dns error|failed to lookup|error sending request|Connection refused/;

Deno.test("deno task compile builds every script with the permissions of its header", async () => {
  const builds = [...config.tasks.compile.matchAll(
    /deno compile (?<permissions>.+?) --output dist\/(?<binary>\w+) (?<script>scripts\/\w+\.ts)/g,
  )];
  assert(builds.length >= 7, "fewer compile steps than scripts");
  for (const build of builds) {
    const { permissions, binary, script } = build.groups!;
    const header = await Deno.readTextFile(`${ROOT}${script}`);
    assertEquals(`${binary}.ts`, script.slice("scripts/".length));
    assert(
      header.includes(`deno run ${permissions} ${script}`),
      `${script}: its header does not say "deno run ${permissions} ${script}"`,
    );
  }
});

Deno.test("a compiled tcp_server greets a client, or the test says why it cannot compile", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const binary = `${dir}/tcp_server`;
    const compile = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "--allow-net=127.0.0.1", "--output", binary, "scripts/tcp_server.ts"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(compile.stderr);
    if (!compile.success && DOWNLOAD_FAILED.test(stderr)) {
      console.warn(
        "skipping the compiled-binary check: deno compile could not download its runtime " +
          "(denort) from this machine; set DENORT_BIN to a local denort to run it",
      );
      return;
    }
    assert(compile.success, stderr);
    const server = new Deno.Command(binary, {
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
});
