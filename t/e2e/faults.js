// The driver of t/e2e/faults: Socket.IO 4 sessions through one nginx with the module while
// backends die and come back, nginx reloads, and a small zone overflows.
//
//   node faults.js --url URL --backends b1=URL,b2=URL,... --access-log FILE --error-log FILE
//                  --ctl DIR --nginx-pid-file FILE --nginx-version X.Y.Z
//                  [--scenarios kill,strict,...] [--mode full|quick] [--kill-fail-timeout SECONDS]
//
// Every scenario is an entry of SCENARIOS (all run by default, in the table's order): its sizes
// for the full and the quick run, and an async function run(ctx, params) that uses the location
// /<name>/socket.io/ (an upstream of its own, see UPSTREAMS in t/e2e/faults) and reports through
// ctx: ctx.row() adds a row to the table, ctx.check() a "check: PASS|FAIL" line, ctx.info() an
// "info:" line, ctx.skip() a "skip:" line (the scenario cannot run with this nginx: no failure).
// At the end the table is printed, then each scenario's info, skip and check lines. Exit code 0
// iff all checks passed (and there was at least one check or skip). A scenario that throws
// fails one check with the error.
//
// The driver starts and stops no process itself: ctx.control("kill b2"), ("start b2"),
// ("reload"), ("upgrade"), ("drain b2 UPSTREAM") and ("undrain b2 UPSTREAM") ask t/e2e/faults
// (a request file in --ctl DIR) and resolve to the times in ms before and after it was done.
// "drain bN UPSTREAM" gives server bN of that upstream `drain` in nginx.conf and reloads nginx,
// "undrain" takes it away again; both are done once the new workers run (nginx -t first: an
// nginx older than 1.29.6 rejects `drain`, and the command fails).
//
// Every request of a session carries ?fx=<scenario...>&n=<session> (engine.io-client repeats
// the query on each request), which ties the access log lines to their session. Access log
// lines (tab separated, see t/e2e/faults): $msec $request_time $request_method $request_uri
// $status $pid $socketio_sticky_status $upstream_addr $upstream_status.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const { io } = require("socket.io-client");
const { MODES, runSession, runMany, describe, mainError, getJson } = require("./client.js");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const pad = (s, n) => String(s).padEnd(n);
const sec = (ms) => `${(ms / 1000).toFixed(1)}s`;
const median = (xs) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const countBy = (xs, f) => {
  const m = {};
  for (const x of xs) {
    const k = f(x);
    m[k] = (m[k] || 0) + 1;
  }
  return m;
};
const fmtCounts = (m) => Object.entries(m).sort().map(([k, n]) => `${k || "-"} ${n}`).join(", ") || "none";

// ---- plumbing --------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = { scenarios: Object.keys(SCENARIOS).join(","), mode: "full", "kill-fail-timeout": "3" };
  for (let i = 0; i < argv.length; i += 2) {
    if (!/^--/.test(argv[i]) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ["url", "backends", "access-log", "error-log", "ctl", "nginx-pid-file", "nginx-version"]) {
    if (!a[k]) throw new Error(`--${k} is required`);
  }
  if (!["full", "quick"].includes(a.mode)) throw new Error(`--mode is full or quick, not ${a.mode}`);
  a.backends = a.backends.split(",").map((x) => {
    const i = x.indexOf("=");
    const url = x.slice(i + 1);
    return { id: x.slice(0, i), url, port: Number(new URL(url).port) };
  });
  a.scenarios = a.scenarios.split(",").filter(Boolean);
  a.killFailTimeout = Number(a["kill-fail-timeout"]);
  return a;
}

// Asks t/e2e/faults to do `cmd`; resolves to { t0, t1 } (ms since the epoch, before and after).
let ctlSeq = 0;
async function control(dir, cmd, timeoutMs = 20000) {
  const n = String(++ctlSeq).padStart(4, "0");
  const tmp = path.join(dir, `${n}.wreq`);
  fs.writeFileSync(tmp, `${cmd}\n`);
  fs.renameSync(tmp, path.join(dir, `${n}.req`));
  const done = path.join(dir, `${n}.done`);
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    await sleep(10);
    let text;
    try {
      text = fs.readFileSync(done, "utf8").trim();
    } catch (e) {
      continue;
    }
    const f = text.split(" ");
    if (f[0] !== "ok") throw new Error(`"${cmd}": ${text}`);
    return { t0: Number(f[1]), t1: Number(f[2]) };
  }
  throw new Error(`"${cmd}": no answer from t/e2e/faults within ${timeoutMs} ms`);
}

function parseQuery(uri) {
  const i = uri.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : uri.slice(i + 1));
}

// The access log, parsed. Each line: msec and start (ms since the epoch: when it was logged,
// and when nginx began to read the request), the query's fx, n and sid, and `attempts`: one
// { port, status } per upstream server tried, in order.
function readAccessLog(file) {
  const lines = [];
  for (const text of fs.readFileSync(file, "utf8").split("\n")) {
    if (!text) continue;
    const f = text.split("\t");
    if (f.length < 9) continue;
    const msec = Number(f[0]) * 1000;
    const q = parseQuery(f[3]);
    const addrs = f[7] === "-" ? [] : f[7].split(/, | : /);
    const statuses = f[8] === "-" ? [] : f[8].split(/, | : /);
    lines.push({
      msec,
      start: msec - Number(f[1]) * 1000,
      method: f[2],
      uri: f[3],
      status: Number(f[4]),
      pid: f[5],
      sticky: f[6] === "-" ? "" : f[6],
      attempts: addrs.map((a, i) => ({ port: Number(a.slice(a.lastIndexOf(":") + 1)), status: statuses[i] || "-" })),
      fx: q.get("fx") || "",
      n: q.get("n"),
      sid: q.get("sid") || "",
      transport: q.get("transport") || "",
    });
  }
  return lines;
}

// The inodes of the sockets listening on TCP port `port` (/proc/net/tcp, tcp6: state 0A).
function listeningInodes(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set();
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text;
    try {
      text = fs.readFileSync(f, "utf8");
    } catch (e) {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 9 && c[3] === "0A" && c[1].endsWith(hex)) inodes.add(c[9]);
    }
  }
  return inodes;
}

// Whether process `pid` has one of these sockets open.
function holdsSocket(pid, inodes) {
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch (e) {
    return false;
  }
  for (const fd of fds) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch (e) {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1])) return true;
  }
  return false;
}

