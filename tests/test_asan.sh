#!/usr/bin/env bash
# The host code and the CPU unit tests (tests/test_*.c but test_cuda_*) built with AddressSanitizer and
# UndefinedBehaviorSanitizer into build-asan/ (`make asan-bins`, CPU only) and run: one PASS per test binary that
# passes all its checks with no sanitizer report. `make test-asan` runs this script. Leaks are not checked: the
# config tests die_input() in forked children by design. The long shell tests run against build/jepa only.
set -u
source "$(dirname "$0")/lib.sh"
unset MAKEFLAGS MFLAGS MAKELEVEL  # under `make test`: a make of its own, not a job of the parent's
if ! out=$(make --no-print-directory -s -j"$(nproc)" NVCC= asan-bins 2>&1); then
    fail "asan: build" "$(tail -5 <<< "$out")"
    exit 1
fi
check "asan: build-asan/ builds warning-free" "$out" [ -z "$(grep -v '^note: ' <<< "$out")" ]
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for bin in build-asan/tests/test_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    out=$("$bin" 2>&1); rc=$?
    checks=$(grep -c '^PASS ' <<< "$out")
    report=$(grep -E 'ERROR: AddressSanitizer|runtime error:|SUMMARY: ' <<< "$out" | head -3)
    if [ "$rc" -eq 0 ] && [ "$checks" -eq 0 ] && [ -z "$report" ] && grep -q '^SKIP ' <<< "$out"; then
        skip "asan: $name" "it skipped every check here: $(grep -m1 '^SKIP ' <<< "$out" | cut -c6-)"
        continue
    fi
    check "asan: $name ($checks checks) under ASan + UBSan" "rc=$rc: ${report:-$(grep '^FAIL ' <<< "$out" | head -3)}" \
        [ "$rc" -eq 0 -a -z "$report" -a "$checks" -gt 0 ]
done
