/**
 * The packet codecs judged by a decoder nobody here wrote: packets built by `lib/packet/` are
 * written to a pcap file and tshark must decode the same fields and call every checksum good.
 */
import { assertEquals } from "@std/assert";
import { encodeIcmpEcho } from "../lib/packet/icmp.ts";
import { encodeIPv4 } from "../lib/packet/ipv4.ts";
import { IPPROTO } from "../lib/packet/packet_fields.ts";
import { encodeTcp, TCP_FLAGS } from "../lib/packet/tcp.ts";
import { encodeUdp } from "../lib/packet/udp.ts";
import { hasPeer, runPeer } from "./_process.ts";

/** LINKTYPE_RAW: each record is an IPv4 packet with no link-layer header. */
const LINKTYPE_RAW = 101;

/** A classic little-endian pcap file holding `packets`. */
function pcap(packets: Uint8Array[]): Uint8Array {
  const size = 24 + packets.reduce((sum, packet) => sum + 16 + packet.length, 0);
  const file = new Uint8Array(size);
  const view = new DataView(file.buffer);
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  view.setUint32(16, 65535, true);
  view.setUint32(20, LINKTYPE_RAW, true);
  let offset = 24;
  packets.forEach((packet, index) => {
    view.setUint32(offset, 1_700_000_000 + index, true);
    view.setUint32(offset + 8, packet.length, true);
    view.setUint32(offset + 12, packet.length, true);
    file.set(packet, offset + 16);
    offset += 16 + packet.length;
  });
  return file;
}

const src = "127.0.0.1", dst = "127.0.0.2";
const payload = new TextEncoder().encode("Hello, how are you");
// MSS 1460, SACK permitted, then padding: options make the data offset matter.
const tcpOptions = new Uint8Array([2, 4, 0x05, 0xb4, 4, 2, 1, 1]);

const packets = [
  encodeIPv4(
    { src, dst, protocol: IPPROTO.TCP, identification: 54321 },
    encodeTcp(
      { srcPort: 1234, dstPort: 80, seq: 454, flags: TCP_FLAGS.SYN, options: tcpOptions },
      payload,
      { src, dst },
    ),
  ),
  encodeIPv4(
    { src, dst, protocol: IPPROTO.UDP },
    encodeUdp({ srcPort: 40000, dstPort: 5005 }, payload, { src, dst }),
  ),
  encodeIPv4(
    { src, dst, protocol: IPPROTO.ICMP },
    encodeIcmpEcho({ type: 8, identifier: 0x1234, sequence: 7, data: payload }),
  ),
];

const FIELDS = [
  "ip.hdr_len",
  "ip.len",
  "ip.checksum.status",
  "tcp.srcport",
  "tcp.dstport",
  "tcp.seq_raw",
  "tcp.hdr_len",
  "tcp.flags.syn",
  "tcp.options.mss_val",
  "tcp.len",
  "tcp.checksum.status",
  "udp.srcport",
  "udp.dstport",
  "udp.length",
  "udp.checksum.status",
  "icmp.type",
  "icmp.ident",
  "icmp.seq",
  "icmp.checksum.status",
];

Deno.test({
  name: "encodeIPv4(), encodeTcp(), encodeUdp() and encodeIcmpEcho() build what tshark decodes",
  ignore: !hasPeer("tshark"),
  async fn() {
    const file = await Deno.makeTempFile({ suffix: ".pcap" });
    try {
      await Deno.writeFile(file, pcap(packets));
      const tshark = await runPeer("tshark", [
        "-r",
        file,
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=,",
        ...FIELDS.flatMap((field) => ["-e", field]),
      ], { timeoutMs: 30_000 });
      assertEquals(tshark.code, 0, tshark.stderr);
      const rows = new TextDecoder().decode(tshark.stdout).trim().split("\n").map((line) =>
        Object.fromEntries(line.split(",").map((value, i) => [FIELDS[i], value]))
      );
      const good = "1"; // tshark's checksum status: 0 bad, 1 good, 2 unverified
      assertEquals(rows.map((row) => row["ip.checksum.status"]), [good, good, good]);
      assertEquals(rows.map((row) => row["ip.hdr_len"]), ["20", "20", "20"]);
      const [syn, udp, icmp] = rows;
      assertEquals(
        [syn["ip.len"], syn["tcp.srcport"], syn["tcp.dstport"], syn["tcp.seq_raw"]],
        [`${20 + 28 + payload.length}`, "1234", "80", "454"],
      );
      assertEquals([syn["tcp.hdr_len"], syn["tcp.flags.syn"], syn["tcp.options.mss_val"]], [
        "28",
        "1",
        "1460",
      ]);
      assertEquals([syn["tcp.len"], syn["tcp.checksum.status"]], [`${payload.length}`, good]);
      assertEquals(
        [udp["udp.srcport"], udp["udp.dstport"], udp["udp.length"], udp["udp.checksum.status"]],
        ["40000", "5005", `${8 + payload.length}`, good],
      );
      assertEquals(
        [icmp["icmp.type"], icmp["icmp.ident"], icmp["icmp.seq"], icmp["icmp.checksum.status"]],
        ["8", `${0x1234}`, "7", good],
      );
    } finally {
      await Deno.remove(file);
    }
  },
});
