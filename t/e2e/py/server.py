"""A python-socketio backend for t/e2e/fleet: what t/e2e/server.js is, in Python.

    python server.py ID PORT

Listens on 127.0.0.1:PORT: socketio.AsyncServer on aiohttp, Socket.IO under /socket.io/,
session ids are python-engineio's own (nothing in this file knows about nginx or sid_prefix).
The event `whoami` is acknowledged with {backend, socketId, engineId, transport}, as server.js
does. GET /stats answers this backend's counters as JSON, in server.js's shape: every answer
of 400 or more under /socket.io/ (python-engineio's "Invalid session SID" for a sid this process
never issued, ...) is counted by message, and the last few are kept with their request line.
Prints "open ENGINE_SID TRANSPORT" when a session connects, as server.js does, so that a request
with a sid can be matched with the backend that issued that sid.
"""
import json
from importlib import metadata
import os
import re
import sys

import socketio
from aiohttp import web

if len(sys.argv) < 3:
    print("usage: python server.py ID PORT", file=sys.stderr)
    sys.exit(2)
ID, PORT = sys.argv[1], int(sys.argv[2])

stats = {
    "backend": ID,
    "pid": os.getpid(),
    "handshakes": 0,  # Socket.IO sessions connected here (one Engine.IO session each)
    "connections": 0,
    "whoami": 0,
    "upgrades": 0,  # not counted here (python-engineio has no event for it)
    "rejected": {},  # "STATUS message" -> count
    "rejectedTotal": 0,
    "rejectedSamples": [],  # the last few: {"n", "text": "METHOD url -> STATUS message"}
}

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")


@sio.event
async def connect(sid, environ, auth=None):
    stats["handshakes"] += 1
    stats["connections"] += 1
    print(f"open {sio.manager.eio_sid_from_sid(sid, '/')} {sio.transport(sid)}", flush=True)


@sio.event
async def disconnect(sid, *args):
    print(f"close {sid}", flush=True)


@sio.on("whoami")
async def whoami(sid, *args):
    stats["whoami"] += 1
    return {
        "backend": ID,
        "socketId": sid,
        "engineId": sio.manager.eio_sid_from_sid(sid, "/"),
        "transport": sio.transport(sid),
    }


@web.middleware
async def count_rejections(request, handler):
    resp = await handler(request)
    if resp.status >= 400 and request.path.startswith("/socket.io"):
        body = getattr(resp, "text", None) or ""
        try:
            body = json.loads(body) if body else ""
        except ValueError:
            pass
        # One key per kind of rejection, without the sid python-engineio puts in it.
        msg = re.sub(r"[A-Za-z0-9_.-]{16,}", "<sid>", f"{resp.status} {body}".strip())
        stats["rejected"][msg] = stats["rejected"].get(msg, 0) + 1
        stats["rejectedTotal"] += 1
        stats["rejectedSamples"].append(
            {"n": stats["rejectedTotal"], "text": f"{request.method} {request.path_qs} -> {resp.status} {body}"})
        del stats["rejectedSamples"][:-5]
    return resp


async def get_stats(request):
    return web.json_response(stats)


app = web.Application(middlewares=[count_rejections])
sio.attach(app, socketio_path="socket.io")
app.router.add_get("/stats", get_stats)

if __name__ == "__main__":
    print(f"backend {ID} listening on 127.0.0.1:{PORT} (pid {os.getpid()}), python-socketio "
          f"{metadata.version('python-socketio')}, aiohttp {metadata.version('aiohttp')}", flush=True)
    web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None)
