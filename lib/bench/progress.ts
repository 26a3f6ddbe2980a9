/**
 * The load client's progress line on stderr: redrawn in place (`\r`, erase line) on a terminal
 * that takes escape sequences, one plain line per update under `NO_COLOR` or `TERM=dumb`, and
 * none when stderr is not a terminal. Updates go through the bounded stderr queue and are
 * skipped while the previous one is still being written, so a stalled terminal never slows
 * the load. `--json` output never carries it: the caller shows none then.
 * @module
 */
import { type OutputQueue, stderr } from "../output.ts";
import type { BenchProgress } from "./load.ts";

/** How progress is shown: redrawn in place, or as plain lines. */
export type ProgressStyle = "redraw" | "plain";

const ERASE_LINE = "\r\x1b[K";
const encoder = new TextEncoder();

/**
 * The style that suits stderr: `null` when it is not a terminal, `"plain"` when `NO_COLOR` is
 * set or `TERM` is `dumb` (`TERM` is read only when `--allow-env` covers it: no prompt), else
 * `"redraw"`.
 *
 * @example
 * ```ts
 * import { progressStyle } from "./progress.ts";
 * const style = progressStyle({ isTerminal: () => false });
 * if (style !== null) throw new Error("a pipe gets no progress line");
 * ```
 */
export function progressStyle(
  stream: { isTerminal(): boolean } = Deno.stderr,
): ProgressStyle | null {
  if (!stream.isTerminal()) return null;
  if (Deno.noColor) return "plain";
  const variable = "TERM";
  const readable = Deno.permissions.querySync({ name: "env", variable }).state === "granted";
  return readable && Deno.env.get(variable) === "dumb" ? "plain" : "redraw";
}

/**
 * Shows one progress line at a time.
 *
 * @example Plain lines into a test queue
 * ```ts
 * import { ProgressLine } from "./progress.ts";
 * import { OutputQueue } from "../output.ts";
 * const written: string[] = [];
 * const queue = new OutputQueue({
 *   write: (bytes) => Promise.resolve(written.push(new TextDecoder().decode(bytes)) && bytes.length),
 * });
 * const line = new ProgressLine("plain", queue);
 * line.show("pingpong measuring 1s");
 * await line.clear();
 * await queue.flush();
 * if (written.join("") !== "pingpong measuring 1s\n") throw new Error(JSON.stringify(written));
 * ```
 */
export class ProgressLine {
  readonly #style: ProgressStyle;
  readonly #sink: OutputQueue;
  #shown = false;

  /**
   * Shows progress on `sink` in `style`.
   *
   * @param style How to show it.
   * @param sink Where to write it. @default {the stderr queue of lib/output.ts}
   */
  constructor(style: ProgressStyle, sink: OutputQueue = stderr) {
    this.#style = style;
    this.#sink = sink;
  }

  /** Shows `text`, unless the previous update is still being written. */
  show(text: string): void {
    if (this.#sink.queued > 0) return;
    if (this.#style === "plain") {
      this.#sink.writeLine(text);
      return;
    }
    this.#shown = true;
    // Nothing is queued, so this takes the bytes at once and never waits.
    void this.#sink.writeData(encoder.encode(ERASE_LINE + text));
  }

  /**
   * Erases a redrawn line and waits (200 ms at most) until that is written, so what follows
   * on another stream starts on a clean line.
   */
  async clear(): Promise<void> {
    if (!this.#shown) return;
    this.#shown = false;
    await this.#sink.writeData(encoder.encode(ERASE_LINE));
    await this.#sink.flush(200);
  }
}

/**
 * The text of one progress update. Bulk counts no messages while it runs (its writes are not
 * round trips), so its line shows only the echoed bytes.
 *
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * const text = formatProgress("pingpong", {
 *   phase: "measuring", elapsedMs: 2400, open: 50, messages: 1234, bytes: 78976, errors: 0,
 * });
 * if (text !== "pingpong measuring 2s: 50 open, 1234 msgs, 0.1 MB, 0 errors") throw new Error(text);
 * const bulk = formatProgress("bulk", {
 *   phase: "measuring", elapsedMs: 1000, open: 8, messages: 0, bytes: 12_300_000, errors: 0,
 * });
 * if (bulk !== "bulk measuring 1s: 8 open, 12.3 MB, 0 errors") throw new Error(bulk);
 * ```
 */
export function formatProgress(mode: string, p: BenchProgress): string {
  const messages = mode === "bulk" ? "" : `${p.messages} msgs, `;
  return `${mode} ${p.phase} ${(p.elapsedMs / 1000).toFixed(0)}s: ${p.open} open, ` +
    `${messages}${(p.bytes / 1e6).toFixed(1)} MB, ${p.errors} errors`;
}
