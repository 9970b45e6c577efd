#!/usr/bin/env python3
"""nginx's own `sticky learn` next to round robin: callgrind Ir per proxied request, the
balancer's own Ir, and how many sessions a 1 MiB zone holds. For comparison with the
socketio_sticky rows of bench/callgrind (bench/bench.py), whose harness this reuses.

    python3 bench/nginx_sticky.py --nginx PATH            full run under valgrind
    python3 bench/nginx_sticky.py --nginx PATH --quick    no valgrind, small counts, checks only

PATH is an nginx >= 1.29.6 (open-source nginx has `sticky` in `upstream {}` from 1.29.6 on,
in ngx_http_upstream_sticky_module, built in unless configured out); an older one, or one whose
`nginx -t` rejects `sticky learn`, is refused with exit status 2. The backends are
bench/callgrind's: the vendored nginx 1.28 (cargo build --release --features vendored).

- **Front:** PATH with `master_process off; worker_processes 1;`, under
  `valgrind --tool=callgrind --instr-atstart=no` (as bench.py runs its front), one server
  (port) per upstream: `rr` (round robin) and `sticky`
  (`sticky learn create=$upstream_http_x_sid lookup=$arg_sid zone=sticky:64m timeout=1d;`),
  both over the same 3 backends with `keepalive 16;` after the balancer and bench.py's proxy
  settings; `dens` is the same with `zone=dens:1m` (--zone-size).
- **Backends:** bench.py's, and for this script only the sid of a handshake also in an
  `X-Sid` response header. `sticky learn create=` takes a variable: the sid has to be in a
  response header or cookie. Socket.IO 3/4 (Engine.IO 4) sends it in the handshake's body
  only, which `sticky learn` cannot read: it cannot learn real Socket.IO 3/4 sessions (Engine.IO
  3's default `io` cookie could be learned with `create=$upstream_cookie_io`). So these rows
  compare costs, not a working setup.
- **Counting:** as bench.py (its `Bench.measure`): warm-up requests, `callgrind_control -z`,
  exactly --requests keep-alive requests one at a time, `callgrind_control -d`; the dump's
  total Ir / requests. Rows: round robin with `…&sid=S`, and `sticky learn` with `…&sid=S` for
  the --sessions learned S, each answered by the backend that minted S (`X-Backend`). Balancer
  Ir: inclusive Ir of init + get + free per request (`callgrind_annotate`); sticky's functions
  wrap round robin's, so they include them.
- **Held:** nginx exposes no hit/miss status. A sid still in the zone always reaches the
  backend that minted it; a forgotten one goes round robin, which over n equal servers never
  picks one server n + 1 times in a row (nginx's smooth weighted round robin, also after its
  weight accounting of sticky requests: checked over every state it reaches with 2, 3 and 4
  servers). A session counts as held when n + 1 requests in a row with its sid all reach its
  backend; the learned sessions must all be held.
- **Density:** --density handshakes in order into `dens`, each sid then replayed; the held ones
  must be exactly the newest, and nginx's error log must show one eviction ("expiring least
  recently used session", a warning) for each of the others.

Prints a markdown table and a last line `nginx_sticky: N passed, M failed`; exits non-zero when
a check failed. Everything listens on 127.0.0.1 on free ports and lives in a temporary
directory that is removed on exit (--keep keeps it, with the callgrind dumps); the processes
started here are stopped by their pid, also on errors, Ctrl-C and at the time limit.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # importing bench.py must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench/bench.py: the backend configuration, the HTTP client, processes, callgrind control.
from bench import (BACKEND_CONF, BACKEND_SERVER, SID_RE, Bench, Checks, Conn,  # noqa: E402
                   Procs, fmt_ir, fmt_ratio, free_port, handshake, log, need_valgrind,
                   polling, stop_on_signals, vendored_nginx, wait_port)

MIN_VERSION = (1, 29, 6)
BACKENDS = 3
REPLAYS = BACKENDS + 1     # requests in a row that tell a held session (docstring: Held)
WARMUP = 100               # requests before each measured window (bench.py's default)
PIPELINE = 500             # requests per pipelined batch
HIT_ZONE = "64m"           # the `sticky` zone, as bench.py's `bench` zone
STICKY = "sticky learn create=$upstream_http_x_sid lookup=$arg_sid zone=%s timeout=1d;"
EVICTION_RE = re.compile(r'\[warn\].*sticky session zone "([^"]*)", expiring least recently')

# The balancer's functions as nginx's keepalive module calls them (init, get, free), per row;
# then what the sticky ones spend on the key's MD5 and the zone's lock.
BALANCER_FNS = {
    "rr": ("ngx_http_upstream_init_round_robin_peer", "ngx_http_upstream_get_round_robin_peer",
           "ngx_http_upstream_free_round_robin_peer"),
    "sticky_learn_hit": ("ngx_http_upstream_sticky_init_peer",
                         "ngx_http_upstream_sticky_get_peer",
                         "ngx_http_upstream_sticky_free_peer"),
}
DETAIL_FNS = (("MD5 of the key", ("ngx_md5_init", "ngx_md5_update", "ngx_md5_final")),
              ("zone lock", ("ngx_shmtx_lock", "ngx_shmtx_unlock")))
ROW_LABELS = (("rr", "round robin", "`…&sid=S`"),
              ("sticky_learn_hit", "`sticky learn`, learned sid", "`…&sid=S` (S learned)"))

# --------------------------------------------------------------------------------------------
# configurations

# bench.py's backend server, with the sid of a handshake also in `X-Sid` ($sid_header is empty,
# so the header absent, on other requests); the map goes into the http block, before the servers.
SID_ANCHOR = "add_header X-Backend {port};\n"
SID_MAP = '    map $handshake $sid_header { 1 $request_id; default ""; }\n'

FRONT_CONF = """\
daemon off;
master_process off;
worker_processes 1;
{user}
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
{upstreams}{servers}}}
"""

# The balancer first: `keepalive` wraps the balancer defined before it.
FRONT_UPSTREAM = """\
    upstream {name} {{
{balancer}{servers}        keepalive 16;
        keepalive_requests 100000000;
    }}
