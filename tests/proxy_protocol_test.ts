import { assertEquals, assertThrows } from "@std/assert";
import {
  crc32c,
  decodeProxyHeader,
  encodeProxyHeader,
  parseProxyVersion,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyDecodeResult,
  ProxyHeaderError,
} from "../lib/net/proxy_protocol.ts";
import { formatIP, parseIPv6 } from "../lib/net/ip_text.ts";

const encoder = new TextEncoder();
const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

function decoded(result: ProxyDecodeResult) {
  if (result.header === undefined) throw new Error(`incomplete: needs ${result.needed} bytes`);
  return result;
}

function hexBytes(text: string): Uint8Array {
  return new Uint8Array(text.trim().split(/\s+/).map((byte) => parseInt(byte, 16)));
}

Deno.test("decodeProxyHeader() reads the specification's v1 example and leaves the request", () => {
  const bytes = encoder.encode(
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n",
  );
  const { header, length } = decoded(decodeProxyHeader(bytes));
  assertEquals(header, {
    version: 1,
    command: "proxy",
    source: tcp("192.168.0.1", 56324),
    destination: tcp("192.168.0.11", 443),
    tlvs: [],
  });
  assertEquals(new TextDecoder().decode(bytes.subarray(length)).slice(0, 14), "GET / HTTP/1.1");
});

Deno.test("decodeProxyHeader() accepts the specification's longest v1 lines", () => {
  const ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const lines = [
    "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", // 56
    `PROXY TCP6 ${ffff} ${ffff} 65535 65535\r\n`, // 104
    "PROXY UNKNOWN\r\n", // 15
    `PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`, // 107, the worst case
  ];
  assertEquals(lines.map((line) => line.length), [56, 104, 15, PROXY_V1_MAX_LENGTH]);
  for (const line of lines) {
    assertEquals(decoded(decodeProxyHeader(encoder.encode(line))).length, line.length);
  }
  const unknown = decoded(decodeProxyHeader(encoder.encode(lines[3]))).header;
  assertEquals(unknown.source, undefined, "UNKNOWN: the socket's own addresses stand");
});

Deno.test("decodeProxyHeader() reads HAProxy's v2 header for TCP over IPv4", () => {
  // send-proxy-v2 from 172.19.0.1:42578 to 172.19.0.3:80, then "GET ".
  const bytes = hexBytes(`
    0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 0c
    ac 13 00 01 ac 13 00 03 a6 52 00 50 47 45 54 20`);
  const { header, length } = decoded(decodeProxyHeader(bytes));
  assertEquals(length, 28);
  assertEquals(header.source, tcp("172.19.0.1", 42578));
  assertEquals(header.destination, tcp("172.19.0.3", 80));
  assertEquals(encodeProxyHeader(2, header), bytes.subarray(0, 28));
});

Deno.test("decodeProxyHeader() reads v2 IPv6, UDP, Unix, LOCAL and UNSPEC headers", () => {
  const v6 = { source: tcp("2001:db8::7", 1234), destination: tcp("::1", 10000) };
  assertEquals(decoded(decodeProxyHeader(encodeProxyHeader(2, v6))).header.source, v6.source);
  const udp = {
    source: { transport: "udp", hostname: "10.0.0.1", port: 53 } as Deno.NetAddr,
    destination: { transport: "udp", hostname: "10.0.0.2", port: 53 } as Deno.NetAddr,
  };
  const udpBytes = encodeProxyHeader(2, udp);
  assertEquals(udpBytes[13], 0x12);
  assertEquals(decoded(decodeProxyHeader(udpBytes)).header.source, udp.source);
  const unix = {
    source: { transport: "unix", path: "/run/client.sock" } as Deno.UnixAddr,
    destination: { transport: "unix", path: "/run/server.sock" } as Deno.UnixAddr,
  };
  const unixBytes = encodeProxyHeader(2, unix);
  assertEquals(unixBytes.length, 16 + 216);
  assertEquals(decoded(decodeProxyHeader(unixBytes)).header.destination, unix.destination);
  // LOCAL (a health check) carries no addresses the receiver may use, even if some are sent.
  const local = encodeProxyHeader(2, { ...v6, command: "local" });
  assertEquals([...local.subarray(12)], [0x20, 0x00, 0x00, 0x00]);
  const withAddresses = encodeProxyHeader(2, v6);
  withAddresses[12] = 0x20;
  const { header } = decoded(decodeProxyHeader(withAddresses));
  assertEquals([header.command, header.source], ["local", undefined]);
  const unspec = decoded(decodeProxyHeader(encodeProxyHeader(2, {}))).header;
  assertEquals([unspec.command, unspec.source], ["proxy", undefined]);
});

