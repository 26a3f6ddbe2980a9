/**
 * What the raw socket and the capture ring share: a socket opened through libc (closed again
 * when its setup fails), read one receive at a time through a {@linkcode ReadablePoller}, and
 * closed once. A close wakes a receive in progress, and the descriptor is released only after
 * that receive has returned, so it is never reused under it.
 * @module
 */
import { callOrThrow, type Libc, LINUX, openLibc } from "./libc.ts";
import { ReadablePoller } from "./raw_poll.ts";

/** What {@linkcode PolledSocket.open} opens: `socket(domain, type, protocol)`. */
export interface SocketSpec {
  /** What errors call it: `Raw socket is closed`. */
  name: string;
  /** Address family, e.g. `LINUX.AF_INET`. */
  domain: number;
  /** Socket type, e.g. `LINUX.SOCK_RAW`; `SOCK_CLOEXEC` is added. */
  type: number;
  /** Protocol number. */
  protocol: number;
}

/** Options for {@linkcode PolledSocket.receive}. */
export interface PollOptions {
  /** Give up after this many milliseconds and return `null`. @default {Infinity} */
  timeout?: number;
  /** Give up when aborted and return `null`. */
  signal?: AbortSignal;
}

/**
 * A libc socket and its poller. `close()` (or `using`) is safe to call twice and waits for no
 * one.
 *
 * @example A raw ICMP socket (as root, with --allow-ffi)
 * ```ts ignore
 * import { LINUX } from "./libc.ts";
 * import { PolledSocket } from "./polled_socket.ts";
 * const spec = { name: "Raw socket", domain: LINUX.AF_INET, type: LINUX.SOCK_RAW, protocol: 1 };
 * using socket = PolledSocket.open(spec, (socket) => socket);
 * const packet = await socket.receive(() => readOnePacketOrNull(socket.fd), { timeout: 1000 });
 * ```
 */
export class PolledSocket implements Disposable {
  /** libc, open as long as the socket is. */
  readonly libc: Libc;
  /** The socket's descriptor. */
  readonly fd: number;
  readonly #name: string;
  readonly #poller: ReadablePoller;
  readonly #onRelease: (() => void)[] = [];
  #receiving = false;
  #closed = false;

  private constructor(libc: Libc, fd: number, name: string) {
    this.libc = libc;
    this.fd = fd;
    this.#name = name;
    this.#poller = new ReadablePoller(libc, fd);
  }

  /**
   * Opens libc and the socket that `spec` describes, and returns what `setup` makes of it (the
   * options set, the owner built). When anything throws, what was opened is closed again.
   */
  static open<T>(spec: SocketSpec, setup: (socket: PolledSocket) => T): T {
    const libc = openLibc();
    let fd = -1;
    let socket: PolledSocket | undefined;
    try {
      fd = callOrThrow(
        libc,
        "socket",
        () => libc.symbols.socket(spec.domain, spec.type | LINUX.SOCK_CLOEXEC, spec.protocol),
      );
      socket = new PolledSocket(libc, fd, spec.name);
      return setup(socket);
    } catch (error) {
      if (socket !== undefined) {
        socket.close();
      } else {
        if (fd >= 0) libc.symbols.close(fd);
        libc.close();
      }
      throw error;
    }
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs `release` when the socket is released, before its descriptor is closed (a `munmap`). */
  onRelease(release: () => void): void {
    this.#onRelease.push(release);
  }

  /** Throws `Deno.errors.BadResource` once the socket is closed. */
  checkOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.#name} is closed`);
  }

  /**
   * Calls `take` until it returns something, waiting for the descriptor between calls; returns
   * `null` on timeout, on abort, or when the socket is closed meanwhile. One receive at a time.
   */
  async receive<T>(take: () => T | null, options: PollOptions = {}): Promise<T | null> {
    this.checkOpen();
    if (this.#receiving) throw new TypeError("Cannot receive twice at the same time");
    this.#receiving = true;
    try {
      return await this.#poller.poll(take, () => !this.#closed, options);
    } finally {
      this.#receiving = false;
      if (this.#closed) this.#release();
    }
  }

  /**
   * Closes the socket. A receive in progress returns `null` first (its wait on another thread
   * is woken at once), and only then is the descriptor released.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#receiving) this.#poller.wake();
    else this.#release();
  }

  #release(): void {
    this.#poller.close();
    for (const release of this.#onRelease) release();
    this.libc.symbols.close(this.fd);
    this.libc.close();
  }

  /** The same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