"""

# One server per upstream, the same in all but the upstream's name.
FRONT_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{name}; }}
    }}
"""


class Refused(Exception):
    """The nginx given cannot run this benchmark (exit status 2)."""


def nginx_version(path):
    """(major, minor, patch) and the version of `path -v`, or (None, why not)."""
    try:
        r = subprocess.run([path, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    out = r.stdout.decode(errors="replace").strip()
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        return None, out
    return tuple(int(x) for x in m.groups()), "%s.%s.%s" % m.groups()


def parse_size(s):
    """nginx's size syntax (`1m`, `512k`, `1048576`) in bytes."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", s)
    if not m:
        raise ValueError("invalid size %r" % s)
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * unit


# --------------------------------------------------------------------------------------------
# the run


class StickyBench(Bench):
    """bench.Bench's callgrind control, measuring and cleanup (ctl, instrument, measure,
    dump_files, dump_total, stop, cleanup), around this script's nginx and configuration."""

    def __init__(self, args, checks):
        self.args = args
        self.checks = checks
        self.valgrind = not args.quick
        self.dir = tempfile.mkdtemp(prefix="nginx-sticky-bench-")
        os.makedirs(os.path.join(self.dir, "logs"))   # nginx -p opens logs/ before its config
        self.procs = Procs()
        self.backend_ports = [free_port() for _ in range(BACKENDS)]
        self.ports = {name: free_port() for name in ("rr", "sticky", "dens")}
        self.front = None
        self.mcs = {}             # the measuring connections, by upstream
        self.dumps = {}           # label -> callgrind dump
        self.minted = []          # set by Bench.measure
        self.timeline = []

    # -- processes ---------------------------------------------------------------------------

    def write_configs(self):
        user = "user root;" if os.geteuid() == 0 else ""
        if SID_ANCHOR not in BACKEND_SERVER:
            raise RuntimeError("bench.py's BACKEND_SERVER has no %r line" % SID_ANCHOR)
        server = BACKEND_SERVER.replace(
            SID_ANCHOR, SID_ANCHOR + "            add_header X-Sid $sid_header;\n")
        with open(os.path.join(self.dir, "backend.conf"), "w") as f:
            f.write(BACKEND_CONF.format(
                user=user, dir=self.dir,
                servers=SID_MAP + "".join(server.format(port=p) for p in self.backend_ports)))
        servers = "".join("        server 127.0.0.1:%d;\n" % p for p in self.backend_ports)
        balancers = {"rr": "", "sticky": STICKY % ("sticky:" + HIT_ZONE),
                     "dens": STICKY % ("dens:" + self.args.zone_size)}
        upstreams = "".join(FRONT_UPSTREAM.format(
            name=name, servers=servers, balancer="        %s\n" % b if b else "")
            for name, b in balancers.items())
        front = "".join(FRONT_SERVER.format(name=name, port=port)
                        for name, port in self.ports.items())
        with open(os.path.join(self.dir, "front.conf"), "w") as f:
            f.write(FRONT_CONF.format(user=user, dir=self.dir, upstreams=upstreams,
                                      servers=front))

    def test_config(self):
        """`nginx -t` of the front's configuration: (ok, nginx's output)."""
        r = subprocess.run([self.args.nginx, "-t", "-p", self.dir, "-c",
                            os.path.join(self.dir, "front.conf")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           check=False)
        return r.returncode == 0, r.stdout.decode(errors="replace").strip()

    def start(self):
        with open(os.path.join(self.dir, "backend.out"), "w") as out:
            be = self.procs.start([vendored_nginx(), "-p", self.dir, "-c",
                                   os.path.join(self.dir, "backend.conf")],
                                  stdout=out, stderr=subprocess.STDOUT)
        argv = [self.args.nginx, "-p", self.dir, "-c", os.path.join(self.dir, "front.conf")]
        if self.valgrind:
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    "--dump-line=no", "--dump-instr=no",
                    "--log-file=" + os.path.join(self.dir, "valgrind.log"),
                    "--callgrind-out-file=" + os.path.join(self.dir, "callgrind.out")] + argv
        with open(os.path.join(self.dir, "front.out"), "w") as out:
            self.front = self.procs.start(argv, stdout=out, stderr=subprocess.STDOUT)
        for p in self.backend_ports:
            wait_port(p, be, "backend nginx")
        for p in self.ports.values():
            wait_port(p, self.front, "front nginx")

    # -- sessions ----------------------------------------------------------------------------

    def learn(self, name, n):
        """`n` handshakes in order through upstream `name`: the (sid, backend) of each."""
        c = Conn(self.ports[name])
        pairs = []
        bad = []
        for i in range(0, n, PIPELINE):
            for r in c.pipeline([handshake()] * min(PIPELINE, n - i)):
                sid = SID_RE.match(r.body)
                if r.status == 200 and sid and r.headers.get("x-sid") == sid.group(1).decode():
                    pairs.append((r.headers["x-sid"], r.headers.get("x-backend")))
                else:
                    bad.append((r.status, r.headers.get("x-sid"), r.body[:60]))
        c.close()
        self.checks.check(not bad and len({s for s, _ in pairs}) == n,
                          "%s: %d handshakes answered with distinct sids, each also in X-Sid "
                          "(bad: %s)" % (name, n, bad[:2]))
        return pairs

    def held(self, name, pairs):
        """The sids of `pairs` that upstream `name` still holds: REPLAYS requests in a row with
        the sid all reach the backend that minted it."""
        c = Conn(self.ports[name])
        out = []
        bad = []
        per = PIPELINE // REPLAYS
        for i in range(0, len(pairs), per):
            chunk = pairs[i:i + per]
            rs = c.pipeline([polling(None, s) for s, _ in chunk for _ in range(REPLAYS)])
            for k, (sid, backend) in enumerate(chunk):
                answers = rs[k * REPLAYS:(k + 1) * REPLAYS]
                bad += [(sid, r.status, r.headers.get("x-sid")) for r in answers
                        if r.status != 200 or "x-sid" in r.headers]
                if all(r.headers.get("x-backend") == backend for r in answers):
                    out.append(sid)
        c.close()
        self.checks.check(not bad, "%s: %d replays answered 200 without X-Sid (bad: %s)"
                          % (name, len(pairs) * REPLAYS, bad[:2]))
        return out

    def zone_density(self, n):
        """Learns `n` sessions in order into `dens`, replays each: how many it holds."""
        t0 = time.time()
        pairs = self.learn("dens", n)
        held = self.held("dens", pairs)
        count = len(held)
        newest = [s for s, _ in pairs[len(pairs) - count:]] if count else []
        self.checks.check(0 < count < n, "density: the %s zone is full and holds %d of %d"
                          % (self.args.zone_size, count, n))
        self.checks.check(held == newest, "density: the %d held sessions are exactly the newest"
                          % count)
        dt = time.time() - t0
        self.timeline.append(("density", dt))
        log("density: %d of %d sessions held by `zone=dens:%s` (%.1fs)"
            % (count, n, self.args.zone_size, dt))
        return count, len(pairs) - count

    # -- after the run -----------------------------------------------------------------------

    def check_front_log(self, evicted):
        """No error or alert; one eviction warning per session `dens` lost, none elsewhere."""
        path = os.path.join(self.dir, "front-error.log")
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        bad = [ln for ln in lines if re.search(r"\[(alert|crit|emerg|error)\]", ln)]
        zones = {}
        for ln in lines:
            m = EVICTION_RE.search(ln)
            if m:
                zones[m.group(1)] = zones.get(m.group(1), 0) + 1
            elif "[warn]" in ln:
                log("front error log: " + ln)
        self.checks.check(not bad, "front error log has no error/alert lines (%d: %s)"
                          % (len(bad), bad[:3]))
        self.checks.check(zones == ({"dens": evicted} if evicted else {}),
                          "front error log: %d evictions logged for `dens`, none elsewhere "
                          "(logged: %s)" % (evicted, zones))
        if self.valgrind:
            self.checks.check(self.front.poll() is None, "front nginx still running")

    def inclusive(self, label, n):
        """Inclusive Ir per request of every function in the dump of `label`."""
        r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no",
                            "--threshold=100", self.dumps[label]],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300,
                           check=True)
        line_re = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+\S*?:(\S+) \[.*\]$")
        fns = {}
        for line in r.stdout.decode(errors="replace").splitlines():
            m = line_re.match(line)
            if m:
                fns[m.group(2)] = fns.get(m.group(2), 0) + int(m.group(1).replace(",", "")) / n
        return fns


