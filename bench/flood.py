#!/usr/bin/env python3
"""Do live sessions survive a handshake flood? Run through bench/flood.

One client floods handshakes as fast as it can through a small zone while a few hundred
Socket.IO sessions keep polling; every poll must still be routed by its learned sid to the
backend that minted it. The table of socketio_sticky is scan-resistant (a segmented LRU: a
session used after its handshake is protected and never evicted to make room for handshakes
nobody followed up); a plain LRU table loses the sessions as soon as the flood learns more
sessions between two polls than the zone holds.

Setup (everything on 127.0.0.1, on free ports):
  front     nginx (the vendored nginx 1.28 and target/release's module, or TEST_NGINX_BINARY
            and TEST_NGINX_LOAD_MODULES), `master_process on; worker_processes 2;`,
            `upstream flood { socketio_sticky zone=flood:1m; server b1..b4; keepalive 64; }`,
            `proxy_http_version 1.1; proxy_set_header Connection "";`, `access_log off`; the
            location adds `X-Sticky: $socketio_sticky_status` and (when the module has it)
            `X-Evicted: $socketio_sticky_evicted`.
  backends  a second nginx (one worker, 4 `server` blocks b1..b4): a handshake (`EIO` and no
            `sid`) is answered with an Engine.IO 4 open packet whose sid is `$request_id` (32
            hex digits, unique); any other request with `ok bN`, naming the backend. Both carry
            `X-Backend: bN`.
  sessions  N (500) sessions in a thread of their own (asyncio), each on its own keep-alive
            connection: a handshake (the backend that minted its sid is recorded), then
            `GET /socket.io/?EIO=4&transport=polling&sid=SID` every S (2) seconds, the starts
            staggered over one interval. A poll survives iff it is answered 200, `X-Sticky:
            learned`, by the backend that minted the sid.
  canaries  1,000 handshakes made just before the flood and never used: after the flood, each
            is asked for once; all must be gone (`fallback`). Proves the flood churned the
            table whether or not the module counts its evictions.
  flood     wrk -t2 -c64 sending `GET /socket.io/?EIO=4&transport=polling`, run for a duration
            estimated from its rate, again until at least N (1,000,000) handshakes were
            answered.

Order: the sessions start and make two rounds of polls; the canaries; the flood; once it ended,
every session polls once more; then the canaries are asked for and the checks run.

Checks (one `check: PASS|FAIL` line each): every session started and its polls before the flood
were right; the flood got its handshakes answered without a socket error or an error status;
it learned more sessions per poll interval than the zone holds (capacity from the module's
"is full and evicts sessions" line; else not checked), so that a plain LRU table would lose
every session; the front reused its backend connections (`keepalive`); the canaries are gone
and `$socketio_sticky_evicted` (when the module has it) is at least handshakes - capacity;
**every poll of every session survived**, including one after the flood; the longest time
between two polls of one session stayed within 2 x interval + 1 s (a starved client would
poll so rarely that a plain LRU lost its sessions for that reason alone, or measure nothing);
no warn/error/alert in nginx's error logs but the module's eviction line; both nginx alive.

Everything lives in a temporary directory that is removed on exit (--keep keeps it); the
processes started here are stopped by their pid, also on errors, Ctrl-C and when the time limit
is reached.
"""

import argparse
import asyncio
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
import threading
import time
from collections import Counter

sys.dont_write_bytecode = True   # importing bench.py must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench/bench.py: the module's path, the HTTP client, processes; bench/throughput.py: the checks'
# bookkeeping and the front's workers.
from bench import (HANDSHAKE_QS, MODULE_SO, SID_RE, Conn, Procs, free_port,  # noqa: E402
                   log, log_tail, machine, nginx_version, stop_on_signals, vendored_nginx,
                   wait_port)
from throughput import Checks, children_of, kill_leftovers, remove_or_keep  # noqa: E402

HANDSHAKE_PATH = "/socket.io/?" + HANDSHAKE_QS
CANARIES = 1000

# --------------------------------------------------------------------------------------------
# configurations

BACKEND_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
{user}
error_log {dir}/backend-error.log warn;
pid {dir}/backend.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type text/plain;
{temp_paths}
    # A handshake (EIO and no sid) mints a new session id each time; anything else names the
    # backend.
    map "$arg_EIO:$arg_sid" $handshake {{
        "~^[^:]+:$" 1;
        default 0;
    }}
{servers}
}}
"""

BACKEND_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header X-Backend {name};
            # The serial number of the connection: how many the backend accepted so far.
            add_header X-Backend-Conn $connection;
            if ($handshake) {{
                return 200 '0{{"sid":"$request_id","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}';
            }}
            return 200 'ok {name}';
        }}
    }}
"""

