/**
 * raw_ping.ts against iputils `ping`: the same output lines, round trips that agree with ping's
 * on loopback, a request every interval whether or not replies come, and late replies matched
 * to their sequence numbers. The last two run in a network namespace of their own (`unshare
 * -n`) whose kernel ignores echo requests, so nothing outside the test is touched. Needs root;
 * some tests also need ping, unshare, ip, sysctl or python3, and skip saying so without them.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { hasPeer, isRoot, runPeer, runScript, spawnScript } from "./_process.ts";
import { ping } from "../scripts/raw_ping.ts";

const root = isRoot();
if (!root) console.warn("skipping raw_ping tests: they need root (run the tests as root)");
const FFI = ["--allow-ffi"];
const SCRIPT = new URL("../scripts/raw_ping.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;
const canIsolate = root && ["unshare", "ip", "sysctl"].every((peer) => hasPeer(peer));

Deno.test({
  name: "ping() gets a reply from 127.0.0.1 for every request",
  ignore: !root,
  async fn() {
    const events: string[] = [];
    const summary = await ping({
      count: 3,
      interval: 20,
      timeout: 5000,
      size: 100,
      onEvent: (event) => events.push(event.event),
    });
    assertEquals(events.filter((event) => event === "request").length, 3);
    assertEquals(events.filter((event) => event === "reply").length, 3);
    assertEquals(events[0], "start");
    assertEquals([summary.transmitted, summary.received, summary.lossPercent], [3, 3, 0]);
    assertEquals(summary.times.length, 3);
    assert(summary.minMs! <= summary.avgMs! && summary.avgMs! <= summary.maxMs!);
  },
});

Deno.test({
  name: "raw_ping.ts HOST prints the lines iputils ping prints",
  ignore: !root,
  async fn() {
    const result = await runScript("raw_ping.ts", ["-c", "2", "-i", "0.05", "localhost"], {
      permissions: FFI,
    });
    assertEquals(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assertEquals(lines[0], "PING localhost (127.0.0.1) 56(84) bytes of data.");
    assertMatch(lines[1], /^64 bytes from 127\.0\.0\.1: icmp_seq=1 ttl=\d+ time=\d+\.\d{3} ms$/);
    assertMatch(lines[2], /^64 bytes from 127\.0\.0\.1: icmp_seq=2 ttl=\d+ time=\d+\.\d{3} ms$/);
    assertEquals(lines.slice(3, 5), ["", "--- localhost ping statistics ---"]);
    assertMatch(lines[5], /^2 packets transmitted, 2 received, 0% packet loss, time \d+ms$/);
    assertMatch(lines[6], /^rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms$/);
    assertEquals(lines.length, 7);
    assertEquals(result.stderr, "");
  },
});

Deno.test({
  name: "raw_ping.ts prints the summary when stopped with SIGINT",
  ignore: !root,
  async fn() {
    await using script = spawnScript("raw_ping.ts", ["-c", "0", "-i", "50ms"], {
      permissions: FFI,
    });
    // After a reply: ping's exit status is 1 when none came.
    await script.waitForStdout(/^64 bytes from 127\.0\.0\.1: icmp_seq=1 /m);
    const result = await script.stop("SIGINT");
    assertEquals(result.code, 0, result.stderr);
    assertMatch(
      result.stdout,
      /^\d+ packets transmitted, \d+ received, [\d.]+% packet loss, time/m,
    );
  },
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median round trip of 20 echoes on loopback, by iputils ping and by raw_ping.ts. */
async function medians(): Promise<{ ping: number; raw: number }> {
  const reference = await runPeer("ping", ["-n", "-c", "20", "-i", "0.05", "127.0.0.1"], {
    timeoutMs: 20_000,
  });
  assertEquals(reference.code, 0, reference.stderr);
  const ours = await runScript("raw_ping.ts", ["-c", "20", "-i", "50ms", "--json", "127.0.0.1"], {
    permissions: FFI,
  });
  assertEquals(ours.code, 0, ours.stderr);
  const pingTimes = [...new TextDecoder().decode(reference.stdout).matchAll(/time=([\d.]+) ms/g)]
    .map(([, time]) => Number(time));
  const rawTimes = ours.stdout.trim().split("\n").map((line) => JSON.parse(line))
    .filter((event) => event.event === "reply").map((event) => event.time_ms);
  assertEquals([pingTimes.length, rawTimes.length], [20, 20]);
  return { ping: median(pingTimes), raw: median(rawTimes) };
}

