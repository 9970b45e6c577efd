#!/usr/bin/env bash
# Runs every test: formatting and lints, the pure-logic unit tests, the Test::Nginx suite with
# nginx 1.28 (vendored), the end-to-end tests with real Socket.IO servers and clients (t/e2e/run,
# and t/e2e/fleet with two nginx nodes),
# and the build for the system's own nginx (Debian 1.22) with the same suite and a smoke test
# against it. Installs missing Debian packages when run as root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

passed=0
failed=0
failed_names=()
stage() {
    local name=$1; shift
    say "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        printf 'FAILED: %s\n' "$name" >&2
    fi
}

need_debs "${BUILD_DEBS[@]}" curl python3 \
    libtest-base-perl libipc-run-perl libtext-diff-perl libtest-longstring-perl \
    liblist-moreutils-perl libwww-perl

stage "cargo fmt --check" cargo fmt --all -- --check
stage "cargo clippy -D warnings" \
    cargo clippy --release --features vendored --all-targets -- -D warnings
stage "cargo build (nginx 1.28, vendored)" cargo build --release --features vendored
stage "cargo test (pure logic)" cargo test --release --features vendored

NGINX_128=$(vendored_nginx)
MODULE_128=$(vendored_module)

run_suite() { # run_suite NGINX MODULE
    TEST_NGINX_BINARY=$1 TEST_NGINX_LOAD_MODULES=$2 t/prove -r t
}

check_examples() { # every nginx-conf/*.conf passes `nginx -t` with the module
    local f d rc=0
    for f in nginx-conf/*.conf; do
        d=$(mktemp -d)
        mkdir -p "$d/logs"
        sed -e "s|load_module modules/$MODULE_SO_NAME|load_module $MODULE_128|" \
            -e "s|listen [0-9]*;|listen 127.0.0.1:1;|" -e "s|/var/log/nginx/|$d/logs/|" \
            -e "s|/run/nginx/|$d/|" \
            "$f" > "$d/nginx.conf"
        "$NGINX_128" -t -q -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" || { echo "$f" >&2; rc=1; }
        rm -rf "$d"
    done
    return $rc
}
stage "nginx-conf examples pass nginx -t" check_examples

if ! perl -MTest::Nginx::Socket -e1 2>/dev/null; then
    stage "Test::Nginx compatible runner self-test" env TEST_NGINX_BINARY="$NGINX_128" t/compat/selftest/run
fi
stage "t/ suite, nginx $("$NGINX_128" -v 2>&1 | sed 's|.*/||')" run_suite "$NGINX_128" "$MODULE_128"

# Real Socket.IO 4 servers and clients through the module and through round robin (t/e2e).
stage "e2e: socket.io 4 through nginx $("$NGINX_128" -v 2>&1 | sed 's|.*/||')" t/e2e/run
# Two nginx nodes with one configuration behind a TCP round robin: route labels, route cookie.
stage "e2e fleet: two nginx nodes, route= and cookie=" t/e2e/fleet
# Faults: a backend killed under load and restarted, reloads every second, a zone too small.
stage "e2e faults (quick)" t/e2e/faults --quick

# The benchmark harness in its fast mode (no valgrind, no timing): every row still behaves.
stage "bench/callgrind --quick" env BENCH_NO_BUILD=1 bench/callgrind --quick
stage "bench/throughput --quick" env BENCH_NO_BUILD=1 bench/throughput --quick
stage "bench/e2e-scale --quick" env BENCH_NO_BUILD=1 bench/e2e-scale --quick
# The chart needs matplotlib: Debian's python3-matplotlib, for Debian's python3.
py_mpl=python3
python3 -c 'import matplotlib' 2>/dev/null || py_mpl=/usr/bin/python3
stage "bench/report.py --self-test" "$py_mpl" bench/report.py --self-test

# The system's nginx (Debian/Ubuntu package `nginx`), built with `nginx-dev`'s source tree.
if [ "${SKIP_SYSTEM_NGINX:-}" != 1 ] && command -v dpkg-query >/dev/null; then
    need_debs nginx nginx-dev
    stage "build for the system nginx" scripts/build-for-system-nginx.sh
    SYS_VERSION=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')
    SYS_MODULE="$ROOT/target/nginx-$SYS_VERSION/$MODULE_SO_NAME"
    stage "smoke test in the system nginx" scripts/smoke-system-nginx.sh --module "$SYS_MODULE"
    stage "t/ suite, system nginx $SYS_VERSION" \
        run_suite /usr/sbin/nginx "$SYS_MODULE"
fi

if [ "$failed" -gt 0 ]; then
    printf 'failed stages: %s\n' "${failed_names[*]}" >&2
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
