/**
 * A {@linkcode FrameFilter} compiled to classic BPF, the language of `SO_ATTACH_FILTER`, so the
 * kernel drops unwanted frames before they are copied to the capture ring: a busy interface
 * then costs the sniffer nothing for traffic it would throw away, and the ring's room (and the
 * kernel's drop count) is spent on the frames that are shown, as with `tcpdump port 5005`.
 * @module
 */
import { IPPROTO } from "./packet_fields.ts";
import type { FrameFilter } from "./packet_frame.ts";

/** One classic BPF instruction (`struct sock_filter`). */
export interface BpfInstruction {
  /** Operation, e.g. `0x28` for `ldh [k]`. */
  code: number;
  /** Instructions to skip when a jump's condition holds. */
  jt: number;
  /** Instructions to skip when it does not. */
  jf: number;
  /** The constant operand. */
  k: number;
}

/** Options for {@linkcode compileFrameFilter}. */
export interface CompileOptions {
  /**
   * Drop the copy of each frame that a loopback interface shows as sent (`PACKET_OUTGOING`):
   * on `lo` every packet passes twice, and tcpdump shows it once. @default {true}
   */
  skipOutgoingLoopback?: boolean;
}

/** Bytes of each frame kept, as tcpdump's largest snapshot length. */
export const SNAPSHOT_LENGTH = 262_144;

// Opcodes (linux/filter.h).
const LD_W_ABS = 0x20, LD_H_ABS = 0x28, LD_B_ABS = 0x30, LDX_B_MSH = 0xb1, LD_H_IND = 0x48;
const JEQ_K = 0x15, JSET_K = 0x45, RET_K = 0x06;
// Ancillary loads (SKF_AD_OFF + SKF_AD_PKTTYPE / SKF_AD_HATYPE).
const AD_PKTTYPE = 0xfffff004, AD_HATYPE = 0xfffff01c;
const PACKET_OUTGOING = 4, ARPHRD_LOOPBACK = 772;

type Target = number | "accept" | "drop";
type Step = { code: number; k: number; jt?: Target; jf?: Target; label?: string };

/**
 * Compiles `filter` to a BPF program that accepts at least every frame
 * {@linkcode matches} keeps (the sniffer still checks each frame), and drops the rest early:
 * other EtherTypes and protocols, later fragments, and TCP/UDP on other ports.
 *
 * @example UDP port 5005, as `tcpdump -d 'udp port 5005'` would filter it
 * ```ts
 * import { compileFrameFilter } from "./packet_filter.ts";
 * const program = compileFrameFilter({ protocol: "udp", port: 5005 });
 * if (program.at(-1)?.k !== 0 || program.length > 20) throw new Error("unexpected program");
 * ```
 */
export function compileFrameFilter(
  filter: FrameFilter,
  options: CompileOptions = {},
): BpfInstruction[] {
  const steps: Step[] = [];
  if (options.skipOutgoingLoopback ?? true) {
    steps.push(
      { code: LD_W_ABS, k: AD_HATYPE },
      { code: JEQ_K, k: ARPHRD_LOOPBACK, jt: 0, jf: 2 },
      { code: LD_W_ABS, k: AD_PKTTYPE },
      { code: JEQ_K, k: PACKET_OUTGOING, jt: "drop", jf: 0 },
    );
  }
  if (filter.protocol !== undefined || filter.port !== undefined) {
    steps.push(
      { code: LD_H_ABS, k: 12 }, // EtherType
      { code: JEQ_K, k: 0x0800, jt: 0, jf: "drop" },
      { code: LD_B_ABS, k: 23 }, // IPv4 protocol
    );
    if (filter.protocol !== undefined) {
      const name = filter.protocol.toUpperCase() as Uppercase<typeof filter.protocol>;
      steps.push({ code: JEQ_K, k: IPPROTO[name], jt: 0, jf: "drop" });
    } else {
      steps.push(
        { code: JEQ_K, k: IPPROTO.TCP, jt: 1, jf: 0 },
        { code: JEQ_K, k: IPPROTO.UDP, jt: 0, jf: "drop" },
      );
    }
    // Only a first fragment carries the transport header that the filter looks at.
    steps.push({ code: LD_H_ABS, k: 20 }, { code: JSET_K, k: 0x1fff, jt: "drop", jf: 0 });
    if (filter.port !== undefined) {
      steps.push(
        { code: LDX_B_MSH, k: 14 }, // X = IPv4 header length
        { code: LD_H_IND, k: 14 }, // source port
        { code: JEQ_K, k: filter.port, jt: "accept", jf: 0 },
        { code: LD_H_IND, k: 16 }, // destination port
        { code: JEQ_K, k: filter.port, jt: "accept", jf: "drop" },
      );
    }
  }
  steps.push({ code: RET_K, k: SNAPSHOT_LENGTH, label: "accept" });
  steps.push({ code: RET_K, k: 0, label: "drop" });
  const at = (label: string) => steps.findIndex((step) => step.label === label);
  return steps.map((step, index) => {
    const offset = (target: Target | undefined) =>
      typeof target === "string" ? at(target) - index - 1 : target ?? 0;
    return { code: step.code, jt: offset(step.jt), jf: offset(step.jf), k: step.k >>> 0 };
  });
}

/**
 * Encodes a program as the array of `struct sock_filter` that `SO_ATTACH_FILTER` points to
 * (host byte order, little-endian on the machines Deno runs Linux on).
 *
 * @example
 * ```ts
 * import { compileFrameFilter, encodeBpf } from "./packet_filter.ts";
 * const bytes = encodeBpf(compileFrameFilter({}));
 * if (bytes.length !== 6 * 8) throw new Error(`${bytes.length} bytes`);
 * ```
 */
export function encodeBpf(program: readonly BpfInstruction[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach(({ code, jt, jf, k }, i) => {
    view.setUint16(i * 8, code, true);
    view.setUint8(i * 8 + 2, jt);
    view.setUint8(i * 8 + 3, jf);
    view.setUint32(i * 8 + 4, k, true);
  });
  return bytes;
}

/**
 * A filter for a raw IPv4 socket (data from the IPv4 header on) that keeps only the unfragmented
 * TCP segments from port `fromPort` to port `toPort`: the answer to a probe sent from `toPort`.
 *
 * @example
 * ```ts
 * import { compileTcpReplyFilter } from "./packet_filter.ts";
 * const program = compileTcpReplyFilter(80, 1234);
 * if (program.at(-2)?.k !== 262_144 || program.at(-1)?.k !== 0) throw new Error("bad returns");
 * ```
 */
export function compileTcpReplyFilter(fromPort: number, toPort: number): BpfInstruction[] {
  const op = (code: number, k: number, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k });
  // Jumps count instructions skipped after the jump; every refusal lands on the last one.
  return [
    op(LD_B_ABS, 9), // the IP protocol
    op(JEQ_K, IPPROTO.TCP, 0, 8),
    op(LD_H_ABS, 6), // flags and fragment offset
    op(JSET_K, 0x1fff, 6, 0), // a fragment after the first has no ports
    op(LDX_B_MSH, 0), // x = the IP header's length
    op(LD_H_IND, 0), // the source port
    op(JEQ_K, fromPort, 0, 3),
    op(LD_H_IND, 2), // the destination port
    op(JEQ_K, toPort, 0, 1),
    op(RET_K, SNAPSHOT_LENGTH),
    op(RET_K, 0),
  ];
}
