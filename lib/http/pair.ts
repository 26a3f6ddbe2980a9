/**
 * Connected pairs of sockets inside one process. Deno has no `socketpair(2)`, so a private
 * listener on the loopback interface makes them: each pair is one connection to it, and the
 * accepted end is matched to the connecting end by a random 16-byte token that the connecting
 * end sends first. Another local process that connects to the private port does not know a
 * token, and is closed.
 *
 * HTTP servers use a pair to put the bytes they have already read from a client (the first
 * bytes, which tell the HTTP version) in front of the HTTP engine, which only takes a socket.
 * @module
 */
import { writeAll } from "../io.ts";
import { type AcceptErrorReport, acceptLoop } from "../net/accept.ts";
import { listen, type ServerListener } from "../net/listen.ts";

export type { AcceptErrorKind, AcceptErrorReport } from "../net/accept.ts";

/** The length of the token each pair starts with. */
export const TOKEN_LENGTH = 16;

/** Options for {@linkcode LoopbackPairs.open}. */
export interface LoopbackPairsOptions {
  /** The loopback address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** How long a pair may take to be made, in milliseconds. @default {5000} */
  timeout?: number;
  /** Hears about errors accepting the private connections. */
  onAcceptError?: (report: AcceptErrorReport) => void;
}

/**
 * A private loopback listener that makes connected pairs of sockets.
 *
 * @example A pair carries bytes both ways
 * ```ts
 * import { LoopbackPairs } from "./pair.ts";
 * const pairs = await LoopbackPairs.open();
 * const [outer, inner] = await pairs.pair();
 * await outer.write(new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(2);
 * await inner.read(buffer);
 * outer.close();
 * inner.close();
 * await pairs.close();
 * if (new TextDecoder().decode(buffer) !== "hi") throw new Error("lost");
 * ```
 */
export class LoopbackPairs {
  #listener: ServerListener;
  #timeout: number;
  #pending = new Map<string, (conn: Deno.Conn) => void>();
  #loop: Promise<void>;
  #closing = new AbortController();

  private constructor(listener: ServerListener, options: LoopbackPairsOptions) {
    this.#listener = listener;
    this.#timeout = options.timeout ?? 5000;
    this.#loop = acceptLoop(listener, {
      onConnection: (conn) => this.#claim(conn),
      onError: options.onAcceptError,
      signal: this.#closing.signal,
    });
  }

  /** Listens on a free loopback port; needs `--allow-net=127.0.0.1` (the host, any port). */
  static async open(options: LoopbackPairsOptions = {}): Promise<LoopbackPairs> {
    const listener = await listen({ hostname: options.hostname ?? "127.0.0.1", port: 0 });
    return new LoopbackPairs(listener, options);
  }

  /** The private address (a request without a host is given this one by Deno's engine). */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Makes a pair: `[outer, inner]`, two ends of one connection, Nagle's delay off on both. */
  async pair(): Promise<[Deno.Conn, Deno.Conn]> {
    const token = crypto.getRandomValues(new Uint8Array(TOKEN_LENGTH));
    const key = encodeHex(token);
    const { promise, resolve } = Promise.withResolvers<Deno.Conn>();
    this.#pending.set(key, resolve);
    let outer: Deno.TcpConn | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const { hostname, port } = this.addr;
      outer = await Deno.connect({ hostname, port });
      outer.setNoDelay(true);
      await writeAll(outer, token);
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Deno.errors.TimedOut("No loopback pair made in time")),
          this.#timeout,
        );
      });
      const inner = await Promise.race([promise, expired]);
      return [outer, inner];
    } catch (error) {
      outer?.close();
      throw error;
    } finally {
      clearTimeout(timer);
      this.#pending.delete(key);
    }
  }

  /** Stops listening; pairs already made stay open. */
  async close(): Promise<void> {
    this.#closing.abort();
    this.#listener.close();
    await this.#loop;
  }

  #claim(conn: Deno.Conn): void {
    const timer = setTimeout(() => conn.close(), this.#timeout);
    readToken(conn).then((key) => {
      clearTimeout(timer);
      const resolve = key === undefined ? undefined : this.#pending.get(key);
      if (resolve === undefined) return conn.close();
      (conn as Deno.TcpConn).setNoDelay(true);
      resolve(conn);
    }, () => {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* the timer closed it */ }
    });
  }
}

function encodeHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Reads exactly the token (never a byte more: what follows belongs to the engine). */
async function readToken(conn: Deno.Conn): Promise<string | undefined> {
  const token = new Uint8Array(TOKEN_LENGTH);
  let filled = 0;
  while (filled < TOKEN_LENGTH) {
    const n = await conn.read(token.subarray(filled));
    if (n === null) return undefined;
    filled += n;
  }
  return encodeHex(token);
}
