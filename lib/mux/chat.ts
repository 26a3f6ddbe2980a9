/**
 * ncat's `--broker` and `--chat` as decisions of the multiplexer, and `serveChat()`, the server
 * built with them. Broker: every byte a client sends goes to every other client, unchanged.
 * Chat: line by line, each line prefixed with its sender (`<user3> hi`), control characters
 * escaped, over-long lines cut with a notice, and announcements when clients come and go, in
 * ncat's words. Either way a client that does not read is disconnected once `highWaterMark`
 * bytes wait for it behind the write in flight (see `broadcast.ts`): nobody waits for it, and
 * what is queued for it stays under the mark plus two messages. A message is what one read of
 * a sender brings: at most 256 KiB in broker mode, and in chat mode the lines it completes,
 * prefixed and escaped (text grows by its prefixes; control bytes by up to 4 times).
 * @module
 */
import { formatAddr } from "../address.ts";
import { escapeBytes } from "../escape.ts";
import { BROADCAST_HIGH_WATER_MARK, Broadcaster } from "./broadcast.ts";
import { LineSplitter } from "./lines.ts";
import type { CloseReason, Decision, MuxControl } from "./types.ts";
import { type MuxServer, serveMux, type ServeMuxOptions } from "./serve.ts";
import type { ConnView } from "./state.ts";

export { BROADCAST_HIGH_WATER_MARK } from "./broadcast.ts";

/** `broker`: bytes as they are; `chat`: lines with their sender's name. */
export type ChatMode = "broker" | "chat";

/** The default longest line in chat mode, in bytes. */
export const DEFAULT_MAX_LINE = 4096;

/** What happens in the room, for logging. Byte views are valid only during the call. */
export type ChatEvent =
  /** A client came in as `user`. */
  | { type: "join"; conn: ConnView; user: string }
  /** A client sent a line (chat) or bytes (broker) that `receivers` clients were sent. In chat
   * mode `bytes` is the line without its newline; `cut` says it was longer than `maxLine`. */
  | {
    type: "message";
    conn: ConnView;
    user: string;
    bytes: Uint8Array;
    receivers: number;
    cut: boolean;
  }
  /** A client was disconnected for having `queued` bytes queued (the slow-reader policy). */
  | { type: "drop"; conn: ConnView; user: string; queued: number }
  /** A client left; `dropped` when the slow-reader policy closed it, `error` when it failed. */
  | {
    type: "leave";
    conn: ConnView;
    user: string;
    reason: CloseReason | "dropped";
    error?: unknown;
  };

/** Options for {@linkcode chatRoom}. */
export interface ChatOptions {
  /** How clients talk. @default {"broker"} */
  mode?: ChatMode;
  /** Disconnect a client that already has this many bytes waiting.
   * @default {BROADCAST_HIGH_WATER_MARK} */
  highWaterMark?: number;
  /** Chat mode: cut lines longer than this many bytes. @default {DEFAULT_MAX_LINE} */
  maxLine?: number;
  /** Hears every {@linkcode ChatEvent}. */
  onChatEvent?: (event: ChatEvent) => void;
  /** Hears every chunk a client sends, as it arrives, for a hex dump (`bytes` is valid only
   * during the call; `conn.bytesIn - bytes.length` is its offset in the client's stream). */
  onReceived?: (conn: ConnView, user: string, bytes: Uint8Array) => void;
}

/** What the room knows about one client. */
interface Member {
  user: string;
  lines: LineSplitter | undefined;
  /** Lines completed by the bytes being handled, sent on together (one write, not one each). */
  said: { line: Uint8Array; cut: boolean }[];
}

const encoder = new TextEncoder();

/** The name a client goes by: ncat's `user<N>`, N the connection's number. */
export function userName(conn: ConnView): string {
  return `user${conn.id}`;
}

/**
 * The broker or chat decision. One instance serves one multiplexer.
 *
 * @example Two chat clients
 * ```ts
 * import { chatRoom } from "./chat.ts";
 * import { Multiplexer } from "./multiplexer.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const mux = new Multiplexer(chatRoom({ mode: "chat" }));
 * const finished = mux.run(listener);
 * const port = listener.addr.port;
 * const alice = await Deno.connect({ hostname: "127.0.0.1", port });
 * const bob = await Deno.connect({ hostname: "127.0.0.1", port });
 * await bob.write(new TextEncoder().encode("hi\n"));
 * // Alice hears her own arrival, who was there (nobody), Bob's arrival, then his line.
 * let heard = "";
 * const buffer = new Uint8Array(1024);
 * while (!heard.endsWith("<user2> hi\n")) {
 *   const n = await alice.read(buffer);
 *   if (n === null) throw new Error(heard);
 *   heard += new TextDecoder().decode(buffer.subarray(0, n));
 * }
 * alice.close();
 * bob.close();
 * mux.stop();
 * await finished;
 * ```
 */
export function chatRoom(options: ChatOptions = {}): Decision {
  return new ChatRoom(options);
}

class ChatRoom implements Decision {
  readonly #mode: ChatMode;
  readonly #maxLine: number;
  readonly #onChatEvent: ChatOptions["onChatEvent"];
  readonly #onReceived: ChatOptions["onReceived"];
  readonly #members = new WeakMap<ConnView, Member>();
  readonly #broadcaster: Broadcaster;