Deno.test("decodeProxyHeader() skips TLVs and checks a CRC32C", () => {
  const tlvs = [
    { type: 0x01, value: encoder.encode("h2") },
    { type: 0x04, value: new Uint8Array(0) },
    { type: 0xe0, value: new Uint8Array(300).fill(7) },
  ];
  const init = { source: tcp("192.0.2.1", 1), destination: tcp("192.0.2.2", 2), tlvs };
  const bytes = encodeProxyHeader(2, { ...init, crc32c: true });
  const { header, length } = decoded(decodeProxyHeader(bytes));
  assertEquals(length, bytes.length);
  assertEquals(header.tlvs.slice(0, 3), tlvs);
  assertEquals(header.tlvs[3].type, 0x03);
  const corrupted = bytes.slice();
  corrupted[17] ^= 1; // one bit of the source address
  assertThrows(() => decodeProxyHeader(corrupted), ProxyHeaderError, "CRC32C");
  assertEquals(crc32c(encoder.encode("123456789")), 0xe3069283);
});

Deno.test("decodeProxyHeader() asks for more bytes while what it has is a valid beginning", () => {
  const v1 = encoder.encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  const v2 = encodeProxyHeader(2, { source: tcp("10.1.2.3", 4), destination: tcp("10.1.2.4", 5) });
  for (const whole of [v1, v2]) {
    for (let n = 0; n < whole.length; n++) {
      const result = decodeProxyHeader(whole.subarray(0, n));
      assertEquals(result.header, undefined, `${n} bytes`);
      if (result.header === undefined && !(result.needed > n && result.needed <= whole.length)) {
        throw new Error(`${n} bytes: needed ${result.needed}`);
      }
    }
    assertEquals(decoded(decodeProxyHeader(whole)).length, whole.length);
  }
});

