/**
 * Replies of a datagram echo server, one per datagram, each to its own sender (ncat's UDP listen
 * mode answers only its first peer). A reply never holds up the receiving loop, and what waits
 * to be sent is bounded; a reply over the bound, to a peer that cannot be answered, or without
 * the permission to reach the peer is counted as failed, never fatal.
 *
 * UDP replies go from the receiving socket itself, in the background (a UDP send does not wait
 * on the peer). Unix replies cannot: Deno refuses to send on a Unix datagram socket while a
 * receive is pending on it (`Busy`), and a send to a peer whose queue is full waits until that
 * peer reads, possibly for ever. So they go from separate unnamed sockets, one per peer and in
 * order; once a send has waited {@linkcode UNIX_REPLY_WAIT_MS}, it and that peer's later
 * replies count as failed until the peer reads or goes away. (Deno cannot cancel that send, and
 * in Deno 2.9 it keeps a core half busy meanwhile. A Unix client that `connect()`ed to the
 * server accepts datagrams only from the server's own socket, so it gets no reply.)
 * @module
 */
import { escapeText } from "../escape.ts";
import { closeQuietly } from "../io.ts";
import { isGranted, netFlag, netHost } from "../permissions.ts";
import { type BoundDatagram, openUnnamedUnix } from "./socket.ts";

/** Replies waiting to be sent, in all (over Unix, also the most peers waited on at once). */
export const MAX_REPLIES_WAITING = 256;
/** Replies waiting to be sent to one peer. */
export const MAX_REPLIES_PER_PEER = 16;
/** Bytes of replies waiting to be sent, in all. */
export const MAX_REPLY_BYTES_WAITING = 4 * 1024 * 1024;
/** How long a Unix reply may wait for its peer to make room. */
export const UNIX_REPLY_WAIT_MS = 1000;
/** Peers remembered as reachable, so a busy peer costs no permission query per datagram. */
const GRANTED_PEERS_MAX = 1024;

/** The counters {@linkcode EchoReplies} keeps. */
export interface EchoCounts {
  /** Replies sent. */
  echoed: number;
  /** Replies not sent. */
  echoFailed: number;
}

interface Reply {
  data: Uint8Array;
  peer: Deno.Addr;
  key: string;
}

/** The replies to one Unix peer, in order; `stuck` once a send to it waited too long. */
interface Lane {
  queue: Reply[];
  stuck: boolean;
}

