#!/usr/bin/env python3
"""One markdown report and one PNG chart from the benchmarks' JSON outputs.

  bench/report.py --callgrind CG.json [--throughput TP.json] [--e2e E2E.json]
                  [--nginx-sticky NS.json] [--out-md REPORT.md] [--out-png CHART.png]
                  [--title "2025-11-21, 2-core VM"]
  bench/report.py --self-test

Inputs:
  --callgrind      bench/callgrind --json FILE (bench/bench.py): instructions per request
  --throughput     bench/throughput --json FILE: wrk requests per second (a sanity check)
  --e2e            bench/e2e-scale --json FILE: real Socket.IO sessions, clients per backend
  --nginx-sticky   nginx's own `sticky learn` measured the same way (rows, balancer, density)

The markdown (stdout without --out-md) has five sections: instructions per request, memory
density, scaling, throughput and end to end, each target marked met or missed; the chart has
four panels, one per kind of measurement ("not measured" when its input is missing). Keys
missing from an input are left out of the report. File names in the report are base names.

Needs matplotlib for the chart (Debian: apt-get install python3-matplotlib, then run with
/usr/bin/python3); exits 3 when it cannot be imported.
"""

import argparse
import json
import math
import os
import re
import sys
import tempfile

TOTAL_TARGET = 1.02      # learned-sid hit, total Ir, vs round robin
KEY_TARGET = 1.02        # device_id, route label, route cookie hit, the same
HANDSHAKE_TARGET = 1.05  # a handshake that learns (also with a device id), the same
NOKEY_TARGET = 1.01      # a request without a key, the same
SCALE_TARGET = 1.2       # balancer Ir, largest / smallest table or server count
DENSITY_TARGET = 16000   # sessions in a 1 MiB zone
MIB = 1 << 20
NOT_MEASURED = "not measured"

# Row id of bench.py's JSON -> (row, request, row it is compared with, balancer label, label of
# round robin's balancer on the same requests). "rr-sid"/"sticky-hit" take the table size.
ROWS = {
    "a": ("(a) round robin", "`…&sid=S`", None, "rr-sid", None),
    "b": ("(b) socketio_sticky, learned sid", "`…&sid=S`", "a", "sticky-hit", "rr-sid"),
    "e": ("(e) socketio_sticky, unknown sid", "`…&sid=U`", "a", None, None),
    "c0": ("(c0) round robin, no key", "`/health`", None, "rr-nokey", None),
    "c": ("(c) socketio_sticky, no key", "`/health`", "c0", "sticky-nokey", "rr-nokey"),
    "d0": ("(d0) round robin, handshake", "`…?EIO=4&transport=polling`", None, None, None),
    "d": ("(d) socketio_sticky, handshake (learns)", "`…?EIO=4&transport=polling`", "d0",
          None, None),
    "n0": ("(n0) round robin, handshake with a device id", "`…?EIO=4&transport=polling"
           "&device_id=K`", None, "rr-device-handshake", None),
    "n": ("(n) socketio_sticky, handshake with a device id (learns)", "`…?EIO=4&transport="
          "polling&device_id=K`", "n0", "sticky-device-handshake", "rr-device-handshake"),
    "f": ("(f) `ip_hash`", "`…&sid=S`", "a", "iphash-sid", "rr-sid"),
    "g": ("(g) `hash $arg_sid consistent`", "`…&sid=S`", "a", "chash-sid", "rr-sid"),
    "h0": ("(h0) round robin, device_id", "`…?device_id=N`", None, "rr-device", None),
    "h": ("(h) socketio_sticky, device_id", "`…?device_id=N`", "h0", "sticky-device",
          "rr-device"),
    "i0": ("(i0) round robin, route label", "`…&sid=2-…`", None, "rr-route", None),
    "i": ("(i) socketio_sticky, route label", "`…&sid=2-…`", "i0", "sroute-route", "rr-route"),
    "i2": ("(i2) socketio_sticky, route label, the response issues the route cookie",
           "`…&sid=2-…`", "i0", "sboth-route", "rr-route"),
    "j0": ("(j0) round robin, route cookie", "cookie `r=…`", None, "rr-cookie", None),
    "j": ("(j) socketio_sticky, route cookie", "cookie `r=…`", "j0", "scookie-cookie",
          "rr-cookie"),
    "m0": ("(m0) round robin, a browser's request", "`…&t=T&sid=S`, browser headers", None,
           None, None),
    "m": ("(m) socketio_sticky, learned sid, a browser's request",
          "`…&t=T&sid=S`, browser headers", "m0", None, None),
    # sid_prefix, in an nginx of its own, against round robin in its twin (the same nginx and
    # requests, no sid_prefix); "prr-*": round robin in the nginx with sid_prefix.
    "p0": ("(p0) round robin, a tagged sid (twin, no sid_prefix)", "`…&sid=T.S`", None,
           "trr-tagged", None),
    "p1": ("(p1) round robin, a tagged sid, in the nginx with sid_prefix", "`…&sid=T.S`", "p0",
           "prr-tagged", "trr-tagged"),
    "pt": ("(pt) socketio_sticky without sid_prefix (twin), a tagged sid", "`…&sid=T.S`", "p0",
           "tsprefix-tagged", "trr-tagged"),
    "p": ("(p) socketio_sticky sid_prefix, tagged hit", "`…&sid=T.S`", "p0", "sprefix-hit",
          "trr-tagged"),
    "r0": ("(r0) round robin, no key (twin)", "`/health`", None, None, None),
    "r1": ("(r1) round robin, no key, in the nginx with sid_prefix", "`/health`", "r0", None,
           None),
    "q0": ("(q0) round robin, handshake (twin)", "`…?EIO=4&transport=polling`", None,
           "trr-handshake", None),
    "q1": ("(q1) round robin, handshake, in the nginx with sid_prefix",
           "`…?EIO=4&transport=polling`", "q0", "prr-handshake", "trr-handshake"),
    "qt": ("(qt) socketio_sticky without sid_prefix (twin), handshake (learns)",
           "`…?EIO=4&transport=polling`", "q0", "tsprefix-handshake", "trr-handshake"),
    "q": ("(q) socketio_sticky sid_prefix, handshake (learns, rewritten to T.S)",
          "`…?EIO=4&transport=polling`", "q0", "sprefix-handshake", "trr-handshake"),
}
# Panel (a): short name, row id, balancer label.
CHART_BALANCERS = [
    ("round robin", "a", "rr-sid"), ("ip_hash", "f", "iphash-sid"),
    ("hash\nconsistent", "g", "chash-sid"), ("sticky\nlearned\nsid", "b", "sticky-hit"),
    ("sticky\ndevice_id", "h", "sticky-device"), ("sticky\nroute", "i", "sroute-route"),
    ("sticky\nroute,\nsets cookie", "i2", "sboth-route"),
    ("sticky\ncookie", "j", "scookie-cookie"), ("sticky\nno key", "c", "sticky-nokey"),
    ("sticky\ndevice id\nhandshake", "n", "sticky-device-handshake"),
]
# Total Ir against round robin on the same requests, measured at the smallest table size:
# (what, row id, bound); the learned-sid hit and the handshake are evaluated at every size.
KEY_TARGETS = [
    ("device_id hit", "h", KEY_TARGET), ("route label hit", "i", KEY_TARGET),
    ("route cookie hit", "j", KEY_TARGET), ("no key", "c", NOKEY_TARGET),
    ("handshake with a device id that learns", "n", HANDSHAKE_TARGET),
    ("sid_prefix tagged hit", "p", KEY_TARGET),
    ("sid_prefix handshake, rewritten (learns)", "q", HANDSHAKE_TARGET),
]


