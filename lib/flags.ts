/**
 * Flags in, typed values out: `parseFlags()` wraps `@std/cli` `parseArgs` (whose npm mirror
 * ships no types) with a typed result and rejects unknown flags; the `parse*` validators turn
 * strings into ports, hosts, sizes, durations and counts, or throw a {@linkcode UsageError}.
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { closestString } from "@std/text/closest-string";
import { levenshteinDistance } from "@std/text/levenshtein-distance";
import { UsageError } from "./errors.ts";

/** Which flags a program takes; every flag is spelled without its leading dashes. */
export interface FlagSpec<S extends string, B extends string, C extends string> {
  /** Flags that take a value; the last one given wins. */
  string?: readonly S[];
  /** Flags that are on or off. */
  boolean?: readonly B[];
  /** Flags that take a value and may be repeated. */
  collect?: readonly C[];
  /** Short names, e.g. `{ p: "port" }`. */
  alias?: Readonly<Record<string, NoInfer<S | B | C>>>;
  /**
   * Value flags that positional arguments fill in order, as netcat takes `HOST PORT`: `["host",
   * "port"]`. A flag given explicitly wins over its positional argument.
   */
  positional?: readonly NoInfer<S>[];
  /** The `--help` text: with it, `-h`/`--help` print it and exit 0 (see {@linkcode InfoRequest}). */
  usage?: string;
  /** Value flags for which an empty value means something (`--message ''`: an empty datagram);
   * any other flag given `''` is a usage error. */
  allowEmpty?: readonly NoInfer<S>[];
}

/** The typed result of {@linkcode parseFlags}. */
export type Flags<S extends string, B extends string, C extends string> =
  & { [K in S]: string | undefined }
  & { [K in B]: boolean }
  & { [K in C]: string[] };

/**
 * Not an error: the user asked for `--help` or `--version`. `runMain()` prints `text` on stdout
 * and exits 0, so every program answers both the same way.
 */
export class InfoRequest extends Error {
  /** What to print. */
  readonly text: string;
  /** A request to print `text` (the usage or the version) and exit 0. */
  constructor(text: string) {
    super("information requested");
    this.name = "InfoRequest";
    this.text = text;
  }
}

/** The collection's version, printed by `--version` (kept equal to `version` in deno.json). */
export const VERSION = "0.3.0";

/**
 * Parses `args` against `spec`. Unknown flags (with a suggestion when one is close) and
 * positional arguments beyond `spec.positional` are usage errors. `--version` is understood by
 * every program, and `--help` by every program whose spec has a `usage`.
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
 *
 * @example netcat's `HOST PORT`, with a flag that wins
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["::1", "80", "--port", "8080"], {
 *   string: ["host", "port"],
 *   positional: ["host", "port"],
 * });
 * if (flags.host !== "::1" || flags.port !== "8080") throw new Error(JSON.stringify(flags));
 * ```
 */
export function parseFlags<
  const S extends string = never,
  const B extends string = never,
  const C extends string = never,
>(args: readonly string[], spec: FlagSpec<S, B, C>): Flags<S, B, C> {
  const strings = [...(spec.string ?? []), ...(spec.collect ?? [])];
  const booleans = [...(spec.boolean ?? []), "version"];
  const alias: Record<string, string> = { ...spec.alias };
  if (spec.usage !== undefined) {
    booleans.push("help");
    alias.h ??= "help";
  }
  const known = new Set<string>([...strings, ...booleans, ...Object.keys(alias)]);
  const positional: string[] = [];
  const parsed = parseArgs(joinEmptyValues(args, new Set(strings), alias), {
    string: strings,
    boolean: booleans,
    collect: [...(spec.collect ?? [])],
    alias,
    "--": true,
    unknown: (arg: string, key?: string) => {
      if (key === undefined) {
        positional.push(arg);
        return false;
      }
      if (!known.has(key)) throw new UsageError(unknownFlagMessage(arg, known));
      return true;
    },
  });
  if (parsed.version) throw new InfoRequest(VERSION);
  if (parsed.help && spec.usage !== undefined) throw new InfoRequest(spec.usage);
  // `--` ends the flags; what follows is positional too.
  positional.push(...(parsed["--"] ?? []).map(String));
  const slots = spec.positional ?? [];
  if (positional.length > slots.length) {
    throw new UsageError(`Unexpected argument "${positional[slots.length]}"`);
  }
  for (const name of spec.string ?? []) {
    const value = parsed[name];
    if (value === "" && !spec.allowEmpty?.includes(name)) {
      throw new UsageError(`Flag "--${name}" needs a value`);
    }
    // parseArgs turns a repeated flag into an array; the last one wins, as in most tools.
    if (Array.isArray(value)) parsed[name] = value.at(-1);
  }
  slots.forEach((name, i) => {
    if (i < positional.length && parsed[name] === undefined) parsed[name] = positional[i];
  });
  return parsed as Flags<S, B, C>;
}

/**
 * Settles what parseArgs would read otherwise: `--name ''` (an empty argument after a value flag)
 * and `--name -` (standard input) are that value, joined as `--name=` and `--name=-`; a value flag
 * with nothing after it, or another flag, has no value (a usage error, rather than an empty value
 * that `allowEmpty` would accept). A value that starts with `-` is written `--name=-x`.
 */
function joinEmptyValues(
  args: readonly string[],
  valueFlags: ReadonlySet<string>,
  alias: Readonly<Record<string, string>>,
): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return [...joined, ...args.slice(i)];
    const name = /^--([^=]+)$/.exec(arg)?.[1] ?? /^-([^-=])$/.exec(arg)?.[1];
    const flag = name === undefined ? undefined : alias[name] ?? name;
    if (flag === undefined || !valueFlags.has(flag)) {
      joined.push(arg);
      continue;
    }
    const next = args[i + 1];
    if (next === "" || next === "-") {
      joined.push(`--${flag}=${next}`);
      i++;
    } else if (next === undefined || /^-./.test(next)) {
      throw new UsageError(`Flag "--${flag}" needs a value`);
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

function unknownFlagMessage(arg: string, known: Set<string>): string {
  const given = arg.split("=")[0];
  const name = given.replace(/^-+/, "");
  const candidates = [...known].filter((flag) => flag.length > 1);
  const closest = candidates.length > 0 ? closestString(name, candidates) as string : undefined;
  // Suggest only what is plausibly a typo: two edits (a swap), or a third of a longer name.
  const near = closest !== undefined &&
    (levenshteinDistance(name, closest) as number) <= Math.max(2, Math.floor(name.length / 3));
  return near
    ? `Unknown flag "${given}" (did you mean "--${closest}"?)`
    : `Unknown flag "${given}"`;
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

/**
 * Parses nc's port list for `-z`: `PORT`, `PORT-PORT`, or several separated by commas.
 *
 * @example
 * ```ts
 * import { parsePortRange } from "./flags.ts";
 * if (parsePortRange("22,80-82").join() !== "22,80,81,82") throw new Error("bad range");
 * ```
 */
export function parsePortRange(text: string, flag = "PORT"): number[] {
  const ports = new Set<number>();
  for (const part of text.split(",")) {
    const [first, last = first, extra] = part.split("-");
    const [low, high] = [parsePort(first, flag), parsePort(last, flag)];
    if (extra !== undefined || low === 0 || low > high) {
      throw new UsageError(
        `Cannot parse ${flag} "${text}": must be ports from 1 to 65535, as 80, 8000-8010 or 22,80`,
      );
    }
    for (let port = low; port <= high; port++) ports.add(port);
  }
  return [...ports];
}
