/**
 * Installs every program of the collection as a command (`tcp-server`, `echo-client`, …) with
 * `deno install -g`, or builds each as a binary with `deno compile --compile`. The programs and
 * their permissions are the `deno task` entries of `deno.json` that run one script, so a
 * command, a binary and a task always allow the same thing; each gets the project's config
 * (import map, `"unstable": ["net"]`).
 *
 * Run:    deno task install --root ~/.local    (commands in ~/.local/bin)
 *         deno task compile                     (binaries in dist/; needs denort, see --help)
 *
 * @module
 */
import { printError, printLine, runMain } from "../lib/cli.ts";
import { parseFlags } from "../lib/flags.ts";
import { requirePermission, requireRead } from "../lib/permissions.ts";

/** One program as its task runs it. */
export interface Program {
  /** The task and command name, e.g. `tcp-server`. */
  name: string;
  /** The script, relative to the project root, e.g. `scripts/tcp_server.ts`. */
  script: string;
  /** The `deno run` permission flags of its task. */
  permissions: string[];
}

const TASK = /^deno run ((?:--[a-z-]+(?:=\S+)? )*)(scripts\/[a-z0-9_]+\.ts)$/;
// The collection's own tools have tasks too, but are not commands to install.
const TOOLS = new Set(["scripts/install.ts", "scripts/make_certs.ts"]);

/**
 * The programs among a `deno.json`'s tasks: those that are `deno run FLAGS scripts/NAME.ts`
 * and nothing else (the test, check and bench tasks are not programs, nor are this installer
 * and the certificate maker).
 *
 * @example
 * ```ts
 * import { programsFromTasks } from "./install.ts";
 * const [program] = programsFromTasks({
 *   "tcp-client": "deno run --no-prompt --allow-net=127.0.0.1,[::1] scripts/tcp_client.ts",
 *   "test": "deno task check && deno test",
 * });
 * if (program.script !== "scripts/tcp_client.ts" || program.permissions.length !== 2) {
 *   throw new Error(JSON.stringify(program));
 * }
 * ```
 */
export function programsFromTasks(tasks: Record<string, string | { command: string }>): Program[] {
  const programs: Program[] = [];
  for (const [name, task] of Object.entries(tasks)) {
    const match = TASK.exec(typeof task === "string" ? task : task.command);
    if (match && !TOOLS.has(match[2])) {
      programs.push({ name, script: match[2], permissions: match[1].trim().split(" ") });
    }
  }
  return programs;
}

/**
 * A task's permissions with its relative paths (`--allow-read=certs,lib`) made absolute within
 * the project, as a task sees them: a command or a binary runs from anywhere.
 *
 * @example
 * ```ts
 * import { projectPermissions } from "./install.ts";
 * const flags = projectPermissions(["--allow-read=certs,/etc/ssl", "--allow-run=ss"], new URL("file:///p/"));
 * if (flags.join(" ") !== "--allow-read=/p/certs,/etc/ssl --allow-run=ss") throw new Error(flags.join(" "));
 * ```
 */
export function projectPermissions(permissions: readonly string[], project: URL): string[] {
  return permissions.map((flag) => {
    const match = /^(--allow-(?:read|write))=(.+)$/.exec(flag);
    if (!match) return flag;
    const paths = match[2].split(",").map((path) =>
      path.startsWith("/") ? path : new URL(path, project).pathname.replace(/\/$/, "")
    );
    return `${match[1]}=${paths.join(",")}`;
  });
}

/** The `deno install` arguments that install `program` as a command. */
export function installArgs(program: Program, root: string | undefined, project: URL): string[] {
  return [
    "install",
    "--global",
    "--force",
    ...(root === undefined ? [] : ["--root", root]),
    "--name",
    program.name,
    "--config",
    new URL("deno.json", project).pathname,
    ...projectPermissions(program.permissions, project),
    new URL(program.script, project).pathname,
  ];
}

/** The `deno compile` arguments that build `program` as `DIR/NAME`. */
export function compileArgs(program: Program, dir: string, project: URL): string[] {
  return [
    "compile",
    "--config",
    new URL("deno.json", project).pathname,
    ...projectPermissions(program.permissions, project).filter((flag) => flag !== "--no-prompt"),
    "--output",
    `${dir}/${program.name}`,
    new URL(program.script, project).pathname,
  ];
}

