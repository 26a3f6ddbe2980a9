import { assert, assertEquals, assertGreater, assertThrows } from "@std/assert";
import { type BenchEvent, formatBenchEvent, parseBenchEvent } from "../lib/bench/events.ts";
import { runBench } from "../lib/bench/load.ts";
import { toJsonText } from "../lib/json_event.ts";
import { runScript } from "./_process.ts";
import { withEchoServer } from "./_echo_fixtures.ts";

Deno.test("echo_bench.ts --json lines parse into the events bench/run.ts reads", async () => {
  await withEchoServer(async (port) => {
    const { code, stdout, stderr } = await runScript("echo_bench.ts", [
      ...["--json", "--port", String(port), "--connections", "3"],
      ...["--duration", "200ms", "--warmup", "50ms"],
    ], { permissions: ["--allow-net=127.0.0.1"] });
    assertEquals(code, 0, stderr);
    const events: BenchEvent[] = stdout.trimEnd().split("\n").map(parseBenchEvent);
    assertEquals(events.map((e) => e.event), ["warmup", "measuring", "draining", "result"]);
    for (const event of events) assertEquals(new Date(event.time).toISOString(), event.time);
    const last = events.at(-1)!;
    if (last.event !== "result") throw new Error(`the last event is ${last.event}`);
    const result = last.result;
    assertEquals(result.target, `127.0.0.1:${port}`);
    assertEquals(result.mode, "pingpong");
    assertEquals(result.connectionsHeld, 3);
    assertGreater(result.messages, 0);
    assertEquals(result.latencyMs!.count, result.messages);
    assert(result.latencyMs!.p99 <= result.latencyMs!.p999);
    assert(result.latencyMs!.p999 <= result.latencyMs!.max);
    assertEquals(result.fairness!.connections, 3);
    assertEquals(
      result.fairness!.min + result.fairness!.median + result.fairness!.max,
      result.messages,
    );
    // On the wire the address is `peer`, as in every program's --json lines.
    const wire = JSON.parse(stdout.trimEnd().split("\n").at(-1)!);
    assertEquals(Object.keys(wire).slice(0, 3), ["event", "time", "peer"]);
    assertEquals(wire.target, undefined);
  });
});

Deno.test("formatBenchEvent() and parseBenchEvent() round-trip runBench()'s result", async () => {
  await withEchoServer(async (port) => {
    for (const mode of ["pingpong", "bulk", "hold"] as const) {
      const result = await runBench({ mode, port, connections: 2, durationMs: 100 });
      const event = parseBenchEvent(formatBenchEvent({ event: "result", result }));
      if (event.event !== "result") throw new Error(`a result came back as ${event.event}`);
      // The line rounds figures to 3 decimals; everything else comes back as it was.
      assertEquals(event.result, JSON.parse(toJsonText(result)));
    }
  });
});

Deno.test("parseBenchEvent() names what is wrong with a line it cannot read", () => {
  const line = (fields: Record<string, unknown>) =>
    JSON.stringify({ event: "measuring", time: "1970-01-01T00:00:00.000Z", ...fields });
  assertEquals(parseBenchEvent(line({ connections: 2 })), {
    event: "measuring",
    time: "1970-01-01T00:00:00.000Z",
    connections: 2,
  });
  assertThrows(() => parseBenchEvent("pingpong measuring"), SyntaxError, "not JSON");
  assertThrows(() => parseBenchEvent("[1]"), SyntaxError, "not an object");
  assertThrows(
    () => parseBenchEvent(line({ connections: "2" })),
    SyntaxError,
    'field "connections" must be a number',
  );
  assertThrows(
    () => parseBenchEvent(line({ event: "flood", connections: 2 })),
    SyntaxError,
    'unknown event "flood"',
  );
  const result = JSON.parse(formatBenchEvent({
    event: "result",
    result: {
      mode: "hold",
      target: "127.0.0.1:1",
      connections: 1,
      connectionsOpened: 1,
      connectionsHeld: 1,
      connectMs: 1,
      size: 64,
      window: null,
      durationMs: 100,
      warmupMs: 0,
      messages: 1,
      bytes: 64,
      messagesPerSecond: 1000,
      megabytesPerSecond: 0.064,
      latencyMs: null,
      fairness: null,
      clientCpuPercent: null,
      errors: { total: 0, mismatch: 0, reset: 0, refused: 0, eof: 0, timeout: 0, other: 0 },
      firstError: null,
    },
  }));
  delete result.connectionsHeld;
  assertThrows(
    () => parseBenchEvent(JSON.stringify(result)),
    SyntaxError,
    'field "connectionsHeld" must be a number',
  );
  result.connectionsHeld = 1;
  result.errors = { total: 0 };
  assertThrows(
    () => parseBenchEvent(JSON.stringify(result)),
    SyntaxError,
    'bench event field "errors": field "mismatch" must be a number',
  );
  result.errors = null;
  assertThrows(
    () => parseBenchEvent(JSON.stringify(result)),
    SyntaxError,
    'field "errors" must be an object',
  );
});
