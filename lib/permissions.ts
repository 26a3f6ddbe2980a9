/**
 * Never a permission prompt: ask Deno whether a permission is granted before the call that
 * needs it, and when it is not, fail with one line that names the exact flag to add
 * (`--allow-net=[::1]:12345`), instead of letting Deno stop and ask on a terminal.
 * @module
 */
import { formatHostPort } from "./address.ts";

/**
 * Throws `Deno.errors.NotCapable` naming the flag that would allow `descriptor`, unless it is
 * granted already. `flag` is what the user should add, e.g. `--allow-read=/tmp/echo.sock`.
 *
 * @example
 * ```ts
 * import { requirePermission } from "./permissions.ts";
 * requirePermission({ name: "net", host: "127.0.0.1:0" }, "--allow-net=127.0.0.1", "listen");
 * ```
 */
export function requirePermission(
  descriptor: Deno.PermissionDescriptor,
  flag: string,
  purpose: string,
): void {
  if (isGranted(descriptor)) return;
  throw new Deno.errors.NotCapable(`Cannot ${purpose} without permission: run again with ${flag}`);
}

/**
 * Whether `descriptor` is granted, asked without a prompt.
 *
 * @example
 * ```ts
 * import { isGranted } from "./permissions.ts";
 * if (typeof isGranted({ name: "net", host: "127.0.0.1:5005" }) !== "boolean") throw new Error();
 * ```
 */
export function isGranted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * What Deno's net permission calls the address `addr` (`127.0.0.1:5005`, `[::1]:5005`,
 * `unix:/tmp/c.sock`), or `undefined` when it has no name (an unnamed Unix socket, a vsock).
 *
 * @example
 * ```ts
 * import { netHost } from "./permissions.ts";
 * const host = netHost({ transport: "udp", hostname: "::1", port: 5005 });
 * if (host !== "[::1]:5005") throw new Error(host);
 * if (netHost({ transport: "unixpacket", path: "" }) !== undefined) throw new Error("unnamed");
 * ```
 */
export function netHost(addr: Deno.Addr): string | undefined {
  if ("path" in addr) return addr.path ? `unix:${addr.path}` : undefined;
  if ("hostname" in addr) return formatHostPort(addr.hostname, addr.port);
  return undefined;
}

/**
 * The `--allow-net` value that allows `hostname:port` (just the host when the port is 0, which
 * the system picks at run time).
 *
 * @example
 * ```ts
 * import { netFlag } from "./permissions.ts";
 * if (netFlag("::1", 12345) !== "--allow-net=[::1]:12345") throw new Error(netFlag("::1", 12345));
 * if (netFlag("127.0.0.1", 0) !== "--allow-net=127.0.0.1") throw new Error("port 0");
 * ```
 */
export function netFlag(hostname: string, port: number): string {
  if (port !== 0) return `--allow-net=${formatHostPort(hostname, port)}`;
  return `--allow-net=${hostname.includes(":") ? `[${hostname}]` : hostname}`;
}

/**
 * Checks what listening or connecting on a TCP/UDP address needs: `net` for `hostname:port`.
 *
 * @example
 * ```ts
 * import { requireNet } from "./permissions.ts";
 * requireNet("127.0.0.1", 0, "listen on 127.0.0.1:0");
 * ```
 */
export function requireNet(hostname: string, port: number, purpose: string): void {
  // `host:0` is granted by `--allow-net=host`; an IPv6 host must be bracketed either way.
  const host = formatHostPort(hostname, port);
  requirePermission({ name: "net", host }, netFlag(hostname, port), purpose);
}

/**
 * Checks what a Unix socket path needs in Deno 2.9: net access to `unix:PATH`, and read and
 * write access to the path.
 *
 * @example
 * ```ts
 * import { requireUnixPath } from "./permissions.ts";
 * requireUnixPath("/tmp/example.sock", "listen on unix:/tmp/example.sock");
 * ```
 */
export function requireUnixPath(path: string, purpose: string): void {
  const flags = `--allow-net=unix:${path} --allow-read=${path} --allow-write=${path}`;
  requirePermission({ name: "net", host: `unix:${path}` }, flags, purpose);
  requirePermission({ name: "read", path }, flags, purpose);
  requirePermission({ name: "write", path }, flags, purpose);
}

/**
 * Checks that a file may be read (a certificate, a message file), naming `--allow-read=PATH`.
 *
 * @example
 * ```ts
 * import { requireRead } from "./permissions.ts";
 * requireRead("/etc/hostname", "read /etc/hostname");
 * ```
 */
export function requireRead(path: string, purpose: string): void {
  requirePermission({ name: "read", path }, `--allow-read=${path}`, purpose);
}
