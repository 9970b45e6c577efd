#!/usr/bin/env python3
"""Benchmarks of the socketio_sticky balancer; run through bench/callgrind or bench/density.

Modes:
  (default)        callgrind: nginx instructions (Ir) per proxied request for round robin,
                   ip_hash, hash $arg_sid consistent and socketio_sticky (learned-sid hit,
                   unknown sid, device_id, route label, route cookie, no key, handshake,
                   handshake with a device id, a browser's request; with sid_prefix, in an
                   nginx of its own against its twin without it: a tagged hit and a rewritten
                   handshake), with 1,000, 100,000 and 1,000,000 learned sessions in the zone
                   and over 2, 16 and 256 servers; then the density of a 1 MiB zone.
  --density-only   only the density of a 1 MiB zone (no valgrind).
  --quick          no valgrind, small counts: checks that every row behaves (learned hits come
                   back `learned` from the backend that minted the sid, the fill learns, the
                   density is plausible); exits non-zero on any failure.

Everything listens on 127.0.0.1 on free ports and lives in a temporary directory that is
removed on exit; the processes started here are stopped by their pid.
"""

import argparse
import atexit
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_SO = os.path.join(ROOT, "target", "release",
                         "libngx_http_upstream_socketio_sticky_module.so")

HANDSHAKE_QS = "EIO=4&transport=polling"
SID_RE = re.compile(rb'0\{"sid":"([^"]+)"')

# --------------------------------------------------------------------------------------------
# small helpers


def log(msg):
    print("==> " + msg, file=sys.stderr, flush=True)


_PORTS_GIVEN = set()


def free_port():
    """A port of 127.0.0.1 that nothing listens on, never the same twice in one run (hundreds
    are picked before the servers bind them)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(p)
            return p


def log_tail(path, lines=15):
    """The last lines of a log file, for the message of a run that stopped."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def vendored_nginx():
    cands = glob.glob(os.path.join(ROOT, "target", "release", "build", "nginx-sys-*", "out",
                                   "objs", "nginx"))
    if not cands:
        sys.exit("error: no vendored nginx; run: cargo build --release --features vendored")
    return max(cands, key=os.path.getmtime)


def nginx_version(nginx):
    r = subprocess.run([nginx, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       check=False)
    m = re.search(r"nginx/(\S+)", r.stdout.decode(errors="replace"))
    return m.group(1) if m else "?"


def machine():
    """CPU model, usable CPUs and memory, as the report's header names the machine."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        mem = 0
    return "%s, %d CPUs, %d GiB, Linux %s" % (model, len(os.sched_getaffinity(0)), mem,
                                              os.uname().release)


def need_valgrind():
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit("error: %s not found (Debian package valgrind)" % tool)


def stop_on_signals(cleanup, limit, who):
    """Ctrl-C, SIGTERM, SIGHUP and the time limit end the run through an exception (the
    caller's summary reports it); `cleanup` also runs at exit."""
    def on_signal(signum, _frame):
        raise SystemExit("%s: stopped by signal %d" % (who, signum))

    def on_alarm(_signum, _frame):
        raise TimeoutError("%s: time limit of %ds reached" % (who, limit))

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    atexit.register(cleanup)


class Checks:
    """Pass/fail bookkeeping for the closing line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(what)
            print("FAILED: " + what, file=sys.stderr, flush=True)
        return ok


# --------------------------------------------------------------------------------------------
# HTTP/1.1 client over one keep-alive connection (requests may be pipelined)


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


class Conn:
    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.pos = 0
        self.connect()

    def connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    @staticmethod
    def encode(path):
        """A GET; `path` is a path or (path, extra header lines)."""
        extra = ""
        if isinstance(path, tuple):
            path, extra = path[0], "".join(h + "\r\n" for h in path[1:])
        return ("GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n" % (path, extra)).encode()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by nginx")
        if self.pos > 65536:
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0
        else:
            self.buf += chunk

    def _until(self, sep, start):
        """Index (absolute) of `sep` at or after `start`, reading more as needed."""
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                return i
            start = max(start - self.pos, len(self.buf) - self.pos - len(sep))
            self._fill()
            start += self.pos

    def _need(self, end):
        """Reads until `end` (absolute, relative to the current `pos`) bytes are there."""
        while len(self.buf) < end:
            off = end - self.pos
            self._fill()
            end = self.pos + off
        return end

    def read(self):
        """One response: status, headers (lower-case names), body (de-chunked)."""
        end = self._until(b"\r\n\r\n", self.pos)
        head = self.buf[self.pos:end].decode("latin-1").split("\r\n")
        self.pos = end + 4
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            self._need(self.pos + n)
            body = self.buf[self.pos:self.pos + n]
            self.pos += n
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                e = self._until(b"\r\n", self.pos)
                size = int(self.buf[self.pos:e].split(b";")[0], 16)
                self.pos = e + 2
                self._need(self.pos + size + 2)
                parts.append(self.buf[self.pos:self.pos + size])
                self.pos += size + 2
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = b""
        return Response(status, headers, body)

    def get(self, path):
        self.send(self.encode(path))
        return self.read()

    def pipeline(self, paths):
        self.send(b"".join(self.encode(p) for p in paths))
        return [self.read() for _ in paths]


# --------------------------------------------------------------------------------------------
# processes


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGQUIT, wait=60):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(wait)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            try:
                self.stop(p, signal.SIGTERM, 20)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


def wait_port(port, proc, what, deadline=120):
    t0 = time.time()
    while time.time() - t0 < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("%s does not listen on port %d" % (what, port))



# --------------------------------------------------------------------------------------------
# nginx configurations

BACKEND_CONF = """\
daemon off;
master_process off;
worker_processes 1;
{user}
error_log {dir}/backend-error.log warn;
pid {dir}/backend.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type text/plain;
    # A handshake (EIO and no sid) mints a new session id each time; anything else gets "ok".
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
            add_header X-Backend {port};
            if ($handshake) {{
                return 200 '0{{"sid":"$request_id","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}}';
            }}
            return 200 'ok';
        }}
        # sid_prefix checks (never measured): the query string as the backend got it.
        location ~ ^/v/(sprefix|prr)/ {{
            add_header X-Backend {port};
            add_header X-Args $args;
            if ($handshake) {{
                return 200 '0{{"sid":"$request_id","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}}';
            }}
            return 200 'ok';
        }}
    }}
"""

# The start of every front nginx's configuration (NAME: its files' prefix), up to its round
# robin upstream `rr`: the twins of the sid_prefix rows differ in nothing else.
FRONT_HEAD = """\
daemon off;
master_process off;
worker_processes 1;
{user}
load_module {module};
error_log {dir}/{name}-error.log warn;
pid {dir}/{name}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type text/plain;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    log_format status '$socketio_sticky_status';

    upstream rr {{
{servers}
        keepalive 16;
        keepalive_requests 100000000;
    }}
