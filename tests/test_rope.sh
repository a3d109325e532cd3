#!/usr/bin/env bash
# test_rope.sh: V-JEPA 2 (model.pos_embed: rope3d) from the command line on the CPU:
#   - the giant's dry run counts the official vit_giant_xformers' 1,012,173,952 encoder parameters;
#   - configs/tiny.yaml with RoPE trains (80 steps): the loss halves, no collapse, finite;
#   - a cooldown-like run with a longer clip and a larger crop starts from that run's weights (meta.init_from) with
#     the linear cooldown schedule; init_from across pos_embed kinds is refused.
source "$(dirname "$0")/lib.sh"

out=$($jepa train configs/vjepa2_vitg16.yaml --dry-run 2>&1)
check "rope: vjepa2_vitg16 dry run counts 1012173952 encoder parameters" "$(head -3 <<< "$out")" \
    grep -q "encoder 1.01G (1012173952)" <<< "$out"

pre=(logging.folder=$tmp logging.write_tag=pre meta.threads=2 model.pos_embed=rope3d)
out=$($jepa train configs/tiny.yaml "${pre[@]}" optimization.max_steps=80 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then fail "rope: tiny RoPE run" "exited $rc: $(tail -3 <<< "$out")"; exit 0; fi
pass "rope: tiny RoPE run trains 80 steps"
# Measured: first ten steps 0.71, last fifty 0.34 (seed 0, 2 threads).
python3 tests/check_train_metrics.py "$tmp/pre/metrics.jsonl" "rope tiny" 80

cool=(logging.folder=$tmp logging.write_tag=cool meta.threads=2 model.pos_embed=rope3d meta.init_from=$tmp/pre
      data.num_frames=16 data.crop_size=64 optimization.lr_schedule=linear optimization.warmup=0
      optimization.final_lr=1.0e-6 optimization.max_steps=3)
out=$($jepa train configs/tiny.yaml "${cool[@]}" 2>&1); rc=$?
check "rope: cooldown at 16 frames x 64 px starts from the 8 x 48 run's weights (meta.init_from)" \
    "exit $rc: $(grep -m1 -i 'init_from\|error' <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'meta.init_from: weights' <<< \"\$0\"" "$out"
out=$($jepa train configs/tiny.yaml logging.folder=$tmp logging.write_tag=bad meta.init_from=$tmp/pre \
      optimization.max_steps=1 2>&1); rc=$?
check "rope: init_from a RoPE run into a sincos model is refused (exit 2, names both)" "exit $rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q 'pos_embed: rope3d, this run has sincos' <<< \"\$0\"" "$out"

# model.pos_embed is a model key: a sincos checkpoint is not resumed as RoPE; one written before the key existed
# (no model.pos_embed in its state.json) counts as the default, sincos, and resumes as before.
old=(logging.folder=$tmp logging.write_tag=old meta.threads=2)
$jepa train configs/tiny.yaml "${old[@]}" optimization.max_steps=2 > /dev/null 2>&1
/usr/bin/python3 - $tmp/old/checkpoints/step_000002 <<'PY'
import sys, shutil
sys.path.insert(0, "scripts")
import ckpt_io
d = sys.argv[1]
m, o, s, t = ckpt_io.read_checkpoint(d)
s["model_config"].pop("model.pos_embed")
s["config_hash"] = "xxh3_64:0000000000000000"  # as hashed without the key
shutil.rmtree(d)
ckpt_io.write_checkpoint(d, m, o, s, t)
PY
out=$($jepa train configs/tiny.yaml "${old[@]}" optimization.max_steps=3 model.pos_embed=rope3d 2>&1); rc=$?
check "rope: a sincos checkpoint is not resumed as rope3d (exit 2, names the key)" "rc=$rc: $(head -2 <<< "$out")" \
    bash -c "[ $rc -eq 2 ] && grep -q 'model.pos_embed: sincos in the checkpoint, rope3d in the config' <<< \"\$0\"" "$out"
out=$($jepa train configs/tiny.yaml "${old[@]}" optimization.max_steps=3 2>&1); rc=$?
check "rope: a checkpoint from before model.pos_embed resumes as sincos" "rc=$rc: $(grep -m2 'resum\|refus' <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'resuming from' <<< \"\$0\"" "$out"

# a bad meta.init_from stops before the run folder exists (exit 2, nothing left behind)
out=$($jepa train configs/tiny.yaml logging.folder=$tmp logging.write_tag=nofrom meta.init_from=$tmp/missing \
      optimization.max_steps=1 2>&1); rc=$?
check "rope: meta.init_from naming nothing exits 2 and leaves no run folder" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && [ ! -e $tmp/nofrom ] && grep -q 'meta.init_from: $tmp/missing' <<< \"\$0\"" "$out"
