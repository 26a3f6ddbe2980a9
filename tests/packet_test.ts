/**
 * Packet codecs against the RFC 1071 example, against frames captured on this machine's lo
 * with tcpdump (whose checksums tshark reports correct), over random headers, and against
 * truncated and malformed input.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { internetChecksum, onesComplementSum } from "../lib/packet/checksum.ts";
import { decodeEthernet, encodeEthernet, ETHER_TYPE } from "../lib/packet/ethernet.ts";
import { decodeIcmp, decodeIcmpEcho, encodeIcmpEcho, ICMP_TYPE } from "../lib/packet/icmp.ts";
import { decodeIPv4, encodeIPv4, type IPv4Header } from "../lib/packet/ipv4.ts";
import {
  formatIPv4,
  IPPROTO,
  parseIPv4,
  pseudoHeaderSum,
  transportChecksum,
} from "../lib/packet/packet_fields.ts";
import {
  decodeTcp,
  decodeTcpOptions,
  describeTcpOptions,
  encodeTcp,
  formatTcpFlags,
  TCP_FLAGS,
} from "../lib/packet/tcp.ts";
import { decodeUdp, encodeUdp } from "../lib/packet/udp.ts";
import { decodeFrame, describeFrame, tcpdumpHex } from "../lib/packet/packet_frame.ts";

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
}

/**
 * Frames captured with `tcpdump -i lo -w` and checked with `tshark -o ip.check_checksum:TRUE
 * -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE` (all "good" except OFFLOADED_SYN).
 */
const CAPTURED = {
  // Echo request built by a Python raw socket, id 0x1234 seq 1, data 00..0f.
  echoRequest: hex(
    "00000000000000000000000008004500002c976b40004001a5637f0000017f000001" +
      "0800ad8a12340001000102030405060708090a0b0c0d0e0f",
  ),
  // The kernel's echo reply to it.
  echoReply: hex(
    "00000000000000000000000008004500002c976c00004001e5627f0000017f000001" +
      "0000b58a12340001000102030405060708090a0b0c0d0e0f",
  ),
  // The kernel's port unreachable for a UDP datagram "Hello, World!\n" to port 45111.
  portUnreachable: hex(
    "000000000000000000000000080045c00046971f00004001e4d57f0000017f000001" +
      "03033cf1000000004500002a187640004011244b7f0000017f000001d05db0370016fe29" +
      "48656c6c6f2c20576f726c64210a",
  ),
  // The kernel's RST-ACK to a SYN for the closed port 45114.
  rstAck: hex(
    "0000000000000000000000000800450000280000400040063cce7f0000017f000001" +
      "b03ac90e0000000052bbee2750140000f7a10000",
  ),
  // A UDP datagram "Hello, World!" from port 40000 to 45113, built by a Python raw socket.
  udp: hex(
    "00000000000000000000000008004500002925a840004011171a7f0000017f000001" +
      "9c40b0390015741b48656c6c6f2c20576f726c6421",
  ),
  // A SYN from connect(): lo offloads the checksum, so its field holds only the pseudo-header
  // sum (tshark: "incorrect"; every kernel-offloaded TCP or UDP packet on lo looks like this).
  offloadedSyn: hex(
    "00000000000000000000000008004500003cd4994000400668207f0000017f000001" +
      "c90eb03a52bbee2600000000a002ffd7fe3000000204ffd70402080a6ff1226e000000000103030a",
  ),
};

function ipOf(frame: Uint8Array) {
  const { header, payload } = decodeEthernet(frame);
  assertEquals(header, { dst: "00:00:00:00:00:00", src: "00:00:00:00:00:00", etherType: 0x0800 });
  return decodeIPv4(payload);
}

/** Encodes a decoded header again; for a real packet this must give the same bytes. */
function reencodeIPv4(header: IPv4Header, payload: Uint8Array): Uint8Array {
  return encodeIPv4(header, payload);
}

