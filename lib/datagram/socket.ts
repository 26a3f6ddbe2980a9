/**
 * Opening the datagram sockets both UDP programs use: a receiver's bound socket (UDP, or a Unix
 * datagram socket whose path is claimed first and removed on close) and a sender's socket on an
 * address the system picks. Permissions are queried first (never a prompt) and failures name
 * the address, as `lib/net/listen.ts` does for stream listeners.
 * @module
 */
import { formatTarget } from "../address.ts";
import { withAddress } from "../errors.ts";
import { closeQuietly } from "../io.ts";
import { claimUnixPath, releaseUnixPath } from "../net/unix_path.ts";
import { requireNet, requireUnixPath } from "../permissions.ts";

/** A UDP host and port, or a Unix datagram socket path. */
export interface DatagramEndpoint {
  /** Host to bind; ignored with `path`. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {0} */
  port?: number;
  /** Bind a Unix datagram socket at this path instead of UDP. */
  path?: string;
}

/** A bound datagram socket whose `close()` may be called twice and removes its socket file. */
export interface BoundDatagram extends Disposable {
  /** The socket. */
  readonly conn: Deno.DatagramConn;
  /** The address really bound (read back from the socket). */
  readonly addr: Deno.Addr;
  /** Closes the socket and removes a Unix socket file; safe to call twice. */
  close(): void;
}

/**
 * Binds a datagram socket where `endpoint` says. A Unix path is claimed first: a stale socket
 * file is removed, a live one or another file is refused. Throws `Deno.errors.NotCapable`
 * naming the flag when a permission is missing, otherwise the OS error with the address in front.
 *
 * @example
 * ```ts
 * import { bindDatagram } from "./socket.ts";
 * using socket = await bindDatagram({ hostname: "127.0.0.1", port: 0 });
 * if (socket.addr.transport !== "udp") throw new Error(socket.addr.transport);
 * ```
 */
export async function bindDatagram(endpoint: DatagramEndpoint): Promise<BoundDatagram> {
  const { path, hostname = "127.0.0.1", port = 0 } = endpoint;
  const target = formatTarget({ path, hostname, port });
  if (path === undefined) {
    requireNet(hostname, port, `bind ${target}`);
    try {
      return wrap(Deno.listenDatagram({ transport: "udp", hostname, port }));
    } catch (error) {
      throw withAddress(error, target);
    }
  }
  requireUnixPath(path, `bind ${target}`);
  await claimUnixPath(path);
  try {
    return wrap(
      Deno.listenDatagram({ transport: "unixpacket", path }),
      () => releaseUnixPath(path),
    );
  } catch (error) {
    throw withAddress(error, target);
  }
}

/**
 * Opens a sender's socket for datagrams to `target`: UDP on `source` (by default loopback for a
 * loopback target, so that `--allow-net=127.0.0.1` is enough, else the wildcard address of the
 * target's family) and a port the system picks; a Unix socket bound to `source` when given (a
 * path a receiver can answer), unnamed otherwise.
 *
 * @example
 * ```ts
 * import { openSender } from "./socket.ts";
 * using socket = await openSender({ hostname: "127.0.0.5" });
 * if ((socket.addr as Deno.NetAddr).hostname !== "127.0.0.1") throw new Error("not loopback");
 * ```
 */
export async function openSender(
  target: { hostname?: string; path?: string },
  source?: string,
): Promise<BoundDatagram> {
  if (target.path !== undefined) {
    if (source !== undefined) return await bindDatagram({ path: source });
    return wrap(openUnnamedUnix());
  }
  return await bindDatagram({ hostname: source ?? senderAddressFor(target.hostname), port: 0 });
}

/**
 * The address a sender binds for `target` when not told: loopback for a loopback target, the
 * wildcard of the target's family otherwise.
 */
function senderAddressFor(target = "127.0.0.1"): string {
  if (target === "::1") return "::1";
  if (target.includes(":")) return "::";
  return target.startsWith("127.") || target === "localhost" ? "127.0.0.1" : "0.0.0.0";
}

/**
 * Whether a `receive()` failed because Deno could not decode the sender's address (a Unix
 * client bound to a name that is not UTF-8, such as the abstract name `"\0\xff"`). The datagram
 * is gone by then: count it and receive the next one.
 *
 * @example
 * ```ts
 * import { isUndecodableAddress } from "./socket.ts";
 * const error = new Deno.errors.InvalidData('File name or path "\\0\\xFF" is not valid UTF-8');
 * if (!isUndecodableAddress(error)) throw error;
 * ```
 */
export function isUndecodableAddress(error: unknown): boolean {
  return error instanceof Deno.errors.InvalidData;
}

function wrap(conn: Deno.DatagramConn, release?: () => void): BoundDatagram {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    closeQuietly(conn);
    release?.();
  };
  return { conn, addr: conn.addr, close, [Symbol.dispose]: close };
}

/**
 * Opens an unnamed Unix datagram socket: for sending only (nobody can answer it), which needs no
 * permission of its own.
 *
 * @example
 * ```ts
 * import { openUnnamedUnix } from "./socket.ts";
 * const socket = openUnnamedUnix();
 * socket.close();
 * ```
 */
export function openUnnamedUnix(): Deno.DatagramConn {
  return Deno.listenDatagram(
    { transport: "unixpacket" } as Deno.UnixListenOptions & {
      transport: "unixpacket";
    },
  );
}
