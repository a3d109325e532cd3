#!/usr/bin/env bash
# Resume on the GPU is bit-exact with meta.deterministic: true: 6 steps uninterrupted vs 4 steps (checkpoint at 3,
# the later one removed as if killed first) + resume to 6; every per-step loss must be equal bit for bit.
# SKIP without a usable GPU.
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu resume"
train() { $jepa train configs/tiny.yaml meta.device=cuda meta.dtype=bfloat16 meta.deterministic=true \
          logging.folder=$tmp "$@" 2>&1; }
losses() { grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' "$1" 2>/dev/null; }
train logging.write_tag=full optimization.max_steps=6 > /dev/null
train logging.write_tag=cut optimization.max_steps=4 logging.checkpoint_every=3 > /dev/null
rm -rf $tmp/cut/checkpoints/step_000004
out=$(train logging.write_tag=cut optimization.max_steps=6); rc=$?
check "gpu resume: resumes from the step-3 checkpoint" "rc=$rc: $(head -3 <<< "$out")" \
    grep -q "resuming from $tmp/cut/checkpoints/step_000003" <<< "$out"
full=$(losses $tmp/full/metrics.jsonl); cut=$(losses $tmp/cut/metrics.jsonl)
check "gpu resume: every loss equals the uninterrupted run's bit for bit" "$(diff <(echo "$full") <(echo "$cut"))" \
    bash -c '[ "$(wc -l <<< "$0")" = 6 ] && [ "$0" = "$1" ]' "$full" "$cut"
# Determinism itself: the uninterrupted run twice.
train logging.write_tag=again optimization.max_steps=6 > /dev/null
check "gpu resume: two identical GPU runs give identical losses" "$(diff <(echo "$full") <(losses $tmp/again/metrics.jsonl))" \
    [ "$full" = "$(losses $tmp/again/metrics.jsonl)" ]
