// socket.io 4 (Node): session ids that carry this process's route label, for
// nginx-conf/fleet-route.conf:
//     socketio_sticky route=^(b[0-9]+)-;
//     socketio_sticky_route b1 10.0.0.1:3000;   (and one line per process)
//
// Start every process with its own label, e.g. ROUTE_LABEL=b1 node app.js
"use strict";
const crypto = require("crypto");
const { Server } = require("socket.io");

const ROUTE_LABEL = process.env.ROUTE_LABEL || "b1";
const io = new Server(3000, { cors: { origin: "*" } });

// "b1-" followed by a random id like engine.io's own (15 random bytes, base64url).
io.engine.generateId = () => `${ROUTE_LABEL}-${crypto.randomBytes(15).toString("base64url")}`;

io.on("connection", (socket) => {
  socket.emit("hello", { sid: socket.conn.id });
});
