#!/usr/bin/env python3
"""Throughput of the socketio_sticky balancer next to nginx's own; run through bench/throughput.

Requests per second through a front nginx 1.28 (`master_process on; worker_processes 1;`,
pinned to one CPU) to a few backends (a native nginx, pinned to the other CPU), driven by
`wrk -t1 -c32` (pinned with the backends), with `keepalive 64` to the backends and
`access_log off`. One upstream and one server (port) per row:

  rr              round robin
  ip_hash         ip_hash (every request comes from 127.0.0.1: one backend gets them all)
  hash_sid        hash $arg_sid consistent
  sticky_sid      socketio_sticky, learned-sid hit (sessions learned from real handshakes first)
  sticky_device   socketio_sticky, device_id hit
  sticky_nokey    socketio_sticky, a request without a key (round robin decides)

Rounds are interleaved (every row once per round, each round starting one row further on),
each timed run after a warm-up run of its own; per row: the median of the rounds, the
min-max spread and the ratio to round robin's median. On a shared 2-core machine one run
differs from the next by 5-20%, more while other work runs: this is a sanity check (no
balancer collapses throughput, every request is answered), not a precise comparison;
bench/callgrind counts instructions.

Before the timed rounds, plain requests check that every row routes as it should (learned
sids come back `learned` from the backend that minted them, device ids `device_id` and always
the same backend, ...); wrk's own counts check that no request failed.

Everything listens on 127.0.0.1 on free ports and lives in a temporary directory that is
removed on exit (--keep keeps it); the processes started here are stopped by their pid, also
on errors, Ctrl-C and when the time limit is reached.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # importing bench.py must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench/bench.py: the module's path, the backend configuration, the HTTP client, processes.
from bench import (BACKEND_CONF, BACKEND_SERVER, HANDSHAKE_QS, MODULE_SO, SID_RE,  # noqa: E402
                   Conn, Procs, free_port, log, stop_on_signals, vendored_nginx, wait_port)

# --------------------------------------------------------------------------------------------
# the rows

# key, label, balancer lines of the upstream, the kind of request paths it gets (REQUESTS).
ROWS = [
    ("rr", "round robin", [], "sid"),
    ("ip_hash", "ip_hash", ["ip_hash;"], "sid"),
    ("hash_sid", "hash $arg_sid consistent", ["hash $arg_sid consistent;"], "sid"),
    ("sticky_sid", "socketio_sticky, learned-sid hit",
     ["socketio_sticky zone=tp_sid:4m timeout=1h;"], "sid"),
    ("sticky_device", "socketio_sticky, device_id hit",
     ["socketio_sticky zone=tp_device:1m timeout=1h;"], "device"),
    ("sticky_nokey", "socketio_sticky, no key",
     ["socketio_sticky zone=tp_nokey:1m timeout=1h;"], "nokey"),
]
BASELINE = "rr"

# The request of each kind, as shown in the table. The device and no-key requests carry no
# `EIO`: the test backends answer `EIO` without `sid` as a handshake (a new session), which
# socketio_sticky would then learn on every request; a real client sends its device id on
# the handshake and on the requests after it.
REQUESTS = {
    "sid": "/socket.io/?EIO=4&transport=polling&sid=S",
    "device": "/socket.io/?transport=polling&device_id=N",
    "nokey": "/socket.io/?transport=polling&t=N",
}


def sid_path(sid):
    return "/socket.io/?%s&sid=%s" % (HANDSHAKE_QS, sid)


def device_path(n):
    return "/socket.io/?transport=polling&device_id=%d" % n


def nokey_path(n):
    return "/socket.io/?transport=polling&t=%d" % n


# --------------------------------------------------------------------------------------------
# configurations

FRONT_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
load_module {module};
error_log {dir}/front-error.log warn;
pid {dir}/front.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type text/plain;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
{upstreams}
{servers}
}}
"""

# Every row: its balancer before `keepalive` (keepalive wraps the balancer defined before it).
FRONT_UPSTREAM = """\
    upstream {name} {{
{balancer}{servers}        keepalive {keepalive};
        keepalive_requests 100000000;
    }}
"""

# Every row's server is the same but for the upstream's name. The header shows how
# socketio_sticky chose (empty, so absent, for the other balancers); the checks read it.
FRONT_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{name};
            add_header X-Sticky $socketio_sticky_status;
        }}
    }}
