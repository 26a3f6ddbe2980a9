/**
 * Waiting for a descriptor to become readable without blocking the event loop: `poll()` runs on
 * one of the runtime's worker threads, in slices short enough that a close or an abort is
 * noticed quickly.
 * @module
 */
import { lastError, type Libc, LINUX } from "./libc.ts";

/** The longest single wait, so that an abort or a close is noticed within this many ms. */
export const POLL_SLICE_MS = 100;

/**
 * `poll(fd, POLLIN)` for one descriptor on a worker thread.
 *
 * @example Wait up to 50 ms for a raw socket (as root, with --allow-ffi)
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * import { ReadablePoller } from "./raw_poll.ts";
 * const libc = openLibc();
 * const poller = new ReadablePoller(libc, fd);
 * const readable = await poller.wait(50);
 * ```
 */
export class ReadablePoller {
  readonly #libc: Libc;
  readonly #pollfd = new Uint8Array(8);

  /** Prepares the `struct pollfd` for `fd`. */
  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    const view = new DataView(this.#pollfd.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, LINUX.POLLIN, true);
  }

  /**
   * Waits at most `ms` (and at most {@linkcode POLL_SLICE_MS}) and tells whether the descriptor
   * is readable. An interrupted wait (`EINTR`) counts as not readable; other failures throw.
   */
  async wait(ms: number): Promise<boolean> {
    const timeout = Math.max(0, Math.ceil(Math.min(ms, POLL_SLICE_MS)));
    const ready = await this.#libc.symbols.poll(this.#pollfd, 1n, timeout);
    if (ready > 0) return true;
    // errno lives on the worker thread; ask again here to learn why it failed.
    if (ready < 0 && this.#libc.symbols.poll_now(this.#pollfd, 1n, 0) < 0) {
      const error = lastError(this.#libc, "poll");
      if (error.errno !== LINUX.EINTR) throw error;
    }
    return false;
  }
}
