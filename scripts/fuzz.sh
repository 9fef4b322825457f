#!/usr/bin/env bash
# libFuzzer + AddressSanitizer targets for the parsers that read untrusted text (docs/fuzzing.md).
#
#   scripts/fuzz.sh [TARGET...]            build (when needed) and fuzz each target; default: all
#   scripts/fuzz.sh build [TARGET...]      build only
#   scripts/fuzz.sh repro TARGET FILE...   run the target once on saved inputs (crash reproduction)
#
# Targets: csv threshold expression arguments request. Each is Sources/ExchangeChecks/*.swift plus
# fuzz/FuzzSupport.swift and fuzz/Harness<Target>.swift compiled by swiftc into one module, so no
# SwiftPM build (and no .build/) is involved. Everything goes to .build-fuzz/.
#
# Environment:
#   EXOCHECK_FUZZ_SECONDS=60          run time per target (-max_total_time)
#   EXOCHECK_FUZZ_OPT=-O              optimisation flag for swiftc (-Onone for clearer stacks)
#   EXOCHECK_FUZZ_SOURCES=DIR         ExchangeChecks sources to fuzz (default Sources/ExchangeChecks)
#   EXOCHECK_FUZZ_BUILD_DIR=DIR       binaries, logs and scratch corpora (default .build-fuzz)
#   EXOCHECK_FUZZ_IGNORE_CRASHES=1    keep fuzzing after a crash (-fork=1 -ignore_crashes=1...) to
#                                     collect several distinct crashes in one run; still fails
#   EXOCHECK_FUZZ_JOBS=2              targets built and fuzzed at the same time
#   EXOCHECK_FUZZ_ARGS="..."          extra libFuzzer flags for every target (e.g. -max_len=65536)
#   SWIFTC=/path/to/swiftc            compiler (default: swiftc on PATH, else /opt/swift/usr/bin)
#
# Before fuzzing, every saved reproducer in fuzz/crashes/TARGET/ is run once: one that still
# fails marks the target as failed (REPLAY) even when fuzzing then finds nothing new.
#
# Exit status: 0 when every reproducer passes and every target ran its full time without a
# crash, timeout, leak or OOM; 1 otherwise (the input path, a hexdump and the top stack frames
# are printed); 2 when a build failed or the command line is wrong.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${EXOCHECK_FUZZ_BUILD_DIR:-$ROOT/.build-fuzz}
ALL_TARGETS=(csv threshold expression arguments request)
SECONDS_PER_TARGET=${EXOCHECK_FUZZ_SECONDS:-60}
OPT=${EXOCHECK_FUZZ_OPT:--O}
SOURCES=${EXOCHECK_FUZZ_SOURCES:-$ROOT/Sources/ExchangeChecks}

if [ -n "${SWIFTC:-}" ]; then
    :
elif command -v swiftc > /dev/null 2>&1; then
    SWIFTC=$(command -v swiftc)
elif [ -x /opt/swift/usr/bin/swiftc ]; then
    SWIFTC=/opt/swift/usr/bin/swiftc
else
    echo "fuzz.sh: swiftc not found (set SWIFTC or put the Swift toolchain on PATH)" >&2
    exit 2
fi
TOOLCHAIN_BIN=$(dirname "$(readlink -f "$SWIFTC")")
demangle() {  # Swift symbols in sanitizer stack traces are mangled
    if [ -x "$TOOLCHAIN_BIN/swift-demangle" ]; then "$TOOLCHAIN_BIN/swift-demangle" --simplified; else cat; fi
}

harness_name() {  # csv -> CSV, threshold -> Threshold
    case "$1" in
        csv) echo CSV ;;
        threshold) echo Threshold ;;
        expression) echo Expression ;;
        arguments) echo Arguments ;;
        request) echo Request ;;
        *) return 1 ;;
    esac
}

check_targets() {
    for t in "$@"; do
        if ! harness_name "$t" > /dev/null; then
            echo "fuzz.sh: unknown target '$t' (known: ${ALL_TARGETS[*]})" >&2
            exit 2
        fi
    done
}

# The toolchain's lld links the sanitizer runtimes quietly; the default gold prints hundreds of
# harmless "Cannot export local symbol '__asan_check_*'" warnings. Use lld when it is there.
LINKER_FLAGS=()
[ -x "$TOOLCHAIN_BIN/ld.lld" ] && LINKER_FLAGS=(-use-ld=lld)

