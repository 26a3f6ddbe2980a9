/**
 * ICMP messages (RFC 792): any message's type, code and checksum, and the echo request and
 * reply that `ping` sends and gets.
 * @module
 */
import { internetChecksum } from "./checksum.ts";
import { checkField } from "./packet_fields.ts";

/** ICMP types used here. */
export const ICMP_TYPE = {
  ECHO_REPLY: 0,
  DESTINATION_UNREACHABLE: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
} as const;

/** A decoded ICMP message of any type. */
export interface IcmpMessage {
  /** Message type, see {@linkcode ICMP_TYPE}. */
  type: number;
  /** Code within the type (for destination unreachable, 3 is "port unreachable"). */
  code: number;
  /** Checksum as found. */
  checksum: number;
  /** Whether the checksum over the whole message is right. */
  checksumOk: boolean;
  /** The 4 bytes after the checksum, whose meaning depends on the type. */
  rest: Uint8Array;
  /** Everything after the first 8 bytes. */
  body: Uint8Array;
}

/** An echo request or reply. */
export interface IcmpEcho {
  /** {@linkcode ICMP_TYPE}.ECHO_REQUEST or ECHO_REPLY. */
  type: 0 | 8;
  /** Identifier, to match replies to the sender (ping uses its process id). */
  identifier: number;
  /** Sequence number. */
  sequence: number;
  /** The data, which a reply echoes back. */
  data: Uint8Array;
}

/**
 * Builds an echo request or reply with its checksum.
 *
 * @example
 * ```ts
 * import { decodeIcmpEcho, encodeIcmpEcho, ICMP_TYPE } from "./icmp.ts";
 * const bytes = encodeIcmpEcho({
 *   type: ICMP_TYPE.ECHO_REQUEST,
 *   identifier: 0x1234,
 *   sequence: 1,
 *   data: new Uint8Array(56),
 * });
 * if (decodeIcmpEcho(bytes).sequence !== 1) throw new Error("bad sequence");
 * ```
 */
export function encodeIcmpEcho(echo: IcmpEcho): Uint8Array {
  if (echo.type !== ICMP_TYPE.ECHO_REQUEST && echo.type !== ICMP_TYPE.ECHO_REPLY) {
    throw new RangeError(`Cannot encode ICMP type ${echo.type} as an echo: must be 0 or 8`);
  }
  if (echo.data.length > 0xffff - 28) {
    throw new RangeError(`Cannot encode ${echo.data.length} bytes of echo data: too long`);
  }
  const bytes = new Uint8Array(8 + echo.data.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, echo.type);
  view.setUint16(4, checkField("identifier", echo.identifier, 0xffff));
  view.setUint16(6, checkField("sequence", echo.sequence, 0xffff));
  bytes.set(echo.data, 8);
  view.setUint16(2, internetChecksum(bytes));
  return bytes;
}

/**
 * Decodes any ICMP message and checks its checksum. Throws `RangeError` for fewer than 8 bytes.
 *
 * @example A port unreachable
 * ```ts
 * import { decodeIcmp } from "./icmp.ts";
 * const message = decodeIcmp(new Uint8Array([3, 3, 0xfc, 0xfc, 0, 0, 0, 0]));
 * if (message.code !== 3 || !message.checksumOk) throw new Error("bad decode");
 * ```
 */
export function decodeIcmp(bytes: Uint8Array): IcmpMessage {
  if (bytes.length < 8) {
    throw new RangeError(`Cannot decode ICMP: ${bytes.length} bytes, a header needs 8`);
  }
  return {
    type: bytes[0],
    code: bytes[1],
    checksum: (bytes[2] << 8) | bytes[3],
    checksumOk: internetChecksum(bytes) === 0,
    rest: bytes.subarray(4, 8),
    body: bytes.subarray(8),
  };
}

/**
 * Decodes an echo request or reply. Throws `RangeError` for fewer than 8 bytes and
 * `SyntaxError` for another type or a code other than 0.
 *
 * @example
 * ```ts
 * import { decodeIcmpEcho } from "./icmp.ts";
 * const echo = decodeIcmpEcho(new Uint8Array([0, 0, 0xed, 0xca, 0x12, 0x34, 0, 1]));
 * if (echo.identifier !== 0x1234 || echo.type !== 0) throw new Error("bad decode");
 * ```
 */
export function decodeIcmpEcho(bytes: Uint8Array): IcmpEcho {
  return icmpEchoOf(decodeIcmp(bytes));
}

/**
 * The echo request or reply that an already decoded message is, for a caller that has checked
 * its checksum (the sum is computed once). Throws `SyntaxError` like
 * {@linkcode decodeIcmpEcho}.
 *
 * @example
 * ```ts
 * import { decodeIcmp, icmpEchoOf } from "./icmp.ts";
 * const message = decodeIcmp(new Uint8Array([0, 0, 0xed, 0xca, 0x12, 0x34, 0, 1]));
 * if (!message.checksumOk || icmpEchoOf(message).sequence !== 1) throw new Error("bad decode");
 * ```
 */
export function icmpEchoOf(message: IcmpMessage): IcmpEcho {
  if (message.type !== ICMP_TYPE.ECHO_REQUEST && message.type !== ICMP_TYPE.ECHO_REPLY) {
    throw new SyntaxError(`Cannot decode ICMP type ${message.type} as an echo: must be 0 or 8`);
  }
  if (message.code !== 0) {
    throw new SyntaxError(`Cannot decode ICMP echo: code is ${message.code}, not 0`);
  }
  return {
    type: message.type,
    identifier: (message.rest[0] << 8) | message.rest[1],
    sequence: (message.rest[2] << 8) | message.rest[3],
    data: message.body,
  };
}
