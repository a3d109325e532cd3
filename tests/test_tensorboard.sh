#!/usr/bin/env bash
# The run folder's TensorBoard events read back by PyPI's tensorboard (its own TFRecord and CRC checks), the
# eval.every probe in metrics.jsonl and in the events, and scripts/plot_run.py's PNGs. SKIP when build/venv cannot
# get tensorboard and matplotlib from PyPI (scripts/python_env.sh).
source "$(dirname "$0")/lib.sh"
py=build/venv/bin/python
[ -x $py ] && $py -c "import tensorboard, matplotlib" 2>/dev/null || bash scripts/python_env.sh > /dev/null
if ! $py -c "import tensorboard, matplotlib" 2>/dev/null; then
    skip "tensorboard" "PyPI tensorboard/matplotlib not installable here (scripts/python_env.sh; see build/venv.log)"
    exit 0
fi
$jepa data synth --world balls -o $tmp/p16.h5 --clips 16 --frames 4 --size 16 --balls 1 > /dev/null
cat > $tmp/tiny.yaml <<EOF
data: {source: synthetic, batch_size: 4, num_frames: 4, tubelet_size: 2, sampling_rate: 1, crop_size: 16, patch_size: 4, synth_balls: 2}
mask:
  - {num_blocks: 2, spatial_scale: [0.15, 0.15]}
model: {model_name: vit_custom, embed_dim: 16, depth: 1, num_heads: 2, pred_depth: 1, pred_embed_dim: 16, pred_num_heads: 2}
optimization: {ipe: 6, epochs: 1, warmup: 0, start_lr: 1.0e-3, lr: 1.0e-3, final_lr: 1.0e-4}
meta: {seed: 0, dtype: float32, device: cpu, threads: 1}
logging: {folder: $tmp/runs, write_tag: tiny, log_every: 6}
eval: {every: 3, data: $tmp/p16.h5, clips: 16}
EOF
if ! out=$($jepa train $tmp/tiny.yaml 2>&1); then fail "tensorboard_setup" "training failed: $(tail -2 <<< "$out")"; exit 0; fi
run=$tmp/runs/tiny
# Every step's scalars in the events equal metrics.jsonl's values as float32 (relative 1e-6: float32 has 24 bits),
# and the probe's records sit at steps 3 and 6 in both; the script prints "ok" only when every assertion held.
res=$($py - $run 2>&1 <<'EOF'
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
run = sys.argv[1]
ea = EventAccumulator(run, size_guidance={"scalars": 0}); ea.Reload()
tags = set(ea.Tags()["scalars"])
need = {"loss", "lr", "weight_decay", "ema_momentum", "grad_norm/encoder", "grad_norm/predictor", "target_std",
        "clips_per_s", "data_wait_s", "mem_peak_gib", "probe/position_r2", "probe/velocity_r2"}
assert need <= tags, f"missing tags {need - tags}"
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
steps = {r["step"]: r for r in rows if r.get("kind") != "eval"}
for tag, key in (("loss", "loss"), ("lr", "lr"), ("ema_momentum", "ema_momentum"), ("target_std", "target_std"),
                 ("mem_peak_gib", "mem_peak_gib")):
    ev = {e.step: e.value for e in ea.Scalars(tag)}
    assert sorted(ev) == sorted(steps), f"{tag}: steps {sorted(ev)} vs {sorted(steps)}"
    for s, v in ev.items():
        assert abs(v - steps[s][key]) <= 1e-6 * abs(steps[s][key]) + 1e-30, f"{tag} step {s}: {v} vs {steps[s][key]}"
evals = [r for r in rows if r.get("kind") == "eval"]
assert [r["step"] for r in evals] == [3, 6], f"eval records at steps {[r['step'] for r in evals]}"
assert [e.step for e in ea.Scalars("probe/position_r2")] == [3, 6]
print("ok")
EOF
)
check "tensorboard_matches_metrics_and_probe" "$(tail -2 <<< "$res")" [ "$(tail -1 <<< "$res")" = ok ]
# A flipped byte inside a record breaks its CRC: tensorboard's reader must stop there (so the CRCs are checked).
ev=$(ls $run/events.out.tfevents.*)
cp $ev $tmp/bad.tfevents
printf '\xff' | dd of=$tmp/bad.tfevents bs=1 seek=60 conv=notrunc 2> /dev/null
mkdir -p $tmp/badrun && mv $tmp/bad.tfevents $tmp/badrun/events.out.tfevents.1.bad
n=$($py - $tmp/badrun 2>/dev/null <<'EOF'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0}); ea.Reload()
print(len(ea.Scalars("loss")) if "loss" in ea.Tags()["scalars"] else 0)
EOF
)
check "tensorboard_crc_checked" "a corrupted record still gave $n of 6 losses" [ "${n:-0}" -lt 6 ]
# plot_run.py: a PNG for the run (with the probe panel) and for an eval result.
png() { head -c 8 "$1" 2>/dev/null | od -An -c | tr -d ' \n'; }
$py scripts/plot_run.py $run -o $tmp/run.png > /dev/null 2>&1
check "plot_run_png" "no PNG at $tmp/run.png" [ "$(png $tmp/run.png)" = '211PNG\r\n032\n' ]
