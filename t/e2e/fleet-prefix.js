// The sid_prefix run of t/e2e/fleet: socket.io-client sessions, and the checks over every
// session (socket.io-client's and python-socketio's, t/e2e/py/client.py), the nodes' access
// logs and the backends' logs.
//
//   node fleet-prefix.js sessions --url URL --rows UPSTREAM:TRANSPORT:COUNT[:free],... --ready FILE
//        --go FILE --out FILE [--calls 3] [--gap-ms 100] [--connect-concurrency 50]
//
// runs the sessions of every row at once (through the forwarder, path /UPSTREAM/socket.io/,
// transport polling or default = polling upgraded to websocket), every request carrying
// ?fleet=js-UPSTREAM-TRANSPORT&n=I: each session connects, makes --calls whoami calls (and in
// mode default waits for its upgrade), then waits at a barrier: when every session got there
// (or failed; those of rows marked "free" are not waited for), FILE --ready is written, and the
// sessions go on when FILE --go exists (t/e2e/fleet
// changes the nodes in between), make --calls more calls and disconnect. The results go to
// --out as JSON, as client.py writes them.
//
//   node fleet-prefix.js check --results FILE,FILE --nodes NAME=PORT,... --late NAME
//        --access-logs NAME=FILE,... --backends ID=PORT,... --backend-logs ID=FILE,...
//        --forwarder-stats FILE
//
// prints a table, the failures, what the access logs show, and one "check: PASS|FAIL ..." line
// per check; exit code 0 iff all passed. Upstreams prefix_js and prefix_py have
// `socketio_sticky sid_prefix;` over the socket.io 4 backends (t/e2e/server.js) and the
// python-socketio ones (t/e2e/py/server.py); rr_js and rr_py are plain round robin over the same.
//
// Access log lines (tab separated, see t/e2e/fleet): $msec $request_method $request_uri $status
// $pid $socketio_sticky_status $request $socketio_sticky_prefix $upstream_status $upstream_addr
// $request_time. $request is the request line as the client sent it (with TAG.SID);
// $request_uri is what nginx made of it (the tag stripped).
"use strict";
const fs = require("fs");
const { io } = require("socket.io-client");
const { MODES, describe, backendStats } = require("./client.js");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TAGGED = /^([A-Za-z0-9_-]{8})\.(.+)$/;

function parseArgs(argv, required) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!/^--/.test(argv[i]) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of required) if (!a[k]) throw new Error(`--${k} is required`);
  return a;
}
const pairs = (s) => (s ? s.split(",") : []).map((x) => {
  const i = x.indexOf("=");
  return [x.slice(0, i), x.slice(i + 1)];
});

// ---- sessions ----------------------------------------------------------------------------------

function semaphore(n) {
  const waiting = [];
  return {
    async acquire() {
      if (n > 0) {
        n--;
        return;
      }
      await new Promise((r) => waiting.push(r));
    },
    release() {
      const w = waiting.shift();
      if (w) w();
      else n++;
    },
  };
}