Deno.test("decodeProxyHeader() refuses malformed v1 lines", () => {
  const bad: [string, string][] = [
    ["GET / HTTP/1.1\r\n", "Not a PROXY protocol header"],
    ["PROXY\r\n", "Not a PROXY protocol header"],
    ["PROXYTCP4 1.2.3.4 1.2.3.4 1 2\r\n", "Not a PROXY protocol header"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "holds"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", "CR without LF"],
    ["PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "protocol"],
    ["PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "6 fields"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "6 fields"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "6 fields"],
    ["PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", "source address"],
    ["PROXY TCP4 1.2.3.4 1.2.3.256 1 2\r\n", "destination address"],
    ["PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "source address"],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source address"],
    ["PROXY TCP6 ::1 1::2::3 1 2\r\n", "destination address"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", "source port"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n", "destination port"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "source port"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x00\r\n", "holds"],
    [`PROXY UNKNOWN ${"f".repeat(100)}\r\n`, "no CRLF in its first 107 bytes"],
  ];
  for (const [line, message] of bad) {
    assertThrows(() => decodeProxyHeader(encoder.encode(line)), ProxyHeaderError, message);
  }
});

Deno.test("decodeProxyHeader() refuses malformed v2 headers", () => {
  const good = encodeProxyHeader(2, {
    source: tcp("10.0.0.1", 1),
    destination: tcp("10.0.0.2", 2),
  });
  const with_ = (at: number, byte: number) => {
    const bytes = good.slice();
    bytes[at] = byte;
    return bytes;
  };
  const bad: [Uint8Array, string][] = [
    [with_(11, 0x0b), "Not a PROXY protocol header"],
    [with_(12, 0x11), "version 1"],
    [with_(12, 0x31), "version 3"],
    [with_(12, 0x22), "command 0x02"],
    [with_(13, 0x41), "family 0x04"],
    [with_(13, 0x13), "transport 0x03"],
    [with_(15, 0x08), "too short"],
    [with_(13, 0x21), "too short"], // IPv6 needs 36 bytes, 12 given
    [new Uint8Array([...good.subarray(0, 14), 0xff, 0xff]), "longer than the limit"],
    [new Uint8Array([...with_(15, 13), 0x04]), "cut short"],
    [new Uint8Array([...with_(15, 16), 0x04, 0x00, 0x05, 0x00]), "runs past"],
    [new Uint8Array([...with_(15, 17), 0x03, 0x00, 0x02, 0x00, 0x00]), "CRC32C TLV of 2"],
  ];
  for (const [bytes, message] of bad) {
    assertThrows(() => decodeProxyHeader(bytes), ProxyHeaderError, message);
  }
  // Garbage is refused from its first byte: no waiting for a timeout.
  assertThrows(() => decodeProxyHeader(new Uint8Array([0x16])), ProxyHeaderError);
  assertThrows(() => decodeProxyHeader(encoder.encode("\r\n\r\nX")), ProxyHeaderError);
});

Deno.test("decodeProxyHeader() never reads out of bounds on random and mutated input", () => {
  // A seeded generator: a failure reproduces.
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const seeds = [
    encoder.encode("PROXY TCP6 2001:db8::1 2001:db8::2 65535 1\r\n"),
    encodeProxyHeader(2, {
      source: tcp("2001:db8::1", 1),
      destination: tcp("2001:db8::2", 2),
      tlvs: [{ type: 5, value: new Uint8Array(20) }],
      crc32c: true,
    }),
  ];
  for (let i = 0; i < 20_000; i++) {
    const base = seeds[i % 2];
    const bytes = random() < 0.2
      ? new Uint8Array(Math.floor(random() * 64)).map(() => Math.floor(random() * 256))
      : base.slice(0, Math.floor(random() * (base.length + 1)));
    for (let flips = Math.floor(random() * 3); flips > 0 && bytes.length > 0; flips--) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    try {
      const result = decodeProxyHeader(bytes);
      if (result.header !== undefined && result.length > bytes.length) {
        throw new Error(`length ${result.length} beyond ${bytes.length} bytes`);
      }
    } catch (error) {
      if (!(error instanceof ProxyHeaderError)) throw error;
    }
  }
});

Deno.test("encodeProxyHeader() writes v1 lines, maps mixed families and falls back to UNKNOWN", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assertEquals(
    text(
      encodeProxyHeader(1, {
        source: tcp("192.168.0.1", 56324),
        destination: tcp("192.168.0.11", 443),
      }),
    ),
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
  );
  assertEquals(
    text(encodeProxyHeader(1, { source: tcp("10.0.0.1", 1), destination: tcp("::1", 2) })),
    "PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n",
  );
  const unix = { transport: "unix", path: "/x" } as Deno.UnixAddr;
  assertEquals(
    text(encodeProxyHeader(1, { source: unix, destination: unix })),
    "PROXY UNKNOWN\r\n",
  );
  assertEquals(text(encodeProxyHeader(1, { command: "local" })), "PROXY UNKNOWN\r\n");
  const v2 = encodeProxyHeader(2, { source: tcp("10.0.0.1", 1), destination: tcp("::1", 2) });
  assertEquals(v2.subarray(0, 12), PROXY_V2_SIGNATURE);
  assertEquals(v2[13], 0x21);
});

Deno.test("formatIP() and parseIPv6() agree with RFC 5952 and inet_pton", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ];
  for (const [input, canonical] of cases) assertEquals(formatIP(parseIPv6(input)!), canonical);
  for (const bad of ["", ":", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "::g", "1::2::3", "::1.2.3"]) {
    assertEquals(parseIPv6(bad), undefined, bad);
  }
});

Deno.test("parseProxyVersion() takes v1, v2, 1 and 2 only", () => {
  assertEquals(["v1", "V2", "1", "2"].map((text) => parseProxyVersion(text)), [1, 2, 1, 2]);
  assertThrows(() => parseProxyVersion("v3"), Error, 'Cannot parse --send-proxy "v3"');
});