Deno.test("internetChecksum() gives the RFC 1071 example's sum and checksum", () => {
  const bytes = hex("0001f203f4f5f6f7");
  assertEquals(onesComplementSum(bytes), 0xddf2);
  assertEquals(internetChecksum(bytes), 0x220d);
  // Summing in any split at an even offset gives the same result (RFC 1071 section 2).
  assertEquals(
    onesComplementSum(bytes.subarray(4), onesComplementSum(bytes.subarray(0, 4))),
    0xddf2,
  );
  const withChecksum = new Uint8Array([...bytes, 0x22, 0x0d]);
  assertEquals(internetChecksum(withChecksum), 0);
});

Deno.test("internetChecksum() pads an odd last byte with zero", () => {
  assertEquals(onesComplementSum(new Uint8Array([0xab])), 0xab00);
  assertEquals(internetChecksum(new Uint8Array([0x12, 0x34, 0x56])), ~(0x1234 + 0x5600) & 0xffff);
  assertEquals(internetChecksum(new Uint8Array(0)), 0xffff);
  // Many 0xffff words: the carries fold back in.
  assertEquals(onesComplementSum(new Uint8Array(65536).fill(0xff)), 0xffff);
});

Deno.test("pseudoHeaderSum() rejects a bad protocol, length or address", () => {
  assertThrows(() => pseudoHeaderSum("127.0.0.1", "127.0.0.1", 256, 20), RangeError);
  assertThrows(() => pseudoHeaderSum("127.0.0.1", "127.0.0.1", 6, 65536), RangeError);
  assertThrows(() => pseudoHeaderSum("127.0.0.256", "127.0.0.1", 6, 20), SyntaxError);
});

Deno.test("decodeIPv4() reads captured ICMP echo request and reply with valid checksums", () => {
  for (const [frame, type] of [[CAPTURED.echoRequest, 8], [CAPTURED.echoReply, 0]] as const) {
    const { header, payload } = ipOf(frame);
    assertEquals(header.protocol, IPPROTO.ICMP);
    assertEquals([header.src, header.dst, header.ttl, header.totalLength], [
      "127.0.0.1",
      "127.0.0.1",
      64,
      44,
    ]);
    assertEquals(internetChecksum(frame.subarray(14, 34)), 0);
    assertEquals(reencodeIPv4(header, payload), frame.subarray(14));
    const echo = decodeIcmpEcho(payload);
    assertEquals(echo, {
      type,
      identifier: 0x1234,
      sequence: 1,
      data: Uint8Array.from({ length: 16 }, (_, i) => i),
    });
    assertEquals(encodeIcmpEcho(echo), payload);
  }
  // The reply is the kernel's: no DF bit, the next identification.
  const reply = ipOf(CAPTURED.echoReply).header;
  assertEquals([reply.flags, reply.identification], [0, 0x976c]);
});

Deno.test("decodeIcmp() reads a captured port unreachable and the datagram it quotes", () => {
  const { header, payload } = ipOf(CAPTURED.portUnreachable);
  assertEquals([header.tos, header.identification, header.flags], [0xc0, 0x971f, 0]);
  assertEquals(reencodeIPv4(header, payload), CAPTURED.portUnreachable.subarray(14));
  const message = decodeIcmp(payload);
  assertEquals([message.type, message.code, message.checksumOk], [3, 3, true]);
  assertThrows(() => decodeIcmpEcho(payload), SyntaxError, "type 3");
  // The quoted packet is the UDP datagram, as the sender's kernel offloaded it.
  const quoted = decodeIPv4(message.body);
  const udp = decodeUdp(quoted.payload);
  assertEquals([udp.header.srcPort, udp.header.dstPort], [53341, 45111]);
  assertEquals(new TextDecoder().decode(udp.payload), "Hello, World!\n");
});

Deno.test("decodeTcp() reads a captured RST-ACK whose checksum is right", () => {
  const { header: ip, payload } = ipOf(CAPTURED.rstAck);
  assertEquals(reencodeIPv4(ip, payload), CAPTURED.rstAck.subarray(14));
  assertEquals(transportChecksum(ip.src, ip.dst, IPPROTO.TCP, payload), 0);
  const { header, payload: data } = decodeTcp(payload);
  assertEquals(header, {
    srcPort: 45114,
    dstPort: 51470,
    seq: 0,
    ack: 0x52bbee27,
    headerLength: 20,
    flags: TCP_FLAGS.RST | TCP_FLAGS.ACK,
    window: 0,
    checksum: 0xf7a1,
    urgent: 0,
    options: new Uint8Array(0),
  });
  assertEquals(data.length, 0);
  assertEquals(formatTcpFlags(header.flags), "R.");
  assertEquals(encodeTcp(header, data, ip), payload);
});

