#!/usr/bin/env bash
# First end-to-end timing of a config on the GPU (until `jepa bench step` exists): N steps of synthetic data,
# the median step time of the last half. Usage: bash scripts/gpu_bench_step.sh CONFIG STEPS OUT [key=value...]
set -u
config=$1 steps=$2 out=$3; shift 3
build/jepa train "$config" meta.device=cuda optimization.max_steps=$steps logging.log_every=1 \
    logging.folder="$out" logging.write_tag=bench meta.resume=never "$@" > "$out/bench_train.log" 2>&1 || {
    tail -20 "$out/bench_train.log"; exit 1; }
folder=$(sed -n 's/^run folder \([^ ]*\) .*/\1/p' "$out/bench_train.log" | head -1)
python3 - "$folder/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
half = rows[len(rows) // 2:]
step = statistics.median(r["step_s"] for r in half)
data = statistics.median(r["data_wait_s"] for r in half)
clips = statistics.median(r["clips_per_s"] for r in half)
print(f"steps {len(rows)}: median step {step*1000:.1f} ms, {clips:.1f} clips/s, data wait {data*1000:.1f} ms; "
      f"loss {rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f}")
PY
