#!/usr/bin/env bash
# Proves README's recipe for nginx binaries built elsewhere with `--with-compat` (nginx.org's
# packages, for example): a module built against the same version's source configured with
# `--with-compat` alone loads into an nginx of that version that was configured with other
# options plus `--with-compat`.
#
#   scripts/check-compat-build.sh
#
# Uses the nginx 1.28 source that the vendored build already fetched (the `nginx-src` crate);
# works under target/compat-check/. Builds one nginx binary (the "packaged" one, with many
# modules and --with-compat), configures a second tree with `--with-compat` only, builds the
# module against that tree, and checks that `nginx -t` of the packaged binary loads it and
# accepts an upstream with socketio_sticky. The last line is "compat build: PASS" or an error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_debs "${BUILD_DEBS[@]}"
command -v cargo >/dev/null || die "cargo not found (install a Rust toolchain)"
# The source the vendored build unpacked (cargo build --release --features vendored).
cargo fetch --quiet >&2
SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/nginx-src-*/nginx 2>/dev/null | sort | tail -n 1)
[ -n "$SRC" ] && [ -x "$SRC/auto/configure" ] || die "no nginx source of the nginx-src crate found"
VERSION=$(sed -n 's/^#define NGINX_VERSION *"\([^"]*\)".*/\1/p' "$SRC/src/core/nginx.h")

DIR="$ROOT/target/compat-check"
rm -rf "$DIR"
mkdir -p "$DIR"
cp -R "$SRC" "$DIR/src"
chmod -R u+w "$DIR/src"

# 1. The "packaged" nginx: other options than the module's tree, plus --with-compat.
say "configure and build nginx $VERSION with packaging options and --with-compat"
(cd "$DIR/src" && auto/configure --with-compat --prefix="$DIR/pkg" --builddir="$DIR/objs-pkg" \
    --with-threads --with-file-aio --with-http_ssl_module --with-http_v2_module \
    --with-http_realip_module --with-http_addition_module --with-http_sub_module \
    --with-http_gunzip_module --with-http_gzip_static_module --with-http_secure_link_module \
    --with-http_stub_status_module --with-http_auth_request_module --with-stream \
    --with-stream_ssl_module --with-stream_realip_module) >"$DIR/configure-pkg.log" 2>&1 \
    || { tail -n 20 "$DIR/configure-pkg.log" >&2; die "configure of the packaged nginx failed"; }
make -C "$DIR/src" -f "$DIR/objs-pkg/Makefile" -j"$(nproc)" >"$DIR/make-pkg.log" 2>&1 \
    || { tail -n 20 "$DIR/make-pkg.log" >&2; die "build of the packaged nginx failed"; }
NGINX="$DIR/objs-pkg/nginx"

# 2. The module's tree: the same version's source with --with-compat alone.
say "configure nginx $VERSION with --with-compat only and build the module against it"
(cd "$DIR/src" && auto/configure --with-compat --builddir="$DIR/objs-mod") \
    >"$DIR/configure-mod.log" 2>&1 \
    || { tail -n 20 "$DIR/configure-mod.log" >&2; die "configure of the module's tree failed"; }
NGINX_SOURCE_DIR="$DIR/src" NGINX_BUILD_DIR="$DIR/objs-mod" CARGO_TARGET_DIR="$DIR/target" \
    cargo build --release --quiet >&2
MODULE="$DIR/target/release/lib$MODULE_SO_NAME"

# 3. The packaged nginx loads it.
mkdir -p "$DIR/t/logs"
cat >"$DIR/t/nginx.conf" <<EOF
load_module $MODULE;
error_log $DIR/t/logs/error.log;
pid $DIR/t/logs/nginx.pid;
events {}
http {
    upstream chat {
        socketio_sticky zone=compat:1m;
        server 127.0.0.1:3000;
        server 127.0.0.1:3001;
    }
    server {
        listen 127.0.0.1:1;
        location / { proxy_pass http://chat; }
    }
}
EOF
"$NGINX" -V 2>&1 | sed -n 's/^configure arguments: /packaged nginx: /p' >&2
"$NGINX" -t -p "$DIR/t" -c "$DIR/t/nginx.conf" -e "$DIR/t/logs/error.log" \
    || die "the packaged nginx does not accept the module built with --with-compat"

# 4. Without --with-compat, the same module source does not load: the check can fail.
say "the module built against a tree without --with-compat must be refused"
(cd "$DIR/src" && auto/configure --builddir="$DIR/objs-plain") >"$DIR/configure-plain.log" 2>&1 \
    || { tail -n 20 "$DIR/configure-plain.log" >&2; die "configure without --with-compat failed"; }
NGINX_SOURCE_DIR="$DIR/src" NGINX_BUILD_DIR="$DIR/objs-plain" CARGO_TARGET_DIR="$DIR/target-plain" \
    cargo build --release --quiet >&2
sed -i "s|^load_module .*|load_module $DIR/target-plain/release/lib$MODULE_SO_NAME;|" "$DIR/t/nginx.conf"
if "$NGINX" -t -p "$DIR/t" -c "$DIR/t/nginx.conf" -e "$DIR/t/logs/error.log" 2>"$DIR/t/plain.err"; then
    die "the packaged nginx accepted a module built without --with-compat"
fi
grep -q "is not binary compatible" "$DIR/t/plain.err" \
    || { cat "$DIR/t/plain.err" >&2; die "unexpected refusal of the module built without --with-compat"; }
echo "compat build: PASS (nginx $VERSION)"