# --------------------------------------------------------------------------------------------
# report


def report(args, version, rows, balancer, fns, dens, timeline, elapsed):
    out = ["", "## nginx %s `sticky learn`: nginx instructions per proxied request "
           "(callgrind Ir)" % version, "",
           "%d requests per row on one keep-alive client connection, %d backends, "
           "`keepalive 16`, %s learned sessions (`zone=sticky:%s timeout=1d`); Ir is the front "
           "nginx's total for exactly those requests, divided by their number. Balancer: "
           "inclusive Ir of init + get + free per request." % (
               args.requests, BACKENDS, "{:,}".format(args.sessions), HIT_ZONE), "",
           "| row | request | Ir / request | vs round robin | balancer Ir | vs round robin's |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for key, what, req in ROW_LABELS:
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            what, req, fmt_ir(rows.get(key)), fmt_ratio(rows.get(key), rows.get("rr")),
            fmt_ir(balancer.get(key)), fmt_ratio(balancer.get(key), balancer.get("rr"))))
    out += ["", "Where the balancer's instructions go (inclusive Ir per request; the "
            "`sticky` functions call round robin's):", "",
            "| function | round robin | `sticky learn` hit |", "| --- | ---: | ---: |"]
    details = [(f, (f,)) for key in BALANCER_FNS for f in BALANCER_FNS[key]] + list(DETAIL_FNS)
    for what, names in details:
        cells = [fmt_ir(sum(fns[k].get(f, 0) for f in names))
                 if any(f in fns[k] for f in names) else "—" for k in BALANCER_FNS]
        out.append("| %s | %s |" % ("`%s`" % what if what.startswith("ngx_") else what,
                                    " | ".join(cells)))
    count, _evicted = dens
    out += ["", "Density: a %s zone (`zone=dens:%s`) holds **%s** sessions of %s learned in "
            "order (%.1f bytes of zone per session); they are exactly the newest." % (
                args.zone_size, args.zone_size, "{:,}".format(count),
                "{:,}".format(args.density), parse_size(args.zone_size) / max(count, 1)), "",
            "`sticky learn` reads the session id from a variable (`create=`), so from a "
            "response header or cookie: these backends add `X-Sid` to their handshakes for "
            "this comparison. Socket.IO 3/4 sends the sid in the handshake's body only, which "
            "`sticky learn` cannot read: it cannot keep real Socket.IO 3/4 sessions.", "",
            "The front is nginx %s, not bench/callgrind's 1.28: compare the ratios and the "
            "balancer Ir with socketio_sticky's, not the totals." % version, "",
            "Timings: " + ", ".join("%s %.0fs" % (k, v) for k, v in timeline)
            + "; total %.0fs." % elapsed]
    print("\n".join(out), flush=True)


