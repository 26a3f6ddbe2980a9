/**
 * The multiplexed echo server and the parts it is made of, for reuse with another decision
 * (what to do with the bytes a connection sends).
 *
 * @example
 * ```ts
 * import { serveEcho } from "./mod.ts";
 * const server = serveEcho({ port: 0 });
 * server.close();
 * await server.finished;
 * ```
 * @module
 */
export { echo, type EchoServer, serveEcho, type ServeEchoOptions } from "./serve_echo.ts";
export {
  type CloseReason,
  type Decision,
  Multiplexer,
  type MultiplexerOptions,
  type MuxStats,
  type ServerEvent,
} from "./multiplexer.ts";
export { EventSource, type MuxEvent } from "./events.ts";
export { EventQueue } from "./event_queue.ts";
export { ConnState, MAX_READ_SIZE, MIN_READ_SIZE } from "./state.ts";