# --------------------------------------------------------------------------------------------
# reading the inputs


def num(x):
    """x as a float when it is a finite number, else None."""
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def dig(d, *keys):
    """d[k1][k2]... or None when any level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def as_int(x):
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def load(path):
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def zone_bytes(size):
    """nginx's size syntax ("1m", "512k", "1048576") in bytes, or None."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", str(size or ""))
    if not m:
        return None
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * unit


class Callgrind:
    """bench.py's JSON: rows "<id>@<size>", balancer labels, sessions, scaling, density."""

    def __init__(self, data):
        data = data if isinstance(data, dict) else {}
        self.meta = {k: data[k] for k in ("date", "machine", "nginx", "requests", "rounds")
                     if data.get(k)}
        self.rows = {}
        for key, v in (dig(data, "rows") or {}).items():
            rid, _, size = str(key).partition("@")
            if num(v) is not None and as_int(size) is not None:
                self.rows[(rid, as_int(size))] = num(v)
        balancer = dig(data, "balancer") or {}
        self.balancer = {k: num(v) for k, v in balancer.items() if num(v) is not None}
        listed = [as_int(s) for s in data.get("sessions") or [] if as_int(s) is not None]
        self.sessions = sorted(set(listed) or {s for (rid, s) in self.rows if rid in ("a", "b")})
        # table size -> {"rr": balancer Ir, "sticky": balancer Ir}
        self.by_sessions = {}
        for size, v in (dig(data, "balancer_by_sessions") or {}).items():
            if as_int(size) is not None and isinstance(v, dict):
                self.by_sessions[as_int(size)] = {k: num(v.get(k)) for k in ("rr", "sticky")}
        for label, kind in (("rr-sid-", "rr"), ("sticky-hit-", "sticky")):
            for k, v in self.balancer.items():
                size = as_int(k[len(label):]) if k.startswith(label) else None
                if size is not None and dig(self.by_sessions, size, kind) is None:
                    self.by_sessions.setdefault(size, {})[kind] = v
        # server count -> {"sid": balancer Ir, "device": balancer Ir}
        self.by_servers = {}
        for count, v in (dig(data, "scale_balancer") or {}).items():
            if as_int(count) is not None and isinstance(v, dict):
                self.by_servers[as_int(count)] = {k: num(v.get(k)) for k in ("sid", "device")}
        self.servers = sorted(set(self.by_servers)
                              | {s for (rid, s) in self.rows if rid in ("k", "l")})
        self.density = self._density(data)

    @staticmethod
    def _density(data):
        """(sessions in 1 MiB, survivors exactly the newest or None) from "density" and
        "density_exact", or an older "density": [count, exact]."""
        d, exact = data.get("density"), data.get("density_exact")
        if isinstance(d, list) and d:
            d, exact = d[0], d[1] if len(d) > 1 else None
        return (num(d), exact if isinstance(exact, bool) else None) if num(d) else None

    @property
    def small(self):
        return self.sessions[0] if self.sessions else None

    def row(self, rid, size=None):
        """Ir per request of row `rid` at `size`, else at its smallest size."""
        if size is not None and (rid, size) in self.rows:
            return self.rows[(rid, size)]
        sizes = sorted(s for (r, s) in self.rows if r == rid)
        return self.rows[(rid, sizes[0])] if sizes else None

    def bal(self, label, size=None):
        """Balancer Ir (init + get + free) of a label; "rr-sid"/"sticky-hit" by table size."""
        if label in ("rr-sid", "sticky-hit"):
            size = self.small if size is None else size
            return dig(self.by_sessions, size, "rr" if label == "rr-sid" else "sticky")
        return self.balancer.get(label) if label else None

    def rr_bal(self, label, size=None):
        """Round robin's balancer Ir on the same requests, else on the learned-sid requests
        (round robin does not read the request)."""
        if label is None:
            return None
        own = self.bal(label, size)
        return own if own is not None else self.bal("rr-sid", size)


