/**
 * Flags in, typed values out: `parseFlags()` wraps `@std/cli` `parseArgs` (whose npm mirror
 * ships no types) with a typed result and rejects unknown flags; the `parse*` validators turn
 * strings into ports, hosts, sizes, durations and counts, or throw a {@linkcode UsageError}.
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { UsageError } from "./errors.ts";

/** Which flags a program takes; every flag is spelled without its leading dashes. */
export interface FlagSpec<S extends string, B extends string, C extends string> {
  /** Flags that take a value; the last one given wins. */
  string?: readonly S[];
  /** Flags that are on or off. */
  boolean?: readonly B[];
  /** Flags that take a value and may be repeated. */
  collect?: readonly C[];
  /** Short names, e.g. `{ h: "help" }`. */
  alias?: Readonly<Record<string, S | B | C>>;
}

/** The typed result of {@linkcode parseFlags}. */
export type Flags<S extends string, B extends string, C extends string> =
  & { [K in S]: string | undefined }
  & { [K in B]: boolean }
  & { [K in C]: string[] };

/**
 * Parses `args` against `spec`. Unknown flags and positional arguments are usage errors.
 *
 * @example Parsing a port flag
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--port", "8080", "-q"], {
 *   string: ["port"],
 *   boolean: ["quiet"],
 *   alias: { q: "quiet" },
 * });
 * if (flags.port !== "8080" || !flags.quiet) throw new Error("unexpected flags");
 * ```
 */
export function parseFlags<
  const S extends string = never,
  const B extends string = never,
  const C extends string = never,
>(args: readonly string[], spec: FlagSpec<S, B, C>): Flags<S, B, C> {
  const strings = [...(spec.string ?? []), ...(spec.collect ?? [])];
  const known = new Set<string>([...strings, ...(spec.boolean ?? [])]);
  for (const alias of Object.keys(spec.alias ?? {})) known.add(alias);
  const parsed = parseArgs([...args], {
    string: strings,
    boolean: [...(spec.boolean ?? [])],
    collect: [...(spec.collect ?? [])],
    alias: spec.alias ?? {},
    unknown: (arg: string, key?: string) => {
      if (key === undefined) throw new UsageError(`Unexpected argument "${arg}"`);
      if (!known.has(key)) throw new UsageError(`Unknown flag "${arg.split("=")[0]}"`);
      return true;
    },
  });
  for (const name of spec.string ?? []) {
    const value = parsed[name];
    if (value === "") throw new UsageError(`Flag "--${name}" needs a value`);
    // parseArgs turns a repeated flag into an array; the last one wins, as in most tools.
    if (Array.isArray(value)) parsed[name] = value.at(-1);
  }
  return parsed as Flags<S, B, C>;
}

/**
 * Parses a TCP or UDP port: an integer from 0 (any free port) to 65535.
 *
 * @example
 * ```ts
 * import { parsePort } from "./flags.ts";
 * if (parsePort("12345") !== 12345) throw new Error("bad port");
 * ```
 */
export function parsePort(text: string, flag = "--port"): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535)) {
    throw new UsageError(`Cannot parse ${flag} "${text}": must be an integer from 0 to 65535`);
  }
  return port;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Whether `text` is an IPv6 literal, without brackets. */
