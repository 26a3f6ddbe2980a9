/**
 * The BPF programs of `compileFrameFilter()`, run on frames by a small classic-BPF interpreter
 * (the subset the compiler emits), must accept at least every frame `matches()` keeps and drop
 * the loopback's outgoing copies; tcpdump's own compiler must agree on the IPv4 part.
 */
import { assert, assertEquals } from "@std/assert";
import { encodeEthernet, ETHER_TYPE } from "../lib/packet/ethernet.ts";
import { encodeIcmpEcho } from "../lib/packet/icmp.ts";
import { encodeIPv4 } from "../lib/packet/ipv4.ts";
import { type BpfInstruction, compileFrameFilter } from "../lib/packet/packet_filter.ts";
import { IPPROTO } from "../lib/packet/packet_fields.ts";
import { decodeFrame, type FrameFilter, matches } from "../lib/packet/packet_frame.ts";
import { encodeTcp, TCP_FLAGS } from "../lib/packet/tcp.ts";
import { encodeUdp } from "../lib/packet/udp.ts";
import { hasPeer, runPeer } from "./_process.ts";

interface Meta {
  packetType: number;
  hardwareType: number;
}

/** Runs `program` on `frame`; returns the number of bytes to keep (0: drop). */
function runBpf(program: BpfInstruction[], frame: Uint8Array, meta: Meta): number {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let a = 0, x = 0;
  const load = (offset: number, size: number): number | null => {
    if (offset === 0xfffff004) return meta.packetType;
    if (offset === 0xfffff01c) return meta.hardwareType;
    if (offset + size > frame.length) return null;
    return size === 4
      ? view.getUint32(offset)
      : size === 2
      ? view.getUint16(offset)
      : view.getUint8(offset);
  };
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc];
    const loaded = code === 0x20
      ? load(k, 4)
      : code === 0x28
      ? load(k, 2)
      : code === 0x30
      ? load(k, 1)
      : code === 0x48
      ? load(x + k, 2)
      : undefined;
    if (loaded === null) return 0; // out of bounds: the kernel drops the frame
    if (loaded !== undefined) a = loaded;
    else if (code === 0xb1) x = 4 * ((load(k, 1) ?? 0) & 0xf);
    else if (code === 0x15) pc += a === k ? jt : jf;
    else if (code === 0x45) pc += (a & k) !== 0 ? jt : jf;
    else if (code === 0x06) return k;
    else throw new Error(`opcode 0x${code.toString(16)} not in this interpreter`);
  }
  throw new Error("program ran off its end");
}

const src = "127.0.0.1", dst = "127.0.0.1";
const ether = (etherType: number, payload: Uint8Array) =>
  encodeEthernet({ src: "00:00:00:00:00:00", dst: "00:00:00:00:00:00", etherType }, payload);
const FRAMES = [
  ether(
    ETHER_TYPE.IPV4,
    encodeIPv4(
      { src, dst, protocol: IPPROTO.TCP },
      encodeTcp({ srcPort: 40000, dstPort: 5005, flags: TCP_FLAGS.SYN }, new Uint8Array(3), {
        src,
        dst,
      }),
    ),
  ),
  ether(
    ETHER_TYPE.IPV4,
    encodeIPv4(
      { src, dst, protocol: IPPROTO.UDP, options: new Uint8Array(8) }, // IHL 7
      encodeUdp({ srcPort: 5005, dstPort: 53 }, new Uint8Array(9), { src, dst }),
    ),
  ),
  ether(
    ETHER_TYPE.IPV4,
    encodeIPv4(
      { src, dst, protocol: IPPROTO.UDP },
      encodeUdp({ srcPort: 1, dstPort: 2 }, new Uint8Array(0), { src, dst }),
    ),
  ),
  ether(
    ETHER_TYPE.IPV4,
    encodeIPv4(
      { src, dst, protocol: IPPROTO.ICMP },
      encodeIcmpEcho({ type: 8, identifier: 1, sequence: 1, data: new Uint8Array(56) }),
    ),
  ),
  // A later fragment whose first payload bytes look like ports 5005.
  ether(
    ETHER_TYPE.IPV4,
    encodeIPv4(
      { src, dst, protocol: IPPROTO.UDP, fragmentOffset: 10 },
      new Uint8Array([0x13, 0x8d, 0x13, 0x8d, 0, 8, 0, 0]),
    ),
  ),
  ether(ETHER_TYPE.IPV6, new Uint8Array(40)),
  ether(ETHER_TYPE.IPV4, new Uint8Array(5)), // malformed
];
const FILTERS: FrameFilter[] = [
  {},
  { protocol: "tcp" },
  { protocol: "udp" },
  { protocol: "icmp" },
  { port: 5005 },
  { protocol: "udp", port: 5005 },
  { protocol: "tcp", port: 40000 },
  { protocol: "icmp", port: 5005 },
];
const INCOMING = { packetType: 0, hardwareType: 772 };

Deno.test("compileFrameFilter() accepts exactly the frames matches() keeps", () => {
  for (const filter of FILTERS) {
    const program = compileFrameFilter(filter);
    for (const [index, frame] of FRAMES.entries()) {
      const kept = matches(decodeFrame(frame), filter);
      const accepted = runBpf(program, frame, INCOMING) > 0;
      // The kernel may let in more than the sniffer keeps (it checks again), never less.
      if (kept) assert(accepted, `${JSON.stringify(filter)} dropped frame ${index}`);
      // For these frames the two agree exactly, except ICMP with a port (no port to match).
      if (!(filter.protocol === "icmp" && filter.port !== undefined)) {
        assertEquals(accepted, kept, `${JSON.stringify(filter)} frame ${index}`);
      }
    }
  }
});

Deno.test("compileFrameFilter() drops the copy lo shows as sent, and only on loopback", () => {
  const program = compileFrameFilter({});
  assertEquals(runBpf(program, FRAMES[0], { packetType: 4, hardwareType: 772 }), 0);
  assertEquals(runBpf(program, FRAMES[0], { packetType: 4, hardwareType: 1 }), 262144);
  assertEquals(runBpf(program, FRAMES[0], INCOMING), 262144);
  const keepAll = compileFrameFilter({}, { skipOutgoingLoopback: false });
  assertEquals(keepAll, [{ code: 0x06, jt: 0, jf: 0, k: 262144 }, { code: 6, jt: 0, jf: 0, k: 0 }]);
});

Deno.test({
  name: "compileFrameFilter() emits the program tcpdump compiles for 'udp port 5005', IPv4 part",
  ignore: !hasPeer("tcpdump"),
  async fn() {
    // -dd prints the program as C initializers, { code, jt, jf, k } per line.
    const dump = await runPeer("tcpdump", ["-dd", "-y", "EN10MB", "udp port 5005"]);
    assertEquals(dump.code, 0, dump.stderr);
    const theirs = [
      ...new TextDecoder().decode(dump.stdout).matchAll(/\{ (\S+), (\d+), (\d+), (\S+) \}/g),
    ]
      .map(([, code, jt, jf, k]) => ({ code: Number(code), jt: +jt, jf: +jf, k: Number(k) }));
    const ours = compileFrameFilter({ protocol: "udp", port: 5005 }, {
      skipOutgoingLoopback: false,
    });
    // tcpdump's program is ours with its IPv6 branch (instructions 1 to 7) in front.
    assertEquals(ours, [theirs[0], ...theirs.slice(8)]);
  },
});
