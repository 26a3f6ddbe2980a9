/**
 * HTTP/2 server — the hyper-h2 guide's "write your own HTTP/2 server": answer every request
 * with 200 and a JSON body holding the request's method, path, protocol and headers.
 *
 * Cleartext by default: `Deno.serve` reads the first bytes of each connection and speaks
 * HTTP/2 when they are the HTTP/2 preface (prior knowledge, "h2c"), HTTP/1.1 otherwise. With
 * `--cert` and `--key` it serves TLS and lets ALPN choose `h2` or `http/1.1`.
 *
 * Run:    deno run --allow-net=127.0.0.1:8080 scripts/http2_server.ts
 * TLS:    deno run --allow-net=127.0.0.1:8080 --allow-read=server.pem,server.key
 *           scripts/http2_server.ts --cert server.pem --key server.key
 * Unix:   deno run --allow-net=unix:/tmp/h2.sock --allow-read=/tmp --allow-write=/tmp
 *           scripts/http2_server.ts --unix /tmp/h2.sock
 * Try it: curl --http2-prior-knowledge http://127.0.0.1:8080/
 *
 * @module
 */
import { formatAddr } from "../lib/address.ts";
import { printLine, runMain, stopSignal } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { escapeText } from "../lib/escape.ts";
import { parseDuration, parseFlags, parseHost, parsePort, rejectTogether } from "../lib/flags.ts";
import { explainTlsError, serverTlsFromFlags } from "../lib/tls.ts";
import { claimUnixPath, releaseUnixPath } from "../lib/net/unix_path.ts";

/** The `server` header of every response. */
export const SERVER_NAME = "deno-sockets-http2";

/** The HTTP version a request came over. */
export type HttpProtocol = "HTTP/2" | "HTTP/1.1";

/** What the server answers: the guide's headers, plus what it had to infer. */
export interface RequestReport {
  /** The request method. */
  method: string;
  /** The path and query, as the client sent them. */
  path: string;
  /** The HTTP version, inferred by {@linkcode inferProtocol}. */
  protocol: HttpProtocol;
  /** The request headers, lower case; over HTTP/2 led by the pseudo-headers. */
  headers: Record<string, string>;
}

/** One line of the access log. */
export interface AccessLogEntry extends Omit<RequestReport, "headers"> {
  /** The client's address. */
  remote: Deno.Addr;
  /** The response status. */
  status: number;
  /** The response body size in bytes. */
  bytes: number;
}

/** Options for {@linkcode serveHttp2}. */
export interface Http2ServerOptions {
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {8080} */
  port?: number;
  /** Bind a Unix stream socket at this path instead of TCP (cleartext only). */
  path?: string;
  /** TLS certificate chain and key (PEM); ALPN then offers `h2` and `http/1.1`. */
  tls?: { cert: string; key: string };
  /** Shuts the server down gracefully when aborted. */
  signal?: AbortSignal;
  /** Called once the server is bound, with the address really bound. */
  onListen?: (addr: Deno.Addr) => void;
  /** Called for every request answered. */
  onRequest?: (entry: AccessLogEntry) => void;
}

/**
 * Tells HTTP/2 from HTTP/1.1. `Deno.serve` does not say which one a request came over
 * (denoland/deno#10277), so this reads it from the headers: HTTP/1.1 must carry `Host`
 * (RFC 9112, 3.2), while HTTP/2 clients put the authority in the `:authority` pseudo-header
 * instead (RFC 9113, 8.3.1), which Deno turns into the URL and leaves out of the headers.
 * An HTTP/2 client that sends `Host` as well is reported as HTTP/1.1.
 *
 * @example
 * ```ts
 * import { inferProtocol } from "./http2_server.ts";
 * if (inferProtocol(new Headers({ host: "example.com" })) !== "HTTP/1.1") throw new Error();
 * ```
 */
export function inferProtocol(headers: Headers): HttpProtocol {
  return headers.has("host") ? "HTTP/1.1" : "HTTP/2";
}

/**
 * Describes a request as the guide's server does. Deno keeps the HTTP/2 pseudo-headers to
 * itself, so `:method`, `:scheme`, `:authority` and `:path` are rebuilt from the request.
 *
 * @example
 * ```ts
 * import { reportRequest } from "./http2_server.ts";
 * const report = reportRequest(new Request("http://127.0.0.1:8080/a?b=1"));
 * if (report.headers[":path"] !== "/a?b=1") throw new Error(JSON.stringify(report));
 * ```
 */
