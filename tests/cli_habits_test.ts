/**
 * netcat and ping habits: hex dumps that match `xxd`, positional `HOST PORT`, short flags,
 * `--version`, "did you mean" for a mistyped flag, and no permission prompt on a terminal.
 * @module
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { hexDump, HexDumper } from "../lib/hexdump.ts";
import { hasPeer, runScript } from "./_process.ts";
import { xxd } from "./_xxd.ts";

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

const ROOT = new URL("../", import.meta.url);

/** Every program: a script in scripts/ that runs through runMain(). */
const PROGRAMS = (await Array.fromAsync(Deno.readDir(new URL("scripts/", ROOT))))
  .filter((entry) => entry.isFile && entry.name.endsWith(".ts"))
  .map((entry) => entry.name)
  .filter((name) =>
    Deno.readTextFileSync(new URL(`scripts/${name}`, ROOT)).includes("if (import.meta.main)")
  )
  .sort();

Deno.test("every program answers --version with the collection's version", async () => {
  const { VERSION } = await import("../lib/flags.ts");
  const wrong: string[] = [];
  for (const name of PROGRAMS) {
    const result = await runScript(name, ["--version"], { permissions: [] });
    if (result.code !== 0 || result.stdout !== `${VERSION}\n`) {
      wrong.push(`${name}: exit ${result.code}, ${JSON.stringify(result.stdout + result.stderr)}`);
    }
  }
  assertEquals(wrong, []);
});

Deno.test("tcp_client.ts and echo_client.ts suggest the closest flag for a mistyped one", async () => {
  const cases: [string, string[], string][] = [
    [
      "tcp_client.ts",
      ["--prot", "80"],
      `tcp_client: Unknown flag "--prot" (did you mean "--port"?)`,
    ],
    [
      "tcp_client.ts",
      ["--tiemout", "1s"],
      `tcp_client: Unknown flag "--tiemout" (did you mean "--timeout"?)`,
    ],
    [
      "echo_client.ts",
      ["--conections", "3"],
      `echo_client: Unknown flag "--conections" (did you mean "--connections"?)`,
    ],
  ];
  for (const [script, args, line] of cases) {
    const result = await runScript(script, args, { permissions: [] });
    assertEquals(result, { code: 2, signal: null, stdout: "", stderr: `${line} (see --help)\n` });
  }
});

Deno.test("tcp_client.ts and echo_client.ts document nc's short flags in --help, and nc's source flags say why not", async () => {
  const tcp = await runScript("tcp_client.ts", ["--help"], { permissions: [] });
  for (
    const flag of ["-w, --timeout", "-x, --hex", "-v, --verbose", "-z, --probe", "[HOST [PORT]]"]
  ) {
    assertStringIncludes(tcp.stdout, flag);
  }
  const echo = await runScript("echo_client.ts", ["-h"], { permissions: [] });
  for (const flag of ["-w, --timeout", "-x, --hex", "-q, --quiet", "[HOST [PORT]]"]) {
    assertStringIncludes(echo.stdout, flag);
  }
  const source = await runScript("tcp_client.ts", ["-p", "5000", "127.0.0.1", "80"], {
    permissions: [],
  });
  assertEquals(source.code, 2);
  assertStringIncludes(source.stderr, "nc's source address and port");
});

/** Runs `deno run ARGS` under a pseudo-terminal (util-linux `script`), killed after 10 s. */
async function runOnTerminal(args: string[]): Promise<{ code: number; output: string }> {
  const command = [Deno.execPath(), "run", ...args].map((arg) => `'${arg}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    cwd: ROOT,
    stdin: "piped", // the terminal's keyboard: nobody types, so a prompt would wait
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    const output = await child.output();
    return { code: output.code, output: new TextDecoder().decode(output.stdout) };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "a missing permission on a terminal is one line with the exact flag, never a prompt",
  ignore: !hasPeer("script"),
  async fn() {
    const ipv6 = await runOnTerminal([
      "--allow-net=127.0.0.1:12345",
      "scripts/tcp_client.ts",
      "::1",
      "9",
    ]);
    assertEquals(
      ipv6.output,
      "tcp_client: Cannot connect to [::1]:9 without permission: run again with --allow-net=[::1]:9\r\n",
    );
    assertEquals(ipv6.code, 1);

    const ca = await runOnTerminal([
      "--allow-net=127.0.0.1",
      "scripts/echo_client.ts",
      "--tls",
      "--ca",
      "/etc/hostname",
    ]);
    assertEquals(
      ca.output,
      `echo_client: Cannot read --ca "/etc/hostname" without permission: run again with --allow-read=/etc/hostname\r\n`,
    );
    assertEquals(ca.code, 1);
  },
});
