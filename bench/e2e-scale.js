// The driver of bench/e2e-scale: many real Socket.IO 4 sessions held open at once through nginx.
//
//   node bench/e2e-scale.js --upstream NAME=URL [--upstream NAME=URL ...] --backends URL,URL,...
//       [--counts 1000,5000] [--concurrency 200] [--warmup 300] [--sticky NAME] [--json FILE]
//       [--nginx-pid PID]
//
// First --warmup sessions (at most the largest N) through each upstream, opened, closed and not
// counted. Then for each count N and each upstream (in the order given): opens N socket.io-client sessions
// through URL, `--concurrency` of them connecting at a time, with the client's default
// transports (a polling handshake, then the upgrade to websocket). A session is up when it has
// connected, its transport is websocket and one `whoami` call over the websocket was answered
// by the backend that holds its Engine.IO session (the answer's engine id is the client's).
// Every session that is up stays open until all N are up; then all are closed. Per run: the
// sessions up and failed, the connect time (from creating the client to its `connect` event),
// the time until all N were up, the sessions per backend (from the whoami answers; the
// backends' /stats give their handshakes and upgrades), and the CPU time that nginx's workers
// (the children of --nginx-pid), the backends and this client used meanwhile.
//
// Prints a markdown table and one "check: PASS|FAIL ..." line per check (for the upstream named
// by --sticky, socketio_sticky: every session up, and its sessions spread over every backend);
// --json FILE writes every number, with each session's times. Exit code 0 iff all checks passed.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { createRequire } = require("module");
const { performance } = require("perf_hooks");

const E2E = path.join(__dirname, "..", "t", "e2e");
const { MODES, describe, runMany, backendStats, statsDelta } = require(path.join(E2E, "client.js"));
const { io } = createRequire(path.join(E2E, "client.js"))("socket.io-client");

const TIMEOUTS = {
  // Generous: on a busy 2-core machine a session waits for a free CPU more than for nginx.
  connectMs: 30000,
  ackMs: 20000,
  sessionMs: 60000,
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// CPU time (user + system, ms) of processes, from /proc/PID/stat; 0 for one that is gone.
let clkTck = 100;
try {
  clkTck = Number(require("child_process").execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
} catch (e) {
  // keep 100, Linux's usual USER_HZ
}
function statFields(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" "); // [0] is field 3 (state)
  } catch (e) {
    return null;
  }
}
function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]); // utime, stime
  }
  return (ticks * 1000) / clkTck;
}
// The worker processes of nginx's master: the processes whose parent it is.
function childrenOf(ppid) {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(d);
    if (f && Number(f[1]) === ppid) out.push(Number(d));
  }
  return out;
}
function clientCpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function parseArgs(argv) {
  const a = { upstreams: [], counts: [1000, 5000], concurrency: 200, warmup: 300, sticky: "socketio_sticky", json: "" };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === "--upstream") {
      const eq = v.indexOf("=");
      if (eq < 1) throw new Error(`--upstream NAME=URL, not ${v}`);
      a.upstreams.push({ name: v.slice(0, eq), url: v.slice(eq + 1) });
    } else if (k === "--backends") a.backends = v.split(",");
    else if (k === "--counts") a.counts = v.split(",").map(Number);
    else if (k === "--concurrency") a.concurrency = Number(v);
    else if (k === "--warmup") a.warmup = Number(v);
    else if (k === "--sticky") a.sticky = v;
    else if (k === "--nginx-pid") a.nginxPid = Number(v);
    else if (k === "--json") a.json = v;
    else throw new Error(`unknown option ${k}`);
  }
  if (!a.upstreams.length) throw new Error("--upstream NAME=URL is required");
  if (!a.backends) throw new Error("--backends is required");
  if (a.counts.some((n) => !(n > 0)) || !(a.concurrency > 0) || !(a.warmup >= 0)) {
    throw new Error("bad --counts, --concurrency or --warmup");
  }
  return a;
}

