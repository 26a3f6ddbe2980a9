/**
 * Unix socket paths: bind only over nothing or over a stale socket file, never over a live
 * server's socket or a file that is not a socket, and remove the file on a clean stop.
 * @module
 */

/**
 * Makes `path` ready to bind: removes a stale socket file left by a server that died, and
 * throws when the path is another file or a socket that a live server still answers on.
 */
export async function claimUnixPath(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!info.isSocket) {
    throw new Deno.errors.AlreadyExists(`Refusing to replace "${path}": it is not a socket`);
  }
  if (await isLive(path)) {
    throw new Deno.errors.AddrInUse(`Unix socket "${path}" is in use by a running server`);
  }
  await Deno.remove(path);
}

// A socket nobody is bound to refuses a connection; a live one of either type accepts it or
// answers with a type mismatch.
async function isLive(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch (error) {
    // A missing permission says nothing about the socket: report it as it is.
    if (error instanceof Deno.errors.NotCapable) throw error;
    return !(error instanceof Deno.errors.ConnectionRefused);
  }
}

/** Removes the socket file at `path` if it is still there; safe to call twice. */
export function releaseUnixPath(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
