/**
 * Test fixture: a real HAProxy (Debian's `haproxy`) in TCP mode in front of servers on
 * loopback, sending each one the PROXY protocol (`send-proxy` for v1, `send-proxy-v2` for v2),
 * with health checks that speak it too. Ports are chosen at run time; the config is generated.
 * @module
 */
import { freePort, hasPeer } from "./_process.ts";

/** One backend server and the PROXY version HAProxy sends it. */
export interface HaproxyServer {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** `v1` (`send-proxy`) or `v2` (`send-proxy-v2`). */
  sendProxy: "v1" | "v2";
}

/** A running HAProxy; `await using` stops it. */
export interface Haproxy extends AsyncDisposable {
  /** The frontend's port on 127.0.0.1: connect here. */
  port: number;
  /** The configuration it runs with. */
  config: string;
}

/** Whether HAProxy is installed (the tests that need it skip with a message when not). */
export function hasHaproxy(): boolean {
  return hasPeer("haproxy");
}

/**
 * The configuration: round robin over `servers`, each health-checked by sending `PING` (after
 * the PROXY header, a v2 `LOCAL` one for v2) and expecting it echoed. A second frontend on
 * `readyPort` rejects every connection; it only tells that HAProxy is up.
 */
export function haproxyConfig(port: number, readyPort: number, servers: HaproxyServer[]): string {
  const lines = servers.map(({ port, sendProxy }, i) =>
    `  server echo${i + 1} 127.0.0.1:${port} ${
      sendProxy === "v1" ? "send-proxy" : "send-proxy-v2"
    } check check-send-proxy inter 2s`
  );
  return `global
  maxconn 1000

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout check 2s

frontend echo
  bind 127.0.0.1:${port}
  default_backend echo_servers

frontend ready
  bind 127.0.0.1:${readyPort}
  tcp-request connection reject

backend echo_servers
  balance roundrobin
  option tcp-check
  tcp-check send "PING\\r\\n"
  tcp-check expect string PING
${lines.join("\n")}
`;
}

/** Starts HAProxy in the foreground in front of `servers` and waits until it accepts. */
export async function startHaproxy(servers: HaproxyServer[]): Promise<Haproxy> {
  // HAProxy cannot say which port a port 0 gave it: ports that were free a moment ago.
  const port = freePort();
  const readyPort = freePort();
  const config = haproxyConfig(port, readyPort, servers);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
  const child = new Deno.Command("haproxy", {
    args: ["-db", "-f", `${dir}/haproxy.cfg`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let ended = false;
  const status = child.status.finally(() => ended = true);
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* ended already */ }
    await status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  // Ready once the second frontend answers (with a close: it rejects everything).
  for (let attempt = 0;; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: readyPort })).close();
      break;
    } catch (error) {
      if (ended || attempt >= 500) {
        await stop();
        throw new Error(`HAProxy did not start: ${error}\n${await stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return { port, config, [Symbol.asyncDispose]: stop };
}
