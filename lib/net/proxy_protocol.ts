/**
 * The PROXY protocol, versions 1 and 2 (HAProxy's `proxy-protocol.txt`): the header a load
 * balancer puts in front of every connection it relays, so that the server learns the client's
 * real address. Version 1 is one line of text (`PROXY TCP4 192.168.0.1 192.168.0.11 56324
 * 443\r\n`, at most 107 bytes); version 2 is binary (a 12-byte signature, version and command,
 * family and transport, an address block, then TLVs). {@linkcode decodeProxyHeader} tells them
 * apart from the first byte and is strict: anything that does not match the specification
 * exactly is a {@linkcode ProxyHeaderError}, never a guess and never a read out of bounds.
 * {@linkcode encodeProxyHeader} writes either version, for clients and relays that send one.
 * @module
 */
import { escapeBytes } from "../escape.ts";
import { UsageError } from "../errors.ts";
import { formatIP, ipBytes, parseIPv4, parseIPv6 } from "./ip_text.ts";

/** The longest version 1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses). */
export const PROXY_V1_MAX_LENGTH = 107;
/** The 12 bytes every version 2 header starts with. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
/** Version 2 TLV types of the specification (section 2.2). */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;
/** The longest header {@linkcode decodeProxyHeader} accepts unless told otherwise: room for
 * every TLV HAProxy sends (ALPN, authority, unique ID, SSL details, CRC32C). */
export const DEFAULT_MAX_HEADER_LENGTH = 4096;

const V1_PREFIX = new TextEncoder().encode("PROXY ");
const V2_HEADER_LENGTH = 16;
const UNIX_PATH_BYTES = 108;

/** One version 2 Type-Length-Value field. */
export interface ProxyTlv {
  /** The type (see {@linkcode PP2_TYPE}). */
  type: number;
  /** The value, a copy. */
  value: Uint8Array;
}

/** A decoded PROXY protocol header. */
export interface ProxyHeader {
  /** 1 (text) or 2 (binary). */
  version: 1 | 2;
  /** `proxy`: relayed for a client; `local`: the balancer's own connection (a health check),
   * whose real socket addresses stand. */
  command: "proxy" | "local";
  /** The client's address, when the header carries one (not for `local`, v1 `UNKNOWN` or a
   * v2 `UNSPEC` family): use the socket's own addresses then. */
  source?: Deno.NetAddr | Deno.UnixAddr;
  /** The address the client connected to, when the header carries one. */
  destination?: Deno.NetAddr | Deno.UnixAddr;
  /** Version 2 TLVs in order (the CRC32C one is checked already). */
  tlvs: ProxyTlv[];
}

/** The outcome of {@linkcode decodeProxyHeader}: a header and its length, or how many bytes
 * to have before trying again. */
export type ProxyDecodeResult =
  | { header: ProxyHeader; length: number }
  | { header: undefined; needed: number };

/** A header that breaks the specification: the connection must be closed. */
export class ProxyHeaderError extends Error {
  /** An error whose message says what is wrong, e.g. `Bad PROXY v1 source port "080"`. */
  constructor(message: string) {
    super(message);
    this.name = "ProxyHeaderError";
  }
}

/** Options for {@linkcode decodeProxyHeader}. */
export interface DecodeOptions {
  /** Refuse a version 2 header longer than this (16 bytes plus addresses plus TLVs).
   * @default {4096} */
  maxLength?: number;
}

/**
 * Decodes the PROXY header at the start of `bytes`, as much of the connection as has arrived.
 * Returns the header and its length (the bytes after it are the application's), or `needed`
 * when the bytes so far are a valid beginning; throws {@linkcode ProxyHeaderError} as soon as
 * they cannot be one: garbage is refused from its first byte, not after a timeout.
 *
 * @example The specification's version 1 example
 * ```ts
 * import { decodeProxyHeader } from "./proxy_protocol.ts";
 * const bytes = new TextEncoder().encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
 * const result = decodeProxyHeader(bytes);
 * if (result.header === undefined) throw new Error("incomplete");
 * const source = result.header.source as Deno.NetAddr;
 * if (source.hostname !== "192.168.0.1" || source.port !== 56324) throw new Error();
 * if (result.length !== 47) throw new Error(`${result.length}`);
 * ```
 */
