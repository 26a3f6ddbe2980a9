/**
 * Test fixture for scripts/http2_server.ts: start it as its header says, talk to it with real
 * peers (curl, nghttp, h2load, a python3-h2 client), and read what they got.
 * @module
 */
import { assertEquals } from "@std/assert";
import { hasPeer, runPeer, type ScriptProcess, spawnScript } from "./_process.ts";
import type { TestCertificates } from "./_tls.ts";

export const SCRIPT = "http2_server.ts";
/** The header's permissions: the host (tests bind port 0; the engine's private port too). */
export const NET = ["--allow-net=127.0.0.1"];
const decoder = new TextDecoder();

/** What curl got. */
export interface CurlResult {
  code: number;
  /** The status line, e.g. `HTTP/2 200`. */
  status: string;
  headers: Headers;
  /** The body, as text. */
  text: string;
  /** curl's `-v` lines. */
  verbose: string;
}

/** Runs curl with `-i -v` and splits what it printed; does not assert on its exit code. */
export async function curlRaw(args: string[], timeoutMs = 30_000): Promise<CurlResult> {
  const { code, stdout, stderr } = await runPeer("curl", ["-sS", "-i", "-v", ...args], {
    timeoutMs,
  });
  const text = decoder.decode(stdout);
  // `-i` prints a 100 Continue before the real status over HTTP/1.1: skip to the last head.
  let start = 0;
  while (/^HTTP\/[\d.]+ 1\d\d/.test(text.slice(start))) start = text.indexOf("\r\n\r\n", start) + 4;
  const split = text.indexOf("\r\n\r\n", start);
  const [status = "", ...lines] = text.slice(start, split === -1 ? undefined : split).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const body = split === -1 ? "" : text.slice(split + 4);
  return { code, status: status.trimEnd(), headers, text: body, verbose: stderr };
}

/** What curl got, with the JSON body parsed; asserts that curl succeeded. */
export async function curl(
  args: string[],
): Promise<CurlResult & { body: Record<string, unknown> }> {
  const result = await curlRaw(args);
  assertEquals(result.code, 0, result.verbose);
  return { ...result, body: JSON.parse(result.text) };
}

/** Starts the server on port 0 with `args`; returns it with the port it bound. */
export async function startServer(
  args: string[],
  permissions: string[] = NET,
): Promise<{ server: ScriptProcess; port: number }> {
  const server = spawnScript(SCRIPT, ["--port", "0", ...args], { permissions });
  try {
    return { server, port: await server.listeningPort() };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

/** The TLS flags and permissions for `certs`. */
export function tlsArgs(certs: TestCertificates): { args: string[]; permissions: string[] } {
  return {
    args: ["--tls", "--cert", certs.certFile, "--key", certs.keyFile],
    permissions: [...NET, `--allow-read=${certs.certFile},${certs.keyFile}`],
  };
}

let python: string | null | undefined;

/**
 * A python3 that can `import h2` (Debian's python3-h2 lives in /usr/bin/python3, which another
 * python3 on the PATH may hide); null, with a message once, when there is none.
 */
export function pythonWithH2(): string | null {
  if (python !== undefined) return python;
  python = null;
  for (const candidate of ["python3", "/usr/bin/python3"]) {
    if (!hasPeer(candidate)) continue;
    const { success } = new Deno.Command(candidate, {
      args: ["-c", "import h2"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    if (success) return python = candidate;
  }
  console.warn("skipping tests that need python3-h2: it is not installed (apt-get install it)");
  return python;
}

/** Runs a python3-h2 client program with `args`; returns what it printed on stdout. */
export async function runH2Client(source: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await runPeer(pythonWithH2()!, ["-c", source, ...args], {
    timeoutMs: 20_000,
  });
  assertEquals(code, 0, stderr);
  return decoder.decode(stdout).trim();
}

/** A python3-h2 client: one GET (`PATH`, extra headers as `name:value` arguments), then the
 * events it saw until the stream ends, one word each; `--goaway` sends a GOAWAY in the same
 * write as the request, as RFC 9113 (6.8) allows. */
export const H2_GET_CLIENT = `
import socket, sys, json, h2.connection, h2.config, h2.events
from hyperframe.frame import GoAwayFrame
port, path, rest = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
goaway = "--goaway" in rest
extra = [tuple(arg.split(":", 1)) for arg in rest if arg != "--goaway"]
s = socket.create_connection(("127.0.0.1", port))
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                   (":authority", f"127.0.0.1:{port}")] + extra, end_stream=True)
data = c.data_to_send()
if goaway:
    data += GoAwayFrame(stream_id=0, last_stream_id=0, error_code=0).serialize()
s.sendall(data)
s.settimeout(10)
events, body, status = [], b"", None
while "StreamEnded" not in events:
    d = s.recv(65536)
    if not d:
        events.append("eof")
        break
    for e in c.receive_data(d):
        events.append(type(e).__name__)
        if isinstance(e, h2.events.ResponseReceived):
            status = dict(e.headers)[b":status"].decode()
        if isinstance(e, h2.events.DataReceived):
            body += e.data
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        if isinstance(e, h2.events.ConnectionTerminated):
            events[-1] += f"(last_stream_id={e.last_stream_id})"
    s.sendall(c.data_to_send())
s.close()
print(json.dumps({"status": status, "events": events, "body": body.decode()}))
`;
