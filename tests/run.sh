#!/usr/bin/env bash
# Runs every test binary in build/tests and every tests/*.sh script (or those whose names contain one of the
# arguments: `tests/run.sh test_cuda_ test_gpu_`); counts PASS/FAIL/SKIP lines.
# A binary that exits non-zero without printing a FAIL line counts as one failure (a crash is never a pass).
set -u
cd "$(dirname "$0")/.."
log=build/test.log
: > "$log"
passed=0 failed=0 skipped=0
run_one() {
    local name=$1; shift
    local out rc
    local t0=$(date +%s)
    out=$("$@" 2>&1); rc=$?
    local t1=$(date +%s)
    printf '%s\n' "$out" >> "$log"
    local p f s
    p=$(printf '%s\n' "$out" | grep -c '^PASS ')
    f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
    s=$(printf '%s\n' "$out" | grep -c '^SKIP ')
    printf '%s\n' "$out" | grep -E '^(FAIL|SKIP) '
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited $rc without a FAIL line; last output:"; printf '%s\n' "$out" | tail -5
        f=1
    fi
    if [ $((p + f + s)) -eq 0 ]; then echo "FAIL $name: printed no result"; f=1; fi
    printf '  %-28s %3d passed %3d failed %3d skipped  (%ds)\n' "$name" "$p" "$f" "$s" $((t1 - t0))
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}
filters=("$@")  # name substrings (any may match); none: every test
selected() {
    [ ${#filters[@]} -eq 0 ] && return 0
    local f
    for f in "${filters[@]}"; do [[ "$1" == *"$f"* ]] && return 0; done
    return 1
}
for bin in build/tests/test_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    selected "$name" || continue
    run_one "$name" "$bin"
done
for script in tests/test_*.sh; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .sh)
    selected "$name" || continue
    run_one "$name" bash "$script"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