Deno.test("decodeUdp() reads a captured datagram whose checksum is right", () => {
  const { header: ip, payload } = ipOf(CAPTURED.udp);
  assertEquals(transportChecksum(ip.src, ip.dst, IPPROTO.UDP, payload), 0);
  const { header, payload: data } = decodeUdp(payload);
  assertEquals(header, { srcPort: 40000, dstPort: 45113, length: 21, checksum: 0x741b });
  assertEquals(new TextDecoder().decode(data), "Hello, World!");
  assertEquals(encodeUdp(header, data, ip), payload);
  assertEquals(reencodeIPv4(ip, payload), CAPTURED.udp.subarray(14));
});

Deno.test("decodeTcpOptions() reads a captured SYN whose checksum lo offloaded", () => {
  const { header: ip, payload } = ipOf(CAPTURED.offloadedSyn);
  const { header } = decodeTcp(payload);
  assertEquals([header.srcPort, header.dstPort, header.headerLength], [51470, 45114, 40]);
  assertEquals(formatTcpFlags(header.flags), "S");
  assertEquals(
    describeTcpOptions(header.options),
    "mss 65495,sackOK,TS val 1878073966 ecr 0,nop,wscale 10",
  );
  assertEquals(decodeTcpOptions(header.options).map((option) => option.kind), [2, 4, 8, 1, 3]);
  // What tcpdump calls an incorrect checksum is the pseudo-header sum the NIC would finish.
  assertEquals(header.checksum, pseudoHeaderSum(ip.src, ip.dst, IPPROTO.TCP, payload.length));
  const fixed = encodeTcp(header, new Uint8Array(0), ip);
  assertEquals(transportChecksum(ip.src, ip.dst, IPPROTO.TCP, fixed), 0);
  assertEquals(fixed.subarray(20), header.options);
});

Deno.test("decodeFrame() describes captured frames in one line each", () => {
  assertEquals(
    describeFrame(decodeFrame(CAPTURED.udp)),
    'UDP 127.0.0.1:40000 > 127.0.0.1:45113 len 13 "Hello, World!"',
  );
  assertEquals(
    describeFrame(decodeFrame(CAPTURED.rstAck)),
    "TCP 127.0.0.1:45114 > 127.0.0.1:51470 [R.] seq 0 ack 1388047911 win 0 len 0",
  );
  assertEquals(
    describeFrame(decodeFrame(CAPTURED.echoReply)),
    "ICMP 127.0.0.1 > 127.0.0.1 echo reply code 0 id 4660 seq 1 len 24",
  );
  assertEquals(
    describeFrame(decodeFrame(CAPTURED.udp.subarray(0, 40))),
    "malformed frame 40 bytes: Cannot decode IPv4: total length 41 but only 26 bytes",
  );
  const ipv6 = encodeEthernet(
    { dst: "00:00:00:00:00:00", src: "00:00:00:00:00:00", etherType: ETHER_TYPE.IPV6 },
    new Uint8Array(40),
  );
  assertEquals(describeFrame(decodeFrame(ipv6)), "IPv6 (not decoded) frame 54 bytes");
  const lines = tcpdumpHex(CAPTURED.udp);
  assertEquals(lines.length, 4);
  assertEquals(lines[3], "  0030  2057 6f72 6c64 21".padEnd(47) + "   World!");
});

// A small deterministic generator, so a failure can be reproduced.
function random(seed: number): (max: number) => number {
  let state = seed >>> 0;
  return (max) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 2 ** 32) * (max + 1));
  };
}

function randomAddress(next: (max: number) => number): string {
  return [next(255), next(255), next(255), next(255)].join(".");
}

function randomBytes(next: (max: number) => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => next(255));
}

