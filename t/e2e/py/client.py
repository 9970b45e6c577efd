"""python-socketio clients for t/e2e/fleet's sid_prefix run (what fleet-prefix.js's "sessions"
mode does with socket.io-client, with socketio.Client: requests for long-polling,
websocket-client for the websocket).

    python client.py --url URL --rows UPSTREAM:TRANSPORT:COUNT[:free],... --ready FILE --go FILE
                     --out FILE [--calls 3] [--gap-ms 100] [--connect-concurrency 25]

Each row runs COUNT sessions at once against URL/UPSTREAM/socket.io/ (URL/socket.io/ for the
UPSTREAM "-", then write --rows=...; TRANSPORT polling: long-polling only; default: polling
upgraded to websocket, which python-socketio does right after the handshake), every request
carrying ?fleet=py-UPSTREAM-TRANSPORT&n=I. A session connects and
makes --calls whoami calls (--gap-ms apart); when every session of every row got that far (or
failed; but not those of rows marked "free"), FILE --ready is written and the sessions wait for
FILE --go to exist (what
t/e2e/fleet changes in between: a node started, the rotation changed); then each session makes
--calls more calls and disconnects. The results, one object per session, go to --out as JSON.

A session is ok iff it connected, every call was answered, all by one backend, with the
client's socket.io id, and with the client's Engine.IO sid either as it is or (sid_prefix) as
TAG.SID where SID is what the backend knows; in mode default it must be on websocket.
"""
import argparse
import itertools
import json
import logging
import os
import re
import sys
import threading
import time

import socketio

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--rows", required=True)
p.add_argument("--ready", required=True)
p.add_argument("--go", required=True)
p.add_argument("--out", required=True)
p.add_argument("--calls", type=int, default=3)
p.add_argument("--gap-ms", type=int, default=100)
p.add_argument("--connect-concurrency", type=int, default=25)
p.add_argument("--go-timeout", type=float, default=120)
args = p.parse_args()

TAGGED = re.compile(r"^([A-Za-z0-9_-]{8})\.(.+)$")

# What the clients' libraries logged as errors (they say more than the exceptions), counted.
log_counts = {}
log_lock = threading.Lock()


class Count(logging.Handler):
    def emit(self, record):
        msg = re.sub(r"[A-Za-z0-9_.-]{16,}", "<sid>", record.getMessage())[:200]
        with log_lock:
            log_counts[msg] = log_counts.get(msg, 0) + 1


for name in ("engineio.client", "socketio.client"):
    lg = logging.getLogger(name)
    lg.addHandler(Count())
    lg.setLevel(logging.WARNING)
    lg.propagate = False

rows = []
for spec in args.rows.split(","):
    upstream, transport, count, *flags = spec.split(":")
    rows.append((upstream, transport, int(count), "free" in flags))
total = sum(c for _, _, c, free in rows if not free)  # the sessions --ready waits for

connect_sem = threading.Semaphore(args.connect_concurrency)
arrived = 0
arrived_lock = threading.Lock()
all_arrived = threading.Event()
go = threading.Event()
all_done = threading.Event()
results = []
results_lock = threading.Lock()


if total == 0:
    all_arrived.set()


def arrive():
    global arrived
    with arrived_lock:
        arrived += 1
        if arrived == total:
            all_arrived.set()


