/**
 * One way for every server to listen, as Go's `net.ListenConfig` is one options value for every
 * listener: a {@linkcode ListenConfig} (TCP, Unix or TLS; backlog; `reusePort`) becomes a
 * {@linkcode ServerListener}. Permissions are checked first (never a prompt), a Unix socket path
 * is claimed before binding and released by the same listener's `close()`, and failures name the
 * address.
 * @module
 */
import { formatTarget } from "../address.ts";
import { withAddress } from "../errors.ts";
import { closeQuietly } from "../io.ts";
import { requireNet, requireUnixPath } from "../permissions.ts";
import { explainTlsError, type ServerTlsOptions } from "../tls.ts";
import { acceptProxyProtocol, type ProxyProtocolOptions } from "./proxy_listener.ts";
import { claimUnixPath, releaseUnixPath } from "./unix_path.ts";

/** Where and how a server listens. */
export interface ListenConfig {
  /** Address to bind; ignored with `path`. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {0} */
  port?: number;
  /** Bind a Unix stream socket at this path instead of TCP. */
  path?: string;
  /** Pending connections the kernel queues before refusing more (Linux caps it at
   * `net.core.somaxconn`, 4096 by default): with 511, a burst of 5000 connects overflowed the queue
   * and the dropped SYNs came back a second later; with 4096 the 5000 were in within 0.2 s.
   * @default {4096} */
  backlog?: number;
  /** Serve TLS with this certificate and key (TCP only). */
  tls?: ServerTlsOptions;
  /** Let several processes bind the same port; the kernel spreads connections (Linux).
   * @default {false} */
  reusePort?: boolean;
  /** Read a PROXY protocol header (v1 or v2) from every connection before `accept()` hands it
   * out, its addresses replacing the balancer's (lib/net/proxy_listener.ts); not with TLS. */
  proxyProtocol?: ProxyProtocolOptions;
}

/** A bound listener: accept connections, close it (releasing a Unix socket file). */
export interface ServerListener extends Disposable {
  /** The address really bound (read back from the socket, never from the config). */
  readonly addr: Deno.Addr;
  /** Whether accepted connections speak TLS. */
  readonly tls: boolean;
  /** Waits for the next connection; rejects with `Deno.errors.BadResource` once closed. */
  accept(): Promise<Deno.Conn>;
  /** Stops listening and removes a Unix socket file; safe to call twice. */
  close(): void;
}

/**
 * Binds what `config` describes. Throws `Deno.errors.NotCapable` naming the flag to add when a
 * permission is missing, a `TypeError` for TLS on a Unix path, and otherwise the OS error with
 * the address in front (`127.0.0.1:80: Permission denied`).
 *
 * @example A TCP listener on a free port
 * ```ts
 * import { listen } from "./listen.ts";
 * using listener = await listen({ hostname: "127.0.0.1", port: 0 });
 * const { port } = listener.addr as Deno.NetAddr;
 * const client = await Deno.connect({ hostname: "127.0.0.1", port });
 * const conn = await listener.accept();
 * conn.close();
 * client.close();
 * ```
 */
export async function listen(config: ListenConfig): Promise<ServerListener> {
  if (config.proxyProtocol === undefined) return await bind(config);
  if (config.tls) {
    throw new TypeError(
      "Cannot read a PROXY header before TLS: Deno's TLS listener starts the handshake itself",
    );
  }
  return acceptProxyProtocol(await bind(config), config.proxyProtocol);
}

async function bind(config: ListenConfig): Promise<ServerListener> {
  const { path, hostname = "127.0.0.1", port = 0, backlog = 4096, tls, reusePort } = config;
  const target = formatTarget({ path, hostname, port });
  if (path !== undefined) {
    if (tls) throw new TypeError("Cannot serve TLS on a Unix socket path");
    requireUnixPath(path, `listen on ${target}`);
    await claimUnixPath(path);
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      throw withAddress(error, target);
    }
    return wrap(listener, false, () => releaseUnixPath(path));
  }
  requireNet(hostname, port, `listen on ${target}`);
  const address = { transport: "tcp" as const, hostname, port, tcpBacklog: backlog, reusePort };
  try {
    if (!tls) return wrap(Deno.listen(address), false);
    return wrap(Deno.listenTls({ ...address, ...tls }), true);
  } catch (error) {
    throw withAddress(explainTlsError(error), target);
  }
}

function wrap(listener: Deno.Listener, tls: boolean, release?: () => void): ServerListener {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    closeQuietly(listener);
    release?.();
  };
  return {
    addr: listener.addr,
    tls,
    accept: () => listener.accept(),
    close,
    [Symbol.dispose]: close,
  };
}
