/**
 * A deadline for the TLS handshake of an accepted connection, and an honest count of the
 * connections it could not really close.
 *
 * Deno 2.9 finishes a server-side TLS handshake before it lets a connection's socket go: after
 * `conn.close()` on a `Deno.TlsConn` whose handshake has not completed, the socket stays open
 * until the peer sends its hello or hangs up (measured: more than 90 s for a peer that connects
 * and says nothing; the handshake runs in a task that holds the TCP stream), and JavaScript can
 * no longer tell when that happens. So a server cannot free a silent TLS client's descriptor.
 * What this module does instead: at the deadline the server stops waiting (no stop is delayed
 * by a silent client) and {@linkcode closeConn} *parks* the connection — it leaves the server,
 * but its handshake stays pending and it is counted by {@linkcode lingeringTlsConnections} until
 * the peer acts; then it is closed for real. A TLS connection refused at accept lingers the same
 * way (Deno starts the handshake at accept) and is parked and counted too. `--max-connections`
 * counts parked connections, but only a server that stops accepting while it is full
 * (`hasRoom` of lib/net/accept.ts) keeps the descriptors bounded: accept-and-close cannot refuse
 * a silent TLS client. {@linkcode closeLingering} closes what is left when a server stops.
 * @module
 */
import { closeQuietly } from "../io.ts";

interface Handshake {
  settled: boolean;
  done: Promise<unknown>;
}

const handshakes = new WeakMap<Deno.Conn, Handshake>();
const parked = new Set<Deno.Conn>();

/**
 * Starts `conn`'s TLS handshake and rejects with `Deno.errors.TimedOut` if it has not finished
 * after `timeoutMs`. A plain TCP or Unix connection resolves at once. Close the connection with
 * {@linkcode closeConn} so that one closed mid-handshake is counted while it lingers.
 *
 * @example A client that never speaks TLS
 * ```ts ignore
 * import { handshakeWithDeadline } from "./handshake.ts";
 * await handshakeWithDeadline(conn, 10_000); // throws TimedOut after 10 s of silence
 * ```
 */
export function handshakeWithDeadline(conn: Deno.Conn, timeoutMs: number): Promise<void> {
  if (!("handshake" in conn)) return Promise.resolve();
  const handshake = track(conn as Deno.TlsConn);
  if (handshake.settled) return handshake.done.then(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Deno.errors.TimedOut(`No TLS handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([handshake.done.then(() => {}), expired]).finally(() => clearTimeout(timer));
}

function track(conn: Deno.TlsConn): Handshake {
  let handshake = handshakes.get(conn);
  if (handshake !== undefined) return handshake;
  const entry: Handshake = { settled: false, done: Promise.resolve() };
  entry.done = conn.handshake().finally(() => {
    entry.settled = true;
    // The peer acted: now a close really closes.
    if (parked.delete(conn)) closeQuietly(conn);
  });
  // Failures reach callers through handshakeWithDeadline; this copy must not go unhandled.
  entry.done.catch(() => {});
  handshakes.set(conn, entry);
  handshake = entry;
  return handshake;
}

/**
 * Closes `conn`, or parks it while its TLS handshake is pending (see the module documentation),
 * whether or not {@linkcode handshakeWithDeadline} was called for it; safe to call twice.
 *
 * @example
 * ```ts
 * import { closeConn } from "./handshake.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * closeConn(client);
 * closeConn(client);
 * listener.close();
 * ```
 */
export function closeConn(conn: Deno.Conn): void {
  // A TLS connection closed before anyone waited for its handshake (one refused at a limit)
  // lingers just the same: Deno starts the handshake at accept. Track it so that it is counted.
  const handshake = handshakes.get(conn) ??
    ("handshake" in conn ? track(conn as Deno.TlsConn) : undefined);
  if (handshake !== undefined && !handshake.settled) {
    parked.add(conn);
    return;
  }
  closeQuietly(conn);
}

/**
 * How many TLS connections wait parked for their peer (see the module documentation). Servers
 * add it to their open connections when they enforce a connection limit.
 *
 * @example
 * ```ts
 * import { lingeringTlsConnections } from "./handshake.ts";
 * if (lingeringTlsConnections() !== 0) throw new Error("none yet");
 * ```
 */
export function lingeringTlsConnections(): number {
  return parked.size;
}

/**
 * Closes every parked connection as far as Deno allows (their sockets go when the process
 * exits), for a server that stops. Call it after the stop's last {@linkcode closeConn} (the one
 * at the end of the grace period too): a connection parked later keeps its reads in flight.
 *
 * @example
 * ```ts
 * import { closeLingering } from "./handshake.ts";
 * closeLingering();
 * ```
 */
export function closeLingering(): void {
  for (const conn of parked) closeQuietly(conn);
  parked.clear();
}