class NginxSticky:
    """nginx's own `sticky learn`: rows/balancer {"rr", "sticky_learn_hit"}, density."""

    def __init__(self, data):
        data = data if isinstance(data, dict) else {}
        self.version = data.get("nginx") or "?"
        self.rr = num(dig(data, "rows", "rr"))
        self.hit = num(dig(data, "rows", "sticky_learn_hit"))
        self.bal_rr = num(dig(data, "balancer", "rr"))
        self.bal_hit = num(dig(data, "balancer", "sticky_learn_hit"))
        self.zone_size = data.get("zone_size") or "1m"
        zone, dens = zone_bytes(self.zone_size), num(data.get("density"))
        self.per_mib = dens * MIB / zone if dens and zone else None


# --------------------------------------------------------------------------------------------
# formatting


def fmt_int(x):
    return "—" if x is None else "{:,.0f}".format(x)


def fmt_ms(x):
    return "—" if x is None else "{:,.1f}".format(x)


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(r, digits=4):
    return "—" if r is None else "%.*f" % (digits, r)


def verdict(ok):
    return NOT_MEASURED if ok is None else ("met" if ok else "missed")


class Report:
    def __init__(self):
        self.lines = []
        self.targets = []    # (what, measured, target, verdict)

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, align, rows):
        self.add("| " + " | ".join(header) + " |",
                 "|" + "".join(" ---: |" if a == "r" else " --- |" for a in align))
        self.add(*("| " + " | ".join(str(c) for c in r) + " |" for r in rows))
        self.add("")

    def target(self, what, measured, bound, ok):
        self.targets.append((what, measured, bound, verdict(ok)))
        return what, measured, bound, verdict(ok)


# --------------------------------------------------------------------------------------------
# the sections


def section_instructions(rep, cg, ns):
    rep.add("## 1. Instructions per request (callgrind)", "")
    if not cg.rows:
        rep.add(NOT_MEASURED + ".", "")
        return
    n, rounds = cg.meta.get("requests"), cg.meta.get("rounds")
    rep.add("Ir: the front nginx's instructions for exactly N%s requests, divided by N%s. "
            "Balancer: inclusive Ir of its init, get and free per request, compared with round "
            "robin's on the same requests (else on the learned-sid requests: round robin does "
            "not read the request)." % (
                " = {:,}".format(n) if isinstance(n, int) else "",
                "; rows (a) and (b) the mean of %s rounds" % rounds if rounds else ""), "")
    small = cg.small
    order = [(rid, s) for s in cg.sessions for rid in ("a", "b", "e")]
    order += [(rid, small) for rid in ("c0", "c", "d0")]
    order += [("d", s) for s in cg.sessions]
    order += [(rid, small) for rid in ("n0", "n", "m0", "m", "f", "g", "h0", "h", "i0", "i",
                                       "i2", "j0", "j", "p0", "p1", "pt", "p", "r0", "r1",
                                       "q0", "q1", "qt", "q")]
    lines = []
    for rid, size in order:
        total = cg.rows.get((rid, size)) if size is not None else cg.row(rid)
        if total is None:
            continue
        what, req, base, label, base_label = ROWS[rid]
        bal = cg.bal(label, size)
        lines.append([what, req, "—" if size is None else "{:,}".format(size), fmt_int(total),
                      fmt_ratio(ratio(total, cg.row(base, size))) if base else "1",
                      fmt_int(bal),
                      fmt_ratio(ratio(bal, cg.rr_bal(base_label, size))) if base_label
                      else ("1" if bal is not None else "—")])
    if ns is not None and ns.hit is not None:
        lines.append(["nginx %s round robin (its own run)" % ns.version, "`…&sid=S`", "—",
                      fmt_int(ns.rr), "1", fmt_int(ns.bal_rr), "1" if ns.bal_rr else "—"])
        lines.append(["nginx %s `sticky learn`, learned sid" % ns.version, "`…&sid=S`", "—",
                      fmt_int(ns.hit), fmt_ratio(ratio(ns.hit, ns.rr)), fmt_int(ns.bal_hit),
                      fmt_ratio(ratio(ns.bal_hit, ns.bal_rr))])
    rep.table(["row", "request", "learned sessions", "Ir / request", "vs round robin",
               "balancer Ir", "vs round robin's"], "llrrrrr", lines)

    targets = []

    def total(what, r, bound, size=None):
        targets.append(rep.target(
            "socketio_sticky %s / round robin, total Ir%s" % (
                what, "" if size is None else ", {:,} sessions".format(size)),
            fmt_ratio(r), "≤ %s" % bound, None if r is None else r <= bound))

    for size in cg.sessions:
        total("learned-sid hit", ratio(cg.rows.get(("b", size)), cg.rows.get(("a", size))),
              TOTAL_TARGET, size)
    # (d0) is measured once, at the smallest size.
    for size in cg.sessions:
        total("handshake that learns", ratio(cg.rows.get(("d", size)), cg.row("d0", small)),
              HANDSHAKE_TARGET, size)
    for what, rid, bound in KEY_TARGETS:
        total(what, ratio(cg.row(rid, small), cg.row(ROWS[rid][2], small)), bound)
    chash = cg.bal("chash-sid")
    for what, label in (("learned sid", "sticky-hit"), ("device_id", "sticky-device")):
        own = cg.bal(label)
        ok = None if own is None or chash is None else own < chash
        targets.append(rep.target(
            "socketio_sticky balancer Ir, %s, vs `hash $arg_sid consistent`" % what,
            "%s vs %s" % (fmt_int(own), fmt_int(chash)), "<", ok))
    rep.table(["what", "measured", "target", ""], "lrrl", targets)


