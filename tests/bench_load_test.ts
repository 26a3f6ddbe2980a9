import { assert, assertEquals, assertGreater } from "@std/assert";
import { servePerConnection } from "../lib/bench/fixture.ts";
import { pingpongLoop } from "../lib/bench/load_loops.ts";
import { LoadState } from "../lib/bench/load_state.ts";
import { runBench } from "../lib/bench/load.ts";
import { writeAll } from "../lib/io.ts";

/** Runs `fn` with the port of an in-process echo server, then stops the server. */
async function withEcho(fn: (port: number) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  const serving = servePerConnection(
    { signal: controller.signal, onListen: (addr) => listening.resolve(addr.port) },
    async (conn) => {
      const buffer = new Uint8Array(4096);
      for (let n; (n = await conn.read(buffer)) !== null;) {
        await writeAll(conn, buffer.subarray(0, n));
      }
    },
  );
  try {
    await fn(await listening.promise);
  } finally {
    controller.abort();
    await serving;
  }
}

Deno.test("runBench() serves every connection under a continuous pingpong load", async () => {
  await withEcho(async (port) => {
    const result = await runBench({ port, connections: 24, durationMs: 400, warmupMs: 100 });
    assertEquals(result.errors.total, 0, result.firstError ?? undefined);
    const fairness = result.fairness!;
    assertEquals(fairness.connections, 24);
    // Every connection made progress in the interval, and none waited anywhere near as long
    // as the starvation this guards against (seconds): generous bounds, not a speed test.
    assertGreater(fairness.min, 0, "a connection made no round trip in 400 ms");
    assertGreater(fairness.slowestToMedian, 0.05);
    assert(result.latencyMs!.max < 1000, `a round trip took ${result.latencyMs!.max} ms`);
  });
});

Deno.test("pingpong loops pause together under a continuous load on 128 or more connections", async () => {
  await withEcho(async (port) => {
    // A budget of 0: with 130 connections busy the loops pause as soon as they have gone on for
    // a few round trips, however fast or slow this machine is (lib/turn_pacer.ts).
    const state = new LoadState({ size: 64, readLength: 128, turnBudgetMs: 0 });
    for (let i = 0; i < 130; i++) state.add(await Deno.connect({ port }), i);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    state.measureStart = performance.now();
    setTimeout(() => state.stopping = true, 300);
    try {
      await Promise.all(state.connections.map((c) => pingpongLoop(state, c)));
    } finally {
      clearInterval(ticker);
      for (const c of state.connections) c.conn.close();
    }
    assertEquals(state.errors.total, 0, state.firstError ?? undefined);
    assertGreater(state.messages, 0);
    // The loops paused while the load ran, and a 10 ms timer kept running.
    assertGreater(state.pacer.pauses, 0);
    assert(ticks >= 5, `a 10 ms interval ran ${ticks} times in 300 ms of load`);
  });
});