export function decodeProxyHeader(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): ProxyDecodeResult {
  const maxLength = options.maxLength ?? DEFAULT_MAX_HEADER_LENGTH;
  if (bytes.length === 0) return { header: undefined, needed: 1 };
  if (bytes[0] === PROXY_V2_SIGNATURE[0]) return decodeV2(bytes, maxLength);
  if (bytes[0] === V1_PREFIX[0]) return decodeV1(bytes);
  throw notAHeader(bytes);
}

function notAHeader(bytes: Uint8Array): ProxyHeaderError {
  const shown = escapeBytes(bytes.subarray(0, 16), { maxBytes: 16 });
  return new ProxyHeaderError(`Not a PROXY protocol header: starts with "${shown}"`);
}

function decodeV1(bytes: Uint8Array): ProxyDecodeResult {
  const prefix = Math.min(bytes.length, V1_PREFIX.length);
  for (let i = 0; i < prefix; i++) if (bytes[i] !== V1_PREFIX[i]) throw notAHeader(bytes);
  const scan = Math.min(bytes.length, PROXY_V1_MAX_LENGTH);
  for (let i = 0; i < scan; i++) {
    const byte = bytes[i];
    if (byte === 0x0d) {
      if (i + 1 === bytes.length) return { header: undefined, needed: i + 2 };
      if (bytes[i + 1] !== 0x0a) {
        throw new ProxyHeaderError("PROXY v1 line ends with CR without LF");
      }
      return { header: parseV1Line(String.fromCharCode(...bytes.subarray(0, i))), length: i + 2 };
    }
    if (byte < 0x20 || byte > 0x7e) {
      const shown = escapeBytes(bytes.subarray(i, i + 1));
      throw new ProxyHeaderError(`PROXY v1 line holds "${shown}" before its CRLF`);
    }
  }
  if (bytes.length >= PROXY_V1_MAX_LENGTH) {
    throw new ProxyHeaderError(
      `PROXY v1 line has no CRLF in its first ${PROXY_V1_MAX_LENGTH} bytes`,
    );
  }
  return { header: undefined, needed: bytes.length + 1 };
}

function parseV1Line(line: string): ProxyHeader {
  const fields = line.split(" ");
  const protocol = fields[1];
  // UNKNOWN: the receiver ignores the rest of the line and uses the socket's addresses.
  if (protocol === "UNKNOWN") return { version: 1, command: "proxy", tlvs: [] };
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    throw new ProxyHeaderError(
      `Bad PROXY v1 protocol "${protocol ?? ""}": not TCP4, TCP6 or UNKNOWN`,
    );
  }
  if (fields.length !== 6) {
    throw new ProxyHeaderError(
      `Bad PROXY v1 line "${line}": expected 6 fields separated by one space`,
    );
  }
  const parse = protocol === "TCP4" ? parseIPv4 : parseIPv6;
  const [, , sourceText, destinationText, sourcePort, destinationPort] = fields;
  const source = parse(sourceText);
  const destination = parse(destinationText);
  if (source === undefined) {
    throw new ProxyHeaderError(`Bad PROXY v1 ${protocol} source address "${sourceText}"`);
  }
  if (destination === undefined) {
    throw new ProxyHeaderError(`Bad PROXY v1 ${protocol} destination address "${destinationText}"`);
  }
  return {
    version: 1,
    command: "proxy",
    source: netAddr("tcp", formatIP(source), v1Port(sourcePort, "source")),
    destination: netAddr("tcp", formatIP(destination), v1Port(destinationPort, "destination")),
    tlvs: [],
  };
}

function v1Port(text: string, which: string): number {
  // No leading zeros, as for addresses.
  const port = /^(0|[1-9]\d{0,4})$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535)) throw new ProxyHeaderError(`Bad PROXY v1 ${which} port "${text}"`);
  return port;
}