# --------------------------------------------------------------------------------------------


def run(b, args):
    """Learns, measures, checks; returns (rows, balancer, fns, dens)."""
    rows, balancer, fns = {}, {}, {}
    t0 = time.time()
    pairs = b.learn("sticky", args.sessions)
    held = b.held("sticky", pairs)
    b.checks.check(len(held) == len(pairs), "sticky: all %d learned sessions held (%d)"
                   % (len(pairs), len(held)))
    b.timeline.append(("learn %d" % args.sessions, time.time() - t0))
    paths = [polling(None, s) for s, _ in pairs]
    backends = [bk for _, bk in pairs]
    b.mcs = {name: Conn(b.ports[name]) for name in ("rr", "sticky")}
    for c in b.mcs.values():   # connections to every backend, code paths
        for p in paths[:50]:
            c.get(p)
    t0 = time.time()
    b.instrument(True)
    rows["rr"] = b.measure("rr-sid", "rr", paths, args.requests)
    rows["sticky_learn_hit"] = b.measure("sticky-learn-hit", "sticky", paths, args.requests,
                                         expect_backend=backends)
    b.instrument(False)
    b.timeline.append(("measure", time.time() - t0))
    dens = b.zone_density(args.density)
    b.check_front_log(dens[1])
    if b.valgrind:
        for key, label in (("rr", "rr-sid"), ("sticky_learn_hit", "sticky-learn-hit")):
            fns[key] = b.inclusive(label, args.requests)
            balancer[key] = sum(fns[key].get(f, 0) for f in BALANCER_FNS[key])
            b.checks.check(all(f in fns[key] for f in BALANCER_FNS[key]),
                           "%s: the balancer's functions are in the profile" % key)
    return rows, balancer, fns, dens


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nginx", required=True, metavar="PATH",
                    help="an nginx >= 1.29.6 with the sticky module (the front)")
    ap.add_argument("--quick", action="store_true",
                    help="no valgrind, a few hundred requests: checks only")
    ap.add_argument("--requests", type=int, help="requests per row (2000; --quick 300)")
    ap.add_argument("--sessions", type=int, help="sessions learned before measuring "
                    "(1000; --quick 200)")
    ap.add_argument("--density", type=int, default=40000,
                    help="sessions learned in order into the density zone (40000)")
    ap.add_argument("--zone-size", default="1m", help="size of the density zone (1m)")
    ap.add_argument("--json", metavar="FILE", help="write the numbers as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--time-limit", type=int, help="seconds before giving up (600; --quick 120)")
    args = ap.parse_args()
    args.requests = args.requests or (300 if args.quick else 2000)
    args.sessions = args.sessions or (200 if args.quick else 1000)
    args.warmup = min(WARMUP, args.requests)   # read by Bench.measure
    if min(args.requests, args.sessions, args.density) < 1:
        ap.error("counts must be positive")
    try:
        parse_size(args.zone_size)
    except ValueError as e:
        ap.error(str(e))
    limit = args.time_limit or (120 if args.quick else 600)

    vt, version = nginx_version(args.nginx)
    if vt is None:
        print("nginx_sticky: error: %s -v: no nginx version (%s)" % (args.nginx, version),
              file=sys.stderr)
        return 2
    if vt < MIN_VERSION:
        print("nginx_sticky: error: %s is nginx %s; `sticky` in `upstream {}` needs nginx "
              ">= %s" % (args.nginx, version, ".".join(map(str, MIN_VERSION))),
              file=sys.stderr)
        return 2
    if not args.quick:
        need_valgrind()

    checks = Checks()
    b = StickyBench(args, checks)
    stop_on_signals(b.cleanup, limit, "nginx_sticky")

    t_start = time.time()
    rc = 0
    rows, balancer, dens = {}, {}, (None, None)
    try:
        b.write_configs()
        ok, out = b.test_config()
        if not ok:
            raise Refused("%s -t rejects the configuration (`sticky learn` needs the nginx >= "
                          "1.29.6 module ngx_http_upstream_sticky_module):\n%s"
                          % (args.nginx, out))
        b.start()
        log("front nginx %s%s on 127.0.0.1:%s, backends on %s, in %s (time limit %ds)" % (
            version, " under callgrind" if b.valgrind else "",
            ",".join(map(str, b.ports.values())), ",".join(map(str, b.backend_ports)), b.dir,
            limit))
        rows, balancer, fns, dens = run(b, args)
        b.stop()
        if b.valgrind:
            report(args, version, rows, balancer, fns, dens, b.timeline, time.time() - t_start)
        else:
            log("quick: %d sessions learned, %d held by a %s zone, %.0fs (the backends add "
                "X-Sid to handshakes: `sticky learn` cannot read Socket.IO 3/4's sid from the "
                "body)" % (args.sessions, dens[0], args.zone_size, time.time() - t_start))
    except Refused as e:
        print("nginx_sticky: error: %s" % e, file=sys.stderr)
        return 2
    except (Exception, SystemExit) as e:  # noqa: BLE001 - every failure ends in the summary
        checks.check(False, "run aborted: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.alarm(0)
        b.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"nginx": version, "rows": {k: rows.get(k) for k in BALANCER_FNS},
                       "balancer": {k: balancer.get(k) for k in BALANCER_FNS},
                       "density": dens[0], "zone_size": args.zone_size,
                       "requests": args.requests, "sessions": args.sessions,
                       "checks": {"passed": checks.passed, "failed": checks.failed}},
                      f, indent=1)
            f.write("\n")
    print("nginx_sticky: %d passed, %d failed" % (checks.passed, checks.failed), flush=True)
    return 1 if rc or checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
