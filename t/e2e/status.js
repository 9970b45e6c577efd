// The driver of t/e2e/status (which starts the backends, nginx and Prometheus, and reads the
// output): runs socket.io-client sessions through nginx, then compares what the module's status
// endpoint shows, as Prometheus scraped it, as JSON and as the HTML page rendered by headless
// Chromium, with what the backends, the clients and nginx's access log saw.
//
//   node status.js --nginx URL --upstream NAME --backends b1=URL,b2=URL,... --backend-logs DIR
//       --prometheus URL --access-log FILE --chromium PATH --dir DIR --screenshot FILE
//       [--sessions 40] [--concurrency 20]
//
// The clients' requests are counted in this process: every HTTP request socket.io-client makes
// (polling requests through xmlhttprequest-ssl, websocket handshakes through ws) goes through
// http.request, which is wrapped here; each session carries a query argument `tag` of its own,
// so each request is counted for its session, and so for the backend that answered the session:
// a request with a sid goes by `learned`, a handshake with a device id by `device_id`, one
// without by `fallback`.
//
// Chromium is driven over the DevTools protocol (the `ws` package that socket.io brings): the
// page is loaded from /status with Chromium's own Accept header (text/html), read as the server
// wrote it, then again after its script rebuilt it from ?format=json; the screenshot is taken
// then. Prints a table and one "check: PASS|FAIL ..." line per check; exit code 0 iff all passed.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const { spawn } = require("child_process");
const { runSession, runMany, getJson } = require("./client.js");

const ROUTES = ["learned", "device_id", "route", "cookie", "fallback", "rebound", "prefix"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
let stageT = t0;
const stage = (name) => {
  const now = Date.now();
  console.log(`stage: ${name.padEnd(40)} ${((now - stageT) / 1000).toFixed(1).padStart(6)}s`);
  stageT = now;
};

function parseArgs(argv) {
  const a = { sessions: 40, concurrency: 20 };
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const k of ["nginx", "upstream", "backends", "backend-logs", "prometheus", "access-log", "chromium", "dir", "screenshot"]) {
    if (!a[k]) throw new Error(`--${k} is required`);
  }
  a.sessions = Number(a.sessions);
  a.concurrency = Number(a.concurrency);
  // b1=http://127.0.0.1:PORT -> { id, url, address }
  a.backends = a.backends.split(",").map((s) => {
    const [id, url] = s.split("=");
    return { id, url, address: new URL(url).host };
  });
  return a;
}

// ---- the clients' requests, counted per session -----------------------------------------------

const sent = new Map(); // tag -> { learned, device_id, fallback }
function countRequests(nginxUrl) {
  const port = String(new URL(nginxUrl).port);
  const original = http.request;
  http.request = function request(...args) {
    try {
      const a = args[0];
      let p, reqPort;
      if (typeof a === "string" || a instanceof URL) {
        const u = new URL(a);
        p = u.pathname + u.search;
        reqPort = u.port;
      } else if (a && typeof a === "object") {
        p = a.path || "/";
        reqPort = a.port;
      }
      if (p !== undefined && String(reqPort) === port && p.startsWith("/socket.io/")) {
        const q = new URLSearchParams(p.slice(p.indexOf("?") + 1));
        const tag = q.get("tag");
        if (!sent.has(tag)) sent.set(tag, { learned: 0, device_id: 0, fallback: 0 });
        const route = q.get("sid") ? "learned" : q.get("device_id") ? "device_id" : "fallback";
        sent.get(tag)[route]++;
      }
    } catch (e) {
      console.error(`status.js: counting a request: ${e.message}`);
    }
    return original.apply(this, args);
  };
}

// ---- Prometheus ---------------------------------------------------------------------------------

async function promQuery(base, q) {
  const r = await getJson(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r.status !== "success") throw new Error(`prometheus: ${q}: ${JSON.stringify(r)}`);
  return r.data.result.map((x) => ({ labels: x.metric, value: Number(x.value[1]) }));
}

