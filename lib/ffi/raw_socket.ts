/**
 * A raw IPv4 socket over libc: open, send, receive with a timeout and the kernel's receive
 * timestamp, close. `AF_INET` raw sockets send and receive IP packets of one protocol (with
 * `IP_HDRINCL` the caller writes the IPv4 header too). Needs root (or CAP_NET_RAW) and
 * `--allow-ffi`. Link-layer capture is `packet_ring.ts`.
 * @module
 */
import { formatIPv4, parseIPv4 } from "../packet/packet_fields.ts";
import {
  callOrThrow,
  errno,
  lastError,
  LINUX,
  OsError,
  realtimeNs,
  setSocketOption,
} from "./libc.ts";
import { PolledSocket, type PollOptions } from "./polled_socket.ts";
import { attachSocketFilter } from "./socket_filter.ts";
import type { BpfInstruction } from "../packet/packet_filter.ts";

/** A received packet. */
export interface RawPacket {
  /** The bytes received (a copy), from the IPv4 header on. */
  data: Uint8Array;
  /** The sender's IPv4 address. */
  from: string;
  /**
   * When the kernel received it, in nanoseconds of `CLOCK_REALTIME` (`SO_TIMESTAMPNS`); taken
   * when the packet arrived, not when this process got round to reading it. Present when the
   * socket was opened with `timestamps`.
   */
  receivedNs?: bigint;
}

/** Options for {@linkcode RawSocket.receive}. */
export type ReceiveOptions = PollOptions;

/** Options for {@linkcode RawSocket.inet}. */
export interface InetOptions {
  /** Whether sent packets start with the IPv4 header (`IP_HDRINCL`). @default {false} */
  headerIncluded?: boolean;
  /** Whether received packets carry the kernel's timestamp (`SO_TIMESTAMPNS`). @default {false} */
  timestamps?: boolean;
  /**
   * For an ICMP socket, the only ICMP types it receives (`ICMP_FILTER`, as ping sets it): on lo
   * a raw ICMP socket otherwise also gets every echo request, its own included, and each one
   * wakes the reader. @default {every type}
   */
  icmpTypes?: readonly number[];
  /**
   * A BPF program the kernel runs on each packet (from its IPv4 header) before queueing it:
   * a raw TCP socket otherwise receives every TCP packet of the host, and a busy loopback can
   * fill its buffer before the one packet it waits for arrives. @default {every packet}
   */
  filter?: readonly BpfInstruction[];
}

const BUFFER_SIZE = 65_536 + 256;
// struct msghdr, struct iovec and struct cmsghdr on 64-bit Linux.
const MSG_NAME = 0, MSG_NAMELEN = 8, MSG_IOV = 16, MSG_IOVLEN = 24;
const MSG_CONTROL = 32, MSG_CONTROLLEN = 40;
const CMSG_LEN = 0, CMSG_LEVEL = 8, CMSG_TYPE = 12, CMSG_DATA = 16;

/**
 * A raw IPv4 socket. Every descriptor is closed on every path: a failed open closes what it
 * opened, and `close()` (or `using`) is safe to call twice and waits for no one.
 *
 * @example Ping yourself (as root, with --allow-ffi)
 * ```ts ignore
 * import { RawSocket } from "./raw_socket.ts";
 * using socket = RawSocket.inet(1, { timestamps: true });
 * const sentNs = socket.sendStamped(echoRequestBytes, "127.0.0.1");
 * const reply = await socket.receive({ timeout: 1000 });
 * ```
 */
export class RawSocket implements Disposable {
  readonly #socket: PolledSocket;
  readonly #buffer = new Uint8Array(BUFFER_SIZE);
  readonly #name = new Uint8Array(16);
  readonly #control = new Uint8Array(64);
  readonly #header = new Uint8Array(56);
  readonly #headerView = new DataView(this.#header.buffer);
  readonly #address = new Uint8Array(16);
  // Kept referenced: the kernel reads it through the message header's pointer.
  readonly #iovec = new Uint8Array(16);

