/**
 * IP addresses as text and as bytes, strictly: the PROXY protocol carries them both ways
 * (text in version 1, network-order bytes in version 2), and a receiver must refuse what is not
 * canonical (`010.0.0.1`) instead of guessing.
 * @module
 */

const IPV4_PART = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)";
// No leading zeros: `010` could be read as octal by another parser.
const STRICT_IPV4 = new RegExp(`^${IPV4_PART}(\\.${IPV4_PART}){3}$`);
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses a dotted-quad IPv4 address without leading zeros into its 4 bytes, or `undefined`.
 *
 * @example
 * ```ts
 * import { parseIPv4 } from "./ip_text.ts";
 * if (parseIPv4("192.168.0.1")?.join(".") !== "192.168.0.1") throw new Error();
 * if (parseIPv4("192.168.0.01") !== undefined) throw new Error("leading zero accepted");
 * ```
 */
export function parseIPv4(text: string): Uint8Array | undefined {
  if (!STRICT_IPV4.test(text)) return undefined;
  return new Uint8Array(text.split(".").map(Number));
}

/**
 * Parses an IPv6 address (hex groups, at most one `::`, an optional dotted IPv4 tail as
 * `inet_pton` takes it) into its 16 bytes, or `undefined`.
 *
 * @example
 * ```ts
 * import { parseIPv6 } from "./ip_text.ts";
 * const bytes = parseIPv6("2001:db8::1");
 * if (bytes?.[15] !== 1 || bytes[0] !== 0x20) throw new Error();
 * if (parseIPv6("1::2::3") !== undefined) throw new Error("two :: accepted");
 * ```
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0], halves.length === 1 ? 8 : 7);
  const tail = halves.length === 2 ? parseGroups(halves[1], 7) : [];
  if (head === undefined || tail === undefined) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...head, ...new Array(8 - total).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** Hex groups separated by `:`, the last of which may be a dotted IPv4 address (two groups). */
function parseGroups(text: string, max: number): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (HEX_GROUP.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups.length <= max ? groups : undefined;
}

/**
 * Formats 4 bytes as IPv4 or 16 bytes as IPv6 text in the form of RFC 5952 (lower case, the
 * longest run of zero groups as `::`, an IPv4-mapped address as `::ffff:a.b.c.d`), the form
 * Deno reports in `remoteAddr`.
 *
 * @example
 * ```ts
 * import { formatIP } from "./ip_text.ts";
 * const text = formatIP(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]));
 * if (text !== "2001:db8::1") throw new Error(text);
 * ```
 */
export function formatIP(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) throw new RangeError(`Cannot format ${bytes.length} bytes as an IP`);
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }
  let bestStart = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * The bytes of an IPv4 or IPv6 literal (IPv6 for `v6`, an IPv4 address then mapped into
 * `::ffff:0:0/96`), or `undefined` when `text` is neither.
 *
 * @example
 * ```ts
 * import { ipBytes } from "./ip_text.ts";
 * if (ipBytes("10.0.0.1", true)?.length !== 16) throw new Error("not mapped");
 * ```
 */
export function ipBytes(text: string, v6 = false): Uint8Array | undefined {
  const v4 = parseIPv4(text);
  if (v4 === undefined) return parseIPv6(text);
  if (!v6) return v4;
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(v4, 12);
  return mapped;
}
