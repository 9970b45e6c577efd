#!/usr/bin/env bash
# Runs every test, stage after stage, each with its time: formatting and lints, the pure-logic
# unit tests, the examples under `nginx -t`, the Test::Nginx suite on nginx 1.28 (vendored), the
# end-to-end tests with real Socket.IO (one node, two nodes, faults), the benchmark harness in
# its smoke modes, a handshake flood (bench/flood --quick), t/ files under valgrind memcheck,
# every fuzz target for 30 s, a --with-compat build loaded into another --with-compat nginx,
# the t/ suite on the real nginx of Debian 13 (1.26) and Debian unstable (1.30) with real
# Socket.IO and `drain` on 1.30, the build for the system's own nginx (Debian 1.22) with a
# smoke test and the suite, and (as root) its Debian package installed into it, with real
# Socket.IO, then removed. Installs what it needs (Debian packages, crates, npm and PyPI
# packages) when run as root; otherwise names the missing Debian packages.
# SKIP_DEBIAN_NGINX=1 skips the Debian 13/unstable part, SKIP_SYSTEM_NGINX=1 the system nginx
# part.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

passed=0
failed=0
failed_names=()
stage() {
    local name=$1; shift
    local t0=$SECONDS
    say "$name"
    if "$@"; then
        passed=$((passed + 1))
        say "$name: passed in $((SECONDS - t0)) s"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        printf 'FAILED: %s (after %d s)\n' "$name" $((SECONDS - t0)) >&2
    fi
}

need_debs "${BUILD_DEBS[@]}" curl python3 python3-venv \
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
stage "e2e fleet: nginx nodes, route=, cookie= and sid_prefix" t/e2e/fleet
# Faults: a backend killed under load and restarted, reloads every second, a zone too small.
stage "e2e faults (quick)" t/e2e/faults --quick
# The status endpoint: a real Prometheus scrapes it during real Socket.IO sessions, headless
# Chromium renders its page (installs prometheus and chromium when missing).
stage "e2e status: Prometheus scrapes it, Chromium renders its page" t/e2e/status

# The benchmark harness in its fast mode (no valgrind, no timing): every row still behaves.
stage "bench/callgrind --quick" env BENCH_NO_BUILD=1 bench/callgrind --quick
stage "bench/throughput --quick" env BENCH_NO_BUILD=1 bench/throughput --quick
stage "bench/e2e-scale --quick" env BENCH_NO_BUILD=1 bench/e2e-scale --quick
stage "bench/flood --quick: live sessions through a handshake flood" env BENCH_NO_BUILD=1 bench/flood --quick
# The t/ files of learning, routing and faults with nginx under valgrind memcheck.
stage "memcheck: t/004, 006, 008, 009, 015, 016 under valgrind" scripts/memcheck.sh -j 2
# Every fuzz target for 30 s (cargo-fuzz on stable Rust, AddressSanitizer); fuzz/README.md.
fuzz_all() {
    cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet || return 1
    fuzz/run-all 30 2
}
stage "fuzz: every target for 30 s" fuzz_all
# The chart needs matplotlib: Debian's python3-matplotlib, for Debian's python3.
py_mpl=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    need_debs python3-matplotlib
    py_mpl=/usr/bin/python3
fi
stage "bench/report.py --self-test" "$py_mpl" bench/report.py --self-test

# nginx.org-style packages: a module built against the same version's source configured with
# --with-compat alone loads into an nginx built with other options and --with-compat.
stage "a --with-compat build loads into another --with-compat nginx" scripts/check-compat-build.sh

# The nginx of Debian 13 (trixie, 1.26) and of Debian unstable (sid, 1.30): their real binaries,
# fetched with apt (not installed) and run through their own suite's loader, with the module
# built against their nginx-dev trees; the t/ suite on each, and real Socket.IO on 1.30.
debian_nginx() { # debian_nginx SUITE: fetch, build; sets DEB_NGINX, DEB_MODULE, DEB_VERSION
    local dir="$ROOT/target/debian-nginx/$1"
    scripts/fetch-debian-nginx.sh "$1" "$dir" >&2 || return 1
    DEB_NGINX="$dir/nginx"
    DEB_VERSION=$("$DEB_NGINX" -v 2>&1 | sed 's|.*/||')
    NGINX_DEV_SRC="$dir/extracted/usr/share/nginx/src" \
        scripts/build-for-system-nginx.sh --nginx "$DEB_NGINX" >&2 || return 1
    DEB_MODULE="$ROOT/target/nginx-$DEB_VERSION/$MODULE_SO_NAME"
}
if [ "${SKIP_DEBIAN_NGINX:-}" != 1 ] && command -v apt-get >/dev/null; then
    need_debs dpkg-dev
    for suite in trixie sid; do
        DEB_NGINX="" DEB_MODULE=""
        stage "fetch and build for Debian $suite's nginx" debian_nginx "$suite"
        [ -n "$DEB_MODULE" ] || continue
        stage "t/ suite, Debian $suite nginx $DEB_VERSION" run_suite "$DEB_NGINX" "$DEB_MODULE"
        if [ "$suite" = sid ]; then
            stage "e2e: socket.io 4 through nginx $DEB_VERSION" \
                env TEST_NGINX_BINARY="$DEB_NGINX" TEST_NGINX_LOAD_MODULES="$DEB_MODULE" t/e2e/run
            stage "e2e faults: drain on nginx $DEB_VERSION" \
                env TEST_NGINX_BINARY="$DEB_NGINX" TEST_NGINX_LOAD_MODULES="$DEB_MODULE" \
                t/e2e/faults --quick --scenarios drain
        fi
    done
fi

# The system's nginx (Debian/Ubuntu package `nginx`), built with `nginx-dev`'s source tree.
if [ "${SKIP_SYSTEM_NGINX:-}" != 1 ] && command -v dpkg-query >/dev/null; then
    need_debs nginx nginx-dev
    stage "build for the system nginx" scripts/build-for-system-nginx.sh
    SYS_VERSION=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')
    SYS_MODULE="$ROOT/target/nginx-$SYS_VERSION/$MODULE_SO_NAME"
    stage "smoke test in the system nginx" scripts/smoke-system-nginx.sh --module "$SYS_MODULE"
    stage "t/ suite, system nginx $SYS_VERSION" \
        run_suite /usr/sbin/nginx "$SYS_MODULE"
    # The Debian package: built (lintian), installed into the system nginx, real Socket.IO
    # through it, removed and purged. It installs a package: as root, and not where the
    # package is installed already.
    if [ "$(id -u)" != 0 ]; then
        say "skipped: the Debian package test (t/e2e/deb) installs a package and needs root"
    elif dpkg-query -W -f='${Status}' libnginx-mod-http-socketio-sticky 2>/dev/null |
            grep -q "ok installed"; then
        say "skipped: the Debian package test (t/e2e/deb): the package is installed on this machine"
    else
        stage "Debian package: build, lintian, install, Socket.IO through the system nginx, remove" \
            t/e2e/deb
    fi
fi

if [ "$failed" -gt 0 ]; then
    printf 'failed stages: %s\n' "${failed_names[*]}" >&2
fi
echo "stages: $passed passed, $failed failed ($SECONDS s)"
[ "$failed" -eq 0 ]