// The raw samples of a range vector: [{ labels, values: [[ts, "v"], ...] }].
async function promMatrix(base, q) {
  const r = await getJson(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r.status !== "success" || r.data.resultType !== "matrix") throw new Error(`prometheus: ${q}: ${JSON.stringify(r)}`);
  return r.data.result.map((x) => ({ labels: x.metric, values: x.values }));
}

// Waits until every job has a scrape that started after `afterMs`, healthy; returns the targets.
async function waitForScrape(base, jobs, afterMs, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    const ts = await promQuery(base, "timestamp(socketio_sticky_info)");
    last = ts;
    const fresh = jobs.every((j) => ts.some((x) => x.labels.job === j && x.value * 1000 > afterMs));
    if (fresh) break;
    if (Date.now() > until) return { ok: false, last };
    await sleep(200);
  }
  const targets = (await getJson(`${base}/api/v1/targets?state=active`)).data.activeTargets;
  return { ok: true, targets };
}

// ---- nginx's access log ---------------------------------------------------------------------------

// Lines: $upstream_addr $socketio_sticky_status $status $pid "$arg_device_id" "$request".
function readAccessLog(file) {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  const per = {}; // address -> route -> n
  const odd = [];
  const byStatus = {};
  for (const line of lines) {
    const m = /^(\S+) (\S+) (\d+) (\d+) "([^"]*)" "(.*)"$/.exec(line);
    if (!m) {
      odd.push(line);
      continue;
    }
    const [, addr, st, code, , device] = m;
    byStatus[st] = (byStatus[st] || 0) + 1;
    // `new`: a handshake whose response taught its sid; it went by the device id or by round
    // robin (a request without a sid, a route label or a cookie).
    const route = st === "new" ? (device && device !== "-" ? "device_id" : "fallback") : st;
    if (addr.includes(",") || !ROUTES.includes(route) || !/^(101|200)$/.test(code)) odd.push(line);
    if (addr === "-" || !ROUTES.includes(route)) continue;
    for (const a of addr.split(", ")) {
      per[a] = per[a] || Object.fromEntries(ROUTES.map((r) => [r, 0]));
      per[a][route]++;
    }
  }
  return { lines: lines.length, per, odd, byStatus };
}

// ---- Chromium over the DevTools protocol -------------------------------------------------------

class Cdp {
  constructor(url) {
    const WebSocket = require("ws");
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    this.id = 0;
    this.pending = new Map();
    this.listeners = [];
    this.ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      if (m.id !== undefined && this.pending.has(m.id)) {
        const { resolve, reject, method } = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) reject(new Error(`${method}: ${m.error.message}`));
        else resolve(m.result);
      } else if (m.method) {
        for (const l of this.listeners) l(m);
      }
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
    });
  }

  send(method, params = {}, sessionId = undefined) {
    const id = ++this.id;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.ws.send(JSON.stringify(msg));
    });
  }

  waitFor(method, sessionId, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((x) => x !== l);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const l = (m) => {
        if (m.method !== method || (sessionId && m.sessionId !== sessionId)) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((x) => x !== l);
        resolve(m.params);
      };
      this.listeners.push(l);
    });
  }

  close() {
    this.ws.terminate();
  }
}

// What the page shows of upstream `name` (run in the page).
const READ_PAGE = (name) => `(() => {
  const text = (e) => (e ? e.innerText.trim() : null);
  const sec = [...document.querySelectorAll("section.upstream[data-upstream]")]
    .find((s) => s.getAttribute("data-upstream") === ${JSON.stringify(name)});
  const updated = document.getElementById("updated");
  return {
    contentType: document.contentType,
    title: document.title,
    upstreams: [...document.querySelectorAll("section.upstream[data-upstream]")].map((s) => s.getAttribute("data-upstream")),
    updated: text(updated),
    failed: updated ? updated.classList.contains("failed") : null,
    servers: sec ? [...sec.querySelectorAll("div.server[data-upstream][data-address][data-sessions]")].map((d) => {
      const ths = [...d.querySelectorAll("table.routes th")].map((e) => e.textContent.trim());
      const tds = [...d.querySelectorAll("table.routes td")].map((e) => e.textContent.trim());
      return {
        upstream: d.getAttribute("data-upstream"),
        address: d.getAttribute("data-address"),
        sessions: d.getAttribute("data-sessions"),
        shown: text(d.querySelector("span.sessions")),
        name: text(d.querySelector(".name")),
        state: text(d.querySelector(".state")),
        routes: Object.fromEntries(ths.map((r, i) => [r, tds[i]])),
      };
    }) : null,
    height: document.documentElement.scrollHeight,
  };
})()`;

