/**
 * HTTP/2 server — the hyper-h2 guide's "write your own HTTP/2 server": answer every request
 * with 200 and a JSON body holding the request's method, path, HTTP version, headers and the
 * size of its body.
 *
 * Cleartext by default, HTTP/2 with prior knowledge ("h2c") and HTTP/1.x on one port; with
 * `--tls --cert --key`, TLS where ALPN offers `h2` and `http/1.1`. The version reported is the
 * one the connection really speaks: the server reads each connection's first bytes (the HTTP/2
 * preface, or an HTTP/1.x request line) before Deno's HTTP engine gets them (lib/http/).
 *
 * Why not `Deno.serve` alone: it accepts by itself, so it exits when descriptors run out and has
 * no connection limit, no header, idle or handshake deadline, and no view of a connection's
 * first bytes. Here lib/net accepts (one accept loop for every server; `--proxy-protocol` comes
 * with it), and each connection is served by the same engine through a private loopback port,
 * hence `--allow-net=127.0.0.1` (the host) in every run line. The price, measured with h2load as
 * server CPU time per request: about 1.1 × `Deno.serve`'s over h2c and 1.4 × over HTTP/1.1 (one
 * more copy of every byte, in JavaScript); lib/http/engine.ts has the alternatives' figures.
 *
 * `--workers N` runs N threads on one port (reusePort, Linux), each with its own accept loop and
 * its own private loopback port; the kernel spreads connections over them.
 *
 * Run:    deno run --allow-net=127.0.0.1 scripts/http2_server.ts
 * Workers: deno run --allow-net=127.0.0.1 --allow-read=scripts/http2_server.ts,lib \
 *           scripts/http2_server.ts --workers auto
 * TLS:    deno run --allow-net=127.0.0.1 --allow-read=server.pem,server.key
 *           scripts/http2_server.ts --tls --cert server.pem --key server.key
 * Unix:   deno run --allow-net=127.0.0.1,unix:/tmp/h2.sock --allow-read=/tmp/h2.sock
 *           --allow-write=/tmp/h2.sock scripts/http2_server.ts --unix /tmp/h2.sock
 * Try it: curl --http2-prior-knowledge http://127.0.0.1:8080/
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printError, runMain, stopSignal } from "../lib/cli.ts";
import { limitsFromFlags } from "../lib/mux/server_flags.ts";
import { describeError } from "../lib/errors.ts";
import { escapeText } from "../lib/escape.ts";
import {
  parseDuration,
  parseEndpoint,
  parseFlags,
  parseSize,
  rejectTogether,
} from "../lib/flags.ts";
import { formatJsonEvent } from "../lib/json_event.ts";
import { type BodySize, measureBody } from "../lib/http/body.ts";
import {
  type HttpConnectionInfo,
  type HttpServer,
  type HttpServerEvent,
  type HttpServerOptions,
  type HttpVersion,
  serveHttp,
} from "../lib/http/server.ts";
import { describeAcceptError } from "../lib/net/accept.ts";
import { describeProxyRejection, proxyTimeoutFromFlags } from "../lib/net/proxy_listener.ts";
import { serverTlsFromFlags } from "../lib/tls.ts";
import {
  isWorkerThread,
  serveAsWorker,
  type ServeIo,
  serveOnWorkers,
  workersFromFlags,
} from "../lib/workers/mod.ts";

/** The `server` header of every response. */
export const SERVER_NAME = "deno-sockets-http2";

/** The largest request body read by default; larger ones are answered with 413. */
export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

/** What the server answers: the guide's headers, plus the version and the body size. */
export interface RequestReport {
  /** The request method. */
  method: string;
  /** The path and query, as the client sent them. */
  path: string;
  /** The HTTP version the connection speaks. */
  protocol: HttpVersion;
  /** The request headers, lower case; over HTTP/2 led by the pseudo-headers. */
  headers: Record<string, string>;
  /** The size of the request body. */
  body_bytes: number;
}

/** One line of the access log. */
export interface AccessLogEntry {
  /** The client's address. */
  peer: Deno.Addr;
  /** The request method. */
  method: string;
  /** The path and query. */
  path: string;
  /** The HTTP version. */
  protocol: HttpVersion;
  /** The response status. */
  status: number;
  /** The response body size in bytes (0 for HEAD). */
  bytes: number;
  /** The request body size in bytes (as far as it was read). */
  body_bytes: number;
}

/**
 * Describes a request as the guide's server does. Deno keeps the HTTP/2 pseudo-headers to
 * itself, so over HTTP/2 `:method`, `:scheme`, `:authority` (when the client named a host) and
 * `:path` are rebuilt from the request and the connection.
 *
 * @example
 * ```ts
 * import { reportRequest } from "./http2_server.ts";
 * const info = { protocol: "HTTP/2", secure: false, authority: "127.0.0.1:8080" } as const;
 * const report = reportRequest(new Request("http://127.0.0.1:8080/a?b=1"), info, 0);
 * if (report.headers[":path"] !== "/a?b=1") throw new Error(JSON.stringify(report));
 * ```
 */