# build TARGET: compile when the binary is missing, older than any input, or the input list
# (or compiler flags) changed since the last build.
build() {
    local t=$1 name bin stamp srcdir
    name=$(harness_name "$t")
    bin="$OUT/fuzz-$t"
    stamp="$OUT/fuzz-$t.inputs"
    local inputs=("$SOURCES"/*.swift "$ROOT/fuzz/FuzzSupport.swift" "$ROOT/fuzz/Harness$name.swift")
    local flags=(-sanitize=fuzzer,address -parse-as-library -module-name ExchangeChecks "$OPT" -g
                 "${LINKER_FLAGS[@]}")
    # ExchangeChecks calls the toolchain's ICU directly when the sources import it (ICUMatcher).
    grep -q "import _FoundationICU" "$SOURCES"/*.swift 2> /dev/null && flags+=(-l_FoundationICU)
    # The csv harness checks snapshots and one-pass filters when the sources have them.
    grep -q "func matchMask" "$SOURCES"/*.swift 2> /dev/null && flags+=(-D FUZZ_SNAPSHOTS)
    # Harnesses bind the regex time budget of a check when the sources have one (FuzzSupport.swift).
    grep -q "class RegexBudget" "$SOURCES"/*.swift 2> /dev/null && flags+=(-D FUZZ_REGEX_BUDGET)
    local want
    want=$(printf '%s\n' "$SWIFTC" "${flags[@]}" "${inputs[@]}")
    if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -z "$(find "${inputs[@]}" -newer "$bin" 2> /dev/null)" ]; then
        echo "fuzz.sh: $t: up to date ($bin)"
        return 0
    fi
    # Compile a snapshot: sources edited while swiftc runs would otherwise fail the build
    # ("input file ... was modified during the build").
    srcdir="$OUT/src-$t"
    rm -rf "$srcdir" && mkdir -p "$srcdir"
    cp -p "${inputs[@]}" "$srcdir/"
    echo "fuzz.sh: $t: building ($SWIFTC ${flags[*]})"
    local start=$SECONDS
    if ! "$SWIFTC" "${flags[@]}" "$srcdir"/*.swift -o "$bin.tmp" > "$OUT/build-$t.log" 2>&1; then
        grep -E "error:" "$OUT/build-$t.log" | head -20 >&2
        echo "fuzz.sh: $t: build FAILED (full log: $OUT/build-$t.log)" >&2
        rm -f "$bin.tmp"
        return 1
    fi
    mv "$bin.tmp" "$bin"
    printf '%s' "$want" > "$stamp"
    echo "fuzz.sh: $t: built in $((SECONDS - start)) s"
}

# Environment for every fuzz binary: libFuzzer's own handler reports traps (Swift's runtime
# backtracer would otherwise catch SIGILL first and then trip ASan inside its register dump),
# ASan symbolizes with the toolchain's llvm-symbolizer, and LeakSanitizer skips the known
# Foundation leak listed in fuzz/lsan.supp.
fuzz_env() {
    export SWIFT_BACKTRACE=enable=no
    [ -x "$TOOLCHAIN_BIN/llvm-symbolizer" ] && export ASAN_SYMBOLIZER_PATH="$TOOLCHAIN_BIN/llvm-symbolizer"
    export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
}

# Top stack frames of a libFuzzer/ASan log, demangled, harness and libFuzzer frames dropped.
top_frames() {
    grep -E '^ +#[0-9]+ ' "$1" | demangle \
        | grep -vE 'fuzzer::|compiler-rt/|libc\.so|_start|__libc_start' | head -12 || true
}

# report_artifacts TARGET DIR: prints every crash/timeout/leak/oom input found, with the error
# and top frames of a fresh run on it (fork mode keeps the children's logs elsewhere); 1 if any.
report_artifacts() {
    local t=$1 dir=$2 found=0 f
    for f in "$dir"/crash-* "$dir"/timeout-* "$dir"/leak-* "$dir"/oom-*; do
        [ -e "$f" ] || continue
        found=1
        echo "---- $t: $(basename "$f" | cut -d- -f1) input: $f ($(wc -c < "$f") bytes), first bytes:"
        od -A x -t x1z -v "$f" | head -8
        (fuzz_env && "$OUT/fuzz-$t" -rss_limit_mb=2048 -timeout=10 "$f") > "$f.log" 2>&1
        echo "---- $t: error and top frames (log: $f.log):"
        grep -m1 -E 'ERROR: |SUMMARY: |Test unit written' "$f.log"
        top_frames "$f.log"
    done
    return "$found"
}

# replay_crashes TARGET: runs every saved reproducer in fuzz/crashes/TARGET once (regression
# check for crashes found earlier); 1 if any still fails.
replay_crashes() {
    local t=$1 bin="$OUT/fuzz-$t" dir="$OUT/run/$t" f log bad=0
    [ -d "$ROOT/fuzz/crashes/$t" ] || return 0
    for f in "$ROOT/fuzz/crashes/$t"/*; do
        [ -f "$f" ] || continue
        log="$dir/replay-$(basename "$f").log"
        if (fuzz_env && "$bin" -rss_limit_mb=2048 -timeout=10 "$f") > "$log" 2>&1; then
            echo "fuzz.sh: $t: saved reproducer ${f#"$ROOT"/} passes"
        else
            bad=1
            echo "fuzz.sh: $t: saved reproducer ${f#"$ROOT"/} STILL FAILS (log: $log):"
            grep -m1 -E 'ERROR: |SUMMARY: ' "$log"
            top_frames "$log" | head -6
        fi
    done
    return "$bad"
}

run_target() {
    local t=$1 bin="$OUT/fuzz-$t" dir="$OUT/run/$t"
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    local replay=ok
    replay_crashes "$t" || replay=failed
    # The committed corpus is only a seed: libFuzzer writes new units into its first directory.
    cp -p "$ROOT/fuzz/corpus/$t/"* "$dir/corpus/"
    local args=(-seed=1 "-max_total_time=$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10
                -print_final_stats=1 "-artifact_prefix=$dir/artifacts/")
    [ -f "$ROOT/fuzz/$t.dict" ] && args+=("-dict=$ROOT/fuzz/$t.dict")
    if [ "${EXOCHECK_FUZZ_IGNORE_CRASHES:-0}" = 1 ]; then
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    # shellcheck disable=SC2206
    args+=(${EXOCHECK_FUZZ_ARGS:-})
    echo "fuzz.sh: $t: fuzzing for ${SECONDS_PER_TARGET} s (log: $dir/fuzz.log)"
    local start end rc
    start=$(date +%s.%N)
    (cd "$dir" && fuzz_env && "$bin" "${args[@]}" "$dir/corpus") > "$dir/fuzz.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    local took execs speed
    took=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$dir/fuzz.log" | tail -1 | awk '{print $2}')
    speed=$(grep -oE 'stat::average_exec_per_sec: [0-9]+' "$dir/fuzz.log" | tail -1 | awk '{print $2}')
    if [ -z "$speed" ]; then  # fork mode / crash: take the last status line
        speed=$(grep -oE 'exec/s: [0-9]+' "$dir/fuzz.log" | tail -1 | awk '{print $2}')
    fi
    local status=clean
    [ "$replay" = ok ] || status=REPLAY
    if ! report_artifacts "$t" "$dir/artifacts"; then
        status=FOUND
    elif [ "$rc" != 0 ]; then
        status="FAILED (exit $rc, no artifact)"
        tail -20 "$dir/fuzz.log"
    fi
    printf 'fuzz.sh: %-10s %-6s %6s s  %8s execs  %6s exec/s\n' "$t" "$status" "$took" "${execs:-?}" "${speed:-?}" \
        | tee -a "$OUT/summary.txt"
    [ "$status" = clean ]
}

mkdir -p "$OUT"
command=run
case "${1:-}" in
    build | repro) command=$1; shift ;;
    run) shift ;;
esac

if [ "$command" = repro ]; then
    [ $# -ge 2 ] || { echo "usage: fuzz.sh repro TARGET FILE..." >&2; exit 2; }
    t=$1; shift
    check_targets "$t"
    build "$t" || exit 2
    fuzz_env
    "$OUT/fuzz-$t" -rss_limit_mb=2048 -timeout=10 "$@" 2>&1 | demangle
    exit "${PIPESTATUS[0]}"
fi

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")
check_targets "${targets[@]}"

# Builds and fuzzing run EXOCHECK_FUZZ_JOBS targets at a time (default 2: one per core; each
# libFuzzer process is single-threaded, and each target has its own seed, scratch corpus and
# artifacts, so running side by side changes nothing but the wall time).
JOBS=${EXOCHECK_FUZZ_JOBS:-2}
parallel() {  # parallel FUNCTION TARGET...: sets `failed` to the targets whose FUNCTION failed
    local fn=$1 t
    shift
    local -A pids=()
    failed=()
    for t in "$@"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
        "$fn" "$t" &
        pids[$t]=$!
    done
    for t in "$@"; do wait "${pids[$t]}" || failed+=("$t"); done
}

parallel build "${targets[@]}"
[ ${#failed[@]} -gt 0 ] && exit 2
[ "$command" = build ] && exit 0

: > "$OUT/summary.txt"
parallel run_target "${targets[@]}"
echo "fuzz.sh: summary"
cat "$OUT/summary.txt"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs under $OUT/run/<target>/artifacts/; reproduce with" \
        "scripts/fuzz.sh repro <target> <file>)" >&2
    exit 1
fi
echo "fuzz.sh: all targets clean"
