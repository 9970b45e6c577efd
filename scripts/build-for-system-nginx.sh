#!/usr/bin/env bash
# Build ngx_http_upstream_socketio_sticky_module.so for the nginx installed on
# this machine (Debian/Ubuntu packages `nginx` + `nginx-dev`).
#
# The module is compiled against a private, configured copy of Debian's
# nginx-dev source tree (/usr/share/nginx/src), configured with the same flags
# Debian used for the packaged binary (conf_flags), so the module's
# NGX_MODULE_SIGNATURE matches the binary and `load_module` accepts it.
#
# Everything is built under <repo>/target/nginx-<version>/ (its own
# CARGO_TARGET_DIR), so the vendored build in target/release is never touched.
set -euo pipefail

MODULE_NAME=ngx_http_upstream_socketio_sticky_module
MODULE_FILE="${MODULE_NAME}.so"
CARGO_ARTIFACT="lib${MODULE_NAME}.so"
DEFAULT_NGINX_SRC=/usr/share/nginx/src
BUILD_DEPS=(libclang-dev libpcre2-dev libssl-dev zlib1g-dev)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"

usage() {
    cat <<EOF
Usage: $(basename "$0") [--install] [--nginx PATH] [--out DIR] [--help]

Builds ${MODULE_FILE} for the system nginx, using Debian's nginx-dev source
tree (${DEFAULT_NGINX_SRC}) configured with Debian's conf_flags.

Options:
  --install      also install the module into nginx's modules directory
                 (--modules-path from 'nginx -V'; Debian: /usr/lib/nginx/modules)
                 and print the load_module line to use
  --nginx PATH   nginx binary to build for (default: \$NGINX_BIN or /usr/sbin/nginx)
  --out DIR      where to put ${MODULE_FILE}
                 (default: <repo>/target/nginx-<version>)
  -h, --help     show this help

Environment:
  NGINX_BIN      nginx binary (same as --nginx)
  NGINX_DEV_SRC  nginx-dev source tree (default: ${DEFAULT_NGINX_SRC})
  BUILD_ROOT     where the build trees go (default: <repo>/target): nginx-<version>/ in it

If nginx-dev or the build dependencies (${BUILD_DEPS[*]}) are missing
and the script runs as root on Debian/Ubuntu, they are installed with apt-get.
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- options ---
INSTALL=0
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
OUT_DIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --nginx)
            [[ $# -ge 2 ]] || die "--nginx needs a PATH argument"
            NGINX_BIN="$2"; shift ;;
        --nginx=*) NGINX_BIN="${1#--nginx=}" ;;
        --out)
            [[ $# -ge 2 ]] || die "--out needs a DIR argument"
            OUT_DIR="$2"; shift ;;
        --out=*) OUT_DIR="${1#--out=}" ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
NGINX_SRC="${NGINX_DEV_SRC:-${DEFAULT_NGINX_SRC}}"

is_root() { [[ "$(id -u)" -eq 0 ]]; }
have_apt() { command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; }
pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

APT_UPDATED=0
apt_update_once() {
    [[ ${APT_UPDATED} -eq 0 ]] || return 0
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
}
apt_install() {
    # apt_install PKG[=VERSION]... ; runs `apt-get update` first if apt does not know one of them
    local p
    for p in "$@"; do
        # (apt-cache show exits 0 for an unknown PKG=VERSION, so look at its output)
        [[ "$(apt-cache show "$p" 2>/dev/null || true)" == *"Package:"* ]] || { apt_update_once; break; }
    done
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" && return 0
    [[ ${APT_UPDATED} -eq 0 ]] || return 1
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# ------------------------------------------------------- 1. system nginx ---
if [[ "${NGINX_BIN}" != */* ]]; then
    NGINX_BIN="$(command -v "${NGINX_BIN}" || true)"
fi
[[ -n "${NGINX_BIN}" && -x "${NGINX_BIN}" ]] \
    || die "nginx binary not found (looked for '${NGINX_BIN:-nginx}'). Install it (Debian/Ubuntu: apt-get install nginx nginx-dev) or pass --nginx PATH / set NGINX_BIN."

NGINX_V="$("${NGINX_BIN}" -V 2>&1)" || die "'${NGINX_BIN} -V' failed: ${NGINX_V}"
NGINX_VERSION="$("${NGINX_BIN}" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([0-9][0-9.]*\).*|\1|p' | head -n1)"
[[ -n "${NGINX_VERSION}" ]] || die "could not parse the version from '${NGINX_BIN} -v'"
log "system nginx: ${NGINX_BIN} (version ${NGINX_VERSION})"

# The package owning the binary (Debian), used to pin nginx-dev to its version.
NGINX_PKG="" NGINX_PKG_VERSION=""
if command -v dpkg-query >/dev/null 2>&1; then
    NGINX_PKG="$(dpkg-query -S "$(readlink -f "${NGINX_BIN}")" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
    if [[ -z "${NGINX_PKG}" ]]; then
        # usrmerge: dpkg may know the file under its unmerged path
        NGINX_PKG="$(dpkg-query -S "${NGINX_BIN}" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
    fi
    if [[ -n "${NGINX_PKG}" ]]; then
        NGINX_PKG_VERSION="$(dpkg-query -W -f='${Version}' "${NGINX_PKG}" 2>/dev/null || true)"
    fi
fi

# ------------------------------------------------ nginx-dev + build deps ---
missing_deps=()
if have_apt; then
    for p in "${BUILD_DEPS[@]}"; do
        pkg_installed "$p" || missing_deps+=("$p")
    done
fi
command -v cc >/dev/null 2>&1 || missing_deps+=(gcc libc6-dev)

if [[ ! -f "${NGINX_SRC}/conf_flags" || ! -x "${NGINX_SRC}/configure" ]]; then
    if [[ "${NGINX_SRC}" == "${DEFAULT_NGINX_SRC}" ]] && is_root && have_apt; then
        dev_pkg=nginx-dev
        # Pin nginx-dev to the installed nginx so apt never upgrades nginx itself.
        if [[ -n "${NGINX_PKG_VERSION}" ]]; then dev_pkg="nginx-dev=${NGINX_PKG_VERSION}"; fi
        apt_install "${dev_pkg}" "${missing_deps[@]}" \
            || die "could not install ${dev_pkg}; the nginx-dev matching your nginx (${NGINX_PKG_VERSION:-${NGINX_VERSION}}) may no longer be in the archive - upgrade nginx (apt-get install nginx nginx-dev) and retry"
        missing_deps=()
    fi
    [[ -f "${NGINX_SRC}/conf_flags" && -x "${NGINX_SRC}/configure" ]] \
        || die "nginx-dev source tree not found at ${NGINX_SRC} (need ${NGINX_SRC}/configure and ${NGINX_SRC}/conf_flags). Install it as root: apt-get install nginx-dev ${BUILD_DEPS[*]}"
fi
if [[ ${#missing_deps[@]} -gt 0 ]]; then
    if is_root && have_apt; then
        apt_install "${missing_deps[@]}"
    else
        die "missing build dependencies: ${missing_deps[*]}. Install them as root: apt-get install ${missing_deps[*]}"
    fi
fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]]; then
    PATH="${HOME}/.cargo/bin:${PATH}"
fi
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. Install a Rust toolchain (rust-version >= $(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "${REPO_ROOT}/Cargo.toml" | head -n1)), e.g. via https://rustup.rs"

# nginx-dev must be the sources of exactly this nginx.
DEV_VERSION="$(sed -n 's/^#define NGINX_VERSION *"\([^"]*\)".*/\1/p' "${NGINX_SRC}/src/core/nginx.h" 2>/dev/null | head -n1)"
[[ -n "${DEV_VERSION}" ]] || die "could not read NGINX_VERSION from ${NGINX_SRC}/src/core/nginx.h"
if [[ "${DEV_VERSION}" != "${NGINX_VERSION}" ]]; then
    die "version mismatch: ${NGINX_BIN} is nginx ${NGINX_VERSION} but ${NGINX_SRC} holds nginx ${DEV_VERSION}. Install the nginx-dev matching your nginx (apt-get install nginx nginx-dev brings both to the same version) or point --nginx at the matching binary."
fi
# Debian also versions the module ABI (patches, build deps): compare it when both sides say.
DEV_ABI="$(sed -n 's/^nginx:abi=//p' "${NGINX_SRC}/debian/libnginx-mod.abisubstvars" 2>/dev/null | head -n1 || true)"
if [[ -n "${DEV_ABI}" && -n "${NGINX_PKG}" ]]; then
    BIN_ABI="$(dpkg-query -W -f='${Provides}' "${NGINX_PKG}" 2>/dev/null | tr ',' '\n' | sed -n 's/^ *\(nginx-abi-[^ ]*\).*/\1/p' | head -n1 || true)"
    if [[ -n "${BIN_ABI}" && "${BIN_ABI}" != "${DEV_ABI}" ]]; then
        die "ABI mismatch: package ${NGINX_PKG} provides ${BIN_ABI} but ${NGINX_SRC} is for ${DEV_ABI}. Install matching nginx and nginx-dev packages."
    fi
fi
log "nginx-dev source: ${NGINX_SRC} (version ${DEV_VERSION}${DEV_ABI:+, ${DEV_ABI}})"

# ------------------------------------------ 2. configured copy of the tree ---
BUILD_DIR="${BUILD_ROOT:-${REPO_ROOT}/target}/nginx-${NGINX_VERSION}"
SRC_COPY="${BUILD_DIR}/src"
OBJS_DIR="${BUILD_DIR}/objs"
STAMP="${OBJS_DIR}/.socketio-sticky-configure-stamp"

# shellcheck disable=SC1091
NGX_CONF_FLAGS=()
source "${NGINX_SRC}/conf_flags"
[[ ${#NGX_CONF_FLAGS[@]} -gt 0 ]] || die "${NGINX_SRC}/conf_flags did not define NGX_CONF_FLAGS"

# Identity of what we configure: nginx version, flags, and the content of the source tree.
tree_sum="$(cd "${NGINX_SRC}" && find . -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 cksum | cksum)"
stamp_content="$(printf 'version=%s\nbuilddir=%s\nsource=%s\nflags=%s\n' \
    "${NGINX_VERSION}" "${OBJS_DIR}" "${tree_sum}" "${NGX_CONF_FLAGS[*]}")"

if [[ -f "${STAMP}" && -f "${OBJS_DIR}/ngx_auto_config.h" && -f "${OBJS_DIR}/Makefile" \
      && -f "${SRC_COPY}/src/core/nginx.h" && "$(cat "${STAMP}")" == "${stamp_content}" ]]; then
    log "reusing configured nginx tree in ${BUILD_DIR}"
else
    log "configuring nginx ${NGINX_VERSION} in ${BUILD_DIR}"
    mkdir -p "${BUILD_DIR}"
    rm -rf "${SRC_COPY}" "${OBJS_DIR}"
    cp -R "${NGINX_SRC}" "${SRC_COPY}"
    chmod -R u+w "${SRC_COPY}"
    if ! (cd "${SRC_COPY}" && ./configure "${NGX_CONF_FLAGS[@]}" --builddir="${OBJS_DIR}") \
            >"${BUILD_DIR}/configure.log" 2>&1; then
        tail -n 30 "${BUILD_DIR}/configure.log" >&2 || true
        [[ -f "${OBJS_DIR}/autoconf.err" ]] && { echo "--- tail of ${OBJS_DIR}/autoconf.err:" >&2; tail -n 30 "${OBJS_DIR}/autoconf.err" >&2; }
        die "nginx ./configure failed (full log: ${BUILD_DIR}/configure.log). Missing -dev packages? Try: apt-get install ${BUILD_DEPS[*]}"
    fi
    [[ -f "${OBJS_DIR}/ngx_auto_config.h" && -f "${OBJS_DIR}/Makefile" ]] \
        || die "./configure did not produce ${OBJS_DIR}/ngx_auto_config.h and Makefile (see ${BUILD_DIR}/configure.log)"
    printf '%s' "${stamp_content}" >"${STAMP}"
fi

# Sanity check: the module signature of the configured tree must match the one
# embedded in the binary, otherwise nginx refuses the module ("is not binary compatible").
sig_c="${BUILD_DIR}/signature.c"
cat >"${sig_c}" <<'EOF'
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
NGX_RS_SIGNATURE_BEGIN NGX_MODULE_SIGNATURE NGX_RS_SIGNATURE_END
EOF
mapfile -t incs < <(sed -n '/^ALL_INCS *=/,/^$/p' "${OBJS_DIR}/Makefile" \
    | tr -d '\\' | tr ' \t' '\n\n' | grep -v -e '^$' -e '^-I$' -e '^ALL_INCS' -e '^=$' | sed 's/^-I//')
inc_args=()
for i in "${incs[@]}"; do
    if [[ "$i" == /* ]]; then inc_args+=("-I$i"); else inc_args+=("-I${SRC_COPY}/$i"); fi
done
TREE_SIG="$(cc -E -P "${inc_args[@]}" "${sig_c}" 2>/dev/null \
    | sed -n 's/.*NGX_RS_SIGNATURE_BEGIN\(.*\)NGX_RS_SIGNATURE_END.*/\1/p' | tr -d '" \t')" || TREE_SIG=""
# A wrapper (scripts/fetch-debian-nginx.sh) names the binary it runs on a `# binary:` line.
SIG_FILE="$(readlink -f "${NGINX_BIN}")"
wrapped="$(sed -n '2,5s/^# binary: //p' "${SIG_FILE}" 2>/dev/null | head -n1 || true)"
[[ -n "${wrapped}" && -f "${wrapped}" ]] && SIG_FILE="${wrapped}"
BIN_SIG="$(LC_ALL=C grep -aoE '[0-9]+,[0-9]+,[0-9]+,[01]{20,}' "${SIG_FILE}" | head -n1 || true)"
if [[ -n "${TREE_SIG}" && -n "${BIN_SIG}" ]]; then
    [[ "${TREE_SIG}" == "${BIN_SIG}" ]] \
        || die "module signature mismatch: ${NGINX_BIN} has '${BIN_SIG}' but the tree configured with ${NGINX_SRC}/conf_flags gives '${TREE_SIG}'; a module built from it would not load"
    log "module signature matches the binary: ${BIN_SIG}"
else
    warn "could not compare module signatures (tree: '${TREE_SIG}', binary: '${BIN_SIG}'); continuing"
fi

# ------------------------------------------------------------- 3. cargo ---
log "cargo build --release (CARGO_TARGET_DIR=${BUILD_DIR})"
start=${SECONDS}
NGINX_SOURCE_DIR="${SRC_COPY}" \
NGINX_BUILD_DIR="${OBJS_DIR}" \
CARGO_TARGET_DIR="${BUILD_DIR}" \
    cargo build --release --manifest-path "${REPO_ROOT}/Cargo.toml"
log "cargo build finished in $((SECONDS - start))s"

ARTIFACT="${BUILD_DIR}/release/${CARGO_ARTIFACT}"
[[ -f "${ARTIFACT}" ]] || die "cargo did not produce ${ARTIFACT}"

# -------------------------------------------------------- 4. output/install ---
OUT_DIR="${OUT_DIR:-${BUILD_DIR}}"
mkdir -p "${OUT_DIR}"
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"
cp -f "${ARTIFACT}" "${OUT_DIR}/${MODULE_FILE}.tmp"
mv -f "${OUT_DIR}/${MODULE_FILE}.tmp" "${OUT_DIR}/${MODULE_FILE}"
log "built ${OUT_DIR}/${MODULE_FILE} for nginx ${NGINX_VERSION}"

if [[ ${INSTALL} -eq 1 ]]; then
    MODULES_DIR="$(printf '%s\n' "${NGINX_V}" | tr ' ' '\n' | sed -n "s/^'\{0,1\}--modules-path=\(.*\)/\1/p" | tr -d "'" | head -n1)"
    if [[ -z "${MODULES_DIR}" ]]; then
        prefix="$(printf '%s\n' "${NGINX_V}" | tr ' ' '\n' | sed -n "s/^'\{0,1\}--prefix=\(.*\)/\1/p" | tr -d "'" | head -n1)"
        MODULES_DIR="${prefix:-/usr/local/nginx}/modules"
    fi
    mkdir -p "${MODULES_DIR}" || die "cannot create ${MODULES_DIR} (run as root?)"
    [[ -w "${MODULES_DIR}" ]] || die "${MODULES_DIR} is not writable (run as root?)"
    # Write next to the target and rename, so a running nginx never sees a half-written file.
    install -m 0644 "${OUT_DIR}/${MODULE_FILE}" "${MODULES_DIR}/.${MODULE_FILE}.new"
    mv -f "${MODULES_DIR}/.${MODULE_FILE}.new" "${MODULES_DIR}/${MODULE_FILE}"
    log "installed ${MODULES_DIR}/${MODULE_FILE}"
    echo
    echo "Add this to the main (top-level) context of nginx.conf:"
    echo "    load_module ${MODULES_DIR}/${MODULE_FILE};"
    if [[ -d /etc/nginx/modules-enabled ]]; then
        echo "(Debian: e.g. put it in /etc/nginx/modules-enabled/50-mod-http-upstream-socketio-sticky.conf)"
    fi
    echo "then check with: ${NGINX_BIN} -t"
else
    echo
    echo "load_module ${OUT_DIR}/${MODULE_FILE};"
fi
