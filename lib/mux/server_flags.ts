/**
 * The flags every server on the multiplexer takes for its limits — `--max-connections`,
 * `--idle-timeout`, `--high-water-mark`, `--backlog`, `--handshake-timeout`, `--grace` — read the
 * same way everywhere, with the defaults each program documents in its `--help`.
 * @module
 */
import { parseCount, parseDuration, parseSize } from "../flags.ts";

/** The limit flags as `parseFlags()` returns them. */
export interface LimitFlags {
  /** `--max-connections N`. */
  "max-connections"?: string;
  /** `--idle-timeout DURATION` (unset: never). */
  "idle-timeout"?: string;
  /** `--high-water-mark SIZE`. */
  "high-water-mark"?: string;
  /** `--backlog N`. */
  backlog?: string;
  /** `--handshake-timeout DURATION`. */
  "handshake-timeout"?: string;
  /** `--grace DURATION` (0 allowed). */
  grace?: string;
}

/** Typed limits, ready for `serveMux()` and the servers built on it. */
export interface ServerLimits {
  /** Connections served at once. */
  maxConnections: number;
  /** Milliseconds without a byte before a connection is closed; unset: never. */
  idleTimeout?: number;
  /** Bytes waiting before a connection is read no more. */
  highWaterMark: number;
  /** Pending connections the kernel queues. */
  backlog: number;
  /** Milliseconds a TLS handshake may take. */
  handshakeTimeout: number;
  /** Milliseconds a stop may take to drain. */
  graceTimeout: number;
}

/** A program's own defaults, as its `--help` shows them (`"64k"`, `"5s"`). */
export interface LimitDefaults {
  /** `--max-connections`. @default {"10000"} */
  maxConnections?: string;
  /** `--idle-timeout`; unset: never. @default {undefined} */
  idleTimeout?: string;
  /** `--high-water-mark`. @default {"64k"} */
  highWaterMark?: string;
  /** `--backlog`. @default {"4096"} */
  backlog?: string;
  /** `--handshake-timeout`. @default {"10s"} */
  handshakeTimeout?: string;
  /** `--grace`. @default {"5s"} */
  grace?: string;
}

/**
 * Reads the limit flags into typed values; a bad one is a `UsageError` naming the flag.
 *
 * @example
 * ```ts
 * import { limitsFromFlags } from "./server_flags.ts";
 * const limits = limitsFromFlags({ "idle-timeout": "30s" }, { highWaterMark: "256k" });
 * if (limits.idleTimeout !== 30_000 || limits.highWaterMark !== 262_144) throw new Error();
 * ```
 */
export function limitsFromFlags(flags: LimitFlags, defaults: LimitDefaults = {}): ServerLimits {
  const idle = flags["idle-timeout"] ?? defaults.idleTimeout;
  return {
    maxConnections: parseCount(
      flags["max-connections"] ?? defaults.maxConnections ?? "10000",
      "--max-connections",
    ),
    idleTimeout: idle === undefined ? undefined : parseDuration(idle, "--idle-timeout"),
    highWaterMark: parseSize(
      flags["high-water-mark"] ?? defaults.highWaterMark ?? "64k",
      "--high-water-mark",
    ),
    backlog: parseCount(flags.backlog ?? defaults.backlog ?? "4096", "--backlog", { max: 65535 }),
    handshakeTimeout: parseDuration(
      flags["handshake-timeout"] ?? defaults.handshakeTimeout ?? "10s",
      "--handshake-timeout",
    ),
    graceTimeout: parseDuration(flags.grace ?? defaults.grace ?? "5s", "--grace", {
      allowZero: true,
    }),
  };
}
