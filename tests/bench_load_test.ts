import { assert, assertEquals, assertGreater } from "@std/assert";
import { bulkLoop, pingpongLoop } from "../lib/bench/load_loops.ts";
import { LoadState } from "../lib/bench/load_state.ts";
import { runBench } from "../lib/bench/load.ts";
import { withEchoServer } from "./_echo_fixtures.ts";

Deno.test("runBench() serves every connection under a continuous pingpong load", async () => {
  await withEchoServer(async (port) => {
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
  await withEchoServer(async (port) => {
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

/**
 * A connection whose peer echoes each write at once, while the write itself resolves only a
 * timer turn later: what a loopback socket may do when the echo's read completion is handled
 * before the write's.
 */
class EchoBeforeWriteResolves {
  readonly #echoed: Uint8Array[] = [];
  #reader: (() => void) | null = null;
  #closed = false;
  writes = 0;

  write(bytes: Uint8Array): Promise<number> {
    this.writes++;
    this.#echoed.push(bytes.slice());
    this.#wake();
    return new Promise((resolve) => setTimeout(() => resolve(bytes.length), 1));
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#echoed.length === 0 && !this.#closed) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#reader = resolve;
      await promise;
    }
    const chunk = this.#echoed.shift();
    if (chunk === undefined) return null;
    buffer.set(chunk);
    return chunk.length;
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const reader = this.#reader;
    this.#reader = null;
    reader?.();
  }
}

Deno.test("bulk loops count a write as sent before its echo can come back", async () => {
  const state = new LoadState({ size: 1024, readLength: 4096, turnBudgetMs: 2 });
  const conn = new EchoBeforeWriteResolves();
  state.add(conn as unknown as Deno.Conn, 0);
  state.measureStart = performance.now();
  const c = state.connections[0];
  const running = bulkLoop(state, c, 4096);
  // Stop once a few writes were echoed before they resolved.
  while (conn.writes < 8 && !c.failed) await new Promise((resolve) => setTimeout(resolve, 1));
  state.stopping = true;
  await running;
  assertEquals(state.errors.total, 0, state.firstError ?? undefined);
  assertEquals(c.received, c.sent);
  assertEquals(state.bytes, c.sent);
  assert(c.done);
  assertEquals(state.open, 0);
});

Deno.test("LoadState counts a connection open until it fails or finishes, once", () => {
  const state = new LoadState({ size: 64, readLength: 128, turnBudgetMs: 2 });
  const conns = [0, 1, 2].map(() => new EchoBeforeWriteResolves());
  conns.forEach((conn, i) => state.add(conn as unknown as Deno.Conn, i));
  const [a, b, c] = state.connections;
  assertEquals(state.open, 3);
  state.fail(a, "reset", "reset");
  state.fail(a, "reset", "reset again");
  assertEquals(state.open, 2);
  state.finish(b);
  state.finish(b);
  assertEquals(state.open, 1);
  state.finish(a); // failed first: stays failed, not finished
  assertEquals([a.done, state.open], [false, 1]);
  state.fail(b, "timeout", "after it finished"); // counted, but it was no longer open
  assertEquals([state.errors.total, state.open], [2, 1]);
  state.failWith(c, new Deno.errors.ConnectionReset("reset"));
  assertEquals(state.open, 0);
});
