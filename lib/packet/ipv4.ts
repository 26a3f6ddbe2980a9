/**
 * IPv4 headers (RFC 791): encode one with its checksum, decode one with every length checked
 * against the bytes at hand. Addresses, protocol numbers and field checks are in
 * `packet_fields.ts`.
 * @module
 */
import { internetChecksum } from "./checksum.ts";
import { checkField, formatIPv4, parseIPv4 } from "./packet_fields.ts";

/** The "don't fragment" bit of {@linkcode IPv4Header.flags}. */
export const IPV4_DONT_FRAGMENT = 0b010;
/** The "more fragments" bit of {@linkcode IPv4Header.flags}. */
export const IPV4_MORE_FRAGMENTS = 0b001;

/** A decoded IPv4 header. */
export interface IPv4Header {
  /** Header length in bytes, 20 to 60 (the IHL field times 4). */
  headerLength: number;
  /** Type of service byte (DSCP and ECN). */
  tos: number;
  /** Header plus payload, in bytes. */
  totalLength: number;
  /** Identification, for reassembly. */
  identification: number;
  /** The 3 flag bits: {@linkcode IPV4_DONT_FRAGMENT}, {@linkcode IPV4_MORE_FRAGMENTS}. */
  flags: number;
  /** Fragment offset in 8-byte units. */
  fragmentOffset: number;
  /** Time to live. */
  ttl: number;
  /** Protocol of the payload, e.g. `IPPROTO.TCP` (from `packet_fields.ts`). */
  protocol: number;
  /** Header checksum as found. */
  checksum: number;
  /** Source address, dotted quad. */
  src: string;
  /** Destination address, dotted quad. */
  dst: string;
  /** Options (header bytes after the first 20). */
  options: Uint8Array;
}

/** What {@linkcode encodeIPv4} needs; lengths and the checksum are computed. */
export interface IPv4Fields {
  /** Source address. */
  src: string;
  /** Destination address. */
  dst: string;
  /** Protocol of the payload. */
  protocol: number;
  /** Type of service byte. @default {0} */
  tos?: number;
  /** Identification. @default {0} */
  identification?: number;
  /** Flag bits. @default {IPV4_DONT_FRAGMENT} */
  flags?: number;
  /** Fragment offset in 8-byte units. @default {0} */
  fragmentOffset?: number;
  /** Time to live. @default {64} */
  ttl?: number;
  /** Options, padded by the caller to a multiple of 4 bytes, at most 40. @default {empty} */
  options?: Uint8Array;
}

/** An IPv4 packet split into its header and payload (views into the decoded bytes). */
export interface IPv4Packet {
  /** The decoded header. */
  header: IPv4Header;
  /** The bytes after the header, up to the total length. */
  payload: Uint8Array;
}

/**
 * Builds an IPv4 packet: header (with total length and checksum filled in) and payload.
 *
 * @example A header for an ICMP payload
 * ```ts
 * import { decodeIPv4, encodeIPv4 } from "./ipv4.ts";
 * import { IPPROTO } from "./packet_fields.ts";
 * const packet = encodeIPv4(
 *   { src: "127.0.0.1", dst: "127.0.0.1", protocol: IPPROTO.ICMP },
 *   new Uint8Array(8),
 * );
 * if (decodeIPv4(packet).header.totalLength !== 28) throw new Error("bad length");
 * ```
 */
export function encodeIPv4(fields: IPv4Fields, payload: Uint8Array): Uint8Array {
  const options = fields.options ?? new Uint8Array(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(
      `Cannot encode ${options.length} bytes of IPv4 options: must be a multiple of 4, at most 40`,
    );
  }
  const headerLength = 20 + options.length;
  const totalLength = headerLength + payload.length;
  if (totalLength > 0xffff) {
    throw new RangeError(`Cannot encode an IPv4 packet of ${totalLength} bytes: at most 65535`);
  }
  const tos = checkField("tos", fields.tos ?? 0, 0xff);
  const identification = checkField("identification", fields.identification ?? 0, 0xffff);
  const flags = checkField("flags", fields.flags ?? IPV4_DONT_FRAGMENT, 0b111);
  const fragmentOffset = checkField("fragmentOffset", fields.fragmentOffset ?? 0, 0x1fff);
  const ttl = checkField("ttl", fields.ttl ?? 64, 0xff);
  const protocol = checkField("protocol", fields.protocol, 0xff);
  const packet = new Uint8Array(totalLength);
  const view = new DataView(packet.buffer);
  view.setUint8(0, 0x40 | (headerLength / 4));
  view.setUint8(1, tos);
  view.setUint16(2, totalLength);
  view.setUint16(4, identification);
  view.setUint16(6, (flags << 13) | fragmentOffset);
  view.setUint8(8, ttl);
  view.setUint8(9, protocol);
  packet.set(parseIPv4(fields.src), 12);
  packet.set(parseIPv4(fields.dst), 16);
  packet.set(options, 20);
  view.setUint16(10, internetChecksum(packet.subarray(0, headerLength)));
  packet.set(payload, headerLength);
  return packet;
}

/**
 * Decodes an IPv4 packet. Bytes after the total length (link-layer padding) are ignored.
 * Throws `RangeError` when the bytes end before the header or the packet does, and
 * `SyntaxError` when a field is impossible (version, header length, total length).
 *
 * @example
 * ```ts
 * import { decodeIPv4 } from "./ipv4.ts";
 * const hex = "4500001c976b40004001a5737f0000017f0000010800f7ff0000000000000000";
 * const bytes = Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
 * const { header } = decodeIPv4(bytes);
 * if (header.src !== "127.0.0.1" || header.protocol !== 1) throw new Error("bad decode");
 * ```
 */
export function decodeIPv4(bytes: Uint8Array): IPv4Packet {
  if (bytes.length < 20) {
    throw new RangeError(`Cannot decode IPv4: ${bytes.length} bytes, a header needs 20`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0) >> 4;
  if (version !== 4) throw new SyntaxError(`Cannot decode IPv4: version is ${version}, not 4`);
  const headerLength = (view.getUint8(0) & 0x0f) * 4;
  if (headerLength < 20) {
    throw new SyntaxError(`Cannot decode IPv4: header length ${headerLength} is below 20`);
  }
  const totalLength = view.getUint16(2);
  if (totalLength < headerLength) {
    throw new SyntaxError(
      `Cannot decode IPv4: total length ${totalLength} is below the header length ${headerLength}`,
    );
  }
  if (totalLength > bytes.length) {
    throw new RangeError(
      `Cannot decode IPv4: total length ${totalLength} but only ${bytes.length} bytes`,
    );
  }
  const fragment = view.getUint16(6);
  return {
    header: {
      headerLength,
      tos: view.getUint8(1),
      totalLength,
      identification: view.getUint16(4),
      flags: fragment >> 13,
      fragmentOffset: fragment & 0x1fff,
      ttl: view.getUint8(8),
      protocol: view.getUint8(9),
      checksum: view.getUint16(10),
      src: formatIPv4(bytes, 12),
      dst: formatIPv4(bytes, 16),
      options: bytes.subarray(20, headerLength),
    },
    payload: bytes.subarray(headerLength, totalLength),
  };
}