FRONT_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 8192;
{user}
{load_modules}
# warn: the module's line "zone ... is full and evicts sessions" (at most once a minute).
error_log {dir}/front-error.log warn;
pid {dir}/front.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type text/plain;
{temp_paths}
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    upstream flood {{
        socketio_sticky zone=flood:{zone};
{servers}        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /socket.io/ {{
            proxy_pass http://flood;
            add_header X-Sticky $socketio_sticky_status always;
{evicted_header}        }}
    }}
}}
"""

# wrk: the handshake, with wrk's fast path (no request()/response() in Lua); done() prints the
# exact counts on one line for the parent to read.
WRK_LUA = """\
-- written by bench/flood.py: the handshake, as fast as wrk can
wrk.method = "GET"
wrk.path = "%s"

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("FLOOD requests=%%d duration_us=%%d bytes=%%d connect=%%d "
        .. "read=%%d write=%%d timeout=%%d status=%%d\\n", summary.requests, summary.duration,
        summary.bytes, e.connect, e.read, e.write, e.timeout, e.status))
end
""" % HANDSHAKE_PATH
WRK_LINE = re.compile(r"^FLOOD (.*)$", re.M)
SOCKET_ERRORS = ("connect", "read", "write", "timeout")

# The module's line when its zone evicts (src/learn.rs; [warn], at most once a minute a zone).
EVICTS_RE = re.compile(r'socketio_sticky: zone "flood" is full and evicts sessions: (\d+) '
                       r'(?:so far|in the last \d+ s), (\d+) of them in use \(it holds (\d+) '
                       r'sessions')


def fmt_int(x):
    return "—" if x is None else "{:,.0f}".format(x)


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kKmM]?)", s)
    if not m:
        raise argparse.ArgumentTypeError("a size as nginx takes it: 1m, 512k, 1048576")
    return s


def nginx_and_modules():
    """The nginx to run and the modules it loads: TEST_NGINX_BINARY and TEST_NGINX_LOAD_MODULES
    (as t/e2e/run takes them), else the vendored nginx and target/release's module."""
    binary = os.environ.get("TEST_NGINX_BINARY", "")
    mods = os.environ.get("TEST_NGINX_LOAD_MODULES", "").split()
    if binary:
        nginx = os.path.abspath(binary) if "/" in binary else shutil.which(binary)
        if not nginx or not (os.path.isfile(nginx) and os.access(nginx, os.X_OK)):
            sys.exit("error: TEST_NGINX_BINARY: %s is not an executable file" % binary)
        if not mods:
            sys.exit("error: TEST_NGINX_BINARY is set: set TEST_NGINX_LOAD_MODULES to the module "
                     "built for that nginx too")
    else:
        nginx = vendored_nginx()
    mods = [os.path.abspath(m) for m in mods] or [MODULE_SO]
    for m in mods:
        if not os.path.isfile(m):
            sys.exit("error: no module at %s%s" % (
                m, "" if mods != [MODULE_SO] else
                "; run: cargo build --release --features vendored"))
    return nginx, mods


def has_evicted_variable(mods):
    """Whether one of the modules defines $socketio_sticky_evicted (older builds do not, and
    nginx refuses a configuration naming an unknown variable)."""
    for m in mods:
        with open(m, "rb") as f:
            if b"socketio_sticky_evicted" in f.read():
                return True
    return False


# --------------------------------------------------------------------------------------------
# the live sessions (asyncio, in a thread of their own)


class Session:
    __slots__ = ("index", "sid", "minted", "polls", "ok", "failed", "first_fail", "last_send",
                 "max_gap", "gaps", "polls_after_flood", "latencies", "error", "done")

    def __init__(self, index):
        self.index = index
        self.sid = None
        self.minted = None
        self.polls = 0
        self.ok = 0
        self.failed = 0
        self.first_fail = None     # (monotonic time, what)
        self.last_send = None
        self.max_gap = 0.0
        self.gaps = []
        self.polls_after_flood = 0
        self.latencies = []
        self.error = None          # why the session could not start
        self.done = False


