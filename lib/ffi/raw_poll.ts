/**
 * Waiting for a descriptor to become readable without blocking the event loop: `poll()` runs on
 * one of the runtime's worker threads, on the descriptor and on an `eventfd` that `wake()` (or
 * an abort) writes to, so a stop ends the wait at once instead of at the next timeout.
 * @module
 */
import { callOrThrow, lastError, type Libc, LINUX } from "./libc.ts";

/**
 * `poll(fd, POLLIN)` on a worker thread, which `wake()` interrupts. Close it after the last
 * wait has ended.
 *
 * @example Wait up to 50 ms for a raw socket (as root, with --allow-ffi)
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * import { ReadablePoller } from "./raw_poll.ts";
 * const libc = openLibc();
 * using poller = new ReadablePoller(libc, fd);
 * const readable = await poller.wait(50);
 * ```
 */
export class ReadablePoller implements Disposable {
  readonly #libc: Libc;
  readonly #wakeFd: number;
  readonly #pollfds = new Uint8Array(16);
  readonly #counter = new Uint8Array(new BigUint64Array([1n]).buffer);
  #closed = false;

  /** Prepares the `struct pollfd` pair for `fd` and a new `eventfd`. */
  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.#wakeFd = callOrThrow(
      libc,
      "eventfd",
      () => libc.symbols.eventfd(0, LINUX.EFD_NONBLOCK | LINUX.EFD_CLOEXEC),
    );
    const view = new DataView(this.#pollfds.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, LINUX.POLLIN, true);
    view.setInt32(8, this.#wakeFd, true);
    view.setInt16(12, LINUX.POLLIN, true);
  }

  /**
   * Waits at most `ms` (`Infinity`: until readable or woken) and tells whether the descriptor
   * is readable. A wake, an abort of `signal` or an interrupted wait (`EINTR`) return `false`;
   * other failures throw.
   */
  async wait(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return false;
    const timeout = Number.isFinite(ms) ? Math.max(0, Math.min(Math.ceil(ms), 2 ** 31 - 1)) : -1;
    const onAbort = () => this.wake();
    signal?.addEventListener("abort", onAbort, { once: true });
    let ready: number;
    try {
      ready = await this.#libc.symbols.poll(this.#pollfds, 2n, timeout);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    const view = new DataView(this.#pollfds.buffer);
    if (ready > 0 && view.getInt16(14, true) !== 0) {
      this.#libc.symbols.read(this.#wakeFd, new Uint8Array(8), 8n); // consume the wake
    }
    if (ready > 0) return view.getInt16(6, true) !== 0;
    // errno lives on the worker thread; ask again here to learn why it failed.
    if (ready < 0 && this.#libc.symbols.poll_now(this.#pollfds, 2n, 0) < 0) {
      const error = lastError(this.#libc, "poll");
      if (error.errno !== LINUX.EINTR) throw error;
    }
    return false;
  }

  /**
   * Calls `take` until it returns something, waiting for the descriptor between calls; returns
   * `null` once `options.timeout` ms have passed, `options.signal` aborts, or `isOpen()` turns
   * false (a close meanwhile). The receive loop of every FFI socket.
   */
  async poll<T>(
    take: () => T | null,
    isOpen: () => boolean,
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<T | null> {
    const deadline = performance.now() + (options.timeout ?? Infinity);
    while (isOpen() && !options.signal?.aborted) {
      const taken = take();
      if (taken !== null) return taken;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      await this.wait(left, options.signal);
    }
    return null;
  }

  /** Ends a wait in progress (or the next one) at once. */
  wake(): void {
    if (!this.#closed) this.#libc.symbols.write(this.#wakeFd, this.#counter, 8n);
  }

  /** Closes the `eventfd`; call it once no wait is in progress. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.symbols.close(this.#wakeFd);
  }

  /** The same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
