/**
 * Round-trip latencies in a fixed-size histogram: constant memory however long a benchmark
 * runs, percentiles within about 3 %, the maximum exact.
 * @module
 */

/** Round-trip latency in milliseconds, from a histogram with about 3 % resolution. */
export interface LatencySummary {
  /** Round trips recorded. */
  count: number;
  /** Mean. */
  mean: number;
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** 99.9th percentile: one round trip in a thousand is slower. */
  p999: number;
  /** The slowest round trip (exact). */
  max: number;
}

/** Buckets: 64 exact ones below 64 µs, then 32 per power of two up to 2^31 µs. */
const BUCKETS = 864;

/**
 * A fixed-size log-linear latency histogram over whole microseconds: exact below 64 µs, then 32
 * buckets per power of two (at most ~3 % error), up to about 35 minutes; 864 counters in all.
 *
 * @example Percentiles of 1 to 100 µs
 * ```ts
 * import { LatencyHistogram } from "./histogram.ts";
 * const histogram = new LatencyHistogram();
 * for (let us = 1; us <= 100; us++) histogram.record(us / 1000);
 * const summary = histogram.summary()!;
 * if (summary.max !== 0.1) throw new Error("max is exact");
 * if (summary.p999 > summary.max || summary.p999 < summary.p99) throw new Error("p99.9 out of order");
 * ```
 */
export class LatencyHistogram {
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumUs = 0;
  #maxMs = 0;

  /** Adds one latency, in milliseconds. */
  record(ms: number): void {
    const us = Math.min(Math.max(Math.round(ms * 1000), 0), 0x7fffffff);
    this.#counts[bucketOf(us)]++;
    this.#count++;
    this.#sumUs += us;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  /** Percentiles in milliseconds, or `null` when nothing was recorded. */
  summary(): LatencySummary | null {
    if (this.#count === 0) return null;
    return {
      count: this.#count,
      mean: this.#sumUs / this.#count / 1000,
      p50: this.#percentile(0.5),
      p90: this.#percentile(0.9),
      p99: this.#percentile(0.99),
      p999: this.#percentile(0.999),
      max: this.#maxMs,
    };
  }

  #percentile(fraction: number): number {
    const rank = Math.ceil(fraction * this.#count);
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket];
      if (seen >= rank) return Math.min(bucketMiddleUs(bucket) / 1000, this.#maxMs);
    }
    return this.#maxMs;
  }
}

function bucketOf(us: number): number {
  if (us < 64) return us;
  const shift = 26 - Math.clz32(us); // msb - 5, so `us >> shift` is in [32, 64)
  return shift * 32 + (us >>> shift);
}

function bucketMiddleUs(bucket: number): number {
  if (bucket < 64) return bucket;
  const shift = (bucket >>> 5) - 1;
  return ((32 + (bucket & 31)) << shift) + ((1 << shift) - 1) / 2;
}