async function runGatedSession(url, upstream, transport, n, free, o, gate) {
  const phase = `js-${upstream}-${transport}`;
  const res = {
    client: "node", phase, upstream, transport, n,
    ok: false, connected: false, upgraded: false, engineId: null, socketId: null,
    backendEngineId: null, backend: null, backends: [], answers: 0, errors: [], ms: 0,
  };
  const t0 = Date.now();
  let done = false;
  const err = (msg) => {
    if (!res.errors.includes(msg)) res.errors.push(msg);
  };
  const socket = io(url, {
    path: `/${upstream}/socket.io/`,
    transports: MODES[transport],
    reconnection: false,
    forceNew: true,
    autoConnect: false,
    timeout: o.connectTimeoutMs,
    query: { fleet: phase, n: String(n) },
  });
  socket.on("disconnect", (reason, details) => {
    if (!done) err(`disconnect: ${reason}${details ? ": " + describe(details) : ""}`);
  });
  socket.io.on("open", () => {
    socket.io.engine.on("upgradeError", (e) => {
      if (!done) err(`upgrade failed: ${describe(e)}`);
    });
  });

  const whoami = async () => {
    let a;
    try {
      a = await socket.timeout(o.ackTimeoutMs).emitWithAck("whoami");
    } catch (e) {
      throw new Error(`no answer to whoami: ${describe(e)}`);
    }
    res.answers++;
    if (!res.backends.includes(a.backend)) res.backends.push(a.backend);
    if (res.backend === null) {
      res.backend = a.backend;
      res.backendEngineId = a.engineId;
    }
    if (a.socketId !== res.socketId) throw new Error(`socket.io id ${res.socketId} answered as ${a.socketId} by ${a.backend}`);
    const m = TAGGED.exec(res.engineId || "");
    if (a.engineId !== res.engineId && !(m && m[2] === a.engineId)) {
      throw new Error(`sid ${res.engineId} answered as ${a.engineId} by ${a.backend}`);
    }
    if (res.backends.length > 1) throw new Error(`answers from ${res.backends.join(", ")}`);
  };
  const calls = async () => {
    for (let i = 0; i < o.calls; i++) {
      if (i > 0) await sleep(o.gapMs);
      if (!socket.connected) throw new Error("not connected");
      await whoami();
    }
  };

  let passed = false;
  await gate.sem.acquire();
  try {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no connect within ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs + 1000);
      socket.once("connect", () => {
        clearTimeout(t);
        resolve();
      });
      socket.once("connect_error", (e) => {
        clearTimeout(t);
        reject(new Error(`connect_error: ${describe(e)}`));
      });
      socket.connect();
    });
    res.connected = true;
    res.socketId = socket.id;
    res.engineId = socket.io.engine.id;
    await calls();
    if (transport === "default") {
      const until = Date.now() + o.upgradeTimeoutMs;
      while (socket.connected && socket.io.engine.transport.name !== "websocket" && Date.now() < until) await sleep(20);
      if (socket.io.engine.transport.name !== "websocket") throw new Error(`no upgrade to websocket within ${o.upgradeTimeoutMs} ms`);
      res.upgraded = true;
    }
    passed = res.errors.length === 0;
  } catch (e) {
    err(e.message);
  } finally {
    gate.sem.release();
    res.arrivedMs = Date.now() - t0;
    if (!free) gate.arrive();
  }
  if (passed) {
    await gate.go;
    try {
      await calls();
      if (transport === "default" && socket.io.engine.transport.name !== "websocket") {
        throw new Error(`on ${socket.io.engine.transport.name} at the end, not websocket`);
      }
    } catch (e) {
      err(e.message);
    }
  }
  done = true;
  res.closedAt = Date.now(); // requests ending later may be answered 400 (the session is gone) or 499 (aborted)
  res.ms = res.closedAt - t0;
  res.ok = res.errors.length === 0 && res.connected && res.backends.length === 1 &&
    res.answers === 2 * o.calls && (transport !== "default" || res.upgraded);
  socket.disconnect();
  return res;
}

async function sessions(argv) {
  const a = parseArgs(argv, ["url", "rows", "ready", "go", "out"]);
  const o = {
    calls: Number(a.calls || 3),
    gapMs: Number(a["gap-ms"] || 100),
    connectTimeoutMs: 20000,
    ackTimeoutMs: 15000,
    upgradeTimeoutMs: 15000,
  };
  const rows = a.rows.split(",").map((s) => {
    const [upstream, transport, count, ...flags] = s.split(":");
    return { upstream, transport, count: Number(count), free: flags.includes("free") };
  });
  const total = rows.reduce((s, r) => s + (r.free ? 0 : r.count), 0); // the sessions --ready waits for
  const all = rows.reduce((s, r) => s + r.count, 0);
  let arrived = 0;
  let allArrived;
  const arrivedAll = new Promise((r) => (allArrived = r));
  let letGo;
  const gate = {
    sem: semaphore(Number(a["connect-concurrency"] || 50)),
    arrive() {
      if (++arrived === total) allArrived();
    },
    go: new Promise((r) => (letGo = r)),
  };
  if (total === 0) allArrived();
  // Rows interleaved, so that every row has sessions connecting from the start.
  const order = [];
  for (let n = 0; order.length < all; n++) {
    for (const r of rows) if (n < r.count) order.push([r, n]);
  }
  const running = Promise.all(order.map(([r, n]) => runGatedSession(a.url, r.upstream, r.transport, n, r.free, o, gate)));
  const timedOut = await Promise.race([arrivedAll.then(() => false), sleep(120000).then(() => true)]);
  if (timedOut) console.error(`fleet-prefix.js: only ${arrived} of ${total} sessions got past their first calls in 120 s`);
  fs.writeFileSync(`${a.ready}.tmp`, `${arrived}\n`);
  fs.renameSync(`${a.ready}.tmp`, a.ready);
  const until = Date.now() + 120000;
  while (!fs.existsSync(a.go) && Date.now() < until) await sleep(50);
  letGo();
  const results = await running;
  results.sort((x, y) => (x.phase < y.phase ? -1 : x.phase > y.phase ? 1 : x.n - y.n));
  fs.writeFileSync(`${a.out}.tmp`, JSON.stringify({ sessions: results, expected: all }));
  fs.renameSync(`${a.out}.tmp`, a.out);
  console.log(`fleet-prefix.js: ${results.filter((r) => r.ok).length} of ${all} socket.io-client sessions ok`);
}

