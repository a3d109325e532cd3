#!/usr/bin/env bash
# Numerical faults (docs/training.md "Numerical faults"): a NaN or Inf put into a gradient or the clips by the
# JEPA_INJECT_FAULT hook is caught on the device in the step it appears, the update (AdamW and EMA) is dropped
# so the checkpointed state equals the previous step's byte for byte, the log names the step and the first
# offending tensor, and on_nonfinite / max_skips decide when the run ends (exit 4). Loss spikes get a z-score.
set -u
source "$(dirname "$0")/lib.sh"
# tests/test_gpu_nonfinite.sh runs this file again on the GPU with DEVICE_ARGS set.
train() { $jepa train configs/tiny.yaml meta.threads=2 optimization.max_steps=6 logging.checkpoint_every=1 \
          logging.keep=10 ${DEVICE_ARGS:-} "$@" 2>&1; }
field() { python3 -c "import json,sys; print([json.loads(l).get('$2') for l in open('$1')])"; }
state() {  # hashes of the tensor bytes (not the header, which names the step) of every .safetensors file of run
    local dir=$1/tiny/checkpoints/$(printf step_%06d $2)  # $1's checkpoint at step $2, or "missing"
    python3 -c "
import glob, hashlib, struct, sys
files = sorted(glob.glob(sys.argv[1] + '/*.safetensors'))
for f in files:
    b = open(f, 'rb').read()
    print(f.split('/')[-1], hashlib.sha256(b[8 + struct.unpack('<Q', b[:8])[0]:]).hexdigest())
print('missing ' + sys.argv[1] if not files else '')" $dir
}
same_state() { [ "$(state $1 $2)" = "$(state $1 $3)" ] && ! grep -q missing <<< "$(state $1 $2)"; }
differs() { [ "$(state $1 $2)" != "$(state $1 $3)" ] && ! grep -q missing <<< "$(state $1 $2)$(state $1 $3)"; }

# 1. a NaN in one gradient at step 3, on_nonfinite skip (the default)
tensor=encoder.blocks.1.attn.qkv.weight
out=$(JEPA_INJECT_FAULT=$tensor@3 train logging.folder=$tmp/skip); rc=$?
check "skip: the run goes on to the end (exit 0)" "rc=$rc: $(tail -3 <<< "$out")" [ $rc -eq 0 ]
check "skip: one line names the step and the tensor" "$(grep -i fault <<< "$out")" \
    grep -q "^numerical fault at step 3: gradient $tensor\[0\] = nan (first of 1 tensors" <<< "$out"
check "skip: the state after step 3 equals step 2's (AdamW and EMA dropped)" "$(state $tmp/skip 2; state $tmp/skip 3)" \
    same_state $tmp/skip 2 3
check "skip: steps 2 and 4 update" "$(ls $tmp/skip/tiny/checkpoints)" \
    bash -c "$(declare -f state differs); differs $tmp/skip 1 2 && differs $tmp/skip 3 4"
skipped=$(field $tmp/skip/tiny/metrics.jsonl skipped) row=$(field $tmp/skip/tiny/metrics.jsonl skips_in_a_row)
check "skip: metrics mark step 3 skipped, skips_in_a_row 1 then 0" "skipped=$skipped row=$row" \
    [ "$skipped $row" = "[False, False, True, False, False, False] [0, 0, 1, 0, 0, 0]" ]
train logging.folder=$tmp/ref optimization.max_steps=2 > /dev/null
ref=$(grep -o '"loss":[^,]*' $tmp/ref/tiny/metrics.jsonl)
check "skip: steps before the fault equal an untouched run's losses" "" \
    [ "$ref" = "$(head -2 $tmp/skip/tiny/metrics.jsonl | grep -o '"loss":[^,]*')" ]

# 2. NaN clips at step 2 (corrupt data: the loss and every gradient), on_nonfinite stop
out=$(JEPA_INJECT_FAULT=clips@2 train logging.folder=$tmp/stop optimization.on_nonfinite=stop); rc=$?
check "stop: exit 4" "rc=$rc: $(tail -3 <<< "$out")" [ $rc -eq 4 ]
check "stop: the fault line names the loss and the first gradient in table order" "$(grep -i fault <<< "$out")" \
    grep -q "^numerical fault at step 2: loss of mask 0 = nan; .*gradient encoder.patch_embed.proj.weight\[0\] = nan" \
    <<< "$out"
check "stop: says it stops at step 2 and how to go on instead" "$(grep error <<< "$out")" \
    grep -q "^error: stopping at step 2 (optimization.on_nonfinite: stop)" <<< "$out"
ck=$tmp/stop/tiny/checkpoints
check "stop: step 1's checkpoint kept and verifies, none for step 2, metrics hold both steps" "$(ls $ck)" \
    bash -c "[ \"\$(ls $ck)\" = step_000001 ] && [ \$(wc -l < $tmp/stop/tiny/metrics.jsonl) -eq 2 ] && \
             $jepa checkpoint verify $ck/step_000001 > /dev/null"

# 3. Inf gradients at steps 2, 3, 4 with max_skips 2: the third fault in a row ends the run
out=$(JEPA_INJECT_FAULT=predictor.predictor_proj.weight@2,3,4=inf train logging.folder=$tmp/max \
      optimization.max_skips=2); rc=$?
check "max_skips 2: the third fault in a row ends the run with exit 4" "rc=$rc: $(tail -3 <<< "$out")" \
    bash -c "[ $rc -eq 4 ] && grep -q '^error: 3 steps in a row were non-finite (optimization.max_skips 2); stopping at step 4' <<< \"\$0\"" "$out"
check "max_skips 2: inf named as such" "$(grep fault <<< "$out" | head -1)" \
    grep -q "^numerical fault at step 2: .*predictor.predictor_proj.weight\[0\] = inf" <<< "$out"
check "max_skips 2: steps 2 and 3 checkpointed with step 1's state" "$(ls $tmp/max/tiny/checkpoints)" \
    bash -c "$(declare -f state same_state); same_state $tmp/max 1 2 && same_state $tmp/max 1 3"

# 4. a loss spike (the predictor's output bias pushed to 100 before step 16) gets a z-score line; steps log loss_z
out=$(JEPA_INJECT_FAULT=param:predictor.predictor_proj.bias@16=100 train logging.folder=$tmp/spike optimization.max_steps=16 \
      logging.checkpoint_every=0 logging.spike_window=12); rc=$?
z=$(field $tmp/spike/tiny/metrics.jsonl loss_z)
check "spike: a line gives the step and its z-score" "rc=$rc; loss_z=$z; $(tail -3 <<< "$out")" \
    grep -q "^loss spike at step 16: .* standard deviations above the mean of the previous 12 steps" <<< "$out"
check "spike: loss_z is null for the first 9 steps, then a number" "$z" \
    python3 -c "import sys; z=$z; sys.exit(not (all(v is None for v in z[:10]) and all(isinstance(v, float) for v in z[10:])))"

# 5. a malformed hook spec is bad input naming the variable
out=$(JEPA_INJECT_FAULT=encoder.nope@3 train logging.folder=$tmp/bad); rc=$?
check "hook: an unknown tensor is bad input naming it (exit 2)" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q \"JEPA_INJECT_FAULT: no tensor 'encoder.nope'\" <<< \"\$0\"" "$out"
out=$(train logging.folder=$tmp/bad2 optimization.on_nonfinite=ignore); rc=$?
check "config: on_nonfinite=ignore is bad input naming the key and the choices" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q 'optimization.on_nonfinite' <<< \"\$0\" && grep -q 'skip' <<< \"\$0\"" "$out"
