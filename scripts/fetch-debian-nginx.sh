#!/usr/bin/env bash
# Fetches the nginx of a Debian suite (Debian 13 "trixie", Debian unstable "sid", ...) onto this
# machine without installing it: the binary packages `nginx` and `nginx-dev` of that suite, and
# the libraries its nginx needs (that suite's libc, OpenSSL, PCRE2, zlib, libcrypt, ...),
# extracted under DIR/extracted; DIR/nginx runs that nginx through the suite's own loader, so it
# runs on an older system (Debian 12) too. DIR/extracted/usr/share/nginx/src is the suite's
# configurable nginx tree, for scripts/build-for-system-nginx.sh.
#
#   scripts/fetch-debian-nginx.sh SUITE DIR      e.g. scripts/fetch-debian-nginx.sh sid target/debian-nginx/sid
#
# apt-get runs with a state of its own under DIR/.apt: the system's apt lists, cache and dpkg
# database are not touched. The archive is the one the system's apt sources already name (the
# entry of the system's own release); FETCH_NGINX_MIRROR=URI names another. Needs apt, dpkg-deb
# and, for sid's conf_flags, dpkg-dev.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

[[ $# -eq 2 ]] || die "usage: $(basename "$0") SUITE DIR   (SUITE: trixie, sid, ...)"
SUITE=$1
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo "x86_64-linux-gnu")
case "$ARCH" in
    amd64) LDSO=ld-linux-x86-64.so.2 ;;
    arm64) LDSO=ld-linux-aarch64.so.1 ;;
    *) die "unsupported architecture $ARCH" ;;
esac

