/**
 * The few libc calls that raw sockets need, through `Deno.dlopen`, and `errno` turned into an
 * error that names the call. Linux with glibc (`libc.so.6`) only.
 * @module
 */
import { isGranted } from "../permissions.ts";

/** Linux constants for the calls below. */
export const LINUX = {
  AF_INET: 2,
  AF_PACKET: 17,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_CLOEXEC: 0x80000,
  IPPROTO_IP: 0,
  IPPROTO_ICMP: 1,
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_RAW: 255,
  IP_HDRINCL: 3,
  ETH_P_ALL: 0x0003,
  MSG_DONTWAIT: 0x40,
  POLLIN: 0x001,
  EINTR: 4,
  EAGAIN: 11,
  PACKET_OUTGOING: 4,
  ARPHRD_LOOPBACK: 772,
  SOL_SOCKET: 1,
  SOL_RAW: 255,
  ICMP_FILTER: 1,
  SO_ATTACH_FILTER: 26,
  SO_TIMESTAMPNS: 35,
  SCM_TIMESTAMPNS: 35,
  SOL_PACKET: 263,
  PACKET_RX_RING: 5,
  PACKET_STATISTICS: 6,
  PACKET_VERSION: 10,
  TPACKET_V3: 2,
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_SHARED: 0x01,
  CLOCK_REALTIME: 0,
  EFD_NONBLOCK: 0x800,
  EFD_CLOEXEC: 0x80000,
} as const;

/** The libc functions this project calls, with their C signatures. */
export const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // Runs on a worker thread, so waiting for a packet never blocks the event loop.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  // The same call on this thread, with a zero timeout, when errno must be read.
  poll_now: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  // Name lookups may wait on DNS: a worker thread, like poll.
  getaddrinfo: {
    parameters: ["buffer", "pointer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
  gai_strerror: { parameters: ["i32"], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc, opened by {@linkcode openLibc}; close it when done. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/**
 * Opens libc. Without `--allow-ffi` it throws a `Deno.errors.NotCapable` that says so in one
 * line, rather than prompting.
 *
 * @example
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * const libc = openLibc();
 * try {
 *   console.log(libc.symbols.if_nametoindex(new TextEncoder().encode("lo\0")));
 * } finally {
 *   libc.close();
 * }
 * ```
 */
export function openLibc(): Libc {
  if (!isGranted({ name: "ffi" })) {
    throw new Deno.errors.NotCapable(
      "Raw sockets reach libc through FFI: run again with the --allow-ffi flag (and as root)",
    );
  }
  return Deno.dlopen("libc.so.6", SYMBOLS);
}

/** A failed libc call, with its `errno`. */
export class OsError extends Error {
  /** The call that failed, e.g. `socket`. */
  readonly call: string;
  /** The `errno` value. */
  readonly errno: number;
  /** Its symbolic name where known, e.g. `EPERM`, else `errno 123`. */
  readonly code: string;

  /** An error for `call` with `errno`, described in words, and what to do about it. */
  constructor(call: string, errno: number, description: string, hint?: string) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${call}() failed: ${description} (${code})${hint ? `: ${hint}` : ""}`);
    this.name = "OsError";
    this.call = call;
    this.errno = errno;
    this.code = code;
  }
}

/** The calling thread's `errno`; read it right after the failed call. */
export function errno(libc: Libc): number {
  const location = libc.symbols.__errno_location();
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
}

/**
 * The error for a call that just failed on this thread. `EPERM` and `EACCES` from `socket`
 * explain that raw sockets need privileges. Prefer {@linkcode callOrThrow} for calls that are
 * safe to repeat.
 */
export function lastError(libc: Libc, call: string): OsError {
  return errorFor(libc, call, errno(libc));
}

/**
 * Runs a libc call that is safe to repeat (`socket`, `setsockopt`, `bind`, a non-blocking
 * `recvfrom`) and returns its non-negative result, or throws its error. The runtime may run
 * its own code between the call and the read of `errno` and change it (rarely: about 1 in 150
 * failures here), so a failure is repeated until two reads of `errno` agree.
 */
export function callOrThrow(libc: Libc, call: string, fn: () => number): number {
  let previous = -1;
  for (let attempt = 0; attempt < 4; attempt++) {
    const result = fn();
    if (result >= 0) return result;
    const code = errno(libc);
    if (code === previous) break;
    previous = code;
  }
  throw errorFor(libc, call, previous);
}

function errorFor(libc: Libc, call: string, code: number): OsError {
  const text = libc.symbols.strerror(code);
  const description = text === null ? "unknown error" : Deno.UnsafePointerView.getCString(text);
  const denied = call === "socket" && (code === 1 || code === 13);
  return new OsError(call, code, description, denied ? RAW_DENIED : undefined);
}

const RAW_DENIED = "raw sockets need root or CAP_NET_RAW";

/**
 * Sets a socket option from raw bytes (a struct) or a number (an `int`), or throws its error.
 *
 * @example
 * ```ts ignore
 * import { LINUX, openLibc, setSocketOption } from "./libc.ts";
 * const libc = openLibc();
 * const fd = libc.symbols.socket(LINUX.AF_INET, LINUX.SOCK_RAW, LINUX.IPPROTO_ICMP);
 * setSocketOption(libc, fd, LINUX.SOL_SOCKET, LINUX.SO_TIMESTAMPNS, 1);
 * ```
 */
export function setSocketOption(
  libc: Libc,
  fd: number,
  level: number,
  name: number,
  value: number | Uint8Array,
): void {
  const bytes = typeof value === "number"
    ? new Uint8Array(new Int32Array([value]).buffer)
    : value as Uint8Array<ArrayBuffer>;
  callOrThrow(
    libc,
    "setsockopt",
    () => libc.symbols.setsockopt(fd, level, name, bytes, bytes.length),
  );
}

/**
 * The time of `CLOCK_REALTIME`, the clock the kernel stamps packets with, in nanoseconds since
 * the epoch. Read through libc rather than `Date.now()` because ping's round trip is a
 * difference of two readings that must come from the same clock at the same resolution.
 *
 * @example
 * ```ts ignore
 * import { openLibc, realtimeNs } from "./libc.ts";
 * const libc = openLibc();
 * console.log(realtimeNs(libc) / 1_000_000n); // about Date.now()
 * libc.close();
 * ```
 */
export function realtimeNs(libc: Libc): bigint {
  libc.symbols.clock_gettime(LINUX.CLOCK_REALTIME, TIMESPEC);
  return TIMESPEC_WORDS[0] * 1_000_000_000n + TIMESPEC_WORDS[1];
}

// One struct timespec reused by every reading: realtimeNs() runs on the hot path before sendto.
const TIMESPEC_WORDS = new BigInt64Array(2);
const TIMESPEC = new Uint8Array(TIMESPEC_WORDS.buffer);

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  4: "EINTR",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  90: "EMSGSIZE",
  93: "EPROTONOSUPPORT",
  97: "EAFNOSUPPORT",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  113: "EHOSTUNREACH",
};
