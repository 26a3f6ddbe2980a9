/**
 * UDP headers (RFC 768) with the checksum over the IPv4 pseudo-header.
 * @module
 */
import { checkField, IPPROTO, type PseudoHeader, transportChecksum } from "./packet_fields.ts";

/** A decoded UDP header. */
export interface UdpHeader {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Header plus payload, in bytes. */
  length: number;
  /** Checksum as found; 0 means the sender computed none. */
  checksum: number;
}

/** A UDP datagram split into header and payload (a view into the decoded bytes). */
export interface UdpDatagram {
  /** The decoded header. */
  header: UdpHeader;
  /** The data, up to the length field. */
  payload: Uint8Array;
}

/**
 * Builds a UDP datagram with its checksum computed over the pseudo-header of `addresses`.
 *
 * @example
 * ```ts
 * import { decodeUdp, encodeUdp } from "./udp.ts";
 * const datagram = encodeUdp({ srcPort: 40000, dstPort: 5005 }, new Uint8Array([104, 105]), {
 *   src: "127.0.0.1",
 *   dst: "127.0.0.1",
 * });
 * if (decodeUdp(datagram).header.length !== 10) throw new Error("bad length");
 * ```
 */
export function encodeUdp(
  ports: { srcPort: number; dstPort: number },
  payload: Uint8Array,
  addresses: PseudoHeader,
): Uint8Array {
  const length = 8 + payload.length;
  if (length > 0xffff - 20) {
    throw new RangeError(`Cannot encode a UDP datagram of ${length} bytes: too long`);
  }
  const datagram = new Uint8Array(length);
  const view = new DataView(datagram.buffer);
  view.setUint16(0, checkField("srcPort", ports.srcPort, 0xffff));
  view.setUint16(2, checkField("dstPort", ports.dstPort, 0xffff));
  view.setUint16(4, length);
  datagram.set(payload, 8);
  const checksum = transportChecksum(addresses.src, addresses.dst, IPPROTO.UDP, datagram);
  // A computed 0 is sent as 0xffff: 0 on the wire means "no checksum" (RFC 768).
  view.setUint16(6, checksum === 0 ? 0xffff : checksum);
  return datagram;
}

/**
 * Decodes a UDP datagram; bytes after its length field's end are ignored. Throws `RangeError`
 * when the bytes end early and `SyntaxError` when the length field is below 8.
 *
 * @example
 * ```ts
 * import { decodeUdp } from "./udp.ts";
 * const hex = "9c40b0390015741b48656c6c6f2c20576f726c6421";
 * const { header, payload } = decodeUdp(Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16)));
 * if (header.dstPort !== 45113 || payload.length !== 13) throw new Error("bad decode");
 * ```
 */
export function decodeUdp(bytes: Uint8Array): UdpDatagram {
  if (bytes.length < 8) {
    throw new RangeError(`Cannot decode UDP: ${bytes.length} bytes, a header needs 8`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint16(4);
  if (length < 8) throw new SyntaxError(`Cannot decode UDP: length ${length} is below 8`);
  if (length > bytes.length) {
    throw new RangeError(`Cannot decode UDP: length ${length} but only ${bytes.length} bytes`);
  }
  return {
    header: {
      srcPort: view.getUint16(0),
      dstPort: view.getUint16(2),
      length,
      checksum: view.getUint16(6),
    },
    payload: bytes.subarray(8, length),
  };
}
