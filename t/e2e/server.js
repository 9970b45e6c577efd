// A Socket.IO 4 backend for the end-to-end test and the demo.
//
//   node server.js ID PORT [ROUTE]
//
// Listens on 127.0.0.1:PORT. With ROUTE, every Engine.IO session id this backend issues is
// "ROUTE-<random>" (a route label for `socketio_sticky route=REGEX`, as t/e2e/fleet uses it);
// without it, ids are engine.io's own. Socket.IO lives under /socket.io/; every other path answers
// GET /stats with this backend's counters as JSON (used by t/e2e/run, not through nginx).
// The event `whoami` is acknowledged with { backend, socketId, engineId, transport }.
// Engine.IO rejections (e.g. 400 "Session ID unknown" for a sid this process never issued)
// are counted by message and the last few are kept with their request line.
"use strict";
const crypto = require("crypto");
const http = require("http");
const { Server } = require("socket.io");

const [id, port, route] = process.argv.slice(2);
if (!id || !port) {
  console.error("usage: node server.js ID PORT [ROUTE]");
  process.exit(2);
}

const stats = {
  backend: id,
  pid: process.pid,
  handshakes: 0, // Engine.IO sessions created here (one per Socket.IO session)
  connections: 0, // Socket.IO sockets connected here
  whoami: 0,
  upgrades: 0, // polling sessions upgraded to websocket here
  rejected: {}, // Engine.IO connection_error message -> count
  rejectedTotal: 0,
  rejectedSamples: [], // the last few rejections: { n, text: "METHOD url -> code message" }
};

const httpServer = http.createServer((req, res) => {
  if (req.url === "/stats") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(stats) + "\n");
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

const io = new Server(httpServer, { cors: { origin: "*" } });
if (route) {
  // 15 random bytes in base64url: as long and as random as engine.io's default ids.
  io.engine.generateId = () => `${route}-${crypto.randomBytes(15).toString("base64url")}`;
}

// One line per Engine.IO session on stdout (the backend's log), so that a request nginx sent
// here with a sid can be matched with the backend that issued that sid.
io.engine.on("connection", (conn) => {
  stats.handshakes++;
  console.log(`open ${conn.id} ${conn.transport.name}`);
  conn.on("upgrade", () => stats.upgrades++);
  conn.on("close", (reason) => console.log(`close ${conn.id} ${reason}`));
});
io.engine.on("connection_error", (err) => {
  const msg = `${err.code} ${err.message}`;
  stats.rejected[msg] = (stats.rejected[msg] || 0) + 1;
  stats.rejectedTotal++;
  const q = err.req ? `${err.req.method} ${err.req.url}` : "?";
  stats.rejectedSamples.push({ n: stats.rejectedTotal, text: `${q} -> ${msg}` });
  if (stats.rejectedSamples.length > 5) stats.rejectedSamples.shift();
});

io.on("connection", (socket) => {
  stats.connections++;
  socket.on("whoami", (ack) => {
    stats.whoami++;
    if (typeof ack !== "function") return;
    ack({
      backend: id,
      socketId: socket.id,
      engineId: socket.conn.id,
      transport: socket.conn.transport.name,
    });
  });
});

httpServer.listen(Number(port), "127.0.0.1", () => {
  console.log(`backend ${id} listening on 127.0.0.1:${port} (pid ${process.pid})${route ? `, session ids "${route}-..."` : ""}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