// nginx's workers, with their resident memory in KiB, and whether each is shutting down (of an
// earlier generation, after a reload). Found by pid, not by name (a wrapped nginx runs as its
// loader, and its process titles are cut to the room the loader leaves): the children of the
// master in the pid file, but a new master of a binary upgrade (it has children itself). A
// worker shutting down has closed nginx's listening socket (port `port`); if that socket is not
// found, the process title ("worker process is shutting down") tells.
function nginxWorkers(pidFile, port) {
  const master = fs.readFileSync(pidFile, "utf8").trim();
  const listening = listeningInodes(port);
  const procs = [];
  for (const pid of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    let status;
    let cmdline;
    try {
      status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch (e) {
      continue;
    }
    procs.push({ pid, ppid: (/^PPid:\s*(\d+)/m.exec(status) || [])[1], status, cmdline });
  }
  const parents = new Set(procs.map((x) => x.ppid));
  const workers = [];
  for (const { pid, ppid, status, cmdline } of procs) {
    if (ppid !== master || parents.has(pid)) continue;
    workers.push({
      pid: Number(pid),
      shuttingDown: listening.size ? !holdsSocket(pid, listening) : /shutting down/.test(cmdline),
      rssKiB: Number((/^VmRSS:\s*(\d+)/m.exec(status) || [])[1] || 0),
      anonKiB: Number((/^RssAnon:\s*(\d+)/m.exec(status) || [])[1] || 0),
      shmemKiB: Number((/^RssShmem:\s*(\d+)/m.exec(status) || [])[1] || 0),
    });
  }
  return workers;
}

// One plain HTTP request through nginx; resolves to { status, body }.
function request(url, { method = "GET", body = null, agent = false, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      agent,
      timeout: timeoutMs,
      headers: body === null ? {} : { "Content-Type": "text/plain;charset=UTF-8", "Content-Length": Buffer.byteLength(body) },
    }, (r) => {
      let text = "";
      r.setEncoding("utf8");
      r.on("data", (c) => (text += c));
      r.on("end", () => resolve({ status: r.statusCode, body: text }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on("error", reject);
    req.end(body === null ? undefined : body);
  });
}

// A long-lived Socket.IO session: reconnects by itself (a new Engine.IO session, through
// nginx's choice of backend), calls whoami every periodMs (+-20%) while connected and keeps
// every answer, connect, disconnect and error with its time.
class LongSession {
  constructor(url, socketPath, mode, query, o) {
    this.mode = mode;
    this.answers = []; // { t, backend, engineId, transport }
    this.connects = []; // { t, engineId }
    this.disconnects = []; // { t, reason }
    this.errors = []; // { t, what }
    this.stopped = false;
    this.o = o;
    const s = (this.socket = io(url, {
      path: socketPath,
      transports: MODES[mode],
      forceNew: true,
      reconnection: true,
      reconnectionDelay: o.reconnectionDelayMs,
      reconnectionDelayMax: o.reconnectionDelayMaxMs,
      randomizationFactor: 0.5,
      timeout: o.connectTimeoutMs,
      query,
    }));
    s.on("connect", () => this.connects.push({ t: Date.now(), engineId: s.io.engine.id }));
    s.on("disconnect", (reason, details) => {
      if (!this.stopped) this.disconnects.push({ t: Date.now(), reason: `${reason}${details ? ": " + describe(details) : ""}` });
    });
    s.on("connect_error", (err) => this.errors.push({ t: Date.now(), what: `connect_error: ${describe(err)}` }));
    this.loop = this.run();
  }

  async run() {
    while (!this.stopped) {
      await sleep(this.o.periodMs * (0.8 + 0.4 * Math.random()));
      if (this.stopped || !this.socket.connected) continue;
      const engineId = this.socket.io.engine && this.socket.io.engine.id;
      try {
        const a = await this.socket.timeout(this.o.ackTimeoutMs).emitWithAck("whoami");
        this.answers.push({ t: Date.now(), backend: a.backend, engineId: a.engineId, transport: a.transport });
        if (a.engineId !== engineId) this.errors.push({ t: Date.now(), what: `sid ${engineId} answered as ${a.engineId} by ${a.backend}` });
      } catch (e) {
        if (!this.stopped) this.errors.push({ t: Date.now(), what: `whoami: ${describe(e)}` });
      }
    }
  }

  waitConnected(timeoutMs) {
    if (this.socket.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  transport() {
    return this.socket.io.engine ? this.socket.io.engine.transport.name : "";
  }

  answersBetween(t0, t1) {
    return this.answers.filter((a) => a.t > t0 && a.t <= t1);
  }

  async stop() {
    this.stopped = true;
    this.socket.disconnect();
    await this.loop;
  }
}

// Waits until cond() holds (true), or timeoutMs passed (false).
async function until(cond, timeoutMs, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}

// Opens `count` long-lived sessions on socketPath, 50 at a time (modeOf(i): a key of MODES;
// query fx=<fx>&n=<i>) and waits until each has answered twice (and, in mode default, runs over
// websocket), then 1.5 s more. Resolves to { clients, opened, settled, before }: before[i] is
// client i's state then: its backend (null if several answered), backends, sids, disconnects.
async function openLong(ctx, count, socketPath, modeOf, fx, o) {
  const clients = new Array(count);
  const opened = await runMany(count, 50, async (i) => {
    const c = new LongSession(ctx.url, socketPath, modeOf(i), { fx, n: String(i) }, o);
    clients[i] = c;
    return c.waitConnected(o.connectTimeoutMs);
  });
  const settled = await until(() => clients.every((c) => c.answers.length >= 2 &&
    (c.mode !== "default" || c.transport() === "websocket")), 30000);
  await sleep(1500); // a little more, as they are
  const before = clients.map((c) => {
    const backends = [...new Set(c.answers.map((a) => a.backend))];
    const sids = [...new Set(c.answers.map((a) => a.engineId))];
    return { backend: backends.length === 1 ? backends[0] : null, backends, sids, disconnects: c.disconnects.length };
  });
  return { clients, opened: opened.filter(Boolean).length, settled, before };
}

// The modes of `count` long-lived sessions for openLong: the first half polling only, the others
// polling upgraded to websocket. In two blocks, which round robin spreads over all backends, so
// that every backend gets sessions of both kinds (with i % 2 instead, round robin's order can
// line up with the parity of i: a backend may then get websocket sessions only).
const halfAndHalf = (count) => (i) => (i < Math.floor(count / 2) ? "polling" : "default");

// Whether a session went on untouched since `before`: no disconnect, no error, one sid and one
// backend throughout, and answers after time t.
function untouched(c, before, t) {
  return c.disconnects.length === 0 && c.errors.length === 0 && c.connects.length === 1 &&
    c.answers.every((a) => a.engineId === before.sids[0] && a.backend === before.backend) &&
    c.answers.some((a) => a.t > t);
}

// The errors and disconnects of some sessions, counted by kind (sids elided).
const errorKinds = (clients) => countBy(clients.flatMap((c) => c.errors.concat(c.disconnects.map((d) => ({ what: `disconnect: ${d.reason}` })))),
  (e) => e.what.replace(/[A-Za-z0-9_-]{20,}/g, "<sid>"));

// ---- scenario kill ---------------------------------------------------------------------------
//
// Long-lived sessions, half over polling only and half upgraded to websocket, each calling
// whoami about every second. Once all answer, b2 is SIGKILLed. Its sessions must be
// disconnected and reconnect to a live backend; the others must notice nothing. From the access
// log: how many requests nginx still sent to b2 after its first failure there (it is marked
// failed then: max_fails=1; after fail_timeout nginx tries it once again, by design). Then b2
// starts again on its port and, once fail_timeout has passed, new sessions reach it again.

async function scenarioKill(ctx, p) {
  const victim = "b2";
  const failTimeoutMs = ctx.args.killFailTimeout * 1000;
  const victimPort = ctx.portOf[victim];
  const socketPath = "/kill/socket.io/";
  const o = { periodMs: 1000, ackTimeoutMs: 10000, connectTimeoutMs: 20000, reconnectionDelayMs: 200, reconnectionDelayMaxMs: 1000 };
  const started = Date.now();

  ctx.progress(`kill: opening ${p.sessions} long-lived sessions`);
  const { clients, opened: connectedBeforeKill, settled, before } =
    await openLong(ctx, p.sessions, socketPath, halfAndHalf(p.sessions), "kill", o);
  const onVictim = clients.map((_, i) => before[i].backend === victim);
  const affected = onVictim.filter(Boolean).length;
  const healthyBefore = before.filter((b) => b.backend && b.sids.length === 1 && b.disconnects === 0).length;
  const perBackend = countBy(before.filter((b) => b.backend), (b) => b.backend);
  ctx.check(connectedBeforeKill === p.sessions && settled && healthyBefore === p.sessions,
    `kill: all ${p.sessions} sessions established before the kill (${healthyBefore} answering from one backend with one sid, ` +
    `${clients.filter((c) => c.mode === "default" && c.transport() === "websocket").length} of ${clients.filter((c) => c.mode === "default").length} upgraded to websocket; per backend: ${fmtCounts(perBackend)})`);

  ctx.progress(`kill: SIGKILL ${victim} (${affected} sessions on it)`);
  const kill = await ctx.control(`kill ${victim}`);
  // Meanwhile, new short sessions keep coming (their handshakes go by round robin, which must
  // skip b2 too), one every trickleMs, until b2 is started again.
  let trickling = true;
  const trickle = [];
  const trickler = (async () => {
    for (let i = 0; trickling; i++) {
      trickle.push(runSession(ctx.url, "polling", { path: socketPath, query: { fx: "kill-outage", n: String(i) }, calls: 2 }));
      await sleep(p.trickleMs);
    }
  })();
  // Every session of b2 reconnects and answers from a live backend; then everything runs on.
  const recovered = (c) => c.answers.some((a) => a.t > kill.t1 && a.backend !== victim);
  await until(() => clients.every((c, i) => !onVictim[i] || recovered(c)), 20000);
  const recoveredAt = Date.now();
  await sleep(2000);
  const finalFrom = Date.now();
  await sleep(p.finalWindowMs);
  const finalTo = Date.now();

  ctx.progress(`kill: restarting ${victim}`);
  trickling = false;
  await trickler;
  const restart = await ctx.control(`start ${victim}`);
  const outage = await Promise.all(trickle);
  await sleep(failTimeoutMs + 1500); // nginx tries a failed server again after fail_timeout (whole seconds)
  const fresh = await runMany(p.newSessions, 25, (i) => runSession(ctx.url, i % 2 ? "polling" : "default",
    { path: socketPath, query: { fx: "kill-new", n: String(i) }, calls: 3 }));
  await Promise.all(clients.map((c) => c.stop()));
  await sleep(300); // let nginx log the last requests

  // The sessions.
  const rows = clients.map((c, i) => {
    const after = c.answers.filter((a) => a.t > kill.t1);
    const final = c.answersBetween(finalFrom, finalTo);
    const r = {
      affected: onVictim[i],
      reconnected: c.connects.some((x) => x.t > kill.t0),
      disconnected: c.disconnects.length > 0,
      recoveredMs: onVictim[i] && recovered(c) ? after.find((a) => a.backend !== victim).t - kill.t0 : null,
      answersFromVictimAfterKill: after.filter((a) => a.backend === victim).length,
      finalOk: final.length > 0 && final.every((a) => a.backend !== victim && a.engineId === c.connects[c.connects.length - 1].engineId),
      finalBackend: final.length ? final[final.length - 1].backend : "",
      keptSid: c.answers.every((a) => a.engineId === before[i].sids[0]) && c.connects.length === 1,
      keptBackend: c.answers.every((a) => a.backend === before[i].backend),
    };
    r.ok = r.affected
      ? r.reconnected && r.recoveredMs !== null && r.answersFromVictimAfterKill === 0 && r.finalOk
      : !r.disconnected && r.keptSid && r.keptBackend && r.finalOk && c.errors.length === 0;
    return r;
  });
  const affectedRows = rows.filter((r) => r.affected);
  const otherRows = rows.filter((r) => !r.affected);
  const recoveredMs = affectedRows.filter((r) => r.recoveredMs !== null).map((r) => r.recoveredMs);
  const reconnected = rows.filter((r) => r.reconnected).length;

  // The access log: every request of this location that tried b2.
  const log = ctx.readLog().filter((l) => l.uri.startsWith("/kill/"));
  const failed = (a) => a.port === victimPort && (a.status === "-" || Number(a.status) >= 500);
  const failures = log.filter((l) => l.attempts.some(failed)).sort((a, b) => a.msec - b.msec);
  const toVictim = log.filter((l) => l.attempts.some((a) => a.port === victimPort));
  const firstFailure = failures.length ? failures[0].msec : Infinity;
  // Requests that went to b2 after the first failure was logged and before b2 was started
  // again. nginx may send one after fail_timeout has passed since the last failure (its check
  // whether the server is back); any other is a request sent to a server marked failed.
  const whileDead = toVictim.filter((l) => l.start > firstFailure && l.start < restart.t0);
  const violations = whileDead.filter((l) => failures.some((f) => f !== l && f.msec < l.start && l.start < f.start + failTimeoutMs));
  const retries = whileDead.length - violations.length;
  const inFlight = toVictim.filter((l) => l.start >= kill.t0 && l.start <= firstFailure).length;
  const sidLines = log.filter((l) => l.sid && l.start > kill.t1 && l.start < restart.t0);
  const victimSids = new Set(clients.filter((_, i) => onVictim[i]).flatMap((c) => c.answers.filter((a) => a.t < kill.t0).map((a) => a.engineId)));
  const oldSidStatuses = countBy(sidLines.filter((l) => victimSids.has(l.sid)), (l) => l.sticky);

  const okFresh = fresh.filter((r) => r.ok);
  const freshOnVictim = okFresh.filter((r) => r.backend === victim).length;
  const freshPer = countBy(okFresh, (r) => r.backend);

  ctx.row({ scenario: `kill ${victim}`, sessions: p.sessions, ok: rows.filter((r) => r.ok).length, failed: rows.filter((r) => !r.ok).length,
    reconnected, toDead: `${violations.length} (+${retries} after fail_timeout)`, time: sec(restart.t0 - started) });
  const okOutage = outage.filter((r) => r.ok);
  ctx.row({ scenario: `kill: ${victim} down`, sessions: outage.length, ok: okOutage.length, failed: outage.length - okOutage.length,
    reconnected: "-", toDead: "-", time: sec(restart.t0 - kill.t1) });
  ctx.row({ scenario: `kill: ${victim} back`, sessions: fresh.length, ok: okFresh.length, failed: fresh.length - okFresh.length,
    reconnected: "-", toDead: "-", time: sec(Date.now() - restart.t0) });

  ctx.info(`kill: ${affected} sessions were on ${victim} (${affectedRows.filter((r) => r.reconnected).length} reconnected, ` +
    `the first answer from a live backend ${sec(recoveredMs.length ? Math.min(...recoveredMs) : 0)}` +
    `..${sec(recoveredMs.length ? Math.max(...recoveredMs) : 0)} after the kill, median ${sec(median(recoveredMs))}); ` +
    `now on: ${fmtCounts(countBy(affectedRows, (r) => r.finalBackend))}`);
  ctx.info(`kill: requests with the sids of ${victim}'s sessions after the kill, by $socketio_sticky_status: ${fmtCounts(oldSidStatuses)}`);
  ctx.info(`kill: requests that tried ${victim}: first failure logged ${failures.length ? `${Math.round(firstFailure - kill.t0)} ms` : "never"} after the kill ` +
    `(${failures.length} failed tries in all); started between the kill and that: ${inFlight}; ` +
    `after it, until the restart: ${whileDead.length} (${retries} once fail_timeout=${ctx.args.killFailTimeout}s had passed since the last failure, ` +
    `${violations.length} earlier${violations.length ? ": " + violations.slice(0, 3).map((l) => `${l.method} ${l.uri.slice(0, 60)} ${Math.round(l.start - kill.t0)} ms`).join("; ") : ""})`);
  ctx.info(`kill: ${victim} restarted ${sec(restart.t1 - kill.t1)} after the kill; new sessions per backend: ${fmtCounts(freshPer)}`);
  const errs = errorKinds(clients.filter((_, i) => !onVictim[i]));
  if (Object.keys(errs).length) ctx.info(`kill: errors of the sessions not on ${victim}: ${fmtCounts(errs)}`);

  ctx.check(affected > 0 && affectedRows.every((r) => r.ok),
    `kill: every session on ${victim} reconnected and answers from a live backend: ${affectedRows.filter((r) => r.ok).length} of ${affected} ` +
    `(need > 0 sessions there), all within ${sec(recoveredAt - kill.t0)}`);
  ctx.check(otherRows.length > 0 && otherRows.every((r) => r.ok),
    `kill: the sessions on the other backends noticed nothing (never disconnected, same sid and backend, every whoami answered): ` +
    `${otherRows.filter((r) => r.ok).length} of ${otherRows.length}`);
  ctx.check(failures.length > 0 && violations.length === 0,
    `kill: requests nginx sent to ${victim} while it was marked failed: ${violations.length} ` +
    `(${failures.length} failed tries logged; ${retries} retries after fail_timeout not counted)`);
  ctx.check(outage.length > 0 && okOutage.length === outage.length && okOutage.every((r) => r.backend !== victim),
    `kill: new sessions while ${victim} was down: ${okOutage.length} of ${outage.length} ok, on live backends: ${fmtCounts(countBy(okOutage, (r) => r.backend))}`);
  ctx.check(okFresh.length === fresh.length && freshOnVictim > 0,
    `kill: after ${victim} restarted and fail_timeout passed, new sessions ok: ${okFresh.length} of ${fresh.length}, on ${victim}: ${freshOnVictim} (need > 0)`);
}

// ---- scenario strict -------------------------------------------------------------------------
//
// As kill, with `strict` and backend b3: long-lived sessions, half polling, half upgraded to
// websocket; b3 is SIGKILLed. A request that carries the sid of one of b3's sessions must never
// reach another backend (which does not know the session): nginx answers it with 502 (status
// `strict`), or it is a try of b3 that fails. The clients of b3 then recover by a new handshake,
// which goes to a live backend; the other sessions notice nothing. b3 is started again at the end.

async function scenarioStrict(ctx, p) {
  const victim = "b3";
  const victimPort = ctx.portOf[victim];
  const socketPath = "/strict/socket.io/";
  const o = { periodMs: 1000, ackTimeoutMs: 10000, connectTimeoutMs: 20000, reconnectionDelayMs: 200, reconnectionDelayMaxMs: 1000 };
  const started = Date.now();

  ctx.progress(`strict: opening ${p.sessions} long-lived sessions`);
  const { clients, opened, settled, before } =
    await openLong(ctx, p.sessions, socketPath, halfAndHalf(p.sessions), "strict", o);
  const onVictim = before.map((b) => b.backend === victim);
  const affected = onVictim.filter(Boolean).length;
  ctx.check(opened === p.sessions && settled && before.every((b) => b.backend && b.sids.length === 1),
    `strict: all ${p.sessions} sessions established before the kill (per backend: ${fmtCounts(countBy(before, (b) => b.backend))})`);

  ctx.progress(`strict: SIGKILL ${victim} (${affected} sessions on it)`);
  const kill = await ctx.control(`kill ${victim}`);
  const recovered = (c) => c.answers.some((a) => a.t > kill.t1 && a.backend !== victim);
  await until(() => clients.every((c, i) => !onVictim[i] || recovered(c)), 20000);
  const recoveredAt = Date.now();
  await sleep(p.afterMs);
  await Promise.all(clients.map((c) => c.stop()));
  const restart = await ctx.control(`start ${victim}`);
  await sleep(300);

  const rows = clients.map((c, i) => {
    const r = { affected: onVictim[i], reconnected: c.connects.some((x) => x.t > kill.t0) };
    const last = c.connects[c.connects.length - 1];
    r.ok = r.affected
      ? r.reconnected && recovered(c) && last.engineId !== before[i].sids[0] &&
        c.answers.filter((a) => a.t > kill.t1).every((a) => a.backend !== victim && a.engineId === last.engineId)
      : untouched(c, before[i], kill.t1);
    return r;
  });
  const affectedRows = rows.filter((r) => r.affected);
  const otherRows = rows.filter((r) => !r.affected);

  // The access log: requests after the kill that carry a sid of b3's sessions.
  const victimSids = new Set(clients.filter((_, i) => onVictim[i]).map((c) => c.connects[0].engineId));
  const lines = ctx.readLog().filter((l) => l.uri.startsWith("/strict/") && l.sid && victimSids.has(l.sid) &&
    l.start > kill.t0 && l.start < restart.t0);
  // (a request that nginx refused has the upstream's name, not an address, as its last "try")
  const elsewhere = lines.filter((l) => l.attempts.some((a) => Number.isFinite(a.port) && a.port !== victimPort));
  const refused = lines.filter((l) => l.status === 502 && l.sticky === "strict");

  ctx.row({ scenario: `strict: kill ${victim}`, sessions: p.sessions, ok: rows.filter((r) => r.ok).length, failed: rows.filter((r) => !r.ok).length,
    reconnected: rows.filter((r) => r.reconnected).length, toDead: "-", time: sec(restart.t0 - started) });
  ctx.info(`strict: ${affected} sessions were on ${victim} (${clients.filter((c, i) => onVictim[i] && c.mode === "polling").length} polling only); ` +
    `requests with their sids after the kill: ${lines.length}, ` +
    `by status: ${fmtCounts(countBy(lines, (l) => `${l.status} ${l.sticky}`))}`);
  const errs = errorKinds(clients.filter((_, i) => !onVictim[i]));
  if (Object.keys(errs).length) ctx.info(`strict: errors of the sessions not on ${victim}: ${fmtCounts(errs)}`);

  ctx.check(affected > 0 && affectedRows.every((r) => r.ok),
    `strict: every session on ${victim} recovered by a new handshake on a live backend: ${affectedRows.filter((r) => r.ok).length} of ${affected} ` +
    `(need > 0 sessions there), all within ${sec(recoveredAt - kill.t0)}`);
  ctx.check(otherRows.length > 0 && otherRows.every((r) => r.ok),
    `strict: sessions on other backends kept their sid and backend without an error: ${otherRows.filter((r) => r.ok).length} of ${otherRows.length}`);
  ctx.check(refused.length > 0 && elsewhere.length === 0,
    `strict: requests with the sid of a session on ${victim} that reached another backend: ${elsewhere.length} (need 0); ` +
    `answered 502 by strict: ${refused.length} (need > 0)`);
}

// ---- scenario least --------------------------------------------------------------------------
//
// `balance=least_conn` against round robin, one after the other on two upstreams that differ
// only in that (both with nginx's `zone`, so the workers share the connection counts): open
// `sessions` websocket sessions (websocket only: the handshake is the long-lived connection),
// close `closeShare` of those on b1 and b2, open `more` new ones, 10 at a time. least_conn must
// send most of them to b1 and b2; round robin spreads them evenly.

async function leastRound(ctx, p, name) {
  const socketPath = `/${name}/socket.io/`;
  const o = { periodMs: 3000, ackTimeoutMs: 10000, connectTimeoutMs: 20000, reconnectionDelayMs: 200, reconnectionDelayMaxMs: 1000 };
  const emptied = ["b1", "b2"];
  ctx.progress(`least: ${name}: ${p.sessions} websockets, close ${Math.round(p.closeShare * 100)}% of those on ${emptied.join(" and ")}, open ${p.more}`);
  const first = await openLong(ctx, p.sessions, socketPath, () => "websocket", name, { ...o, periodMs: 500 });
  for (const c of first.clients) c.o = o;
  const perBefore = countBy(first.before, (b) => b.backend);
  const closing = [];
  for (const b of emptied) {
    const on = first.clients.filter((_, i) => first.before[i].backend === b);
    closing.push(...on.slice(0, Math.round(on.length * p.closeShare)));
  }
  await Promise.all(closing.map((c) => c.stop()));
  await sleep(1000);
  const left = countBy(first.before.filter((_, i) => !first.clients[i].stopped), (b) => b.backend);
  const more = new Array(p.more);
  await runMany(p.more, 10, async (i) => {
    const c = new LongSession(ctx.url, socketPath, "websocket", { fx: `${name}-more`, n: String(i) }, { ...o, periodMs: 200 });
    more[i] = c;
    await c.waitConnected(o.connectTimeoutMs);
    await until(() => c.answers.length > 0, 10000, 20);
    c.o = o;
  });
  const added = countBy(more, (c) => (c.answers.length ? c.answers[0].backend : "none"));
  const toEmptied = sum(emptied.map((b) => added[b] || 0));
  const ok = first.opened === p.sessions && first.settled && more.every((c) => c.answers.length > 0);
  await Promise.all(first.clients.concat(more).map((c) => c.stop()));
  const after = {};
  for (const b of Object.keys(ctx.portOf)) after[b] = (left[b] || 0) + (added[b] || 0);
  return { perBefore, left, added, after, share: toEmptied / p.more, ok };
}

async function scenarioLeast(ctx, p) {
  const t0 = Date.now();
  const lc = await leastRound(ctx, p, "least");
  const rr = await leastRound(ctx, p, "least_rr");
  const spread = (m) => Math.max(...Object.values(m)) - Math.min(...Object.values(m));
  for (const [r, name] of [[lc, "least_conn"], [rr, "round robin"]]) {
    ctx.row({ scenario: `${name === "least_conn" ? "least_conn" : "round robin"}`, sessions: p.sessions + p.more, ok: r.ok ? p.sessions + p.more : "-",
      failed: r.ok ? 0 : "-", reconnected: "-", toDead: "-", time: "" });
    ctx.info(`least: ${name}: open per backend ${fmtCounts(r.perBefore)}; after closing: ${fmtCounts(r.left)}; ` +
      `the ${p.more} new ones went to ${fmtCounts(r.added)} (${Math.round(r.share * 100)}% to b1 and b2); ` +
      `in the end ${fmtCounts(r.after)} (max - min ${spread(r.after)})`);
  }
  ctx.info(`least: both rounds took ${sec(Date.now() - t0)}`);
  ctx.check(lc.ok && rr.ok, `least: every websocket session of both rounds connected and answered`);
  ctx.check(lc.share >= p.minShare && lc.share - rr.share >= 0.2,
    `least: new sessions sent to the emptied b1 and b2: least_conn ${Math.round(lc.share * 100)}% (need >= ${Math.round(p.minShare * 100)}%), ` +
    `round robin ${Math.round(rr.share * 100)}% (need least_conn ahead by >= 20 points); spread in the end ${spread(lc.after)} against ${spread(rr.after)}`);
}

// ---- scenario reload -------------------------------------------------------------------------
//
// Polling-only sessions (every request a new connection, each carrying the sid) while nginx is
// reloaded every second: the learned sessions are in a shared zone that a reload keeps, so
// every request with a sid must still be `learned`, whichever generation of workers gets it.

async function scenarioReload(ctx, p) {
  const socketPath = "/reload/socket.io/";
  ctx.progress(`reload: ${p.sessions} polling sessions, ${p.concurrency} at a time, nginx reloaded every second`);
  const t0 = Date.now();
  let running = true;
  const reloads = [];
  const reloadErrors = [];
  const reloader = (async () => {
    await sleep(500);
    while (running) {
      const start = Date.now();
      try {
        reloads.push(await ctx.control("reload"));
      } catch (e) {
        reloadErrors.push(e.message);
      }
      await sleep(Math.max(0, 1000 - (Date.now() - start)));
    }
  })();
  const results = await runMany(p.sessions, p.concurrency, (i) => runSession(ctx.url, "polling",
    { path: socketPath, query: { fx: "reload", n: String(i) }, calls: p.calls, gapMs: p.gapMs }));
  running = false;
  await reloader;
  const ms = Date.now() - t0;
  // Old workers finish their requests and exit.
  await until(() => ctx.workers().every((w) => !w.shuttingDown), 10000);
  await sleep(300);

  const ok = results.filter((r) => r.ok);
  const log = ctx.readLog().filter((l) => l.uri.startsWith("/reload/") && l.fx === "reload");
  const withSid = log.filter((l) => l.sid);
  const statuses = countBy(withSid, (l) => l.sticky);
  const pids = new Set(log.map((l) => l.pid));
  const pidsPerSession = {};
  for (const l of log) (pidsPerSession[l.n] = pidsPerSession[l.n] || new Set()).add(l.pid);
  // Two workers per generation: a session served by three or more lived through a reload.
  const spanning = Object.values(pidsPerSession).filter((s) => s.size >= 3).length;
  const errors = countBy(results.filter((r) => !r.ok), (r) => mainError(r).replace(/[A-Za-z0-9_-]{20,}/g, "<sid>"));

  ctx.row({ scenario: "reload", sessions: results.length, ok: ok.length, failed: results.length - ok.length,
    reconnected: "-", toDead: "-", time: sec(ms) });
  ctx.info(`reload: ${reloads.length} reloads in ${sec(ms)}${reloadErrors.length ? `, ${reloadErrors.length} failed: ${reloadErrors[0]}` : ""}; ` +
    `${pids.size} worker pids served the sessions; ${spanning} sessions were served by 3 or more workers (lived through a reload)`);
  ctx.info(`reload: requests with a sid by $socketio_sticky_status: ${fmtCounts(statuses)}; per backend: ${fmtCounts(countBy(ok, (r) => r.backend))}`);
  if (Object.keys(errors).length) ctx.info(`reload: failed sessions: ${fmtCounts(errors)}`);

  ctx.check(ok.length === results.length, `reload: ${ok.length} of ${results.length} sessions ok, ${results.length - ok.length} failed`);
  ctx.check(withSid.length > 0 && (statuses.learned || 0) === withSid.length,
    `reload: every request with a sid found its session learned: ${statuses.learned || 0} of ${withSid.length}`);
  ctx.check(reloadErrors.length === 0 && reloads.length >= Math.floor(ms / 1000) - 2 && spanning > 0 && pids.size >= 6,
    `reload: nginx reloaded ${reloads.length} times in ${sec(ms)} (${reloadErrors.length} failed), sessions served by ${pids.size} workers (need >= 6), ` +
    `${spanning} sessions through a reload (need > 0)`);
}

// ---- scenario upgrade ------------------------------------------------------------------------
//
// A binary upgrade (t/e2e/faults: USR2, then WINCH and QUIT to the old master) while long-lived
// sessions run on two upstreams: `upgrade` has `state=` (its table is a file that the new master
// maps again), `upgrade_nostate` has only its zone (the new master starts with an empty table).
// On `upgrade`, polling sessions must go on with their sid and backend, every request with a sid
// that a new worker serves must find it learned, and websocket sessions stay with the old
// workers untouched. On `upgrade_nostate`, the polling sessions whose next request round robin
// sends elsewhere are lost (400, then a new handshake): that row shows what `state=` saves.

async function scenarioUpgrade(ctx, p) {
  const o = { periodMs: 1000, ackTimeoutMs: 10000, connectTimeoutMs: 20000, reconnectionDelayMs: 200, reconnectionDelayMaxMs: 1000 };
  const t0 = Date.now();
  ctx.progress(`upgrade: ${p.polling} polling and ${p.websockets} websocket sessions with state=, ${p.polling} polling sessions without`);
  const [kept, plain] = await Promise.all([
    openLong(ctx, p.polling + p.websockets, "/upgrade/socket.io/", (i) => (i < p.polling ? "polling" : "default"), "upgrade", o),
    openLong(ctx, p.polling, "/upgrade_nostate/socket.io/", () => "polling", "upgrade-nostate", o),
  ]);
  const oldPids = new Set(ctx.readLog().map((l) => l.pid));
  ctx.progress("upgrade: USR2, WINCH, QUIT");
  const up = await ctx.control("upgrade");
  await sleep(p.afterMs);
  await Promise.all(kept.clients.concat(plain.clients).map((c) => c.stop()));
  await sleep(300);

  const log = ctx.readLog().filter((l) => l.start > up.t1 && l.sid && !oldPids.has(l.pid));
  const newGen = (prefix) => log.filter((l) => l.uri.startsWith(prefix));
  const keptLines = newGen("/upgrade/");
  const plainLines = newGen("/upgrade_nostate/");
  const keptStatuses = countBy(keptLines, (l) => l.sticky);
  const okKept = kept.clients.map((c, i) => untouched(c, kept.before[i], up.t1));
  const okPlain = plain.clients.map((c, i) => untouched(c, plain.before[i], up.t1));
  const polling = okKept.slice(0, p.polling);
  const ws = okKept.slice(p.polling);
  const count = (xs) => xs.filter(Boolean).length;

  ctx.row({ scenario: "upgrade state=", sessions: okKept.length, ok: count(okKept), failed: okKept.length - count(okKept),
    reconnected: kept.clients.filter((c) => c.connects.length > 1).length, toDead: "-", time: sec(Date.now() - t0) });
  ctx.row({ scenario: "upgrade, none", sessions: okPlain.length, ok: count(okPlain), failed: okPlain.length - count(okPlain),
    reconnected: plain.clients.filter((c) => c.connects.length > 1).length, toDead: "-", time: "" });
  ctx.info(`upgrade: done ${sec(up.t1 - up.t0)} after USR2; requests with a sid that new workers served: with state= ${keptLines.length} ` +
    `(${fmtCounts(keptStatuses)}), without ${plainLines.length} (${fmtCounts(countBy(plainLines, (l) => l.sticky))})`);
  const errs = errorKinds(kept.clients);
  if (Object.keys(errs).length) ctx.info(`upgrade: errors of the sessions with state=: ${fmtCounts(errs)}`);
  ctx.info(`upgrade: without state=: ${fmtCounts(errorKinds(plain.clients))}`);

  ctx.check(kept.opened === okKept.length && plain.opened === okPlain.length && kept.settled && plain.settled,
    `upgrade: all ${okKept.length + okPlain.length} sessions established before the upgrade`);
  ctx.check(count(polling) === polling.length && count(ws) === ws.length,
    `upgrade: with state=, sessions that kept their sid and backend without an error: polling ${count(polling)} of ${polling.length}, ` +
    `websocket ${count(ws)} of ${ws.length}`);
  ctx.check(keptLines.length > 0 && (keptStatuses.learned || 0) === keptLines.length,
    `upgrade: with state=, requests with a sid served by the new workers found it learned: ${keptStatuses.learned || 0} of ${keptLines.length} (need all, > 0)`);
  ctx.check(plainLines.length > 0 && count(okPlain) < okPlain.length,
    `upgrade: without state=, the new workers did serve those sessions (${plainLines.length} requests) and ${okPlain.length - count(okPlain)} of ${okPlain.length} lost theirs (need > 0: the upgrade was real)`);
}

// ---- scenario tiny ---------------------------------------------------------------------------
//
// `socketio_sticky zone=tiny:32k;`. First its capacity: capacityProbe handshakes one after the
// other, then one request with each sid: exactly the newest C must still be learned. Then waves
// of short polling sessions, each wave done before the next starts, many times C in all: the
// live sessions are always the newest, so none may fail, though the zone evicts all the time;
// no 5xx; the workers' RSS after the last wave as after the first (no growth with the table's
// churn); at the end the first wave's sids are gone and the last wave's still there.

async function scenarioTiny(ctx, p) {
  const base = `${ctx.url}/tiny/socket.io/?EIO=4&transport=polling`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const t0 = Date.now();

  ctx.progress(`tiny: capacity of zone=tiny:32k (${p.capacityProbe} handshakes)`);
  const sids = [];
  for (let i = 0; i < p.capacityProbe; i++) {
    const r = await request(`${base}&fx=cap&n=${i}`, { agent });
    const m = /"sid":"([^"]+)"/.exec(r.body);
    if (r.status !== 200 || !m) throw new Error(`handshake ${i}: ${r.status} ${r.body.slice(0, 100)}`);
    sids.push(m[1]);
  }
  // One request per sid (a close packet, which ends the session where it is known).
  await runMany(sids.length, 8, (i) => request(`${base}&sid=${encodeURIComponent(sids[i])}&fx=capprobe&n=${i}`,
    { method: "POST", body: "1", agent }).catch((e) => ({ status: 0, body: e.message })));
  await sleep(200);
  let log = ctx.readLog().filter((l) => l.uri.startsWith("/tiny/"));
  const minted = {};
  for (const l of log) if (l.fx === "cap" && l.attempts.length) minted[l.n] = l.attempts[l.attempts.length - 1].port;
  const probes = log.filter((l) => l.fx === "capprobe");
  const learned = probes.filter((l) => l.sticky === "learned").map((l) => Number(l.n)).sort((a, b) => a - b);
  const capacity = learned.length;
  const newest = learned.every((n, k) => n === p.capacityProbe - capacity + k);
  const learnedHome = probes.filter((l) => l.sticky === "learned" && l.attempts.length &&
    l.attempts[l.attempts.length - 1].port === minted[l.n]).length;
  ctx.info(`tiny: zone tiny:32k holds ${capacity} sessions (${probes.length} probed of ${p.capacityProbe} learned in order; ` +
    `statuses: ${fmtCounts(countBy(probes, (l) => l.sticky))})`);
  ctx.check(probes.length === p.capacityProbe && capacity > 0 && capacity < p.capacityProbe && newest && learnedHome === capacity,
    `tiny: the full zone keeps exactly the newest sessions: ${capacity} of ${p.capacityProbe} still learned, ` +
    `${newest ? "the newest ones" : "NOT the newest ones"}, ${learnedHome} of them sent to the backend that minted them`);

  // The first wave runs twice as many sessions at a time as the others, so that nginx's heap
  // reaches its high-water mark in it (t/e2e/faults has glibc keep freed memory: RSS is that
  // mark; with the same load in every wave, each new peak of concurrent requests in a worker
  // would add a little, for ten waves or so). After it, RSS grows only if something leaks.
  ctx.progress(`tiny: ${p.waves} waves of ${p.waveSize} sessions (${p.concurrency} at a time, the first ${2 * p.concurrency})`);
  const waves = [];
  const rss = [];
  for (let w = 0; w < p.waves; w++) {
    const results = await runMany(p.waveSize, w === 0 ? 2 * p.concurrency : p.concurrency, (i) => runSession(ctx.url, "polling",
      { path: "/tiny/socket.io/", query: { fx: "tiny", w: String(w), n: String(i) }, calls: p.calls, gapMs: p.gapMs }));
    waves.push(results);
    await sleep(100);
    const workers = ctx.workers().filter((x) => !x.shuttingDown);
    rss.push({ kib: sum(workers.map((x) => x.rssKiB)), anon: sum(workers.map((x) => x.anonKiB)), shmem: sum(workers.map((x) => x.shmemKiB)), workers });
  }
  // Which sids the zone still has: the first wave's (all gone) and the last wave's newest.
  const firstSids = waves[0].filter((r) => r.engineId).map((r) => r.engineId);
  const lastSids = waves[waves.length - 1].filter((r) => r.engineId).map((r) => r.engineId).slice(-p.lastProbe);
  const probe = (list, tag) => runMany(list.length, 8, (i) => request(`${base}&sid=${encodeURIComponent(list[i])}&fx=evict-${tag}&n=${i}`,
    { agent }).catch((e) => ({ status: 0, body: e.message })));
  await probe(firstSids, "first");
  await probe(lastSids, "last");
  await sleep(200);
  agent.destroy();
  const ms = Date.now() - t0;

  log = ctx.readLog().filter((l) => l.uri.startsWith("/tiny/"));
  const all = waves.flat();
  const ok = all.filter((r) => r.ok);
  const waveLines = log.filter((l) => l.fx === "tiny");
  const sidStatuses = countBy(waveLines.filter((l) => l.sid), (l) => l.sticky);
  const withSid = waveLines.filter((l) => l.sid).length;
  const errors5xx = log.filter((l) => l.status >= 500);
  const firstStatuses = countBy(log.filter((l) => l.fx === "evict-first"), (l) => l.sticky);
  const lastStatuses = countBy(log.filter((l) => l.fx === "evict-last"), (l) => l.sticky);
  const growth = rss[rss.length - 1].kib - rss[0].kib;
  const errors = countBy(all.filter((r) => !r.ok), (r) => mainError(r).replace(/[A-Za-z0-9_-]{20,}/g, "<sid>"));

  ctx.row({ scenario: "tiny zone 32k", sessions: all.length, ok: ok.length, failed: all.length - ok.length,
    reconnected: "-", toDead: "-", time: sec(ms) });
  ctx.info(`tiny: ${p.waves} waves of ${p.waveSize} sessions, ${(all.length / Math.max(capacity, 1)).toFixed(1)} times the zone's capacity; ` +
    `requests with a sid by $socketio_sticky_status: ${fmtCounts(sidStatuses)}; 5xx in /tiny/: ${errors5xx.length}`);
  ctx.info(`tiny: nginx workers' RSS after each wave (KiB, both workers): ${rss.map((r) => r.kib).join(" ")} ` +
    `(of which anonymous: ${rss[0].anon} .. ${rss[rss.length - 1].anon}, shared memory: ${rss[0].shmem} .. ${rss[rss.length - 1].shmem}); ` +
    `first ${rss[0].kib} KiB (${rss[0].workers.map((x) => `${x.pid}: ${x.rssKiB}`).join(", ")}), ` +
    `last ${rss[rss.length - 1].kib} KiB (${rss[rss.length - 1].workers.map((x) => `${x.pid}: ${x.rssKiB}`).join(", ")})`);
  ctx.info(`tiny: afterwards, the first wave's sids: ${fmtCounts(firstStatuses)}; the last wave's newest ${lastSids.length}: ${fmtCounts(lastStatuses)}`);
  if (Object.keys(errors).length) ctx.info(`tiny: failed sessions: ${fmtCounts(errors)}`);

  ctx.check(ok.length === all.length && withSid > 0 && (sidStatuses.learned || 0) === withSid,
    `tiny: ${ok.length} of ${all.length} sessions ok through the overflowing zone, every request with a sid learned (${sidStatuses.learned || 0} of ${withSid})`);
  ctx.check(errors5xx.length === 0, `tiny: no 5xx answers in /tiny/ (${errors5xx.length})`);
  ctx.check(firstSids.length > 0 && !firstStatuses.learned && lastSids.length > 0 && lastStatuses.learned === lastSids.length,
    `tiny: evicted: the first wave's sids learned ${firstStatuses.learned || 0} of ${firstSids.length} (need 0); ` +
    `the last wave's newest learned ${lastStatuses.learned || 0} of ${lastSids.length} (need all)`);
  const sameWorkers = rss[0].workers.map((x) => x.pid).sort().join() === rss[rss.length - 1].workers.map((x) => x.pid).sort().join();
  const signed = (n) => `${n >= 0 ? "+" : ""}${n}`;
  ctx.check(sameWorkers && rss[0].workers.length === 2 && growth <= p.rssSlackKiB,
    `tiny: nginx workers' RSS flat: ${rss[0].kib} KiB after the first wave, ${rss[rss.length - 1].kib} KiB after the last ` +
    `(${signed(growth)} KiB, need <= +${p.rssSlackKiB}; same 2 workers: ${sameWorkers ? "yes" : "no"})`);
}

// ---- scenario drain --------------------------------------------------------------------------
//
// `server ADDRESS drain;` (nginx 1.29.6 and later; with an older nginx the scenario is skipped):
// a draining server keeps the requests bound to it and gets no new sessions. Long-lived sessions
// on the upstream `drain`, half over polling only and half upgraded to websocket, call whoami
// about every second. Then b2 gets `drain` there and nginx is reloaded ("drain b2 drain": done
// once the new workers run). For afterMs more, every session must go on untouched: same sid,
// same backend, no error, no reconnect. b2's polling sessions go on through the new workers,
// their sids learned (the zone outlives the reload) and sent to b2 alone; its websocket sessions
// keep their connections through the old workers. Meanwhile `fresh` new sessions must all go to
// b1, b3 and b4, each of those getting some, and no handshake after the drain may reach b2 (the
// access log). Then b2 loses `drain` ("undrain b2 drain") and `back` new sessions must reach it
// again: so it was the flag that kept them away. Nothing at [alert], [crit] or [emerg] in the
// error log meanwhile.

const DRAIN_SINCE = "1.29.6";

// Whether version a ("1.30.6") is b or later.
function versionAtLeast(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0);
  }
  return true;
}

