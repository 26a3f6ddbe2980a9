/**
 * Port probes as `nc -z` makes them: connect, close at once, send nothing; each port is open,
 * closed (refused) or filtered (no answer within the timeout), with bounded parallelism.
 * @module
 */
import { closeQuietly } from "../io.ts";
import { connect } from "./connect.ts";

/** What a probe found on one port. */
export interface ProbeResult {
  /** The port probed. */
  port: number;
  /** `open`: it accepted; `closed`: refused; `filtered`: no answer within the timeout. */
  state: "open" | "closed" | "filtered";
}

/** Options for {@linkcode probePorts}. */
export interface ProbeOptions {
  /** Host to probe. @default {"127.0.0.1"} */
  hostname?: string;
  /** The ports to probe, in the order results are reported. */
  ports: readonly number[];
  /** How long to wait for each port's answer (ms). @default {2000} */
  timeout?: number;
  /** How many ports are probed at once. @default {16} */
  parallel?: number;
  /** Called with each result, in the order of `ports`. */
  onResult?: (result: ProbeResult) => void;
}

/**
 * Probes TCP ports as `nc -z` does: connects and closes at once, sending nothing. Any other
 * failure than a refusal or a timeout (no permission, a name that does not resolve) throws.
 *
 * @example One open and one closed port
 * ```ts
 * import { probePorts } from "./probe.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const closed = (() => {
 *   using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 *   return other.addr.port;
 * })();
 * const results = await probePorts({ ports: [listener.addr.port, closed], timeout: 1000 });
 * if (results.map((r) => r.state).join() !== "open,closed") throw new Error("unexpected");
 * ```
 */
export async function probePorts(options: ProbeOptions): Promise<ProbeResult[]> {
  const { hostname = "127.0.0.1", ports, timeout = 2000, parallel = 16, onResult } = options;
  const results: ProbeResult[] = new Array(ports.length);
  let next = 0;
  let reported = 0;
  const worker = async () => {
    while (next < ports.length) {
      const index = next++;
      results[index] = { port: ports[index], state: await probe(hostname, ports[index], timeout) };
      // Report in port order; `reported++` stays out of `onResult?.()`, which may skip it.
      for (; reported < ports.length && results[reported] !== undefined; reported++) {
        onResult?.(results[reported]);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, ports.length) }, worker));
  return results;
}

async function probe(hostname: string, port: number, timeout: number) {
  try {
    closeQuietly(await connect({ hostname, port, timeout }));
    return "open" as const;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return "closed" as const;
    if (error instanceof Deno.errors.TimedOut) return "filtered" as const;
    throw error;
  }
}