/** What `deno compile` prints when it cannot get its runtime (denort) from the network. */
const DOWNLOAD_FAILED =
  /dl\.deno\.land|dns error|failed to lookup|error sending request|Connection refused/;

/**
 * The one line that says why `deno compile` (or `deno install`) failed: the denort runtime it needs could not be
 * downloaded or was not where `DENORT_BIN` points; otherwise Deno's own first error line.
 *
 * @example
 * ```ts
 * import { explainDenoFailure } from "./install.ts";
 * const line = explainDenoFailure("error: ... dl.deno.land/release/v2.9.6/denort ... dns error");
 * if (!line.includes("DENORT_BIN")) throw new Error(line);
 * ```
 */
export function explainDenoFailure(text: string): string {
  const missing = /Could not find denort at '([^']*)'/.exec(text);
  if (missing) return `DENORT_BIN="${missing[1]}" is not a denort binary (it does not exist)`;
  if (DOWNLOAD_FAILED.test(text)) {
    return `deno compile needs the denort runtime of Deno ${Deno.version.deno}, and could not ` +
      "download it (no network access to dl.deno.land?): set DENORT_BIN to a local denort of the " +
      "same version";
  }
  const error = text.split("\n").find((line) => /^error: /.test(line));
  return (error ?? text.trim().split("\n")[0] ?? "deno failed").replace(/^error: /, "");
}

const USAGE = `Usage: install.ts [--root DIR] [--only NAME,...]
       install.ts --compile [--output DIR] [--only NAME,...]

Installs every program of deno-sockets as a command (tcp-server, tcp-client, udp-send, ...)
with "deno install -g", with the permissions of its deno task and the project's deno.json; or,
with --compile, builds each as a standalone binary.

Options:
  --root DIR       install into DIR/bin   [default: deno's, $DENO_INSTALL_ROOT or ~/.deno]
  --compile        build binaries with deno compile instead of installing commands
  --output DIR     where --compile puts the binaries                 [default: dist]
  --only NAMES     only these programs (comma-separated task names)
  -h, --help       show this help
  --version        print the version

deno compile needs the denort runtime of the same Deno version: it downloads it from
dl.deno.land, or takes a local copy from DENORT_BIN=/path/to/denort.

Run:    deno run --allow-read=deno.json --allow-run=deno scripts/install.ts --root DIR`;

async function main(args: string[]): Promise<number | void> {
  const flags = parseFlags(args, {
    string: ["root", "output", "only"],
    boolean: ["compile"],
    usage: USAGE,
  });
  const project = new URL("../", import.meta.url);
  requireRead(new URL("deno.json", project).pathname, "read the tasks");
  requirePermission({ name: "run", command: "deno" }, "--allow-run=deno", "run deno");
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", project)));
  let programs = programsFromTasks(config.tasks ?? {});
  if (flags.only !== undefined) {
    const wanted = new Set(flags.only.split(","));
    const unknown = [...wanted].filter((name) => !programs.some((p) => p.name === name));
    if (unknown.length > 0) throw new Error(`No program named "${unknown[0]}" among the tasks`);
    programs = programs.filter((program) => wanted.has(program.name));
  }
  for (const program of programs) {
    const args = flags.compile
      ? compileArgs(program, flags.output ?? "dist", project)
      : installArgs(program, flags.root, project);
    const { success, stderr } = await new Deno.Command("deno", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!success) {
      const why = explainDenoFailure(new TextDecoder().decode(stderr));
      printError(`${flags.compile ? "compile" : "install"}: ${program.name}: ${why}`);
      return 1;
    }
    printLine(`${flags.compile ? "compiled" : "installed"} ${program.name}`);
  }
  if (!flags.compile) {
    const bin = flags.root === undefined ? "deno's install root" : `${flags.root}/bin`;
    printError(`${programs.length} commands in ${bin}; add it to PATH to run them by name`);
  }
}

if (import.meta.main) runMain("install", () => main(Deno.args));
