/**
 * Test fixture: the module each worker of tests/workers_test.ts runs — an echo server on the
 * shared port that crashes (an uncaught exception, as a bug would throw) when a client sends
 * `crash`, or right after listening when its config says so.
 * @module
 */
import { serveEcho } from "../lib/mux/mod.ts";
import { isWorkerThread, serveAsWorker } from "../lib/workers/mod.ts";

/** What the test sends each worker. */
export interface FixtureConfig {
  /** The port to bind (0 for the first worker). */
  port: number;
  /** Throw an uncaught exception as soon as the worker listens. */
  dieAfterListening?: boolean;
}

/** The counters each worker reports. */
export interface FixtureStats {
  /** Connections served. */
  total: number;
}

if (isWorkerThread()) {
  serveAsWorker<FixtureConfig, FixtureStats>(async (worker) => {
    const crash = () => {
      setTimeout(() => {
        throw new Error(`worker ${worker.id} crashed on request`);
      }, 0);
    };
    const server = await serveEcho({
      port: worker.config.port,
      reusePort: true,
      signal: worker.signal,
      onEvent(event) {
        if (event.type === "received" && new TextDecoder().decode(event.bytes) === "crash") crash();
      },
    });
    worker.listening(server.addr, () => ({ total: server.stats.total }));
    worker.printLine(`worker ${worker.id} listening`);
    if (worker.config.dieAfterListening) crash();
    await server.finished;
    return { total: server.stats.total };
  });
}
