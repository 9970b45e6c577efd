// The driver of t/e2e/fleet: Socket.IO 4 sessions through a TCP round-robin forwarder
// (forwarder.js) in front of two nginx nodes with identical configurations, so that the
// requests of one session (one TCP connection each, nginx has keepalive_timeout 0) are spread
// over both nodes.
//
//   node fleet.js --url URL --backends URL,URL,... --forwarder-stats FILE
//                 --nodes NAME=PORT,NAME=PORT --access-logs NAME=FILE,NAME=FILE
//                 [--sessions 200] [--concurrency 50]
//
// For each upstream (learn, route, cookie; location /<upstream>/socket.io/) and each transport
// (polling, default = polling upgraded to websocket) it runs --sessions sessions with
// client.js's runSession, prints a table, the failures seen and what the nodes' access logs
// show, and one "check: PASS|FAIL ..." line per check. Exit code 0 iff all passed.
//
// The backends issue session ids "bN-<random>" (server.js ROUTE), so the backend that issued a
// sid can be read from the sid itself. Every request of a session carries
// ?fleet=<upstream>-<transport>&n=<session> (engine.io-client repeats the query on each
// request), which ties the access log lines to their phase and session.
//
// Access log lines (tab separated, see t/e2e/fleet): $msec $request_method $request_uri $status
// $pid $socketio_sticky_status $cookie_srv_route $sent_http_set_cookie $upstream_status
// $upstream_addr $request_time.
"use strict";
const fs = require("fs");
const { runSession, runMany, mainError, backendStats, statsDelta } = require("./client.js");

const UPSTREAMS = ["learn", "route", "cookie"];
const TRANSPORTS = ["polling", "default"];
const COOKIE = "srv_route";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const a = { sessions: 200, concurrency: 50 };
  for (let i = 0; i < argv.length; i += 2) {
    if (!/^--/.test(argv[i]) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ["url", "backends", "forwarder-stats", "nodes", "access-logs"]) {
    if (!a[k]) throw new Error(`--${k} is required`);
  }
  const pairs = (s) => s.split(",").map((x) => {
    const i = x.indexOf("=");
    return [x.slice(0, i), x.slice(i + 1)];
  });
  a.sessions = Number(a.sessions);
  a.concurrency = Number(a.concurrency);
  a.backends = a.backends.split(",");
  a.nodes = pairs(a.nodes).map(([name, port]) => ({ name, port: Number(port) }));
  a.accessLogs = Object.fromEntries(pairs(a["access-logs"]));
  return a;
}

// The forwarder's counters, fresh: SIGUSR2 makes it write them again, with a new seq.
async function forwarderStats(file) {
  const old = JSON.parse(fs.readFileSync(file, "utf8"));
  process.kill(old.pid, "SIGUSR2");
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    await sleep(20);
    let s;
    try {
      s = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      continue;
    }
    if (s.seq > old.seq) return s;
  }
  throw new Error(`the forwarder (pid ${old.pid}) did not answer SIGUSR2 within 5 s`);
}

// Connections per node between two snapshots of the forwarder's counters.
function forwarderDelta(before, after, nodes) {
  return nodes.map(({ port }) => {
    const i = after.targets.indexOf(port);
    return i < 0 ? 0 : after.connections[i] - before.connections[i];
  });
}