// Opens one session and resolves (never rejects) when it is up or has failed. A session that is
// up keeps its socket open (res.socket); a failed one is closed.
function openSession(url, t0run) {
  const res = {
    ok: false,
    startMs: 0, // when the client was created, from the start of the run
    connectMs: null, // creating the client -> `connect`
    readyMs: null, // creating the client -> upgraded and whoami answered over websocket
    backend: null,
    engineId: null,
    error: null,
    droppedWhileHeld: null, // the disconnect reason of a session that was up and then lost
    socket: null,
  };
  const t0 = performance.now();
  res.startMs = Math.round(t0 - t0run);
  return new Promise((resolve) => {
    let settled = false;
    const socket = io(url, {
      transports: MODES.default, // polling, then the upgrade to websocket
      reconnection: false,
      forceNew: true,
      timeout: TIMEOUTS.connectMs,
    });
    const settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      if (err) {
        res.error = err;
        socket.disconnect();
      } else {
        res.ok = true;
        res.socket = socket;
      }
      resolve(res);
    };
    const guard = setTimeout(() => settle(`not up after ${TIMEOUTS.sessionMs} ms`), TIMEOUTS.sessionMs);

    socket.on("connect_error", (err) => settle(`connect_error: ${describe(err)}`));
    socket.on("disconnect", (reason, details) => {
      const why = `${reason}${details ? ": " + describe(details) : ""}`;
      if (settled) {
        if (res.ok && res.droppedWhileHeld === null && reason !== "io client disconnect") res.droppedWhileHeld = why;
      } else settle(`disconnect: ${why}`);
    });
    socket.io.on("open", () => {
      socket.io.engine.on("upgradeError", (err) => settle(`upgrade failed: ${describe(err)}`));
    });

    const upgraded = () =>
      new Promise((ok) => {
        const engine = socket.io.engine;
        if (engine.transport.name === "websocket") return ok();
        engine.once("upgrade", () => ok());
      });

    socket.on("connect", async () => {
      res.connectMs = performance.now() - t0;
      res.engineId = socket.io.engine.id;
      try {
        await upgraded();
        if (settled) return;
        let a;
        try {
          a = await socket.timeout(TIMEOUTS.ackMs).emitWithAck("whoami");
        } catch (e) {
          throw new Error(`no answer to whoami: ${describe(e)}`);
        }
        res.backend = a.backend;
        if (a.engineId !== res.engineId) throw new Error(`engine id ${res.engineId} answered as ${a.engineId} by ${a.backend}`);
        if (a.socketId !== socket.id) throw new Error(`socket id ${socket.id} answered as ${a.socketId} by ${a.backend}`);
        if (a.transport !== "websocket") throw new Error(`whoami answered over ${a.transport}, not websocket, by ${a.backend}`);
        res.readyMs = performance.now() - t0;
        settle(null);
      } catch (e) {
        settle(e.message);
      }
    });
  });
}

// Nearest-rank percentile of sorted numbers.
function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1];
}

const r1 = (x) => (x === null ? null : Math.round(x * 10) / 10);