/** Whether `promise` settled within `ms`, and how. */
async function settleWithin(
  promise: Promise<unknown>,
  ms: number,
): Promise<"done" | "failed" | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(resolve, ms, "timeout"));
  try {
    return await Promise.race([
      promise.then(() => "done" as const, () => "failed" as const),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends each datagram back to its sender, in the background and within bounds.
 *
 * @example Answering one datagram
 * ```ts
 * import { EchoReplies } from "./echo.ts";
 * import { bindDatagram } from "./socket.ts";
 * using server = await bindDatagram({ hostname: "127.0.0.1", port: 0 });
 * using client = await bindDatagram({ hostname: "127.0.0.1", port: 0 });
 * const counts = { echoed: 0, echoFailed: 0 };
 * const replies = new EchoReplies(server, counts);
 * replies.send(new TextEncoder().encode("ping"), client.addr);
 * const [reply] = await client.conn.receive();
 * await replies.settled();
 * if (new TextDecoder().decode(reply) !== "ping" || counts.echoed !== 1) throw new Error();
 * ```
 */
export class EchoReplies {
  #socket: BoundDatagram;
  // The socket's own name: a reply there would loop.
  #selfKey: string | undefined;
  #counts: EchoCounts;
  #onNotice: ((text: string) => void) | undefined;
  #pending = new Set<Promise<void>>();
  #perPeer = new Map<string, number>();
  #waiting = 0;
  #bytes = 0;
  #noticed = false;
  #granted = new Set<string>();
  // Unix only: per peer, the replies in order and the socket they go from, so that a peer that
  // does not read holds up only its own replies.
  #lanes = new Map<string, Lane>();
  #closing = false;

  /**
   * Replies go from (or, over Unix, beside) `socket`; `counts` is updated in place; `onNotice`
   * hears once when a reply needs a permission that is missing.
   */
  constructor(socket: BoundDatagram, counts: EchoCounts, onNotice?: (text: string) => void) {
    this.#socket = socket;
    this.#selfKey = netHost(socket.addr);
    this.#counts = counts;
    this.#onNotice = onNotice;
  }

  /** Starts sending a copy of `data` to `peer`, or counts it as failed. */
  send(data: Uint8Array, peer: Deno.Addr): void {
    const key = netHost(peer);
    const waiting = key === undefined ? 0 : this.#perPeer.get(key) ?? 0;
    if (
      // An unnamed Unix socket cannot be answered; the socket's own address would loop.
      key === undefined || key === this.#selfKey || this.#closing ||
      this.#waiting >= MAX_REPLIES_WAITING || waiting >= MAX_REPLIES_PER_PEER ||
      this.#bytes + data.length > MAX_REPLY_BYTES_WAITING || !this.#mayReach(key, peer)
    ) {
      this.#counts.echoFailed++;
      return;
    }
    // A copy: the receiving loop reuses its buffer before this reply may have been sent.
    const reply = { data: data.slice(), peer, key };
    this.#perPeer.set(key, waiting + 1);
    this.#waiting++;
    this.#bytes += reply.data.length;
    if (!("path" in peer)) {
      const sent = this.#socket.conn.send(reply.data, peer);
      this.#track(sent.then(() => this.#done(reply, true), () => this.#done(reply, false)));
      return;
    }
    const lane = this.#lanes.get(key);
    if (lane?.stuck) return this.#done(reply, false);
    if (lane) return void lane.queue.push(reply);
    const fresh = { queue: [reply], stuck: false };
    this.#lanes.set(key, fresh);
    this.#track(this.#sendLane(key, fresh));
  }

  /**
   * Resolves once every reply started has been sent or has failed, giving Unix replies
   * {@linkcode UNIX_REPLY_WAIT_MS} in all before the rest count as failed. Close the receiving
   * socket first.
   */
  async settled(): Promise<void> {
    let giveUp: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      giveUp = setTimeout(() => {
        this.#closing = true;
        resolve();
      }, UNIX_REPLY_WAIT_MS);
    });
    try {
      while (this.#pending.size > 0 && !this.#closing) {
        await Promise.race([Promise.allSettled([...this.#pending]), late]);
      }
    } finally {
      clearTimeout(giveUp);
      this.#closing = true;
    }
  }

  #track(sending: Promise<void>): void {
    this.#pending.add(sending);
    sending.finally(() => this.#pending.delete(sending));
  }

  async #sendLane(key: string, lane: Lane): Promise<void> {
    const sender = openUnnamedUnix();
    try {
      for (let reply = lane.queue.shift(); reply; reply = lane.queue.shift()) {
        if (this.#closing) {
          this.#done(reply, false);
          continue;
        }
        const sending = sender.send(reply.data, reply.peer);
        const outcome = await settleWithin(sending, UNIX_REPLY_WAIT_MS);
        if (outcome !== "timeout") {
          this.#done(reply, outcome === "done");
          continue;
        }
        // The peer does not read. Deno cannot cancel the send (closing its socket does not), so
        // this peer's replies fail at once until it reads or goes away and the send ends.
        lane.stuck = true;
        for (const failed of [reply, ...lane.queue.splice(0)]) this.#done(failed, false);
        await sending.catch(() => {});
      }
    } finally {
      closeQuietly(sender);
      this.#lanes.delete(key);
    }
  }

  #done(reply: Reply, sent: boolean): void {
    if (sent) this.#counts.echoed++;
    else this.#counts.echoFailed++;
    this.#waiting--;
    this.#bytes -= reply.data.length;
    const left = (this.#perPeer.get(reply.key) ?? 1) - 1;
    if (left === 0) this.#perPeer.delete(reply.key);
    else this.#perPeer.set(reply.key, left);
  }

  #mayReach(key: string, peer: Deno.Addr): boolean {
    if (this.#granted.has(key)) return true;
    let granted: boolean;
    try {
      granted = isGranted({ name: "net", host: key });
    } catch {
      // Deno cannot even name it (an abstract Unix address): it cannot send there either.
      return false;
    }
    if (granted) {
      // Nothing here revokes a permission, so a grant stays true; many peers start afresh.
      if (this.#granted.size >= GRANTED_PEERS_MAX) this.#granted.clear();
      this.#granted.add(key);
      return true;
    }
    if (!this.#noticed) {
      this.#noticed = true;
      // A UDP peer's port changes from sender to sender: name the host alone.
      const flag = "hostname" in peer ? netFlag(peer.hostname, 0) : `--allow-net=${key}`;
      this.#onNotice?.(`cannot reply to ${escapeText(key)}: run again with ${escapeText(flag)}`);
    }
    return false;
  }
}