  private constructor(socket: PolledSocket) {
    this.#socket = socket;
    // recvmsg() is given the same buffers every time: point the header at them once.
    const iov = new DataView(this.#iovec.buffer);
    iov.setBigUint64(0, addressOf(this.#buffer), true);
    iov.setBigUint64(8, BigInt(this.#buffer.length), true);
    const header = this.#headerView;
    header.setBigUint64(MSG_NAME, addressOf(this.#name), true);
    header.setBigUint64(MSG_IOV, addressOf(this.#iovec), true);
    header.setBigUint64(MSG_IOVLEN, 1n, true);
    header.setBigUint64(MSG_CONTROL, addressOf(this.#control), true);
    new DataView(this.#address.buffer).setUint16(0, LINUX.AF_INET, true);
  }

  /**
   * Opens `socket(AF_INET, SOCK_RAW, protocol)`: it receives every IPv4 packet of that
   * protocol that reaches this host (on lo, also the ones it sends), header included.
   */
  static inet(protocol: number, options: InetOptions = {}): RawSocket {
    const spec = { name: "Raw socket", domain: LINUX.AF_INET, type: LINUX.SOCK_RAW, protocol };
    return PolledSocket.open(spec, (polled) => {
      const { libc, fd } = polled;
      if (options.headerIncluded) {
        setSocketOption(libc, fd, LINUX.IPPROTO_IP, LINUX.IP_HDRINCL, 1);
      }
      if (options.icmpTypes) {
        // A set bit filters that type out.
        const mask = options.icmpTypes.reduce((bits, type) => bits & ~(1 << type), ~0);
        setSocketOption(libc, fd, LINUX.SOL_RAW, LINUX.ICMP_FILTER, mask);
      }
      if (options.timestamps) {
        setSocketOption(libc, fd, LINUX.SOL_SOCKET, LINUX.SO_TIMESTAMPNS, 1);
      }
      const socket = new RawSocket(polled);
      if (options.filter) {
        attachSocketFilter(libc, fd, options.filter);
        // What arrived between socket() and the filter passed no filter: throw it away, as
        // libpcap does, so the first packet read is one the filter let through.
        while (socket.#receiveNow() !== null) { /* discard */ }
      }
      return socket;
    });
  }

  /**
   * Sends `data` to the IPv4 address `to` and returns the bytes sent. With `IP_HDRINCL` the
   * kernel still routes by `to`, not by the header's destination.
   */
  send(data: Uint8Array, to: string): number {
    this.#socket.checkOpen();
    this.#address.set(parseIPv4(to), 4);
    return this.#sendto(data);
  }

  /**
   * Sends like {@linkcode RawSocket.send} and returns the time of `CLOCK_REALTIME` read just
   * before `sendto`, in nanoseconds: with a received packet's `receivedNs` it gives a round
   * trip measured by the same clock, as ping measures it.
   */
  sendStamped(data: Uint8Array, to: string): bigint {
    this.#socket.checkOpen();
    this.#address.set(parseIPv4(to), 4);
    const sentNs = realtimeNs(this.#socket.libc);
    this.#sendto(data);
    return sentNs;
  }

  #sendto(data: Uint8Array): number {
    const { libc, fd } = this.#socket;
    const sent = Number(
      libc.symbols.sendto(
        fd,
        data as Uint8Array<ArrayBuffer>,
        BigInt(data.length),
        0,
        this.#address,
        16,
      ),
    );
    if (sent < 0) throw lastError(libc, "sendto");
    return sent;
  }

  /**
   * Waits for the next packet; returns `null` on timeout, on abort or when the socket is
   * closed meanwhile. One receive at a time.
   */
  receive(options: ReceiveOptions = {}): Promise<RawPacket | null> {
    return this.#socket.receive(() => this.#receiveNow(), options);
  }

  /** One `recvmsg` that does not wait; `null` when nothing is queued. */
  #receiveNow(): RawPacket | null {
    const header = this.#headerView;
    header.setUint32(MSG_NAMELEN, this.#name.length, true);
    header.setBigUint64(MSG_CONTROLLEN, BigInt(this.#control.length), true);
    const { libc, fd } = this.#socket;
    const recvmsg = () => Number(libc.symbols.recvmsg(fd, this.#header, LINUX.MSG_DONTWAIT));
    let received = recvmsg();
    if (received < 0) {
      // An empty queue is the usual failure, once per wake-up: no error object for it.
      if (isEmptyQueue(errno(libc))) return null;
      try {
        // Anything else is repeated until errno is sure (see callOrThrow).
        received = callOrThrow(libc, "recvmsg", recvmsg);
      } catch (error) {
        if (error instanceof OsError && isEmptyQueue(error.errno)) return null;
        throw error;
      }
    }
    const packet: RawPacket = {
      data: this.#buffer.slice(0, received),
      from: formatIPv4(this.#name, 4),
    };
    const receivedNs = this.#timestamp(Number(header.getBigUint64(MSG_CONTROLLEN, true)));
    if (receivedNs !== undefined) packet.receivedNs = receivedNs;
    return packet;
  }

  /** The `SCM_TIMESTAMPNS` control message among the first `length` control bytes. */
  #timestamp(length: number): bigint | undefined {
    const control = new DataView(this.#control.buffer);
    for (let offset = 0; offset + CMSG_DATA <= length;) {
      const size = Number(control.getBigUint64(offset + CMSG_LEN, true));
      if (size < CMSG_DATA) break;
      const level = control.getInt32(offset + CMSG_LEVEL, true);
      const type = control.getInt32(offset + CMSG_TYPE, true);
      if (level === LINUX.SOL_SOCKET && type === LINUX.SCM_TIMESTAMPNS && size >= CMSG_DATA + 16) {
        const seconds = control.getBigInt64(offset + CMSG_DATA, true);
        return seconds * 1_000_000_000n + control.getBigInt64(offset + CMSG_DATA + 8, true);
      }
      offset += (size + 7) & ~7; // CMSG_ALIGN
    }
    return undefined;
  }

  /**
   * Closes the socket. A receive in progress returns `null` first: its wait on another thread
   * is woken at once, and only then is the descriptor closed, so it is never reused under it.
   */
  close(): void {
    this.#socket.close();
  }

  /** The same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** `EAGAIN` (nothing queued) or `EINTR`: try again once the socket is readable. */
function isEmptyQueue(code: number): boolean {
  return code === LINUX.EAGAIN || code === LINUX.EINTR;
}

function addressOf(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>)));
}
