#!/usr/bin/env bash
# Builds the Debian package libnginx-mod-http-socketio-sticky for the system's nginx (Debian or
# Ubuntu packages `nginx` and `nginx-dev`) from this source tree, with debian/ and
# dpkg-buildpackage: the module built against nginx-dev's tree configured with Debian's flags,
# installed as Debian's own module packages are (the .so in /usr/lib/nginx/modules, its
# load_module file in /usr/share/nginx/modules-available, enabled by a link in
# /etc/nginx/modules-enabled made on install and taken away on removal, nginx's reload trigger),
# depending on the nginx-abi the system's nginx provides. Installs the Debian packages it needs
# when run as root (cargo must be there: Debian 12's is too old; rustup's is fine).
#
#   scripts/build-deb.sh [--out DIR] [--lintian]
#
# --out DIR   where the .deb, its debug symbols package, .buildinfo and .changes go (default:
#             target/deb); the build itself runs in a copy of the tree under DIR/build
# --lintian   also run lintian on the result (installs it) and fail on any error it reports
#
# The last line of the output is the path of the .deb.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

PKG=libnginx-mod-http-socketio-sticky
OUT="$ROOT/target/deb"
LINTIAN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a DIR"; OUT=$2; shift 2 ;;
        --lintian) LINTIAN=1; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

command -v dpkg-query >/dev/null || die "not a Debian or Ubuntu system (no dpkg)"
need_debs dpkg-dev debhelper nginx nginx-dev "${BUILD_DEBS[@]}"
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs; Debian 12's cargo is too old)"

# One version for the crate and the package.
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$version" = "$crate_version" ] ||
    die "debian/changelog says $version, Cargo.toml $crate_version: give both the same version"

# dpkg-buildpackage writes next to the source tree and into debian/: it builds a copy of the
# tree (without build products), and the build trees stay in target/deb-build (BUILD_ROOT),
# where the cargo and nginx builds of earlier runs are reused (a tree of its own: the package
# is built with debug information, for its -dbgsym package).
work="$OUT/build"
src="$work/$PKG-$version"
rm -rf "$work"
mkdir -p "$src"
tar -C "$ROOT" --exclude=./target --exclude=./.git --exclude=./fuzz/target \
    --exclude=./fuzz/corpus --exclude=./fuzz/artifacts --exclude=node_modules \
    --exclude='./t/servroot*' -cf - . |
    tar -C "$src" -xf -
say "dpkg-buildpackage in $src"
(cd "$src" && BUILD_ROOT="$ROOT/target/deb-build" dpkg-buildpackage -us -uc -b) >&2 ||
    die "dpkg-buildpackage failed"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
for f in "$work/${PKG}_${version}_$arch.deb" "$work/${PKG}-dbgsym_${version}_$arch."*deb \
         "$work/${PKG}_${version}_$arch.buildinfo" "$work/${PKG}_${version}_$arch.changes"; do
    [ -e "$f" ] && mv -f "$f" "$OUT/"
done
deb="$OUT/${PKG}_${version}_$arch.deb"
[ -f "$deb" ] || die "no $deb after the build"
rm -rf "$work"
say "$(dpkg-deb -f "$deb" Package Version Depends | tr '\n' ' ')"
dpkg-deb -c "$deb" >&2

if [ "$LINTIAN" = 1 ]; then
    need_debs lintian
    say "lintian $OUT/${PKG}_${version}_$arch.changes"
    # (its tags, all of them, for the log; errors fail the build)
    lintian --fail-on error --display-info "$OUT/${PKG}_${version}_$arch.changes" >&2 ||
        die "lintian reports errors"
fi
echo "$deb"
