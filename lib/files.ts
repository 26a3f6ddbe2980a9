/**
 * Files named on a command line, read with bounds: a regular file (or `-` for standard input)
 * of at most a given size. `--cert /dev/zero` would otherwise grow memory without end, and a FIFO
 * as `--ca` would hang a server before it starts.
 * @module
 */
import { requireRead } from "./permissions.ts";

/** Options for {@linkcode readBoundedFile}. */
export interface ReadBoundedOptions {
  /** The flag that named the file, for messages: `--cert`, `--message-file`. */
  flag: string;
  /** The most bytes accepted. */
  maxBytes: number;
  /** Whether `-` means standard input. @default {false} */
  allowStdin?: boolean;
}

/**
 * Reads `path` whole: only a regular file (or standard input for `-` with `allowStdin`), and
 * never more than `maxBytes`. Failures are one `Error` that names the flag and the file.
 *
 * @example
 * ```ts
 * import { readBoundedFile } from "./files.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * const bytes = await readBoundedFile(path, { flag: "--message-file", maxBytes: 16 });
 * await Deno.remove(path);
 * if (new TextDecoder().decode(bytes) !== "hello") throw new Error("not read");
 * ```
 */
export async function readBoundedFile(
  path: string,
  options: ReadBoundedOptions,
): Promise<Uint8Array> {
  const { flag, maxBytes } = options;
  const fail = (reason: string) => new Error(`Cannot read ${flag} "${path}": ${reason}`);
  if (path === "-" && options.allowStdin) {
    const bytes = await readAtMost(Deno.stdin.readable, maxBytes + 1);
    if (bytes.length > maxBytes) throw fail(`standard input holds more than ${maxBytes} bytes`);
    return bytes;
  }
  requireRead(path, `read ${flag} "${path}"`);
  // Checked before opening too: opening a FIFO for reading waits for a writer.
  try {
    if (!(await Deno.stat(path)).isFile) throw fail("it is not a regular file");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw fail("no such file");
    throw error instanceof Error && error.message.startsWith("Cannot read") ? error : fail(
      firstLine(error),
    );
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw fail(error instanceof Deno.errors.NotFound ? "no such file" : firstLine(error));
  }
  try {
    // Checked again on the open file, so that what is read is what was checked.
    const info = await file.stat();
    if (!info.isFile) throw fail("it is not a regular file");
    if (info.size > maxBytes) throw fail(`it is larger than ${maxBytes} bytes`);
    const bytes = await readAtMost(file.readable, maxBytes + 1);
    if (bytes.length > maxBytes) throw fail(`it is larger than ${maxBytes} bytes`);
    return bytes;
  } finally {
    try {
      file.close();
    } catch { /* the readable closed it */ }
  }
}

async function readAtMost(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  try {
    while (length < limit) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(Math.min(length, limit));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - at);
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0].replace(/ \(os error \d+\)$/, "");
}
