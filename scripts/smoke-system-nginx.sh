#!/usr/bin/env bash
# Smoke test: load the module built by build-for-system-nginx.sh into the
# system nginx and check that `socketio_sticky` keeps every device_id on one
# backend while still using both backends.
#
# Runs a private nginx instance as the current user in a temporary prefix;
# everything listens on 127.0.0.1 only, on free ports. nginx is always stopped
# on exit.
set -euo pipefail

MODULE_FILE=ngx_http_upstream_socketio_sticky_module.so
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"

usage() {
    cat <<EOF
Usage: $(basename "$0") [--nginx PATH] [--module PATH] [--ids N] [--keep] [--help]

Starts the system nginx with the built ${MODULE_FILE}, an upstream using
'socketio_sticky;' with two local backends (b1, b2), and a front proxy; then
requests /?device_id=<n> twice for each of N device ids and checks that each
id sticks to one backend and that both backends are used.

Options:
  --nginx PATH    nginx binary (default: \$NGINX_BIN or /usr/sbin/nginx)
  --module PATH   module to load
                  (default: <repo>/target/nginx-<version>/${MODULE_FILE},
                  as produced by scripts/build-for-system-nginx.sh)
  --ids N         number of device ids to try (default: 50)
  --keep          keep the temporary nginx prefix (config, logs) for inspection
  -h, --help      show this help

Environment:
  SMOKE_DIRECTIVE  balancer directive(s) put in the upstream block
                   (default: 'socketio_sticky;')
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    if [[ -n "${NGINX_VERSION:-}" ]]; then echo "nginx version tested: ${NGINX_VERSION}"; fi
    echo "FAIL"
    exit 1
}

NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
MODULE=""
IDS=50
KEEP=0
DIRECTIVE="${SMOKE_DIRECTIVE:-socketio_sticky;}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nginx) [[ $# -ge 2 ]] || die "--nginx needs a PATH"; NGINX_BIN="$2"; shift ;;
        --nginx=*) NGINX_BIN="${1#--nginx=}" ;;
        --module) [[ $# -ge 2 ]] || die "--module needs a PATH"; MODULE="$2"; shift ;;
        --module=*) MODULE="${1#--module=}" ;;
        --ids) [[ $# -ge 2 ]] || die "--ids needs a number"; IDS="$2"; shift ;;
        --ids=*) IDS="${1#--ids=}" ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ "${IDS}" =~ ^[1-9][0-9]*$ ]] || die "--ids must be a positive integer"

