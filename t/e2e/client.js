// Socket.IO 4 clients for the end-to-end test and the demo.
//
// As a module: runSession(url, mode, options) runs one session and resolves to its result
// (options: path, query, withCredentials to keep cookies, and the DEFAULTS below);
// runMany(count, concurrency, fn) runs fn(i) for i < count with bounded concurrency.
//
// As a program (what t/e2e/run starts):
//   node client.js --sticky URL --rr URL --backends URL,URL,... [--sessions 200] [--concurrency 50]
// runs `--sessions` sessions per transport mode through each balancer, prints a table, the
// failures seen, and one "check: PASS|FAIL ..." line per check (t/e2e/run counts them).
// Exit code 0 iff all passed.
"use strict";
const http = require("http");
const { io } = require("socket.io-client");

const MODES = {
  polling: ["polling"], // HTTP long-polling only: every emit and ack is a POST/GET with the sid
  default: ["polling", "websocket"], // handshake over polling, then the websocket upgrade
  websocket: ["websocket"], // one websocket connection for the whole session
};

const DEFAULTS = {
  calls: 5, // whoami calls per session (per phase for "default": before and after the upgrade)
  gapMs: 100, // pause between calls, so a session lasts a few hundred ms
  // Generous, so that a busy 2-core machine does not fail sessions that are merely slow.
  connectTimeoutMs: 20000,
  ackTimeoutMs: 15000,
  upgradeTimeoutMs: 15000,
  sessionTimeoutMs: 60000,
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One line for an error of socket.io-client / engine.io-client, with the HTTP status and the
// response body when the failing request was a polling request.
function describe(err) {
  if (err === undefined || err === null) return "";
  if (typeof err === "string") return err;
  let s = err.message || "";
  const d = err.description;
  if (typeof d === "number" || typeof d === "string") s += ` (${d})`;
  else if (d && d.message) s += ` (${d.message})`;
  else if (d && d.type) s += ` (${d.type})`;
  s = s.trim() || String(err);
  const body = err.context && typeof err.context.responseText === "string" ? err.context.responseText.trim() : "";
  if (body) s += ` ${body}`;
  return s;
}

// Runs one session: connect, `calls` whoami calls `gapMs` apart; in mode "default" wait for the
// upgrade to websocket and make `calls` more. Never rejects.
function runSession(url, mode, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const res = {
    mode,
    ok: false,
    connected: false,
    upgraded: false,
    engineId: null, // the Engine.IO sid the backend issued (what nginx must stick to)
    socketId: null,
    backend: null, // the backend of the first answer
    backends: [], // every distinct backend that answered
    answers: 0,
    errors: [],
    ms: 0,
  };
  const t0 = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const socket = io(url, {
      path: options.path || "/socket.io/",
      transports: MODES[mode],
      reconnection: false,
      forceNew: true,
      timeout: o.connectTimeoutMs,
      query: options.query || {},
      // In Node, socket.io-client then keeps the cookies set by the responses in a jar of its
      // own and sends them with every later polling request and with the websocket upgrade.
      ...(options.withCredentials ? { withCredentials: true } : {}),
    });
    const fail = (msg) => {
      if (!res.errors.includes(msg)) res.errors.push(msg);
      finish();
    };
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      res.ms = Date.now() - t0;
      res.ok = res.errors.length === 0 && res.connected && res.backends.length === 1 &&
        res.answers === (mode === "default" ? 2 * o.calls : o.calls) && (mode !== "default" || res.upgraded);
      socket.disconnect();
      resolve(res);
    };
    const guard = setTimeout(() => fail(`session timed out after ${o.sessionTimeoutMs} ms`), o.sessionTimeoutMs);

    socket.on("connect_error", (err) => fail(`connect_error: ${describe(err)}`));
    socket.on("disconnect", (reason, details) => {
      if (!done) fail(`disconnect: ${reason}${details ? ": " + describe(details) : ""}`);
    });
    socket.io.on("open", () => {
      socket.io.engine.on("upgradeError", (err) => {
        if (!done) res.errors.push(`upgrade failed: ${describe(err)}`);
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
      if (res.backend === null) res.backend = a.backend;
      if (a.socketId !== socket.id) throw new Error(`socket.id ${socket.id} answered as ${a.socketId} by ${a.backend}`);
      if (a.engineId !== socket.io.engine.id) throw new Error(`sid ${socket.io.engine.id} answered as ${a.engineId} by ${a.backend}`);
      if (res.backends.length > 1) throw new Error(`answers from ${res.backends.join(", ")}`);
    };
    const calls = async () => {
      for (let i = 0; i < o.calls && !done; i++) {
        if (i > 0) await sleep(o.gapMs);
        if (!done) await whoami();
      }
    };

    socket.on("connect", async () => {
      res.connected = true;
      res.socketId = socket.id;
      res.engineId = socket.io.engine.id;
      try {
        await calls();
        if (mode === "default" && !done) {
          const until = Date.now() + o.upgradeTimeoutMs;
          while (!done && socket.io.engine.transport.name !== "websocket" && Date.now() < until) await sleep(20);
          if (socket.io.engine.transport.name !== "websocket") throw new Error(`no upgrade to websocket within ${o.upgradeTimeoutMs} ms`);
          res.upgraded = true;
          await calls();
        }
      } catch (e) {
        res.errors.push(e.message);
      }
      finish();
    });
  });
}

// The most telling error of a failed session: the first one with an HTTP status, else the first.
function mainError(r) {
  return r.errors.find((e) => /\(\d{3}\)/.test(e)) || r.errors[0] || "incomplete";
}

async function runMany(count, concurrency, fn) {
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

function getJson(url, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (c) => (body += c));
      r.on("end", () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`${url}: ${e.message}`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: timed out`)));
    req.on("error", reject);
  });
}

// ---- the end-to-end test ---------------------------------------------------------------------

function parseArgs(argv) {
  const a = { sessions: 200, concurrency: 50 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    a[k] = argv[i + 1];
  }
  for (const k of ["sticky", "rr", "backends"]) if (!a[k]) throw new Error(`--${k} is required`);
  a.sessions = Number(a.sessions);
  a.concurrency = Number(a.concurrency);
  a.backends = a.backends.split(",");
  return a;
}

async function backendStats(urls) {
  const all = await Promise.all(urls.map((u) => getJson(`${u}/stats`)));
  const m = {};
  for (const s of all) m[s.backend] = s;
  return m;
}

// What changed on the backends between two /stats snapshots.
function statsDelta(before, after) {
  const d = {};
  for (const id of Object.keys(after).sort()) {
    const a = after[id];
    const b = before[id] || { handshakes: 0, upgrades: 0, rejected: {}, rejectedTotal: 0 };
    const rejected = {};
    for (const [msg, n] of Object.entries(a.rejected)) {
      const diff = n - (b.rejected[msg] || 0);
      if (diff > 0) rejected[msg] = diff;
    }
    d[id] = {
      handshakes: a.handshakes - b.handshakes,
      upgrades: a.upgrades - b.upgrades,
      rejected,
      samples: a.rejectedSamples.filter((x) => x.n > b.rejectedTotal).map((x) => x.text),
    };
  }
  return d;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ids = Object.keys(await backendStats(args.backends)).sort();
  const rows = [];
  for (const [balancer, url] of [["sticky", args.sticky], ["rr", args.rr]]) {
    for (const mode of Object.keys(MODES)) {
      const before = await backendStats(args.backends);
      const t0 = Date.now();
      const results = await runMany(args.sessions, args.concurrency, () => runSession(url, mode));
      const ms = Date.now() - t0;
      await sleep(300); // let the backends see the last closes
      const delta = statsDelta(before, await backendStats(args.backends));
      rows.push({ balancer, mode, results, ms, delta });
    }
  }

  // The table.
  const pad = (s, n) => String(s).padEnd(n);
  const line = (...cols) => console.log(cols.map(([s, n]) => pad(s, n)).join(" ").trimEnd());
  console.log("");
  line(["balancer", 8], ["transport", 10], ["ok", 5], ["failed", 6], ["backends", 8],
    [`ok sessions per backend (${ids.join(" ")})`, 36], [`handshakes per backend`, 24], ["time", 6]);
  for (const r of rows) {
    const ok = r.results.filter((x) => x.ok);
    const per = ids.map((id) => ok.filter((x) => x.backend === id).length);
    const hs = ids.map((id) => r.delta[id].handshakes);
    const used = per.filter((n) => n > 0).length;
    r.ok = ok.length;
    r.failed = r.results.length - ok.length;
    r.used = used;
    r.per = per;
    r.hs = hs;
    r.multi = r.results.filter((x) => x.backends.length > 1).length;
    r.single = r.results.filter((x) => x.backends.length === 1).length;
    line([r.balancer, 8], [r.mode, 10], [r.ok, 5], [r.failed, 6], [used, 8], [per.join(" "), 36],
      [hs.join(" "), 24], [`${(r.ms / 1000).toFixed(1)}s`, 6]);
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
    if (r.failed === 0 && samples.length === 0) continue;
    const counts = new Map();
    for (const x of r.results) {
      if (x.ok) continue;
      const key = mainError(x).replace(/[A-Za-z0-9_-]{20}/g, "<sid>");
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    console.log(`\n${r.balancer} ${r.mode}: ${r.failed} failed sessions${r.failed ? "; client-side errors:" : ""}`);
    for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`  ${n} x ${k}`);
    console.log(`  backends rejected: ${JSON.stringify(rejected)}`);
    for (const s of samples.slice(0, 3)) console.log(`    ${s}`);
  }

  // The checks.
  console.log("");
  const checks = [];
  const check = (ok, text) => {
    checks.push(ok);
    console.log(`check: ${ok ? "PASS" : "FAIL"} ${text}`);
  };
  const find = (b, m) => rows.find((r) => r.balancer === b && r.mode === m);
  for (const mode of Object.keys(MODES)) {
    const r = find("sticky", mode);
    check(r.failed === 0, `sticky ${mode}: ${r.ok} of ${r.results.length} sessions ok, ${r.failed} failed`);
    check(r.single === r.results.length && r.used >= 3,
      `sticky ${mode}: every session answered by one backend (${r.single} of ${r.results.length}; ${r.multi} by several), ${r.used} backends used (need >= 3)`);
    check(r.per.join(" ") === r.hs.join(" "),
      `sticky ${mode}: each backend made exactly the handshakes of its sessions (${r.hs.join(" ")} vs ${r.per.join(" ")})`);
  }
  for (const mode of ["polling", "default"]) {
    const r = find("rr", mode);
    const unknownClient = r.results.filter((x) => !x.ok && x.errors.some((e) => /Session ID unknown/.test(e))).length;
    const unknownBackend = Object.entries(r.rejected || {}).filter(([m]) => /Session ID unknown/.test(m)).reduce((s, [, n]) => s + n, 0);
    check(r.failed > 0 && unknownClient > 0 && unknownBackend > 0,
      `rr ${mode} fails as expected: ${r.failed} of ${r.results.length} sessions failed, ${unknownClient} with "Session ID unknown" (backends rejected ${unknownBackend} requests so)`);
  }
  const ws = find("rr", "websocket");
  console.log(`info: rr websocket (one connection per session, no sticking needed): ${ws.ok} of ${ws.results.length} ok`);
  process.exitCode = checks.every((c) => c) ? 0 : 1;
}

module.exports = { MODES, DEFAULTS, runSession, runMany, describe, mainError, getJson, backendStats, statsDelta };

if (require.main === module) {
  main().catch((e) => {
    console.error(`client.js: ${e.stack || e}`);
    process.exitCode = 2;
  }).finally(() => setTimeout(() => process.exit(), 1000).unref());
}
