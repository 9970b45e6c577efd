#!/usr/bin/env bash
# Builds the module (nginx 1.28, vendored), starts four backend processes and nginx with
# `socketio_sticky` in front of them on 127.0.0.1, and shows each device_id sticking to one
# backend, then what happens when one backend goes away. Stops everything when done.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_debs "${BUILD_DEBS[@]}" curl python3
command -v node >/dev/null || die "node is needed for the demo backends (apt-get install nodejs)"

say "building the module and nginx 1.28"
cargo build --release --features vendored >&2
NGINX=$(vendored_nginx)
MODULE=$(vendored_module)

DIR="$ROOT/target/demo"
rm -rf "$DIR"
mkdir -p "$DIR/logs"
pids=()
cleanup() {
    [ -f "$DIR/nginx.pid" ] && "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -s stop 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

FRONT=$(free_port)
ports=()
for b in b1 b2 b3 b4; do
    port=$(free_port)
    node scripts/demo/backend.js "$b" "$port" &
    pids+=($!)
    ports+=("$port")
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.05; done
done

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat > "$DIR/nginx.conf" <<CONF
load_module $MODULE;
$user_line
worker_processes 2;
error_log logs/error.log warn;
pid nginx.pid;
events {}
http {
    access_log logs/access.log;
    upstream backends {
        socketio_sticky;
        server 127.0.0.1:${ports[0]};
        server 127.0.0.1:${ports[1]};
        server 127.0.0.1:${ports[2]};
        server 127.0.0.1:${ports[3]};
    }
    server {
        listen 127.0.0.1:$FRONT;
        location / {
            proxy_pass http://backends;
            add_header X-Sticky-Status \$socketio_sticky_status;
        }
    }
}
CONF
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -t 2>&1 | sed 's/^/    /' >&2
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$FRONT/" >/dev/null 2>&1 && break; sleep 0.1; done

ask() { # ask DEVICE -> "backend status"
    curl -s -D - "http://127.0.0.1:$FRONT/socket.io/?EIO=4&transport=polling&device_id=$1" |
        tr -d '\r' | awk '/^X-Sticky-Status:/{s=$2} /^\{/{match($0,/"backend":"[^"]*"/); b=substr($0,RSTART+11,RLENGTH-12)} END{print b, s}'
}

devices=(alice bob carol dave erin frank grace heidi ivan judy)
echo
echo "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') on 127.0.0.1:$FRONT, upstream { socketio_sticky; 4 servers }"
echo
echo "Each device asks 5 times (from new connections, landing on any nginx worker):"
declare -A home
for d in "${devices[@]}"; do
    seen=()
    for _ in 1 2 3 4 5; do seen+=("$(ask "$d" | cut -d' ' -f1)"); done
    uniq=$(printf '%s\n' "${seen[@]}" | sort -u | tr '\n' ' ')
    home[$d]=${seen[0]}
    printf '  device %-6s -> %s   (answers: %s)\n' "$d" "${seen[0]}" "${seen[*]}"
    [ "$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)" = 1 ] || echo "    !! not sticky: $uniq"
done
echo
echo "Without a device_id, requests are spread by round robin:"
printf '  '; for _ in 1 2 3 4 5 6 7 8; do printf '%s ' "$(ask '' | cut -d' ' -f1)"; done; echo
echo
victim=${home[alice]}
idx=${victim#b}
echo "Stopping backend $victim (its port now refuses connections):"
kill "${pids[$((idx - 1))]}"; wait "${pids[$((idx - 1))]}" 2>/dev/null || true
sleep 0.3
for d in "${devices[@]}"; do
    r1=$(ask "$d"); r2=$(ask "$d"); r3=$(ask "$d")
    printf '  device %-6s was %s -> now %-3s %-3s %-3s  status: %s\n' "$d" "${home[$d]}" \
        "${r1% *}" "${r2% *}" "${r3% *}" "${r3#* }"
done
echo
echo "Only $victim's devices moved, each to one fixed substitute; everyone else stayed."
