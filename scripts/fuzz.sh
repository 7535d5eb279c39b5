#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (fuzz/) with clang-14 + ASan/UBSan and run each for a
# bounded time; fails on any crash, leak, sanitizer report, timeout or out-of-memory.
#
#   scripts/fuzz.sh [TARGET...]      all targets (fuzz/fuzz_*.c) when none is named
#
# Environment:
#   FUZZ_SECONDS   time per target (default 30)
#   FUZZ_JOBS      targets run at the same time (default: the number of CPUs)
#   FUZZ_DIR       build directory (default build-fuzz)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB    memory limit per target (default 2048)
#
# The checked-in seeds (fuzz/corpus/NAME) are only read; what a run finds is kept in
# $FUZZ_DIR/corpus/NAME and grows from run to run; crash reproducers land in
# $FUZZ_DIR/artifacts/NAME/. One line per target: executions, coverage (cov = code edges,
# ft = features, from libFuzzer's final stats), corpus size, new inputs, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
DIR=${FUZZ_DIR:-build-fuzz}
HANG=${FUZZ_TIMEOUT:-10}
RSS=${FUZZ_RSS_MB:-2048}
CC_FUZZ=${CC_FUZZ:-clang-14}

command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

# max input length per target (libFuzzer's -max_len); 4096 otherwise
max_len() {
    case $1 in
        config | stlist | reply) echo 16384 ;;
        data_filter | tlsa | maps) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        targets+=("${n#fuzz_}")
    done
fi

echo "== fuzz: building ${#targets[@]} targets with $CC_FUZZ in $DIR"
cmake -S . -B "$DIR" -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMXG_FUZZ=ON -DMXG_TESTS=OFF >/dev/null
cmake --build "$DIR" --target fuzzers -j"$(nproc 2>/dev/null || echo 2)" >"$DIR/fuzz-build.log" 2>&1 ||
    { tail -n 40 "$DIR/fuzz-build.log"; echo "fuzz: build failed" >&2; exit 1; }

# run_one NAME — one bounded libFuzzer run; its log in $DIR/logs/NAME.log
run_one() {
    local t=$1 bin="$DIR/fuzz/fuzz_$1" dict=()
    mkdir -p "$DIR/corpus/$t" "$DIR/artifacts/$t" "$DIR/logs"
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    # leaks are checked by libFuzzer itself (-detect_leaks); a UBSan report aborts
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
        "$bin" -max_total_time="$SECONDS_EACH" -timeout="$HANG" -rss_limit_mb="$RSS" \
        -max_len="$(max_len "$t")" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$DIR/artifacts/$t/" "$DIR/corpus/$t" "fuzz/corpus/$t" \
        >"$DIR/logs/$t.log" 2>&1
}

# summary NAME RC — one line of figures; returns 1 if the run found something
summary() {
    local t=$1 rc=$2 log="$DIR/logs/$1.log" execs cov ft corp newu crashes last what
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(find "$DIR/corpus/$t" -type f | wc -l)
    crashes=$(find "$DIR/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) -newer "$DIR/logs/.start" | wc -l)
    printf '%-12s execs %10s  cov %5s  ft %6s  corpus %5s (+%s new)  crashes %s\n' \
        "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "${newu:-?}" "$crashes"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$execs" ]; then
        what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z -]+|runtime error: .*|property violated: .*' "$log" || true)
        echo "   FAILED (exit $rc): ${what:-see $log}"
        grep -E -A25 'ERROR: |runtime error|property violated' "$log" | head -n 40 | sed 's/^/   | /'
        local a
        for a in $(find "$DIR/artifacts/$t" -type f -newer "$DIR/logs/.start"); do
            echo "   reproducer $a ($(stat -c %s "$a") bytes): $DIR/fuzz/fuzz_$t $a"
            head -c 512 "$a" | od -A d -c | head -n 12 | sed 's/^/   | /'
        done
        return 1
    fi
    return 0
}

mkdir -p "$DIR/logs"
touch "$DIR/logs/.start"
echo "== fuzz: ${#targets[@]} targets x ${SECONDS_EACH}s, $JOBS at a time"
declare -A rcs
pending=("${targets[@]}")
running=0
declare -A name_of
start=$(date +%s)
while [ ${#pending[@]} -gt 0 ] || [ $running -gt 0 ]; do
    while [ ${#pending[@]} -gt 0 ] && [ $running -lt "$JOBS" ]; do
        t=${pending[0]}
        pending=("${pending[@]:1}")
        [ -x "$DIR/fuzz/fuzz_$t" ] || { echo "fuzz: no target $t" >&2; exit 2; }
        run_one "$t" &
        name_of[$!]=$t
        running=$((running + 1))
    done
    set +e
    wait -n -p done_pid
    rc=$?
    set -e
    rcs[${name_of[$done_pid]}]=$rc
    running=$((running - 1))
done

failed=0
for t in "${targets[@]}"; do
    summary "$t" "${rcs[$t]}" || failed=$((failed + 1))
done
echo "== fuzz: $(( $(date +%s) - start ))s, ${#targets[@]} targets, $failed failed"
[ "$failed" -eq 0 ]
