/**
 * Benchmark fixture, not a user script: Node's `net` echo server, `socket.pipe(socket)`.
 *
 *   node scripts/bench/node_net_server.mjs --port 0
 *
 * Prints `Listening on <addr>` to stderr and stops on SIGINT/SIGTERM.
 * @module
 */
import net from "node:net";
import process from "node:process";

function flag(name, fallback) {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : process.argv[at + 1];
}

const host = flag("--host", "127.0.0.1").replace(/^\[(.*)\]$/, "$1");
const port = Number(flag("--port", "0"));
const sockets = new Set();
const server = net.createServer((socket) => {
  sockets.add(socket);
  // A reset client ends its own socket only.
  socket.on("error", () => socket.destroy());
  socket.on("close", () => sockets.delete(socket));
  socket.pipe(socket);
});
server.listen({ host, port }, () => {
  const { address, port } = server.address();
  const shown = address.includes(":") ? `[${address}]` : address;
  process.stderr.write(`Listening on ${shown}:${port}\n`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    for (const socket of sockets) socket.destroy();
    process.exitCode = 0;
  });
}
