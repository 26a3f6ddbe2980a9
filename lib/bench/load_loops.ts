/**
 * What each connection does under load, one async loop per connection and mode: `pingpong`
 * (send a message, read all of it back, repeat), `bulk` (a writer keeps a window in flight, a
 * reader takes it back) and `hold` (stay idle with a read pending, then one round trip). Every
 * loop asks the run's pacer before its next message and pauses with the others when it says so,
 * so the runtime serves every connection, not the same ~128 again and again (lib/turn_pacer.ts).
 * @module
 */
import { closeQuietly, writeAll } from "../io.ts";
import type { LoadConnection, LoadState } from "./load_state.ts";

/**
 * Writes `c`'s next message whole. It is counted as sent before the write starts: the echo of
 * its first bytes may come back (and a concurrent reader check it against `c.sent`) before the
 * write resolves. Every write is a whole message, so each starts at a message boundary (see
 * `EchoPattern.message`).
 */
function send(state: LoadState, c: LoadConnection): Promise<void> {
  const view = state.messageView(c);
  c.sent += view.length;
  return writeAll(c.conn, view);
}

/**
 * Reads until everything `c` sent has come back, verifying each read. `pending` is a read that
 * was already started into `c.readBuffer` (hold mode).
 */
async function readEcho(
  state: LoadState,
  c: LoadConnection,
  pending?: Promise<number | null>,
): Promise<void> {
  const buffer = c.readBuffer;
  const due = c.sent - c.received;
  let got = 0;
  while (got < due) {
    const length = pending !== undefined
      ? await pending
      : await c.conn.read(got === 0 ? buffer : buffer.subarray(got));
    pending = undefined;
    if (c.failed) return;
    if (length === null) {
      state.fail(c, "eof", `Server closed the connection with ${due - got} bytes not echoed`);
      return;
    }
    if (got + length > due || !state.verify(c, buffer, got, length)) {
      state.mismatch(c, buffer, got, length);
      return;
    }
    got += length;
    c.received += length;
  }
}

/**
 * Sends a message, reads its echo, records the round trip, repeats until the run stops. Errors
 * are counted in `state`, never thrown.
 *
 * @example Round trips on one connection for 50 ms
 * ```ts
 * import { LoadState } from "./load_state.ts";
 * import { pingpongLoop } from "./load_loops.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const state = new LoadState({ size: 64, readLength: 128, turnBudgetMs: 2 });
 * state.add(await Deno.connect({ port: listener.addr.port }), 0);
 * const echo = (async () => {
 *   using server = await listener.accept();
 *   const buffer = new Uint8Array(1024);
 *   for (let n; (n = await server.read(buffer)) !== null;) await server.write(buffer.subarray(0, n));
 * })();
 * state.measureStart = performance.now();
 * setTimeout(() => state.stopping = true, 50);
 * await pingpongLoop(state, state.connections[0]);
 * state.connections[0].conn.close();
 * await echo;
 * if (state.messages === 0 || state.errors.total !== 0) throw new Error("no clean round trip");
 * ```
 */
export async function pingpongLoop(state: LoadState, c: LoadConnection): Promise<void> {
  try {
    // One clock read per round trip: a round trip ends where the next one starts, unless the
    // loop waited for its turn in between (that wait is the client's, not the server's).
    let start = performance.now();
    while (!state.stopping && !c.failed) {
      c.waitingSince = start;
      await send(state, c);
      await readEcho(state, c);
      if (c.failed) return;
      const end = performance.now();
      // Counted when it ends in the interval, as the C client counts: a round trip that began
      // in the warmup and was held back by the server is part of what the interval saw.
      if (end >= state.measureStart && end <= state.measureEnd) {
        state.histogram.record(end - start);
        state.messages++;
        state.bytes += state.size;
        c.progress++;
      }
      const turn = state.turn();
      if (turn) {
        c.waitingSince = 0;
        await turn;
        start = performance.now();
      } else start = end;
    }
    state.finish(c);
  } catch (error) {
    state.failWith(c, error);
  }
}

/**
 * Keeps a read pending while idle (so a server that closes or resets an idle connection is
 * noticed) until `idleEnd`, then makes one round trip whose echo that read receives.
 *
 * @example A server that closes an idle connection is counted
 * ```ts
 * import { LoadState } from "./load_state.ts";
 * import { holdLoop } from "./load_loops.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const state = new LoadState({ size: 64, readLength: 128, turnBudgetMs: 2 });
 * state.add(await Deno.connect({ port: listener.addr.port }), 0);
 * (await listener.accept()).close();
 * await holdLoop(state, state.connections[0], new Promise(() => {}));
 * if (state.errors.eof + state.errors.reset !== 1) throw new Error(JSON.stringify(state.errors));
 * ```
 */
