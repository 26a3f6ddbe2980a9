/**
 * A raw socket over libc: open, send, receive with a timeout, close. `AF_INET` raw sockets send
 * and receive IP packets of one protocol (with `IP_HDRINCL` the caller writes the IPv4 header
 * too); `AF_PACKET` sockets receive whole link-layer frames from one interface. Needs root (or
 * CAP_NET_RAW) and `--allow-ffi`.
 * @module
 */
import { formatIPv4, parseIPv4 } from "../packet/packet_fields.ts";
import { callOrThrow, lastError, type Libc, LINUX, openLibc, OsError } from "./libc.ts";

/** Where a received packet came from. */
export type RawSource =
  | { family: "inet"; address: string }
  | {
    family: "packet";
    /** Interface index. */
    interfaceIndex: number;
    /** EtherType of the frame. */
    protocol: number;
    /** Linux packet type: 0 to us, 4 sent by us (`PACKET_OUTGOING`), ... */
    packetType: number;
    /** ARP hardware type: 1 Ethernet, 772 loopback. */
    hardwareType: number;
  };

/** A received packet. */
export interface RawPacket {
  /** The bytes received (a copy): for `AF_INET`, from the IPv4 header on. */
  data: Uint8Array;
  /** Where it came from. */
  source: RawSource;
}

/** Options for {@linkcode RawSocket.receive}. */
export interface ReceiveOptions {
  /** Give up after this many milliseconds and return `null`. @default {Infinity} */
  timeout?: number;
  /** Give up when aborted and return `null`. */
  signal?: AbortSignal;
}

/** Options for {@linkcode RawSocket.inet}. */
export interface InetOptions {
  /** Whether sent packets start with the IPv4 header (`IP_HDRINCL`). @default {false} */
  headerIncluded?: boolean;
}

// How long one wait on a worker thread lasts at most, so that an abort or a close is noticed.
const POLL_SLICE_MS = 100;
const BUFFER_SIZE = 65_536 + 256;

/**
 * A raw socket. Every descriptor is closed on every path: a failed open closes what it
 * opened, and `close()` (or `using`) is safe to call twice and waits for no one.
 *
 * @example Ping yourself (as root, with --allow-ffi)
 * ```ts ignore
 * import { RawSocket } from "./raw_socket.ts";
 * using socket = RawSocket.inet(1);
 * socket.send(echoRequestBytes, "127.0.0.1");
 * const reply = await socket.receive({ timeout: 1000 });
 * ```
 */
export class RawSocket implements Disposable {
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #family: "inet" | "packet";
  #buffer: Uint8Array<ArrayBuffer> | undefined;
  #receiving = false;
  #closed = false;

  private constructor(libc: Libc, fd: number, family: "inet" | "packet") {
    this.#libc = libc;
    this.#fd = fd;
    this.#family = family;
  }

