/**
 * What `deno task bench` measures: the load scenarios, the servers under test, and the choice
 * of both that `--only` makes.
 * @module
 */
import { UsageError } from "../errors.ts";
import type { BenchMode } from "./result.ts";

/** A server under test. */
export interface ServerSpec {
  /** Short name for `--only` and the table. */
  name: string;
  /** What it is, for the notes. */
  description: string;
  /** Program and arguments; `--port 0` is appended when it starts. */
  command: readonly string[];
}

/** One load scenario. */
export interface Scenario {
  /** Name for `--only`. */
  name: string;
  /** Label in the table. */
  label: string;
  /** The load. */
  mode: BenchMode;
  /** Connections the load client opens. */
  connections: number;
  /** Message (or write) size in bytes. */
  size: number;
}

/**
 * Every scenario, in the order of the table; `hold` has 5000 connections unless `--hold` says.
 *
 * @example
 * ```ts
 * import { SCENARIOS } from "./scenarios.ts";
 * if (SCENARIOS.find((s) => s.name === "pingpong-500")?.connections !== 500) throw new Error();
 * ```
 */
export const SCENARIOS: readonly Scenario[] = [
  { name: "pingpong-1", label: "pingpong 64 B x 1", mode: "pingpong", connections: 1, size: 64 },
  { name: "pingpong-50", label: "pingpong 64 B x 50", mode: "pingpong", connections: 50, size: 64 },
  {
    name: "pingpong-500",
    label: "pingpong 64 B x 500",
    mode: "pingpong",
    connections: 500,
    size: 64,
  },
  { name: "bulk-1", label: "bulk 64 KiB x 1", mode: "bulk", connections: 1, size: 65536 },
  { name: "bulk-8", label: "bulk 64 KiB x 8", mode: "bulk", connections: 8, size: 65536 },
  { name: "hold", label: "hold x 5000", mode: "hold", connections: 5000, size: 64 },
];

/** The modes `--only` may name to pick all their scenarios. */
const ONLY_MODES: readonly string[] = ["pingpong", "bulk"];

/**
 * Picks servers and scenarios by the `--only` names: a server's name, a scenario's name, or a
 * mode. No server named means every server; likewise for scenarios. `holdCount` sets the hold
 * scenario's connections. Throws a `UsageError` naming an unknown name.
 *
 * @example
 * ```ts
 * import { SCENARIOS, selectRuns } from "./scenarios.ts";
 * const servers = [{ name: "mux", description: "", command: [] }, { name: "rw", description: "", command: [] }];
 * const picked = selectRuns(["rw", "bulk"], servers, SCENARIOS, { knownServers: ["mux", "rw"] });
 * if (picked.servers.map((s) => s.name).join() !== "rw") throw new Error();
 * if (picked.scenarios.map((s) => s.name).join() !== "bulk-1,bulk-8") throw new Error();
 * ```
 */
export function selectRuns(
  only: readonly string[],
  servers: readonly ServerSpec[],
  scenarios: readonly Scenario[],
  options: { knownServers: readonly string[]; holdCount?: number },
): { servers: ServerSpec[]; scenarios: Scenario[] } {
  const known = options.knownServers;
  for (const name of only) {
    if (![...known, ...ONLY_MODES, ...scenarios.map((s) => s.name)].includes(name)) {
      throw new UsageError(`Cannot parse --only "${name}": not a server, scenario or mode`);
    }
  }
  const onlyServers = only.filter((name) => known.includes(name));
  const onlyScenarios = only.filter((name) => !known.includes(name));
  const holdCount = options.holdCount ?? 5000;
  return {
    servers: servers.filter((s) => onlyServers.length === 0 || onlyServers.includes(s.name)),
    scenarios: scenarios
      .filter((s) =>
        onlyScenarios.length === 0 || onlyScenarios.includes(s.mode) ||
        onlyScenarios.includes(s.name)
      )
      .map((s) =>
        s.mode === "hold" ? { ...s, label: `hold x ${holdCount}`, connections: holdCount } : s
      ),
  };
}