// ---- check -------------------------------------------------------------------------------------

function readAccessLog(file) {
  const lines = [];
  for (const text of fs.readFileSync(file, "utf8").split("\n")) {
    if (!text) continue;
    const f = text.split("\t");
    if (f.length < 11) continue;
    const uri = f[2];
    const q = new URLSearchParams(uri.includes("?") ? uri.slice(uri.indexOf("?") + 1) : "");
    // The request line: METHOD URI PROTOCOL.
    const line = f[6];
    const sent = line.slice(line.indexOf(" ") + 1, line.lastIndexOf(" "));
    const qs = new URLSearchParams(sent.includes("?") ? sent.slice(sent.indexOf("?") + 1) : "");
    const addrs = f[9].split(/[ ,:]+/).filter((x) => /^\d+$/.test(x));
    lines.push({
      text,
      msec: Number(f[0]),
      method: f[1],
      uri,
      status: Number(f[3]),
      sticky: f[5],
      sentSid: qs.get("sid") || "", // as the client sent it
      prefix: f[7] === "-" ? "" : f[7],
      upstreamPort: addrs.length ? Number(addrs[addrs.length - 1]) : 0,
      phase: q.get("fleet") || qs.get("fleet") || "",
      session: q.get("n"),
      sid: q.get("sid") || "", // as nginx passed it on
      transport: q.get("transport") || "",
    });
  }
  return lines;
}

async function forwarderStats(file) {
  const old = JSON.parse(fs.readFileSync(file, "utf8"));
  try {
    process.kill(old.pid, "SIGUSR2");
  } catch (e) {
    return old;
  }
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    await sleep(20);
    try {
      const s = JSON.parse(fs.readFileSync(file, "utf8"));
      if (s.seq > old.seq) return s;
    } catch (e) {
      // being replaced
    }
  }
  return old;
}