export function isIPv6(text: string): boolean {
  if (!text.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  return URL.canParse(`http://[${text}]/`);
}

/** Whether `text` is a dotted-quad IPv4 literal. */
export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

/**
 * Parses a host: an IPv4 literal, an IPv6 literal (brackets optional, returned without them)
 * or a DNS name.
 *
 * @example
 * ```ts
 * import { parseHost } from "./flags.ts";
 * if (parseHost("[::1]") !== "::1") throw new Error("brackets kept");
 * ```
 */
export function parseHost(text: string, flag = "--host"): string {
  const host = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (isIPv4(host) || isIPv6(host)) return host;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (
    name.length > 0 && name.length <= 253 && !/^[\d.]+$/.test(name) &&
    name.split(".").every((label) => HOST_LABEL.test(label))
  ) {
    return host;
  }
  throw new UsageError(`Cannot parse ${flag} "${text}": must be an IP address or a host name`);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Bounds for {@linkcode parseSize} and {@linkcode parseCount}. */
export interface RangeOptions {
  /** The smallest accepted value. @default {1} */
  min?: number;
  /** The largest accepted value. @default {Number.MAX_SAFE_INTEGER} */
  max?: number;
}

/**
 * Parses a byte size: an integer with an optional binary unit (`512`, `64k`, `64KiB`, `1M`).
 *
 * @example
 * ```ts
 * import { parseSize } from "./flags.ts";
 * if (parseSize("64KiB", "--size") !== 65536) throw new Error("bad size");
 * ```
 */
export function parseSize(text: string, flag: string, options: RangeOptions = {}): number {
  const { min = 1, max = Number.MAX_SAFE_INTEGER } = options;
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
  const size = match && unit ? Number(match[1]) * unit : NaN;
  if (!(size >= min && size <= max)) {
    throw new UsageError(
      `Cannot parse ${flag} "${text}": must be a size from ${min} to ${max} bytes (units: k, M, G)`,
    );
  }
  return size;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration into milliseconds: a number with a unit (`250ms`, `1.5s`, `2m`, `1h`); a
 * bare number means seconds, as with `timeout(1)`. Zero is accepted only with `allowZero`.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./flags.ts";
 * if (parseDuration("1.5s", "--timeout") !== 1500) throw new Error("bad duration");
 * ```
 */
export function parseDuration(
  text: string,
  flag: string,
  options: { allowZero?: boolean } = {},
): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim());
  const ms = match ? Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]) : NaN;
  if (!(ms > 0 || (ms === 0 && options.allowZero)) || ms > 2 ** 31 - 1) {
    throw new UsageError(
      `Cannot parse ${flag} "${text}": must be a duration such as 500ms, 5s or 2m`,
    );
  }
  return ms;
}

/**
 * Parses a whole number within bounds, e.g. a `--count` or a `--connections`.
 *
 * @example
 * ```ts
 * import { parseCount } from "./flags.ts";
 * if (parseCount("3", "--count") !== 3) throw new Error("bad count");
 * ```
 */
export function parseCount(text: string, flag: string, options: RangeOptions = {}): number {
  const { min = 1, max = Number.MAX_SAFE_INTEGER } = options;
  const count = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(count >= min && count <= max)) {
    throw new UsageError(
      `Cannot parse ${flag} "${text}": must be an integer from ${min} to ${max}`,
    );
  }
  return count;
}

/**
 * Rejects a combination of flags that cannot go together, e.g. `--unix` with `--host`.
 */
export function rejectTogether(flags: Record<string, unknown>, names: readonly string[]): void {
  const given = names.filter((name) => flags[name] !== undefined && flags[name] !== false);
  if (given.length > 1) {
    throw new UsageError(
      `Flags ${given.map((name) => `"--${name}"`).join(" and ")} exclude each other`,
    );
  }
}

/** Where a program binds or connects: a TCP/UDP host and port, or a Unix socket path. */
export interface Endpoint {
  /** Host to bind or connect to, IPv6 without brackets. */
  hostname: string;
  /** Port to bind or connect to. */
  port: number;
  /** A Unix socket path; when set, `hostname` and `port` are not used. */
  path?: string;
}

/**
 * Reads `--host` (default 127.0.0.1), `--port` and `--unix` into an {@linkcode Endpoint}.
 * `--unix` excludes `--host`, `--port` and `--tls` (TLS runs over TCP only).
 *
 * @example
 * ```ts
 * import { parseEndpoint } from "./flags.ts";
 * const endpoint = parseEndpoint({ host: "[::1]" }, 12345);
 * if (endpoint.hostname !== "::1" || endpoint.port !== 12345) throw new Error("bad endpoint");
 * ```
 */
export function parseEndpoint(
  flags: { host?: string; port?: string; unix?: string; tls?: boolean },
  defaultPort: number,
): Endpoint {
  for (const other of ["host", "port", "tls"]) rejectTogether(flags, ["unix", other]);
  return {
    hostname: parseHost(flags.host ?? "127.0.0.1"),
    port: parsePort(flags.port ?? `${defaultPort}`),
    path: flags.unix,
  };
}
