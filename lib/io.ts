/**
 * The two things every socket program does by hand: write a whole buffer (a write may take
 * only part of it) and close something that may already be closed.
 * @module
 */

/** Anything with a `write` that may write only part of what it is given. */
export interface PartialWriter {
  /** Writes some of `bytes` and resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * Writes every byte of `bytes`: `conn.write()` may write only part of a buffer. The common case,
 * a write that takes it all, creates no view.
 *
 * @example
 * ```ts
 * import { writeAll } from "./io.ts";
 * const taken: number[] = [];
 * const halfWriter = {
 *   write: (bytes: Uint8Array) => Promise.resolve(taken.push(Math.ceil(bytes.length / 2)) && Math.ceil(bytes.length / 2)),
 * };
 * await writeAll(halfWriter, new Uint8Array(8));
 * if (taken.join() !== "4,2,1,1") throw new Error(taken.join());
 * ```
 */
export async function writeAll(writer: PartialWriter, bytes: Uint8Array): Promise<void> {
  let written = await writer.write(bytes);
  while (written < bytes.length) written += await writer.write(bytes.subarray(written));
}

/**
 * Closes `resource`, ignoring that it was closed already: a timer, a `finally` and a stop may
 * all close the same connection, and only the first close means anything.
 *
 * @example
 * ```ts
 * import { closeQuietly } from "./io.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * closeQuietly(listener);
 * closeQuietly(listener); // no BadResource
 * ```
 */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* closed already */ }
}