const fileSize = (f) => {
  try {
    return fs.statSync(f).size;
  } catch (e) {
    return 0;
  }
};

// The lines of a file from byte `offset` on.
const linesFrom = (f, offset) => fs.readFileSync(f).subarray(offset).toString("utf8").split("\n").filter(Boolean);

async function scenarioDrain(ctx, p) {
  const version = ctx.args["nginx-version"];
  if (!versionAtLeast(version, DRAIN_SINCE)) {
    ctx.skip(`drain: nginx ${version} has no \`server ... drain\` (it came with nginx ${DRAIN_SINCE})`);
    return;
  }
  const victim = "b2";
  const upstream = "drain";
  const victimPort = ctx.portOf[victim];
  const socketPath = `/${upstream}/socket.io/`;
  const ids = Object.keys(ctx.portOf).sort();
  const others = ids.filter((b) => b !== victim);
  const perBackend = (m) => ids.map((b) => `${b} ${m[b] || 0}`).join(", ");
  const o = { periodMs: 1000, ackTimeoutMs: 10000, connectTimeoutMs: 20000, reconnectionDelayMs: 200, reconnectionDelayMaxMs: 1000 };
  const errorLog = ctx.args["error-log"];
  const errorLogFrom = fileSize(errorLog);
  const started = Date.now();

  ctx.progress(`drain: opening ${p.sessions} long-lived sessions`);
  const { clients, opened, settled, before } =
    await openLong(ctx, p.sessions, socketPath, halfAndHalf(p.sessions), "drain", o);
  const onVictim = before.map((b) => b.backend === victim);
  const affected = onVictim.filter(Boolean).length;
  const upgraded = clients.filter((c) => c.mode === "default" && c.transport() === "websocket").length;
  ctx.check(opened === p.sessions && settled && before.every((b) => b.backend && b.sids.length === 1 && b.disconnects === 0),
    `drain: all ${p.sessions} sessions established before the drain (${upgraded} of ${clients.filter((c) => c.mode === "default").length} upgraded to websocket; ` +
    `per backend: ${perBackend(countBy(before, (b) => b.backend))})`);

  ctx.progress(`drain: ${victim} gets drain in upstream ${upstream}, nginx reloaded (${affected} sessions on it)`);
  let drain;
  let fresh;
  let windowEnd;
  try {
    drain = await ctx.control(`drain ${victim} ${upstream}`);
    // New sessions while the others go on, then the rest of afterMs.
    fresh = await runMany(p.fresh, 20, (i) => runSession(ctx.url, i % 2 ? "polling" : "default",
      { path: socketPath, query: { fx: "drain-new", n: String(i) }, calls: 3 }));
    await sleep(Math.max(0, p.afterMs - (Date.now() - drain.t1)));
    windowEnd = Date.now();
  } finally {
    await Promise.all(clients.map((c) => c.stop())); // (also when the drain failed: they would run on)
  }

  ctx.progress(`drain: ${victim} without drain again`);
  const undrain = await ctx.control(`undrain ${victim} ${upstream}`);
  const back = await runMany(p.back, 20, (i) => runSession(ctx.url, i % 2 ? "polling" : "default",
    { path: socketPath, query: { fx: "drain-back", n: String(i) }, calls: 2 }));
  await sleep(300); // let nginx log the last requests

  // The long-lived sessions: untouched by the drain, and answering after it.
  const okAll = clients.map((c, i) => untouched(c, before[i], drain.t1) && c.answersBetween(drain.t1, windowEnd).length > 0);
  const count = (xs) => xs.filter(Boolean).length;
  const okVictim = count(okAll.filter((_, i) => onVictim[i]));
  const okOthers = count(okAll.filter((_, i) => !onVictim[i]));
  const reconnected = clients.filter((c) => c.connects.length > 1).length;
  const victimAnswers = sum(clients.filter((_, i) => onVictim[i]).map((c) => c.answers.filter((a) => a.t > drain.t1 && a.backend === victim).length));
  const victimPolling = clients.filter((c, i) => onVictim[i] && c.mode === "polling").length;

  // The access log, from the drain to the undrain.
  const lastPort = (l) => (l.attempts.length ? l.attempts[l.attempts.length - 1].port : NaN);
  const log = ctx.readLog().filter((l) => l.uri.startsWith(`/${upstream}/`) && l.start > drain.t1 && l.start < undrain.t0);
  const victimSids = new Set(before.filter((_, i) => onVictim[i]).map((b) => b.sids[0]));
  const victimLines = log.filter((l) => l.sid && victimSids.has(l.sid));
  const victimServed = victimLines.filter((l) => l.attempts.length === 1 && lastPort(l) === victimPort && (l.status === 200 || l.status === 101));
  const victimStatuses = countBy(victimLines, (l) => l.sticky);
  const handshakes = log.filter((l) => !l.sid);
  const handshakesToVictim = handshakes.filter((l) => l.attempts.some((a) => a.port === victimPort));
  const otherSids = new Set(before.filter((_, i) => !onVictim[i]).map((b) => b.sids[0]));
  const othersToVictim = log.filter((l) => l.sid && otherSids.has(l.sid) && l.attempts.some((a) => a.port === victimPort));

  // The new sessions: during the drain, and after it.
  const okFresh = fresh.filter((r) => r.ok);
  const freshPer = countBy(okFresh, (r) => r.backend);
  const freshOnVictim = fresh.filter((r) => r.backends.includes(victim)).length;
  const okBack = back.filter((r) => r.ok);
  const backPer = countBy(okBack, (r) => r.backend);
  const sessionErrors = (rs) => countBy(rs.filter((r) => !r.ok), (r) => mainError(r).replace(/[A-Za-z0-9_-]{20,}/g, "<sid>"));

  // The error log, since the scenario began.
  const errorLines = linesFrom(errorLog, errorLogFrom);
  const severe = errorLines.filter((l) => /\[(alert|crit|emerg)\]/.test(l));
  const levels = countBy(errorLines.filter((l) => /^\S+ \S+ \[\w+\]/.test(l)), (l) => /\[(\w+)\]/.exec(l)[1]);

  ctx.row({ scenario: `drain ${victim}`, sessions: p.sessions, ok: count(okAll), failed: p.sessions - count(okAll), reconnected, toDead: "-",
    time: sec(undrain.t0 - started), notes: `${affected} on ${victim}; after the drain ${victim} served ${victimServed.length} requests of them, ${victimAnswers} whoami` });
  ctx.row({ scenario: "drain: new", sessions: fresh.length, ok: okFresh.length, failed: fresh.length - okFresh.length, reconnected: "-", toDead: "-",
    time: "", notes: `on ${perBackend(freshPer)}` });
  ctx.row({ scenario: "drain: undone", sessions: back.length, ok: okBack.length, failed: back.length - okBack.length, reconnected: "-", toDead: "-",
    time: "", notes: `on ${perBackend(backPer)}` });

  ctx.info(`drain: nginx ${version}; reload with ${victim} draining done ${sec(drain.t1 - drain.t0)} after the request, ` +
    `its sessions kept calling ${sec(windowEnd - drain.t1)}; ${affected} sessions on ${victim} (${victimPolling} polling only)`);
  ctx.info(`drain: requests with the sids of ${victim}'s sessions after the drain: ${victimLines.length}, by $socketio_sticky_status: ` +
    `${fmtCounts(victimStatuses)}, by status: ${fmtCounts(countBy(victimLines, (l) => l.status))}; handshakes after the drain: ${handshakes.length}, ` +
    `to ${victim}: ${handshakesToVictim.length}; requests of the other sessions that tried ${victim}: ${othersToVictim.length}`);
  ctx.info(`drain: error log since the scenario began: ${fmtCounts(levels)}`);
  const errs = errorKinds(clients);
  if (Object.keys(errs).length) ctx.info(`drain: errors of the long-lived sessions: ${fmtCounts(errs)}`);
  const freshErrs = sessionErrors(fresh.concat(back));
  if (Object.keys(freshErrs).length) ctx.info(`drain: failed new sessions: ${fmtCounts(freshErrs)}`);

  ctx.check(affected > 0 && okVictim === affected && victimAnswers > 0,
    `drain: ${victim}'s sessions went on through the drain on ${victim}, same sid, no error, no reconnect: ${okVictim} of ${affected} ` +
    `(need > 0 sessions there); ${victimAnswers} whoami answered by ${victim} after the drain (need > 0)`);
  ctx.check(okOthers === p.sessions - affected && reconnected === 0,
    `drain: the other sessions noticed nothing: ${okOthers} of ${p.sessions - affected}; reconnects of all ${p.sessions} sessions: ${reconnected} (need 0)`);
  ctx.check(victimPolling > 0 && victimLines.length > 0 && victimServed.length === victimLines.length &&
    (victimStatuses.learned || 0) === victimLines.length && othersToVictim.length === 0,
    `drain: after the drain, requests of ${victim}'s sessions sent to ${victim} alone and answered: ${victimServed.length} of ${victimLines.length}, ` +
    `learned ${victimStatuses.learned || 0} (need all, > 0); requests of other sessions that tried ${victim}: ${othersToVictim.length} (need 0)`);
  ctx.check(fresh.length > 0 && okFresh.length === fresh.length && freshOnVictim === 0 && handshakesToVictim.length === 0 &&
    others.every((b) => (freshPer[b] || 0) > 0),
    `drain: new sessions while ${victim} drains: ${okFresh.length} of ${fresh.length} ok, on ${perBackend(freshPer)} ` +
    `(need none on ${victim}, some on each of ${others.join(", ")}); handshakes that reached ${victim}: ${handshakesToVictim.length} of ${handshakes.length} (need 0)`);
  ctx.check(back.length > 0 && okBack.length === back.length && (backPer[victim] || 0) > 0,
    `drain: once ${victim} drains no more, new sessions: ${okBack.length} of ${back.length} ok, on ${perBackend(backPer)} (need some on ${victim})`);
  ctx.check(severe.length === 0,
    `drain: no [alert], [crit] or [emerg] in the error log since the scenario began: ${severe.length}${severe.length ? ": " + severe.slice(0, 3).join(" | ") : ""}`);
}