  /**
   * Opens `socket(AF_INET, SOCK_RAW, protocol)`: it receives every IPv4 packet of that
   * protocol that reaches this host (on lo, also the ones it sends), header included.
   */
  static inet(protocol: number, options: InetOptions = {}): RawSocket {
    return RawSocket.#open(LINUX.AF_INET, protocol, (libc, fd) => {
      if (options.headerIncluded) {
        const on = new Uint8Array(new Int32Array([1]).buffer);
        callOrThrow(
          libc,
          "setsockopt",
          () => libc.symbols.setsockopt(fd, LINUX.IPPROTO_IP, LINUX.IP_HDRINCL, on, 4),
        );
      }
      return "inet";
    });
  }

  /** Opens an `AF_PACKET` socket that receives every frame on the interface named `name`. */
  static packet(name: string): RawSocket {
    // Protocol 0 receives nothing until bind() names the interface, so no frame of another
    // interface slips in between the two calls.
    return RawSocket.#open(LINUX.AF_PACKET, 0, (libc, fd) => {
      const index = libc.symbols.if_nametoindex(new TextEncoder().encode(`${name}\0`));
      if (index === 0) {
        const error = lastError(libc, "if_nametoindex");
        throw new OsError("if_nametoindex", error.errno, `No interface named "${name}"`);
      }
      const address = new Uint8Array(20);
      const view = new DataView(address.buffer);
      view.setUint16(0, LINUX.AF_PACKET, true);
      view.setUint16(2, LINUX.ETH_P_ALL); // network byte order
      view.setInt32(4, index, true);
      callOrThrow(libc, "bind", () => libc.symbols.bind(fd, address, address.length));
      return "packet";
    });
  }

  static #open(
    domain: number,
    protocol: number,
    setUp: (libc: Libc, fd: number) => "inet" | "packet",
  ): RawSocket {
    const libc = openLibc();
    let fd = -1;
    try {
      fd = callOrThrow(
        libc,
        "socket",
        () => libc.symbols.socket(domain, LINUX.SOCK_RAW | LINUX.SOCK_CLOEXEC, protocol),
      );
      return new RawSocket(libc, fd, setUp(libc, fd));
    } catch (error) {
      if (fd >= 0) libc.symbols.close(fd);
      libc.close();
      throw error;
    }
  }

  /** The file descriptor. */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Sends `data` to the IPv4 address `to` (`AF_INET` sockets only) and returns the bytes
   * sent. With `IP_HDRINCL` the kernel still routes by `to`, not by the header's destination.
   */
  send(data: Uint8Array, to: string): number {
    this.#checkOpen();
    if (this.#family !== "inet") throw new TypeError("Cannot send on a packet socket");
    const address = new Uint8Array(16);
    new DataView(address.buffer).setUint16(0, LINUX.AF_INET, true);
    address.set(parseIPv4(to), 4);
    const sent = Number(
      this.#libc.symbols.sendto(this.#fd, data, BigInt(data.length), 0, address, 16),
    );
    if (sent < 0) throw lastError(this.#libc, "sendto");
    return sent;
  }

  /**
   * Waits for the next packet; returns `null` on timeout, on abort or when the socket is
   * closed meanwhile. One receive at a time.
   */
  async receive(options: ReceiveOptions = {}): Promise<RawPacket | null> {
    this.#checkOpen();
    if (this.#receiving) throw new TypeError("Cannot receive twice at the same time");
    this.#receiving = true;
    const deadline = performance.now() + (options.timeout ?? Infinity);
    const pollfd = new Uint8Array(8);
    const view = new DataView(pollfd.buffer);
    view.setInt32(0, this.#fd, true);
    view.setInt16(4, LINUX.POLLIN, true);
    try {
      while (!this.#closed && !options.signal?.aborted) {
        const packet = this.#receiveNow();
        if (packet) return packet;
        const left = deadline - performance.now();
        if (left <= 0) return null;
        const ready = await this.#libc.symbols.poll(
          pollfd,
          1n,
          Math.ceil(Math.min(left, POLL_SLICE_MS)),
        );
        // errno lives on the worker thread; ask again here to learn why it failed.
        if (ready < 0 && this.#libc.symbols.poll_now(pollfd, 1n, 0) < 0) {
          const error = lastError(this.#libc, "poll");
          if (error.errno !== LINUX.EINTR) throw error;
        }
      }
      return null;
    } finally {
      this.#receiving = false;
      if (this.#closed) this.#release();
    }
  }

  /** One `recvfrom` that does not wait; `null` when nothing is queued. */
  #receiveNow(): RawPacket | null {
    this.#buffer ??= new Uint8Array(BUFFER_SIZE);
    const address = new Uint8Array(128);
    const length = new Uint8Array(new Uint32Array([address.length]).buffer);
    const buffer = this.#buffer;
    let received: number;
    try {
      received = callOrThrow(this.#libc, "recvfrom", () =>
        Number(this.#libc.symbols.recvfrom(
          this.#fd,
          buffer,
          BigInt(buffer.length),
          LINUX.MSG_DONTWAIT,
          address,
          length,
        )));
    } catch (error) {
      const code = error instanceof OsError ? error.errno : -1;
      if (code === LINUX.EAGAIN || code === LINUX.EINTR) return null;
      throw error;
    }
    return { data: buffer.slice(0, received), source: this.#source(address) };
  }

  #source(address: Uint8Array): RawSource {
    const view = new DataView(address.buffer);
    if (this.#family === "inet") return { family: "inet", address: formatIPv4(address, 4) };
    return {
      family: "packet",
      protocol: view.getUint16(2),
      interfaceIndex: view.getInt32(4, true),
      hardwareType: view.getUint16(8, true),
      packetType: view.getUint8(10),
    };
  }

  #checkOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Raw socket is closed");
  }

  /**
   * Closes the socket. A receive in progress returns `null` first: its wait on another thread
   * ends within 100 ms, and only then is the descriptor closed, so it is never reused under it.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#receiving) this.#release();
  }

  #release(): void {
    this.#libc.symbols.close(this.#fd);
    this.#libc.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
