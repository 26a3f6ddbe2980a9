/**
 * The multiplexer: one loop for every connection of a server — the readiness map, the event
 * source and a {@linkcode Decision} about received bytes — and the servers built on it. What is
 * exported here is the public surface; the event queue, the per-connection state and the buffer
 * sizes are the engine's own.
 *
 * @example
 * ```ts
 * import { serveEcho } from "./mod.ts";
 * const server = await serveEcho({ port: 0 });
 * server.close();
 * await server.finished;
 * ```
 * @module
 */
export { Broadcaster, type BroadcasterOptions } from "./broadcast.ts";
export {
  type ChatEvent,
  type ChatMode,
  type ChatOptions,
  chatRoom,
  serveChat,
  type ServeChatOptions,
  userName,
} from "./chat.ts";
export { echo, serveEcho, type ServeEchoOptions } from "./echo.ts";
export { LineSplitter } from "./lines.ts";
export {
  Relay,
  type RelayData,
  type RelayEvent,
  type RelayOptions,
  type RelayServer,
  type RelayStats,
  serveRelay,
  type ServeRelayOptions,
} from "./relay.ts";
export { type MuxServer, serveMux, type ServeMuxOptions } from "./serve.ts";
export { Multiplexer } from "./multiplexer.ts";
export type {
  Acceptor,
  CloseReason,
  DataDecision,
  Decision,
  MultiplexerOptions,
  MuxControl,
  MuxStats,
  ServerEvent,
} from "./types.ts";
export type { ConnView } from "./state.ts";
