/**
 * TCP headers (RFC 9293): flags, options and data offset, with the checksum over the IPv4
 * pseudo-header. Decoding checks every length against the bytes at hand.
 * @module
 */
import { checkField, IPPROTO, type PseudoHeader, transportChecksum } from "./packet_fields.ts";

/** TCP flag bits, as in byte 13 of the header. */
export const TCP_FLAGS = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** TCP option kinds that {@linkcode describeTcpOptions} names. */
export const TCP_OPTION = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WSCALE: 3,
  SACK_PERMITTED: 4,
  TIMESTAMP: 8,
} as const;

/** A decoded TCP header. */
export interface TcpHeader {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Sequence number. */
  seq: number;
  /** Acknowledgment number. */
  ack: number;
  /** Header length in bytes, 20 to 60 (the data offset field times 4). */
  headerLength: number;
  /** Flag bits, see {@linkcode TCP_FLAGS}. */
  flags: number;
  /** Receive window. */
  window: number;
  /** Checksum as found. */
  checksum: number;
  /** Urgent pointer. */
  urgent: number;
  /** Options (header bytes after the first 20). */
  options: Uint8Array;
}

/** What {@linkcode encodeTcp} needs; the data offset and checksum are computed. */
export interface TcpFields {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Sequence number. @default {0} */
  seq?: number;
  /** Acknowledgment number. @default {0} */
  ack?: number;
  /** Flag bits, see {@linkcode TCP_FLAGS}. @default {0} */
  flags?: number;
  /** Receive window. @default {65535} */
  window?: number;
  /** Urgent pointer. @default {0} */
  urgent?: number;
  /** Options, padded by the caller to a multiple of 4 bytes, at most 40. @default {empty} */
  options?: Uint8Array;
}

/** A TCP segment split into header and payload (views into the decoded bytes). */
export interface TcpSegment {
  /** The decoded header. */
  header: TcpHeader;
  /** The data after the header. */
  payload: Uint8Array;
}

/** One TCP option: its kind and the bytes after kind and length. */
export interface TcpOption {
  /** Option kind, see {@linkcode TCP_OPTION}. */
  kind: number;
  /** The bytes after kind and length (empty for no-op and end-of-list). */
  data: Uint8Array;
}

/**
 * Builds a TCP segment with its checksum computed over the pseudo-header of `addresses`.
 *
 * @example A SYN
 * ```ts
 * import { decodeTcp, encodeTcp, TCP_FLAGS } from "./tcp.ts";
 * const segment = encodeTcp(
 *   { srcPort: 1234, dstPort: 80, seq: 1, flags: TCP_FLAGS.SYN },
 *   new Uint8Array(0),
 *   { src: "127.0.0.1", dst: "127.0.0.1" },
 * );
 * if (decodeTcp(segment).header.flags !== TCP_FLAGS.SYN) throw new Error("not a SYN");
 * ```
 */
export function encodeTcp(
  fields: TcpFields,
  payload: Uint8Array,
  addresses: PseudoHeader,
): Uint8Array {
  const options = fields.options ?? new Uint8Array(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(
      `Cannot encode ${options.length} bytes of TCP options: must be a multiple of 4, at most 40`,
    );
  }
  const headerLength = 20 + options.length;
  const segment = new Uint8Array(headerLength + payload.length);
  const view = new DataView(segment.buffer);
  view.setUint16(0, checkField("srcPort", fields.srcPort, 0xffff));
  view.setUint16(2, checkField("dstPort", fields.dstPort, 0xffff));
  view.setUint32(4, checkField("seq", fields.seq ?? 0, 0xffffffff));
  view.setUint32(8, checkField("ack", fields.ack ?? 0, 0xffffffff));
  view.setUint8(12, (headerLength / 4) << 4);
  view.setUint8(13, checkField("flags", fields.flags ?? 0, 0xff));
  view.setUint16(14, checkField("window", fields.window ?? 65535, 0xffff));
  view.setUint16(18, checkField("urgent", fields.urgent ?? 0, 0xffff));
  segment.set(options, 20);
  segment.set(payload, headerLength);
  if (segment.length > 0xffff - 20) {
    throw new RangeError(`Cannot encode a TCP segment of ${segment.length} bytes: too long`);
  }
  view.setUint16(16, transportChecksum(addresses.src, addresses.dst, IPPROTO.TCP, segment));
  return segment;
}

/**
 * Decodes a TCP segment. Throws `RangeError` when the bytes end inside the header and
 * `SyntaxError` when the data offset is below 5.
 *
 * @example
 * ```ts
 * import { decodeTcp, formatTcpFlags } from "./tcp.ts";
 * const hex = "b03ac90e0000000052bbee2750140000f7a10000";
 * const { header } = decodeTcp(Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16)));
 * if (formatTcpFlags(header.flags) !== "R.") throw new Error("not a RST-ACK");
 * ```
 */
