// A plain TCP round-robin forwarder: the L4 load balancer in front of the nginx nodes of
// t/e2e/fleet.
//
//   node forwarder.js LISTEN_PORT TARGET_PORT1,TARGET_PORT2,... [STATS_FILE]
//   node forwarder.js LISTEN_PORT @TARGETS_FILE [STATS_FILE]
//
// Listens on 127.0.0.1:LISTEN_PORT; every new client connection goes to the next target
// (127.0.0.1:TARGET_PORT) in turn, and bytes are piped both ways, half-closes included. It
// knows nothing of HTTP: a client that sends several requests on one connection stays on one
// target.
//
// With @TARGETS_FILE the ports are read from that file (the same comma-separated list), and
// read again on SIGHUP: new connections then go round the new list (a node taken in or out of
// the rotation, as an operator does with LVS), while open ones stay where they are. "targets"
// in the counters lists every port ever in the rotation, in order of appearance, and "active"
// the current rotation.
//
// The counters (connections per target, failed connects, resets) are written as JSON to
// STATS_FILE when it starts, on SIGUSR2 and when it stops (SIGTERM, SIGINT). Each write has a
// new "seq", so that whoever sent SIGUSR2 can tell when the answer is there; the file is
// replaced whole (rename), never seen half written. Without STATS_FILE they go to stdout.
"use strict";
const fs = require("fs");
const net = require("net");

const [listenPort, targetArg, statsFile] = process.argv.slice(2);
if (!listenPort || !targetArg) {
  console.error("usage: node forwarder.js LISTEN_PORT TARGET_PORT1,TARGET_PORT2,...|@FILE [STATS_FILE]");
  process.exit(2);
}
const targetsFile = targetArg.startsWith("@") ? targetArg.slice(1) : null;
// The rotation: from the argument, or from the file (null when the file's list is bad).
function readTargets() {
  const list = (targetsFile ? fs.readFileSync(targetsFile, "utf8") : targetArg).trim();
  const ports = list.split(",").map(Number);
  if (ports.some((p) => !Number.isInteger(p) || p <= 0 || p > 65535)) {
    console.error(`forwarder: bad target ports "${list}"`);
    return null;
  }
  return ports;
}
const targets = readTargets();
if (!targets) process.exit(2);

const stats = {
  pid: process.pid,
  seq: 0,
  listen: Number(listenPort),
  targets: [...targets], // every port ever in the rotation
  active: targets, // the rotation now
  connections: targets.map(() => 0), // client connections handed to each target
  open: 0, // client connections not closed yet
  connectErrors: targets.map(() => 0), // connects to a target that failed
  errors: {}, // socket error code -> count (ECONNRESET and the like, on either side)
};
let next = 0;

function dump() {
  stats.seq++;
  const text = JSON.stringify(stats) + "\n";
  if (!statsFile) {
    process.stdout.write(text);
    return;
  }
  const tmp = `${statsFile}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, statsFile);
}

const countError = (err) => {
  const code = err.code || err.message;
  stats.errors[code] = (stats.errors[code] || 0) + 1;
};

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const port = stats.active[next % stats.active.length];
  next = (next + 1) % stats.active.length;
  const i = stats.targets.indexOf(port);
  stats.connections[i]++;
  stats.open++;
  const upstream = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true });
  let connected = false;
  upstream.once("connect", () => (connected = true));

  // Bytes both ways; the end of one direction (a FIN) is passed on as a half-close, and the
  // other direction goes on until its own end.
  client.pipe(upstream);
  upstream.pipe(client);

  // An error (a reset, a refused connect) on either side ends both at once.
  const abort = (side) => (err) => {
    if (side === "upstream" && !connected) stats.connectErrors[i]++;
    countError(err);
    client.destroy();
    upstream.destroy();
  };
  client.on("error", abort("client"));
  upstream.on("error", abort("upstream"));

  // A side that is closed for good (both directions) takes the other with it, after it has
  // had the chance to pass on what it still had to write.
  client.on("close", () => {
    stats.open--;
    if (!upstream.destroyed) upstream.end();
  });
  upstream.on("close", () => {
    if (!client.destroyed) client.end();
  });
  // Whatever stays half open longer than any Engine.IO long poll is dropped.
  client.setTimeout(120000, () => {
    client.destroy();
    upstream.destroy();
  });
});

server.on("error", (err) => {
  console.error(`forwarder: ${err.message}`);
  process.exit(1);
});

server.listen(Number(listenPort), "127.0.0.1", () => {
  console.log(`forwarder on 127.0.0.1:${listenPort} -> ${targets.map((p) => `127.0.0.1:${p}`).join(", ")} (pid ${process.pid})`);
  dump();
});

process.on("SIGUSR2", dump);
// A new rotation from the targets file (ignored without one, or when the file is bad).
process.on("SIGHUP", () => {
  if (!targetsFile) return;
  let ports;
  try {
    ports = readTargets();
  } catch (e) {
    console.error(`forwarder: ${e.message}`);
  }
  if (!ports) return;
  for (const p of ports) {
    if (stats.targets.includes(p)) continue;
    stats.targets.push(p);
    stats.connections.push(0);
    stats.connectErrors.push(0);
  }
  stats.active = ports;
  next = 0;
  console.log(`forwarder: rotation now ${ports.map((p) => `127.0.0.1:${p}`).join(", ")}`);
  dump();
});
const stop = () => {
  dump();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
