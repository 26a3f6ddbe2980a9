/**
 * What the IPv4 codecs share, as gopacket's `layers/tcpip.go` does: protocol numbers, address
 * parsing and formatting, the field range check, and the pseudo-header that TCP and UDP
 * checksums cover. Every codec imports this module and `checksum.ts`, never another codec, so
 * no import circle can form.
 * @module
 */
import { internetChecksum, onesComplementSum } from "./checksum.ts";

/** IP protocol numbers used here. */
export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17 } as const;

/** The IPv4 addresses that the TCP and UDP checksums' pseudo-header covers. */
export interface PseudoHeader {
  /** Source address, dotted quad. */
  src: string;
  /** Destination address, dotted quad. */
  dst: string;
}

/**
 * Parses a dotted-quad IPv4 address into its 4 bytes.
 *
 * @example
 * ```ts
 * import { parseIPv4 } from "./packet_fields.ts";
 * if (parseIPv4("127.0.0.1").join(".") !== "127.0.0.1") throw new Error("bad address");
 * ```
 */
export function parseIPv4(text: string): Uint8Array {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^(0|[1-9]\d{0,2})$/.test(part))) {
    throw new SyntaxError(`Cannot parse IPv4 address "${text}": must be a dotted quad`);
  }
  const bytes = parts.map(Number);
  if (bytes.some((byte) => byte > 255)) {
    throw new SyntaxError(`Cannot parse IPv4 address "${text}": each part must be 0 to 255`);
  }
  return Uint8Array.from(bytes);
}

/**
 * Formats 4 bytes at `offset` of `bytes` as a dotted quad.
 *
 * @example
 * ```ts
 * import { formatIPv4 } from "./packet_fields.ts";
 * if (formatIPv4(new Uint8Array([127, 0, 0, 1])) !== "127.0.0.1") throw new Error("bad");
 * ```
 */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + 4 > bytes.length) {
    throw new RangeError(
      `Cannot read an IPv4 address at offset ${offset} of ${bytes.length} bytes`,
    );
  }
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * The folded sum of the IPv4 pseudo-header that TCP and UDP checksums cover: source and
 * destination address, protocol number and segment length.
 *
 * @example
 * ```ts
 * import { pseudoHeaderSum } from "./packet_fields.ts";
 * const sum = pseudoHeaderSum("127.0.0.1", "127.0.0.1", 6, 20);
 * if (sum !== 0xfe1c) throw new Error(sum.toString(16));
 * ```
 */
export function pseudoHeaderSum(
  src: string,
  dst: string,
  protocol: number,
  length: number,
): number {
  if (!Number.isInteger(protocol) || protocol < 0 || protocol > 255) {
    throw new RangeError(`Cannot use protocol ${protocol}: must be an integer from 0 to 255`);
  }
  if (!Number.isInteger(length) || length < 0 || length > 0xffff) {
    throw new RangeError(`Cannot use length ${length}: must be an integer from 0 to 65535`);
  }
  const pseudo = new Uint8Array(12);
  pseudo.set(parseIPv4(src), 0);
  pseudo.set(parseIPv4(dst), 4);
  pseudo[9] = protocol;
  pseudo[10] = length >> 8;
  pseudo[11] = length & 0xff;
  return onesComplementSum(pseudo);
}

/**
 * The TCP or UDP checksum of a whole segment (header with its checksum field and payload)
 * sent from `src` to `dst`. A segment whose checksum field is right gives 0.
 *
 * @example Checking a UDP datagram captured on lo
 * ```ts
 * import { transportChecksum } from "./packet_fields.ts";
 * const segment = Uint8Array.from(
 *   "9c40b0390015741b48656c6c6f2c20576f726c6421".match(/../g)!.map((h) => parseInt(h, 16)),
 * );
 * if (transportChecksum("127.0.0.1", "127.0.0.1", 17, segment) !== 0) throw new Error("bad");
 * ```
 */
export function transportChecksum(
  src: string,
  dst: string,
  protocol: number,
  segment: Uint8Array,
): number {
  return internetChecksum(segment, pseudoHeaderSum(src, dst, protocol, segment.length));
}

/**
 * Throws a `RangeError` unless `value` is an integer from 0 to `max`; returns it. Encoders
 * call it for every field, so a value that does not fit is an error, never silently cut.
 *
 * @example
 * ```ts
 * import { checkField } from "./packet_fields.ts";
 * if (checkField("ttl", 64, 0xff) !== 64) throw new Error("bad check");
 * let threw = false;
 * try {
 *   checkField("ttl", 256, 0xff);
 * } catch (error) {
 *   threw = error instanceof RangeError;
 * }
 * if (!threw) throw new Error("256 fits no byte");
 * ```
 */
export function checkField(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`Cannot encode ${name} ${value}: must be an integer from 0 to ${max}`);
  }
  return value;
}
