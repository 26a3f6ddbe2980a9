/**
 * The benchmark's table for people: a column per server, a row per figure of each scenario
 * (the median over sweeps), then columns with the ratios to the read/write loop and of the
 * multiplexer to `pipeTo`.
 * @module
 */
import { medianOfSorted } from "./fairness.ts";
import type { Measurement } from "./measure.ts";
import type { BenchResult } from "./result.ts";
import type { Scenario } from "./scenarios.ts";

/** One row of the table: a label and a figure taken from each measurement. */
interface Row {
  metric: string;
  value: (m: Measurement) => number | null;
}

function rowsFor(scenario: Scenario): Row[] {
  const b = (f: (r: BenchResult) => number | null | undefined) => (m: Measurement) =>
    m.bench ? f(m.bench) ?? null : null;
  const errors: Row = { metric: "errors", value: b((r) => r.errors.total) };
  const fairness: Row[] = [
    { metric: "slowest/median", value: b((r) => r.fairness?.slowestToMedian) },
    { metric: "Jain index", value: b((r) => r.fairness?.jain) },
  ];
  if (scenario.mode === "hold") {
    return [
      { metric: "held", value: b((r) => r.connectionsHeld) },
      { metric: "connect s", value: b((r) => r.connectMs / 1000) },
      { metric: "RSS idle MiB", value: (m) => mib(m.rssStartKiB) },
      { metric: "RSS held MiB", value: (m) => mib(m.rssHeldKiB) },
      { metric: "KiB/conn", value: (m) => m.perConnectionKiB },
      { metric: "p99 ms", value: b((r) => r.latencyMs?.p99) },
      errors,
    ];
  }
  const rows: Row[] = [
    { metric: "msg/s", value: b((r) => r.messagesPerSecond) },
    { metric: "MB/s", value: b((r) => r.megabytesPerSecond) },
  ];
  if (scenario.mode === "bulk") rows.reverse();
  else {
    for (const p of ["p50", "p90", "p99", "p999", "max"] as const) {
      rows.push({ metric: `${p === "p999" ? "p99.9" : p} ms`, value: b((r) => r.latencyMs?.[p]) });
    }
  }
  rows.push(
    ...fairness,
    { metric: "server CPU %", value: (m) => m.serverCpuPercent },
    { metric: "client CPU %", value: (m) => m.clientCpuPercent },
    { metric: "server CPU us/msg", value: (m) => m.serverCpuUsPerMessage },
    { metric: "RSS end MiB", value: (m) => mib(m.rssEndKiB) },
    errors,
  );
  return rows;
}

function mib(kib: number | null): number | null {
  return kib === null ? null : kib / 1024;
}

function figure(value: number | null, metric: string): string {
  if (value === null || !Number.isFinite(value)) return "-";
  if (metric === "errors" || metric === "held") return String(value);
  if (metric === "Jain index") return value.toFixed(3);
  if (value >= 100) return Math.round(value).toString();
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(metric.endsWith("ms") ? 3 : 2);
}

/**
 * The median of the known values (the mean of the middle two for an even count), or `null`.
 *
 * @example
 * ```ts
 * import { median } from "./table.ts";
 * if (median([3, null, 1, 2]) !== 2 || median([null]) !== null) throw new Error();
 * ```
 */
export function median(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  return known.length === 0 ? null : medianOfSorted(known);
}

/**
 * Renders the table (medians over sweeps): a column per server, then ratios to the read/write
 * loop (`rw`) and of `mux` to `pipeto`, each line trimmed.
 *
 * @example A table with no measurement yet
 * ```ts
 * import { formatTable } from "./table.ts";
 * const lines = formatTable(
 *   ["mux", "rw"],
 *   [{ name: "pingpong-1", label: "pingpong 64 B x 1", mode: "pingpong", connections: 1, size: 64 }],
 *   [],
 * );
 * if (!/^scenario +metric +mux +rw +mux\/rw$/.test(lines[0])) throw new Error(lines[0]);
 * if (!/^pingpong 64 B x 1 +msg\/s +- +-$/.test(lines[1])) throw new Error(lines[1]);
 * ```
 */
export function formatTable(
  servers: readonly string[],
  scenarios: readonly Scenario[],
  measurements: readonly Measurement[],
): string[] {
  const ratios: [string, string][] = servers
    .filter((name) => name !== "rw" && servers.includes("rw"))
    .map((name) => [name, "rw"]);
  if (servers.includes("mux") && servers.includes("pipeto")) ratios.push(["mux", "pipeto"]);
  const header = ["scenario", "metric", ...servers, ...ratios.map(([a, b]) => `${a}/${b}`)];
  const table = [header];
  for (const scenario of scenarios) {
    let first = true;
    for (const row of rowsFor(scenario)) {
      const values = new Map(servers.map((s) => {
        const runs = measurements.filter((m) => m.server === s && m.scenario === scenario.name);
        return [s, median(runs.map(row.value))];
      }));
      table.push([
        first ? scenario.label : "",
        row.metric,
        ...servers.map((s) => figure(values.get(s)!, row.metric)),
        ...ratios.map(([a, b]) => {
          const x = values.get(a), y = values.get(b);
          return row.metric === "errors" || x == null || y == null || y === 0
            ? ""
            : (x / y).toFixed(2);
        }),
      ]);
      first = false;
    }
  }
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) =>
    row.map((cell, i) => i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
      .trimEnd()
  );
}
