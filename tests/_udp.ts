/**
 * Test fixture for the UDP programs over Unix datagram sockets: the permissions a socket path
 * needs, and a `udp_receive.ts --unix` receiver in a directory of its own, already listening,
 * that `await using` stops and removes with its directory.
 * @module
 */
import { type ScriptProcess, spawnScript } from "./_process.ts";

/** The flags that let a script bind, send to and remove the Unix sockets at `paths`. */
export function unixPermissions(...paths: string[]): string[] {
  const list = paths.join(",");
  return [
    `--allow-net=${paths.map((path) => `unix:${path}`).join(",")}`,
    `--allow-read=${list}`,
    `--allow-write=${list}`,
  ];
}

/** A listening `udp_receive.ts --unix` in a temporary directory. */
export interface UnixReceiver extends AsyncDisposable {
  /** The directory, removed with everything in it once the receiver is disposed. */
  readonly dir: string;
  /** The receiver's socket path. */
  readonly path: string;
  /** The running script. */
  readonly script: ScriptProcess;
  /** The path of `name` in the directory (a sender's socket, a message file). */
  at(name: string): string;
}

/** Options for {@linkcode startUnixReceiver}. */
export interface UnixReceiverOptions {
  /** The receiver's socket file name. @default {"r.sock"} */
  name?: string;
  /** Names of other sockets in the directory that the receiver may reach (echo clients). */
  peers?: string[];
}

/**
 * Starts `udp_receive.ts --unix DIR/NAME ...args` in a new temporary directory and waits for
 * its listening line.
 */
export async function startUnixReceiver(
  args: string[],
  options: UnixReceiverOptions = {},
): Promise<UnixReceiver> {
  const dir = await Deno.makeTempDir();
  const at = (name: string) => `${dir}/${name}`;
  const path = at(options.name ?? "r.sock");
  const script = spawnScript("udp_receive.ts", ["--unix", path, ...args], {
    permissions: unixPermissions(path, ...(options.peers ?? []).map(at)),
  });
  const receiver: UnixReceiver = {
    dir,
    path,
    script,
    at,
    async [Symbol.asyncDispose]() {
      try {
        await script[Symbol.asyncDispose]();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
  try {
    await script.waitForStderr(/^Listening on unix:/m);
  } catch (error) {
    await receiver[Symbol.asyncDispose]();
    throw error;
  }
  return receiver;
}