def section_density(rep, cg, ns):
    rep.add("## 2. Memory density", "")
    dens = cg.density
    lines = []
    if dens:
        count, exact = dens
        rep.add("Sessions a 1 MiB zone holds (`zone=dens:1m`, learned in order; the survivors "
                "must be exactly the newest%s)." % (
                    "" if exact is None else ": %s" % ("yes" if exact else "NO")), "")
        lines.append(["socketio_sticky", fmt_int(count), "%.1f" % (MIB / count)])
    else:
        rep.add("socketio_sticky: " + NOT_MEASURED + ".", "")
    count = dens[0] if dens else None
    if ns is not None and ns.per_mib:
        lines.append(["nginx %s `sticky learn` (zone %s)" % (ns.version, ns.zone_size),
                      fmt_int(ns.per_mib), "%.1f" % (MIB / ns.per_mib)])
    if lines:
        rep.table(["", "sessions per 1 MiB", "bytes per session"], "lrr", lines)
    if count and ns is not None and ns.per_mib:
        rep.add("socketio_sticky holds %s× as many sessions per MiB as nginx's `sticky learn`."
                % fmt_ratio(ratio(count, ns.per_mib), 3), "")
    rep.table(["what", "measured", "target", ""], "lrrl", [rep.target(
        "sessions in a 1 MiB zone", fmt_int(count), "≥ {:,}".format(DENSITY_TARGET),
        None if count is None else count >= DENSITY_TARGET)])


def growth(points):
    """Largest / smallest x's value among the measured points (x, value)."""
    pts = sorted((x, v) for x, v in points if v is not None)
    return ratio(pts[-1][1], pts[0][1]) if len(pts) > 1 else None


def section_scaling(rep, cg):
    rep.add("## 3. Scaling", "")
    if not (cg.by_sessions or cg.servers):
        rep.add(NOT_MEASURED + ".", "")
        return
    rep.add("socketio_sticky's balancer Ir of a hit with more learned sessions in the zone and "
            "over more servers; target: largest / smallest ≤ %s." % SCALE_TARGET, "")
    targets = []
    sizes = sorted(set(cg.sessions) | set(cg.by_sessions))
    if sizes:
        rep.table(["learned sessions", "balancer Ir, learned sid", "round robin's",
                   "Ir / request, learned sid", "vs round robin"], "rrrrr",
                  [["{:,}".format(s), fmt_int(cg.bal("sticky-hit", s)),
                    fmt_int(cg.bal("rr-sid", s)), fmt_int(cg.rows.get(("b", s))),
                    fmt_ratio(ratio(cg.rows.get(("b", s)), cg.rows.get(("a", s))))]
                   for s in sizes])
        r = growth((s, cg.bal("sticky-hit", s)) for s in sizes)
        targets.append(rep.target(
            "balancer Ir, learned sid, {:,} / {:,} sessions".format(sizes[-1], sizes[0]),
            fmt_ratio(r), "≤ %s" % SCALE_TARGET, None if r is None else r <= SCALE_TARGET))
    if cg.servers:
        rep.table(["servers", "balancer Ir, learned sid", "Ir / request, learned sid",
                   "balancer Ir, device_id", "Ir / request, device_id"], "rrrrr",
                  [[n, fmt_int(dig(cg.by_servers, n, "sid")), fmt_int(cg.rows.get(("k", n))),
                    fmt_int(dig(cg.by_servers, n, "device")), fmt_int(cg.rows.get(("l", n)))]
                   for n in cg.servers])
        lo, hi = cg.servers[0], cg.servers[-1]
        for what, key in (("learned sid", "sid"), ("device_id", "device")):
            r = growth((n, dig(cg.by_servers, n, key)) for n in cg.servers)
            targets.append(rep.target(
                "balancer Ir, %s, %d / %d servers" % (what, hi, lo), fmt_ratio(r),
                "≤ %s" % SCALE_TARGET, None if r is None else r <= SCALE_TARGET))
    rep.table(["what", "measured", "target", ""], "lrrl", targets)


