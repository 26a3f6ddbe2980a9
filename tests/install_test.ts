/**
 * Installable without the clone, and runnable from tasks with any loopback address: deno.json's
 * package fields, `deno publish --dry-run`, `deno task install --root DIR` (the installed
 * commands run against real servers), and the tasks' permissions.
 * @module
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { VERSION } from "../lib/flags.ts";
import { programsFromTasks } from "../scripts/install.ts";

const ROOT = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
const decoder = new TextDecoder();

/** Runs `deno ARGS` in the project and returns what it printed. */
async function deno(args: string[], options: { cwd?: string } = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd ?? ROOT.pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("deno.json names the package, and its version is lib/flags.ts VERSION", async () => {
  assertEquals(config.name, "@deno-sockets/deno-sockets");
  assertEquals(config.version, VERSION);
  assertEquals(config.license, "MIT");
  for (const [name, path] of Object.entries<string>(config.exports)) {
    const info = await Deno.stat(new URL(path, ROOT));
    assert(info.isFile, `export ${name}: ${path} is not a file`);
  }
  // Every program with a task is an export under the same name, for `jsr:@scope/name/NAME`.
  for (const program of programsFromTasks(config.tasks)) {
    assertEquals(config.exports[`./${program.name}`], `./${program.script}`, program.name);
  }
});

Deno.test("deno publish --dry-run passes with no slow types and ships no tests, CI or bench fixtures", async () => {
  // The dry run needs no network: npm packages come from the cache, JSR is not asked.
  const result = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assertEquals(result.code, 0, result.stderr);
  const output = result.stdout + result.stderr;
  assertStringIncludes(output, "Dry run complete");
  // A slow type fails the run; a warning (an excluded module imported, ...) is a line of its own.
  assert(!/^(warning|error)/im.test(output), output);
  const files = [...output.matchAll(/file:\/\/(\S+) \(/g)]
    .map((match) => match[1].slice(ROOT.pathname.length));
  assert(files.includes("scripts/tcp_client.ts") && files.includes("lib/mux/mod.ts"));
  const shipped = files.filter((file) => /^(tests|\.ci|scripts\/bench|dist)\//.test(file));
  assertEquals(shipped, []);
});

Deno.test("deno task install --root DIR installs every program, and the installed udp-send and tcp-client work on any loopback port", async () => {
  const root = await Deno.makeTempDir({ prefix: "deno-sockets-install-" });
  try {
    const install = await deno(["task", "install", "--root", root]);
    assertEquals(install.code, 0, install.stderr);
    const installed = (await Array.fromAsync(Deno.readDir(`${root}/bin`)))
      .filter((entry) => entry.isFile).map((entry) => entry.name).sort();
    const expected = programsFromTasks(config.tasks).map((program) => program.name).sort();
    assertEquals(installed, expected);

    // udp-send to a receiver on a port the system picked.
    const receiver = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const port = (receiver.addr as Deno.NetAddr).port;
      const sent = await run(`${root}/bin/udp-send`, ["127.0.0.1", `${port}`, "--message", "sent"]);
      assertEquals(sent.code, 0, sent.stderr);
      const [datagram] = await receiver.receive();
      assertEquals(decoder.decode(datagram), "sent");
    } finally {
      receiver.close();
    }

    // tcp-client to a server on IPv6 loopback, run from another directory.
    using listener = Deno.listen({ hostname: "::1", port: 0 });
    const greeted = listener.accept().then(async (conn) => {
      await conn.write(new TextEncoder().encode("Thank you for connecting"));
      conn.close();
    });
    const client = await run(`${root}/bin/tcp-client`, ["::1", `${listener.addr.port}`]);
    await greeted;
    assertEquals(client, { code: 0, stdout: "Thank you for connecting\n", stderr: "" });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function run(command: string, args: string[]) {
  const output = await new Deno.Command(command, {
    args,
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("every network program's task reaches 127.0.0.1, [::1] and localhost on any port, without a prompt", () => {
  for (const program of programsFromTasks(config.tasks)) {
    assert(program.permissions.includes("--no-prompt"), `${program.name}: no --no-prompt`);
    if (program.name.startsWith("raw-")) continue;
    assert(
      program.permissions.includes("--allow-net=127.0.0.1,[::1],localhost"),
      `${program.name}: ${program.permissions.join(" ")}`,
    );
  }
});

Deno.test("deno task tcp-client takes an IPv6 address and any port; a Unix path gets the exact flag in one line", async () => {
  using listener = Deno.listen({ hostname: "::1", port: 0 });
  const greeted = listener.accept().then(async (conn) => {
    await conn.write(new TextEncoder().encode("hello over [::1]"));
    conn.close();
  });
  const task = await deno([
    "task",
    "-q",
    "tcp-client",
    "--host",
    "::1",
    "--port",
    `${listener.addr.port}`,
  ]);
  await greeted;
  assertEquals(task.code, 0, task.stderr);
  assertEquals(task.stdout, "hello over [::1]\n");

  const unix = await deno(["task", "-q", "tcp-client", "--unix", "/tmp/deno-sockets-absent.sock"]);
  assertEquals(unix.code, 1);
  assertMatch(
    unix.stderr,
    /^tcp_client: Cannot connect to unix:\/tmp\/deno-sockets-absent\.sock without permission: run again with --allow-net=unix:\/tmp\/deno-sockets-absent\.sock --allow-read=\/tmp\/deno-sockets-absent\.sock --allow-write=\/tmp\/deno-sockets-absent\.sock\n$/,
  );
});
