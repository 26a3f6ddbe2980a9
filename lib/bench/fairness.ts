/**
 * How evenly a server shared itself among connections: from each connection's count of round
 * trips (or echoed bytes) in the measured interval, Jain's fairness index and the slowest
 * connection's count against the median one's. Percentiles hide a starved connection when
 * the others are fast; these two show it.
 * @module
 */

/** The spread of per-connection counts; see {@linkcode fairnessOf}. */
export interface Fairness {
  /** Connections counted. */
  connections: number;
  /**
   * Jain's fairness index, (Σx)² / (n·Σx²): 1 when every connection made the same progress,
   * 1/n when one connection made all of it.
   */
  jain: number;
  /**
   * The slowest connection's count divided by the median connection's: 1 is fair, 0.5 means a
   * connection made half the median progress, 0 that one made none.
   */
  slowestToMedian: number;
  /** The smallest count. */
  min: number;
  /** The median count (the mean of the middle two for an even number). */
  median: number;
  /** The largest count. */
  max: number;
}

/**
 * The median of values sorted in ascending order (the mean of the middle two for an even
 * count); `NaN` when there are none.
 *
 * @example
 * ```ts
 * import { medianOfSorted } from "./fairness.ts";
 * if (medianOfSorted([1, 2, 3]) !== 2 || medianOfSorted([1, 2, 3, 4]) !== 2.5) throw new Error();
 * ```
 */
export function medianOfSorted(sorted: readonly number[]): number {
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Measures the spread of `counts`, one per connection; `null` when there are none or all are 0.
 *
 * @example One connection of four starved to a tenth of the others
 * ```ts
 * import { fairnessOf } from "./fairness.ts";
 * const fairness = fairnessOf([100, 100, 100, 10])!;
 * if (fairness.slowestToMedian !== 0.1) throw new Error(`${fairness.slowestToMedian}`);
 * if (Math.abs(fairness.jain - 96100 / 120400) > 1e-12) throw new Error(`${fairness.jain}`);
 * ```
 */
export function fairnessOf(counts: readonly number[]): Fairness | null {
  const sorted = [...counts].sort((a, b) => a - b);
  const n = sorted.length;
  let sum = 0, sumOfSquares = 0;
  for (const count of sorted) {
    sum += count;
    sumOfSquares += count * count;
  }
  if (n === 0 || sum === 0) return null;
  const median = medianOfSorted(sorted);
  return {
    connections: n,
    jain: (sum * sum) / (n * sumOfSquares),
    slowestToMedian: median === 0 ? 0 : sorted[0] / median,
    min: sorted[0],
    median,
    max: sorted[n - 1],
  };
}
