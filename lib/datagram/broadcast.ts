/**
 * Broadcast only when asked. Deno sets `SO_BROADCAST` on every UDP socket it opens, so a
 * datagram to `255.255.255.255` or a subnet's broadcast address goes out where Python's
 * `sendto` and `nc -u` fail with EACCES unless told (`-b`). Deno offers no way to clear the
 * option, so a sender refuses broadcast destinations by address instead.
 * @module
 */
import { parseIPv4 } from "../net/ip_text.ts";
import { isGranted } from "../permissions.ts";

/** An IPv4 network a host is on, as `Deno.networkInterfaces()` reports it. */
export interface Ipv4Network {
  /** The interface's address, e.g. `192.0.2.2`. */
  address: string;
  /** Its netmask, e.g. `255.255.255.0`. */
  netmask: string;
}

/**
 * Says why a datagram to `hostname` would be a broadcast (`the limited broadcast address`), or
 * returns `undefined`. The rule:
 *
 * - `255.255.255.255` (the limited broadcast) and `127.255.255.255` (loopback's `/8`) always;
 * - with `networks` (the interfaces' addresses and netmasks), each one's directed broadcast;
 * - without them, any IPv4 address ending in `.255`: the broadcast of every `/24` and wider
 *   network ends so, and without netmasks it cannot be told from a host.
 *
 * IPv6 has no broadcast; host names are not resolved here.
 *
 * @example
 * ```ts
 * import { broadcastReason } from "./broadcast.ts";
 * if (!broadcastReason("255.255.255.255")) throw new Error("limited broadcast");
 * if (!broadcastReason("10.1.2.255")) throw new Error(".255 without netmasks");
 * const lan = [{ address: "10.1.0.7", netmask: "255.255.0.0" }];
 * if (broadcastReason("10.1.2.255", lan)) throw new Error("a host of 10.1.0.0/16");
 * if (!broadcastReason("10.1.255.255", lan)) throw new Error("the /16's broadcast");
 * if (broadcastReason("127.0.0.1") || broadcastReason("::1")) throw new Error("unicast");
 * ```
 */
export function broadcastReason(
  hostname: string,
  networks?: Ipv4Network[],
): string | undefined {
  const address = ipv4Number(hostname);
  if (address === undefined) return undefined;
  if (address === 0xffffffff) return "the limited broadcast address";
  if (address === 0x7fffffff) return "the broadcast address of 127.0.0.0/8";
  if (networks === undefined) {
    return (address & 0xff) === 0xff
      ? "possibly a broadcast address (it ends in .255, and without " +
        "--allow-sys=networkInterfaces the netmasks are unknown)"
      : undefined;
  }
  for (const network of networks) {
    const host = ipv4Number(network.address), mask = ipv4Number(network.netmask);
    // A /31 or /32 has no broadcast address.
    if (host === undefined || mask === undefined || (~mask >>> 0) < 3) continue;
    if (((host | ~mask) >>> 0) === address) {
      return `the broadcast address of ${network.address}/${prefixLength(mask)}`;
    }
  }
  return undefined;
}

/**
 * The IPv4 networks of this host when `--allow-sys=networkInterfaces` is granted (asked without
 * a prompt), else `undefined`: then {@linkcode broadcastReason} falls back to the `.255` rule.
 *
 * @example
 * ```ts
 * import { localIpv4Networks } from "./broadcast.ts";
 * const networks = localIpv4Networks();
 * if (networks !== undefined && !Array.isArray(networks)) throw new Error("not a list");
 * ```
 */
export function localIpv4Networks(): Ipv4Network[] | undefined {
  if (!isGranted({ name: "sys", kind: "networkInterfaces" })) return undefined;
  return Deno.networkInterfaces()
    .filter((info) => info.family === "IPv4")
    .map(({ address, netmask }) => ({ address, netmask }));
}

/** An IPv4 address as one unsigned 32-bit number, for masking. */
function ipv4Number(text: string): number | undefined {
  const bytes = parseIPv4(text);
  if (bytes === undefined) return undefined;
  return new DataView(bytes.buffer).getUint32(0);
}

function prefixLength(mask: number): number {
  let bits = 0;
  for (let m = mask; m & 0x80000000; m = (m << 1) >>> 0) bits++;
  return bits;
}
