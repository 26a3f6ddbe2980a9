/**
 * What a decision and a server see of the multiplexer: the {@linkcode Decision} hooks, the
 * {@linkcode MuxControl} they act through (a connection is a read-only `ConnView`; only the
 * multiplexer changes its state), the events a server logs, its counters and its options.
 * @module
 */
import type { AcceptErrorReport } from "../net/accept.ts";
import type { ConnView } from "./state.ts";

/**
 * What a decision may do: act on connections through the multiplexer, never on their state.
 */
export interface MuxControl {
  /** Live counters. */
  readonly stats: Readonly<MuxStats>;
  /** Whether a stop has begun: a decision starts nothing new (no greeting, no upstream). */
  readonly stopping: boolean;
  /** The open connections. */
  connections(): IterableIterator<ConnView>;
  /** Queues `bytes` to be written to `conn` (no copy when nothing waits and the bytes are a view
   * of the read buffer being handled). */
  send(conn: ConnView, bytes: Uint8Array): void;
  /** Writes what is queued for `conn`, then closes it. */
  end(conn: ConnView): void;
  /** Writes what is queued for `conn`, then shuts down its sending side (a half-close passed
   * on); it closes once its peer has ended too. */
  shutdown(conn: ConnView): void;
  /** Closes `conn` now; what is queued for it is dropped. */
  close(conn: ConnView): void;
  /** Stops reading `conn` until `resume`. */
  pause(conn: ConnView): void;
  /** Reads `conn` again after `pause`. */
  resume(conn: ConnView): void;
  /** `from` is not read while `to`'s queue is over the high-water mark (a relay pipes both
   * ways). */
  pipe(from: ConnView, to: ConnView): void;
  /** Adds a connection this process opened (a relay's upstream) to the map. */
  add(conn: Deno.Conn): ConnView;
}

/**
 * What a server does with its connections. Only `onData` is required; the multiplexer calls the
 * hooks from its loop, and a hook acts through the multiplexer (`send`, `end`, `shutdown`,
 * `close`, `pause`, `resume`, `pipe`).
 */
export interface Decision {
  /** A connection was accepted (or added). */
  onOpen?(mux: MuxControl, conn: ConnView): void;
  /**
   * `conn` sent `bytes`: a view of its read buffer, valid only during the call (`send` copies
   * it only when it has to wait). The high-water mark pauses reading a connection while the
   * queue its bytes go to is full; a decision that sends to other connections (a chat) should
   * watch their `queued` and drop or close the slow ones.
   */
  onData(mux: MuxControl, conn: ConnView, bytes: Uint8Array): void;
  /** The peer ended its sending side. Without this hook: `mux.end(conn)` (write what is queued,
   * then close), as an echo server does after a half-close. */
  onEnd?(mux: MuxControl, conn: ConnView): void;
  /** Whether a new client may come in now, for a decision that keeps its own limit (a relay
   * counts pairs); with TLS, clients wait in the kernel's backlog while it says no. */
  hasRoom?(mux: MuxControl): boolean;
  /** The connection was closed, for `reason` (and with `error` when it failed). */
  onClose?(mux: MuxControl, conn: ConnView, reason: CloseReason, error?: unknown): void;
}

/** `onData` alone, for the simple decisions: `(mux, conn, bytes) => mux.send(conn, bytes)`. */
export type DataDecision = Decision["onData"];

/** Why a connection was closed. */
export type CloseReason = "eof" | "idle" | "error" | "stop" | "closed";

/** What the server reports to `onEvent`, for logging. Byte views are valid only during the call. */
export type ServerEvent =
  | { type: "connection"; peer: Deno.Addr }
  | { type: "refused"; peer: Deno.Addr }
  /** `offset`: how many bytes this connection sent before these (a hex dump's first offset). */
  | { type: "received"; peer: Deno.Addr; bytes: Uint8Array; offset: number }
  | { type: "sending"; peer: Deno.Addr; bytes: Uint8Array }
  | { type: "closing"; peer: Deno.Addr; reason: CloseReason; error?: unknown; dropped?: number };

/** Live counters of a running server. */
export interface MuxStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted and served since the start. */
  total: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Connections closed for moving no byte for `idleTimeout`. */
  timedOut: number;
  /** Connections ended by an error (reset, broken pipe, TLS, a handshake deadline, ...). */
  failed: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes written. */
  bytesOut: number;
  /** Bytes received and not yet written, over all connections. */
  queued: number;
  /** Bytes a stop could not deliver: read after it began (and discarded), or still queued when
   * its grace period ended. */
  dropped: number;
}

/** Limits and hooks of a multiplexer. */
export interface MultiplexerOptions {
  /** Connections served at once (TLS connections parked mid-handshake count too); more are
   * closed as soon as they are accepted. @default {10000} */
  maxConnections?: number;
  /** Close a connection that moved no byte for this many milliseconds. @default {Infinity} */
  idleTimeout?: number;
  /** Stop reading a connection while this many bytes wait in the queue its bytes go to.
   * @default {65536} */
  highWaterMark?: number;
  /** After a stop, how long queued bytes may take to go out before closing. @default {5000} */
  graceTimeout?: number;
  /** Close a TLS connection whose handshake has not finished after this many milliseconds.
   * @default {10000} */
  handshakeTimeout?: number;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
  /** Called for every {@linkcode ServerEvent}; nothing is built for it when unset. */
  onEvent?: (event: ServerEvent) => void;
  /** Hears about accept errors (a connection skipped, or descriptors running out), at most once
   * a second per kind; accepting always goes on. */
  onAcceptError?: (report: AcceptErrorReport) => void;
  /** How long the loop may run before it pauses for one timer turn, so that no connection waits
   * on the others (see lib/turn_pacer.ts); `Infinity` never pauses. @default {2} */
  turnBudgetMs?: number;
}

/** What the multiplexer accepts from: a `ServerListener` of lib/net, or a `Deno.Listener`. */
export interface Acceptor {
  /** The next connection. */
  accept(): Promise<Deno.Conn>;
  /** Stops accepting. */
  close(): void;
  /** Whether connections speak TLS (a `ServerListener` says); the limit is then kept before
   * the accept. */
  readonly tls?: boolean;
}
