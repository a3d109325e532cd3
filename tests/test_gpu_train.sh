#!/usr/bin/env bash
# configs/tiny.yaml for 100 steps on the GPU in bfloat16 (the CUDA backend end to end): the loss must fall and the
# target features must not collapse, by tests/test_train.sh's criteria. SKIP without a usable GPU.
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu train"
out=$($jepa train configs/tiny.yaml meta.device=cuda meta.dtype=bfloat16 optimization.max_steps=100 \
      logging.folder=$tmp logging.write_tag=gpu 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then fail "gpu train" "tiny run on cuda exited $rc: $(tail -5 <<< "$out")"; exit 1; fi
pass "gpu train: configs/tiny.yaml trains 100 steps on cuda in bfloat16"
grep -m1 '^device: ' <<< "$out" | sed 's/^/     /'
tail -1 <<< "$out" | sed 's/^/     /'
gpu_name=$(sed -n 's/^cuda:0 \([^(]*\) (.*/\1/p' <<< "$devices")
check "gpu train: the run says it ran on the GPU (train.log, provenance.json)" \
    "$(grep -m1 device "$tmp/gpu/train.log")" \
    bash -c "grep -q '| device cuda |' '$tmp/gpu/train.log' && grep -qF '$gpu_name' '$tmp/gpu/provenance.json'"
# The same 100 steps on the CPU in float32 (seed 0, measured): first ten steps 0.750, last fifty 0.293 (0.39 of the
# start), min target std 0.41. bf16 should land near it; the bounds are test_train.sh's.
python3 tests/check_train_metrics.py "$tmp/gpu/metrics.jsonl" "gpu train" 100