Deno.test({
  name: "raw_ping.ts round trips on loopback are within 2x of ping's (medians of 20)",
  ignore: !root || !hasPeer("ping"),
  async fn() {
    // Both measure from a clock reading before sendto to the kernel's receive timestamp, so on
    // loopback they agree (measured here: 0.021-0.042 ms against 0.039-0.056 ms). Figures this
    // small move with whatever else the shared machine runs, so a miss is measured once more,
    // and 10 µs of slack is allowed either way: the old design read 5-10x, far outside it.
    let result = await medians();
    const within = ({ ping, raw }: typeof result) =>
      raw <= 2 * ping + 0.01 && raw >= ping / 2 - 0.01;
    if (!within(result)) result = await medians();
    assert(within(result), `ping median ${result.ping} ms, raw_ping median ${result.raw} ms`);
  },
});

/** Runs `script` (a shell command line) in a new network namespace whose lo is up. */
function isolated(script: string): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  return runPeer("unshare", [
    "-n",
    "sh",
    "-c",
    `ip link set lo up && sysctl -qw net.ipv4.icmp_echo_ignore_all=1 && cd '${ROOT}' && ${script}`,
  ], { timeoutMs: 30_000 });
}

function jsonEvents(stdout: Uint8Array): Record<string, unknown>[] {
  return new TextDecoder().decode(stdout).trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test({
  name: "raw_ping.ts sends every interval while replies do not come, as ping does",
  ignore: !canIsolate,
  async fn() {
    // No replies in this namespace: four requests 100 ms apart, each reply awaited for 1 s.
    const result = await isolated(
      `exec '${Deno.execPath()}' run --allow-ffi '${SCRIPT}' -c 4 -i 100ms -W 1s --json 127.0.0.1`,
    );
    assertEquals(result.code, 1, result.stderr);
    const events = jsonEvents(result.stdout);
    // All four leave before the first is reported missing: sending does not wait for replies.
    assertEquals(
      events.map(({ event, seq }) => seq === undefined ? event : `${event} ${seq}`),
      [
        "start",
        "request 1",
        "request 2",
        "request 3",
        "request 4",
        "timeout 1",
        "timeout 2",
        "timeout 3",
        "timeout 4",
        "summary",
      ],
    );
    const summary = events.at(-1)!;
    assertEquals([summary.transmitted, summary.received, summary.loss_percent], [4, 0, 100]);
  },
});

// Answers echo requests in place of the kernel (which ignores them here), the first one late,
// and runs the command given as its arguments once it is listening.
const LATE_RESPONDER = `
import socket, struct, subprocess, sys, threading
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data[: len(data) // 2 * 2]))
    if len(data) % 2: total += data[-1] << 8
    while total >> 16: total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def serve():
    while True:
        packet, address = raw.recvfrom(65535)
        icmp = bytearray(packet[(packet[0] & 15) * 4:])
        if icmp[0] != 8: continue
        icmp[0] = 0; icmp[2:4] = b"\\0\\0"; icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
        seq = struct.unpack("!H", icmp[6:8])[0]
        threading.Timer(0.4 if seq == 1 else 0, raw.sendto, (bytes(icmp), address)).start()
threading.Thread(target=serve, daemon=True).start()
sys.exit(subprocess.run(sys.argv[1:]).returncode)
`;

Deno.test({
  name: "raw_ping.ts matches a reply that comes after its timeout to its sequence number",
  ignore: !canIsolate || !hasPeer("python3"),
  async fn() {
    // Request 1 at 0 ms is reported missing at 150 ms, answered at 400 ms; request 2 at 600 ms.
    const result = await isolated(
      `exec python3 -c '${LATE_RESPONDER.replaceAll("'", `'"'"'`)}' '${Deno.execPath()}' run ` +
        `--allow-ffi '${SCRIPT}' -c 2 -i 600ms -W 150ms --json 127.0.0.1`,
    );
    assertEquals(result.code, 0, result.stderr);
    const events = jsonEvents(result.stdout);
    assertEquals(
      events.map(({ event, seq, late }) =>
        [event, seq, late].filter((x) => x !== undefined).join(" ")
      ),
      ["start", "request 1", "timeout 1", "reply 1 true", "request 2", "reply 2 false", "summary"],
    );
    const late = events.find((event) => event.event === "reply" && event.seq === 1)!;
    assert((late.time_ms as number) >= 400, `late reply measured ${late.time_ms} ms`);
    const summary = events.at(-1)!;
    assertEquals([summary.transmitted, summary.received, summary.loss_percent], [2, 2, 0]);
  },
});