async function chromiumPage(o) {
  const profile = path.join(o.dir, "chromium-profile");
  fs.rmSync(profile, { recursive: true, force: true });
  const log = fs.openSync(path.join(o.dir, "logs", "chromium.log"), "w");
  const args = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-sync", "--disable-background-networking", "--disable-component-update",
    "--disable-breakpad", "--disable-crash-reporter", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
    `--user-data-dir=${profile}`, "--remote-debugging-port=0", "--window-size=1280,800", "about:blank",
  ];
  // A process group of its own, so that everything it starts is stopped with it.
  const child = spawn(o.chromium, args, { detached: true, stdio: ["ignore", log, log] });
  fs.writeFileSync(path.join(o.dir, "chromium.pid"), `${child.pid}\n`);
  let exited = null;
  child.on("exit", (code, sig) => (exited = sig || code));
  const stop = () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch (e) {
      // gone already
    }
  };
  process.on("exit", stop);
  const res = { jsonRefreshes: 0, jsonFailures: [] };
  let cdp;
  try {
    // Chromium writes its port and browser target into DevToolsActivePort.
    const portFile = path.join(profile, "DevToolsActivePort");
    let wsUrl = null;
    for (let i = 0; i < 300 && !wsUrl; i++) {
      if (exited !== null) throw new Error(`chromium exited (${exited}); see logs/chromium.log`);
      const lines = fs.existsSync(portFile) ? fs.readFileSync(portFile, "utf8").split("\n") : [];
      if (lines.length >= 2 && lines[1]) wsUrl = `ws://127.0.0.1:${lines[0]}${lines[1]}`;
      else await sleep(50);
    }
    if (!wsUrl) throw new Error("chromium wrote no DevToolsActivePort within 15 s");
    cdp = new Cdp(wsUrl);
    await cdp.opened;
    const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
    const s = (m, p) => cdp.send(m, p, sessionId);
    await s("Page.enable");
    await s("Runtime.enable");
    await s("Network.enable");
    await s("Emulation.setDeviceMetricsOverride", { width: 1280, height: 800, deviceScaleFactor: 1, mobile: false });
    cdp.listeners.push((m) => {
      if (m.sessionId !== sessionId || m.method !== "Network.responseReceived") return;
      const r = m.params.response;
      if (!/[?&]format=json\b/.test(r.url)) return;
      if (r.status === 200 && /^application\/json/.test(r.mimeType)) res.jsonRefreshes++;
      else res.jsonFailures.push(`${r.status} ${r.mimeType}`);
    });
    const evaluate = async (expression) => {
      const r = await s("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
      if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.text} ${JSON.stringify(r.exceptionDetails.exception || {})}`);
      return r.result.value;
    };

    const loaded = cdp.waitFor("Page.loadEventFired", sessionId, 15000);
    const nav = await s("Page.navigate", { url: o.url });
    if (nav.errorText) throw new Error(`navigating to ${o.url}: ${nav.errorText}`);
    await loaded;
    res.initial = await evaluate(READ_PAGE(o.upstream));
    // The script replaces the sections 2 s after the load: wait for elements it built.
    await evaluate(`window.__serverRendered = document.querySelector("section.upstream"); true`);
    const until = Date.now() + 10000;
    let rebuilt = false;
    while (!rebuilt && Date.now() < until) {
      await sleep(200);
      rebuilt = await evaluate(`(() => { const s = document.querySelector("section.upstream");
        return s !== null && s !== window.__serverRendered; })()`);
    }
    res.rebuilt = rebuilt;
    res.refreshed = await evaluate(READ_PAGE(o.upstream));
    // The viewport (1280x800) down to the end of the content.
    const bottom = await evaluate(`Math.ceil(document.querySelector("main").getBoundingClientRect().bottom)`);
    const clip = { x: 0, y: 0, width: 1280, height: Math.max(200, Math.min(800, bottom)), scale: 1 };
    const shot = await s("Page.captureScreenshot", { format: "png", clip });
    res.screenshotSize = `${clip.width}x${clip.height}`;
    const png = Buffer.from(shot.data, "base64");
    fs.mkdirSync(path.dirname(o.screenshot), { recursive: true });
    fs.writeFileSync(o.screenshot, png);
    res.screenshotBytes = png.length;
    await cdp.send("Browser.close").catch(() => {});
  } finally {
    if (cdp) cdp.close();
    for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
    stop();
  }
  return res;
}

// ---- the test -------------------------------------------------------------------------------------

async function main() {
  const a = parseArgs(process.argv.slice(2));
  countRequests(a.nginx);
  const byId = Object.fromEntries(a.backends.map((b) => [b.id, b]));
  const addrs = a.backends.map((b) => b.address);
  const checks = [];
  const check = (ok, text) => {
    checks.push(ok);
    console.log(`check: ${ok ? "PASS" : "FAIL"} ${text}`);
  };
  const out = []; // the checks are printed after the tables

  // Sessions: every transport; a quarter of them with one of 7 device ids.
  // Prometheus scrapes the endpoint from its first scrape on (its scrape manager starts the
  // targets about 5 s after it started): the clients start once both jobs have one.
  const jobs = ["sticky_accept", "sticky_param"];
  const first = await waitForScrape(a.prometheus, jobs, 0, 20000);
  if (!first.ok) throw new Error(`no scrape of both jobs within 20 s: ${JSON.stringify(first.last)}`);
  stage("Prometheus' first scrape");

  const plan = [];
  let devices = 0;
  for (const mode of ["polling", "default", "websocket"]) {
    for (let i = 0; i < a.sessions; i++) {
      const n = plan.length;
      const query = { tag: `s${n}` };
      if (i % 4 === 0) query.device_id = `device-${devices++ % 7}`;
      plan.push({ mode, query });
    }
  }
  // Interleaved, so that every transport runs at the same time.
  const order = plan.map((_, i) => i).sort((x, y) => (x % a.sessions) - (y % a.sessions) || x - y);
  const results = new Array(plan.length);
  const clientsFrom = Date.now();
  await runMany(order.length, a.concurrency, async (k) => {
    const i = order[k];
    results[i] = await runSession(a.nginx, plan[i].mode, { query: plan[i].query, calls: 4, gapMs: 250 });
  });
  stage(`${plan.length} socket.io sessions`);

  // Each session's requests belong to the backend that answered it.
  const clients = {}; // address -> route -> n
  for (const b of a.backends) clients[b.address] = Object.fromEntries(ROUTES.map((r) => [r, 0]));
  let untagged = 0;
  for (const [tag, n] of sent) {
    const i = tag && tag.startsWith("s") ? Number(tag.slice(1)) : NaN;
    const r = results[i];
    if (!r || r.backends.length !== 1 || !byId[r.backend]) {
      untagged += n.learned + n.device_id + n.fallback;
      continue;
    }
    for (const route of ["learned", "device_id", "fallback"]) clients[byId[r.backend].address][route] += n[route];
  }
  const ok = results.filter((r) => r.ok).length;
  const single = results.filter((r) => r.backends.length === 1).length;
  const used = new Set(results.map((r) => r.backend).filter(Boolean)).size;
  const modeFailed = {};
  for (const [i, r] of results.entries()) if (!r.ok) modeFailed[plan[i].mode] = (modeFailed[plan[i].mode] || 0) + 1;
  const failures = results.filter((r) => !r.ok).slice(0, 3).map((r) => `${r.mode}: ${r.errors[0] || "incomplete"}`);
  out.push(() => check(ok === results.length && single === results.length && used >= 3 && untagged === 0,
    `socket.io sessions: ${ok} of ${results.length} ok (polling, polling -> websocket, websocket; ${plan.filter((p) => p.query.device_id).length} with a device id), ` +
    `each answered by one backend (${single}), ${used} backends used (need >= 3)` +
    (untagged ? `, ${untagged} requests of no such session` : "") +
    (failures.length ? `; failed: ${JSON.stringify(modeFailed)} ${failures.join("; ")}` : "")));

  // What each backend saw: its handshakes (stats), by transport (its log: "open <sid> <transport>").
  await sleep(300);
  const backendSeen = {};
  for (const b of a.backends) {
    const st = await getJson(`${b.url}/stats`);
    const log = fs.readFileSync(path.join(a["backend-logs"], `${b.id}.log`), "utf8");
    const opens = [...log.matchAll(/^open \S+ (\S+)$/gm)].map((m) => m[1]);
    backendSeen[b.address] = {
      id: b.id,
      handshakes: st.handshakes,
      polling: opens.filter((t) => t === "polling").length,
      websocket: opens.filter((t) => t === "websocket").length,
      rejected: st.rejectedTotal,
    };
  }

  // Prometheus: a scrape that started after the last request of the clients, in both jobs.
  await sleep(200);
  const doneAt = Date.now();
  const scrape = await waitForScrape(a.prometheus, jobs, doneAt, 15000);
  stage("a Prometheus scrape after the clients");
  const prom = {}; // job -> { sessions: {addr: n}, requests: {addr: {route: n}}, ... }
  for (const job of jobs) {
    const sel = `job="${job}",upstream="${a.upstream}"`;
    const p = { sessions: {}, requests: {}, strict: null, upstream: {} };
    for (const x of await promQuery(a.prometheus, `socketio_sticky_sessions{${sel}}`)) p.sessions[x.labels.server] = x.value;
    for (const x of await promQuery(a.prometheus, `socketio_sticky_requests_total{${sel}}`)) {
      if (x.labels.route === "strict") {
        p.strict = x.value;
        continue;
      }
      p.requests[x.labels.server] = p.requests[x.labels.server] || {};
      p.requests[x.labels.server][x.labels.route] = x.value;
    }
    for (const f of ["table_sessions", "table_capacity", "learned_total", "evicted_total", "expired_total", "duplicate_ids_total"]) {
      const r = await promQuery(a.prometheus, `socketio_sticky_${f}{${sel}}`);
      p.upstream[f] = r.length === 1 ? r[0].value : null;
    }
    p.skipped = {};
    for (const x of await promQuery(a.prometheus, `socketio_sticky_learn_skipped_total{${sel}}`)) p.skipped[x.labels.reason] = x.value;
    p.up = (await promQuery(a.prometheus, `up{job="${job}"}`)).map((x) => x.value);
    prom[job] = p;
  }
  const P = prom.sticky_accept;

  // What Prometheus saw while the clients ran: each scrape's requests in all (the samples of one
  // scrape share its timestamp), and every counter's samples in order.
  const span = Math.ceil((Date.now() - clientsFrom) / 1000) + 15;
  const series = await promMatrix(a.prometheus, `socketio_sticky_requests_total{job="sticky_accept",upstream="${a.upstream}"}[${span}s]`);
  const perScrape = new Map();
  let decreased = 0;
  for (const x of series) {
    for (const [i, [ts, v]] of x.values.entries()) {
      perScrape.set(ts, (perScrape.get(ts) || 0) + Number(v));
      if (i > 0 && Number(v) < Number(x.values[i - 1][1])) decreased++;
    }
  }
  const scrapes = [...perScrape].sort((p, q) => p[0] - q[0]);
  const during = scrapes.filter(([ts]) => ts * 1000 > clientsFrom && ts * 1000 < doneAt);
  const distinct = new Set(during.map(([, v]) => v)).size;
  const lastTotal = scrapes.length ? scrapes[scrapes.length - 1][1] : null;
  const clientSecs = ((doneAt - clientsFrom) / 1000).toFixed(1);
  const targetInfo = (scrape.targets || []).map((t) => `${t.labels.job} ${t.health}${t.lastError ? ` (${t.lastError})` : ""}`);
  out.push(() => check(scrape.ok && jobs.every((j) => prom[j].up.length === 1 && prom[j].up[0] === 1) &&
    (scrape.targets || []).every((t) => t.health === "up"),
    `Prometheus scraped the endpoint after the clients were done, up in both jobs: as it comes (its own Accept header) and with ?format=prometheus [${targetInfo.join(", ") || JSON.stringify(scrape.last)}]`));
  out.push(() => check(during.length >= 3 && distinct >= 2 && decreased === 0,
    `Prometheus scraped while the clients ran: ${during.length} scrapes in their ${clientSecs} s, requests in all ` +
    `${during.map(([, v]) => v).join(" ")} (then ${lastTotal}); no counter went down (${decreased})`));
  const same = addrs.every((x) => prom.sticky_accept.sessions[x] === prom.sticky_param.sessions[x] &&
    ROUTES.every((r) => (prom.sticky_accept.requests[x] || {})[r] === (prom.sticky_param.requests[x] || {})[r]));
  out.push(() => check(same, "both scrape jobs hold the same sessions and requests per server"));

  // The JSON form, read directly.
  const json = await getJson(`${a.nginx}/status?format=json`);
  const ju = (json.upstreams || []).find((u) => u.name === a.upstream);
  const jsonSessions = {};
  const jsonRequests = {};
  for (const s of (ju && ju.servers) || []) {
    jsonSessions[s.address] = s.sessions;
    jsonRequests[s.address] = s.requests;
  }

  // nginx's access log: every request with the route it took. A websocket is logged when it
  // closes: wait until the log has as many lines as the clients sent requests.
  const total = [...sent.values()].reduce((n, x) => n + x.learned + x.device_id + x.fallback, 0);
  let logged = readAccessLog(a["access-log"]);
  for (let i = 0; i < 50 && logged.lines < total; i++) {
    await sleep(100);
    logged = readAccessLog(a["access-log"]);
  }

  // The page, in Chromium.
  let page = null;
  let pageError = null;
  try {
    page = await chromiumPage({
      chromium: a.chromium, dir: a.dir, url: `${a.nginx}/status`, upstream: a.upstream, screenshot: a.screenshot,
    });
  } catch (e) {
    pageError = e.message;
  }
  stage("the page in headless Chromium");

  // ---- the tables -------------------------------------------------------------------------------
  const pad = (s, n) => String(s).padEnd(n);
  const row = (cols) => console.log(cols.map(([s, n]) => pad(s, n)).join(" ").trimEnd());
  const pageSessions = (v, addr) => {
    const s = v && v.servers && v.servers.find((x) => x.address === addr);
    return s ? (s.sessions === s.shown ? s.sessions : `${s.sessions}/${s.shown}`) : "-";
  };
  console.log("");
  row([["server", 18], ["backend", 7], ["handshakes (polling+ws)", 23], ["prometheus", 10], ["json", 5],
    ["page", 5], ["page refreshed", 14]]);
  for (const addr of addrs) {
    const b = backendSeen[addr];
    row([[addr, 18], [b.id, 7], [`${b.handshakes} (${b.polling}+${b.websocket})`, 23], [P.sessions[addr] ?? "-", 10],
      [jsonSessions[addr] ?? "-", 5], [pageSessions(page && page.initial, addr), 5], [pageSessions(page && page.refreshed, addr), 14]]);
  }
  console.log("(sessions per server; a backend's polling handshakes are the ones the module learns from)");
  console.log("");
  row([["server", 18], ["route", 10], ["clients", 8], ["access log", 10], ["prometheus", 10], ["json", 5], ["page", 5]]);
  const pageRoute = (addr, r) => {
    const s = page && page.refreshed && page.refreshed.servers && page.refreshed.servers.find((x) => x.address === addr);
    return s ? s.routes[r] ?? "-" : "-";
  };
  for (const addr of addrs) {
    for (const r of ROUTES) {
      const c = clients[addr][r];
      const l = (logged.per[addr] || {})[r] || 0;
      const p = (P.requests[addr] || {})[r];
      if (!c && !l && !p) continue;
      row([[addr, 18], [r, 10], [c, 8], [l, 10], [p ?? "-", 10], [(jsonRequests[addr] || {})[r] ?? "-", 5], [pageRoute(addr, r), 5]]);
    }
  }
  const sum = (m, r) => Object.values(m).reduce((n, x) => n + ((x || {})[r] || 0), 0);
  for (const r of ROUTES) {
    row([["all servers", 18], [r, 10], [sum(clients, r), 8], [sum(logged.per, r), 10], [sum(P.requests, r), 10]]);
  }
  console.log(`(requests by route; refused by strict: prometheus ${P.strict})`);
  console.log("");

  // ---- the checks ---------------------------------------------------------------------------------
  for (const f of out) f();
  const perServer = (f) => addrs.map((addr) => `${backendSeen[addr].id} ${f(addr)}`).join(", ");
  check(addrs.every((addr) => P.sessions[addr] === backendSeen[addr].polling) &&
    Object.keys(P.sessions).length === addrs.length,
    `socketio_sticky_sessions of each server = the handshakes its backend answered over polling (${perServer((x) => `${P.sessions[x]}=${backendSeen[x].polling}`)})`);
  const firsts = (addr) => ((P.requests[addr] || {}).fallback || 0) + ((P.requests[addr] || {}).device_id || 0);
  check(addrs.every((addr) => firsts(addr) === backendSeen[addr].handshakes && backendSeen[addr].handshakes ===
    backendSeen[addr].polling + backendSeen[addr].websocket),
    `fallback + device_id requests of each server = every handshake its backend answered (${perServer((x) => `${firsts(x)}=${backendSeen[x].handshakes}`)})`);
  const polling = addrs.reduce((n, x) => n + backendSeen[x].polling, 0);
  const websocket = addrs.reduce((n, x) => n + backendSeen[x].websocket, 0);
  const U = P.upstream;
  check(U.table_sessions === polling && U.learned_total === polling && U.evicted_total === 0 &&
    U.expired_total === 0 && U.duplicate_ids_total === 0 && U.table_capacity > 0,
    `the upstream's table: ${U.table_sessions} sessions, ${U.learned_total} learned = ${polling} polling handshakes; ` +
    `evicted ${U.evicted_total}, expired ${U.expired_total}, duplicate ids ${U.duplicate_ids_total}; capacity ${U.table_capacity}`);
  const eq = (x, y) => addrs.every((addr) => ROUTES.every((r) => ((x[addr] || {})[r] || 0) === ((y[addr] || {})[r] || 0)));
  const promComplete = addrs.every((addr) => ROUTES.every((r) => P.requests[addr] && typeof P.requests[addr][r] === "number"));
  check(promComplete && eq(P.requests, clients) && P.strict === 0 && total > 0,
    `socketio_sticky_requests_total per server and route = the requests the clients sent (${total}: ` +
    `${ROUTES.filter((r) => sum(clients, r)).map((r) => `${r} ${sum(clients, r)}`).join(", ")}); refused by strict: ${P.strict}`);
  check(eq(P.requests, logged.per) && logged.lines === total && logged.odd.length === 0,
    `socketio_sticky_requests_total per server and route = nginx's access log ($socketio_sticky_status, "new" as the route of its handshake: ` +
    `${Object.entries(logged.byStatus).map(([k, v]) => `${k} ${v}`).join(", ")}; ${logged.lines} lines)` +
    (logged.odd.length ? `; unexpected lines: ${logged.odd.slice(0, 3).join(" | ")}` : ""));
  check(ju && addrs.every((x) => jsonSessions[x] === P.sessions[x]) && Object.keys(jsonSessions).length === addrs.length &&
    eq(jsonRequests, P.requests) &&
    json.module === "socketio_sticky" && ju.refused_strict === 0,
    `?format=json shows the same sessions and requests per server as Prometheus scraped (module ${json.version}, nginx ${json.nginx})`);
  const skipped = Object.entries(P.skipped).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  console.log(`info: learn_skipped: ${skipped}; websocket-only handshakes (101, no body to learn from): ${websocket}`);

  // The page: every server of the upstream, with its sessions and its requests by route.
  const pageOk = (v, what) => {
    if (!v) return `${what}: not read`;
    const bad = [];
    if (!/^text\/html/.test(v.contentType)) bad.push(`content type ${v.contentType}`);
    if (!v.upstreams.includes(a.upstream)) bad.push(`no section.upstream[data-upstream="${a.upstream}"] (${v.upstreams.join(",")})`);
    const shown = (v.servers || []).map((x) => x.address).sort();
    if (JSON.stringify(shown) !== JSON.stringify([...addrs].sort())) bad.push(`servers ${shown.join(",")}`);
    for (const s of v.servers || []) {
      const want = backendSeen[s.address] && backendSeen[s.address].polling;
      if (s.upstream !== a.upstream || s.sessions !== String(want) || s.shown !== String(want)) {
        bad.push(`${s.address}: data-sessions ${s.sessions}, shows "${s.shown}", want ${want}`);
      }
      for (const r of ROUTES) {
        const want = String((P.requests[s.address] || {})[r]);
        if (s.routes[r] !== want) bad.push(`${s.address} ${r}: shows ${s.routes[r]}, want ${want}`);
      }
    }
    return bad.length ? `${what}: ${bad.slice(0, 4).join("; ")}` : null;
  };
  const desc = addrs.map((x) => `${backendSeen[x].id} ${backendSeen[x].polling}`).join(", ");
  const e1 = pageError || pageOk(page && page.initial, "as served");
  check(!e1, `the page as nginx served it to Chromium (its Accept chose HTML: ${page && page.initial ? page.initial.contentType : "-"}) ` +
    `shows every server of "${a.upstream}" with its sessions (${desc}) and its requests by route${e1 ? ` -- ${e1}` : ""}`);
  const e2 = pageError || (!page.rebuilt ? "the script did not rebuild the page within 10 s" : null) ||
    (page.refreshed.failed ? `"${page.refreshed.updated}"` : null) ||
    (page.jsonRefreshes < 1 || page.jsonFailures.length ? `?format=json fetched ${page.jsonRefreshes} times, failed: ${page.jsonFailures.join(",")}` : null) ||
    pageOk(page.refreshed, "after the refresh");
  check(!e2, `the page after its script refreshed it from ?format=json (${page ? page.jsonRefreshes : 0} fetch(es), "updated ${page && page.refreshed ? page.refreshed.updated : "-"}") ` +
    `shows the same${e2 ? ` -- ${e2}` : ""}`);
  const kb = page && page.screenshotBytes ? (page.screenshotBytes / 1024).toFixed(1) : null;
  check(kb !== null && page.screenshotBytes < 200 * 1024,
    `screenshot ${a.screenshot.replace(process.cwd() + "/", "")}: ${kb === null ? "not taken" : `${kb} KB`} (at most 200 KB), ${page ? page.screenshotSize : "-"} (the 1280x800 window down to the end of the page)`);

  process.exitCode = checks.every((c) => c) ? 0 : 1;
}

main().catch((e) => {
  console.error(`status.js: ${e.stack || e}`);
  process.exitCode = 2;
}).finally(() => setTimeout(() => process.exit(), 500).unref());