if [[ "${NGINX_BIN}" != */* ]]; then NGINX_BIN="$(command -v "${NGINX_BIN}" || true)"; fi
[[ -n "${NGINX_BIN}" && -x "${NGINX_BIN}" ]] || die "nginx binary not found ('${NGINX_BIN:-nginx}'); use --nginx PATH"
command -v curl >/dev/null 2>&1 || die "curl is required (apt-get install curl)"

NGINX_VERSION="$("${NGINX_BIN}" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([0-9][0-9.]*\).*|\1|p' | head -n1)"
[[ -n "${NGINX_VERSION}" ]] || die "could not parse the version from '${NGINX_BIN} -v'"
MODULE="${MODULE:-${REPO_ROOT}/target/nginx-${NGINX_VERSION}/${MODULE_FILE}}"
[[ -f "${MODULE}" ]] || die "module not found: ${MODULE} (build it with scripts/build-for-system-nginx.sh)"
MODULE="$(cd "$(dirname "${MODULE}")" && pwd)/$(basename "${MODULE}")"
log "nginx: ${NGINX_BIN} (version ${NGINX_VERSION})"
log "module: ${MODULE}"

# Three distinct free ports on 127.0.0.1 (all bound at once so they differ).
free_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
    else
        perl -MIO::Socket::INET -e '
            my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                                Proto => "tcp", Listen => 1) or die "bind: $!" } 1..3;
            print join(" ", map { $_->sockport } @s), "\n";'
    fi
}
read -r PORT_B1 PORT_B2 PORT_FRONT < <(free_ports) || die "could not find free ports"
[[ -n "${PORT_FRONT:-}" ]] || die "could not find free ports"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/socketio-sticky-smoke.XXXXXX")"
NGINX_PID=""

stop_nginx() {
    [[ -n "${NGINX_PID}" ]] || return 0
    if kill -0 "${NGINX_PID}" 2>/dev/null; then
        local workers
        workers="$(pgrep -P "${NGINX_PID}" 2>/dev/null || true)"
        kill -TERM "${NGINX_PID}" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "${NGINX_PID}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${NGINX_PID}" 2>/dev/null; then
            echo "nginx master ${NGINX_PID} did not stop; killing it and its workers" >&2
            # shellcheck disable=SC2086
            kill -KILL "${NGINX_PID}" ${workers} 2>/dev/null || true
        fi
    fi
    wait "${NGINX_PID}" 2>/dev/null || true
    NGINX_PID=""
}
cleanup() {
    local rc=$?
    stop_nginx
    if [[ ${KEEP} -eq 1 ]]; then
        echo "kept ${TMP}" >&2
    else
        rm -rf "${TMP}"
    fi
    exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
    if [[ -s "${TMP}/error.log" ]]; then
        echo "--- ${TMP}/error.log (last 30 lines):" >&2
        tail -n 30 "${TMP}/error.log" >&2
    fi
}

USER_LINE=""
if [[ "$(id -u)" -eq 0 ]]; then USER_LINE="user root;"; fi

cat >"${TMP}/nginx.conf" <<EOF
${USER_LINE}
master_process on;
daemon off;
worker_processes 2;
pid ${TMP}/nginx.pid;
lock_file ${TMP}/nginx.lock;
error_log ${TMP}/error.log notice;

load_module ${MODULE};

events {
    worker_connections 128;
}

http {
    access_log ${TMP}/access.log;
    client_body_temp_path ${TMP}/client_body;
    proxy_temp_path ${TMP}/proxy;
    fastcgi_temp_path ${TMP}/fastcgi;
    uwsgi_temp_path ${TMP}/uwsgi;
    scgi_temp_path ${TMP}/scgi;
    default_type text/plain;

    upstream socketio_backends {
        ${DIRECTIVE}
        server 127.0.0.1:${PORT_B1};
        server 127.0.0.1:${PORT_B2};
    }

    server {
        listen 127.0.0.1:${PORT_B1};
        location / { return 200 "b1\n"; }
    }

    server {
        listen 127.0.0.1:${PORT_B2};
        location / { return 200 "b2\n"; }
    }

    server {
        listen 127.0.0.1:${PORT_FRONT};
        location / {
            proxy_pass http://socketio_backends;
            proxy_next_upstream off;
        }
    }
}
EOF

NGINX_ARGS=(-p "${TMP}/" -c "${TMP}/nginx.conf" -e "${TMP}/error.log")

log "nginx -t"
if ! "${NGINX_BIN}" -t "${NGINX_ARGS[@]}" >"${TMP}/nginx-t.out" 2>&1; then
    cat "${TMP}/nginx-t.out" >&2
    show_log
    die "nginx -t failed for nginx ${NGINX_VERSION}"
fi
cat "${TMP}/nginx-t.out" >&2

log "starting nginx (backends 127.0.0.1:${PORT_B1} and :${PORT_B2}, front 127.0.0.1:${PORT_FRONT})"
"${NGINX_BIN}" "${NGINX_ARGS[@]}" >>"${TMP}/nginx.out" 2>&1 &
NGINX_PID=$!

CURL=(curl -sS --noproxy '*' --max-time 5)
ready=0
for _ in $(seq 1 100); do
    if ! kill -0 "${NGINX_PID}" 2>/dev/null; then
        wait "${NGINX_PID}" 2>/dev/null || true
        NGINX_PID=""
        cat "${TMP}/nginx.out" >&2 || true
        show_log
        die "nginx exited during startup"
    fi
    if [[ "$("${CURL[@]}" "http://127.0.0.1:${PORT_B1}/" 2>/dev/null || true)" == b1 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ ${ready} -eq 1 ]] || { show_log; die "nginx did not become ready"; }

log "sending 2 x ${IDS} requests with ?device_id=<n>"
failures=0 n_b1=0 n_b2=0
for id in $(seq 1 "${IDS}"); do
    url="http://127.0.0.1:${PORT_FRONT}/?device_id=${id}"
    first="$("${CURL[@]}" --fail "${url}" 2>&1)" || first="ERROR(${first})"
    second="$("${CURL[@]}" --fail "${url}" 2>&1)" || second="ERROR(${second})"
    if [[ "${first}" != b1 && "${first}" != b2 ]] || [[ "${second}" != "${first}" ]]; then
        echo "device_id=${id}: first='${first}' second='${second}'" >&2
        failures=$((failures + 1))
        continue
    fi
    if [[ "${first}" == b1 ]]; then n_b1=$((n_b1 + 1)); else n_b2=$((n_b2 + 1)); fi
done

echo "nginx version tested: ${NGINX_VERSION} (${NGINX_BIN})"
echo "device ids: ${IDS}; sticky on b1: ${n_b1}; sticky on b2: ${n_b2}; failed: ${failures}"
if [[ ${failures} -eq 0 && ${n_b1} -gt 0 && ${n_b2} -gt 0 ]]; then
    echo "PASS"
    exit 0
fi
[[ ${failures} -eq 0 ]] || echo "some device ids did not get the same backend twice (or got an error)" >&2
[[ ${n_b1} -gt 0 && ${n_b2} -gt 0 ]] || echo "not both backends were used" >&2
show_log
echo "FAIL"
exit 1