# ------------------------------------------------- mirror from system apt ---
# Prints "URI<TAB>signed-by" for every enabled 'deb' entry, as
# "<rank><TAB>URI<TAB>signed-by": rank 0 = the entry that carries the host's own
# codename (the main archive), 1 = other non-security entries, 2 = the rest.
system_deb_entries() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk -v cn="$codename" '
            { sub(/#.*/, "") }
            $1 != "deb" { next }
            {
                sb = ""; i = 2
                if ($2 ~ /^\[/) {            # [ option=value ... ]
                    opts = ""
                    for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
                    if (match(opts, /signed-by=[^] ]+/)) sb = substr(opts, RSTART + 10, RLENGTH - 10)
                }
                uri = $i; suite = $(i + 1)
                r = (suite == cn) ? 0 : ((uri ~ /security/ || suite ~ /security/) ? 2 : 1)
                print r "\t" uri "\t" sb
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v cn="$codename" '
            function flush(   n, u, s, k, r, best) {
                if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && uris != "") {
                    best = 1
                    n = split(suites, s, " ")
                    for (k = 1; k <= n; k++) if (s[k] == cn) best = 0
                    n = split(uris, u, " ")
                    for (k = 1; k <= n; k++) {
                        r = best
                        if (r == 1 && (u[k] ~ /security/ || suites ~ /security/)) r = 2
                        print r "\t" u[k] "\t" (signedby ~ /^\// ? signedby : "")
                    }
                }
                types = uris = suites = signedby = ""; enabled = "yes"; key = ""
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { next }                     # continuation line (e.g. inline key)
            {
                key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = val
                else if (key == "signed-by") signedby = val
            }
            END { flush() }' "$f"
    done
}

if [[ -n "${FETCH_NGINX_MIRROR:-}" ]]; then
    MIRROR=$FETCH_NGINX_MIRROR SIGNED_BY=""
else
    entry=$(system_deb_entries | sort -s -n -k1,1 | awk "NR == 1")
    [[ -n "$entry" ]] || die "no enabled 'deb' entry in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; set FETCH_NGINX_MIRROR"
    MIRROR=$(cut -f2 <<<"$entry")
    SIGNED_BY=$(cut -f3 <<<"$entry")
fi
MIRROR=${MIRROR%/}
log "mirror (from the system's apt sources): $MIRROR${SIGNED_BY:+ (signed-by $SIGNED_BY)}"

# ------------------------------------------------------ private apt state ---
STATE="$OUT/.apt"
mkdir -p "$STATE"/{lists/partial,cache/archives/partial,etc/apt.conf.d,etc/preferences.d,etc/trusted.gpg.d,debs}
: >"$STATE/status"
printf 'deb [arch=%s%s] %s %s main\n' "$ARCH" "${SIGNED_BY:+ signed-by=$SIGNED_BY}" "$MIRROR" "$SUITE" \
    >"$STATE/etc/sources.list"
# The private config does NOT read /etc/apt/apt.conf.d (its Post-Invoke hooks,
# DEP-11 targets, docker-clean's rm of /var/cache/apt/*.bin would otherwise run),
# but carries over the system's Acquire::* settings (proxies, and e.g.
# Check-Valid-Until "false" which snapshot-style mirrors need).
{
    apt-config dump | grep -E '^Acquire::' | grep -v -E '^Acquire::(IndexTargets|Languages|GzipIndexes)' || true
    cat <<EOF
Dir::Etc::sourcelist "$STATE/etc/sources.list";
Dir::Etc::sourceparts "$STATE/etc/sources.list.d";
Dir::Etc::parts "$STATE/etc/apt.conf.d";
Dir::Etc::preferences "$STATE/etc/preferences";
Dir::Etc::preferencesparts "$STATE/etc/preferences.d";
Dir::State "$STATE";
Dir::State::lists "$STATE/lists";
Dir::State::status "$STATE/status";
Dir::Cache "$STATE/cache";
Dir::Cache::archives "$STATE/cache/archives";
APT::Architecture "$ARCH";
APT::Architectures { "$ARCH"; };
Acquire::Languages "none";
EOF
} >"$STATE/apt.conf"
export APT_CONFIG="$STATE/apt.conf"
mkdir -p "$STATE/etc/sources.list.d"

# A network hiccup should not fail a run: apt-get update and download are tried three times
# (an update that could not fetch an index counts as failed: its lists would be incomplete).
tries() { # tries WHAT LOG CMD...: runs CMD (output to LOG) up to 3 times
    local what=$1 logf=$2 n
    shift 2
    for n in 1 2 3; do
        if "$@" >"$logf" 2>&1 && ! grep -qE '^(E:|W: Failed to fetch)' "$logf"; then
            return 0
        fi
        if [[ $n -lt 3 ]]; then
            log "$what failed (attempt $n of 3), again in $((n * 10))s:"
            grep -E '^(W|E|Err):' "$logf" >&2 || tail -3 "$logf" >&2
            sleep $((n * 10))
        fi
    done
    cat "$logf" >&2
    die "$what failed 3 times"
}

t=$(now)
tries "apt-get update ($SUITE)" "$STATE/update.log" apt-get -q update
grep -E '^(W|E):' "$STATE/update.log" >&2 || true
log "apt-get update ($SUITE): $(took "$t")"

# First package name that exists in SUITE out of alternatives "a|b|c".
pick() {
    local alt
    for alt in ${1//|/ }; do
        if apt-cache show --no-all-versions "$alt" 2>/dev/null | grep '^Package:' >/dev/null; then
            echo "$alt"; return 0
        fi
    done
    return 1
}
PKGS=()
# libzstd1: libcrypto.so.3 NEEDs libzstd.so.1 (trixie, sid); libgcc-s1: Rust
# cdylib modules (panic=unwind) NEED libgcc_s.so.1.
for want in nginx nginx-common nginx-dev "libc6" "libssl3t64|libssl3" "libpcre2-8-0" "zlib1g" \
            "libcrypt1" "libzstd1" "libgcc-s1"; do
    p=$(pick "$want") || die "no package '$want' in $SUITE"
    PKGS+=("$p")
done

t=$(now)
rm -f "$STATE"/debs/*.deb
# apt drops privileges to _apt for downloads; let it write the target dir.
if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$STATE/debs"; fi
download() { (cd "$STATE/debs" && apt-get -q download "${PKGS[@]}"); }
tries "apt-get download ($SUITE)" "$STATE/download.log" download
log "apt-get download (${#PKGS[@]} packages): $(took "$t")"

t=$(now)
ROOT="$OUT/extracted"
rm -rf "$ROOT"
mkdir -p "$ROOT"
: >"$OUT/packages.txt"
for deb in "$STATE"/debs/*.deb; do
    dpkg-deb -x "$deb" "$ROOT"
    dpkg-deb -W --showformat='${Package} ${Version} ${Architecture}\n' "$deb" >>"$OUT/packages.txt"
    echo "    $(basename "$deb")" >&2
done
log "dpkg-deb -x: $(took "$t")"

LIBDIRS="$ROOT/usr/lib/$MULTIARCH"
[[ -d "$ROOT/lib/$MULTIARCH" ]] && LIBDIRS="$LIBDIRS:$ROOT/lib/$MULTIARCH"
LOADER=""
for c in "$ROOT/usr/lib/$MULTIARCH/$LDSO" "$ROOT/lib/$MULTIARCH/$LDSO"; do
    [[ -x "$c" ]] && { LOADER=$c; break; }
done
[[ -n "$LOADER" ]] || die "no $LDSO in the extracted libc6"
BIN="$ROOT/usr/sbin/nginx"
[[ -x "$BIN" ]] || die "no usr/sbin/nginx in the extracted packages"

# The wrapper: runs nginx through the suite's loader.  --argv0 (glibc >= 2.33)
# makes nginx see the wrapper as argv[0], so a binary upgrade (USR2 re-exec of
# argv[0]) goes through the wrapper again instead of losing --library-path.
cat >"$OUT/nginx" <<EOF
#!/bin/sh
# nginx from Debian $SUITE (nginx $(awk '$1 == "nginx" { print $2 }' "$OUT/packages.txt")), run through that suite's ld.so
# binary: $BIN
exec "$LOADER" --argv0 "\$0" --library-path "$LIBDIRS" "$BIN" "\$@"
EOF
chmod +x "$OUT/nginx"

# Every library must come from ROOT: the loader silently falls back to the
# host's /lib/$MULTIARCH (and ld.so.cache) for anything missing.
leaks=$("$LOADER" --list --library-path "$LIBDIRS" "$BIN" | awk -v r="$ROOT" '
    /not found/ { print; next }
    /=>/ && $3 ~ /^\// && index($3, r) != 1 { print }')
[[ -z "$leaks" ]] || die "libraries not from $ROOT (add their packages):"$'\n'"$leaks"

"$OUT/nginx" -V 2>&1 | tee "$OUT/nginx-V.txt" | head -n1
echo "wrapper: $OUT/nginx"
echo "nginx-dev tree: $ROOT/usr/share/nginx/src"
