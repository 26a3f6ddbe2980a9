import { assert, assertEquals, assertThrows } from "@std/assert";
import { STARVATION_MIN_PENDING, TurnPacer } from "../lib/turn_pacer.ts";
import { EventQueue } from "../lib/mux/event_queue.ts";

/** Runs `fn` while counting how often it reads `performance.now()`. */
async function clockReads(fn: () => void | Promise<void>): Promise<number> {
  const now = performance.now.bind(performance);
  let reads = 0;
  Object.defineProperty(performance, "now", {
    value: () => (reads++, now()),
    configurable: true,
    writable: true,
  });
  try {
    await fn();
  } finally {
    delete (performance as { now?: unknown }).now; // the prototype's own again
  }
  return reads;
}

Deno.test("TurnPacer pauses every caller together, once the budget is spent with 128 or more busy", async () => {
  const pacer = new TurnPacer(5);
  const start = performance.now();
  // Only promise continuations: the pacer is what lets a timer turn happen.
  let timerRan = false;
  setTimeout(() => timerRan = true, 0);
  while (performance.now() - start < 50) {
    if (pacer.due(STARVATION_MIN_PENDING)) {
      // A second caller during the pause shares it.
      const [first, second] = [pacer.pause(), pacer.pause()];
      assert(first === second, "two callers got two pauses");
      await first;
    } else await Promise.resolve();
  }
  assert(timerRan, "a timer never ran during a 50 ms loop of continuations");
  assert(pacer.pauses >= 1 && pacer.pauses <= 10, `${pacer.pauses} pauses in 50 ms at 5 ms`);
});

Deno.test("TurnPacer never pauses below 128 busy operations, nor with an infinite budget", () => {
  const pacer = new TurnPacer(0);
  for (let i = 0; i < 1000; i++) assertEquals(pacer.due(STARVATION_MIN_PENDING - 1), false);
  const never = new TurnPacer(Infinity);
  for (let i = 0; i < 1000; i++) assertEquals(never.due(1000), false);
  assertThrows(() => new TurnPacer(-1), RangeError, "Cannot use a turn budget of -1 ms");
});

Deno.test("TurnPacer does not pause before 128 busy events since its last pause or restart, budget spent or not", async () => {
  // A budget of 0 is always spent: only the count of events decides.
  const pacer = new TurnPacer(0);
  /** How many busy events it takes until the pacer says a pause is due. */
  const eventsUntilDue = () => {
    for (let events = 1; events <= 10 * STARVATION_MIN_PENDING; events++) {
      if (pacer.due(1000)) return events;
    }
    return Infinity;
  };
  // A mostly idle loop (a slow peer): fewer than 128 events, however long they take.
  for (let i = 0; i < STARVATION_MIN_PENDING - 1; i++) {
    assertEquals(pacer.due(1000), false);
    if (i % 32 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  // Events with fewer operations in flight do not count towards the 128.
  for (let i = 0; i < 1000; i++) assertEquals(pacer.due(STARVATION_MIN_PENDING - 1), false);
  assertEquals(pacer.due(1000), true, "the 128th busy event with the budget spent");
  await pacer.pause();
  assertEquals(pacer.pauses, 1);
  assertEquals(eventsUntilDue(), STARVATION_MIN_PENDING, "a pause starts the count afresh");
  await pacer.pause();
  for (let i = 0; i < 100; i++) assertEquals(pacer.due(1000), false);
  pacer.restart();
  assertEquals(eventsUntilDue(), STARVATION_MIN_PENDING, "a restart starts the count afresh");
});

Deno.test("TurnPacer reads no clock below 128 busy operations, nor to restart", async () => {
  const pacer = new TurnPacer(0);
  assertEquals(
    await clockReads(() => {
      for (let i = 0; i < 1000; i++) pacer.due(STARVATION_MIN_PENDING - 1);
      for (let i = 0; i < 1000; i++) pacer.restart();
    }),
    0,
  );
  // Busy: one read starts the budget, then one every 16 events past the 128th.
  assertEquals(
    await clockReads(() => {
      for (let i = 0; i < STARVATION_MIN_PENDING - 1; i++) pacer.due(1000);
    }),
    1,
  );
});

Deno.test("EventQueue times a wait only when its timeWaits says so, and then tells onIdle about a long one", async () => {
  let idle = 0;
  let timed = false;
  const queue = new EventQueue<number>({ onIdle: () => idle++, timeWaits: () => timed });
  const waitThenPush = async (value: number) => {
    const next = queue.next();
    // Well past the 1 ms that counts as idle.
    await new Promise((resolve) => setTimeout(resolve, 5));
    queue.push(value);
    assertEquals(await next, { value, done: false });
  };
  // The pacer cannot act (fewer than 128 operations in flight): no clock read, no onIdle.
  assertEquals(await clockReads(() => waitThenPush(1)), 0);
  assertEquals(idle, 0);
  timed = true;
  await waitThenPush(2);
  assertEquals(idle, 1);
  // Events that were already queued involve no wait and no clock.
  queue.push(3);
  assertEquals(await clockReads(async () => assertEquals((await queue.next()).value, 3)), 0);
  assertEquals(idle, 1);
  // Without onIdle nothing is timed.
  const plain = new EventQueue<number>();
  assertEquals(
    await clockReads(async () => {
      const next = plain.next();
      plain.push(4);
      await next;
    }),
    0,
  );
});