Deno.test("encodeIPv4() and decodeIPv4() round-trip random headers", () => {
  const next = random(1);
  for (let i = 0; i < 300; i++) {
    const fields = {
      src: randomAddress(next),
      dst: randomAddress(next),
      protocol: next(255),
      tos: next(255),
      identification: next(0xffff),
      flags: next(7),
      fragmentOffset: next(0x1fff),
      ttl: next(255),
      options: randomBytes(next, next(10) * 4),
    };
    const payload = randomBytes(next, next(100));
    const packet = encodeIPv4(fields, payload);
    assertEquals(internetChecksum(packet.subarray(0, 20 + fields.options.length)), 0);
    const { header, payload: decoded } = decodeIPv4(packet);
    assertEquals(decoded, payload);
    assertEquals(header.headerLength, 20 + fields.options.length);
    assertEquals(header.totalLength, packet.length);
    assertEquals({ ...fields }, {
      src: header.src,
      dst: header.dst,
      protocol: header.protocol,
      tos: header.tos,
      identification: header.identification,
      flags: header.flags,
      fragmentOffset: header.fragmentOffset,
      ttl: header.ttl,
      options: header.options,
    });
    assertEquals(formatIPv4(parseIPv4(fields.src)), fields.src);
  }
});

Deno.test("encodeTcp(), encodeUdp() and encodeIcmpEcho() round-trip random headers", () => {
  const next = random(2);
  for (let i = 0; i < 300; i++) {
    const addresses = { src: randomAddress(next), dst: randomAddress(next) };
    const payload = randomBytes(next, next(99));
    const tcp = {
      srcPort: next(0xffff),
      dstPort: next(0xffff),
      seq: next(0xffffffff),
      ack: next(0xffffffff),
      flags: next(255),
      window: next(0xffff),
      urgent: next(0xffff),
      options: randomBytes(next, next(10) * 4),
    };
    const segment = encodeTcp(tcp, payload, addresses);
    assertEquals(transportChecksum(addresses.src, addresses.dst, IPPROTO.TCP, segment), 0);
    const decodedTcp = decodeTcp(segment);
    assertEquals(decodedTcp.payload, payload);
    const { headerLength, checksum: _, ...tcpFields } = decodedTcp.header;
    assertEquals(tcpFields, tcp);
    assertEquals(headerLength, 20 + tcp.options.length);

    const ports = { srcPort: next(0xffff), dstPort: next(0xffff) };
    const datagram = encodeUdp(ports, payload, addresses);
    assertEquals(transportChecksum(addresses.src, addresses.dst, IPPROTO.UDP, datagram), 0);
    const udp = decodeUdp(datagram);
    assert(udp.header.checksum !== 0, "a computed checksum of 0 goes out as 0xffff");
    assertEquals([udp.header.srcPort, udp.header.dstPort, udp.payload], [
      ports.srcPort,
      ports.dstPort,
      payload,
    ]);

    const echo = {
      type: next(1) ? ICMP_TYPE.ECHO_REQUEST : ICMP_TYPE.ECHO_REPLY,
      identifier: next(0xffff),
      sequence: next(0xffff),
      data: payload,
    } as const;
    const message = encodeIcmpEcho(echo);
    assertEquals(internetChecksum(message), 0);
    assertEquals(decodeIcmpEcho(message), echo);
  }
});

Deno.test("decoders throw RangeError for every truncation of captured packets", () => {
  for (const frame of Object.values(CAPTURED)) {
    const ip = frame.subarray(14);
    const { header, payload } = decodeIPv4(ip);
    for (let length = 0; length < ip.length; length++) {
      assertThrows(() => decodeIPv4(ip.subarray(0, length)), RangeError);
    }
    const transport = header.protocol === IPPROTO.TCP
      ? { decode: decodeTcp, needed: decodeTcp(payload).header.headerLength }
      : header.protocol === IPPROTO.UDP
      ? { decode: decodeUdp, needed: payload.length }
      : { decode: decodeIcmp, needed: 8 };
    for (let length = 0; length < transport.needed; length++) {
      assertThrows(() => transport.decode(payload.subarray(0, length)), RangeError);
    }
    for (let length = 0; length < 14; length++) {
      assertThrows(() => decodeEthernet(frame.subarray(0, length)), RangeError);
    }
  }
});