export function reportRequest(
  request: Request,
  info: Pick<HttpConnectionInfo, "protocol" | "secure" | "authority">,
  bodyBytes: number,
): RequestReport {
  const path = pathOf(request);
  const headers: Record<string, string> = {};
  if (info.protocol === "HTTP/2") {
    headers[":method"] = request.method;
    headers[":scheme"] = info.secure ? "https" : "http";
    if (info.authority !== undefined) headers[":authority"] = info.authority;
    headers[":path"] = path;
  }
  for (const [name, value] of request.headers) {
    // Only `set-cookie` comes back from Headers more than once; join it as the others are.
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { method: request.method, path, protocol: info.protocol, headers, body_bytes: bodyBytes };
}

/** The path and query of `request`, cut from the URL Deno serialized (`http://host/path?q`). */
function pathOf(request: Request): string {
  const url = request.url;
  return url.slice(url.indexOf("/", url.indexOf("//") + 2));
}

/** Options for {@linkcode serveHttp2}. */
export interface Http2ServerOptions extends HttpServerOptions {
  /** The largest request body read; larger ones get 413. @default {DEFAULT_MAX_BODY} */
  maxBody?: number;
  /** Called for every request answered. */
  onRequest?: (entry: AccessLogEntry) => void;
}

/**
 * Starts the server; `signal` (or `server.close()`) stops it gracefully: no new connections,
 * requests in flight finish within `graceTimeout`.
 *
 * @example Asking over HTTP/1.1
 * ```ts
 * import { serveHttp2 } from "./http2_server.ts";
 * const server = await serveHttp2({ port: 0 });
 * const response = await fetch(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/hello`);
 * const body = await response.json();
 * server.close();
 * await server.finished;
 * if (body.path !== "/hello" || body.protocol !== "HTTP/1.1") throw new Error(JSON.stringify(body));
 * ```
 */
export function serveHttp2(options: Http2ServerOptions = {}): Promise<HttpServer> {
  const { maxBody = DEFAULT_MAX_BODY, onRequest } = options;
  const encoder = new TextEncoder();
  const answer = (request: Request, info: HttpConnectionInfo, size: BodySize): Response => {
    const status = size.tooLarge ? 413 : 200;
    const json = size.tooLarge
      ? { error: `The request body is larger than ${maxBody} bytes`, max_body: maxBody }
      : reportRequest(request, info, size.bytes);
    const body = encoder.encode(JSON.stringify(json, null, 2) + "\n");
    // HEAD gets the headers GET would have, content-length included, and no body: Deno's
    // engine sends whatever body it is given, a protocol error over HTTP/2 (denoland/deno#19605).
    const head = request.method === "HEAD";
    onRequest?.({
      peer: info.peer,
      method: request.method,
      path: pathOf(request),
      protocol: info.protocol,
      status,
      bytes: head ? 0 : body.length,
      body_bytes: size.bytes,
    });
    const headers: [string, string][] = [
      ["content-type", "application/json"],
      ["content-length", String(body.length)],
      ["server", SERVER_NAME],
    ];
    // HTTP/1.x cannot skip the rest of a body it refused: close after the answer. HTTP/2 ends
    // the stream with RST_STREAM(NO_ERROR), as RFC 9113 (8.1) asks.
    if (size.tooLarge && info.protocol !== "HTTP/2") headers.push(["connection", "close"]);
    return new Response(head ? null : body, { status, headers });
  };
  return serveHttp((request, info) => {
    // Most requests have no body: answer them without a promise.
    if (request.body === null) return answer(request, info, NO_BODY);
    return measureBody(request, maxBody).then((size) => answer(request, info, size));
  }, { port: 8080, ...options });
}

const NO_BODY: BodySize = { bytes: 0, tooLarge: false };

/** Formats an access log line, Common Log Format style: `addr "GET / HTTP/2" 200 123`. */
export function formatAccessLine(entry: AccessLogEntry): string {
  const request = escapeText(`${entry.method} ${entry.path} ${entry.protocol}`);
  return `${formatAddr(entry.peer)} "${request}" ${entry.status} ${entry.bytes}`;
}

/** One line for a server event, as text or (`json`) in the shared JSON schema; with
 * `--workers`, `worker` names the worker that served it (JSON only). */
export function formatServerEvent(event: HttpServerEvent, json: boolean, worker?: number): string {
  const what = event.type === "refused"
    ? "too many connections"
    : event.type === "error"
    ? describeError(event.error)
    : event.phase === "handshake"
    ? `no TLS handshake within ${event.ms} ms`
    : event.phase === "headers"
    ? `no complete request headers within ${event.ms} ms`
    : `idle for ${event.ms} ms`;
  if (!json) {
    return `${event.type === "refused" ? "refusing" : "closing"} ${
      formatAddr(event.peer)
    }: ${what}`;
  }
  const extra = event.type === "timeout" ? { phase: event.phase, ms: event.ms } : {};
  const served = worker === undefined ? {} : { worker };
  return formatJsonEvent(event.type, { peer: event.peer, ...extra, reason: what, ...served });
}

const USAGE = `Usage: http2_server.ts [options]

The hyper-h2 guide's server: answers every request with its method, path, HTTP version,
headers and body size as JSON. Cleartext HTTP/2 with prior knowledge (h2c) and HTTP/1.x on
one port; with --tls, TLS where ALPN offers h2 and http/1.1.

Options:
  --host HOST                   address to bind (IPv4, IPv6 or name)   [default: 127.0.0.1]
  -p, --port PORT               port to bind, 0 for any free port      [default: 8080]
  --unix PATH                   bind a Unix stream socket instead of TCP (no TLS)
  --tls                         serve TLS, with --cert FILE and --key FILE (PEM; needs --allow-read)
  --alpn P1,P2                  ALPN protocols to offer with --tls     [default: h2,http/1.1]
  --max-body SIZE               largest request body read; larger: 413 [default: 64M]
  --max-connections N           close connections beyond N at once     [default: 10000]
  --idle-timeout DURATION       close a connection with no request for this long [default: 60s]
  --header-timeout DURATION     close a connection whose request headers take longer [default: 10s]
  --handshake-timeout DURATION  close a TLS client that has not finished its handshake [default: 10s]
  --backlog N                   pending connections queued by the kernel [default: 4096]
  --proxy-protocol              read a PROXY protocol header (v1 or v2) first on every
                                connection: logs name the client it names (not with --tls)
  --proxy-timeout DURATION      close a connection whose PROXY header is not complete by then
                                                                       [default: 5s]
  --grace DURATION              after a stop, time left for requests in flight [default: 5s]
  --workers N                   N worker threads on one port (reusePort, Linux), or auto for one
                                per CPU; needs --allow-read of the program's files [default: 1]
  -q, --quiet                   print no access log
  --json                        print the access log as one JSON object per line
  -h, --help                    show this help
  --version                     print the version

SIGINT/SIGTERM stop accepting, let requests in flight finish within --grace (HTTP/2 clients get
GOAWAY), and exit 0. Errors about one connection end that connection; running out of
descriptors pauses accepting until some are free. Every run line needs --allow-net=127.0.0.1:
requests reach Deno's HTTP engine through a private loopback port.

With --workers, each worker has its own accept loop, private loopback port and limits
(--max-connections counts per worker), --json lines say which worker served them, a worker that
dies is reported and restarted, and --unix is refused (a Unix socket cannot be shared by
reusePort).

Run:    deno run --allow-net=127.0.0.1 scripts/http2_server.ts
Workers: deno run --allow-net=127.0.0.1 --allow-read=scripts/http2_server.ts,lib \\
          scripts/http2_server.ts --workers auto
TLS:    deno run --allow-net=127.0.0.1 --allow-read=server.pem,server.key \\
          scripts/http2_server.ts --tls --cert server.pem --key server.key
Try it: curl --http2-prior-knowledge http://127.0.0.1:8080/
        curl --http2 --cacert ca.pem https://localhost:8080/`;

/** What one server (or each worker of one) serves: plain data, so a worker can get it. */
export interface Http2Plan {
  /** Where to listen, limits, deadlines and TLS: everything but the hooks. */
  options: Omit<
    Http2ServerOptions,
    "signal" | "onEvent" | "onAcceptError" | "onRequest" | "proxyProtocol"
  >;
  /** Read a PROXY header first, with this deadline (ms). */
  proxyTimeout?: number;
  /** What to print per request and event. */
  output: "text" | "json" | "quiet";
}

/** A server's counters at the end, added up over the workers. */
export interface Http2Totals {
  /** Connections served. */
  connections: number;
  /** Requests answered. */
  requests: number;
  /** Connections still open when the grace period ran out, then closed. */
  forced: number;
}

/**
 * Serves `plan` until `io.signal` stops it; resolves with the final counters.
 *
 * @example
 * ```ts
 * import { serveHttp2Plan } from "./http2_server.ts";
 * const stop = new AbortController();
 * const lines: string[] = [];
 * let port = 0;
 * const served = serveHttp2Plan({ options: { port: 0 }, output: "json" }, {
 *   printLine: (line) => lines.push(line),
 *   printError: (line) => lines.push(line),
 *   signal: stop.signal,
 *   id: 3,
 *   listening: (addr) => port = (addr as Deno.NetAddr).port,
 * });
 * while (port === 0) await new Promise((resolve) => setTimeout(resolve, 10));
 * await (await fetch(`http://127.0.0.1:${port}/`)).body?.cancel();
 * stop.abort();
 * const totals = await served;
 * if (totals.requests !== 1 || JSON.parse(lines[0]).worker !== 3) throw new Error(lines.join());
 * ```
 */
export async function serveHttp2Plan(
  plan: Http2Plan,
  io: ServeIo<Http2Totals>,
): Promise<Http2Totals> {
  const { printLine, printError, id } = io;
  const { output } = plan;
  const served = id === undefined ? {} : { worker: id };
  const server = await serveHttp2({
    ...plan.options,
    proxyProtocol: plan.proxyTimeout === undefined ? undefined : {
      timeout: plan.proxyTimeout,
      onRejected: (rejection) => printError(`http2_server: ${describeProxyRejection(rejection)}`),
    },
    signal: io.signal,
    onRequest: output === "quiet"
      ? undefined
      : output === "json"
      ? ({ peer, ...rest }) => printLine(formatJsonEvent("request", { peer, ...rest, ...served }))
      : (entry) => printLine(formatAccessLine(entry)),
    onEvent(event) {
      if (event.type === "error") printError(`http2_server: ${formatServerEvent(event, false)}`);
      else if (output !== "quiet") printLine(formatServerEvent(event, output === "json", id));
    },
    onAcceptError: (report) => printError(`http2_server: ${describeAcceptError(report)}`),
  });
  const totals = (): Http2Totals => ({
    connections: server.stats.total,
    requests: server.stats.requests,
    forced: server.stats.forced,
  });
  io.listening(server.addr, totals);
  await server.finished;
  return totals();
}

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: [
      "host",
      "port",
      "unix",
      "cert",
      "key",
      "max-body",
      "max-connections",
      "idle-timeout",
      "header-timeout",
      "handshake-timeout",
      "backlog",
      "grace",
      "proxy-timeout",
      "workers",
    ],
    boolean: ["quiet", "json", "tls", "proxy-protocol"],
    collect: ["alpn"],
    alias: { p: "port", q: "quiet" },
    usage: USAGE,
  });
  rejectTogether(flags, ["quiet", "json"]);
  const workers = workersFromFlags(flags);
  // HTTP has no --high-water-mark: the engine paces each connection itself.
  const { highWaterMark: _, ...limits } = limitsFromFlags(flags, { idleTimeout: "60s" });
  const options: Http2Plan["options"] = {
    ...parseEndpoint(flags, 8080),
    ...limits,
    maxBody: parseSize(flags["max-body"] ?? "64M", "--max-body", { min: 0 }),
    headerTimeout: parseDuration(flags["header-timeout"] ?? "10s", "--header-timeout"),
    reusePort: workers > 1,
  };
  const proxyTimeout = proxyTimeoutFromFlags(flags);
  // Files last, so that a usage error is reported before a file that cannot be read.
  const tls = await serverTlsFromFlags(flags);
  if (tls) options.tls = { ...tls, alpnProtocols: tls.alpnProtocols ?? ["h2", "http/1.1"] };
  const plan: Http2Plan = {
    options,
    proxyTimeout,
    output: flags.quiet ? "quiet" : flags.json ? "json" : "text",
  };

  using stop = stopSignal();
  const listening = (addr: Deno.Addr) => printError(`Listening on ${formatAddr(addr)}`);
  const totals = await serveOnWorkers({
    name: "http2_server",
    module: import.meta.url,
    count: workers,
    config: plan,
    withPort: (plan, port) => ({ ...plan, options: { ...plan.options, port } }),
    serve: serveHttp2Plan,
    signal: stop.signal,
    listening,
  });
  const { connections = 0, requests = 0, forced = 0 } = totals;
  if (forced > 0) {
    const what = forced === 1 ? "1 connection" : `${forced} connections`;
    printError(`Closed ${what} still open ${options.graceTimeout} ms after the stop signal`);
  }
  if (!flags.quiet && !flags.json) {
    const served = requests === 1 ? "1 request" : `${requests} requests`;
    const over = connections === 1 ? "1 connection" : `${connections} connections`;
    printError(`stopped after ${served} on ${over}`);
  }
}

if (import.meta.main) {
  // With --workers, each worker thread runs this file again and serves what main() sends it.
  if (isWorkerThread()) {
    serveAsWorker<Http2Plan, Http2Totals>((worker) => serveHttp2Plan(worker.config, worker));
  } else runMain("http2_server", () => main(Deno.args));
}
