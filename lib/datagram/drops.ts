/**
 * The kernel's drop counter for one UDP socket: datagrams that arrived while its receive buffer
 * was full, which no `recvfrom` will ever see (what `SO_RXQ_OVFL` counts, and tcpdump reports
 * as "dropped by kernel"). Deno exposes no socket option, so it is read where the kernel
 * publishes it: the `drops` column of `/proc/net/udp` (`udp6`), or `ss -uam`'s `skmem d`.
 *
 * Deno 2.9 lets a program read anything under `/proc` only with `--allow-all`, whatever
 * `--allow-read` says; `--allow-run=ss` is the narrow way. Both are queried first, never
 * prompted for.
 * @module
 */
import { formatHostPort } from "../address.ts";
import { ipBytes } from "../net/ip_text.ts";
import { isGranted } from "../permissions.ts";

/**
 * What {@linkcode readKernelDrops} found: a count and where it was read, or why it is unknown.
 * `source: "unix"` is a Unix datagram socket, which never drops: its sender waits instead.
 */
export type KernelDrops =
  | { dropped: number; source: "/proc/net/udp" | "/proc/net/udp6" | "ss" | "unix" }
  | { dropped: null; unknown: string };

/** The flag that lets a receiver read its drop counter, named when drops are unknown. */
export const DROPS_FLAG = "--allow-run=ss";

/**
 * Reads how many datagrams the kernel dropped on the UDP socket bound to `addr` (call it while
 * that socket is still open): from `/proc/net/udp` when Deno allows it, else from `ss` when
 * `--allow-run=ss` is granted, else `unknown` says which flag to add.
 *
 * @example
 * ```ts
 * import { readKernelDrops } from "./drops.ts";
 * const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const drops = await readKernelDrops(socket.addr as Deno.NetAddr);
 * socket.close();
 * if (drops.dropped !== null && drops.dropped !== 0) throw new Error("a fresh socket dropped");
 * ```
 */
export async function readKernelDrops(addr: Deno.NetAddr): Promise<KernelDrops> {
  const file = addr.hostname.includes(":") ? "/proc/net/udp6" as const : "/proc/net/udp" as const;
  if (isGranted({ name: "read", path: file })) {
    try {
      const dropped = dropsFromProcNet(await Deno.readTextFile(file), addr);
      if (dropped !== undefined) return { dropped, source: file };
    } catch (error) {
      // Deno refuses /proc without --allow-all (NotCapable, no prompt): try ss.
      if (!(error instanceof Deno.errors.NotCapable)) throw error;
    }
  }
  if (!isGranted({ name: "run", command: "ss" })) {
    return { dropped: null, unknown: `add ${DROPS_FLAG} to see them` };
  }
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("ss", {
      args: ["-uanmH", "sport", "=", `:${addr.port}`],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { dropped: null, unknown: "ss is not installed (Debian: iproute2)" };
    }
    throw error;
  }
  const dropped = dropsFromSs(new TextDecoder().decode(output.stdout), addr);
  return dropped === undefined
    ? { dropped: null, unknown: "ss did not list the socket" }
    : { dropped, source: "ss" };
}

/**
 * Finds the socket bound to `addr` in the text of `/proc/net/udp` or `/proc/net/udp6` and
 * returns its `drops` column, or `undefined` when no line matches. Addresses there are hex
 * words in the host's byte order.
 *
 * @example
 * ```ts
 * import { dropsFromProcNet } from "./drops.ts";
 * const text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
 *   " 9938: 0100007F:E013 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 97852 2 00000000a0c68581 1744\n";
 * const addr = { transport: "udp" as const, hostname: "127.0.0.1", port: 0xe013 };
 * if (dropsFromProcNet(text, addr) !== 1744) throw new Error("not found");
 * ```
 */
export function dropsFromProcNet(text: string, addr: Deno.NetAddr): number | undefined {
  const address = procNetAddress(addr.hostname);
  if (address === undefined) return undefined;
  const wanted = `${address}:${hex(addr.port, 4)}`;
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === wanted && fields.length >= 13) return Number(fields[12]);
  }
  return undefined;
}

/**
 * Finds the socket bound to `addr` in the output of `ss -uanmH` and returns the `d` (drops) of
 * its `skmem`, or `undefined` when no socket matches.
 *
 * @example
 * ```ts
 * import { dropsFromSs } from "./drops.ts";
 * const text = "UNCONN 212992 0      127.0.0.1:57363 0.0.0.0:*\n" +
 *   "\t skmem:(r212992,rb212992,t0,tb212992,f0,w0,o0,bl0,d1744)\n";
 * const addr = { transport: "udp" as const, hostname: "127.0.0.1", port: 57363 };
 * if (dropsFromSs(text, addr) !== 1744) throw new Error("not found");
 * ```
 */
export function dropsFromSs(text: string, addr: Deno.NetAddr): number | undefined {
  const names = new Set([formatHostPort(addr.hostname, addr.port)]);
  // ss prints a wildcard bind as `*`, and may add `%interface` to a link-local address.
  if (addr.hostname === "0.0.0.0" || addr.hostname === "::") names.add(`*:${addr.port}`);
  let matched = false;
  for (const line of text.split("\n")) {
    const skmem = /skmem:\([^)]*\bd(\d+)\)/.exec(line);
    if (skmem && matched) return Number(skmem[1]);
    if (skmem) continue;
    const local = line.trim().split(/\s+/)[3]?.replace(/%[^:\]]*(?=[:\]])/, "");
    matched = local !== undefined && names.has(local);
  }
  return undefined;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The kernel prints each 32-bit word of the address with `%08X`, in the host's byte order;
 * `undefined` for what is not an IP literal.
 */
function procNetAddress(hostname: string): string | undefined {
  const bytes = ipBytes(hostname);
  if (bytes === undefined) return undefined;
  let text = "";
  for (let i = 0; i < bytes.length; i += 4) {
    const word = Array.from(bytes.subarray(i, i + 4));
    text += (littleEndian ? word.reverse() : word).map((byte) => hex(byte, 2)).join("");
  }
  return text;
}

function hex(value: number, digits: number): string {
  return value.toString(16).toUpperCase().padStart(digits, "0");
}