function decodeV2(bytes: Uint8Array, maxLength: number): ProxyDecodeResult {
  const signed = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < signed; i++) if (bytes[i] !== PROXY_V2_SIGNATURE[i]) throw notAHeader(bytes);
  if (bytes.length < V2_HEADER_LENGTH) {
    if (bytes.length > 12) checkVersionCommand(bytes[12]);
    return { header: undefined, needed: V2_HEADER_LENGTH };
  }
  const command = checkVersionCommand(bytes[12]);
  const family = bytes[13] >> 4;
  const transport = bytes[13] & 0x0f;
  if (family > 3) throw new ProxyHeaderError(`Bad PROXY v2 address family 0x${hex(family)}`);
  if (transport > 2) throw new ProxyHeaderError(`Bad PROXY v2 transport 0x${hex(transport)}`);
  const length = V2_HEADER_LENGTH + ((bytes[14] << 8) | bytes[15]);
  if (length > maxLength) {
    throw new ProxyHeaderError(
      `PROXY v2 header of ${length} bytes is longer than the limit of ${maxLength}`,
    );
  }
  if (bytes.length < length) return { header: undefined, needed: length };
  const block = bytes.subarray(V2_HEADER_LENGTH, length);
  // An unspecified family or transport: no addresses to read (the receiver uses its own).
  const size = family === 0 || transport === 0 ? 0 : [0, 12, 36, 2 * UNIX_PATH_BYTES][family];
  if (block.length < size) {
    throw new ProxyHeaderError(
      `PROXY v2 address block of ${block.length} bytes is too short for family 0x${
        hex(family)
      } (${size})`,
    );
  }
  const tlvs = parseTlvs(bytes.subarray(0, length), V2_HEADER_LENGTH + size);
  const header: ProxyHeader = { version: 2, command, tlvs };
  // LOCAL: "the receiver must use the real connection endpoints and discard the protocol block".
  if (command === "proxy" && size > 0) {
    [header.source, header.destination] = v2Addresses(block, family, transport);
  }
  return { header, length };
}

function checkVersionCommand(byte: number): "proxy" | "local" {
  if (byte >> 4 !== 2) {
    throw new ProxyHeaderError(`Unsupported PROXY protocol version ${byte >> 4}`);
  }
  const command = byte & 0x0f;
  if (command > 1) throw new ProxyHeaderError(`Bad PROXY v2 command 0x${hex(command)}`);
  return command === 1 ? "proxy" : "local";
}

function v2Addresses(
  block: Uint8Array,
  family: number,
  transport: number,
): [Deno.NetAddr | Deno.UnixAddr, Deno.NetAddr | Deno.UnixAddr] {
  if (family === 3) return [unixAddr(block.subarray(0, 108)), unixAddr(block.subarray(108, 216))];
  const ipLength = family === 1 ? 4 : 16;
  const ports = new DataView(block.buffer, block.byteOffset + 2 * ipLength, 4);
  const kind = transport === 1 ? "tcp" : "udp";
  return [
    netAddr(kind, formatIP(block.subarray(0, ipLength)), ports.getUint16(0)),
    netAddr(kind, formatIP(block.subarray(ipLength, 2 * ipLength)), ports.getUint16(2)),
  ];
}

function unixAddr(field: Uint8Array): Deno.UnixAddr {
  const end = field.indexOf(0);
  const path = new TextDecoder().decode(end === -1 ? field : field.subarray(0, end));
  return { transport: "unix", path };
}