export async function holdLoop(
  state: LoadState,
  c: LoadConnection,
  idleEnd: Promise<void>,
): Promise<void> {
  try {
    const pending = c.conn.read(c.readBuffer);
    const early = await Promise.race([pending, idleEnd]);
    if (c.failed) return;
    if (early !== undefined) {
      if (early === null) state.fail(c, "eof", "Server closed an idle connection");
      else state.mismatch(c, c.readBuffer, 0, early); // nothing was sent: any byte is extra
      return;
    }
    const start = performance.now();
    c.waitingSince = start;
    await send(state, c);
    await readEcho(state, c, pending);
    if (c.failed) return;
    state.histogram.record(performance.now() - start);
    state.messages++;
    state.bytes += state.size;
    state.finish(c);
  } catch (error) {
    state.failWith(c, error);
  }
}

/**
 * Keeps up to `window` bytes in flight in writes of `size` bytes and reads everything back;
 * when the run stops, the writer stops and the reader takes back what is still in flight.
 *
 * @example 64 KiB in flight on one connection for 50 ms
 * ```ts
 * import { LoadState } from "./load_state.ts";
 * import { bulkLoop } from "./load_loops.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const state = new LoadState({ size: 16384, readLength: 65536, turnBudgetMs: 2 });
 * state.add(await Deno.connect({ port: listener.addr.port }), 0);
 * const echo = (async () => {
 *   using server = await listener.accept();
 *   const buffer = new Uint8Array(65536);
 *   for (let n; (n = await server.read(buffer)) !== null;) {
 *     for (let at = 0; at < n;) at += await server.write(buffer.subarray(at, n));
 *   }
 * })();
 * state.measureStart = performance.now();
 * setTimeout(() => state.stopping = true, 50);
 * await bulkLoop(state, state.connections[0], 65536);
 * await echo;
 * if (state.bytes === 0 || state.errors.total !== 0) throw new Error(JSON.stringify(state.errors));
 * ```
 */
export async function bulkLoop(state: LoadState, c: LoadConnection, window: number): Promise<void> {
  const size = state.size;
  // The writer waits here when the window is full; the reader wakes it.
  let wake: (() => void) | null = null;
  const resume = () => {
    const waiting = wake;
    wake = null;
    waiting?.();
  };
  let writerDone = false;
  const writer = async () => {
    try {
      while (!state.stopping && !c.failed) {
        if (c.sent - c.received + size > window) {
          const { promise, resolve } = Promise.withResolvers<void>();
          wake = resolve;
          await promise;
          continue;
        }
        const turn = state.turn();
        if (turn) {
          await turn;
          continue;
        }
        if (c.waitingSince === 0) c.waitingSince = performance.now();
        await send(state, c);
      }
    } catch (error) {
      state.failWith(c, error);
    } finally {
      writerDone = true;
      // All echoed already: the reader's pending read would wait forever, so end it.
      if (c.sent === c.received && !c.failed) {
        state.finish(c);
        closeQuietly(c.conn);
      }
    }
  };
  const reader = async () => {
    const buffer = c.readBuffer;
    try {
      while (!c.failed && !c.done) {
        const turn = state.turn();
        if (turn) {
          await turn;
          continue;
        }
        const length = await c.conn.read(buffer);
        if (c.failed || c.done) return;
        if (length === null) {
          if (writerDone && c.sent === c.received) state.finish(c);
          else state.fail(c, "eof", `Server closed the connection with bytes not echoed`);
          return;
        }
        if (c.received + length > c.sent || !state.verify(c, buffer, 0, length)) {
          state.mismatch(c, buffer, 0, length);
          return;
        }
        c.received += length;
        const now = performance.now();
        c.waitingSince = c.received === c.sent ? 0 : now;
        if (now >= state.measureStart && now <= state.measureEnd) {
          state.bytes += length;
          c.progress += length;
        }
        if (c.sent - c.received + size <= window) resume();
        if (writerDone && c.sent === c.received) {
          state.finish(c);
          closeQuietly(c.conn);
        }
      }
    } catch (error) {
      if (!c.done) state.failWith(c, error);
    } finally {
      // A failed connection must not leave the writer waiting for room.
      resume();
    }
  };
  await Promise.all([writer(), reader()]);
}