  constructor(options: ChatOptions) {
    this.#mode = options.mode ?? "broker";
    this.#maxLine = options.maxLine ?? DEFAULT_MAX_LINE;
    if (!(this.#maxLine >= 1)) {
      throw new RangeError(`Cannot use maxLine "${this.#maxLine}": must be at least 1`);
    }
    this.#onChatEvent = options.onChatEvent;
    this.#onReceived = options.onReceived;
    this.#broadcaster = new Broadcaster({
      highWaterMark: options.highWaterMark,
      onDrop: (_mux, conn, queued) => {
        const member = this.#members.get(conn);
        if (member) this.#onChatEvent?.({ type: "drop", conn, user: member.user, queued });
      },
    });
  }

  onOpen(mux: MuxControl, conn: ConnView): void {
    const user = userName(conn);
    const member: Member = { user, lines: undefined, said: [] };
    if (this.#mode === "chat") {
      member.lines = new LineSplitter(
        this.#maxLine,
        (line, cut) => member.said.push({ line, cut }),
      );
    }
    this.#members.set(conn, member);
    this.#onChatEvent?.({ type: "join", conn, user });
    if (this.#mode !== "chat") return;
    // ncat's words: everyone (the newcomer too) hears who came, and the newcomer who is there.
    this.#announce(mux, `${formatAddr(conn.peer)} is connected as <${user}>.`);
    const others = [...mux.connections()].filter((other) => other !== conn && !other.closed);
    const list = others.map((other) => `${formatAddr(other.peer)} as <${userName(other)}>`);
    this.#broadcaster.sendTo(
      mux,
      conn,
      encoder.encode(`<announce> already connected: ${list.join(", ") || "nobody"}.\n`),
    );
  }

  onData(mux: MuxControl, conn: ConnView, bytes: Uint8Array): void {
    const member = this.#members.get(conn);
    if (member === undefined) return;
    this.#onReceived?.(conn, member.user, bytes);
    if (member.lines) {
      member.lines.push(bytes);
      return this.#deliver(mux, conn, member);
    }
    const receivers = this.#broadcaster.send(mux, bytes, { except: conn });
    this.#onChatEvent?.({ type: "message", conn, user: member.user, bytes, receivers, cut: false });
  }

  onEnd(mux: MuxControl, conn: ConnView): void {
    // A line the client did not end still counts; then it goes, as with ncat.
    const member = this.#members.get(conn);
    if (member?.lines) {
      member.lines.flush();
      this.#deliver(mux, conn, member);
    }
    mux.end(conn);
  }

  onClose(mux: MuxControl, conn: ConnView, reason: CloseReason, error?: unknown): void {
    const member = this.#members.get(conn);
    if (member === undefined) return;
    const queued = this.#broadcaster.droppedWith(conn);
    this.#onChatEvent?.({
      type: "leave",
      conn,
      user: member.user,
      reason: queued === undefined ? reason : "dropped",
      ...(error !== undefined && { error }),
    });
    // A stopping server is shutting every connection down: nothing more goes out.
    if (mux.stopping && mux.stats.open === 0) this.#broadcaster.cancel();
    if (this.#mode !== "chat" || mux.stopping) return;
    const why = queued === undefined ? "" : ` (too slow: ${queued} bytes were queued for it)`;
    this.#announce(mux, `<${member.user}> is disconnected${why}.`);
  }

  /** Sends the lines just completed to everyone else, in one piece, and tells their sender
   * about a cut. Line views are valid until the bytes being handled are. */
  #deliver(mux: MuxControl, conn: ConnView, member: Member): void {
    const { user, said } = member;
    if (said.length === 0) return;
    let text = "";
    for (const { line, cut } of said) {
      text += `<${user}> ${escapeBytes(line)}${cut ? ` [cut at ${this.#maxLine} bytes]` : ""}\n`;
    }
    const receivers = this.#broadcaster.send(mux, encoder.encode(text), { except: conn });
    for (const { line, cut } of said) {
      this.#onChatEvent?.({ type: "message", conn, user, bytes: line, receivers, cut });
    }
    if (said.some(({ cut }) => cut)) {
      const notice = `<announce> your line was cut at ${this.#maxLine} bytes.\n`;
      this.#broadcaster.sendTo(mux, conn, encoder.encode(notice));
    }
    member.said = [];
  }

  #announce(mux: MuxControl, text: string): void {
    this.#broadcaster.send(mux, encoder.encode(`<announce> ${text}\n`));
  }
}

/** Options for {@linkcode serveChat}: where to listen, the room, the limits. */
export interface ServeChatOptions extends ServeMuxOptions, ChatOptions {}

/**
 * Starts a broker or chat server (127.0.0.1 and a free port unless told otherwise). The same
 * `highWaterMark` stops reading a client whose own queue is full and drops it when more comes.
 *
 * @example A broker on a free port
 * ```ts
 * import { serveChat } from "./chat.ts";
 * const server = await serveChat({ port: 0, mode: "broker" });
 * server.close();
 * await server.finished;
 * ```
 */
export function serveChat(options: ServeChatOptions = {}): Promise<MuxServer> {
  const highWaterMark = options.highWaterMark ?? BROADCAST_HIGH_WATER_MARK;
  return serveMux(chatRoom({ ...options, highWaterMark }), { ...options, highWaterMark });
}
