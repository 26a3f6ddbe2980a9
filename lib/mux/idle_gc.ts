/**
 * One garbage collection when a server has gone quiet after churn. V8 collects only while
 * JavaScript allocates, so an idle server keeps whatever garbage its last connections left:
 * measured, about 25 MiB of heap per 5000 closed connections, and the buffers of a bulk burst,
 * which the next clients then find in place (RSS 10 s after an 8 × 64 KiB burst: 1.30–1.84× what
 * it was while holding 5000 connections; with this and the buffer pool, 0.79–0.82×). `gc` comes
 * from `node:v8`'s `setFlagsFromString("--expose-gc")` and `node:vm`, the documented Node idiom:
 * Deno has no API of its own for it, and it needs no flag on the command line and no permission.
 * @module
 */

/** Churn, in KiB, after which a quiet second is worth a collection. */
export const CHURN_KIB = 8 * 1024;
/** How often the collector looks whether the loop is quiet. */
export const QUIET_MS = 1000;

let gcFunction: Promise<(() => void) | undefined> | undefined;

async function loadGc(): Promise<(() => void) | undefined> {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  try {
    const v8 = await import("node:v8");
    const vm = await import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    return typeof gc === "function" ? gc : undefined;
  } catch {
    return undefined; // no collection then: only memory that comes back later
  }
}

/**
 * Collects once the loops it watches have been quiet for {@linkcode QUIET_MS} after at least
 * {@linkcode CHURN_KIB} of churn. One per process (the heap is), shared by every multiplexer.
 *
 * @example
 * ```ts
 * import { IdleCollector } from "./idle_gc.ts";
 * const collector = new IdleCollector();
 * collector.retain();
 * collector.churn(64);
 * collector.event();
 * collector.release();
 * ```
 */
export class IdleCollector {
  /** Collections run so far. */
  collections = 0;
  #users = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #events = 0;
  #seen = 0;
  #churnKiB = 0;

  /** A loop starts watching. */
  retain(): void {
    this.#users++;
  }

  /** A loop stops watching; the last one stops the collector's timer. */
  release(): void {
    if (--this.#users === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The loop handled an event: it is not quiet. */
  event(): void {
    this.#events++;
  }

  /** Memory was given up (a closed connection, a private buffer). Past {@linkcode CHURN_KIB},
   * a timer looks every {@linkcode QUIET_MS} whether the loops have gone quiet: no timer runs
   * on a server that has nothing to give back (even an idle interval costs memory). */
  churn(kib: number): void {
    this.#churnKiB += kib;
    if (this.#churnKiB >= CHURN_KIB && this.#timer === undefined && this.#users > 0) this.#arm();
  }

  #arm(): void {
    this.#seen = this.#events;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#events !== this.#seen) return this.#arm(); // still busy: look again later
      this.#collect();
    }, QUIET_MS);
    // The timer must not keep a program alive that has nothing else to do.
    Deno.unrefTimer(this.#timer);
  }

  #collect(): void {
    this.#churnKiB = 0;
    gcFunction ??= loadGc();
    gcFunction.then((gc) => {
      if (gc === undefined) return;
      gc();
      this.collections++;
    });
  }
}

/** The collector of the process (per worker thread). */
export const idleCollector: IdleCollector = new IdleCollector();