"""

# wrk: cycles through the request paths of a file, one path per line. The requests are
# formatted once in init(); request() hands them out in turn; done() prints wrk's exact counts
# on one line for the parent to read.
WRK_LUA = """\
-- written by bench/throughput.py: cycles through the paths in {paths}
local reqs, n, i = {{}}, 0, 0

function init(args)
    for line in io.lines({paths}) do
        n = n + 1
        reqs[n] = wrk.format("GET", line)
    end
    if n == 0 then error("no request paths") end
end

function request()
    i = i % n + 1
    return reqs[i]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("THROUGHPUT requests=%d duration_us=%d bytes=%d connect=%d "
        .. "read=%d write=%d timeout=%d status=%d\\n", summary.requests, summary.duration,
        summary.bytes, e.connect, e.read, e.write, e.timeout, e.status))
end
"""
WRK_LINE = re.compile(r"^THROUGHPUT (.*)$", re.M)
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


# --------------------------------------------------------------------------------------------
# bookkeeping


class Checks:
    """Each check prints `check: PASS|FAIL what`; the closing line counts them."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, ok, what):
        print("check: %s %s" % ("PASS" if ok else "FAIL", what), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(what)
        return ok


def proc_starttime(pid):
    """The start time of a process (/proc/PID/stat field 22), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def kill_leftovers(workers):
    """SIGKILL the (pid, start time) processes that still are those processes: the workers a
    master that had to be killed leaves behind."""
    for pid, start in workers:
        if proc_starttime(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def remove_or_keep(bench):
    """Removes the run's directory, or says once that it is kept (--keep)."""
    if not os.path.isdir(bench.dir):
        return
    if bench.args.keep:
        if not bench.kept:
            log("kept " + bench.dir)
        bench.kept = True
    else:
        shutil.rmtree(bench.dir, ignore_errors=True)


def children_of(ppid):
    """(pid, start time) of the processes whose parent is `ppid`."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            kids.append((int(name), fields[19]))
    return kids


def fmt_int(x):
    return "—" if x is None else "{:,.0f}".format(x)


# --------------------------------------------------------------------------------------------
# the run


class Throughput:
    def __init__(self, args, checks):
        self.args = args
        self.checks = checks
        self.dir = tempfile.mkdtemp(prefix="socketio-sticky-throughput-")
        os.makedirs(os.path.join(self.dir, "logs"))   # nginx -p opens logs/ before its config
        self.procs = Procs()
        self.nginx = vendored_nginx()
        self.backend_ports = [free_port() for _ in range(args.backends)]
        self.ports = {key: free_port() for key, *_ in ROWS}
        self.front = None
        self.backend = None
        self.front_workers = []   # (pid, start time): stopped too if the master ever is not
        self.sessions = []        # (sid, backend that minted it)
        self.paths = {}           # request kind -> list of paths
        self.files = {}           # row -> wrk Lua script
        self.backends_seen = {}   # row -> backends that answered its check requests
        self.results = {key: {"rps": [], "runs": [], "warmups": []} for key, *_ in ROWS}
        self.kept = False

    # -- processes ---------------------------------------------------------------------------

    def pin(self, cpu):
        return ["taskset", "-c", str(cpu)] if self.args.pin else []

    def write_configs(self):
        user = "user root;" if os.geteuid() == 0 else ""
        servers = "".join("        server 127.0.0.1:%d;\n" % p for p in self.backend_ports)
        with open(os.path.join(self.dir, "backend.conf"), "w") as f:
            f.write(BACKEND_CONF.format(
                user=user, dir=self.dir,
                servers="".join(BACKEND_SERVER.format(port=p) for p in self.backend_ports)))
        ups = "".join(FRONT_UPSTREAM.format(
            name=key, servers=servers, keepalive=self.args.keepalive,
            balancer="".join("        %s\n" % line for line in balancer))
            for key, _label, balancer, _kind in ROWS)
        srvs = "".join(FRONT_SERVER.format(name=key, port=self.ports[key])
                       for key, *_ in ROWS)
        with open(os.path.join(self.dir, "front.conf"), "w") as f:
            f.write(FRONT_CONF.format(user=user, dir=self.dir, module=MODULE_SO,
                                      upstreams=ups, servers=srvs))

    def start(self):
        self.write_configs()
        with open(os.path.join(self.dir, "backend.out"), "w") as out:
            self.backend = self.procs.start(
                self.pin(self.args.load_cpu) + [self.nginx, "-p", self.dir, "-c",
                                                os.path.join(self.dir, "backend.conf")],
                stdout=out, stderr=subprocess.STDOUT)
        with open(os.path.join(self.dir, "front.out"), "w") as out:
            self.front = self.procs.start(
                self.pin(self.args.front_cpu) + [self.nginx, "-p", self.dir, "-c",
                                                 os.path.join(self.dir, "front.conf")],
                stdout=out, stderr=subprocess.STDOUT)
        for p in self.backend_ports:
            wait_port(p, self.backend, "backend nginx", deadline=30)
        for p in self.ports.values():
            wait_port(p, self.front, "front nginx", deadline=30)
        # `taskset nginx` execs nginx: the pid is the master's; its worker is its child (looked
        # for again at cleanup, in case it was not forked yet).
        self.front_workers = children_of(self.front.pid)

    def cleanup(self):
        if self.front is not None and self.front.poll() is None:
            self.front_workers += children_of(self.front.pid)
        self.procs.stop_all()
        kill_leftovers(self.front_workers)
        remove_or_keep(self)

    def nginx_version(self):
        r = subprocess.run([self.nginx, "-v"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, check=False)
        m = re.search(r"nginx/(\S+)", r.stdout.decode(errors="replace"))
        return m.group(1) if m else "?"

    # -- request paths and route checks ------------------------------------------------------

    def learn_sessions(self, n):
        """Handshakes through the socketio_sticky upstream of the learned-sid row teach it `n`
        sessions; returns the (sid, backend) pairs."""
        c = Conn(self.ports["sticky_sid"], timeout=30)
        pairs = []
        bad = []
        for i in range(0, n, 200):
            m = min(200, n - i)
            for r in c.pipeline(["/socket.io/?" + HANDSHAKE_QS] * m):
                sid = SID_RE.match(r.body)
                if r.status == 200 and sid and r.headers.get("x-backend"):
                    pairs.append((sid.group(1).decode(), r.headers["x-backend"]))
                else:
                    bad.append((r.status, r.body[:60]))
        c.close()
        self.checks.check(len(pairs) == n and len({s for s, _ in pairs}) == n,
                          "sticky_sid: %d handshakes answered with %d distinct sids (bad: %s)"
                          % (n, len({s for s, _ in pairs}), bad[:2]))
        return pairs

    def ask(self, key, paths):
        """Each path once to the row's server, pipelined: [(status, backend, X-Sticky)]."""
        c = Conn(self.ports[key], timeout=30)
        out = []
        for i in range(0, len(paths), 200):
            for r in c.pipeline(paths[i:i + 200]):
                out.append((r.status, r.headers.get("x-backend"), r.headers.get("x-sticky", "")))
        c.close()
        return out

    def check_routes(self, key, kind, when="before the rounds"):
        """The row routes as it should; records which backends answered it."""
        paths = self.paths[kind]
        sample = paths if key == "sticky_sid" else paths[:300]
        first = self.ask(key, sample)
        again = self.ask(key, sample)
        backends = {b for _, b, _ in first}
        statuses = sorted({s for _, _, s in first})
        self.backends_seen[key] = len(backends)
        ok200 = all(st == 200 for st, _, _ in first + again)
        n_all = len(self.backend_ports)
        same = sum(a[1] == b[1] for a, b in zip(first, again))
        what = "%s (%s): %d requests" % (key, when, len(sample) * 2)
        if key == "rr":
            ok = ok200 and statuses == [""] and len(backends) == n_all
            detail = "answered 200 by all %d backends, no X-Sticky" % n_all
        elif key == "ip_hash":
            ok = ok200 and statuses == [""] and len(backends) == 1
            detail = "answered 200 by one backend (all clients are 127.0.0.1), no X-Sticky"
        elif key == "hash_sid":
            ok = ok200 and statuses == [""] and same == len(sample) and len(backends) == n_all
            detail = "answered 200, each sid by the same backend twice, all %d used" % n_all
        elif key == "sticky_sid":
            minted = [b for _, b in self.sessions]
            right = sum(b == m for (_, b, _), m in zip(first + again, minted + minted))
            ok = ok200 and statuses == ["learned"] and right == 2 * len(sample)
            detail = ("`learned` and answered by the backend that minted the sid: %d of %d"
                      % (right, 2 * len(sample)))
        elif key == "sticky_device":
            ok = ok200 and statuses == ["device_id"] and same == len(sample) and len(backends) > 1
            detail = ("`device_id`, each device by the same backend twice (%d of %d), %d "
                      "backends used" % (same, len(sample), len(backends)))
        else:
            ok = ok200 and statuses == ["fallback"] and len(backends) == n_all
            detail = "`fallback`, answered by all %d backends" % n_all
        got = "statuses %s, %d backends" % (statuses, len(backends))
        return self.checks.check(ok, "%s %s (got %s)" % (what, detail, got))

    def prepare(self):
        a = self.args
        log("learning %d sessions through the socketio_sticky upstream" % a.sessions)
        self.sessions = self.learn_sessions(a.sessions)
        self.paths = {
            "sid": [sid_path(s) for s, _ in self.sessions],
            "device": [device_path(n) for n in range(1, a.devices + 1)],
            "nokey": [nokey_path(n) for n in range(1, a.devices + 1)],
        }
        for kind, paths in self.paths.items():
            path_file = os.path.join(self.dir, "paths-%s.txt" % kind)
            with open(path_file, "w") as f:
                f.write("".join(p + "\n" for p in paths))
            lua = os.path.join(self.dir, "cycle-%s.lua" % kind)
            with open(lua, "w") as f:
                f.write(WRK_LUA.format(paths=json.dumps(path_file)))   # a valid Lua string
            for key, _label, _bal, k in ROWS:
                if k == kind:
                    self.files[key] = lua
        for key, _label, _bal, kind in ROWS:
            self.check_routes(key, kind)

    # -- wrk ---------------------------------------------------------------------------------

    def wrk(self, key, secs):
        """One wrk run against the row's server; `secs` may be a fraction (wrk's -d takes whole
        seconds: it is then stopped early with SIGINT, after which it reports as usual)."""
        whole = max(1, math.ceil(secs))
        argv = self.pin(self.args.load_cpu) + [
            "wrk", "-t1", "-c%d" % self.args.connections, "-d%ds" % whole, "--timeout", "5s",
            "-s", self.files[key], "http://127.0.0.1:%d/" % self.ports[key]]
        p = self.procs.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if secs < whole:
                time.sleep(secs)
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=whole + 30)
        finally:
            self.procs.stop(p, signal.SIGKILL, 10)
        text = out.decode(errors="replace")
        m = WRK_LINE.search(text)
        if p.returncode != 0 or not m:
            raise RuntimeError("wrk %s failed (status %s): %s %s" % (
                key, p.returncode, text[-300:], err.decode(errors="replace")[-300:]))
        run = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        run["duration_s"] = run.pop("duration_us") / 1e6
        run["rps"] = run["requests"] / run["duration_s"] if run["duration_s"] > 0 else 0.0
        return run

    def rounds(self):
        a = self.args
        keys = [key for key, *_ in ROWS]
        for rnd in range(a.rounds):
            # Each round starts one row further on, so that no row always runs first.
            order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
            for key in order:
                res = self.results[key]
                if a.warmup > 0:
                    res["warmups"].append(self.wrk(key, a.warmup))
                run = self.wrk(key, a.duration)
                run["round"] = rnd + 1
                res["runs"].append(run)
                res["rps"].append(run["rps"])
                errs = sum(run[e] for e in SOCKET_ERRORS)
                bad = ", %d socket errors, %d status >= 400" % (errs, run["status"]) \
                    if errs or run["status"] else ""
                log("round %d/%d  %-14s %10s req/s  (%d requests in %.2fs%s)" % (
                    rnd + 1, a.rounds, key, fmt_int(run["rps"]), run["requests"],
                    run["duration_s"], bad))

    # -- after the rounds --------------------------------------------------------------------

    def check_runs(self):
        for key, *_ in ROWS:
            res = self.results[key]
            runs = res["runs"] + res["warmups"]
            sock = sum(r[e] for r in runs for e in SOCKET_ERRORS)
            status = sum(r["status"] for r in runs)
            total = sum(r["requests"] for r in runs)
            self.checks.check(
                runs and sock == 0 and status == 0 and all(r["requests"] > 0 for r in runs),
                "%s: wrk, %d runs (warm-ups included), %s responses: %d socket errors, %d "
                "error responses (wrk's `Non-2xx or 3xx`: status >= 400)"
                % (key, len(runs), fmt_int(total), sock, status))

    def check_logs(self):
        for name in ("front", "backend"):
            path = os.path.join(self.dir, "%s-error.log" % name)
            lines = open(path, errors="replace").read().splitlines() \
                if os.path.exists(path) else []
            bad = [ln for ln in lines if re.search(r"\[(alert|crit|emerg|error|warn)\]", ln)]
            self.checks.check(not bad, "%s nginx error log has no warn/error/alert lines "
                              "(%d: %s)" % (name, len(bad), bad[:2]))
        self.checks.check(self.front.poll() is None and self.backend.poll() is None,
                          "front and backend nginx still running")


