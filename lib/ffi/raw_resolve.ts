/**
 * Host names to IPv4 addresses the way `ping` resolves them: libc's `getaddrinfo`, which reads
 * `/etc/hosts` and follows `nsswitch.conf`, where `Deno.resolveDns` only asks DNS servers.
 * @module
 */
import { formatIPv4 } from "../packet/packet_fields.ts";
import { LINUX, openLibc } from "./libc.ts";

/** A name that did not resolve, with `getaddrinfo`'s own words (`gai_strerror`). */
export class ResolveError extends Error {
  /** The name asked for. */
  readonly host: string;
  /** An error for `host`, with `getaddrinfo`'s reason. */
  constructor(host: string, reason: string) {
    super(`Cannot resolve "${host}": ${reason}`);
    this.name = "ResolveError";
    this.host = host;
  }
}

// struct addrinfo on 64-bit Linux.
const AI_FAMILY = 4, AI_SOCKTYPE = 8, AI_ADDR = 24, AI_NEXT = 40;

/**
 * Resolves `host` (a name or a dotted quad) to its first IPv4 address. Needs --allow-ffi.
 *
 * @example
 * ```ts ignore
 * import { resolveIPv4 } from "./raw_resolve.ts";
 * console.log(await resolveIPv4("localhost")); // 127.0.0.1
 * ```
 */
export async function resolveIPv4(host: string): Promise<string> {
  const libc = openLibc();
  try {
    const hints = new Uint8Array(48);
    const view = new DataView(hints.buffer);
    view.setInt32(AI_FAMILY, LINUX.AF_INET, true);
    // One entry per address rather than one per socket type.
    view.setInt32(AI_SOCKTYPE, LINUX.SOCK_DGRAM, true);
    const result = new Uint8Array(8);
    const name = new TextEncoder().encode(`${host}\0`);
    const code = await libc.symbols.getaddrinfo(name, null, hints, result);
    if (code !== 0) {
      const text = libc.symbols.gai_strerror(code);
      throw new ResolveError(
        host,
        text ? Deno.UnsafePointerView.getCString(text) : `error ${code}`,
      );
    }
    const list = Deno.UnsafePointer.create(new DataView(result.buffer).getBigUint64(0, true));
    try {
      for (let entry = list; entry !== null;) {
        const info = new Deno.UnsafePointerView(entry);
        const address = info.getPointer(AI_ADDR);
        if (info.getInt32(AI_FAMILY) === LINUX.AF_INET && address !== null) {
          const bytes = new Uint8Array(4);
          new Deno.UnsafePointerView(address).copyInto(bytes, 4);
          return formatIPv4(bytes);
        }
        entry = info.getPointer(AI_NEXT);
      }
    } finally {
      libc.symbols.freeaddrinfo(list);
    }
    throw new ResolveError(host, "no IPv4 address");
  } finally {
    libc.close();
  }
}