Deno.test("decoders throw SyntaxError for impossible fields", () => {
  const ip = CAPTURED.udp.slice(14);
  const withByte = (bytes: Uint8Array, index: number, value: number) => {
    const copy = bytes.slice();
    copy[index] = value;
    return copy;
  };
  assertThrows(() => decodeIPv4(withByte(ip, 0, 0x65)), SyntaxError, "version is 6");
  assertThrows(() => decodeIPv4(withByte(ip, 0, 0x44)), SyntaxError, "below 20");
  assertThrows(() => decodeIPv4(withByte(withByte(ip, 2, 0), 3, 19)), SyntaxError, "total");
  const udp = ip.subarray(20);
  assertThrows(() => decodeUdp(withByte(udp, 5, 7)), SyntaxError, "length 7");
  const tcp = CAPTURED.rstAck.slice(34);
  assertThrows(() => decodeTcp(withByte(tcp, 12, 0x40)), SyntaxError, "data offset 16");
  assertThrows(() => decodeTcpOptions(new Uint8Array([2, 1, 0, 0])), SyntaxError);
  assertThrows(() => decodeTcpOptions(new Uint8Array([2, 8, 0, 0])), SyntaxError);
  assertThrows(() => decodeTcpOptions(new Uint8Array([1, 1, 1, 8])), SyntaxError, "length byte");
  assertEquals(
    decodeTcpOptions(new Uint8Array([1, 0, 2, 99])).map((option) => option.kind),
    [1, 0],
    "end of list stops",
  );
  const echo = CAPTURED.echoReply.slice(34);
  assertThrows(() => decodeIcmpEcho(withByte(echo, 1, 1)), SyntaxError, "code is 1");
  assertThrows(() => parseIPv4("1.2.3"), SyntaxError);
  assertThrows(() => parseIPv4("01.2.3.4"), SyntaxError);
  assertThrows(() => parseIPv4("1.2.3.999"), SyntaxError);
});

Deno.test("encoders throw RangeError for values that do not fit their fields", () => {
  const addresses = { src: "127.0.0.1", dst: "127.0.0.1" };
  const empty = new Uint8Array(0);
  assertThrows(() => encodeTcp({ srcPort: 65536, dstPort: 1 }, empty, addresses), RangeError);
  assertThrows(
    () => encodeTcp({ srcPort: 1, dstPort: 1, seq: 2 ** 32 }, empty, addresses),
    RangeError,
  );
  assertThrows(
    () => encodeTcp({ srcPort: 1, dstPort: 1, options: new Uint8Array(3) }, empty, addresses),
    RangeError,
  );
  assertThrows(() => encodeUdp({ srcPort: -1, dstPort: 1 }, empty, addresses), RangeError);
  assertThrows(
    () => encodeUdp({ srcPort: 1, dstPort: 1 }, new Uint8Array(65508), addresses),
    RangeError,
  );
  assertThrows(() => encodeIPv4({ ...addresses, protocol: 6, ttl: 256 }, empty), RangeError);
  assertThrows(
    () => encodeIPv4({ ...addresses, protocol: 6, options: new Uint8Array(44) }, empty),
    RangeError,
  );
  assertThrows(() => encodeIPv4({ ...addresses, protocol: 6 }, new Uint8Array(65516)), RangeError);
  assertThrows(
    () => encodeIcmpEcho({ type: 8, identifier: 1.5, sequence: 0, data: empty }),
    RangeError,
  );
});

Deno.test("decodeFrame() never throws on random bytes, and views stay inside them", () => {
  const next = random(3);
  for (let i = 0; i < 2000; i++) {
    // Start from a real frame and damage a few bytes, so decoding gets past the first checks.
    const frames = Object.values(CAPTURED);
    const bytes = frames[next(frames.length - 1)].slice(0, 14 + next(80));
    for (let k = next(4); k > 0; k--) bytes[next(bytes.length - 1)] = next(255);
    const frame = decodeFrame(bytes);
    if (frame.payload) {
      assert(frame.payload.byteOffset + frame.payload.length <= bytes.byteOffset + bytes.length);
      assert(frame.payload.buffer === bytes.buffer, "payloads are views, not copies");
    }
    assert(describeFrame(frame).length > 0);
  }
});