# --------------------------------------------------------------------------------------------
# report


def summarize(t):
    rows = []
    base = None
    for key, label, balancer, kind in ROWS:
        v = t.results[key]["rps"]
        med = statistics.median(v) if v else None
        row = {
            "key": key, "label": label, "balancer": balancer[0] if balancer else "",
            "request": REQUESTS[kind], "backends_answering": t.backends_seen.get(key),
            "rps": v, "median": med, "min": min(v) if v else None, "max": max(v) if v else None,
            "spread_pct": 100 * (max(v) - min(v)) / med if len(v) > 1 and med else None,
            "runs": t.results[key]["runs"], "warmups": t.results[key]["warmups"],
        }
        if key == BASELINE:
            base = med
        rows.append(row)
    for row in rows:
        row["ratio_vs_rr"] = row["median"] / base if base and row["median"] else None
    return rows


def report(args, t, rows, version):
    out = ["", "## socketio_sticky throughput: requests per second (a sanity check)", ""]
    pinned = ("front nginx on CPU %d; wrk and backends on CPU %d" % (args.front_cpu, args.load_cpu)
              if args.pin else "not pinned to CPUs")
    out.append(
        "nginx %s, one worker (`master_process on; worker_processes 1;`), %d backends (one "
        "native nginx worker), `keepalive %d`, `access_log off`; `wrk -t1 -c%d`; %s. %d "
        "round%s of %g s per row, rows interleaved, each after a %g s warm-up; each row cycles "
        "through %s distinct request paths (%s learned sessions, %s device ids)."
        % (version, args.backends, args.keepalive, args.connections, pinned, args.rounds,
           "" if args.rounds == 1 else "s", args.duration, args.warmup,
           "{:,}".format(len(t.paths["sid"])), "{:,}".format(args.sessions),
           "{:,}".format(args.devices)))
    out.append("")
    out.append("**A sanity check, not a benchmark:** on a shared 2-core machine one run differs "
               "from the next by 5–20%, and by more while other work runs (the spread column "
               "shows this run's), so differences of that size between rows are noise. "
               "Instruction counts: `bench/callgrind`.")
    out.append("")
    out.append("| row | upstream | request | backends | median req/s | spread (min–max) "
               "| vs round robin |")
    out.append("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        spread = "—" if r["spread_pct"] is None else "%.1f%%" % r["spread_pct"]
        ratio = "—" if r["ratio_vs_rr"] is None else "%.3f" % r["ratio_vs_rr"]
        out.append("| %s | %s | `%s` | %s | %s | %s | %s |" % (
            r["label"], "`%s`" % r["balancer"] if r["balancer"] else "(none: round robin)",
            r["request"], r["backends_answering"] or "—",
            fmt_int(r["median"]), spread, ratio))
    out.append("")
    out.append("Per round (req/s): " + "; ".join(
        "%s %s" % (r["key"], " / ".join(fmt_int(x) for x in r["rps"])) for r in rows) + ".")
    out.append("")
    out.append("`backends`: how many backends answered the row's check requests (`ip_hash` "
               "sends every client of 127.0.0.1 to one). The device and no-key requests carry "
               "no `EIO`, which the test backends would answer as a handshake.")
    if args.keepalive < 2 * args.connections:
        # Seen here: with keepalive 16 (and even 32), thousands of new backend connections per
        # run, in numbers that differ from row to row; with 64, none.
        out.append("")
        out.append("`keepalive %d` keeps fewer idle connections than %d busy client connections "
                   "need across %d backends: part of the requests open a new connection to a "
                   "backend, in numbers that differ between rows (`--keepalive 64` avoided "
                   "that in a trial)." % (args.keepalive, args.connections, args.backends))
    print("\n".join(out), flush=True)


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 1 s per row, 0.3 s warm-up, 200 sessions (CI)")
    ap.add_argument("--rounds", type=int, help="rounds (5; --quick 1)")
    ap.add_argument("--duration", type=int, help="seconds of each timed run (5; --quick 1)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up before each timed run "
                    "(2; --quick 0.3)")
    ap.add_argument("--sessions", type=int, help="sessions learned for the learned-sid row, "
                    "also the sids of the round robin, ip_hash and hash rows (1000; --quick 200)")
    ap.add_argument("--devices", type=int, default=1000,
                    help="device ids cycled, and as many no-key paths (1000)")
    ap.add_argument("--backends", type=int, default=3, help="backends (3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    ap.add_argument("--keepalive", type=int, default=64,
                    help="idle connections to the backends each upstream keeps (64)")
    ap.add_argument("--front-cpu", type=int, default=0, help="CPU of the front nginx (0)")
    ap.add_argument("--load-cpu", type=int, default=1, help="CPU of wrk and the backends (1)")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    ap.add_argument("--json", metavar="FILE", help="write the raw numbers as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--time-limit", type=int, help="seconds before giving up (60 with --quick, "
                    "else 300 or more for longer settings)")
    args = ap.parse_args()
    q = args.quick
    args.rounds = args.rounds or (1 if q else 5)
    args.duration = args.duration or (1 if q else 5)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if q else 2.0)
    args.sessions = args.sessions or (200 if q else 1000)
    if min(args.rounds, args.duration, args.sessions, args.devices, args.backends,
           args.connections) < 1 or args.warmup < 0:
        ap.error("counts and durations must be positive")
    # Each run costs its seconds plus wrk's start and stop (~0.2 s); setup takes a few seconds.
    estimate = len(ROWS) * args.rounds * (args.duration + args.warmup + 0.5) + 15
    limit = args.time_limit or (60 if q else max(300, int(estimate * 1.2)))

    if not os.path.exists(MODULE_SO):
        sys.exit("error: no module at %s; run: cargo build --release --features vendored"
                 % MODULE_SO)
    for tool in ("wrk",) + (("taskset",) if args.pin else ()):
        if shutil.which(tool) is None:
            sys.exit("error: %s not found (Debian package %s)"
                     % (tool, "wrk" if tool == "wrk" else "util-linux"))
    if args.pin:
        cpus = os.sched_getaffinity(0)
        if args.front_cpu == args.load_cpu or not {args.front_cpu, args.load_cpu} <= cpus:
            log("CPUs %d and %d are not two distinct usable CPUs (usable: %s): not pinning"
                % (args.front_cpu, args.load_cpu, sorted(cpus)))
            args.pin = False

    checks = Checks()
    t = Throughput(args, checks)

    stop_on_signals(t.cleanup, limit, "throughput")

    t0 = time.time()
    rc = 0
    rows = None
    version = t.nginx_version()
    try:
        t.start()
        log("front nginx %s on 127.0.0.1:%s, backends on %s, in %s (time limit %ds)" % (
            version, ",".join(str(t.ports[k]) for k, *_ in ROWS),
            ",".join(map(str, t.backend_ports)), t.dir, limit))
        t.prepare()
        if checks.failed:
            raise RuntimeError("a row does not route as it should; not measuring")
        t.rounds()
        t.check_runs()
        # Still hits after the rounds: every learned sid `learned`, from its own backend.
        t.check_routes("sticky_sid", "sid", when="after the rounds")
        t.check_logs()
        rows = summarize(t)
        report(args, t, rows, version)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - every failure ends in the summary
        checks.check(False, "run aborted: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.alarm(0)
        t.cleanup()
    elapsed = time.time() - t0
    if args.json:
        data = {
            "benchmark": "socketio_sticky throughput (bench/throughput)",
            "nginx": version, "quick": q, "baseline": BASELINE, "elapsed_s": round(elapsed, 1),
            "params": {"rounds": args.rounds, "duration_s": args.duration,
                       "warmup_s": args.warmup, "wrk_threads": 1,
                       "wrk_connections": args.connections, "backends": args.backends,
                       "sessions": args.sessions, "devices": args.devices,
                       "pinned": args.pin, "front_cpu": args.front_cpu if args.pin else None,
                       "load_cpu": args.load_cpu if args.pin else None,
                       "upstream_keepalive": args.keepalive},
            "rows": rows if rows is not None else summarize(t),
            "checks": {"passed": checks.passed, "failed": checks.failed,
                       "failures": checks.failures},
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        log("wrote " + args.json)
    log("%.0fs" % elapsed)
    print("throughput: %d passed, %d failed" % (checks.passed, checks.failed), flush=True)
    return 1 if rc or checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
