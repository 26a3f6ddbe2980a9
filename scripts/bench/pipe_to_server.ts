/**
 * Benchmark fixture, not a user script: the style people copy from examples, one
 * `conn.readable.pipeTo(conn.writable)` per connection, here awaited and caught so that one
 * reset client cannot kill the server.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench/pipe_to_server.ts --port 0
 *
 * Try it: `deno run --allow-net=127.0.0.1:10000 scripts/echo_bench.ts` after `--port 10000`.
 * @module
 */
import { formatAddr } from "../../lib/address.ts";
import { printError, runMain, stopSignal } from "../../lib/cli.ts";
import { type FixtureOptions, parseFixtureFlags } from "./read_write_server.ts";
import { isPeerGone } from "../../lib/errors.ts";

/** Serves echo with one `pipeTo` per connection until `signal` aborts. */
export async function servePipeTo(options: FixtureOptions = {}): Promise<void> {
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const conns = new Set<Deno.Conn>();
  const stop = () => {
    listener.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* its pipe already closed it */ }
    }
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  options.onListen?.(listener.addr);
  const pipes = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      conns.add(conn);
      const pipe = conn.readable.pipeTo(conn.writable)
        .catch((error) => {
          if (!isPeerGone(error)) throw error;
        })
        .finally(() => {
          conns.delete(conn);
          pipes.delete(pipe);
        });
      pipes.add(pipe);
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
  } finally {
    options.signal?.removeEventListener("abort", stop);
  }
  await Promise.allSettled(pipes);
}

if (import.meta.main) {
  runMain("pipe_to_server", async () => {
    using stop = stopSignal();
    await servePipeTo({
      ...parseFixtureFlags(Deno.args),
      signal: stop.signal,
      onListen: (addr) => printError(`Listening on ${formatAddr(addr)}`),
    });
  });
}