function parseTlvs(header: Uint8Array, start: number): ProxyTlv[] {
  const tlvs: ProxyTlv[] = [];
  let crc: { at: number; value: number } | undefined;
  for (let at = start; at < header.length;) {
    if (at + 3 > header.length) {
      throw new ProxyHeaderError(`PROXY v2 TLV at byte ${at} is cut short`);
    }
    const type = header[at];
    const length = (header[at + 1] << 8) | header[at + 2];
    const end = at + 3 + length;
    if (end > header.length) {
      throw new ProxyHeaderError(`PROXY v2 TLV 0x${hex(type)} at byte ${at} runs past the header`);
    }
    const value = header.slice(at + 3, end);
    if (type === PP2_TYPE.CRC32C) {
      if (length !== 4) throw new ProxyHeaderError(`PROXY v2 CRC32C TLV of ${length} bytes`);
      crc = { at: at + 3, value: new DataView(value.buffer).getUint32(0) };
    }
    tlvs.push({ type, value });
    at = end;
  }
  if (crc !== undefined) {
    const zeroed = header.slice();
    zeroed.fill(0, crc.at, crc.at + 4);
    if (crc32c(zeroed) !== crc.value) {
      throw new ProxyHeaderError("PROXY v2 header fails its CRC32C check");
    }
  }
  return tlvs;
}

function netAddr(transport: "tcp" | "udp", hostname: string, port: number): Deno.NetAddr {
  return { transport, hostname, port };
}

function hex(value: number): string {
  return value.toString(16).padStart(2, "0");
}

let crcTable: Uint32Array | undefined;

/**
 * CRC32C (Castagnoli, RFC 4960 appendix B) of `bytes`, as the version 2 `PP2_TYPE_CRC32C` TLV
 * carries it.
 *
 * @example The check value of the CRC catalogue
 * ```ts
 * import { crc32c } from "./proxy_protocol.ts";
 * if (crc32c(new TextEncoder().encode("123456789")) !== 0xe3069283) throw new Error();
 * ```
 */
