# Shared helpers for the project's scripts (sourced, not run).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULE_SO_NAME=ngx_http_upstream_socketio_sticky_module.so

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# need_debs PKG...: installs the Debian packages that are missing (as root), or says which.
# The services of the packages it installs are not started (Debian's nginx would take port 80,
# prometheus port 9090): a policy-rc.d says no while apt-get runs, unless the machine has one.
need_debs() {
    local missing=() p rc=0 policy=/usr/sbin/policy-rc.d own_policy=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "ok installed" >/dev/null || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        if [ -z "${APT_UPDATED:-}" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
            export APT_UPDATED=1
        fi
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\n# (scripts/lib.sh: no service starts while it installs packages)\nexit 101\n' > "$policy"
            chmod +x "$policy"
            own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2 || rc=$?
        [ -z "$own_policy" ] || rm -f "$policy"
        [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed"
    else
        die "missing Debian packages: ${missing[*]} (apt-get install them, or run as root)"
    fi
}

BUILD_DEBS=(libclang-dev libpcre2-dev libssl-dev zlib1g-dev pkg-config make gcc)

# The nginx binary built by the vendored build (nginx 1.28 from the nginx-src crate).
vendored_nginx() {
    local n
    n=$(ls -t "$ROOT"/target/release/build/nginx-sys-*/out/objs/nginx 2>/dev/null | head -n 1)
    [ -n "$n" ] || die "no vendored nginx binary; run: cargo build --release --features vendored"
    printf '%s\n' "$n"
}

vendored_module() {
    printf '%s\n' "$ROOT/target/release/lib${MODULE_SO_NAME}"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