async def http_get(reader, writer, path):
    """One GET on a keep-alive connection: (status, headers with lower-case names, body)."""
    writer.write(("GET %s HTTP/1.1\r\nHost: flood\r\n\r\n" % path).encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = b""
    return status, headers, body


class Clients:
    """The live sessions. The main thread reads the counters and sets `flood_end`."""

    def __init__(self, port, n, interval):
        self.port = port
        self.n = n
        self.interval = interval
        self.sessions = [Session(i) for i in range(n)]
        self.flood_start = None    # monotonic; set by the main thread
        self.flood_end = None
        self.stopping = False
        self.t0 = None
        self.thread = None
        self.crash = None

    def start(self):
        self.thread = threading.Thread(target=self._run, name="sessions", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            asyncio.run(self._all())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.crash = "%s: %s" % (type(e).__name__, e)

    async def _all(self):
        self.t0 = time.monotonic()
        await asyncio.gather(*(self._session(s) for s in self.sessions))

    def _fail(self, s, now, what):
        s.failed += 1
        if s.first_fail is None:
            s.first_fail = (now, what)

    async def _session(self, s):
        start = self.t0 + s.index * self.interval / self.n   # staggered over one interval
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        reader = writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            status, headers, body = await http_get(reader, writer, HANDSHAKE_PATH)
            m = SID_RE.match(body)
            if status != 200 or not m or not headers.get("x-backend"):
                s.error = "handshake answered %d %r" % (status, body[:60])
                return
            s.sid = m.group(1).decode()
            s.minted = headers["x-backend"]
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            s.error = "handshake failed: %s: %s" % (type(e).__name__, e)
            return
        path = "/socket.io/?%s&sid=%s" % (HANDSHAKE_QS, s.sid)
        due = start + self.interval
        try:
            while not self.stopping:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if self.stopping:
                    break
                now = time.monotonic()
                if s.last_send is not None:
                    gap = now - s.last_send
                    s.gaps.append(gap)
                    s.max_gap = max(s.max_gap, gap)
                s.last_send = now
                s.polls += 1
                if self.flood_end is not None and now > self.flood_end:
                    s.polls_after_flood += 1
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    status, headers, body = await http_get(reader, writer, path)
                    s.latencies.append(time.monotonic() - now)
                    sticky = headers.get("x-sticky", "")
                    got = body.decode("latin-1")[3:] if body.startswith(b"ok ") else None
                    if status == 200 and sticky == "learned" and got == s.minted:
                        s.ok += 1
                    else:
                        self._fail(s, now, "status %d, X-Sticky %r, answered by %s (minted by "
                                   "%s)" % (status, sticky, got, s.minted))
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    self._fail(s, now, "%s: %s" % (type(e).__name__, e))
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                if s.polls_after_flood > 0:
                    break
                # On schedule; a poll that is late does not make the next one early.
                due = max(due + self.interval, time.monotonic())
        finally:
            s.done = True
            if writer is not None:
                writer.close()

    def min_polls(self):
        return min((s.polls for s in self.sessions if s.error is None), default=0)

    def started(self):
        return all(s.sid is not None or s.error is not None for s in self.sessions)

    def ok_before_flood(self):
        """Sessions whose every poll so far was right (called before the flood)."""
        return sum(1 for s in self.sessions if s.sid and s.polls and s.failed == 0)


# --------------------------------------------------------------------------------------------
# the run


class Flood:
    def __init__(self, args, checks, nginx, mods):
        self.args = args
        self.checks = checks
        self.nginx = nginx
        self.mods = mods
        self.evicted_var = has_evicted_variable(mods)
        self.dir = tempfile.mkdtemp(prefix="socketio-sticky-flood-")
        for d in ("logs", "temp"):   # nginx -p opens logs/ before its configuration
            os.makedirs(os.path.join(self.dir, d))
        self.procs = Procs()
        self.backends = {"b%d" % (i + 1): free_port() for i in range(4)}
        self.port = free_port()
        self.front = None
        self.backend = None
        self.front_workers = []   # (pid, start time): stopped too if the master ever is not
        self.clients = None
        self.runs = []            # wrk runs of the flood
        self.kept = False

    # -- processes ---------------------------------------------------------------------------

    def temp_paths(self):
        r = subprocess.run([self.nginx, "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           check=False)
        conf = r.stdout.decode(errors="replace")
        lines = ["client_body_temp_path %s/temp/client_body;" % self.dir,
                 "proxy_temp_path %s/temp/proxy;" % self.dir]
        for t in ("fastcgi", "scgi", "uwsgi"):
            if "--without-http_%s_module" % t not in conf:
                lines.append("%s_temp_path %s/temp/%s;" % (t, self.dir, t))
        return "".join("    %s\n" % ln for ln in lines)

    def write_configs(self):
        user = "user root;" if os.geteuid() == 0 else ""
        temp = self.temp_paths()
        with open(os.path.join(self.dir, "backend.conf"), "w") as f:
            f.write(BACKEND_CONF.format(
                user=user, dir=self.dir, temp_paths=temp,
                servers="".join(BACKEND_SERVER.format(port=p, name=name)
                                for name, p in self.backends.items())))
        with open(os.path.join(self.dir, "front.conf"), "w") as f:
            f.write(FRONT_CONF.format(
                user=user, dir=self.dir, temp_paths=temp, workers=self.args.workers,
                load_modules="".join("load_module %s;\n" % m for m in self.mods),
                zone=self.args.zone, port=self.port,
                servers="".join("        server 127.0.0.1:%d;\n" % p
                                for p in self.backends.values()),
                evicted_header=("            add_header X-Evicted $socketio_sticky_evicted "
                                "always;\n" if self.evicted_var else "")))

    def start(self):
        self.write_configs()
        for name in ("backend", "front"):
            with open(os.path.join(self.dir, "%s.out" % name), "w") as out:
                p = self.procs.start([self.nginx, "-p", self.dir, "-c",
                                      os.path.join(self.dir, "%s.conf" % name)],
                                     stdout=out, stderr=subprocess.STDOUT)
            setattr(self, name, p)
        for p in self.backends.values():
            wait_port(p, self.backend, "backend nginx", deadline=30)
        wait_port(self.port, self.front, "front nginx", deadline=30)
        self.front_workers = children_of(self.front.pid)

    def cleanup(self):
        if self.clients is not None:
            self.clients.stopping = True
        if self.front is not None and self.front.poll() is None:
            self.front_workers += children_of(self.front.pid)
        self.procs.stop_all()
        kill_leftovers(self.front_workers)
        remove_or_keep(self)

    # -- the phases --------------------------------------------------------------------------

    def start_sessions(self):
        a = self.args
        self.clients = Clients(self.port, a.sessions, a.interval)
        self.clients.start()
        # Every session's handshake, then two rounds of polls.
        deadline = time.monotonic() + 4 * a.interval + 30
        while time.monotonic() < deadline:
            if self.clients.crash:
                raise RuntimeError("the session client crashed: " + self.clients.crash)
            if self.clients.started() and self.clients.min_polls() >= 2:
                break
            time.sleep(0.05)
        c = self.clients
        errors = [s.error for s in c.sessions if s.error]
        minted = Counter(s.minted for s in c.sessions if s.minted)
        ok = c.ok_before_flood()
        self.checks.check(
            not errors and ok == a.sessions and len(minted) == len(self.backends),
            "before the flood: %d of %d sessions made their handshake and %d rounds of polls, "
            "all `learned` from the backend that minted the sid (%d failed to start%s); minted "
            "by %s" % (ok, a.sessions, c.min_polls(), len(errors),
                       ": %s" % errors[0] if errors else "",
                       ", ".join("%s %d" % kv for kv in sorted(minted.items()))))

    def learn_canaries(self):
        """Handshakes nobody follows up, just before the flood: (sid, backend)."""
        c = Conn(self.port, timeout=30)
        pairs = []
        for i in range(0, CANARIES, 200):
            for r in c.pipeline([HANDSHAKE_PATH] * min(200, CANARIES - i)):
                m = SID_RE.match(r.body)
                if r.status == 200 and m:
                    pairs.append((m.group(1).decode(), r.headers.get("x-backend")))
        c.close()
        if len(pairs) != CANARIES:
            raise RuntimeError("canaries: %d of %d handshakes answered with a sid"
                               % (len(pairs), CANARIES))
        return pairs

    def ask_canaries(self, pairs):
        """Each canary's sid once: Counter of X-Sticky, the largest X-Evicted seen and the
        largest X-Backend-Conn seen."""
        c = Conn(self.port, timeout=30)
        statuses = Counter()
        evicted = conns = None
        paths = ["/socket.io/?%s&sid=%s" % (HANDSHAKE_QS, sid) for sid, _ in pairs]
        for i in range(0, len(paths), 200):
            for r in c.pipeline(paths[i:i + 200]):
                statuses[r.headers.get("x-sticky", "") if r.status == 200
                         else "status %d" % r.status] += 1
                if r.headers.get("x-evicted", "").isdigit():
                    evicted = max(evicted or 0, int(r.headers["x-evicted"]))
                if r.headers.get("x-backend-conn", "").isdigit():
                    conns = max(conns or 0, int(r.headers["x-backend-conn"]))
        c.close()
        return statuses, evicted, conns

    def wrk(self, secs, lua):
        """One wrk run of the flood; `secs` may be a fraction (wrk's -d takes whole seconds: it
        is then stopped early with SIGINT, after which it reports as usual)."""
        whole = max(1, math.ceil(secs))
        argv = ["wrk", "-t%d" % self.args.threads, "-c%d" % self.args.connections,
                "-d%ds" % whole, "--timeout", "5s", "-s", lua,
                "http://127.0.0.1:%d/" % self.port]
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
            raise RuntimeError("wrk failed (status %s): %s %s" % (
                p.returncode, text[-300:], err.decode(errors="replace")[-300:]))
        run = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        run["duration_s"] = run.pop("duration_us") / 1e6
        return run

    def flood(self):
        """wrk until at least --handshakes handshakes were answered."""
        a = self.args
        lua = os.path.join(self.dir, "flood.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)
        total = 0
        rate = None
        while total < a.handshakes:
            left = a.handshakes - total
            # The first run measures the rate; the next ones aim at what is left at the last
            # run's rate (3% over, so that another run is rare; at least 0.5 s), at most 15 s
            # at a time (the rate drifts when other work shares the CPUs).
            secs = min(3.0, max(0.5, a.handshakes / 50000)) if rate is None else \
                min(15.0, max(0.5, 1.03 * left / rate))
            run = self.wrk(secs, lua)
            self.runs.append(run)
            total += run["requests"]
            if run["requests"] == 0:
                raise RuntimeError("wrk got no response in %.1fs" % run["duration_s"])
            rate = run["requests"] / max(run["duration_s"], 1e-3)
            errs = sum(run[e] for e in SOCKET_ERRORS)
            log("flood: %s handshakes in %.1fs (%s/s)%s; %s of %s" % (
                fmt_int(run["requests"]), run["duration_s"],
                fmt_int(run["requests"] / max(run["duration_s"], 1e-9)),
                ", %d socket errors, %d status >= 400" % (errs, run["status"])
                if errs or run["status"] else "", fmt_int(total), fmt_int(a.handshakes)))
            if self.clients.crash:
                raise RuntimeError("the session client crashed: " + self.clients.crash)
        return total

    def evictions_logged(self):
        """The module's "is full and evicts sessions" lines: (evicted, of them in use, capacity)
        summed over the lines (the last ones after the last line are not in them)."""
        path = os.path.join(self.dir, "front-error.log")
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        found = [tuple(int(x) for x in m.groups()) for m in EVICTS_RE.finditer(text)]
        if not found:
            return None
        return (sum(f[0] for f in found), sum(f[1] for f in found), found[-1][2], len(found))

    def check_logs(self):
        for name in ("front", "backend"):
            path = os.path.join(self.dir, "%s-error.log" % name)
            lines = open(path, errors="replace").read().splitlines() \
                if os.path.exists(path) else []
            bad = [ln for ln in lines if re.search(r"\[(alert|crit|emerg|error|warn)\]", ln)
                   and not EVICTS_RE.search(ln)]
            self.checks.check(not bad, "%s nginx error log: no warn/error/alert lines but the "
                              "module's \"is full and evicts sessions\" (%d: %s)"
                              % (name, len(bad), bad[:2]))
        self.checks.check(self.front.poll() is None and self.backend.poll() is None,
                          "front and backend nginx still running")


# --------------------------------------------------------------------------------------------


def run(args, checks, f):
    """The phases; returns the figures."""
    a = args
    res = {}
    log("sessions: %d, a poll every %gs each; then the flood" % (a.sessions, a.interval))
    t_sessions = time.monotonic()
    f.start_sessions()
    c = f.clients
    canaries = f.learn_canaries()
    log("canaries: %d handshakes nobody follows up" % len(canaries))

    c.flood_start = time.monotonic()
    total = f.flood()
    c.flood_end = time.monotonic()
    flood_s = sum(r["duration_s"] for r in f.runs)
    res["flood_wall_s"] = c.flood_end - c.flood_start
    log("flood over: %s handshakes in %.1fs; one more round of polls" % (
        fmt_int(total), res["flood_wall_s"]))

    # One more round: every session polls once after the flood ended.
    deadline = time.monotonic() + 3 * a.interval + 30
    while time.monotonic() < deadline and not all(s.done for s in c.sessions):
        if c.crash:
            raise RuntimeError("the session client crashed: " + c.crash)
        time.sleep(0.05)
    c.stopping = True
    c.thread.join(10)
    statuses, evicted, conns = f.ask_canaries(canaries)
    logged = f.evictions_logged()

    live = [s for s in c.sessions if s.sid]
    polls = sum(s.polls for s in live)
    failed = sum(s.failed for s in live)
    survived = sum(1 for s in live if s.failed == 0 and s.polls_after_flood > 0)
    fails = sorted((s.first_fail[0], s.index, s.first_fail[1]) for s in live if s.first_fail)
    fail_kinds = Counter(re.sub(r", answered by .*", "", w) for s in live if s.first_fail
                         for w in [s.first_fail[1]])
    gaps = [g for s in live for g in s.gaps]
    lat = sorted(x for s in live for x in s.latencies)
    worst = max(live, key=lambda s: s.max_gap) if live else None
    capacity = logged[2] if logged else None
    res.update({
        "handshakes": total, "flood_s": flood_s, "rate": total / flood_s if flood_s else 0,
        "wrk_runs": f.runs,
        "socket_errors": sum(r[e] for r in f.runs for e in SOCKET_ERRORS),
        "status_errors": sum(r["status"] for r in f.runs),
        "evicted": evicted, "evicted_logged": logged[0] if logged else None,
        "evicted_in_use_logged": logged[1] if logged else None,
        "evict_lines": logged[3] if logged else 0, "capacity": capacity,
        "canaries": len(canaries), "canaries_status": dict(statuses),
        "backend_connections": conns,
        "sessions": a.sessions, "sessions_started": len(live), "survived": survived,
        "sessions_failed": sum(1 for s in live if s.failed),
        "polls": polls, "polls_failed": failed, "polls_ok": sum(s.ok for s in live),
        "polls_after_flood": sum(s.polls_after_flood for s in live),
        "first_failure_s": fails[0][0] - c.flood_start if fails else None,
        "first_failure": fails[0][2] if fails else None,
        "last_first_failure_s": fails[-1][0] - c.flood_start if fails else None,
        "first_failures_by_kind": dict(fail_kinds),
        "failures_before_flood": sum(1 for t, _i, _w in fails if t < c.flood_start),
        "worst_gap_s": worst.max_gap if worst else None,
        "median_gap_s": statistics.median(gaps) if gaps else None,
        "latency_p50_s": lat[len(lat) // 2] if lat else None,
        "latency_p99_s": lat[int(len(lat) * 0.99)] if lat else None,
        "latency_max_s": lat[-1] if lat else None,
        "sessions_wall_s": time.monotonic() - t_sessions,
    })
    return res


def checks_of(args, checks, f, res):
    a = args
    total, cap = res["handshakes"], res["capacity"]
    checks.check(total >= a.handshakes and res["socket_errors"] == 0 and res["status_errors"] == 0,
                 "flood: %s handshakes answered (asked for %s) in %d wrk runs: %d socket errors, "
                 "%d error responses (wrk's `Non-2xx or 3xx`: status >= 400)"
                 % (fmt_int(total), fmt_int(a.handshakes), len(res["wrk_runs"]),
                    res["socket_errors"], res["status_errors"]))
    # A plain LRU loses a session when more sessions are learned between two of its polls than
    # the zone holds: a slower flood would prove nothing.
    if cap:
        per = res["rate"] * a.interval
        checks.check(per > cap, "the flood was fast enough to matter: %s handshakes per poll "
                     "interval (%s/s x %gs) > the zone's capacity %s (a plain LRU table would "
                     "lose every session)" % (fmt_int(per), fmt_int(res["rate"]), a.interval,
                                              fmt_int(cap)))
    else:
        log("the zone's capacity is not in the error log (an older module): the flood's rate "
            "is not compared with it")
    # With keepalive, the front reuses its backend connections: the backend nginx (one worker)
    # accepts a few hundred, not one per request.
    requests = total + res["polls"] + 2 * res["canaries"] + a.sessions
    conns = res["backend_connections"]
    checks.check(conns is not None and conns < max(1000, requests // 100),
                 "the front kept its backend connections alive (keepalive 64): the backends "
                 "accepted %s connections for %s requests" % (fmt_int(conns), fmt_int(requests)))
    gone = res["canaries_status"].get("fallback", 0)
    checks.check(gone == res["canaries"],
                 "the flood churned the table: %d of %d handshakes made just before it and never "
                 "used are gone after it (`fallback`; got %s)"
                 % (gone, res["canaries"], dict(res["canaries_status"])))
    if res["evicted"] is not None:
        # Every handshake learns a new sid and none expires (timeout 10m): once the table is
        # full, each one evicts one, so at least handshakes - capacity were evicted (about
        # handshakes + canaries + sessions - capacity, plus the responses in flight when wrk
        # stopped, which wrk does not count).
        bound = total - cap if cap else total // 2
        checks.check(res["evicted"] >= bound,
                     "the flood churned the table: $socketio_sticky_evicted %s >= %s (handshakes "
                     "- capacity %s)" % (fmt_int(res["evicted"]), fmt_int(bound),
                                         fmt_int(cap) if cap else "? (not logged): / 2"))
    else:
        log("the module has no $socketio_sticky_evicted: evictions not counted (the canaries "
            "show the churn)")
    checks.check(res["sessions_started"] == a.sessions and res["survived"] == a.sessions
                 and res["polls_failed"] == 0,
                 "all sessions survive: %d of %d, every poll `learned` from the backend that "
                 "minted the sid (%s of %s polls failed%s)"
                 % (res["survived"], a.sessions, fmt_int(res["polls_failed"]),
                    fmt_int(res["polls"]),
                    "; first at %+.1fs from the flood's start: %s" % (
                        res["first_failure_s"], res["first_failure"])
                    if res["first_failure"] else ""))
    checks.check(res["polls_after_flood"] >= res["sessions_started"] > 0,
                 "every session polled again after the flood ended (%d polls)"
                 % res["polls_after_flood"])
    limit = 2 * a.interval + 1
    checks.check(res["worst_gap_s"] is not None and res["worst_gap_s"] <= limit,
                 "the sessions kept their interval: longest time between two polls of a session "
                 "%.2fs <= %gs (2 x interval + 1 s; median %.2fs)"
                 % (res["worst_gap_s"] or 0, limit, res["median_gap_s"] or 0))
    f.check_logs()


def report(args, f, res, version):
    a = args
    r = res
    cap = r["capacity"]
    out = ["", "## socketio_sticky: live sessions in a handshake flood", ""]
    out.append("nginx %s (`%s`), module %s; `worker_processes %d`; `socketio_sticky "
               "zone=flood:%s;` over 4 backends (a second nginx), `keepalive 64`; flood "
               "`wrk -t%d -c%d`; %d sessions polling every %g s; %s."
               % (version, f.nginx, " ".join(f.mods), a.workers, a.zone, a.threads,
                  a.connections, a.sessions, a.interval, machine()))
    out.append("")
    out.append("| figure | value |")
    out.append("| --- | ---: |")
    rows = [
        ("zone capacity (sessions, from the error log)", fmt_int(cap)),
        ("handshakes flooded", fmt_int(r["handshakes"])),
        ("flood duration (wrk's, s)", "%.1f" % r["flood_s"]),
        ("handshakes / s", fmt_int(r["rate"])),
        ("handshakes flooded per poll interval / capacity",
         "%.2f" % (r["rate"] * a.interval / cap) if cap else "—"),
        ("evictions (`$socketio_sticky_evicted`)", fmt_int(r["evicted"])),
        ("evictions as logged, of them sessions in use (%d line%s: the first eviction, then "
         "at most one a minute)" % (r["evict_lines"], "" if r["evict_lines"] == 1 else "s"),
         "%s, %s" % (fmt_int(r["evicted_logged"]), fmt_int(r["evicted_in_use_logged"]))),
        ("connections the backends accepted", fmt_int(r["backend_connections"])),
        ("unused handshakes before the flood, gone after it",
         "%d / %d" % (r["canaries_status"].get("fallback", 0), r["canaries"])),
        ("**sessions survived**", "**%d / %d**" % (r["survived"], a.sessions)),
        ("polls ok / total", "%s / %s" % (fmt_int(r["polls_ok"]), fmt_int(r["polls"]))),
        ("polls failed", fmt_int(r["polls_failed"])),
        ("sessions with a failed poll", fmt_int(r["sessions_failed"])),
        ("first failure (s after the flood started)",
         "%.1f" % r["first_failure_s"] if r["first_failure_s"] is not None else "—"),
        ("longest time between two polls of a session (s)", "%.2f" % (r["worst_gap_s"] or 0)),
        ("poll latency p50 / p99 / max (ms)", "%.1f / %.1f / %.1f" % (
            1000 * (r["latency_p50_s"] or 0), 1000 * (r["latency_p99_s"] or 0),
            1000 * (r["latency_max_s"] or 0))),
    ]
    for k, v in rows:
        out.append("| %s | %s |" % (k, v))
    if r["first_failures_by_kind"]:
        out.append("")
        out.append("First failed poll of each failed session, by answer: " + "; ".join(
            "%s: %d" % kv for kv in sorted(r["first_failures_by_kind"].items(),
                                           key=lambda kv: -kv[1])) +
                   " (first failures between %+.1fs and %+.1fs from the flood's start)."
                   % (r["first_failure_s"], r["last_first_failure_s"]))
    out.append("")
    out.append("wrk runs: " + "; ".join(
        "%s in %.1fs" % (fmt_int(w["requests"]), w["duration_s"]) for w in r["wrk_runs"]) + ".")
    print("\n".join(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handshakes", type=int, help="handshakes to flood (1000000; --quick "
                    "200000)")
    ap.add_argument("--quick", action="store_true",
                    help="200,000 handshakes through a 256k zone (CI: a flood of 3,600 "
                    "handshakes/s already outruns a plain LRU table there)")
    ap.add_argument("--sessions", type=int, default=500, help="live sessions (500)")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="seconds between two polls of a session (2)")
    ap.add_argument("--zone", type=parse_size, help="zone size (1m; --quick 256k)")
    ap.add_argument("--workers", type=int, default=2, help="front nginx workers (2)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--time-limit", type=int, help="seconds before giving up (120 + one per "
                    "2,000 handshakes)")
    args = ap.parse_args()
    args.handshakes = args.handshakes or (200000 if args.quick else 1000000)
    args.zone = args.zone or ("256k" if args.quick else "1m")
    if min(args.handshakes, args.sessions, args.workers, args.threads, args.connections) < 1 \
            or args.interval <= 0 or args.connections < args.threads:
        ap.error("counts and the interval must be positive (and connections >= threads)")
    limit = args.time_limit or int(120 + 10 * args.interval + args.handshakes / 2000)
    if shutil.which("wrk") is None:
        sys.exit("error: wrk not found (Debian package wrk)")
    nginx, mods = nginx_and_modules()

    checks = Checks()
    f = Flood(args, checks, nginx, mods)
    stop_on_signals(f.cleanup, limit, "flood")

    t0 = time.time()
    rc = 0
    res = None
    version = nginx_version(nginx)
    try:
        f.start()
        log("nginx %s: front on 127.0.0.1:%d (%s), backends on %s, in %s (time limit %ds)" % (
            version, f.port, " ".join(mods),
            ",".join(map(str, f.backends.values())), f.dir, limit))
        res = run(args, checks, f)
        checks_of(args, checks, f, res)
        report(args, f, res, version)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - every failure ends in the summary
        checks.check(False, "run aborted: %s: %s" % (type(e).__name__, e))
        for name in ("front-error.log", "backend-error.log", "front.out", "backend.out"):
            tail = log_tail(os.path.join(f.dir, name))
            if tail:
                log("%s (last lines):\n%s" % (name, tail))
        rc = 1
    finally:
        signal.alarm(0)
        f.cleanup()
    elapsed = time.time() - t0
    if args.json:
        data = {
            "benchmark": "socketio_sticky sessions in a handshake flood (bench/flood)",
            "date": time.strftime("%Y-%m-%d"), "nginx": version, "nginx_binary": nginx,
            "modules": mods, "machine": machine(), "elapsed_s": round(elapsed, 1),
            "params": {"handshakes": args.handshakes, "sessions": args.sessions,
                       "interval_s": args.interval, "zone": args.zone,
                       "front_workers": args.workers, "wrk_threads": args.threads,
                       "wrk_connections": args.connections, "canaries": CANARIES},
            "results": res,
            "checks": {"passed": checks.passed, "failed": checks.failed,
                       "failures": checks.failures},
        }
        with open(args.json, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        log("wrote " + args.json)
    log("%.0fs" % elapsed)
    print("flood: %d passed, %d failed" % (checks.passed, checks.failed), flush=True)
    return 1 if rc or checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
