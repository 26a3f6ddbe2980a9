/**
 * Attaching a classic BPF program to a socket (`SO_ATTACH_FILTER`), so the kernel drops what
 * the program refuses before it is queued: a raw socket then keeps only the packets it waits for,
 * however busy the interface, and its receive buffer is never filled by others' traffic.
 * @module
 */
import { type BpfInstruction, encodeBpf } from "../packet/packet_filter.ts";
import { type Libc, LINUX, setSocketOption } from "./libc.ts";

/**
 * Attaches `program` to socket `fd` (`struct sock_fprog { unsigned short len; struct
 * sock_filter *filter; }`); the kernel copies it, so it may be dropped afterwards.
 *
 * @example
 * ```ts ignore
 * import { attachSocketFilter } from "./socket_filter.ts";
 * attachSocketFilter(libc, fd, compileTcpReplyFilter(80, 1234));
 * ```
 */
export function attachSocketFilter(
  libc: Libc,
  fd: number,
  program: readonly BpfInstruction[],
): void {
  const instructions = encodeBpf(program);
  const fprog = new Uint8Array(16);
  const view = new DataView(fprog.buffer);
  view.setUint16(0, program.length, true);
  view.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(instructions))), true);
  setSocketOption(libc, fd, LINUX.SOL_SOCKET, LINUX.SO_ATTACH_FILTER, fprog);
}