def session(upstream, transport, n, free):
    phase = f"py-{upstream}-{transport}"
    res = {
        "client": "python", "phase": phase, "upstream": upstream, "transport": transport, "n": n,
        "ok": False, "connected": False, "upgraded": False, "engineId": None, "socketId": None,
        "backendEngineId": None, "backend": None, "backends": [], "answers": 0, "errors": [],
        "ms": 0,
    }
    t0 = time.time()
    done = threading.Event()
    sio = socketio.Client(reconnection=False, request_timeout=20, handle_sigint=False)

    def on_disconnect(*a):
        if not done.is_set():
            err = f"disconnect: {' '.join(str(x) for x in a) or 'no reason'}"
            if err not in res["errors"]:
                res["errors"].append(err)

    sio.on("disconnect", on_disconnect)

    def whoami():
        # sio.call() would wait out its timeout after the connection died: an emit with a
        # callback, given up on as soon as the client is disconnected.
        answered = threading.Event()
        box = []
        sio.emit("whoami", callback=lambda *a: (box.append(a), answered.set()))
        until = time.time() + 15
        while not answered.wait(0.05):
            if not sio.connected:
                raise RuntimeError("no answer to whoami: disconnected")
            if time.time() > until:
                raise RuntimeError("no answer to whoami within 15 s")
        if not box[0] or not isinstance(box[0][0], dict):
            raise RuntimeError(f"whoami answered {box[0]!r}")
        a = box[0][0]
        res["answers"] += 1
        if a["backend"] not in res["backends"]:
            res["backends"].append(a["backend"])
        if res["backend"] is None:
            res["backend"] = a["backend"]
            res["backendEngineId"] = a["engineId"]
        if a["socketId"] != res["socketId"]:
            raise RuntimeError(f"socket.io id {res['socketId']} answered as {a['socketId']} by {a['backend']}")
        m = TAGGED.match(res["engineId"] or "")
        if a["engineId"] != res["engineId"] and not (m and m.group(2) == a["engineId"]):
            raise RuntimeError(f"sid {res['engineId']} answered as {a['engineId']} by {a['backend']}")
        if len(res["backends"]) > 1:
            raise RuntimeError(f"answers from {', '.join(res['backends'])}")

    def calls():
        for i in range(args.calls):
            if i:
                time.sleep(args.gap_ms / 1000)
            if not sio.connected:
                raise RuntimeError("not connected")
            whoami()

    ok_so_far = False
    try:
        with connect_sem:
            try:
                # wait=False, and the wait for the namespace here: socketio.Client's own wait goes
                # on for wait_timeout after the Engine.IO session died (then disconnect() waits
                # for the long-poll), which holds a session that failed at once for 40 s.
                sio.connect(f"{args.url}/?fleet={phase}&n={n}",
                            transports=["polling"] if transport == "polling" else ["polling", "websocket"],
                            socketio_path=f"{upstream}/socket.io" if upstream != "-" else "socket.io",
                            wait=False)
                # A POST answered 400 ends python-engineio's write loop but not the session
                # (its long-poll may wait on): a dead write loop is a failed connect too.
                until = time.time() + 20
                while ("/" not in sio.namespaces and sio.eio.state == "connected" and time.time() < until
                       and sio.eio.write_loop_task and sio.eio.write_loop_task.is_alive()):
                    time.sleep(0.02)
                if "/" not in sio.namespaces:
                    why = sio.eio.state
                    if why == "connected":
                        why = "connected, but its write loop ended" if time.time() < until else "connected, 20 s passed"
                    raise RuntimeError(f"no Socket.IO connection: Engine.IO {why}")
                res["connected"] = True
                res["engineId"] = sio.eio.sid
                res["socketId"] = sio.get_sid()
                if transport == "default":
                    res["upgraded"] = sio.transport() == "websocket"
                    if not res["upgraded"]:
                        raise RuntimeError(f"on {sio.transport()} after connect, not websocket")
                calls()
                ok_so_far = True
            except Exception as e:
                res["errors"].append(f"{type(e).__name__}: {e}")
    finally:
        res["arrivedMs"] = int((time.time() - t0) * 1000)
        if not free:
            arrive()
    if ok_so_far:
        go.wait()
        try:
            calls()
            if transport == "default" and sio.transport() != "websocket":
                raise RuntimeError(f"on {sio.transport()} at the end, not websocket")
        except Exception as e:
            res["errors"].append(f"{type(e).__name__}: {e}")
    done.set()
    res["closedAt"] = int(time.time() * 1000)  # requests ending later may be answered 400 or 499
    res["ms"] = res["closedAt"] - int(t0 * 1000)
    res["ok"] = (not res["errors"] and res["connected"] and len(res["backends"]) == 1
                 and res["answers"] == 2 * args.calls and (transport != "default" or res["upgraded"]))
    with results_lock:
        results.append(res)
        if len(results) == len(threads):
            all_done.set()
    # (python-engineio's client may wait for its last long-poll here, up to 30 s: the results
    # are in already, and the main thread does not wait that long.)
    try:
        sio.disconnect()
    except Exception:
        pass


# Rows interleaved, so that every row has sessions connecting from the start.
by_row = [[(u, t, n, free) for n in range(c)] for u, t, c, free in rows]
threads = [threading.Thread(target=session, args=x, daemon=True)
           for group in itertools.zip_longest(*by_row) for x in group if x]
for t in threads:
    t.start()

if not all_arrived.wait(timeout=120):
    print(f"client.py: only {arrived} of {total} sessions got past their first calls in 120 s", file=sys.stderr)
with open(args.ready + ".tmp", "w") as f:
    f.write(f"{arrived}\n")
os.rename(args.ready + ".tmp", args.ready)
until = time.time() + args.go_timeout
while not os.path.exists(args.go) and time.time() < until:
    time.sleep(0.05)
go.set()
if not all_done.wait(timeout=args.go_timeout + 60):
    print("client.py: some sessions did not finish", file=sys.stderr)
deadline = time.time() + 3  # the disconnects, briefly
for t in threads:
    t.join(timeout=max(0.01, deadline - time.time()))

with results_lock:
    out = sorted(results, key=lambda r: (r["phase"], r["n"]))
with open(args.out + ".tmp", "w") as f:
    json.dump({"sessions": out, "logged": log_counts, "expected": len(threads)}, f)
os.rename(args.out + ".tmp", args.out)
ok = sum(1 for r in out if r["ok"])
print(f"client.py: {ok} of {len(threads)} python-socketio sessions ok", flush=True)
os._exit(0)  # without waiting for the clients' threads that may still be in a long-poll