async function run(up, n, concurrency, ids, backends, procs) {
  const before = await backendStats(backends);
  const cpu0 = {
    nginx: cpuMs(procs.nginx),
    backends: cpuMs(procs.backends),
    each: procs.backends.map((pid) => cpuMs([pid])),
    client: clientCpuMs(),
  };
  const t0 = performance.now();
  let lastUp = t0;
  const results = await runMany(n, concurrency, async () => {
    const r = await openSession(up.url, t0);
    if (r.ok) lastUp = performance.now();
    return r;
  });
  const openAllMs = performance.now() - t0;
  // CPU spent while the N sessions were opened (the run's work, without the closing).
  const cpu = {
    nginx: Math.round(cpuMs(procs.nginx) - cpu0.nginx),
    backends: Math.round(cpuMs(procs.backends) - cpu0.backends),
    client: Math.round(clientCpuMs() - cpu0.client),
    per_backend: Object.fromEntries(ids.map((id, i) => [id, Math.round(cpuMs([procs.backends[i]]) - cpu0.each[i])])),
  };
  const ok = results.filter((r) => r.ok);
  // Every session that came up is still open now, with all the others.
  const heldOpen = ok.filter((r) => r.socket.connected && r.socket.io.engine.transport.name === "websocket").length;
  const dropped = ok.filter((r) => r.droppedWhileHeld !== null);
  for (const r of results) if (r.socket) r.socket.disconnect();
  const closedAt = performance.now();
  await sleep(Math.min(5000, 500 + n / 2)); // let the backends see the closes before the next run
  const delta = statsDelta(before, await backendStats(backends));

  const perBackend = {};
  for (const id of ids) perBackend[id] = 0;
  for (const r of ok) perBackend[r.backend] = (perBackend[r.backend] || 0) + 1;
  const errors = {};
  for (const r of results) {
    if (r.ok) continue;
    const key = r.error.replace(/[A-Za-z0-9_-]{20}/g, "<sid>");
    errors[key] = (errors[key] || 0) + 1;
  }
  const connects = results.filter((r) => r.connectMs !== null).map((r) => r.connectMs).sort((a, b) => a - b);
  const readies = ok.map((r) => r.readyMs).sort((a, b) => a - b);
  return {
    upstream: up.name,
    n,
    concurrency,
    up: ok.length,
    failed: n - ok.length,
    connected: connects.length, // reached `connect` (whether or not the rest succeeded)
    held_open: heldOpen,
    dropped_while_held: dropped.length,
    dropped_reasons: [...new Set(dropped.map((r) => r.droppedWhileHeld))].slice(0, 5),
    connect_ms: { median: r1(pct(connects, 0.5)), p99: r1(pct(connects, 0.99)), max: r1(connects[connects.length - 1] ?? null) },
    ready_ms: { median: r1(pct(readies, 0.5)), p99: r1(pct(readies, 0.99)), max: r1(readies[readies.length - 1] ?? null) },
    open_all_ms: Math.round(openAllMs),
    last_up_ms: Math.round(lastUp - t0),
    close_ms: Math.round(closedAt - t0 - openAllMs),
    cpu_ms: cpu, // CPU time used while opening: nginx's workers, the backends (and each), this client
    per_backend: perBackend,
    backends_used: Object.values(perBackend).filter((c) => c > 0).length,
    handshakes: Object.fromEntries(ids.map((id) => [id, delta[id].handshakes])),
    upgrades: Object.fromEntries(ids.map((id) => [id, delta[id].upgrades])),
    backend_rejected: Object.fromEntries(ids.map((id) => [id, delta[id].rejected])),
    errors,
    sessions: {
      // one entry per session, in the order they were started; times in ms, null when not reached
      start_ms: results.map((r) => r.startMs),
      connect_ms: results.map((r) => r1(r.connectMs)),
      ready_ms: results.map((r) => r1(r.readyMs)),
      backend: results.map((r) => r.backend),
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const stats0 = await backendStats(args.backends);
  const ids = Object.keys(stats0).sort();
  const procs = {
    nginx: args.nginxPid ? childrenOf(args.nginxPid) : [],
    backends: ids.map((id) => stats0[id].pid),
  };
  // Warm-up, not measured: a first burst pays for Node's JIT and nginx's first connections,
  // which would otherwise count against whichever upstream comes first.
  for (const up of args.upstreams) {
    const n = Math.min(args.warmup, Math.max(...args.counts));
    if (n === 0) continue;
    const rs = await runMany(n, args.concurrency, () => openSession(up.url, performance.now()));
    for (const r of rs) if (r.socket) r.socket.disconnect();
    const bad = rs.filter((r) => !r.ok).length;
    console.error(`==> warm-up through ${up.name}: ${n} sessions${bad ? `, ${bad} failed` : ""}`);
  }
  if (args.warmup > 0) await sleep(500);
  const runs = [];
  for (const n of args.counts) {
    for (const up of args.upstreams) {
      console.error(`==> ${up.name}: ${n} sessions, ${args.concurrency} connecting at a time`);
      const r = await run(up, n, args.concurrency, ids, args.backends, procs);
      runs.push(r);
      console.error(`    ${r.up} up, ${r.failed} failed, all up in ${(r.open_all_ms / 1000).toFixed(1)} s`);
    }
  }

  // The table.
  const fmt = (x) => (x === null ? "-" : String(x));
  const secs = (ms, d = 1) => (ms / 1000).toFixed(d);
  console.log("");
  console.log(`| upstream | N | connected | failed | connect median (ms) | connect p99 (ms) | up median / p99 (ms) | time to open all N (s) | CPU s: nginx / backends / client | clients per backend |`);
  console.log(`| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |`);
  for (const r of runs) {
    const per = ids.map((id) => `${id} ${r.per_backend[id]}`).join(", ");
    console.log(`| ${r.upstream} | ${r.n} | ${r.up} | ${r.failed} | ${fmt(r.connect_ms.median)} | ${fmt(r.connect_ms.p99)} | ` +
      `${fmt(r.ready_ms.median)} / ${fmt(r.ready_ms.p99)} | ${secs(r.open_all_ms)} | ` +
      `${procs.nginx.length ? secs(r.cpu_ms.nginx, 2) : "-"} / ${secs(r.cpu_ms.backends, 2)} / ${secs(r.cpu_ms.client, 2)} | ${per} |`);
  }
  console.log("");
  console.log(`connected: sessions that connected, upgraded to websocket and had whoami answered over it, ` +
    `all open at once; connect: creating the client -> \`connect\`; up: -> the whoami answer over websocket; ` +
    `${args.concurrency} sessions connecting at a time; CPU: used while opening, by nginx's workers, ` +
    `the ${ids.length} backends and the client. Clients, nginx and backends share ${os.cpus().length} CPUs: ` +
    `the times are mostly the processes waiting for a CPU.`);
  for (const r of runs) {
    if (r.upstream === args.sticky || r.backends_used !== 1) continue;
    const only = ids.find((id) => r.per_backend[id] > 0);
    console.log(`note: ${r.upstream} N=${r.n}: all ${r.up} clients on ${only}: every client comes from 127.0.0.1, ` +
      `so ${r.upstream} sends them all to one backend (behind a NAT, a CDN or an L4 balancer the same happens). ` +
      `Here the four backends share the CPUs with nginx and the client, so piling every session on one ` +
      `backend is no slower (one process does the work of four): the table shows where the sessions go, ` +
      `not what an overloaded backend costs.`);
  }

  // Failures.
  for (const r of runs) {
    if (r.failed === 0 && r.dropped_while_held === 0) continue;
    console.log(`\n${r.upstream} N=${r.n}: ${r.failed} failed, ${r.dropped_while_held} dropped while held; client-side errors:`);
    for (const [k, c] of Object.entries(r.errors).sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`  ${c} x ${k}`);
    for (const d of r.dropped_reasons) console.log(`  dropped: ${d}`);
    console.log(`  backends rejected: ${JSON.stringify(r.backend_rejected)}`);
  }

  // The checks.
  console.log("");
  const checks = [];
  const check = (ok, text) => {
    checks.push(ok);
    console.log(`check: ${ok ? "PASS" : "FAIL"} ${text}`);
  };
  for (const r of runs.filter((x) => x.upstream === args.sticky)) {
    const tag = `${r.upstream} N=${r.n}`;
    check(r.up === r.n && r.held_open === r.n && r.dropped_while_held === 0,
      `${tag}: ${r.up} of ${r.n} sessions connected, upgraded to websocket and answered whoami with their own engine id, ` +
      `${r.held_open} open at once (${r.failed} failed, ${r.dropped_while_held} dropped)`);
    const per = ids.map((id) => r.per_backend[id]);
    const hs = ids.map((id) => r.handshakes[id]);
    const ug = ids.map((id) => r.upgrades[id]);
    check(per.join(" ") === hs.join(" ") && per.join(" ") === ug.join(" "),
      `${tag}: each backend answered exactly the sessions it made the handshake and the upgrade of ` +
      `(answers ${per.join(" ")}, handshakes ${hs.join(" ")}, upgrades ${ug.join(" ")})`);
    const fair = r.n / ids.length;
    check(per.every((c) => c >= fair / 2),
      `${tag}: clients spread over all ${ids.length} backends (${ids.map((id) => `${id} ${r.per_backend[id]}`).join(", ")}; ` +
      `need >= ${Math.ceil(fair / 2)} each)`);
  }

  if (args.json) {
    const out = {
      generated: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      concurrency: args.concurrency,
      counts: args.counts,
      upstreams: args.upstreams.map((u) => u.name),
      backends: ids,
      checks_passed: checks.filter((c) => c).length,
      checks_failed: checks.filter((c) => !c).length,
      runs,
    };
    fs.writeFileSync(args.json, JSON.stringify(out) + "\n");
    console.error(`==> wrote ${args.json}`);
  }
  process.exitCode = checks.every((c) => c) ? 0 : 1;
}

main().catch((e) => {
  console.error(`e2e-scale.js: ${e.stack || e}`);
  process.exitCode = 2;
}).finally(() => setTimeout(() => process.exit(), 1000).unref());