// ---- the table of scenarios ------------------------------------------------------------------

const SCENARIOS = {
  kill: {
    run: scenarioKill,
    full: { sessions: 500, newSessions: 100, finalWindowMs: 2500, trickleMs: 100 },
    quick: { sessions: 120, newSessions: 60, finalWindowMs: 2000, trickleMs: 100 },
  },
  strict: {
    run: scenarioStrict,
    full: { sessions: 400, afterMs: 2000 },
    quick: { sessions: 120, afterMs: 2000 },
  },
  least: {
    run: scenarioLeast,
    full: { sessions: 400, closeShare: 0.8, more: 200, minShare: 0.75 },
    quick: { sessions: 200, closeShare: 0.8, more: 100, minShare: 0.75 },
  },
  reload: {
    run: scenarioReload,
    full: { sessions: 1000, concurrency: 200, calls: 6, gapMs: 500 },
    quick: { sessions: 200, concurrency: 100, calls: 6, gapMs: 500 },
  },
  upgrade: {
    run: scenarioUpgrade,
    full: { polling: 300, websockets: 100, afterMs: 5000 },
    quick: { polling: 100, websockets: 40, afterMs: 4000 },
  },
  tiny: {
    run: scenarioTiny,
    full: { capacityProbe: 1500, waves: 10, waveSize: 300, concurrency: 50, calls: 2, gapMs: 50, lastProbe: 100, rssSlackKiB: 256 },
    quick: { capacityProbe: 1500, waves: 6, waveSize: 250, concurrency: 50, calls: 2, gapMs: 50, lastProbe: 100, rssSlackKiB: 256 },
  },
  drain: {
    run: scenarioDrain,
    full: { sessions: 300, fresh: 200, back: 100, afterMs: 6000 },
    quick: { sessions: 80, fresh: 60, back: 40, afterMs: 4000 },
  },
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  for (const s of args.scenarios) if (!SCENARIOS[s]) throw new Error(`unknown scenario ${s} (${Object.keys(SCENARIOS).join(", ")})`);
  const portOf = {};
  for (const b of args.backends) portOf[b.id] = b.port;
  for (const b of args.backends) {
    const s = await getJson(`${b.url}/stats`);
    if (s.backend !== b.id) throw new Error(`${b.url} is ${s.backend}, not ${b.id}`);
  }
  const rows = [];
  const reports = [];
  const t0 = Date.now();
  for (const name of args.scenarios) {
    const rep = { name, lines: [], skips: [], checks: [] };
    reports.push(rep);
    const ctx = {
      args,
      url: args.url,
      portOf,
      row: (r) => rows.push(r),
      info: (text) => rep.lines.push(`info: ${text}`),
      skip: (text) => {
        rep.skips.push(text);
        rows.push({ scenario: name, sessions: "-", ok: "-", failed: "-", reconnected: "-", toDead: "-", time: "", notes: "skipped" });
      },
      check: (ok, text) => rep.checks.push({ ok: Boolean(ok), text }),
      progress: (text) => process.stderr.write(`==> ${text}\n`),
      control: (cmd) => control(args.ctl, cmd),
      readLog: () => readAccessLog(args["access-log"]),
      workers: () => nginxWorkers(args["nginx-pid-file"], Number(new URL(args.url).port)),
    };
    const s0 = Date.now();
    try {
      await SCENARIOS[name].run(ctx, SCENARIOS[name][args.mode]);
    } catch (e) {
      ctx.check(false, `${name}: stopped by an error: ${e.stack || e}`);
    }
    ctx.progress(`${name}: ${sec(Date.now() - s0)}`);
  }

  console.log("");
  const line = (...cols) => console.log(cols.map(([s, n]) => pad(s, n)).join(" ").trimEnd());
  line(["scenario", 14], ["sessions", 8], ["ok", 5], ["failed", 6], ["reconnected", 11], ["to dead backend while marked failed", 36], ["time", 6],
    ["notes", 0]);
  for (const r of rows) {
    line([r.scenario, 14], [r.sessions, 8], [r.ok, 5], [r.failed, 6], [r.reconnected, 11], [r.toDead, 36], [r.time, 6], [r.notes || "", 0]);
  }
  for (const rep of reports) {
    console.log("");
    for (const l of rep.lines) console.log(l);
    for (const l of rep.skips) console.log(`skip: ${l}`);
    for (const c of rep.checks) console.log(`check: ${c.ok ? "PASS" : "FAIL"} ${c.text}`);
  }
  console.log(`info: scenarios took ${sec(Date.now() - t0)}`);
  const all = reports.flatMap((r) => r.checks);
  const skipped = reports.filter((r) => r.skips.length).length;
  process.exitCode = (all.length > 0 || skipped > 0) && all.every((c) => c.ok) ? 0 : 1;
}

main().catch((e) => {
  console.error(`faults.js: ${e.stack || e}`);
  process.exitCode = 2;
}).finally(() => setTimeout(() => process.exit(), 1000).unref());
