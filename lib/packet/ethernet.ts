/**
 * Ethernet II frame headers, as an `AF_PACKET` socket delivers them: on `lo` every frame has a
 * 14-byte header with zero MAC addresses.
 * @module
 */
import { checkField } from "./packet_fields.ts";

/** EtherType values used here. */
export const ETHER_TYPE = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, IPV6: 0x86dd } as const;

/** A decoded Ethernet header. */
export interface EthernetHeader {
  /** Destination MAC, `aa:bb:cc:dd:ee:ff`. */
  dst: string;
  /** Source MAC. */
  src: string;
  /** EtherType of the payload, see {@linkcode ETHER_TYPE}. */
  etherType: number;
}

/** An Ethernet frame split into header and payload (a view into the decoded bytes). */
export interface EthernetFrame {
  /** The decoded header. */
  header: EthernetHeader;
  /** The bytes after the header. */
  payload: Uint8Array;
}

/**
 * Builds an Ethernet frame: the 14-byte header, then `payload`.
 *
 * @example A loopback frame
 * ```ts
 * import { decodeEthernet, encodeEthernet, ETHER_TYPE } from "./ethernet.ts";
 * const frame = encodeEthernet(
 *   { dst: "00:00:00:00:00:00", src: "00:00:00:00:00:00", etherType: ETHER_TYPE.IPV4 },
 *   new Uint8Array(20),
 * );
 * if (decodeEthernet(frame).header.etherType !== 0x0800) throw new Error("bad type");
 * ```
 */
export function encodeEthernet(header: EthernetHeader, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(14 + payload.length);
  frame.set(parseMac(header.dst), 0);
  frame.set(parseMac(header.src), 6);
  new DataView(frame.buffer).setUint16(12, checkField("etherType", header.etherType, 0xffff));
  frame.set(payload, 14);
  return frame;
}

/**
 * Decodes an Ethernet II header. Throws `RangeError` for fewer than 14 bytes.
 *
 * @example
 * ```ts
 * import { decodeEthernet } from "./ethernet.ts";
 * const frame = new Uint8Array(14);
 * frame[12] = 0x08;
 * if (decodeEthernet(frame).header.src !== "00:00:00:00:00:00") throw new Error("bad MAC");
 * ```
 */
export function decodeEthernet(bytes: Uint8Array): EthernetFrame {
  if (bytes.length < 14) {
    throw new RangeError(`Cannot decode Ethernet: ${bytes.length} bytes, a header needs 14`);
  }
  return {
    header: {
      dst: formatMac(bytes.subarray(0, 6)),
      src: formatMac(bytes.subarray(6, 12)),
      etherType: (bytes[12] << 8) | bytes[13],
    },
    payload: bytes.subarray(14),
  };
}

function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(":");
}

function parseMac(text: string): Uint8Array {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) {
    throw new SyntaxError(`Cannot parse MAC address "${text}": must be six hex pairs`);
  }
  return Uint8Array.from(text.split(":"), (pair) => parseInt(pair, 16));
}
