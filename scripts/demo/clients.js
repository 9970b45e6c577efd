// The demo's Socket.IO clients: a few sessions of each transport through nginx, printing the
// backend each session is stuck to. Uses t/e2e's client (and its node_modules).
//
//   DEMO_ACCESS_LOG=... DEMO_BACKEND_PORTS="P1 P2 P3 P4" node clients.js STICKY_URL [RR_URL]
"use strict";
const path = require("path");
const fs = require("fs");
const { runSession, mainError } = require(path.join(__dirname, "..", "..", "t", "e2e", "client.js"));

const [stickyUrl, rrUrl] = process.argv.slice(2);
const accessLog = process.env.DEMO_ACCESS_LOG; // nginx's access log for the sticky server
const ports = (process.env.DEMO_BACKEND_PORTS || "").split(" ").filter(Boolean); // of b1, b2, ...
const named = (line) => ports.reduce((l, p, i) => l.split(`127.0.0.1:${p}`).join(`b${i + 1}`), line);
const MODES = ["polling", "default", "websocket"];
const LABEL = { polling: "polling", default: "polling+upgrade", websocket: "websocket" };

async function show(url, n, options = {}) {
  const results = [];
  let i = 0;
  for (const mode of MODES) {
    for (let k = 0; k < n; k++) {
      // 6 whoami messages per session; with "default", 3 before and 3 after the upgrade.
      const r = await runSession(url, mode, { calls: mode === "default" ? 3 : 6, gapMs: 60, ...options });
      i++;
      const who = options.query && options.query.device_id ? `device ${options.query.device_id}, ` : "";
      const head = `  session ${String(i).padStart(2)} (${LABEL[mode]}):`.padEnd(34);
      if (r.ok) {
        const sid = r.engineId.slice(0, 6) + "…";
        const up = r.upgraded ? ", upgraded to websocket" : "";
        console.log(`${head}${who}sid ${sid} -> ${r.backend}, ${r.answers} messages, all from ${r.backends.join(", ")}${up}`);
      } else {
        const from = r.backends.length ? ` (answers from ${r.backends.join(", ")})` : "";
        console.log(`${head}${who}FAILED: ${mainError(r)}${from}`);
      }
      results.push(r);
    }
  }
  return results;
}

function showRequests(sid) {
  if (!accessLog || !fs.existsSync(accessLog)) return;
  const lines = fs.readFileSync(accessLog, "utf8").split("\n").filter((l) => l.includes(`sid=${sid}`));
  console.log(`\n  nginx's access log for session 1 after its handshake (which round robin placed; nginx read`);
  console.log(`  the sid ${sid} from the handshake's response and routes every request carrying it):`);
  for (const l of lines.slice(0, 6)) console.log(`    ${named(l.replace(/&t=[^&\s]+/, ""))}`);
  if (lines.length > 6) console.log(`    … ${lines.length - 6} more`);
}

async function main() {
  console.log(`\nThrough \`upstream { socketio_sticky; 4 servers }\` (${stickyUrl}):`);
  const sticky = await show(stickyUrl, 3);
  if (sticky[0].ok) showRequests(sticky[0].engineId);

  console.log("\nSessions of one device (?device_id=...) land on the device's backend, one of each transport:");
  for (const d of ["alice", "bob", "carol", "dave"]) {
    const rs = [];
    for (const mode of MODES) rs.push(await runSession(stickyUrl, mode, { calls: 3, gapMs: 30, query: { device_id: d } }));
    const seen = rs.map((r) => (r.ok ? r.backend : "FAILED"));
    console.log(`  device ${d.padEnd(6)} -> ${seen.join(" ")}`);
    sticky.push(...rs);
  }

  if (rrUrl) {
    console.log(`\nThe same clients through plain round robin (${rrUrl}):`);
    await show(rrUrl, 2);
    console.log("  (websocket-only sessions work anyway: the whole session is one connection)");
  }
  const bad = sticky.filter((r) => !r.ok).length;
  console.log(bad === 0 ? "\nEvery sticky session stayed on its backend." : `\n${bad} sticky sessions FAILED.`);
  process.exitCode = bad === 0 ? 0 : 1;
}

main().finally(() => setTimeout(() => process.exit(), 500).unref());
