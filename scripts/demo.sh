#!/usr/bin/env bash
# Builds the module (nginx 1.28, vendored), starts four real Socket.IO 4 backends
# (t/e2e/server.js) and nginx in front of them on 127.0.0.1, once with `socketio_sticky` and
# once with plain round robin, and runs Socket.IO clients over polling, polling upgraded to
# websocket, and websocket (scripts/demo/clients.js), printing the backend each session is stuck
# to. Stops everything when done.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_debs "${BUILD_DEBS[@]}" curl python3
command -v node >/dev/null || need_debs nodejs npm
command -v node >/dev/null || die "node and npm are needed (apt-get install nodejs npm)"

say "building the module and nginx 1.28"
cargo build --release --features vendored >&2
NGINX=$(vendored_nginx)
MODULE=$(vendored_module)
t/e2e/npm-ci

DIR="$ROOT/target/demo"
rm -rf "$DIR"
mkdir -p "$DIR/logs"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ports=()
for b in b1 b2 b3 b4; do
    port=$(free_port)
    timeout 300 node t/e2e/server.js "$b" "$port" > "$DIR/logs/$b.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/stats" >/dev/null 2>&1 && break; sleep 0.1; done
done

STICKY=$(free_port)
RR=$(free_port)
servers=""
for port in "${ports[@]}"; do servers+="        server 127.0.0.1:$port;"$'\n'; done
proxy='proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;'
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat > "$DIR/nginx.conf" <<CONF
load_module $MODULE;
$user_line
daemon off;
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events {}
http {
    log_format sticky '"\$request" \$status -> \$upstream_addr \$socketio_sticky_status';
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    upstream chat {
        socketio_sticky;
$servers    }
    upstream chat_rr {
$servers    }
    server {
        listen 127.0.0.1:$STICKY;
        access_log logs/access.log sticky;
        location /socket.io/ {
            proxy_pass http://chat;
            $proxy
        }
    }
    server {
        listen 127.0.0.1:$RR;
        access_log logs/access-rr.log;
        location /socket.io/ {
            proxy_pass http://chat_rr;
            $proxy
        }
    }
}
CONF
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log" -t -q
timeout 300 "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log" &
pids+=($!)
for _ in $(seq 50); do curl -s "http://127.0.0.1:$STICKY/" >/dev/null 2>&1 && break; sleep 0.1; done

echo
echo "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') in front of 4 Socket.IO backends b1..b4 (127.0.0.1, ports ${ports[*]})"
DEMO_ACCESS_LOG="$DIR/logs/access.log" DEMO_BACKEND_PORTS="${ports[*]}" timeout 120 \
    node scripts/demo/clients.js "http://127.0.0.1:$STICKY" "http://127.0.0.1:$RR"
