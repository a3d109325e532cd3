#!/usr/bin/env bash
# libFuzzer on the readers that take user files: the config reader (YAML + one override) and the safetensors reader
# (checkpoints, export), with ASan and UBSan, each for FUZZ_SECONDS from its seed corpus tests/fuzz/corpus/<name>/.
# `make fuzz` runs a minute each; `make test` runs this script with 30 s each, both at once (one core each): the
# seeds reach the readers' error paths within seconds and CI's budget is shared with every other test. A crash,
# sanitizer report or timeout is a FAIL naming the reproducer (build-fuzz/crash-*). SKIP when clang cannot build
# a libFuzzer binary (scripts/deps.sh installs clang and libclang-rt-14-dev).
set -u
source "$(dirname "$0")/lib.sh"
unset MAKEFLAGS MFLAGS MAKELEVEL  # under `make test`: a make of its own, not a job of the parent's
seconds=${FUZZ_SECONDS:-30}
cc=$(command -v clang || command -v clang-14)
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > $tmp/probe.c
if [ -z "$cc" ] || ! "$cc" -fsanitize=fuzzer,address,undefined $tmp/probe.c -o $tmp/probe 2> $tmp/probe.log; then
    skip "fuzz" "no clang with libFuzzer (${cc:-clang not found}: $(head -1 $tmp/probe.log 2>/dev/null))"
    exit 0
fi
if ! out=$(make --no-print-directory -s -j"$(nproc)" NVCC= fuzz-bins FUZZ_CC="$cc" 2>&1); then
    fail "fuzz: build" "$out"
    exit 1
fi
check "fuzz: the harnesses build warning-free" "$out" [ -z "$(grep -v '^note: ' <<< "$out")" ]
declare -A leaks=([config]=0 [safetensors]=1)  # config_load dies by longjmp in the harness: its allocations leak
for name in config safetensors; do
    mkdir -p build-fuzz/work/$name
    ASAN_OPTIONS=detect_leaks=${leaks[$name]} build-fuzz/fuzz_$name -max_total_time=$seconds -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
        -detect_leaks=${leaks[$name]} -artifact_prefix=build-fuzz/crash-$name- \
        build-fuzz/work/$name tests/fuzz/corpus/$name > $tmp/$name.log 2>&1 &
    echo $! > $tmp/$name.pid
done
for name in config safetensors; do
    wait "$(cat $tmp/$name.pid)"; rc=$?
    runs=$(grep -o 'Done [0-9]* runs' $tmp/$name.log | tail -1)
    check "fuzz: $name reader, ${seconds}s, no crash or sanitizer report (${runs:-no runs})" \
        "rc=$rc: $(grep -E 'ERROR|SUMMARY|Test unit written|runtime error' $tmp/$name.log | head -5)" \
        [ "$rc" -eq 0 -a -n "$runs" ]
done