export function reportRequest(request: Request): RequestReport {
  const url = new URL(request.url);
  const path = url.pathname + url.search;
  const protocol = inferProtocol(request.headers);
  const headers: Record<string, string> = {};
  if (protocol === "HTTP/2") {
    headers[":method"] = request.method;
    headers[":scheme"] = url.protocol.slice(0, -1);
    headers[":authority"] = url.host;
    headers[":path"] = path;
  }
  for (const [name, value] of request.headers) {
    // Only `set-cookie` comes back from Headers more than once; join it as the others are.
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { method: request.method, path, protocol, headers };
}

/**
 * Starts the server; `signal` (or `server.shutdown()`) stops it gracefully: no new
 * connections, requests in flight finish.
 *
 * @example Asking over HTTP/1.1
 * ```ts
 * import { serveHttp2 } from "./http2_server.ts";
 * await using server = serveHttp2({ port: 0 });
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/hello`);
 * const body = await response.json();
 * if (body.path !== "/hello") throw new Error(JSON.stringify(body));
 * ```
 */
export function serveHttp2(options: Http2ServerOptions = {}): Deno.HttpServer<Deno.NetAddr> {
  const { signal, onRequest } = options;
  const handler = (request: Request, info: Deno.ServeHandlerInfo): Response => {
    const report = reportRequest(request);
    const body = new TextEncoder().encode(JSON.stringify(report, null, 2) + "\n");
    const { method, path, protocol } = report;
    onRequest?.({
      method,
      path,
      protocol,
      remote: info.remoteAddr,
      status: 200,
      bytes: body.length,
    });
    return new Response(body, {
      status: 200,
      headers: { "content-type": "application/json", "server": SERVER_NAME },
    });
  };
  const onListen = (addr: Deno.Addr) => options.onListen?.(addr);
  let server: Deno.HttpServer<Deno.Addr>;
  if (options.path !== undefined) {
    server = Deno.serve({ path: options.path, onListen }, handler);
  } else {
    const address = { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 8080 };
    try {
      server = Deno.serve({ ...address, ...options.tls, onListen }, handler);
    } catch (error) {
      throw explainTlsError(error);
    }
  }
  const shutdown = () => server.shutdown();
  signal?.addEventListener("abort", shutdown, { once: true });
  if (signal?.aborted) shutdown();
  server.finished.finally(() => signal?.removeEventListener("abort", shutdown));
  // A Unix socket server has a UnixAddr; callers that chose `path` know it.
  return server as Deno.HttpServer<Deno.NetAddr>;
}

/** Formats an access log line, Common Log Format style: `addr "GET / HTTP/2" 200 123`. */
export function formatAccessLine(entry: AccessLogEntry): string {
  const request = escapeText(`${entry.method} ${entry.path} ${entry.protocol}`);
  return `${formatAddr(entry.remote)} "${request}" ${entry.status} ${entry.bytes}`;
}

/** Waits for `finished`; once `signal` aborts, at most `graceMs` more. False when time ran out. */
async function finishedWithin(
  finished: Promise<void>,
  signal: AbortSignal,
  graceMs: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<boolean>((resolve) => {
    const start = () => {
      timer = setTimeout(() => resolve(false), graceMs);
    };
    if (signal.aborted) start();
    else signal.addEventListener("abort", start, { once: true });
  });
  try {
    return await Promise.race([finished.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

const USAGE = `Usage: http2_server.ts [options]

The hyper-h2 guide's server: answers every request with its method, path, protocol and
headers as JSON. Cleartext HTTP/2 with prior knowledge (h2c) and HTTP/1.1 by default;
TLS with ALPN (h2, http/1.1) with --cert and --key.

Options:
  --host HOST       address to bind (IPv4, IPv6 or name)        [default: 127.0.0.1]
  --port PORT       port to bind, 0 for any free port           [default: 8080]
  --unix PATH       bind a Unix stream socket instead of TCP (cleartext)
  --cert FILE       TLS certificate chain, PEM (needs --key and --allow-read)
  --key FILE        TLS private key, PEM
  --quiet           print no access log
  --json            print the access log as one JSON object per request
  --grace DURATION  on SIGINT/SIGTERM, how long open connections may take to finish
                    before the server exits anyway                  [default: 5s]
  -h, --help        show this help

Run:    deno run --allow-net=127.0.0.1:8080 scripts/http2_server.ts
TLS:    deno run --allow-net=127.0.0.1:8080 --allow-read=server.pem,server.key \\
          scripts/http2_server.ts --cert server.pem --key server.key
Try it: curl --http2-prior-knowledge http://127.0.0.1:8080/
        curl --http2 --cacert ca.pem https://localhost:8080/`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["host", "port", "unix", "cert", "key", "grace"],
    boolean: ["quiet", "json", "help"],
    alias: { h: "help" },
  });
  if (flags.help) return printLine(USAGE);
  rejectTogether(flags, ["unix", "host"]);
  rejectTogether(flags, ["unix", "port"]);
  rejectTogether(flags, ["unix", "cert"]);
  rejectTogether(flags, ["quiet", "json"]);
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new UsageError(`Flags "--cert" and "--key" go together`);
  }
  const hostname = parseHost(flags.host ?? "127.0.0.1");
  const port = parsePort(flags.port ?? "8080");
  const graceMs = parseDuration(flags.grace ?? "5s", "--grace", { allowZero: true });
  const tls = await serverTlsFromFlags({ ...flags, tls: flags.cert !== undefined });

  using stop = stopSignal();
  if (flags.unix !== undefined) await claimUnixPath(flags.unix);
  try {
    const server = serveHttp2({
      hostname,
      port,
      path: flags.unix,
      tls,
      signal: stop.signal,
      onListen: (addr) => console.error(`Listening on ${formatAddr(addr)}`),
      onRequest(entry) {
        if (flags.quiet) return;
        if (!flags.json) return printLine(formatAccessLine(entry));
        const { remote, ...rest } = entry;
        printLine(JSON.stringify({
          event: "request",
          time: new Date().toISOString(),
          remote: formatAddr(remote),
          ...rest,
        }));
      },
    });
    if (!await finishedWithin(server.finished, stop.signal, graceMs)) {
      // An HTTP/2 client may keep its connection after GOAWAY; exiting closes it.
      console.error(`Closing connections still open ${graceMs} ms after the stop signal`);
    }
  } finally {
    if (flags.unix !== undefined) releaseUnixPath(flags.unix);
  }
}

if (import.meta.main) runMain("http2_server", () => main(Deno.args));
