#!/usr/bin/env bash
# Memcheck: runs t/ files with the vendored nginx 1.28 and the module under valgrind memcheck
# (TEST_NGINX_USE_VALGRIND=1, as with CPAN's Test::Nginx), through the bundled runner in
# t/compat, which checks valgrind's records after every block: an error (invalid read, write or
# free, use of uninitialised values, ...) or a leak ("definitely" or "indirectly lost") with a
# frame of the module fails the block; records without one (nginx, libc) are only notes.
#
#   scripts/memcheck.sh                    # t/004-peers.t t/006-learn.t t/008-route-cookie.t
#                                          # t/009-faults.t t/015-status.t t/016-sid-prefix.t
#                                          # (routing, learning, faults, the status endpoint,
#                                          # the handshake rewrite)
#   scripts/memcheck.sh t/010-state.t ...  # other files
#   scripts/memcheck.sh -j 2               # two files at a time
#   scripts/memcheck.sh -o DIR             # keep the logs in DIR (default: a new /tmp/memcheck.*)
#
# Needs `cargo build --release --features vendored` first; installs valgrind (as root) if it is
# missing. The nginx binary and the module are copied first, so a rebuild during the run does
# not change what is tested. Suppressions: t/valgrind.suppress (nginx's own known leaks at exit),
# plus the files named in TEST_NGINX_VALGRIND_SUPPRESSIONS. TEST_NGINX_USE_VALGRIND may hold
# valgrind options instead of 1; TEST_NGINX_VALGRIND_TIMEOUT_FACTOR (default 5) scales the
# runner's time limits; MEMCHECK_FILE_TIMEOUT (default 600) stops a file that runs longer (s).
# On this 2-core machine the default set takes about 2 minutes, 1.5 with -j 2.
#
# Prints one line per file: PASS/FAIL, the time, and the valgrind records seen (with a frame of
# the module, without one); for a failing file, its failed assertions and the module's records.
# Logs: DIR/<file>.tap (prove -v), DIR/servroot/<file>/valgrind/ (valgrind.log: every record,
# block by block; blocks/: one file per block; failing.log; summary). The last line is
# "memcheck: N passed, M failed (S s)"; the exit status is 0 only if every file passed.

set -u

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEFAULT_FILES=(t/004-peers.t t/006-learn.t t/008-route-cookie.t t/009-faults.t t/015-status.t
    t/016-sid-prefix.t)

jobs=1
out=
files=()
while [ $# -gt 0 ]; do
    case "$1" in
        -j) jobs=${2:?-j needs a number}; shift 2 ;;
        -j*) jobs=${1#-j}; shift ;;
        -o) out=${2:?-o needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see $0 --help)" ;;
        *) files+=("$1"); shift ;;
    esac
done
case "$jobs" in ''|*[!0-9]*|0) die "-j wants a positive number, not '$jobs'" ;; esac

