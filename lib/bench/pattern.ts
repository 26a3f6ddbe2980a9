/**
 * The bytes a load client sends, and the check of every byte that comes back: a pseudo-random
 * pattern that each connection reads from its own starting point (its seed), so an echo that
 * swaps, drops, repeats or mixes up connections' bytes is caught, with a native range compare
 * and no copy per read.
 * @module
 */
import { Buffer } from "node:buffer";

/**
 * A repeating pseudo-random byte pattern of period `slots × size`, laid out so that any stream
 * offset can be read or checked as one contiguous view of up to `size` (or `readLength`) bytes.
 *
 * @example Sending and checking one message
 * ```ts
 * import { EchoPattern } from "./pattern.ts";
 * const pattern = new EchoPattern(64, 128);
 * const seed = pattern.seedFor(3);
 * const sent = pattern.message(seed, 0);
 * const echoed = sent.slice();
 * if (!pattern.matches(seed, 0, echoed, 0, 64)) throw new Error("a true echo must match");
 * echoed[10] ^= 1;
 * if (pattern.matches(seed, 0, echoed, 0, 64)) throw new Error("a flipped bit must not");
 * if (!pattern.describeMismatch(seed, 0, echoed, 0, 64).startsWith("Echo differs at byte 10")) {
 *   throw new Error("wrong offset");
 * }
 * ```
 */
export class EchoPattern {
  /** Bytes per message. */
  readonly size: number;
  /** The pattern repeats after this many bytes. */
  readonly period: number;
  /** One period, extended so that a read of `readLength` bytes fits anywhere in it. */
  readonly bytes: Uint8Array;
  readonly #buffer: Buffer;
  /** Views of `size` bytes at each slot, created once, so sending allocates nothing. */
  readonly #slots: Uint8Array[] = [];

  /**
   * Builds the pattern for messages of `size` bytes.
   *
   * @param size Bytes per message (pingpong, hold) or per write (bulk).
   * @param readLength The longest read to check at once.
   */
  constructor(size: number, readLength: number) {
    const slots = size <= 65536 ? 61 : 5;
    this.size = size;
    this.period = slots * size;
    this.bytes = new Uint8Array(this.period + Math.max(size, readLength));
    let x = 0x9e3779b9;
    for (let i = 0; i < this.bytes.length; i++) {
      if (i >= this.period) {
        this.bytes[i] = this.bytes[i - this.period];
        continue;
      }
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.bytes[i] = x >>> 24;
    }
    this.#buffer = Buffer.from(this.bytes.buffer);
    for (let slot = 0; slot < slots; slot++) {
      this.#slots.push(this.bytes.subarray(slot * size, (slot + 1) * size));
    }
  }

  /** Where connection number `index` starts in the pattern, so neighbours differ. */
  seedFor(index: number): number {
    return (index % (this.period / this.size)) * this.size;
  }

  /** The `size` bytes a connection with `seed` sends at stream offset `offset`. */
  message(seed: number, offset: number): Uint8Array {
    const index = (offset + seed) % this.period;
    return index % this.size === 0
      ? this.#slots[index / this.size]
      : this.bytes.subarray(index, index + this.size);
  }

  /** Whether `buffer[from, from + length)` is what a connection with `seed` sent at `offset`. */
  matches(seed: number, offset: number, buffer: Uint8Array, from: number, length: number): boolean {
    const index = (offset + seed) % this.period;
    return this.#buffer.compare(buffer, from, from + length, index, index + length) === 0;
  }

  /** The report line for a read that {@linkcode EchoPattern.matches} refused. */
  describeMismatch(
    seed: number,
    offset: number,
    buffer: Uint8Array,
    from: number,
    length: number,
  ): string {
    const index = (offset + seed) % this.period;
    let at = 0;
    while (at < length && buffer[from + at] === this.bytes[index + at]) at++;
    return at < length
      ? `Echo differs at byte ${offset + at}: got 0x${hex(buffer[from + at])}, sent 0x${
        hex(this.bytes[index + at])
      }`
      : `Echo has more bytes than were sent (at byte ${offset + at})`;
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