export function crc32c(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** What to put in a header made by {@linkcode encodeProxyHeader}. */
export interface ProxyHeaderInit {
  /** `local` for the sender's own connection (version 2 only; version 1 sends `UNKNOWN`).
   * @default {"proxy"} */
  command?: "proxy" | "local";
  /** The client's address (an IP literal, or a Unix path for version 2). Without both
   * addresses the header says `UNKNOWN` (v1) or `UNSPEC` (v2). */
  source?: Deno.Addr;
  /** The address the client connected to. */
  destination?: Deno.Addr;
  /** Version 2 TLVs to append. */
  tlvs?: readonly ProxyTlv[];
  /** Append a CRC32C TLV over the whole header (version 2). @default {false} */
  crc32c?: boolean;
}

/**
 * Encodes a PROXY header of `version` 1 or 2. An IPv4 address beside an IPv6 one is mapped
 * into IPv6 (as HAProxy does); addresses that version 1 cannot carry make it `UNKNOWN`.
 *
 * @example Version 2 for a TCP client over IPv4
 * ```ts
 * import { decodeProxyHeader, encodeProxyHeader } from "./proxy_protocol.ts";
 * const bytes = encodeProxyHeader(2, {
 *   source: { transport: "tcp", hostname: "172.19.0.1", port: 42578 },
 *   destination: { transport: "tcp", hostname: "172.19.0.3", port: 80 },
 * });
 * if (bytes.length !== 28 || bytes[12] !== 0x21 || bytes[13] !== 0x11) throw new Error();
 * const { header } = decodeProxyHeader(bytes);
 * if ((header?.source as Deno.NetAddr).port !== 42578) throw new Error();
 * ```
 */
export function encodeProxyHeader(version: 1 | 2, init: ProxyHeaderInit = {}): Uint8Array {
  if (version === 1) return new TextEncoder().encode(v1Line(init));
  if (version !== 2) throw new RangeError(`Cannot encode PROXY protocol version "${version}"`);
  const command = init.command ?? "proxy";
  const [familyByte, addresses] = command === "local"
    ? [0x00, new Uint8Array(0)]
    : v2AddressBlock(init.source, init.destination);
  const tlvs = [...(init.tlvs ?? [])];
  if (init.crc32c) tlvs.push({ type: PP2_TYPE.CRC32C, value: new Uint8Array(4) });
  const tlvLength = tlvs.reduce((sum, tlv) => sum + 3 + tlv.value.length, 0);
  const length = addresses.length + tlvLength;
  if (length > 0xffff) throw new RangeError(`Cannot encode a PROXY v2 header of ${length} bytes`);
  const bytes = new Uint8Array(V2_HEADER_LENGTH + length);
  bytes.set(PROXY_V2_SIGNATURE);
  bytes[12] = command === "local" ? 0x20 : 0x21;
  bytes[13] = familyByte;
  new DataView(bytes.buffer).setUint16(14, length);
  bytes.set(addresses, V2_HEADER_LENGTH);
  let at = V2_HEADER_LENGTH + addresses.length;
  for (const tlv of tlvs) {
    bytes[at] = tlv.type;
    new DataView(bytes.buffer).setUint16(at + 1, tlv.value.length);
    bytes.set(tlv.value, at + 3);
    at += 3 + tlv.value.length;
  }
  if (init.crc32c) new DataView(bytes.buffer).setUint32(bytes.length - 4, crc32c(bytes));
  return bytes;
}

function v1Line({ command, source, destination }: ProxyHeaderInit): string {
  const ips = command === "local" ? undefined : ipPair(source, destination);
  if (ips === undefined || source?.transport !== "tcp") return "PROXY UNKNOWN\r\n";
  const [from, to] = ips;
  const protocol = from.length === 4 ? "TCP4" : "TCP6";
  const ports = `${(source as Deno.NetAddr).port} ${(destination as Deno.NetAddr).port}`;
  return `PROXY ${protocol} ${formatIP(from)} ${formatIP(to)} ${ports}\r\n`;
}

/** Both addresses as bytes of one family (IPv4 mapped into IPv6 beside an IPv6 one). */
function ipPair(source?: Deno.Addr, destination?: Deno.Addr): [Uint8Array, Uint8Array] | undefined {
  if (source === undefined || destination === undefined) return undefined;
  if (!("hostname" in source) || !("hostname" in destination)) return undefined;
  if (source.transport !== destination.transport) return undefined;
  let from = ipBytes(source.hostname);
  let to = ipBytes(destination.hostname);
  if (from === undefined || to === undefined) {
    const name = from === undefined ? source.hostname : destination.hostname;
    throw new TypeError(`Cannot put "${name}" in a PROXY header: not an IP address`);
  }
  if (from.length !== to.length) {
    from = ipBytes(source.hostname, true)!;
    to = ipBytes(destination.hostname, true)!;
  }
  return [from, to];
}

function v2AddressBlock(source?: Deno.Addr, destination?: Deno.Addr): [number, Uint8Array] {
  if (source?.transport === "unix" && destination?.transport === "unix") {
    const block = new Uint8Array(2 * UNIX_PATH_BYTES);
    [source.path, destination.path].forEach((path, i) => {
      const bytes = new TextEncoder().encode(path);
      if (bytes.length >= UNIX_PATH_BYTES) {
        throw new TypeError(`Cannot put Unix path "${path}" in a PROXY header: over 107 bytes`);
      }
      block.set(bytes, i * UNIX_PATH_BYTES);
    });
    return [0x31, block];
  }
  const ips = ipPair(source, destination);
  if (ips === undefined) return [0x00, new Uint8Array(0)];
  const [from, to] = ips;
  const block = new Uint8Array(2 * from.length + 4);
  block.set(from);
  block.set(to, from.length);
  const view = new DataView(block.buffer);
  view.setUint16(2 * from.length, (source as Deno.NetAddr).port);
  view.setUint16(2 * from.length + 2, (destination as Deno.NetAddr).port);
  const transport = source!.transport === "udp" ? 2 : 1;
  return [(from.length === 4 ? 0x10 : 0x20) | transport, block];
}

/**
 * Parses a `--send-proxy` value: `v1`/`1` or `v2`/`2`.
 *
 * @example
 * ```ts
 * import { parseProxyVersion } from "./proxy_protocol.ts";
 * if (parseProxyVersion("v2") !== 2) throw new Error();
 * ```
 */
export function parseProxyVersion(text: string, flag = "--send-proxy"): 1 | 2 {
  const match = /^v?([12])$/i.exec(text);
  if (match === null) throw new UsageError(`Cannot parse ${flag} "${text}": must be v1 or v2`);
  return match[1] === "1" ? 1 : 2;
}