"""

FRONT_CONF = FRONT_HEAD + """\
    upstream sticky {{
        socketio_sticky zone=bench:{zone_size} timeout=1d;
{servers}
        keepalive 16;
        keepalive_requests 100000000;
    }}
    upstream dens {{
        socketio_sticky zone=dens:1m timeout=1d;
{servers}
        keepalive 16;
        keepalive_requests 100000000;
    }}
{extra_upstreams}
    # Measured: one server per balancer, the same in all but the upstream's name, so that the
    # same request costs nginx the same everywhere but in the balancer.
    server {{
        listen 127.0.0.1:{port_rr};
        location / {{ proxy_pass http://rr; }}
    }}
    server {{
        listen 127.0.0.1:{port_sticky};
        location / {{ proxy_pass http://sticky; }}
    }}
{extra_servers}
    server {{
        listen 127.0.0.1:{port};
        # Checks: the same upstreams, the status in a header. (A handshake shows `fallback`
        # here: the header leaves before the body that teaches the sid is seen.)
        location /v/rr/ {{
            proxy_pass http://rr;
            add_header X-Status $socketio_sticky_status always;
        }}
        location /v/sticky/ {{
            proxy_pass http://sticky;
            add_header X-Status $socketio_sticky_status always;
        }}
        location /v/dens/ {{
            proxy_pass http://dens;
            add_header X-Status $socketio_sticky_status always;
        }}
{extra_locations}
        # Fill: handshakes into the `sticky` zone; the log counts those that taught a sid.
        location /fill/ {{
            proxy_pass http://sticky;
            access_log {dir}/fill.log status buffer=256k flush=50ms;
        }}
    }}
}}
"""

# `sid_prefix` installs a PREACCESS handler for every request of the http{} block (it strips
# the tag of a tagged sid, whichever upstream the request goes to), so its upstream lives in a
# front nginx of its own ("prefix"): the main front's rows, round robin's included, stay those
# of an nginx without sid_prefix; round robin in the "prefix" front pays the handler too.
# Its baseline is a "twin": the same configuration but for `sid_prefix`, started at the same
# time and sent the same requests in the same order, so that nginx's own count (glibc malloc's
# state, the timers) drifts alike in both (a new nginx ran some 250 Ir per request more in
# malloc than the main front after its other rows, on the same requests).
SIDE_FRONTS = {
    # front: (measured server of `rr`, of `sprefix`; the flag in `sprefix`)
    "prefix": ("prr", "sprefix", " sid_prefix"),
    "twin": ("trr", "tsprefix", ""),
}
PREFIX_FRONT_CONF = FRONT_HEAD + """\
    upstream sprefix {{
        socketio_sticky zone=sprefix:1m timeout=1d{sid_prefix};
{servers}
        keepalive 16;
        keepalive_requests 100000000;
    }}

    server {{
        listen 127.0.0.1:{port_prr};
        location / {{ proxy_pass http://rr; }}
    }}
    server {{
        listen 127.0.0.1:{port_sprefix};
        location / {{ proxy_pass http://sprefix; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        location /v/prr/ {{
            proxy_pass http://rr;
            add_header X-Status $socketio_sticky_status always;
        }}
        location /v/sprefix/ {{
            proxy_pass http://sprefix;
            add_header X-Status $socketio_sticky_status always;
        }}
    }}
}}
"""
# The measured servers of the side fronts.
SIDE_SERVERS = {srv: front for front, v in SIDE_FRONTS.items() for srv in v[:2]}


def siphash24(k0, k1, msg):
    """SipHash-2-4 of `msg` under the key (k0, k1), as t/lib/StickyCookie.pm computes it."""
    mask = (1 << 64) - 1

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d,
         k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]

    def rnd():
        v[0] = (v[0] + v[1]) & mask
        v[1] = rotl(v[1], 13) ^ v[0]
        v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & mask
        v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & mask
        v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & mask
        v[1] = rotl(v[1], 17) ^ v[2]
        v[2] = rotl(v[2], 32)

    padded = msg + b"\0" * (7 - len(msg) % 8) + bytes([len(msg) & 0xff])
    for i in range(0, len(padded), 8):
        m = int.from_bytes(padded[i:i + 8], "little")
        v[3] ^= m
        rnd()
        rnd()
        v[0] ^= m
    v[2] ^= 0xff
    for _ in range(4):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def server_tag(upstream, server):
    """The sid_prefix tag of `server line = address` in `upstream` (no cookie_key=): the low 48
    bits of its route cookie peer id, 8 base64url characters, most significant first."""
    text = b"upstream\0" + upstream.encode()
    d0 = siphash24(0x736f636b6574696f, 0x5f737469636b7931, text)
    d1 = siphash24(0x726f7574655f636f, 0x6f6b69655f6b6579, text)
    s = server.encode()
    pid = siphash24(d0, d1, len(s).to_bytes(8, "little") + s + s)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[(pid >> (42 - 6 * i)) & 0x3f] for i in range(8))


# The other balancers, each on its own measured server (the same request paths as round robin):
# name -> (balancer lines, how many backends). `sN` are socketio_sticky over N backends (scaling).
def other_upstreams(scale):
    ups = {
        "iphash": ("ip_hash;", None),
        "chash": ("hash $arg_sid consistent;", None),
        # One key each, so that a row pays for its own key only (a route-label request
        # carries no cookie: with cookie= its response would get a Set-Cookie too, which is
        # what `sboth` measures).
        "sroute": ("socketio_sticky zone=sroute:1m timeout=1d route=^([0-9]+)-;", None),
        "scookie": ("socketio_sticky zone=scookie:1m timeout=1d cookie=r cookie_key=bench;",
                    None),
        "sboth": ("socketio_sticky zone=sboth:1m timeout=1d route=^([0-9]+)- cookie=r "
                  "cookie_key=bench;", None),
    }
    for n in scale:
        ups["s%d" % n] = ("socketio_sticky zone=s%d:8m timeout=1d;" % n, n)
    return ups


def write_configs(d, backend_ports, scale_ports, front_port, measured_ports, zone_size, scale,
                  side_ports):
    user = "user root;" if os.geteuid() == 0 else ""

    def servers_of(ports):
        return "".join("        server 127.0.0.1:%d;\n" % p for p in ports)

    servers = servers_of(backend_ports)
    extra_upstreams, extra_servers, extra_locations = [], [], []
    for name, (lines, count) in other_upstreams(scale).items():
        ports = scale_ports[:count] if count else backend_ports
        # Enough idle connections for every backend, so that no row pays for new ones.
        extra_upstreams.append("    upstream %s {\n        %s\n%s        keepalive %d;\n"
                               "        keepalive_requests 100000000;\n    }\n"
                               % (name, lines, servers_of(ports), max(16, 2 * len(ports))))
        extra_servers.append("    server {\n        listen 127.0.0.1:%d;\n"
                             "        location / { proxy_pass http://%s; }\n    }\n"
                             % (measured_ports[name], name))
        extra_locations.append("        location /v/%s/ {\n            proxy_pass http://%s;\n"
                               "            add_header X-Status $socketio_sticky_status always;\n"
                               "        }\n" % (name, name))
    with open(os.path.join(d, "backend.conf"), "w") as f:
        f.write(BACKEND_CONF.format(
            user=user, dir=d,
            servers="".join(BACKEND_SERVER.format(port=p) for p in scale_ports)))
    for front, (srv_rr, srv_prefix, flag) in SIDE_FRONTS.items():
        with open(os.path.join(d, front + "-front.conf"), "w") as f:
            f.write(PREFIX_FRONT_CONF.format(
                user=user, dir=d, module=MODULE_SO, servers=servers, name=front + "-front",
                sid_prefix=flag, port=side_ports[front], port_prr=measured_ports[srv_rr],
                port_sprefix=measured_ports[srv_prefix]))
    with open(os.path.join(d, "front.conf"), "w") as f:
        f.write(FRONT_CONF.format(user=user, dir=d, module=MODULE_SO, servers=servers,
                                  name="front", port=front_port, port_rr=measured_ports["rr"],
                                  port_sticky=measured_ports["sticky"], zone_size=zone_size,
                                  extra_upstreams="".join(extra_upstreams),
                                  extra_servers="".join(extra_servers),
                                  extra_locations="".join(extra_locations)))


# --------------------------------------------------------------------------------------------
# the bench


def handshake(prefix=None):
    """A handshake path; without a prefix, for the measured servers."""
    return "%s/socket.io/?%s" % ("/" + prefix if prefix else "", HANDSHAKE_QS)


# The header lines of a polling request as Chrome sends it (a same-origin XHR), after Host.
BROWSER_HEADERS = (
    "Connection: keep-alive",
    'sec-ch-ua: "Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"',
    "sec-ch-ua-mobile: ?0",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    'sec-ch-ua-platform: "Linux"',
    "Accept: */*",
    "Sec-Fetch-Site: same-origin",
    "Sec-Fetch-Mode: cors",
    "Sec-Fetch-Dest: empty",
    "Referer: https://chat.example.com/",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9",
)


def browser_polling(sid, t):
    """The polling request of a browser's socket.io-client 4 (its cache-busting `t=`)."""
    return ("/socket.io/?EIO=4&transport=polling&t=%s&sid=%s" % (t, sid),) + BROWSER_HEADERS


def polling(prefix, sid):
    return "%s/socket.io/?%s&sid=%s" % ("/" + prefix if prefix else "", HANDSHAKE_QS, sid)


class Bench:
    def __init__(self, args, checks):
        self.args = args
        self.checks = checks
        self.valgrind = args.mode == "full"
        self.dir = tempfile.mkdtemp(prefix="socketio-sticky-bench-")
        os.makedirs(os.path.join(self.dir, "logs"))
        self.procs = Procs()
        self.backend_ports = [free_port() for _ in range(args.backends)]
        # The scaling upstreams use the first N of these (the first ones are backend_ports).
        self.scale_ports = self.backend_ports + [
            free_port() for _ in range(max(args.scale + [args.backends]) - args.backends)]
        self.front_port = free_port()
        # The measured servers: round robin, socketio_sticky, and the others.
        self.measured_ports = {"rr": free_port(), "sticky": free_port()}
        for name in other_upstreams(args.scale):
            self.measured_ports[name] = free_port()
        # The side fronts (sid_prefix and its twin): measured servers and check servers.
        for name in SIDE_SERVERS:
            self.measured_ports[name] = free_port()
        self.side_ports = {front: free_port() for front in SIDE_FRONTS}
        self.mcs = {}             # their measuring connections
        self.front = None
        self.fronts = {}          # "main", "prefix", "twin" -> process
        self.fill_log_seen = 0
        self.learned = 0          # sessions taught to the `sticky` zone so far
        self.dumps = {}           # label -> dump file
        self.minted = []          # (sid, backend) of the handshakes of the last measurement
        self.timeline = []

    # -- processes ---------------------------------------------------------------------------

    def start(self):
        nginx = vendored_nginx()
        write_configs(self.dir, self.backend_ports, self.scale_ports, self.front_port,
                      self.measured_ports, self.args.zone_size, self.args.scale,
                      self.side_ports)
        with open(os.path.join(self.dir, "backend.out"), "w") as out:
            be = self.procs.start([nginx, "-p", self.dir, "-c",
                                   os.path.join(self.dir, "backend.conf")],
                                  stdout=out, stderr=subprocess.STDOUT)
        for front in ["main"] + list(SIDE_FRONTS):
            name = "" if front == "main" else front + "-"
            argv = [nginx, "-p", self.dir, "-c", os.path.join(self.dir, name + "front.conf")]
            if self.valgrind:
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        "--dump-line=no", "--dump-instr=no",
                        "--log-file=" + os.path.join(self.dir, name + "valgrind.log"),
                        "--callgrind-out-file=" + self.dump_prefix(front)] + argv
            with open(os.path.join(self.dir, name + "front.out"), "w") as out:
                self.fronts[front] = self.procs.start(argv, stdout=out,
                                                      stderr=subprocess.STDOUT)
        self.front = self.fronts["main"]
        for p in self.scale_ports:
            wait_port(p, be, "backend nginx")
        ports = [("main", self.front_port)] + list(self.side_ports.items()) + \
            [(self.front_of(name), p) for name, p in self.measured_ports.items()]
        for front, p in ports:
            wait_port(p, self.fronts[front], "%s front nginx" % front)

    def stop(self):
        self.procs.stop_all()

    def cleanup(self):
        self.stop()
        if not os.path.isdir(self.dir):
            return
        if self.args.keep:
            if not getattr(self, "kept", False):
                log("kept " + self.dir)
            self.kept = True
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- callgrind control -------------------------------------------------------------------

    @staticmethod
    def front_of(server):
        """Which front nginx a measured server is in: "main", "prefix" or "twin"."""
        return SIDE_SERVERS.get(server, "main")

    def proc_of(self, front):
        return self.fronts[front]

    def dump_prefix(self, front):
        return os.path.join(self.dir, "callgrind.out" if front == "main"
                            else front + "-callgrind.out")

    def ctl(self, *argv, front="main"):
        r = subprocess.run(["callgrind_control"] + list(argv) + [str(self.proc_of(front).pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                           check=False)
        out = r.stdout.decode(errors="replace")
        if r.returncode != 0 or "OK" not in out:
            raise RuntimeError("callgrind_control %s failed: %s" % (" ".join(argv), out))

    def instrument(self, on, front="main"):
        if self.valgrind:
            self.ctl("-i", "on" if on else "off", front=front)

    def dump_files(self, front="main"):
        return set(glob.glob(self.dump_prefix(front) + ".*"))

    @staticmethod
    def dump_total(path):
        total = None
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("totals:") or (total is None and line.startswith("summary:")):
                    total = int(line.split()[1])
        if total is None:
            raise RuntimeError("no totals in " + path)
        return total

    # -- fills and checks --------------------------------------------------------------------

    def fill_log_count(self, expect):
        """`new` lines the fill log gained since the last call (waits for nginx's flush)."""
        path = os.path.join(self.dir, "fill.log")
        deadline = time.time() + 30
        while True:
            with open(path, "rb") as f:
                f.seek(self.fill_log_seen)
                data = f.read()
            lines = data.count(b"\n")
            if lines >= expect or time.time() > deadline:
                break
            time.sleep(0.2)
        self.fill_log_seen += len(data)
        return data.count(b"new\n"), lines

    def fill(self, n, sample=0):
        """Teaches `n` sessions to the `sticky` zone with pipelined handshakes over a few
        connections; returns `sample` (sid, backend) pairs picked uniformly among them."""
        if n <= 0:
            return []
        t0 = time.time()
        conns = min(self.args.fill_conns, max(1, n // 1000))
        picks = set(random.sample(range(n), min(sample, n)))
        got = []
        parsed = [0] * conns
        errors = []
        per = [(n * i // conns, n * (i + 1) // conns) for i in range(conns)]
        batch = self.args.fill_batch
        path = Conn.encode(handshake("fill"))

        end_mark = b'"pingTimeout":20000}'
        backend_re = re.compile(rb"\r\nX-Backend: (\d+)\r\n")

        def work(i):
            # Responses are counted and parsed in bulk: each ends with the handshake body's
            # last member and carries one X-Backend header and one sid, in order.
            lo, hi = per[i]
            try:
                c = Conn(self.front_port, timeout=120)
                k = lo
                while k < hi:
                    m = min(batch, hi - k)
                    c.send(path * m)
                    data = b""
                    seen = 0
                    while seen < m:
                        chunk = c.sock.recv(1 << 20)
                        if not chunk:
                            raise ConnectionError("connection closed by nginx")
                        data += chunk
                        seen = data.count(end_mark)
                    if seen != m or not data.endswith(end_mark):
                        raise RuntimeError("unexpected response bytes: %r" % data[-200:])
                    sids = SID_RE.findall(data)
                    backends = backend_re.findall(data)
                    if len(sids) != m or len(backends) != m or data.count(b"HTTP/1.1 200 ") != m:
                        raise RuntimeError("%d responses, %d sids, %d backends"
                                           % (m, len(sids), len(backends)))
                    parsed[i] += m
                    for j in range(m):
                        if k + j in picks:
                            got.append((sids[j].decode(), backends[j].decode()))
                    k += m
                c.close()
            except Exception as e:  # noqa: BLE001 - reported as a failed check
                errors.append("fill connection %d: %s" % (i, e))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.time() - t0
        new, lines = self.fill_log_count(n)
        self.learned += new
        log("fill: %d handshakes in %.1fs (%.0f/s), %d learned (`new` in the log)"
            % (sum(parsed), dt, sum(parsed) / max(dt, 1e-9), new))
        self.timeline.append(("fill %d" % n, dt))
        self.checks.check(not errors, "fill of %d without errors (%s)" % (n, errors[:3]))
        self.checks.check(sum(parsed) == n and new == n and lines == n,
                          "fill of %d: %d handshakes answered, %d log lines, %d `new`"
                          % (n, sum(parsed), lines, new))
        random.shuffle(got)
        return got

    def verify_learned(self, pairs, what):
        """Every (sid, backend) comes back `learned`, from the backend that minted it."""
        c = Conn(self.front_port)
        bad = []
        for i in range(0, len(pairs), 200):
            chunk = pairs[i:i + 200]
            for (sid, backend), r in zip(chunk, c.pipeline([polling("v/sticky", s)
                                                            for s, _ in chunk])):
                st = r.headers.get("x-status")
                if r.status != 200 or st != "learned" or r.headers.get("x-backend") != backend:
                    bad.append((sid, r.status, st, r.headers.get("x-backend"), backend))
        c.close()
        self.checks.check(not bad and pairs, "%s: %d of %d sample sessions come back `learned` "
                          "from their backend (first bad: %s)"
                          % (what, len(pairs) - len(bad), len(pairs), bad[:2]))

    def verify_statuses(self):
        """The status of each kind of request, through the /v/ locations."""
        c = Conn(self.front_port)
        r = c.get(polling("v/rr", "x" * 32))
        self.checks.check(r.status == 200 and not r.headers.get("x-status"),
                          "round robin: no status (got %r)" % r.headers.get("x-status"))
        r = c.get("/v/sticky/health")
        self.checks.check(r.status == 200 and r.headers.get("x-status") == "fallback",
                          "no key: `fallback` (got %r)" % r.headers.get("x-status"))
        r = c.get(polling("v/sticky", "%032x" % random.getrandbits(128)))
        self.checks.check(r.status == 200 and r.headers.get("x-status") == "fallback",
                          "unknown sid: `fallback` (got %r)" % r.headers.get("x-status"))
        # A handshake teaches its sid: the next request with it is `learned`, same backend.
        pairs = []
        for _ in range(20):
            r = c.get(handshake("v/sticky"))
            m = SID_RE.match(r.body)
            if m:
                pairs.append((m.group(1).decode(), r.headers.get("x-backend")))
        self.learned += len(pairs)
        self.checks.check(len(pairs) == 20, "handshakes answered with a sid (%d of 20)"
                          % len(pairs))
        backends = {b for _, b in pairs}
        self.checks.check(len(backends) == len(self.backend_ports),
                          "handshakes are spread over all %d backends (%d)"
                          % (len(self.backend_ports), len(backends)))
        c.close()
        self.verify_learned(pairs, "handshake then polling")

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, label, server, paths, n, expect_backend=None, expect_sid=False):
        """Ir of the front nginx for exactly `n` requests (cycling over `paths`) to the measured
        `server` ("rr", "sticky", ...; those of SIDE_SERVERS are in the side fronts), per
        request. Without valgrind: only the responses are checked and None is returned."""
        front = self.front_of(server)
        c = self.mcs[server]
        for p in paths[:self.args.warmup] if len(paths) >= self.args.warmup else \
                [paths[i % len(paths)] for i in range(self.args.warmup)]:
            c.get(p)
        before = self.dump_files(front)
        if self.valgrind:
            self.ctl("-z", front=front)
        t0 = time.time()
        bad = []
        self.minted = []
        for i in range(n):
            k = i % len(paths)
            r = c.get(paths[k])
            if r.status != 200:
                bad.append((paths[k], r.status))
            elif expect_backend is not None and r.headers.get("x-backend") != expect_backend[k]:
                bad.append((paths[k], r.headers.get("x-backend"), expect_backend[k]))
            elif expect_sid:
                sid = SID_RE.match(r.body)
                if sid is None:
                    bad.append((paths[k], r.body[:60]))
                else:
                    self.minted.append((sid.group(1).decode(), r.headers.get("x-backend")))
        dt = time.time() - t0
        per = None
        if self.valgrind:
            self.ctl("-d", label, front=front)
            new = sorted(self.dump_files(front) - before)
            if len(new) != 1:
                raise RuntimeError("expected one new dump for %s, got %s" % (label, new))
            self.dumps[label] = new[0]
            per = self.dump_total(new[0]) / n
            log("%-28s %10.0f Ir/request  (%d requests, %.1fs)" % (label, per, n, dt))
        self.checks.check(not bad, "%s: %d requests answered as expected (bad: %s)"
                          % (label, n, bad[:2]))
        return per

    def annotate(self, label, n):
        """Per request, from the dump of `label`: {function: (inclusive Ir, self Ir)} for the
        module's functions and nginx's balancer functions, and the module's own (self) total."""
        path = self.dumps.get(label)
        if not path:
            return None
        nginx_fns = re.compile(r"^ngx_http_upstream_(init|get|free)_(round_robin|keepalive)_peer$"
                               r"|^ngx_http_upstream_(init|get)_(ip_hash|chash)_peer$"
                               r"|^ngx_shmtx_(lock|unlock)$")
        result = {}
        module_self = 0
        for inclusive in ("yes", "no"):
            for ir, fn, obj in annotated(path, inclusive):
                in_module = (os.path.basename(obj) == os.path.basename(MODULE_SO)
                             or fn.startswith(MODULE_CRATE + "::"))
                if not (in_module or nginx_fns.search(fn)):
                    continue
                fn = fn.replace(MODULE_CRATE + "::", "")
                # Summed, not set: a function is listed once per source file its code came
                # from (see annotated()), and its costs are the sum of those listings.
                incl, own = result.get(fn, (0.0, 0.0))
                if inclusive == "yes":
                    incl += ir / n
                else:
                    own += ir / n
                    if in_module:
                        module_self += ir / n
                result[fn] = (incl, own)
        return result, module_self

    # -- density -----------------------------------------------------------------------------

    def density(self, n):
        """Learns `n` sessions in order into the 1 MiB zone, replays each once and counts the
        `learned` ones; checks that they are exactly the newest."""
        t0 = time.time()
        c = Conn(self.front_port)
        sids = []
        backend = {}
        for i in range(0, n, 500):
            m = min(500, n - i)
            for r in c.pipeline([handshake("v/dens")] * m):
                s = SID_RE.match(r.body)
                if r.status == 200 and s:
                    sid = s.group(1).decode()
                    sids.append(sid)
                    backend[sid] = r.headers.get("x-backend")
        self.checks.check(len(sids) == n and len(set(sids)) == n,
                          "density: %d distinct sids minted (%d)" % (n, len(set(sids))))
        survivors = []
        wrong_backend = 0
        for i in range(0, len(sids), 500):
            chunk = sids[i:i + 500]
            for sid, r in zip(chunk, c.pipeline([polling("v/dens", s) for s in chunk])):
                if r.headers.get("x-status") == "learned":
                    survivors.append(sid)
                    if r.headers.get("x-backend") != backend[sid]:
                        wrong_backend += 1
        c.close()
        count = len(survivors)
        newest = set(sids[len(sids) - count:]) if count else set()
        exact = set(survivors) == newest
        self.checks.check(0 < count < n, "density: the 1 MiB zone is full and holds %d of %d"
                          % (count, n))
        self.checks.check(exact, "density: the %d survivors are exactly the newest" % count)
        self.checks.check(wrong_backend == 0, "density: survivors routed to their backend "
                          "(%d wrong)" % wrong_backend)
        dt = time.time() - t0
        self.timeline.append(("density", dt))
        log("density: %d of %d sessions held by a 1 MiB zone (%.1f bytes each), newest "
            "exactly: %s (%.1fs)" % (count, n, 1048576 / max(count, 1), exact, dt))
        return count, exact

    # -- error log ---------------------------------------------------------------------------

    def check_error_log(self):
        lines = []
        for name in ["front-error.log"] + [f + "-front-error.log" for f in SIDE_FRONTS]:
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                lines += open(path, errors="replace").read().splitlines()
        bad = [ln for ln in lines if re.search(r"\[(alert|crit|emerg|error)\]", ln)]
        warns = [ln for ln in lines if "[warn]" in ln]
        for ln in warns[:5]:
            log("front error log: " + ln)
        self.checks.check(not bad, "front error log has no error/alert lines (%d: %s)"
                          % (len(bad), bad[:3]))
        if self.valgrind:
            for front, proc in self.fronts.items():
                self.checks.check(proc.poll() is None, "%s front nginx still running" % front)
        return warns


# --------------------------------------------------------------------------------------------
# modes


def fmt_ir(x):
    return "—" if x is None else "{:,.0f}".format(x)


def fmt_ratio(a, b):
    return "—" if a is None or b is None or not b else "%.4f" % (a / b)


def run_measured(b, args):
    """The rows, with each table size of --sessions learned in turn."""
    n = args.requests
    sizes = args.sessions
    rows = {}    # (row, size) -> [per-request Ir per round]

    def add(key, v):
        rows.setdefault(key, []).append(v)

    b.mcs = {k: Conn(p) for k, p in b.measured_ports.items()}
    # Warm-up with instrumentation off: connections to every backend, code paths.
    for server, c in b.mcs.items():
        for p in (polling(None, "w" * 32), "/health", handshake()):
            for _ in range(50):
                c.get(p)

    b.verify_statuses()          # teaches a few sessions; counted in b.learned
    dev_hs, dev_backends = device_handshakes(b, DEVICE_HANDSHAKES)

    def hit_rows(size, pairs):
        sids = [s for s, _ in pairs]
        backends = [bk for _, bk in pairs]
        unknown = ["%032x" % random.getrandbits(128) for _ in range(len(sids))]
        for _ in range(args.rounds):
            add(("a", size), b.measure("rr-sid-%d" % size, "rr",
                                       [polling(None, s) for s in sids], n))
            add(("b", size), b.measure("sticky-hit-%d" % size, "sticky",
                                       [polling(None, s) for s in sids], n,
                                       expect_backend=backends))
        add(("e", size), b.measure("sticky-unknown-%d" % size, "sticky",
                                   [polling(None, s) for s in unknown], n))

    measured = []
    first_hits = None
    for i, size in enumerate(sizes):
        if size <= b.learned:
            raise RuntimeError("--sessions %d: the zone already holds %d sessions"
                               % (size, b.learned))
        sample = b.fill(size - b.learned, sample=max(args.hit_sids, 2000) if i else size)
        b.verify_learned(sample[:2000], "after the fill to %d" % size)
        size = b.learned
        measured.append(size)
        hits = sample[:args.hit_sids]
        b.instrument(True)
        t0 = time.time()
        hit_rows(size, hits)
        if i == 0:
            first_hits = hits
            browser = [browser_polling(s, "P%06x" % k) for k, (s, _) in enumerate(hits)]
            add(("m0", size), b.measure("rr-browser", "rr", browser, n))
            add(("m", size), b.measure("sticky-browser", "sticky", browser, n,
                                       expect_backend=[bk for _, bk in hits]))
            add(("c0", size), b.measure("rr-nokey", "rr", ["/health"], n))
            add(("c", size), b.measure("sticky-nokey", "sticky", ["/health"], n))
            add(("d0", size), b.measure("rr-handshake", "rr", [handshake()], n,
                                        expect_sid=True))
        add(("d", size), b.measure("sticky-handshake-%d" % size, "sticky", [handshake()], n,
                                   expect_sid=True))
        # Each handshake, the warm-up's too, teaches its sid.
        b.learned += n + args.warmup
        taught = [("handshakes", b.minted)]
        if i == 0:
            add(("n0", size), b.measure("rr-device-handshake", "rr", dev_hs, n,
                                        expect_sid=True))
            add(("n", size), b.measure("sticky-device-handshake", "sticky", dev_hs, n,
                                       expect_backend=dev_backends, expect_sid=True))
            b.learned += n + args.warmup
            taught.append(("handshakes with a device id", b.minted))
        b.timeline.append(("measure at %d" % size, time.time() - t0))
        b.instrument(False)
        if i == 0:
            for what, minted in taught:
                b.verify_learned(random.sample(minted, min(500, len(minted))),
                                 "sessions taught by the measured %s" % what)
            balancer_rows(b, args, first_hits, size, add)
            prefix_rows(b, args, size, add)
    return rows, measured


def statuses(b, name, paths):
    """$socketio_sticky_status and backend of each path through /v/<name>/."""
    c = Conn(b.front_port)
    out = []
    for p in paths:
        path, rest = (p[0], p[1:]) if isinstance(p, tuple) else (p, ())
        r = c.get((path.replace("/socket.io/", "/v/%s/socket.io/" % name, 1),) + tuple(rest))
        out.append((r.status, r.headers.get("x-status"), r.headers.get("x-backend"),
                    r.headers.get("set-cookie")))
    c.close()
    return out


def learn(b, name, count):
    """Teaches `count` sessions to upstream `name` (handshakes through /v/<name>/); returns
    their (sid, backend)."""
    c = Conn(b.front_port)
    pairs = []
    for i in range(0, count, 500):
        m = min(500, count - i)
        for r in c.pipeline(["/v/%s%s" % (name, handshake())] * m):
            sid = SID_RE.match(r.body)
            if r.status == 200 and sid:
                pairs.append((sid.group(1).decode(), r.headers.get("x-backend")))
    c.close()
    return pairs


def expect(b, name, paths, status, what, count=200):
    """Checks that the first `count` paths are answered 200 with status `status` through
    /v/<name>/; returns their (status, X-Status, backend, Set-Cookie)."""
    got = statuses(b, name, paths[:count])
    bad = [g for g in got if g[0] != 200 or g[1] != status]
    b.checks.check(got and not bad, "%s: %d requests `%s` (bad: %s)"
                   % (what, len(got), status, bad[:2]))
    return got


# Device ids of the handshakes of rows (n0), (n): many, as many devices would send them.
DEVICE_HANDSHAKES = 1000


def device_handshakes(b, count):
    """Handshake paths with `&device_id=K` for K < count, and each device's backend as a request
    that is not a handshake (so teaches nothing) finds it through /v/sticky/."""
    got = expect(b, "sticky", ["/socket.io/health?device_id=%d" % k for k in range(count)],
                 "device_id", "device_id of the handshakes (n)", count)
    return (["/socket.io/?%s&device_id=%d" % (HANDSHAKE_QS, k) for k in range(count)],
            [g[2] for g in got])


def balancer_rows(b, args, hits, size, add):
    """nginx's own balancers and the module's other keys, each against round robin on the same
    paths; then the module over 2..256 servers. Each key is first checked to take its path
    (status and backend through /v/<name>/)."""
    n = args.requests
    sid_paths = [polling(None, s) for s, _ in hits]
    # (not handshakes: a handshake's response would be learned, which is another row's cost)
    dev_paths = ["/socket.io/health?device_id=%d" % i for i in range(len(hits))]
    route_paths = [polling(None, "2-%030x" % random.getrandbits(120)) for _ in hits]
    route_backends = [str(b.backend_ports[1])] * len(route_paths)
    first = statuses(b, "scookie", ["/socket.io/?" + HANDSHAKE_QS])[0]
    cookie = (first[3] or "").split(";")[0]
    cookie_paths = [("/socket.io/health", "Cookie: " + cookie)]

    expect(b, "sticky", dev_paths, "device_id", "device_id hit")
    for name, issues in (("sroute", False), ("sboth", True)):
        got = expect(b, name, route_paths, "route", "%s: route hit" % name)
        routed = {str(g[2]) for g in got}
        b.checks.check(routed == {route_backends[0]}, "%s: route label 2 goes to the second "
                       "server (%s)" % (name, sorted(routed)))
        # Only with cookie= does a route-label response (no cookie in the request) set one.
        cookies = [g[3] for g in got if (g[3] or "").startswith("r=")]
        b.checks.check(len(cookies) == (len(got) if issues else 0), "%s: %d of %d route-label "
                       "responses issue the route cookie" % (name, len(cookies), len(got)))
    b.checks.check(cookie.startswith("r="), "route cookie issued (%r)" % cookie)
    expect(b, "scookie", cookie_paths, "cookie", "cookie hit")

    b.instrument(True)
    t0 = time.time()
    add(("f", size), b.measure("iphash-sid", "iphash", sid_paths, n))
    add(("g", size), b.measure("chash-sid", "chash", sid_paths, n))
    add(("h0", size), b.measure("rr-device", "rr", dev_paths, n))
    add(("h", size), b.measure("sticky-device", "sticky", dev_paths, n))
    add(("i0", size), b.measure("rr-route", "rr", route_paths, n))
    add(("i", size), b.measure("sroute-route", "sroute", route_paths, n,
                               expect_backend=route_backends))
    add(("i2", size), b.measure("sboth-route", "sboth", route_paths, n,
                                expect_backend=route_backends))
    add(("j0", size), b.measure("rr-cookie", "rr", cookie_paths, n))
    add(("j", size), b.measure("scookie-cookie", "scookie", cookie_paths, n,
                               expect_backend=[first[2]]))
    b.instrument(False)
    # Scaling with the number of servers: learned-sid and device_id hits.
    for count in args.scale:
        name = "s%d" % count
        pairs = learn(b, name, min(len(hits), 1000))
        back = statuses(b, name, [polling(None, s) for s, _ in pairs[:200]])
        bad = [(p, g) for p, g in zip(pairs, back) if g[1] != "learned" or g[2] != p[1]]
        b.checks.check(pairs and not bad, "%s: %d learned sessions come back `learned` from "
                       "their backend (bad: %s)" % (name, len(back), bad[:2]))
        expect(b, name, dev_paths, "device_id", "%s: device_id hit" % name)
        b.instrument(True)
        add(("k", count), b.measure("%s-sid" % name, name,
                                    [polling(None, s) for s, _ in pairs], n,
                                    expect_backend=[bk for _, bk in pairs]))
        add(("l", count), b.measure("%s-device" % name, name, dev_paths, n))
        b.instrument(False)
    b.timeline.append(("other balancers and scaling", time.time() - t0))


def responses(port, paths):
    """The responses to `paths` on one connection to 127.0.0.1:`port`, 200 at a time."""
    c = Conn(port)
    out = []
    for i in range(0, len(paths), 200):
        out += c.pipeline(paths[i:i + 200])
    c.close()
    return out


def tagged_sid(sid):
    """(tag, backend's sid) of `TAG.SID`, or None."""
    if len(sid) > 9 and sid[8] == "." and re.fullmatch(r"[A-Za-z0-9_-]{8}", sid[:8]):
        return sid[:8], sid[9:]
    return None


def check_tagged(b, pairs, tags, what):
    """Every (sid, backend) is `TAG.S` with the tag of its backend."""
    bad = [(sid, bk) for sid, bk in pairs
           if tagged_sid(sid) is None or tagged_sid(sid)[0] != tags.get(bk)]
    b.checks.check(pairs and not bad, "%s: %d sids carry the tag of the backend that minted "
                   "them (bad: %s)" % (what, len(pairs), bad[:2]))


def side_requests(b, location, paths, twin=False):
    """`paths` through /v/<location>/ of the "prefix" front, and the same through the twin's,
    so that both see the same requests; the "prefix" front's responses (and the twin's)."""
    paths = [p.replace("/socket.io/", "/v/%s/socket.io/" % location, 1) for p in paths]
    got = responses(b.side_ports["prefix"], paths)
    got_twin = responses(b.side_ports["twin"], paths)
    return (got, got_twin) if twin else got


def check_prefix_hits(b, pairs, what):
    """Through /v/sprefix/: each `…&sid=TAG.S` is answered with status `prefix` by the backend
    that minted S, which got `sid=S` (the tag stripped); through /v/prr/ (round robin in the
    same nginx) the backend gets `sid=S` too."""
    def stripped(sid):
        return "%s&sid=%s" % (HANDSHAKE_QS, (tagged_sid(sid) or ("", sid))[1])

    got = side_requests(b, "sprefix", [polling(None, sid) for sid, _ in pairs])
    bad = []
    for (sid, bk), r in zip(pairs, got):
        if (r.status, r.headers.get("x-status"), r.headers.get("x-backend"),
                r.headers.get("x-args")) != (200, "prefix", bk, stripped(sid)):
            bad.append((sid, r.status, r.headers.get("x-status"), r.headers.get("x-backend"),
                        bk, r.headers.get("x-args")))
    b.checks.check(got and not bad, "%s: %d tagged requests `prefix` from their backend, which "
                   "gets the sid without its tag (bad: %s)" % (what, len(got), bad[:2]))
    few = pairs[:20]
    got, got_twin = side_requests(b, "prr", [polling(None, sid) for sid, _ in few], twin=True)
    bad = [(sid, r.status, r.headers.get("x-args")) for (sid, _), r in zip(few, got)
           if r.status != 200 or r.headers.get("x-args") != stripped(sid)]
    b.checks.check(got and not bad, "%s: round robin in the sid_prefix nginx: %d tagged "
                   "requests reach a backend without the tag (bad: %s)"
                   % (what, len(got), bad[:2]))
    # The twin has no sid_prefix: nothing strips the tag there.
    bad = [(sid, r.status, r.headers.get("x-args")) for (sid, _), r in zip(few, got_twin)
           if r.status != 200 or r.headers.get("x-args") != "%s&sid=%s" % (HANDSHAKE_QS, sid)]
    b.checks.check(got_twin and not bad, "%s: round robin in the twin: %d tagged requests "
                   "reach a backend with the tag (bad: %s)" % (what, len(got_twin), bad[:2]))


def prefix_rows(b, args, size, add):
    """`sid_prefix`, in a front nginx of its own ("prefix"), against round robin in its "twin"
    (the same but for sid_prefix, the same requests): a tagged hit `…&sid=TAG.S` (p), and
    round robin (p1) and socketio_sticky without sid_prefix (pt) on the same requests; a
    handshake whose body is rewritten to carry `TAG.S` (q), against round robin's (q0, q1 and
    the main front's d0) and socketio_sticky's without sid_prefix (qt); round robin without a
    key in both (r0, r1): what is left of the drift between them."""
    n = args.requests
    tags = {str(p): server_tag("sprefix", "127.0.0.1:%d" % p) for p in b.backend_ports}
    b.checks.check(len(set(tags.values())) == len(tags), "sid_prefix: %d distinct server tags "
                   "(%s)" % (len(tags), sorted(tags.values())))
    # The tagged sids: handshakes through sid_prefix, each tagged by the backend that minted it.
    pairs = []
    unreadable = []
    for r in side_requests(b, "sprefix", [handshake()] * args.hit_sids):
        sid = SID_RE.match(r.body)
        if r.status == 200 and sid:
            pairs.append((sid.group(1).decode(), r.headers.get("x-backend")))
            # The rewritten body is still an open packet: `0` and a JSON object.
            try:
                if json.loads(r.body[1:])["sid"] != pairs[-1][0]:
                    unreadable.append(r.body[:80])
            except (ValueError, KeyError, TypeError):
                unreadable.append(r.body[:80])
    b.checks.check(not unreadable, "sid_prefix: the rewritten open packets are JSON with the "
                   "tagged sid (bad: %s)" % unreadable[:2])
    b.checks.check(len(pairs) == args.hit_sids, "sid_prefix: %d of %d handshakes answered with "
                   "a sid" % (len(pairs), args.hit_sids))
    b.checks.check({bk for _, bk in pairs} == set(tags), "sid_prefix: handshakes reach all %d "
                   "backends" % len(tags))
    check_tagged(b, pairs, tags, "sid_prefix handshakes")
    check_prefix_hits(b, pairs[:200], "sid_prefix")
    tagged = [polling(None, sid) for sid, _ in pairs]
    backends = [bk for _, bk in pairs]

    t0 = time.time()
    for front in SIDE_FRONTS:
        b.instrument(True, front)
    # Each twin's measurement right before the same one in the "prefix" front.
    for _ in range(args.rounds):
        add(("p0", size), b.measure("trr-tagged", "trr", tagged, n))
        add(("p1", size), b.measure("prr-tagged", "prr", tagged, n))
        add(("pt", size), b.measure("tsprefix-tagged", "tsprefix", tagged, n))
        add(("p", size), b.measure("sprefix-hit", "sprefix", tagged, n,
                                   expect_backend=backends))
    add(("r0", size), b.measure("trr-nokey", "trr", ["/health"], n))
    add(("r1", size), b.measure("prr-nokey", "prr", ["/health"], n))
    add(("q0", size), b.measure("trr-handshake", "trr", [handshake()], n, expect_sid=True))
    add(("q1", size), b.measure("prr-handshake", "prr", [handshake()], n, expect_sid=True))
    add(("qt", size), b.measure("tsprefix-handshake", "tsprefix", [handshake()], n,
                                expect_sid=True))
    add(("q", size), b.measure("sprefix-handshake", "sprefix", [handshake()], n,
                               expect_sid=True))
    minted = b.minted
    for front in SIDE_FRONTS:
        b.instrument(False, front)
    b.timeline.append(("sid_prefix", time.time() - t0))
    # The measured rewritten handshakes: tagged by their backend; a sample comes back `prefix`.
    check_tagged(b, minted, tags, "sid_prefix, the measured handshakes")
    check_prefix_hits(b, random.sample(minted, min(200, len(minted))),
                      "sid_prefix, sids of the measured handshakes")


# The balancer's own functions, as nginx's keepalive module calls them: init, get, free.
BALANCER_FNS = {
    "rr": ("ngx_http_upstream_init_round_robin_peer", "ngx_http_upstream_get_round_robin_peer"),
    "iphash": ("ngx_http_upstream_init_ip_hash_peer", "ngx_http_upstream_get_ip_hash_peer"),
    "chash": ("ngx_http_upstream_init_chash_peer", "ngx_http_upstream_get_chash_peer"),
    "sticky": ("balancer::init_peer", "balancer::get_peer"),
}


# The module's Rust crate (Cargo.toml's [lib] name), the prefix of its functions' names.
MODULE_CRATE = "ngx_http_upstream_socketio_sticky_module"
# sid_prefix's PREACCESS handler (the crate's prefix removed).
HANDLER_FN = "prefix_request::handler"
# One function of callgrind_annotate's list: `Ir (pct)  file:function [object]`. A function is
# listed once per source file of its code (`fl=`, and `fi=`/`fe=` for code inlined from another
# file: nginx's headers, Rust built with line tables), and only the listing of its own file
# (`fl=`) names the object.
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(\S*?):(.*?)(?: \[([^\[\]]*)\])?$")


def annotated(path, inclusive):
    """(Ir, function, object) of every listing of callgrind_annotate --inclusive=yes|no; a
    listing without its object takes the one of the same function's listing that has it."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=" + inclusive, "--auto=no",
                        "--threshold=100", path],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300,
                       check=False)
    rows = []
    for line in r.stdout.decode(errors="replace").splitlines():
        m = ANNOTATE_LINE.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(3), m.group(4)))
    objects = {fn: obj for _ir, fn, obj in rows if obj}
    return [(ir, fn, obj or objects.get(fn, "")) for ir, fn, obj in rows]


def balancer_ir(prof_entry, kind):
    """Inclusive Ir per request of the balancer's init + get + free (round robin's free)."""
    fns, _own = prof_entry
    names = BALANCER_FNS[kind] + ("ngx_http_upstream_free_round_robin_peer",)
    vals = [fns.get(f, (None, None))[0] for f in names]
    return None if None in vals[:2] else sum(v or 0 for v in vals)


def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def spread(v):
    v = [x for x in v if x is not None]
    if len(v) < 2:
        return "—"
    return "%.2f%%" % (100 * (max(v) - min(v)) / mean(v))


# Targets: a learned-sid hit costs at most 2% more than round robin in all; the module's
# balancer Ir grows at most 1.2x from the smallest to the largest table or server count.
TOTAL_TARGET = 1.02
SCALE_TARGET = 1.2
# Total Ir against round robin on the same requests: a hit of any key as a learned-sid hit; a
# handshake also learns its sid (the response filter reads the body); a request without a key
# only asks for one.
KEY_TARGET = TOTAL_TARGET
HANDSHAKE_TARGET = 1.05
NOKEY_TARGET = 1.01
# Sessions that a 1 MiB zone holds, at least.
DENSITY_TARGET = 16000


def report(args, b, rows, sizes, dens, prof, table_labels, elapsed):
    """The main table and the targets; returns {target name: (ratio, bound)}."""
    out = []
    n = args.requests
    m = {k: mean(v) for k, v in rows.items()}
    small, big = sizes[0], sizes[-1]
    out.append("")
    out.append("## socketio_sticky: nginx instructions per proxied request (callgrind Ir)")
    out.append("")
    out.append("%d requests per measurement on one keep-alive client connection, %d backends, "
               "`keepalive 16`; Ir is the front nginx's total for exactly those requests, "
               "divided by their number; mean of %d rounds where the spread is given. "
               "Zone `bench` is %s (timeout 1d)."
               % (n, args.backends, args.rounds, args.zone_size))
    out.append("")
    out.append("| row | request | learned sessions in the zone | Ir / request | spread | vs round robin |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: |")

    def line(row, req, size, key, base):
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            row, req, "{:,}".format(size) if size is not None else "—", fmt_ir(m.get(key)),
            spread(rows.get(key, [])), fmt_ratio(m.get(key), m.get(base)) if base else "1"))

    for size in sizes:
        line("(a) round robin", "`/socket.io/?EIO=4&transport=polling&sid=X`", size,
             ("a", size), None)
        line("(b) socketio_sticky, learned sid", "`…&sid=S` (S learned)", size,
             ("b", size), ("a", size))
        line("(e) socketio_sticky, unknown sid", "`…&sid=U` (not learned)", size,
             ("e", size), ("a", size))
    line("(m0) round robin, a browser's request", "`…&t=T&sid=X` and Chrome's 12 header "
         "lines", small, ("m0", small), None)
    line("(m) socketio_sticky, learned sid, a browser's request", "same, S learned", small,
         ("m", small), ("m0", small))
    line("(c0) round robin, no key", "`/health`", small, ("c0", small), None)
    line("(c) socketio_sticky, no key", "`/health`", small, ("c", small), ("c0", small))
    line("(d0) round robin, handshake", "`/socket.io/?EIO=4&transport=polling`",
         small, ("d0", small), None)
    for size in sizes:
        line("(d) socketio_sticky, handshake (learns)", "`/socket.io/?EIO=4&transport=polling`",
             size, ("d", size), ("d0", small))
    line("(n0) round robin, handshake with a device id",
         "`…?EIO=4&transport=polling&device_id=K` (%s devices)"
         % "{:,}".format(DEVICE_HANDSHAKES), small, ("n0", small), None)
    line("(n) socketio_sticky, handshake with a device id (learns)", "same", small,
         ("n", small), ("n0", small))
    # sid_prefix: its own front nginx and the twin (see PREFIX_FRONT_CONF).
    line("(p0) round robin, a tagged sid (twin nginx, no sid_prefix)",
         "`…&sid=T.S` (T: the tag of S's server)", small, ("p0", small), None)
    line("(p1) round robin, a tagged sid, in the nginx with sid_prefix", "same (T stripped)",
         small, ("p1", small), ("p0", small))
    line("(pt) socketio_sticky without sid_prefix (twin), a tagged sid",
         "same (an unknown sid)", small, ("pt", small), ("p0", small))
    line("(p) socketio_sticky sid_prefix, tagged hit", "same (T stripped, routed by T)", small,
         ("p", small), ("p0", small))
    line("(r0) round robin, no key (twin)", "`/health`", small, ("r0", small), None)
    line("(r1) round robin, no key, in the nginx with sid_prefix", "`/health`", small,
         ("r1", small), ("r0", small))
    line("(q0) round robin, handshake (twin)", "`/socket.io/?EIO=4&transport=polling`", small,
         ("q0", small), None)
    line("(q1) round robin, handshake, in the nginx with sid_prefix", "same", small,
         ("q1", small), ("q0", small))
    line("(qt) socketio_sticky without sid_prefix (twin), handshake (learns)", "same", small,
         ("qt", small), ("q0", small))
    line("(q) socketio_sticky sid_prefix, handshake (learns, body rewritten to T.S)", "same",
         small, ("q", small), ("q0", small))
    out.append("")
    pr = dict(prof or [])
    prof = [(lbl, r) for lbl, r in prof or [] if lbl in table_labels]

    def bal(label, kind):
        return balancer_ir(pr[label], kind) if label in pr else None

    targets = {}
    out.append("| ratio | measured | target | |")
    out.append("| --- | ---: | ---: | --- |")

    def target(name, what, num, den, bound, note=""):
        r = fmt_ratio(num, den)
        targets[name] = (r, bound)
        out.append("| %s | %s%s | ≤ %s | %s |" % (
            what, r, note, bound, "met" if r != "—" and float(r) <= bound else "MISSED"))

    def more(num, den):
        return " ({:+,.0f} Ir)".format(num - den) if num is not None and den is not None else ""

    def untargeted(what, num, den):
        out.append("| %s | %s%s | | |" % (what, fmt_ratio(num, den), more(num, den)))

    for size in sizes:
        a, h = m.get(("a", size)), m.get(("b", size))
        target("hit/rr@%d" % size, "learned-sid hit / round robin, %s sessions"
               % "{:,}".format(size), h, a, TOTAL_TARGET, more(h, a))
    a, h = m.get(("m0", small)), m.get(("m", small))
    untargeted("learned-sid hit / round robin, a browser's request, %s sessions"
               % "{:,}".format(small), h, a)
    # Each against round robin on the very same requests (measured at the first size); (i2)
    # adds the cost of issuing the cookie, another feature's: no target.
    for name, what, row, base, bound in (
            ("device/rr", "device_id hit", "h", "h0", KEY_TARGET),
            ("route/rr", "route label hit", "i", "i0", KEY_TARGET),
            (None, "route label hit, the response issues the route cookie", "i2", "i0", None),
            ("cookie/rr", "route cookie hit", "j", "j0", KEY_TARGET),
            ("nokey/rr", "no key", "c", "c0", NOKEY_TARGET)):
        num, den = m.get((row, small)), m.get((base, small))
        if bound is None:
            untargeted("%s / round robin" % what, num, den)
        else:
            target(name, "%s / round robin" % what, num, den, bound, more(num, den))
    d0 = m.get(("d0", small))
    for size in sizes:
        num = m.get(("d", size))
        target("handshake/rr@%d" % size, "handshake that learns / round robin, %s sessions"
               % "{:,}".format(size), num, d0, HANDSHAKE_TARGET, more(num, d0))
    num, den = m.get(("n", small)), m.get(("n0", small))
    target("device-handshake/rr", "handshake with a device id that learns / round robin", num,
           den, HANDSHAKE_TARGET, more(num, den))
    # sid_prefix: against round robin in its twin (the same nginx and requests, no sid_prefix).
    # Round robin in the nginx with sid_prefix pays its PREACCESS handler too (p1, q1); (r1)
    # against (r0) is what is left of the drift between the two processes.
    num, den = m.get(("p", small)), m.get(("p0", small))
    target("prefix/rr", "sid_prefix tagged hit / round robin (twin)", num, den, KEY_TARGET,
           more(num, den))
    for what, row, base in (
            ("sid_prefix tagged hit / round robin in the nginx with sid_prefix", "p", "p1"),
            ("round robin, tagged sid: nginx with sid_prefix / twin", "p1", "p0"),
            ("round robin, no key: nginx with sid_prefix / twin (drift)", "r1", "r0")):
        num, den = m.get((row, small)), m.get((base, small))
        untargeted(what, num, den)
    # The handshake: against round robin's handshake in the twin (q0) as well; against the
    # main front's (d0), the row the handshake that learns is compared with, too.
    num, den = m.get(("q", small)), m.get(("q0", small))
    target("prefix-handshake/rr", "sid_prefix handshake, rewritten (learns) / round robin "
           "(twin)", num, den, HANDSHAKE_TARGET, more(num, den))
    num, den = m.get(("q", small)), d0
    untargeted("sid_prefix handshake, rewritten / round robin (d0, the main nginx)", num, den)
    for what, row, base in (
            ("sid_prefix handshake, rewritten / round robin in the nginx with sid_prefix", "q",
             "q1"),
            ("sid_prefix handshake, rewritten / without sid_prefix (twin), learning alike", "q",
             "qt")):
        num, den = m.get((row, small)), m.get((base, small))
        untargeted(what, num, den)
    target("balancer %d/%d sessions" % (big, small),
           "balancer Ir of a learned-sid hit, %s / %s sessions"
           % ("{:,}".format(big), "{:,}".format(small)),
           bal("sticky-hit-%d" % big, "sticky"), bal("sticky-hit-%d" % small, "sticky"),
           SCALE_TARGET)
    target("total %d/%d sessions" % (big, small), "Ir of a learned-sid hit, %s / %s sessions"
           % ("{:,}".format(big), "{:,}".format(small)), m.get(("b", big)),
           m.get(("b", small)), SCALE_TARGET)
    out.append("")
    out.append("Balancer Ir (init + get + free, inclusive) of a learned-sid hit by table size: "
               + ", ".join("%s sessions %s (round robin's %s)" % (
                   "{:,}".format(size), fmt_ir(bal("sticky-hit-%d" % size, "sticky")),
                   fmt_ir(bal("rr-sid-%d" % size, "rr"))) for size in sizes) + ".")
    out.append("")
    out.append("nginx's own instructions per request drift by up to a few hundred Ir between "
               "rounds and between the two phases (its timer tree: the keep-alive connections' "
               "timers are inserted in a different order when a different backend is picked; "
               "glibc malloc's state after the fill), which is the spread above; the module's "
               "own count is steady.")
    out.append("")
    out.append("Ir counts instructions only: the cache misses of a lookup in a large table "
               "(random bucket and entry in a zone of %s) cost time but no Ir." % args.zone_size)
    out.append("")
    if prof:
        out.append("Balancer functions, Ir per request, inclusive (self), from "
                   "`callgrind_annotate --inclusive=yes|no` of each row's dump (`filter::*` "
                   "inclusive covers every output filter after it; module functions inlined "
                   "into others do not appear):")
        out.append("")
        out.append("| function | " + " | ".join(lbl for lbl, _ in prof) + " |")
        out.append("| --- |" + " ---: |" * len(prof))
        names = {}
        for _, (fns, _own) in prof:
            for name, (incl, _s) in fns.items():
                names[name] = max(names.get(name, 0), incl)
        for name in sorted(names, key=lambda k: -names[k]):
            if names[name] < 1:
                continue
            cells = []
            for _, (fns, _own) in prof:
                v = fns.get(name)
                cells.append("—" if v is None else "%s (%s)" % (fmt_ir(v[0]), fmt_ir(v[1])))
            out.append("| `%s` | %s |" % (name, " | ".join(cells)))
        out.append("| all of the module's own code (self) | %s |"
                   % " | ".join(fmt_ir(own) for _, (_f, own) in prof))
        out.append("")
    if dens:
        count, exact = dens
        out.append("Density: a 1 MiB zone (`zone=dens:1m`) holds **%s** sessions of %s learned "
                   "in order (%.1f bytes of zone per session); the survivors are exactly the "
                   "newest: %s." % ("{:,}".format(count), "{:,}".format(args.density),
                                    1048576 / max(count, 1), "yes" if exact else "NO"))
        out.append("")
        out.append("| ratio | measured | target | |")
        out.append("| --- | ---: | ---: | --- |")
        out.append("| sessions in a 1 MiB zone | %s | ≥ %s | %s |" % (
            "{:,}".format(count), "{:,}".format(DENSITY_TARGET),
            "met" if count >= DENSITY_TARGET else "MISSED"))
        out.append("")
    out.append("Timings: " + ", ".join("%s %.0fs" % (k, v) for k, v in b.timeline)
               + "; total %.0fs." % elapsed)
    print("\n".join(out), flush=True)
    return targets


def report_balancers(args, rows, prof, size):
    """Against nginx's balancers and per key of the module, then scaling with servers."""
    m = {k: mean(v) for k, v in rows.items()}
    pr = dict(prof or [])

    def bal(label, kind):
        return balancer_ir(pr[label], kind) if label in pr else None

    out = ["", "## Against nginx's balancers, per key (%s learned sessions)" % "{:,}".format(size),
           "",
           "Each row against round robin on exactly the same requests. Balancer: inclusive Ir "
           "of its init, get and free (round robin's free) per request.", "",
           "| balancer, request | Ir / request | vs round robin | balancer Ir | vs round robin's |",
           "| --- | ---: | ---: | ---: | ---: |"]
    table = [
        ("round robin, `…&sid=S`", ("a", size), ("a", size), "rr-sid-%d" % size, "rr",
         "rr-sid-%d" % size),
        ("`ip_hash`, `…&sid=S`", ("f", size), ("a", size), "iphash-sid", "iphash",
         "rr-sid-%d" % size),
        ("`hash $arg_sid consistent`, `…&sid=S`", ("g", size), ("a", size), "chash-sid", "chash",
         "rr-sid-%d" % size),
        ("socketio_sticky, learned sid", ("b", size), ("a", size), "sticky-hit-%d" % size,
         "sticky", "rr-sid-%d" % size),
        ("socketio_sticky, device_id", ("h", size), ("h0", size), "sticky-device", "sticky",
         "rr-device"),
        ("socketio_sticky, route label", ("i", size), ("i0", size), "sroute-route", "sticky",
         "rr-route"),
        ("socketio_sticky, route label, the response issues the route cookie", ("i2", size),
         ("i0", size), "sboth-route", "sticky", "rr-route"),
        ("socketio_sticky, route cookie", ("j", size), ("j0", size), "scookie-cookie", "sticky",
         "rr-cookie"),
        ("socketio_sticky, no key", ("c", size), ("c0", size), "sticky-nokey", "sticky",
         "rr-nokey"),
        ("round robin, handshake with a device id", ("n0", size), ("n0", size),
         "rr-device-handshake", "rr", "rr-device-handshake"),
        ("socketio_sticky, handshake with a device id (learns)", ("n", size), ("n0", size),
         "sticky-device-handshake", "sticky", "rr-device-handshake"),
        ("round robin, handshake", ("d0", size), ("d0", size), "rr-handshake", "rr",
         "rr-handshake"),
        ("round robin, `…&sid=T.S` (twin)", ("p0", size), ("p0", size), "trr-tagged", "rr",
         "trr-tagged"),
        ("round robin, `…&sid=T.S`, in the nginx with sid_prefix", ("p1", size), ("p0", size),
         "prr-tagged", "rr", "trr-tagged"),
        ("socketio_sticky without sid_prefix (twin), `…&sid=T.S`", ("pt", size), ("p0", size),
         "tsprefix-tagged", "sticky", "trr-tagged"),
        ("socketio_sticky sid_prefix, `…&sid=T.S`", ("p", size), ("p0", size), "sprefix-hit",
         "sticky", "trr-tagged"),
        ("round robin, handshake (twin)", ("q0", size), ("q0", size), "trr-handshake", "rr",
         "trr-handshake"),
        ("round robin, handshake, in the nginx with sid_prefix", ("q1", size), ("q0", size),
         "prr-handshake", "rr", "trr-handshake"),
        ("socketio_sticky without sid_prefix (twin), handshake (learns)", ("qt", size),
         ("q0", size), "tsprefix-handshake", "sticky", "trr-handshake"),
        ("socketio_sticky sid_prefix, handshake (rewritten, learns)", ("q", size),
         ("q0", size), "sprefix-handshake", "sticky", "trr-handshake"),
    ]
    for what, key, base, label, kind, base_label in table:
        own, base_own = bal(label, kind), bal(base_label, "rr")
        out.append("| %s | %s | %s | %s | %s |" % (
            what, fmt_ir(m.get(key)), fmt_ratio(m.get(key), m.get(base)), fmt_ir(own),
            fmt_ratio(own, base_own)))
    # sid_prefix: the module's parts per request (its PREACCESS handler runs outside the
    # balancer, for every request of the nginx with sid_prefix).
    prefix_labels = ("trr-tagged", "prr-tagged", "tsprefix-tagged", "sprefix-hit", "trr-nokey",
                     "prr-nokey", "trr-handshake", "prr-handshake", "tsprefix-handshake",
                     "sprefix-handshake")
    out += ["", "sid_prefix, Ir per request of the module's parts (inclusive; `t*`: the twin "
            "nginx, without sid_prefix; `prr-*`: round robin in the nginx with sid_prefix; "
            "`sprefix-*`: socketio_sticky sid_prefix):", "",
            "| row | balancer (init + get + free) | PREACCESS handler (strips the tag) | "
            "module's own code (self) |", "| --- | ---: | ---: | ---: |"]
    handler = {}
    for label in prefix_labels:
        fns, own = pr.get(label, ({}, None))
        handler[label] = fns.get(HANDLER_FN, (None, None))[0] if label in pr else None
        out.append("| `%s` | %s | %s | %s |" % (
            label, fmt_ir(bal(label, "sticky" if "sprefix" in label else "rr")),
            fmt_ir(handler[label]), fmt_ir(own)))
    out += ["", "Scaling with the number of servers (socketio_sticky, 1,000 learned sessions "
            "or device ids; balancer Ir as above):", "",
            "| servers | learned sid: Ir / request | balancer Ir | device_id: Ir / request | "
            "balancer Ir |", "| ---: | ---: | ---: | ---: | ---: |"]
    for count in args.scale:
        out.append("| %d | %s | %s | %s | %s |" % (
            count, fmt_ir(m.get(("k", count))), fmt_ir(bal("s%d-sid" % count, "sticky")),
            fmt_ir(m.get(("l", count))), fmt_ir(bal("s%d-device" % count, "sticky"))))
    lo, hi = args.scale[0], args.scale[-1]
    targets = {}
    out += ["", "| ratio | measured | target | |", "| --- | ---: | ---: | --- |"]
    for what, suffix in (("learned sid", "sid"), ("device_id", "device")):
        r = fmt_ratio(bal("s%d-%s" % (hi, suffix), "sticky"), bal("s%d-%s" % (lo, suffix), "sticky"))
        targets["balancer %s %d/%d servers" % (suffix, hi, lo)] = (r, SCALE_TARGET)
        out.append("| balancer Ir, %s, %d / %d servers | %s | ≤ %s | %s |" % (
            what, hi, lo, r, SCALE_TARGET,
            "met" if r != "—" and float(r) <= SCALE_TARGET else "MISSED"))
    # Below 1 means cheaper than `hash $arg_sid consistent`.
    chash = bal("chash-sid", "chash")
    for what, label in (("learned sid", "sticky-hit-%d" % size),
                        ("device_id", "sticky-device"), ("route label", "sroute-route"),
                        ("route cookie", "scookie-cookie")):
        r = fmt_ratio(bal(label, "sticky"), chash)
        targets["balancer %s/chash" % label] = (r, 1.0)
        out.append("| balancer Ir, socketio_sticky %s / `hash $arg_sid consistent` | %s | < 1 | "
                   "%s |" % (what, r, "met" if r != "—" and float(r) < 1 else "MISSED"))
    print("\n".join(out), flush=True)
    return {"rows": {"%s@%s" % k: v for k, v in m.items()},
            "balancer": {**{label: bal(label, kind) for _w, _k, _b, label, kind, _bl in table},
                         **{base: bal(base, "rr") for *_x, base in table},
                         "rr-browser": bal("rr-browser", "rr"),
                         "sticky-browser": bal("sticky-browser", "sticky")},
            "prefix_handler": handler,
            "scale_balancer": {str(c): {"sid": bal("s%d-sid" % c, "sticky"),
                                        "device": bal("s%d-device" % c, "sticky")}
                               for c in args.scale}}, targets


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", dest="mode", action="store_const", const="quick",
                    default="full", help="no valgrind, small counts, checks only")
    ap.add_argument("--density-only", dest="mode", action="store_const", const="density",
                    help="only the 1 MiB zone density (no valgrind)")
    ap.add_argument("--requests", type=int, help="requests per measurement (2000)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of rows (a), (b)")
    ap.add_argument("--sessions", default=None,
                    help="learned-session table sizes measured in turn (1000,100000,1000000; "
                         "quick: 1000,20000)")
    ap.add_argument("--zone-size", default="64m")
    ap.add_argument("--density", type=int, default=40000, help="sessions learned (40000)")
    ap.add_argument("--backends", type=int, default=3)
    ap.add_argument("--hit-sids", type=int, default=None,
                    help="learned sids used round robin by row (b) (all of the small table)")
    ap.add_argument("--fill-conns", type=int, default=2)
    ap.add_argument("--fill-batch", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--no-density", action="store_true")
    ap.add_argument("--scale", default=None,
                    help="server counts of the scaling rows (2,16,256; quick: 2,16)")
    ap.add_argument("--json", help="write the measured numbers to this file")
    ap.add_argument("--enforce-targets", action="store_true",
                    help="also fail when a ratio misses its target")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--time-limit", type=int, default=None, help="seconds before giving up")
    args = ap.parse_args()
    quick = args.mode == "quick"
    args.requests = args.requests or (300 if quick else 2000)
    args.sessions = sorted(int(x) for x in (
        args.sessions or ("1000,20000" if quick else "1000,100000,1000000")).split(","))
    args.hit_sids = args.hit_sids or (args.sessions[0] if not quick else 200)
    args.warmup = min(args.warmup, args.requests)
    args.scale = sorted(int(x) for x in (args.scale or ("2,16" if quick else "2,16,256"))
                        .split(","))
    if quick:
        args.rounds = 1
    limit = args.time_limit or {"full": 1200, "quick": 120, "density": 300}[args.mode]

    if not os.path.exists(MODULE_SO):
        sys.exit("error: no module at %s; run: cargo build --release --features vendored"
                 % MODULE_SO)
    if args.mode == "full":
        need_valgrind()

    checks = Checks()
    b = Bench(args, checks)
    stop_on_signals(b.cleanup, limit, "bench")

    t_start = time.time()
    rc = 0
    try:
        b.start()
        log("front nginx%s on 127.0.0.1:%d, backends on %s, in %s" % (
            " under callgrind" if b.valgrind else "", b.front_port,
            ",".join(map(str, b.backend_ports)), b.dir))
        dens = None
        rows = {}
        prof = []
        sizes = []
        if args.mode != "density":
            rows, sizes = run_measured(b, args)
        if args.mode == "density" or not args.no_density:
            dens = b.density(args.density)
        b.check_error_log()
        if b.valgrind:
            for label in ["rr-sid-%d" % s for s in sizes] + \
                    ["sticky-hit-%d" % s for s in sizes] + \
                    ["sticky-nokey", "rr-nokey", "sticky-handshake-%d" % sizes[0],
                     "rr-browser", "sticky-browser",
                     "iphash-sid", "chash-sid", "rr-device", "sticky-device", "rr-route",
                     "sroute-route", "sboth-route", "rr-cookie", "scookie-cookie",
                     "rr-device-handshake", "sticky-device-handshake", "rr-handshake",
                     "trr-tagged", "prr-tagged", "tsprefix-tagged", "sprefix-hit",
                     "trr-nokey", "prr-nokey", "trr-handshake", "prr-handshake",
                     "tsprefix-handshake", "sprefix-handshake"] + \
                    ["s%d-%s" % (c, k) for c in args.scale for k in ("sid", "device")]:
                res = b.annotate(label, args.requests)
                if res:
                    prof.append((label, res))
        b.stop()
        if args.mode == "density":
            count, exact = dens
            print("density: a 1 MiB zone holds %d sessions of %d (%.1f bytes each); the "
                  "survivors are exactly the newest: %s" % (count, args.density,
                                                            1048576 / max(count, 1),
                                                            "yes" if exact else "NO"))
        elif b.valgrind:
            table_labels = {"rr-sid-%d" % sizes[0], "sticky-hit-%d" % sizes[0],
                            "sticky-hit-%d" % sizes[-1], "sticky-nokey",
                            "sticky-handshake-%d" % sizes[0]}
            targets = report(args, b, rows, sizes, dens, prof, table_labels,
                             time.time() - t_start)
            extra, more = report_balancers(args, rows, prof, sizes[0])
            targets.update(more)
            if dens:
                targets["density"] = (str(dens[0]), DENSITY_TARGET)
            if args.json:
                pr = dict(prof)
                data = {
                    "benchmark": "socketio_sticky instructions per request (bench/callgrind)",
                    "date": time.strftime("%Y-%m-%d"),
                    "nginx": nginx_version(vendored_nginx()),
                    "machine": machine(),
                    "requests": args.requests,
                    "rounds": args.rounds,
                    "sessions": sizes,
                    "scale": args.scale,
                    "density": dens[0] if dens else None,
                    "density_exact": dens[1] if dens else None,
                    "density_learned": args.density,
                    "balancer_by_sessions": {
                        str(s): {"rr": balancer_ir(pr["rr-sid-%d" % s], "rr")
                                 if "rr-sid-%d" % s in pr else None,
                                 "sticky": balancer_ir(pr["sticky-hit-%d" % s], "sticky")
                                 if "sticky-hit-%d" % s in pr else None}
                        for s in sizes},
                    "module_self": {lbl: own for lbl, (_f, own) in prof},
                    "targets": {k: {"measured": r, "bound": bound}
                                for k, (r, bound) in targets.items()},
                    "elapsed_s": round(time.time() - t_start),
                    **extra,
                }
                with open(args.json, "w") as f:
                    json.dump(data, f, indent=1)
            if args.enforce_targets:
                for name, (r, bound) in targets.items():
                    ok = r != "—" and (float(r) >= bound if name == "density"
                                       else float(r) < bound if name.endswith("/chash")
                                       else float(r) <= bound)
                    checks.check(ok, "target %s: %s (bound %s)" % (name, r, bound))
        else:
            log("quick: %d sessions learned, %.0fs" % (b.learned, time.time() - t_start))
    except (Exception, SystemExit) as e:  # noqa: BLE001 - every failure ends in the summary
        checks.check(False, "bench aborted: %s: %s" % (type(e).__name__, e))
        for name in ["front-error.log", "backend-error.log", "valgrind.log", "front.out"] + \
                ["%s-%s" % (f, n) for f in SIDE_FRONTS
                 for n in ("front-error.log", "valgrind.log", "front.out")]:
            tail = log_tail(os.path.join(b.dir, name))
            if tail:
                log("%s (last lines):\n%s" % (name, tail))
        rc = 1
    finally:
        signal.alarm(0)
        b.cleanup()
    print("bench: %d passed, %d failed" % (checks.passed, checks.failed), flush=True)
    return 1 if rc or checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