def section_throughput(rep, tp, name):
    rep.add("## 4. Throughput (a sanity check)", "")
    rows = [r for r in (dig(tp, "rows") or []) if isinstance(r, dict)]
    if not rows:
        rep.add(NOT_MEASURED + ".", "")
        return
    p = dig(tp, "params") or {}
    facts = ["nginx %s" % tp["nginx"] if tp.get("nginx") else None,
             "%s round%s of %s s per row" % (p["rounds"], "" if p["rounds"] == 1 else "s",
                                              p["duration_s"])
             if "rounds" in p and "duration_s" in p else None,
             "`wrk -c%s`" % p["wrk_connections"] if "wrk_connections" in p else None,
             "quick" if tp.get("quick") else None,
             "checks: %s passed, %s failed" % (dig(tp, "checks", "passed"),
                                               dig(tp, "checks", "failed"))
             if isinstance(tp.get("checks"), dict) else None]
    rep.add("wrk requests per second through one nginx worker (`bench/throughput`, `%s`; %s). "
            "**Not a benchmark:** on a small shared machine runs differ by 5–20%%, so smaller "
            "differences between rows are noise; instructions per request are in section 1."
            % (name, ", ".join(f for f in facts if f)), "")
    lines = []
    for r in rows:
        lo, hi, spread = num(r.get("min")), num(r.get("max")), num(r.get("spread_pct"))
        lines.append([r.get("label") or r.get("key") or "?",
                      "`%s`" % r["balancer"] if r.get("balancer") else "(round robin)",
                      r.get("backends_answering") or "—", fmt_int(num(r.get("median"))),
                      "—" if lo is None or hi is None or lo == hi
                      else "%s–%s" % (fmt_int(lo), fmt_int(hi)),
                      "—" if spread is None else "%.1f%%" % spread,
                      fmt_ratio(num(r.get("ratio_vs_rr")), 3)])
    rep.table(["row", "upstream", "backends", "median req/s", "min–max", "spread",
               "vs round robin"], "llrrrrr", lines)


def e2e_runs(e2e):
    return [r for r in (dig(e2e, "runs") or []) if isinstance(r, dict)]


def pct_keys(runs, field):
    """The percentile keys of runs' `field` ({"median": .., "p99": .., "max": ..}), in order."""
    def order(k):
        return {"median": (0, 0), "max": (2, 0)}.get(k, (1, as_int(k[1:]) or 0))

    return sorted({k for r in runs for k in (r.get(field) or {})}, key=order)


def section_e2e(rep, e2e, name):
    rep.add("## 5. End to end (real Socket.IO sessions)", "")
    runs = e2e_runs(e2e)
    if not runs:
        rep.add(NOT_MEASURED + ".", "")
        return
    facts = ["node %s" % e2e["node"] if e2e.get("node") else None,
             "%s CPUs" % e2e["cpus"] if e2e.get("cpus") else None,
             "%s connecting at a time" % e2e["concurrency"] if e2e.get("concurrency") else None,
             "checks: %s passed, %s failed" % (e2e.get("checks_passed"), e2e.get("checks_failed"))
             if "checks_passed" in e2e else None]
    rep.add("N socket.io-client sessions per upstream (`bench/e2e-scale`, `%s`; %s), all held "
            "open at once; a session is up once upgraded to websocket and answered by the backend "
            "that holds it. Every client comes from 127.0.0.1: `ip_hash` puts them all on one "
            "backend." % (name, ", ".join(f for f in facts if f)), "")
    pcts = pct_keys(runs, "connect_ms")
    backends = sorted({b for r in runs for b in (r.get("per_backend") or {})})
    lines = []
    for r in runs:
        per = r.get("per_backend") or {}
        open_all = num(r.get("open_all_ms"))
        lines.append([r.get("upstream", "?"), fmt_int(num(r.get("n"))), fmt_int(num(r.get("up"))),
                      fmt_int(num(r.get("failed")))]
                     + [fmt_ms(num(dig(r, "connect_ms", k))) for k in pcts]
                     + ["—" if open_all is None else "%.1f" % (open_all / 1000),
                        ", ".join("%s %s" % (b, fmt_int(num(per.get(b)))) for b in backends)])
    rep.table(["upstream", "N", "up", "failed"] + ["connect %s (ms)" % k for k in pcts]
              + ["time to open all (s)", "clients per backend"],
              "lrrr" + "r" * len(pcts) + "rl", lines)