export function decodeTcp(bytes: Uint8Array): TcpSegment {
  if (bytes.length < 20) {
    throw new RangeError(`Cannot decode TCP: ${bytes.length} bytes, a header needs 20`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = (view.getUint8(12) >> 4) * 4;
  if (headerLength < 20) {
    throw new SyntaxError(`Cannot decode TCP: data offset ${headerLength} is below 20`);
  }
  if (headerLength > bytes.length) {
    throw new RangeError(
      `Cannot decode TCP: header length ${headerLength} but only ${bytes.length} bytes`,
    );
  }
  return {
    header: {
      srcPort: view.getUint16(0),
      dstPort: view.getUint16(2),
      seq: view.getUint32(4),
      ack: view.getUint32(8),
      headerLength,
      flags: view.getUint8(13),
      window: view.getUint16(14),
      checksum: view.getUint16(16),
      urgent: view.getUint16(18),
      options: bytes.subarray(20, headerLength),
    },
    payload: bytes.subarray(headerLength),
  };
}

/**
 * Splits TCP option bytes into options, in order, as tcpdump lists them: no-ops (kind 1) are
 * kept, and an end-of-list (kind 0) is the last option (what follows it is padding). Throws
 * `SyntaxError` for an option whose length is below 2 or runs past the end.
 *
 * @example
 * ```ts
 * import { decodeTcpOptions } from "./tcp.ts";
 * const options = decodeTcpOptions(new Uint8Array([1, 2, 4, 0xff, 0xd7, 0, 0, 0]));
 * if (options.map((option) => option.kind).join() !== "1,2,0") throw new Error("bad options");
 * ```
 */
export function decodeTcpOptions(bytes: Uint8Array): TcpOption[] {
  const options: TcpOption[] = [];
  let i = 0;
  while (i < bytes.length) {
    const kind = bytes[i];
    if (kind === TCP_OPTION.EOL || kind === TCP_OPTION.NOP) {
      options.push({ kind, data: bytes.subarray(i + 1, i + 1) });
      if (kind === TCP_OPTION.EOL) break;
      i++;
      continue;
    }
    if (i + 1 >= bytes.length) {
      throw new SyntaxError(`Cannot decode TCP option ${kind}: its length byte is missing`);
    }
    const length = bytes[i + 1];
    if (length < 2 || i + length > bytes.length) {
      throw new SyntaxError(
        `Cannot decode TCP option ${kind}: length ${length} does not fit ${bytes.length - i} bytes`,
      );
    }
    options.push({ kind, data: bytes.subarray(i + 2, i + length) });
    i += length;
  }
  return options;
}

/**
 * Describes TCP options the way `tcpdump` does:
 * `mss 65495,sackOK,TS val 1 ecr 0,nop,wscale 10`.
 *
 * @example
 * ```ts
 * import { describeTcpOptions } from "./tcp.ts";
 * const text = describeTcpOptions(new Uint8Array([2, 4, 0xff, 0xd7, 1, 3, 3, 10]));
 * if (text !== "mss 65495,nop,wscale 10") throw new Error(text);
 * ```
 */
export function describeTcpOptions(bytes: Uint8Array): string {
  return decodeTcpOptions(bytes).map(({ kind, data }) => {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (kind === TCP_OPTION.EOL) return "eol";
    if (kind === TCP_OPTION.NOP) return "nop";
    if (kind === TCP_OPTION.MSS && data.length === 2) return `mss ${view.getUint16(0)}`;
    if (kind === TCP_OPTION.WSCALE && data.length === 1) return `wscale ${data[0]}`;
    if (kind === TCP_OPTION.SACK_PERMITTED && data.length === 0) return "sackOK";
    if (kind === TCP_OPTION.TIMESTAMP && data.length === 8) {
      return `TS val ${view.getUint32(0)} ecr ${view.getUint32(4)}`;
    }
    return `opt-${kind} len ${data.length}`;
  }).join(",");
}

/**
 * Formats TCP flags as `tcpdump` does: `S` SYN, `F` FIN, `R` RST, `P` PSH, `U` URG, `E` ECE,
 * `W` CWR, and `.` for ACK; `S.` is a SYN-ACK.
 *
 * @example
 * ```ts
 * import { formatTcpFlags, TCP_FLAGS } from "./tcp.ts";
 * if (formatTcpFlags(TCP_FLAGS.SYN | TCP_FLAGS.ACK) !== "S.") throw new Error("bad flags");
 * ```
 */
export function formatTcpFlags(flags: number): string {
  let text = "";
  for (const [bit, letter] of FLAG_LETTERS) if (flags & bit) text += letter;
  return text || "none";
}

const FLAG_LETTERS: [number, string][] = [
  [TCP_FLAGS.SYN, "S"],
  [TCP_FLAGS.FIN, "F"],
  [TCP_FLAGS.RST, "R"],
  [TCP_FLAGS.PSH, "P"],
  [TCP_FLAGS.URG, "U"],
  [TCP_FLAGS.ECE, "E"],
  [TCP_FLAGS.CWR, "W"],
  [TCP_FLAGS.ACK, "."],
];
