import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { fairnessOf } from "../lib/bench/fairness.ts";
import { LatencyHistogram } from "../lib/bench/histogram.ts";

Deno.test("LatencyHistogram reports p99.9 within 3 % and below the exact max", () => {
  const histogram = new LatencyHistogram();
  for (let us = 1; us <= 100_000; us++) histogram.record(us / 1000);
  const summary = histogram.summary()!;
  assertEquals(summary.count, 100_000);
  assert(Math.abs(summary.p999 - 99.9) / 99.9 < 0.03, `${summary.p999} is not about 99.9`);
  assert(summary.p99 <= summary.p999 && summary.p999 <= summary.max);
  assertEquals(summary.max, 100);
});

Deno.test("LatencyHistogram's p99.9 shows one slow round trip in a thousand", () => {
  const histogram = new LatencyHistogram();
  for (let i = 0; i < 998; i++) histogram.record(1);
  histogram.record(500);
  histogram.record(800);
  const summary = histogram.summary()!;
  // p99 is still the fast majority; p99.9 (rank 999 of 1000) is the first slow one.
  assertAlmostEquals(summary.p99, 1, 0.03);
  assert(Math.abs(summary.p999 - 500) / 500 < 0.03, `${summary.p999} is not about 500`);
  assertEquals(summary.max, 800);
});

Deno.test("fairnessOf() gives Jain's index and slowest/median of per-connection counts", () => {
  assertEquals(fairnessOf([]), null);
  assertEquals(fairnessOf([0, 0, 0]), null);
  assertEquals(fairnessOf([50, 50, 50, 50]), {
    connections: 4,
    jain: 1,
    slowestToMedian: 1,
    min: 50,
    median: 50,
    max: 50,
  });
  // One connection of five got everything: Jain's index is 1/n.
  const hog = fairnessOf([0, 0, 1000, 0, 0])!;
  assertAlmostEquals(hog.jain, 1 / 5, 1e-12);
  assertEquals(hog.slowestToMedian, 0);
  assertEquals([hog.min, hog.median, hog.max], [0, 0, 1000]);
  // 500 connections where 5 are starved to a tenth: percentiles of latency would hide them
  // (99 % of round trips are fast); slowest/median does not.
  const counts = Array.from({ length: 500 }, (_, i) => i < 5 ? 100 : 1000 + (i % 3));
  const starved = fairnessOf(counts)!;
  assertEquals(starved.median, 1001);
  assertAlmostEquals(starved.slowestToMedian, 100 / 1001, 1e-12);
  const sum = counts.reduce((a, b) => a + b, 0);
  const squares = counts.reduce((a, b) => a + b * b, 0);
  assertAlmostEquals(starved.jain, (sum * sum) / (500 * squares), 1e-12);
  assert(starved.jain > 0.98, "Jain's index barely moves for a few starved connections");
  // Even counts: the median is the mean of the middle two.
  assertEquals(fairnessOf([4, 1, 3, 2])!.median, 2.5);
});