async function check(argv) {
  const a = parseArgs(argv, ["results", "nodes", "late", "access-logs", "backends", "backend-logs", "forwarder-stats"]);
  const nodes = pairs(a.nodes).map(([name, port]) => ({ name, port: Number(port) }));
  const nodeNames = nodes.map((n) => n.name);
  const accessLogs = Object.fromEntries(pairs(a["access-logs"]));
  const backendPort = Object.fromEntries(pairs(a.backends).map(([id, p]) => [id, Number(p)]));
  const backendAt = Object.fromEntries(Object.entries(backendPort).map(([id, p]) => [p, id]));
  const ids = Object.keys(backendPort);
  const jsIds = ids.filter((id) => /^b/.test(id));
  const pyIds = ids.filter((id) => /^p/.test(id));

  // Every session, and how many each client meant to run.
  const all = [];
  let expected = 0;
  for (const file of a.results.split(",")) {
    let r;
    try {
      r = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      console.log(`no results in ${file}: ${e.message}`);
      r = { sessions: [], expected: NaN };
    }
    all.push(...r.sessions);
    expected += r.expected;
    if (r.logged && Object.keys(r.logged).length) {
      console.log(`info: python-socketio's client logged: ${JSON.stringify(r.logged)}`);
    }
  }

  // Who minted each sid (the backends' "open SID TRANSPORT" lines).
  const minter = new Map();
  for (const [id, file] of pairs(a["backend-logs"])) {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const m = /^open (\S+) /.exec(line);
      if (m) minter.set(m[1], id);
    }
  }

  const kinds = (u) => (u.endsWith("_py") ? "python-socketio" : "socket.io");
  const clientName = (c) => (c === "node" ? "socket.io-client" : "python-socketio client");
  const rowKeys = [];
  for (const s of all) {
    const k = `${s.client}|${s.upstream}|${s.transport}`;
    if (!rowKeys.includes(k)) rowKeys.push(k);
  }
  const order = (k) => {
    const [c, u, t] = k.split("|");
    return `${u.startsWith("prefix") ? 0 : 1}${c === "node" ? 0 : 1}${u}${t === "polling" ? 0 : 1}`;
  };
  rowKeys.sort((x, y) => (order(x) < order(y) ? -1 : 1));
  const rows = rowKeys.map((k) => {
    const [client, upstream, transport] = k.split("|");
    const results = all.filter((s) => s.client === client && s.upstream === upstream && s.transport === transport);
    const ok = results.filter((s) => s.ok);
    const own = upstream.endsWith("_py") ? pyIds : jsIds;
    return {
      client, upstream, transport, results, phase: results[0].phase,
      ok: ok.length,
      failed: results.length - ok.length,
      per: own.map((id) => ok.filter((s) => s.backend === id).length),
      own,
      single: results.filter((s) => s.backends.length === 1).length,
      multi: results.filter((s) => s.backends.length > 1).length,
      // The client read TAG.SID and the backend knows SID.
      tagged: results.filter((s) => {
        const m = TAGGED.exec(s.engineId || "");
        return m && s.backendEngineId === m[2];
      }).length,
      plain: results.filter((s) => s.engineId && s.engineId === s.backendEngineId).length,
      ms: Math.max(0, ...results.map((s) => s.ms)),
    };
  });
  rows.forEach((r) => (r.used = r.per.filter((n) => n > 0).length));

  const pad = (s, n) => String(s).padEnd(n);
  const line = (...cols) => console.log(cols.map(([s, n]) => pad(s, n)).join(" ").trimEnd());
  console.log("");
  line(["client", 22], ["upstream", 9], ["backends", 15], ["transport", 9], ["ok", 4], ["failed", 6],
    ["ok sessions per backend", 24], ["TAG.SID", 7], ["longest", 7]);
  for (const r of rows) {
    line([clientName(r.client), 22], [r.upstream, 9], [kinds(r.upstream), 15], [r.transport, 9], [r.ok, 4], [r.failed, 6],
      [`${r.per.join(" ")} (${r.own[0]}..)`, 24], [r.tagged, 7], [`${(r.ms / 1000).toFixed(1)}s`, 7]);
  }
  for (const r of rows) {
    if (r.failed === 0) continue;
    const counts = new Map();
    for (const s of r.results) {
      if (s.ok) continue;
      const key = (s.errors.find((e) => /\(\d{3}\)|status code/.test(e)) || s.errors[0] || "incomplete")
        .replace(/[A-Za-z0-9_.-]{16,}/g, "<sid>");
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    console.log(`\n${clientName(r.client)} ${r.upstream} ${r.transport}: ${r.failed} failed sessions; client-side errors:`);
    for (const [k, n] of [...counts].sort((x, y) => y[1] - x[1]).slice(0, 4)) console.log(`  ${n} x ${k}`);
  }

  // Tags: one per backend, a different one for each.
  const tagOf = {};
  const backendsOfTag = {};
  for (const s of all) {
    if (!s.upstream.startsWith("prefix") || !s.ok) continue;
    const m = TAGGED.exec(s.engineId || "");
    if (!m) continue;
    (tagOf[s.backend] = tagOf[s.backend] || new Set()).add(m[1]);
    (backendsOfTag[m[1]] = backendsOfTag[m[1]] || new Set()).add(s.backend);
  }
  console.log("");
  console.log(`tags: ${Object.keys(tagOf).sort().map((id) => `${id} ${[...tagOf[id]].join("/")}`).join(", ")}`);

  // When each session was closed by its client: a request of it that ended later may have
  // been answered 400 (python-engineio's client polls once more after the close: "Invalid
  // session") or 499 (socket.io-client aborts its long-poll): not a failure of nginx.
  const closedAt = new Map(all.map((s) => [`${s.phase}#${s.n}`, s.closedAt || Infinity]));
  const afterClose = (l) => l.msec * 1000 >= (closedAt.get(`${l.phase}#${l.session}`) || Infinity) - 100;

  // The access logs: every request of the prefix rows with a sid, on every node.
  const logs = {};
  for (const name of nodeNames) logs[name] = readAccessLog(accessLogs[name]);
  const tagged = (sid) => TAGGED.exec(sid);
  const bad = []; // [node, reason, line]
  const perNode = {};
  for (const name of nodeNames) {
    const st = {
      handshakes: 0, withSid: 0, statuses: {}, byClient: {}, byServer: {}, notOk: 0, misrouted: 0,
      untagged: 0, notStripped: 0, wrongVar: 0, rrRejected: {}, closing: {},
    };
    perNode[name] = st;
    for (const l of logs[name]) {
      if (l.phase.includes("-rr_")) {
        if (l.status >= 400) st.rrRejected[l.phase] = (st.rrRejected[l.phase] || 0) + 1;
        continue;
      }
      if (!l.phase.includes("-prefix_")) continue;
      if (!l.sentSid) {
        st.handshakes++;
        if (l.status !== 200) bad.push([name, `handshake answered ${l.status}`, l.text]);
        continue;
      }
      st.withSid++;
      st.statuses[l.sticky] = (st.statuses[l.sticky] || 0) + 1;
      const client = l.phase.startsWith("js-") ? "node" : "python";
      const server = l.phase.endsWith("_py-polling") || l.phase.endsWith("_py-default") ? "py" : "js";
      st.byClient[client] = (st.byClient[client] || 0) + 1;
      st.byServer[server] = (st.byServer[server] || 0) + 1;
      const m = tagged(l.sentSid);
      const why = [];
      if (!m) {
        st.untagged++;
        why.push("the client sent no TAG.SID");
      } else {
        if (l.sid !== m[2]) {
          st.notStripped++;
          why.push(`the backend got sid=${l.sid}, not ${m[2]}`);
        }
        if (l.prefix !== m[1]) {
          st.wrongVar++;
          why.push(`$socketio_sticky_prefix "${l.prefix}", not ${m[1]}`);
        }
      }
      const sid = m ? m[2] : l.sid;
      const want = minter.get(sid);
      if (!want || backendAt[l.upstreamPort] !== want) {
        st.misrouted++;
        why.push(`sent to ${backendAt[l.upstreamPort] || l.upstreamPort || "none"}, the sid is ${want || "nobody's"}`);
      }
      if (l.sticky !== "prefix") why.push(`status ${l.sticky}`);
      if (l.status !== 200 && l.status !== 101) {
        if ((l.status === 400 || l.status === 499) && afterClose(l)) {
          st.closing[l.status] = (st.closing[l.status] || 0) + 1;
        } else {
          st.notOk++;
          why.push(`answered ${l.status}`);
        }
      }
      if (why.length) bad.push([name, why.join("; "), l.text]);
    }
  }
  console.log("access logs, prefix rows: requests with a sid per node, by $socketio_sticky_status:");
  const fmt = (m) => Object.entries(m).sort().map(([k, n]) => `${k || "-"} ${n}`).join(", ") || "none";
  for (const name of nodeNames) {
    const st = perNode[name];
    console.log(`  ${pad(name + (name === a.late ? " (started after the handshakes)" : ""), 38)} ${st.withSid} [${fmt(st.statuses)}] ` +
      `(socket.io-client ${st.byClient.node || 0}, python ${st.byClient.python || 0}; to socket.io ${st.byServer.js || 0}, ` +
      `to python-socketio ${st.byServer.py || 0}), handshakes ${st.handshakes}, misrouted ${st.misrouted}, ` +
      `ended after their session's close [${fmt(st.closing)}]`);
  }
  if (bad.length) {
    console.log(`requests of the prefix rows that went wrong: ${bad.length}; the first 10:`);
    for (const [n, why, text] of bad.slice(0, 10)) console.log(`  ${n}: ${why}\n    ${text}`);
  }

  // The checks.
  console.log("");
  const checks = [];
  const checkLine = (ok, text) => {
    checks.push(ok);
    console.log(`check: ${ok ? "PASS" : "FAIL"} ${text}`);
  };
  checkLine(all.length === expected, `sid_prefix run: results of ${all.length} sessions, ${expected} run`);
  for (const r of rows.filter((x) => x.upstream.startsWith("prefix"))) {
    const what = `sid_prefix ${clientName(r.client)} -> ${kinds(r.upstream)} ${r.transport}`;
    checkLine(r.failed === 0 && r.results.length > 0, `${what}: ${r.ok} of ${r.results.length} sessions ok, ${r.failed} failed`);
    checkLine(r.single === r.results.length && r.used >= Math.min(3, r.own.length) && r.tagged === r.results.length,
      `${what}: every session answered by one backend (${r.single} of ${r.results.length}; ${r.multi} by several), ` +
      `${r.used} backends used (need >= 3), the client's sid TAG.SID where the backend's is SID in ${r.tagged}`);
  }
  const tagsOk = Object.values(tagOf).every((s) => s.size === 1) && Object.values(backendsOfTag).every((s) => s.size === 1);
  checkLine(tagsOk && Object.keys(tagOf).length === ids.length,
    `sid_prefix: each backend's sessions got one tag, each tag names one backend, for both clients (${Object.keys(tagOf).length} backends tagged of ${ids.length})`);
  const sum = (f) => nodeNames.reduce((s, n) => s + f(perNode[n]), 0);
  const withSid = sum((st) => st.withSid);
  const prefixed = sum((st) => st.statuses.prefix || 0);
  checkLine(withSid > 0 && bad.length === 0 && prefixed === withSid && nodeNames.every((n) => (perNode[n].statuses.prefix || 0) > 0),
    `sid_prefix: every request with a sid (${withSid}) arrived tagged, reached the backend that minted the sid with the tag stripped, ` +
    `status prefix (${prefixed}: ${nodeNames.map((n) => `${n} ${perNode[n].statuses.prefix || 0}`).join(", ")}) and 101/200; ` +
    `${bad.length} did not (untagged ${sum((st) => st.untagged)}, not stripped ${sum((st) => st.notStripped)}, ` +
    `wrong $socketio_sticky_prefix ${sum((st) => st.wrongVar)}, ` +
    `misrouted ${sum((st) => st.misrouted)}, answered otherwise ${sum((st) => st.notOk)})`);
  const late = perNode[a.late];
  checkLine(late && late.handshakes === 0 && (late.byClient.node || 0) > 0 && (late.byClient.python || 0) > 0 &&
    (late.byServer.js || 0) > 0 && (late.byServer.py || 0) > 0 && late.withSid === (late.statuses.prefix || 0),
    `sid_prefix: ${a.late}, started after every handshake with nothing shared, routed ${late ? late.withSid : 0} requests of those sessions by their tag ` +
    `(socket.io-client ${late ? late.byClient.node || 0 : 0}, python ${late ? late.byClient.python || 0 : 0}; to socket.io ${late ? late.byServer.js || 0 : 0}, ` +
    `to python-socketio ${late ? late.byServer.py || 0 : 0})`);
  for (const r of rows.filter((x) => x.upstream.startsWith("rr") && x.transport === "polling")) {
    const rejected = sum((st) => st.rrRejected[r.phase] || 0);
    checkLine(r.failed > 0 && rejected > 0,
      `round robin without sid_prefix, ${clientName(r.client)} -> ${kinds(r.upstream)} polling fails as expected: ` +
      `${r.failed} of ${r.results.length} sessions failed, backends answered ${rejected} requests with 4xx`);
  }
  for (const c of ["node", "python"]) {
    const t = all.filter((s) => s.client === c && s.upstream.startsWith("prefix")).map((s) => s.arrivedMs).sort((x, y) => x - y);
    if (t.length) {
      console.log(`info: ${clientName(c)}: sid_prefix sessions at the barrier after ${(t[t.length >> 1] / 1000).toFixed(1)} s ` +
        `(median), ${(t[t.length - 1] / 1000).toFixed(1)} s (last)`);
    }
  }
  const f = await forwarderStats(a["forwarder-stats"]);
  console.log(`info: connections through the forwarder: ${nodes.map(({ name, port }) => {
    const i = f.targets.indexOf(port);
    return `${name} ${i < 0 ? 0 : f.connections[i]}`;
  }).join(", ")}; errors ${JSON.stringify(f.errors)}, failed connects ${f.connectErrors.join(" ")}`);
  const stats = await backendStats(Object.values(backendPort).map((p) => `http://127.0.0.1:${p}`)).catch(() => ({}));
  const rej = {};
  for (const s of Object.values(stats)) for (const [m, n] of Object.entries(s.rejected)) rej[m] = (rej[m] || 0) + n;
  console.log(`info: the backends rejected, in all runs so far: ${JSON.stringify(rej)}`);
  process.exitCode = checks.every((c) => c) ? 0 : 1;
}

const [mode, ...rest] = process.argv.slice(2);
const run = { sessions, check }[mode];
if (!run) {
  console.error("usage: node fleet-prefix.js sessions|check --...");
  process.exit(2);
}
run(rest).catch((e) => {
  console.error(`fleet-prefix.js: ${e.stack || e}`);
  process.exitCode = 2;
}).finally(() => setTimeout(() => process.exit(), 1000).unref());