# test files given relative to the current directory; shown relative to the repository
for i in "${!files[@]}"; do
    f=${files[$i]}
    [ -f "$f" ] || die "no such test file: $f"
    f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
    files[$i]=${f#"$ROOT"/}
done
[ ${#files[@]} -gt 0 ] || files=("${DEFAULT_FILES[@]}")
if [ -n "$out" ]; then
    mkdir -p "$out" || die "cannot create $out"
    out=$(cd "$out" && pwd)
fi

cd "$ROOT"

if ! command -v valgrind >/dev/null 2>&1; then
    need_debs valgrind
fi
command -v valgrind >/dev/null 2>&1 || die "valgrind is not installed"

nginx=$(vendored_nginx)
module=$(vendored_module)
[ -f "$module" ] || die "no module at $module; run: cargo build --release --features vendored"

[ -n "$out" ] || out=$(mktemp -d /tmp/memcheck.XXXXXX)
mkdir -p "$out/bin" "$out/servroot"
# a stable copy (others may rebuild target/ meanwhile); the module keeps its file name, whose
# crate name identifies the module's frames (ngx_http_upstream_socketio_sticky_module::...)
cp "$nginx" "$out/bin/nginx"
cp "$module" "$out/bin/$(basename "$module")"
nginx_copy=$out/bin/nginx
module_copy=$out/bin/$(basename "$module")
crate=$(basename "$module" .so)
crate=${crate#lib}

# The record checks live in the bundled runner: use it even where CPAN's Test::Nginx is
# installed (t/prove would pick that one, which leaves valgrind's output unchecked).
prove_cmd=(t/prove)
if perl -MTest::Nginx::Socket -e 'exit($Test::Nginx::Socket::IS_COMPAT_RUNNER ? 1 : 0)' \
        2>/dev/null; then
    say "CPAN's Test::Nginx is installed; running the bundled runner (prove -I t/compat)"
    prove_cmd=(prove -I t/compat)
fi

vg_opts=${TEST_NGINX_USE_VALGRIND:-1}
[ "$vg_opts" = 0 ] && vg_opts=1
say "nginx: $nginx ($("$nginx_copy" -v 2>&1 | sed 's/^nginx version: //'))"
say "module: $module"
say "$(valgrind --version), TEST_NGINX_USE_VALGRIND=$vg_opts, $jobs file(s) at a time, logs: $out"

# run_one FILE: runs one file; writes DIR/<name>.result:
# "exit-status seconds records module other failing"
run_one() {
    local f=$1 name sr t0 t1 rc
    name=$(basename "$f" .t)
    sr=$out/servroot/$name
    rm -rf "$sr"
    t0=$(date +%s)
    TEST_NGINX_BINARY=$nginx_copy \
    TEST_NGINX_LOAD_MODULES=$module_copy \
    TEST_NGINX_USE_VALGRIND=$vg_opts \
    TEST_NGINX_SERVROOT=$sr \
        timeout -k 30 "${MEMCHECK_FILE_TIMEOUT:-600}" "${prove_cmd[@]}" -v "$f" \
        >"$out/$name.tap" 2>&1
    rc=$?
    t1=$(date +%s)
    local records=? module=? other=? failing=?
    if [ -f "$sr/valgrind/summary" ]; then
        records=$(sed -n 's/^records=//p' "$sr/valgrind/summary")
        module=$(sed -n 's/^module=//p' "$sr/valgrind/summary")
        other=$(sed -n 's/^other=//p' "$sr/valgrind/summary")
        failing=$(sed -n 's/^failing=//p' "$sr/valgrind/summary")
    fi
    printf '%s %s %s %s %s %s\n' "$rc" "$((t1 - t0))" "$records" "$module" "$other" "$failing" \
        >"$out/$name.result"
}

# summarize_records FILE: the records of a failing.log, one line per kind of record and first
# frame of the module, with their number
summarize_records() {
    CRATE=$crate perl -ne '
        if (/^==\d+== (\S.*)$/ && !defined $h) {
            ($h = $1) =~ s/[\d,]+ (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks/N bytes/;
            $h =~ s/ in loss record \d+ of \d+//;
            $h =~ s/of size \d+/of size N/;
            next;
        }
        if (defined $h && !defined $f && /^==\d+==\s+(?:at|by) 0x\w+: (.*) \(/) {
            my $fn = $1;
            $f = $fn if index($fn, "$ENV{CRATE}::") >= 0;
        }
        if (/^=== / || eof) {
            $n{"$h  <-  " . ($f // "?")}++ if defined $h;
            undef $h; undef $f;
        }
        END { printf "%4d x %s\n", $n{$_}, $_ for sort { $n{$b} <=> $n{$a} } keys %n }
    ' "$1"
}

report_one() {
    local f=$1 name rc secs records module other failing verdict
    name=$(basename "$f" .t)
    read -r rc secs records module other failing <"$out/$name.result"
    if [ "$rc" = 0 ]; then verdict=PASS; else verdict=FAIL; fi
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && verdict="FAIL (timed out)"
    printf '%-24s %-5s %5ss  valgrind records: %s (module: %s, failing: %s; other: %s)\n' \
        "$f" "$verdict" "$secs" "$records" "$module" "$failing" "$other"
    if [ "$rc" != 0 ]; then
        grep -E '^not ok' "$out/$name.tap" | sed 's/^/    /' | head -n 20
        local fl=$out/servroot/$name/valgrind/failing.log
        if [ -s "$fl" ]; then
            echo "    records with a frame of the module, by kind and first module frame" \
                 "(all of them: $fl):"
            summarize_records "$fl" | sed 's/^/      /'
        fi
        echo "    log: $out/$name.tap"
    fi
    [ "$rc" = 0 ]
}

start=$(date +%s)
running=0
for f in "${files[@]}"; do
    if [ "$jobs" -le 1 ]; then
        run_one "$f"
        report_one "$f"
        continue
    fi
    run_one "$f" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

passed=0
failed=0
for f in "${files[@]}"; do
    if [ "$jobs" -gt 1 ]; then
        report_one "$f" && passed=$((passed + 1)) || failed=$((failed + 1))
    elif [ "$(cut -d' ' -f1 "$out/$(basename "$f" .t).result")" = 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done

echo "memcheck: $passed passed, $failed failed ($(( $(date +%s) - start ))s)"
[ "$failed" -eq 0 ]
