/**
 * Deno serves ready sockets unfairly under load: with 500 busy connections, the ~128 served
 * last are served again and again while the others wait for up to seconds with their data
 * already in the kernel, until something lets the runtime go idle.
 *
 * An echo server (main thread, one read/write loop per connection, 20 µs of CPU per message so
 * that it is the bottleneck) and a ping-pong load generator (a Worker: its own thread, tokio
 * runtime and op driver; 500 connections, 64 bytes, wait for the echo, repeat):
 *
 *   deno run --allow-net=127.0.0.1 --allow-read scripts/bench/starvation_repro.ts
 *   deno run --allow-net=127.0.0.1 --allow-read scripts/bench/starvation_repro.ts --yield
 *
 * `--yield`: the server's loops pause together for one `setTimeout(0)` once they ran 2 ms
 * without one (the load generator always does, or it would starve its own connections).
 * Observed (Deno 2.9.6, Linux x86_64, 2 shared cores; 5 s after 1 s of warmup; 3 runs each):
 *
 *   no fix:  27–31k round trips/s, p50 4–5 ms, p99.9 0.9–2.2 s, max 1.0–3.9 s; round trips per
 *            connection min 2–18, median 236–299, max 884–985; Jain index 0.61–0.72
 *   --yield: 28–30k round trips/s, p50 11 ms, p99.9 108–150 ms, max 176–375 ms; min 242–255,
 *            median 282–295, max 325–355; Jain index 1.00
 *
 * Why: a read that cannot complete at once becomes a future in the op driver, one
 * FuturesUnordered polled by one tokio task (libs/core/runtime/op_driver). Tokio lets a task
 * complete 128 I/O operations per poll (task/coop); the futures polled after that return
 * Pending and their wakers are deferred past the next I/O driver turn, then woken last-in
 * first-out, so the sockets epoll reports fresh (the ones just served, whose clients answered
 * at once) always go first and use up the next 128. Only while JavaScript starts no reads (a
 * timer; `setImmediate`, `MessageChannel` and microtasks return too soon) do the others get in.
 * @module
 */
const CONNECTIONS = 500, SIZE = 64, WARMUP_MS = 1000, MEASURE_MS = 5000, BUDGET_MS = 2;
/** CPU time the server spends per message, so that it and not the load generator is the
 * bottleneck even when both run in one process. */
const WORK_US = 20;

/** All loops that share a pacer pause together for one timer turn every `BUDGET_MS`. */
class Pacer {
  #since = performance.now();
  #pause: Promise<void> | null = null;
  constructor(readonly enabled: boolean) {}
  pause(): Promise<void> | null {
    if (this.#pause !== null) return this.#pause;
    if (!this.enabled || performance.now() - this.#since < BUDGET_MS) return null;
    return this.#pause = new Promise((resolve) =>
      setTimeout(() => {
        this.#pause = null;
        this.#since = performance.now();
        resolve();
      }, 0)
    );
  }
}

async function readFull(conn: Deno.Conn, buffer: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buffer.length;) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

if (import.meta.main && !("WorkerGlobalScope" in globalThis)) {
  const pacer = new Pacer(Deno.args.includes("--yield"));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(65536);
        try {
          for (let n; (n = await conn.read(buffer)) !== null;) {
            for (const end = performance.now() + WORK_US / 1000; performance.now() < end;);
            for (let w = 0; w < n;) w += await conn.write(buffer.subarray(w, n));
            const pause = pacer.pause();
            if (pause !== null) await pause;
          }
        } catch { /* the load generator closed it */ }
        conn.close();
      })();
    }
  })();
  const worker = new Worker(import.meta.url, { type: "module" });
  worker.postMessage(listener.addr.port);
  worker.onmessage = (event) => {
    console.log(`${pacer.enabled ? "--yield" : "no fix"}: ${event.data}`);
    worker.terminate();
    listener.close();
  };
} else if (import.meta.main) {
  const scope = globalThis as unknown as {
    onmessage: (event: MessageEvent<number>) => void;
    postMessage: (message: string) => void;
  };
  scope.onmessage = async (event) => {
    const pacer = new Pacer(true);
    const connect = () => Deno.connect({ hostname: "127.0.0.1", port: event.data });
    const conns = await Promise.all(Array.from({ length: CONNECTIONS }, connect));
    const latencies: number[] = [], perConnection: number[] = [];
    const t0 = performance.now(), from = t0 + WARMUP_MS, to = from + MEASURE_MS;
    await Promise.all(conns.map(async (conn, i) => {
      conn.setNoDelay(true);
      const message = new Uint8Array(SIZE).fill(i), echo = new Uint8Array(SIZE);
      perConnection[i] = 0;
      let start = performance.now();
      while (start < to) {
        for (let w = 0; w < SIZE;) w += await conn.write(message.subarray(w));
        if (!await readFull(conn, echo)) throw new Error("server closed a connection");
        const end = performance.now();
        if (start >= from) latencies.push(end - start), perConnection[i]++;
        const pause = pacer.pause();
        start = pause === null ? end : (await pause, performance.now());
      }
      conn.close();
    }));
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.floor(q * (latencies.length - 1))].toFixed(1);
    const sum = perConnection.reduce((a, b) => a + b, 0);
    const jain = sum * sum / (CONNECTIONS * perConnection.reduce((a, b) => a + b * b, 0));
    const n = perConnection.sort((a, b) => a - b);
    scope.postMessage([
      `${CONNECTIONS} connections, ${
        Math.round(latencies.length * 1000 / MEASURE_MS)
      } round trips/s`,
      `latency ms p50 ${at(0.5)} p99 ${at(0.99)} p99.9 ${at(0.999)} max ${at(1)}`,
      `round trips per connection min ${n[0]} median ${n[CONNECTIONS >> 1]} max ${n.at(-1)}`,
      `Jain index ${jain.toFixed(2)}`,
    ].join("; "));
  };
}