function readAccessLog(file) {
  const lines = [];
  for (const text of fs.readFileSync(file, "utf8").split("\n")) {
    if (!text) continue;
    const f = text.split("\t");
    if (f.length < 11) continue;
    const uri = f[2];
    const q = new URLSearchParams(uri.includes("?") ? uri.slice(uri.indexOf("?") + 1) : "");
    const addrs = f[9].split(/[ ,:]+/).filter((x) => /^\d+$/.test(x));
    lines.push({
      msec: Number(f[0]),
      method: f[1],
      uri,
      status: Number(f[3]),
      pid: f[4],
      sticky: f[5],
      cookie: f[6] === "-" ? "" : f[6],
      setCookie: f[7] === "-" ? "" : f[7],
      upstreamStatus: f[8],
      upstreamPort: addrs.length ? Number(addrs[addrs.length - 1]) : 0, // the last one tried
      phase: q.get("fleet") || "",
      session: q.get("n"),
      sid: q.get("sid") || "",
      transport: q.get("transport") || "",
    });
  }
  return lines;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const first = await backendStats(args.backends);
  const ids = Object.keys(first).sort();
  // The port of each backend, from its URL, and the backend of each port.
  const portOf = {};
  const backendAt = {};
  for (const u of args.backends) {
    const s = await backendStats([u]);
    const id = Object.keys(s)[0];
    portOf[id] = Number(new URL(u).port);
    backendAt[portOf[id]] = id;
  }
  const nodeNames = args.nodes.map((n) => n.name);

  const started = Date.now();
  const rows = [];
  for (const upstream of UPSTREAMS) {
    for (const transport of TRANSPORTS) {
      const phase = `${upstream}-${transport}`;
      const before = await backendStats(args.backends);
      const fBefore = await forwarderStats(args["forwarder-stats"]);
      const t0 = Date.now();
      const results = await runMany(args.sessions, args.concurrency, (i) =>
        runSession(args.url, transport, {
          path: `/${upstream}/socket.io/`,
          query: { fleet: phase, n: String(i) },
          // Only the cookie upstream may rely on cookies; the others must work without.
          ...(upstream === "cookie" ? { withCredentials: true } : {}),
          // learn is expected to fail: a session whose websocket probe went to the wrong
          // backend (and goes on polling) need not be waited for as long as the others.
          ...(upstream === "learn" ? { upgradeTimeoutMs: 5000 } : {}),
        }));
      const ms = Date.now() - t0;
      await sleep(300); // let the backends see the last closes
      const delta = statsDelta(before, await backendStats(args.backends));
      const conns = forwarderDelta(fBefore, await forwarderStats(args["forwarder-stats"]), args.nodes);
      rows.push({ upstream, transport, phase, results, ms, delta, conns });
    }
  }
  const tookMs = Date.now() - started;
  const fEnd = await forwarderStats(args["forwarder-stats"]);

  // The table.
  const pad = (s, n) => String(s).padEnd(n);
  const line = (...cols) => console.log(cols.map(([s, n]) => pad(s, n)).join(" ").trimEnd());
  console.log("");
  line(["upstream", 8], ["transport", 9], ["ok", 4], ["failed", 6], ["backends", 8],
    [`ok sessions per backend (${ids.join(" ")})`, 36], [`connections per node (${nodeNames.join(" ")})`, 33], ["time", 6]);
  for (const r of rows) {
    const ok = r.results.filter((x) => x.ok);
    r.ok = ok.length;
    r.failed = r.results.length - ok.length;
    r.per = ids.map((id) => ok.filter((x) => x.backend === id).length);
    r.used = r.per.filter((n) => n > 0).length;
    r.single = r.results.filter((x) => x.backends.length === 1).length;
    r.multi = r.results.filter((x) => x.backends.length > 1).length;
    line([r.upstream, 8], [r.transport, 9], [r.ok, 4], [r.failed, 6], [r.used, 8], [r.per.join(" "), 36],
      [r.conns.join(" "), 33], [`${(r.ms / 1000).toFixed(1)}s`, 6]);
  }

  // What the failures looked like, and what the backends rejected.
  for (const r of rows) {
    const rejected = {};
    const samples = [];
    for (const id of ids) {
      for (const [m, n] of Object.entries(r.delta[id].rejected)) rejected[m] = (rejected[m] || 0) + n;
      for (const s of r.delta[id].samples) samples.push(`${id}: ${s}`);
    }
    r.rejected = rejected;
    r.unknownClient = r.results.filter((x) => !x.ok && x.errors.some((e) => /Session ID unknown/.test(e))).length;
    r.unknownBackend = Object.entries(rejected).filter(([m]) => /Session ID unknown/.test(m)).reduce((s, [, n]) => s + n, 0);
    if (r.failed === 0 && samples.length === 0) continue;
    const counts = new Map();
    for (const x of r.results) {
      if (x.ok) continue;
      const key = mainError(x).replace(/[A-Za-z0-9_-]{20,}/g, "<sid>");
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    console.log(`\n${r.upstream} ${r.transport}: ${r.failed} failed sessions${r.failed ? "; client-side errors:" : ""}`);
    for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`  ${n} x ${k}`);
    console.log(`  backends rejected: ${JSON.stringify(rejected)}`);
    for (const s of samples.slice(0, 3)) console.log(`    ${s}`);
  }

  // What the nodes' access logs say, per phase and node. A session's handshake (its only
  // request without a sid) was answered by one node, which learned the sid from it: there the
  // learned sid may route the session's later requests (it comes before the cookie in the
  // module's precedence); on the other node only the route label or the cookie can.
  const logs = {};
  for (const name of nodeNames) logs[name] = readAccessLog(args.accessLogs[name]);
  console.log("");
  console.log("access logs, requests with a sid: $socketio_sticky_status counts on the node that answered the session's handshake / on the other node;");
  console.log("misrouted = sent to another backend than the one that issued the sid:");
  const label = (l) => (/^(b[0-9]+)-/.exec(l.sid) || [])[1];
  for (const r of rows) {
    const handshakeNode = new Map(); // session n -> the node that answered its handshake
    for (const name of nodeNames) {
      for (const l of logs[name]) if (l.phase === r.phase && !l.sid) handshakeNode.set(l.session, name);
    }
    r.log = {};
    for (const name of nodeNames) {
      const mine = logs[name].filter((l) => l.phase === r.phase);
      const withSid = mine.filter((l) => l.sid);
      const own = {}; // statuses on the node of the handshake
      const other = {}; // statuses on the other node
      for (const l of withSid) {
        const m = handshakeNode.get(l.session) === name ? own : other;
        m[l.sticky] = (m[l.sticky] || 0) + 1;
      }
      const statuses = {};
      for (const m of [own, other]) for (const [k, n] of Object.entries(m)) statuses[k] = (statuses[k] || 0) + n;
      const s = {
        requests: mine.length,
        handshakes: mine.filter((l) => !l.sid).length,
        withSid: withSid.length,
        own,
        other,
        statuses,
        misrouted: withSid.filter((l) => backendAt[l.upstreamPort] !== label(l)).length,
        withoutCookie: withSid.filter((l) => !l.cookie).length,
        handshakesWithSetCookie: mine.filter((l) => !l.sid && l.setCookie.startsWith(`${COOKIE}=`)).length,
        sidWithSetCookie: withSid.filter((l) => l.setCookie).length,
        upgrades: mine.filter((l) => l.status === 101).length,
        upgradesWithCookie: mine.filter((l) => l.status === 101 && l.cookie).length,
      };
      r.log[name] = s;
      const st = (m) => Object.entries(m).sort().map(([k, n]) => `${k || "-"} ${n}`).join(", ") || "none";
      let extra = "";
      if (r.upstream === "cookie") {
        extra = `; handshakes with Set-Cookie ${s.handshakesWithSetCookie} of ${s.handshakes}, ` +
          `sid requests without the cookie ${s.withoutCookie}, with a Set-Cookie ${s.sidWithSetCookie}` +
          (r.transport === "default" ? `, websocket upgrades (101) with the cookie ${s.upgradesWithCookie} of ${s.upgrades}` : "");
      }
      console.log(`  ${pad(r.phase, 14)} ${name}: ${s.requests} requests (${s.handshakes} handshakes), ` +
        `with a sid ${s.withSid}: [${st(own)}] / [${st(other)}], misrouted ${s.misrouted}${extra}`);
    }
    r.requests = nodeNames.map((n) => r.log[n].requests);
  }

  // The checks.
  console.log("");
  const checks = [];
  const check = (ok, text) => {
    checks.push(ok);
    console.log(`check: ${ok ? "PASS" : "FAIL"} ${text}`);
  };
  const find = (u, t) => rows.find((r) => r.upstream === u && r.transport === t);
  const sum = (f) => nodeNames.reduce((s, n) => s + f(n), 0);

  for (const upstream of ["route", "cookie"]) {
    for (const transport of TRANSPORTS) {
      const r = find(upstream, transport);
      check(r.failed === 0, `${upstream} ${transport}: ${r.ok} of ${r.results.length} sessions ok, ${r.failed} failed`);
      check(r.single === r.results.length && r.used >= 3,
        `${upstream} ${transport}: every session answered by one backend (${r.single} of ${r.results.length}; ${r.multi} by several), ${r.used} backends used (need >= 3)`);
    }
  }
  for (const transport of TRANSPORTS) {
    const r = find("learn", transport);
    check(r.failed > 0 && (r.unknownClient > 0 || r.unknownBackend > 0),
      `learn ${transport} fails across two nodes as expected: ${r.failed} of ${r.results.length} sessions failed, ` +
      `${r.unknownClient} with "Session ID unknown" (backends rejected ${r.unknownBackend} requests so)`);
  }

  const conns = nodeNames.map((_, i) => rows.reduce((s, r) => s + r.conns[i], 0));
  const total = conns.reduce((a, b) => a + b, 0);
  check(total > 0 && conns.every((c) => c >= 0.25 * total),
    `both nodes had a fair share of the connections: ${nodeNames.map((n, i) => `${n} ${conns[i]}`).join(", ")} of ${total} (each needs >= 25%)`);

  for (const transport of TRANSPORTS) {
    const r = find("route", transport);
    const withSid = sum((n) => r.log[n].withSid);
    const routed = sum((n) => r.log[n].statuses.route || 0);
    const mis = sum((n) => r.log[n].misrouted);
    check(withSid > 0 && routed === withSid && mis === 0 && nodeNames.every((n) => (r.log[n].statuses.route || 0) > 0),
      `route ${transport}: requests with a sid answered with status route on both nodes: ${routed} of ${withSid} ` +
      `(${nodeNames.map((n) => `${n} ${r.log[n].statuses.route || 0}`).join(", ")}), ${mis} sent to another backend than the sid's label`);
  }
  for (const transport of TRANSPORTS) {
    const r = find("cookie", transport);
    const withSid = sum((n) => r.log[n].withSid);
    // On the node of the handshake: cookie or learned; on the other node: cookie only.
    const good = sum((n) => (r.log[n].own.cookie || 0) + (r.log[n].own.learned || 0) + (r.log[n].other.cookie || 0));
    const byCookie = nodeNames.map((n) => (r.log[n].own.cookie || 0) + (r.log[n].other.cookie || 0));
    const cookieTotal = byCookie.reduce((a, b) => a + b, 0);
    const otherNode = sum((n) => r.log[n].other.cookie || 0);
    const mis = sum((n) => r.log[n].misrouted);
    const handshakes = sum((n) => r.log[n].handshakes);
    const issued = sum((n) => r.log[n].handshakesWithSetCookie);
    const reissued = sum((n) => r.log[n].sidWithSetCookie);
    const withoutCookie = sum((n) => r.log[n].withoutCookie);
    check(withSid > 0 && good === withSid && withoutCookie === 0 && mis === 0 && otherNode > 0 &&
      byCookie.every((c) => c >= 0.25 * cookieTotal),
      `cookie ${transport}: every request after a session's handshake carried the route cookie (${withSid - withoutCookie} of ${withSid}) and was ` +
      `answered with status cookie (or learned on the node of the handshake): ${good} of ${withSid}; status cookie ${cookieTotal} times ` +
      `(${nodeNames.map((n, i) => `${n} ${byCookie[i]}`).join(", ")}; each node needs >= 25%), ${otherNode} of them on the other node than the handshake's; ` +
      `${mis} sent to another backend than the one that issued the sid`);
    check(handshakes === r.results.length && issued === handshakes && reissued === 0,
      `cookie ${transport}: every handshake got a Set-Cookie: ${COOKIE}= (${issued} of ${handshakes} for ${r.results.length} sessions), requests with a valid cookie got none (${reissued})`);
    if (transport === "default") {
      const upgrades = sum((n) => r.log[n].upgrades);
      const withCookie = sum((n) => r.log[n].upgradesWithCookie);
      check(upgrades >= r.results.length && withCookie === upgrades,
        `cookie default: socket.io-client sent the route cookie with the websocket upgrade: ${withCookie} of ${upgrades} upgrades (101)`);
    }
  }

  // One TCP connection per request: the forwarder's counts against the requests nginx logged.
  const requests = nodeNames.map((_, i) => rows.reduce((s, r) => s + r.requests[i], 0));
  console.log(`info: connections through the forwarder per node: ${nodeNames.map((n, i) => `${n} ${conns[i]}`).join(", ")}; ` +
    `requests in the access logs: ${nodeNames.map((n, i) => `${n} ${requests[i]}`).join(", ")}`);
  console.log(`info: forwarder errors so far: ${JSON.stringify(fEnd.errors)}, failed connects to the nodes: ${fEnd.connectErrors.join(" ")}`);
  console.log(`info: sessions took ${(tookMs / 1000).toFixed(1)}s`);
  process.exitCode = checks.every((c) => c) ? 0 : 1;
}

main().catch((e) => {
  console.error(`fleet.js: ${e.stack || e}`);
  process.exitCode = 2;
}).finally(() => setTimeout(() => process.exit(), 1000).unref());