def build_markdown(title, cg, tp, e2e, ns, names, png_link):
    body = Report()
    section_instructions(body, cg, ns)
    section_density(body, cg, ns)
    section_scaling(body, cg)
    section_throughput(body, tp, names["throughput"])
    section_e2e(body, e2e, names["e2e"])
    head = Report()
    head.add("# socketio_sticky benchmarks", "")
    if title:
        head.add("**%s**" % title, "")
    facts = [(k, cg.meta.get(k)) for k in ("nginx", "machine", "date")]
    facts += [(k, v) for k, v in names.items() if v]
    head.add("; ".join("%s: %s" % (k, "`%s`" % v if k in names else v)
                       for k, v in facts if v) + ".", "")
    if png_link:
        head.add("![charts](%s)" % png_link, "")
    head.add("## Targets", "")
    head.table(["what", "measured", "target", ""], "lrrl", body.targets)
    return "\n".join(head.lines + body.lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# the chart


def thousands(ax):
    from matplotlib.ticker import StrMethodFormatter
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def not_measured(ax, title):
    ax.set_title(title)
    ax.text(0.5, 0.5, NOT_MEASURED, ha="center", va="center", fontsize=16, color="grey",
            transform=ax.transAxes)
    ax.set_axis_off()


def panel_balancers(ax, cg, ns):
    title = "(a) balancer Ir per request (init + get + free)"
    bars = []   # (name, balancer Ir, total Ir ratio to round robin, colour)
    for name, rid, label in CHART_BALANCERS:
        bal = cg.bal(label)
        if bal is None:
            continue
        base = ROWS[rid][2]
        r = ratio(cg.row(rid), cg.row(base) if base else cg.row(rid))
        colour = "tab:blue" if name.startswith("sticky") else "tab:grey"
        bars.append((name, bal, r, colour))
    if ns is not None and ns.bal_hit is not None:
        bars.append(("nginx %s\nsticky learn" % ns.version, ns.bal_hit, ratio(ns.hit, ns.rr),
                     "tab:orange"))
    if not bars:
        not_measured(ax, title)
        return
    x = range(len(bars))
    ax.bar(x, [b[1] for b in bars], color=[b[3] for b in bars])
    top = max(b[1] for b in bars)
    for i, (_n, bal, r, _c) in enumerate(bars):
        ax.text(i, bal + top * 0.02, "{:,.0f}\n×{}".format(bal, fmt_ratio(r)), ha="center",
                va="bottom", fontsize=9)
    # Smaller names when the bars are many (every per-key row, and nginx's `sticky learn`).
    ax.set_xticks(list(x), [b[0] for b in bars], fontsize=9 if len(bars) <= 8 else 8)
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel("balancer Ir / request")
    thousands(ax)
    ax.set_title(title + "\nlabels: balancer Ir, ×total Ir vs round robin")


def growth_label(points):
    r = growth(points)
    return "" if r is None else ": ×%.3f" % r


def panel_scaling(ax, cg):
    title = "(b) socketio_sticky balancer Ir: scaling"
    sess = sorted((s, v["sticky"]) for s, v in cg.by_sessions.items()
                  if v.get("sticky") is not None)
    lines = [(key, sorted((n, v[key]) for n, v in cg.by_servers.items()
                          if v.get(key) is not None)) for key in ("sid", "device")]
    lines = [(k, pts) for k, pts in lines if pts]
    if not sess and not lines:
        not_measured(ax, title)
        return
    ymax = max(v for _x, v in sess + [p for _k, pts in lines for p in pts])
    handles = []
    legend_ax = ax
    if sess:
        handles += ax.plot([s for s, _ in sess], [v for _, v in sess], "o-", color="tab:blue",
                           label="learned sid vs learned sessions (bottom axis)"
                           + growth_label(sess))
        ax.set_xscale("log")
        ax.set_xticks([s for s, _ in sess], ["{:,}".format(s) for s, _ in sess])
        ax.minorticks_off()
        ax.set_xlabel("learned sessions in the zone", color="tab:blue")
    if lines:
        top = legend_ax = ax.twiny()
        for (key, pts), style in zip(lines, ("s-", "s--")):
            handles += top.plot([n for n, _ in pts], [v for _, v in pts], style,
                                color="tab:green", label="%s vs servers (top axis)"
                                % ("learned sid" if key == "sid" else "device_id")
                                + growth_label(pts))
        top.set_xscale("log", base=2)
        counts = sorted({n for _k, pts in lines for n, _ in pts})
        top.set_xticks(counts, [str(n) for n in counts])
        top.minorticks_off()
        top.set_xlabel("servers in the upstream", color="tab:green")
    ax.set_ylim(0, ymax * 1.35)
    ax.set_ylabel("balancer Ir / request")
    thousands(ax)
    legend_ax.legend(handles=handles, loc="lower right", fontsize=9,
                     title="largest / smallest (target ≤ %s)" % SCALE_TARGET, title_fontsize=9)
    ax.set_title(title, pad=28 if lines else None)


def panel_throughput(ax, tp):
    title = "(c) throughput, median req/s (min–max): a sanity check"
    rows = [r for r in (dig(tp, "rows") or []) if isinstance(r, dict)
            and num(r.get("median")) is not None]
    if not rows:
        not_measured(ax, title)
        return
    med = [num(r["median"]) for r in rows]
    lo = [m - (num(r.get("min")) or m) for m, r in zip(med, rows)]
    hi = [(num(r.get("max")) or m) - m for m, r in zip(med, rows)]
    x = range(len(rows))
    colours = ["tab:blue" if "socketio_sticky" in str(r.get("label")) else "tab:grey"
               for r in rows]
    ax.bar(x, med, yerr=[lo, hi], capsize=4, color=colours)
    top = max(m + h for m, h in zip(med, hi))
    for i, (m, h, r) in enumerate(zip(med, hi, rows)):
        ax.text(i, m + h + top * 0.02, "{:,.0f}\n×{}".format(
            m, fmt_ratio(num(r.get("ratio_vs_rr")), 2)), ha="center", va="bottom", fontsize=9)
    names = [str(r.get("label") or r.get("key")).replace("socketio_sticky, ", "sticky\n")
             .replace(" $arg_sid ", "\n") for r in rows]
    ax.set_xticks(list(x), names, fontsize=9)
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel("requests / s")
    thousands(ax)
    ax.set_title(title)


def panel_e2e(ax, e2e):
    runs = [r for r in e2e_runs(e2e) if isinstance(r.get("per_backend"), dict)
            and num(r.get("n")) is not None]
    if not runs:
        not_measured(ax, "(d) end to end: clients per backend")
        return
    n = max(num(r["n"]) for r in runs)
    runs = [r for r in runs if num(r["n"]) == n]
    backends = sorted({b for r in runs for b in r["per_backend"]})
    width = 0.8 / len(runs)
    colours = {"socketio_sticky": "tab:blue", "ip_hash": "tab:grey"}
    for i, r in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(backends))]
        vals = [num(r["per_backend"].get(b)) or 0 for b in backends]
        ax.bar(xs, vals, width, label="%s (%s up, %s failed)" % (
            r.get("upstream", "?"), fmt_int(num(r.get("up"))), fmt_int(num(r.get("failed")))),
            color=colours.get(r.get("upstream")))
        for x, v in zip(xs, vals):
            ax.text(x, v, fmt_int(v), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylim(0, n * 1.15)
    ax.set_ylabel("clients")
    thousands(ax)
    ax.legend(fontsize=9)
    ax.set_title("(d) end to end: clients per backend, N = {:,.0f}".format(n))


def draw_chart(path, title, cg, tp, e2e, ns, plt):
    fig, axes = plt.subplots(2, 2, figsize=(16, 10), dpi=100)
    panel_balancers(axes[0][0], cg, ns)
    panel_scaling(axes[0][1], cg)
    panel_throughput(axes[1][0], tp)
    panel_e2e(axes[1][1], e2e)
    fig.suptitle("socketio_sticky" + (": " + title if title else ""), fontsize=14)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


def import_pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("report.py: matplotlib cannot be imported by %s (%s); install it (Debian: "
              "apt-get install python3-matplotlib) and run this script with the Python that "
              "has it (/usr/bin/python3)" % (sys.executable, e), file=sys.stderr)
        sys.exit(3)
    return plt


# --------------------------------------------------------------------------------------------


def make(args, plt):
    cg = Callgrind(load(args.callgrind))
    tp, e2e = load(args.throughput), load(args.e2e)
    ns = NginxSticky(load(args.nginx_sticky)) if args.nginx_sticky else None
    names = {k: os.path.basename(v) if v else None for k, v in (
        ("callgrind", args.callgrind), ("throughput", args.throughput), ("e2e", args.e2e),
        ("nginx-sticky", args.nginx_sticky))}
    chart_title = args.title or ", ".join(
        v for v in (cg.meta.get("date"), cg.meta.get("machine"),
                    "nginx %s" % cg.meta["nginx"] if "nginx" in cg.meta else None) if v)
    png_link = None
    if args.out_png:
        draw_chart(args.out_png, chart_title, cg, tp, e2e, ns, plt)
        png_link = (os.path.relpath(args.out_png, os.path.dirname(os.path.abspath(args.out_md)))
                    if args.out_md else os.path.basename(args.out_png))
    md = build_markdown(args.title, cg, tp, e2e, ns, names, png_link)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    return md


# Small inputs in each producer's format, for --self-test.
SAMPLES = {
    "callgrind": {
        "date": "2025-01-01", "machine": "test machine", "nginx": "1.28.3", "requests": 2000,
        "rounds": 2, "sessions": [1000, 1000000], "density": 28897, "density_exact": True,
        "rows": {"a@1000": 21000, "b@1000": 21400, "e@1000": 21500, "c0@1000": 19000,
                 "c@1000": 19150, "d0@1000": 19700, "d@1000": 20500, "f@1000": 20800,
                 "g@1000": 22500, "h0@1000": 19500, "h@1000": 19800, "i0@1000": 21000,
                 "i@1000": 21300, "i2@1000": 22600, "j0@1000": 20100, "j@1000": 20450,
                 "n0@1000": 19900, "n@1000": 20700, "a@1000000": 21200, "b@1000000": 21500,
                 "e@1000000": 21800, "d@1000000": 20600, "m0@1000": 21900, "m@1000": 22300,
                 "k@2": 21500, "l@2": 20800, "k@256": 22000, "l@256": 21000,
                 "p0@1000": 21270, "p1@1000": 22690, "pt@1000": 22180, "p@1000": 21600,
                 "r0@1000": 19160, "r1@1000": 19290, "q0@1000": 19820, "q1@1000": 20840,
                 "qt@1000": 21320, "q@1000": 20600},
        "balancer": {"rr-sid-1000": 298, "iphash-sid": 312, "chash-sid": 1888,
                     "sticky-hit-1000": 970, "sticky-device": 1040, "sroute-route": 1519,
                     "sboth-route": 1530, "scookie-cookie": 1874, "sticky-nokey": 735,
                     "rr-device-handshake": 300, "sticky-device-handshake": 1100,
                     "trr-tagged": 305, "sprefix-hit": 1140},
        "balancer_by_sessions": {"1000000": {"rr": 300, "sticky": 1010}},
        "scale_balancer": {"2": {"sid": 960, "device": 1030},
                           "256": {"sid": 1100, "device": 1080}},
    },
    "throughput": {
        "nginx": "1.28.3", "quick": False, "params": {"rounds": 3, "duration_s": 5},
        "rows": [{"key": "rr", "label": "round robin", "balancer": "", "median": 20000,
                  "min": 19000, "max": 21000, "spread_pct": 10.0, "ratio_vs_rr": 1.0},
                 {"key": "sticky_sid", "label": "socketio_sticky, learned-sid hit",
                  "balancer": "socketio_sticky;", "median": 19800, "min": 19000,
                  "max": 20500, "spread_pct": 7.6, "ratio_vs_rr": 0.99}],
        "checks": {"passed": 17, "failed": 0},
    },
    "e2e": {
        "node": "v20", "cpus": 2, "concurrency": 200, "checks_passed": 7, "checks_failed": 0,
        "runs": [{"upstream": u, "n": 200, "up": 200, "failed": 0,
                  "connect_ms": {"median": 12.5, "p99": 40.1, "max": 52.0},
                  "open_all_ms": 900, "per_backend": per}
                 for u, per in (("socketio_sticky", {"b1": 50, "b2": 50, "b3": 50, "b4": 50}),
                                ("ip_hash", {"b1": 0, "b2": 200, "b3": 0, "b4": 0}))],
    },
    "nginx_sticky": {"nginx": "1.29.3", "rows": {"rr": 21000, "sticky_learn_hit": 21900},
                     "balancer": {"rr": 300, "sticky_learn_hit": 1300}, "density": 8000,
                     "zone_size": "1m"},
}
HEADINGS = ["# socketio_sticky benchmarks", "## Targets", "## 1. Instructions per request",
            "## 2. Memory density", "## 3. Scaling", "## 4. Throughput (a sanity check)",
            "## 5. End to end"]


def self_test(plt):
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for k, v in SAMPLES.items():
            paths[k] = os.path.join(d, k + ".json")
            with open(paths[k], "w") as f:
                json.dump(v, f)
        # Every input, then the callgrind input alone with keys missing.
        with open(os.path.join(d, "partial.json"), "w") as f:
            json.dump({"rows": {"a@1000": 1.0, "x": "?"}, "balancer": None, "density": None}, f)
        full = argparse.Namespace(callgrind=paths["callgrind"], throughput=paths["throughput"],
                                  e2e=paths["e2e"], nginx_sticky=paths["nginx_sticky"],
                                  out_md=os.path.join(d, "r.md"),
                                  out_png=os.path.join(d, "r.png"), title="self-test")
        partial = argparse.Namespace(callgrind=os.path.join(d, "partial.json"), throughput=None,
                                     e2e=None, nginx_sticky=None,
                                     out_md=os.path.join(d, "p.md"),
                                     out_png=os.path.join(d, "p.png"), title=None)
        md = make(full, plt)
        for h in HEADINGS:
            assert ("\n" + h) in ("\n" + md), "missing heading %r" % h
        for s in ("| 1.0190 |", "28,897", "newest: yes", "N = 2,000", "| 0.990 |", "b2 200",
                  "nginx 1.29.3 `sticky learn`", "3.612×", "![charts](r.png)",
                  "(i2) socketio_sticky, route label, the response issues the route cookie",
                  "| 1.0762 |", "(n) socketio_sticky, handshake with a device id (learns)",
                  "with a device id that learns / round robin, total Ir | 1.0402 | ≤ 1.05 | met",
                  "handshake that learns / round robin, total Ir, 1,000,000 sessions | 1.0457",
                  "route cookie hit / round robin, total Ir | 1.0174 | ≤ 1.02 | met",
                  "no key / round robin, total Ir | 1.0079 | ≤ 1.01 | met",
                  "sid_prefix tagged hit / round robin, total Ir | 1.0155 | ≤ 1.02 | met",
                  "sid_prefix handshake, rewritten (learns) / round robin, total Ir | 1.0394 "
                  "| ≤ 1.05 | met",
                  "(p) socketio_sticky sid_prefix, tagged hit"):
            assert s in md, "missing %r" % s
        assert "| missed |" not in md and NOT_MEASURED not in md, md
        assert os.path.getsize(full.out_png) > 10000
        # A key's hit over its bound is missed.
        over = dict(SAMPLES["callgrind"], rows=dict(SAMPLES["callgrind"]["rows"], **{
            "c@1000": 19300}))
        with open(paths["callgrind"], "w") as f:
            json.dump(over, f)
        md = make(argparse.Namespace(**dict(vars(full), out_png=None)), plt)
        assert "no key / round robin, total Ir | 1.0158 | ≤ 1.01 | missed |" in md, md
        md = make(partial, plt)
        for h in HEADINGS:
            assert ("\n" + h) in ("\n" + md), "missing heading %r" % h
        assert md.count(NOT_MEASURED) >= 5, md
        assert os.path.getsize(partial.out_png) > 10000
    print("report.py: self-test passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--callgrind", metavar="FILE", help="bench/callgrind --json output")
    ap.add_argument("--throughput", metavar="FILE", help="bench/throughput --json output")
    ap.add_argument("--e2e", metavar="FILE", help="bench/e2e-scale --json output")
    ap.add_argument("--nginx-sticky", metavar="FILE",
                    help="nginx's own `sticky learn` rows, balancer and density")
    ap.add_argument("--out-md", metavar="FILE", help="the markdown report (default: stdout)")
    ap.add_argument("--out-png", metavar="FILE", help="the chart (2x2 panels, 1600x1000)")
    ap.add_argument("--title", help="shown in the report's header and the chart's title")
    ap.add_argument("--self-test", action="store_true",
                    help="build a report from built-in samples in a temporary directory")
    args = ap.parse_args()
    if not args.self_test and not args.callgrind:
        ap.error("--callgrind FILE is required (or --self-test)")
    plt = import_pyplot() if args.self_test or args.out_png else None
    if args.self_test:
        self_test(plt)
    else:
        make(args, plt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
