/**
 * One way for every client to connect, as Go's `net.Dialer` is one options value for every
 * connection: a {@linkcode DialConfig} (TCP, Unix or TLS, with one timeout that covers the
 * connect and the TLS handshake) becomes a connected `Deno.Conn`. Permissions are checked first
 * (never a prompt) and every failure is one line that names the address.
 * @module
 */
import { formatTarget } from "../address.ts";
import { withAddress } from "../errors.ts";
import { closeQuietly } from "../io.ts";
import { requireNet, requireUnixPath } from "../permissions.ts";
import { type ClientTlsOptions, explainTlsError } from "../tls.ts";

/** Where and how a client connects. */
export interface DialConfig {
  /** Host to connect to; with TLS also the name the certificate must carry.
   * @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to connect to. */
  port: number;
  /** Connect to a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** Connect with TLS (TCP only); the handshake completes before `connect()` resolves. */
  tls?: ClientTlsOptions;
  /** Give up when connecting and the TLS handshake together take longer (ms).
   * @default {Infinity} */
  timeout?: number;
  /** Send small writes at once instead of waiting for Nagle's algorithm. @default {false} */
  noDelay?: boolean;
  /** Gives up when aborted (a server that stops while it connects upstream), with
   * `Deno.errors.Interrupted`. */
  signal?: AbortSignal;
}

/**
 * Connects as `config` says. With TLS the handshake is part of the connect, so an untrusted
 * certificate, a wrong name or an ALPN mismatch fails here with one line that says what to do,
 * and `conn.handshake()` then tells the negotiated ALPN protocol. A timeout throws
 * `Deno.errors.TimedOut`.
 *
 * @example
 * ```ts
 * import { connect } from "./connect.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using conn = await connect({ port: listener.addr.port, timeout: 5000 });
 * using accepted = await listener.accept();
 * ```
 */
export async function connect(config: DialConfig): Promise<Deno.Conn> {
  const { path, hostname = "127.0.0.1", port, tls, timeout = Infinity } = config;
  const target = formatTarget({ path, hostname, port });
  if (path !== undefined) {
    if (tls) throw new TypeError("Cannot connect with TLS to a Unix socket path");
    requireUnixPath(path, `connect to ${target}`);
  } else {
    requireNet(hostname, port, `connect to ${target}`);
  }
  const deadline = new Deadline(timeout, target, config.signal);
  try {
    const conn = await deadline.race<Deno.Conn>(
      path !== undefined
        ? Deno.connect({ transport: "unix", path })
        : tls
        ? Deno.connectTls({ hostname, port, ...tls })
        : Deno.connect({ transport: "tcp", hostname, port, signal: deadline.signal }),
      "Connecting",
    );
    if (config.noDelay && "setNoDelay" in conn) (conn as unknown as Deno.TcpConn).setNoDelay(true);
    if ("handshake" in conn) {
      try {
        await deadline.race((conn as unknown as Deno.TlsConn).handshake(), "The TLS handshake");
      } catch (error) {
        closeQuietly(conn);
        throw error;
      }
    }
    return conn;
  } catch (error) {
    if (
      error instanceof Deno.errors.TimedOut || error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.Interrupted
    ) {
      throw error;
    }
    throw withAddress(tls ? explainTlsError(error, target) : error, target);
  } finally {
    deadline.clear();
  }
}

/** One timer (and the caller's signal) for the whole connect; each step races it. */
class Deadline {
  readonly #controller = new AbortController();
  readonly #expired: Promise<never> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #step = "Connecting";
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  constructor(readonly ms: number, readonly target: string, signal?: AbortSignal) {
    if (!Number.isFinite(ms) && signal === undefined) return;
    this.#signal = signal;
    this.#expired = new Promise<never>((_, reject) => {
      const fail = (error: Error) => {
        this.#controller.abort();
        reject(error);
      };
      if (Number.isFinite(ms)) {
        this.#timer = setTimeout(
          () =>
            fail(new Deno.errors.TimedOut(`${this.#step} to ${target} took longer than ${ms} ms`)),
          ms,
        );
      }
      this.#onAbort = () =>
        fail(new Deno.errors.Interrupted(`${this.#step} to ${target} was cancelled`));
      if (signal?.aborted) this.#onAbort();
      else signal?.addEventListener("abort", this.#onAbort, { once: true });
    });
    this.#expired.catch(() => {}); // raced below; unobserved when the connect wins
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Waits for `step`; a late result after the deadline is closed, never leaked. */
  race<T>(step: Promise<T>, name: string): Promise<T> {
    this.#step = name;
    if (this.#expired === undefined) return step;
    step.then((late) => {
      if (this.#controller.signal.aborted && isClosable(late)) closeQuietly(late);
    }, () => {});
    return Promise.race([step, this.#expired]);
  }

  clear(): void {
    clearTimeout(this.#timer);
    if (this.#onAbort) this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

function isClosable(value: unknown): value is { close(): void } {
  return typeof value === "object" && value !== null && "close" in value;
}
