#!/usr/bin/env bash
# On a GPU machine: build from source, run the GPU tests, compute-sanitizer over the kernel tests, the GPU training
# tests; logs under OUT. Usage: bash scripts/gpu_check.sh OUT [all|build|tests|sanitize|train]...
# Libraries a machine lacks can travel as Debian packages in .devdeps/ (headers unpacked; runtime libraries only
# when the machine has none).
set -u
out=${1:?usage: gpu_check.sh OUT [stages]}; shift
stages=${*:-all}
mkdir -p "$out"
has() { [[ " $stages " == *" all "* || " $stages " == *" $1 "* ]]; }
if [ -d .devdeps ]; then
    for f in .devdeps/libyaml*.deb .devdeps/*-dev_*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
    for f in .devdeps/*.deb; do  # runtime packages: only where the machine lacks the library they ship
        case $f in *-dev_*|*libyaml*) continue ;; esac
        for so in $(dpkg -c "$f" | grep -o 'lib[^/ ]*\.so\.[0-9]*' | sort -u); do
            ldconfig -p | grep -q "$so " || { dpkg -x "$f" /; break; }
        done
    done
    ldconfig
fi
# cuDNN's headers may live only in a Python wheel on such machines.
if [ -z "${CUDNN_INC:-}" ]; then
    inc=$(python3 -c 'import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], "include"))' 2>/dev/null)
    [ -n "$inc" ] && [ -f "$inc/cudnn_version.h" ] && export CUDNN_INC=$inc
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv > "$out/gpu.txt" 2>&1
status=0
if has build; then
    t0=$(date +%s)
    if ! make -j16 all $(ls tests/test_*.c | sed 's|tests/\(.*\)\.c|build/tests/\1|') > "$out/build.log" 2>&1; then
        echo "BUILD FAILED"; grep -E "error|Error" "$out/build.log" | head -30; exit 1
    fi
    echo "build: $(( $(date +%s) - t0 )) s"
fi
if has tests; then
    bash tests/run.sh cuda 2>&1 | tee "$out/gpu_tests.log" | grep -vE '^PASS ' | tail -40
    grep -q ' 0 failed' "$out/gpu_tests.log" || status=1
fi
if has sanitize; then
    for t in build/tests/test_cuda_*; do
        for tool in memcheck racecheck; do
            # racecheck flags hazards inside cuDNN's own generated SDPA kernels (wgmma/TMA asynchronous copies it
            # cannot follow; seen 2026-11-23: every report in cudnn_generated_fort_native_sdpa_sm90_flash_*), not in
            # ours: test_cuda_cudnn launches no kernel of jepa.c's. memcheck still covers it.
            [ "$tool" = racecheck ] && [ "$(basename $t)" = test_cuda_cudnn ] && { echo "compute-sanitizer racecheck test_cuda_cudnn: not run (cuDNN's kernels only)"; continue; }
            JEPA_TEST_SMALL=1 compute-sanitizer --tool $tool --error-exitcode 9 "$t" > "$out/san_$(basename $t)_$tool.log" 2>&1
            rc=$?
            echo "compute-sanitizer $tool $(basename $t): rc=$rc $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/san_$(basename $t)_$tool.log" | tail -1)"
            [ $rc -eq 0 ] || status=1
        done
    done
fi
if has train; then
    bash tests/run.sh gpu_ 2>&1 | tee "$out/gpu_train.log" | tail -12
    grep -q ' 0 failed' "$out/gpu_train.log" || status=1
fi
exit $status
