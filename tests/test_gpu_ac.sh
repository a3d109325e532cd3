#!/usr/bin/env bash
# test_gpu_ac.sh: model.kind ac (the action-conditioned predictor) end to end on the CUDA backend: a tiny tworooms
# encoder trained on the CPU; the same predictor trained from it on the CPU (float32) and on the GPU (bfloat16) from
# the same init over the same windows, whose losses must agree; then `jepa plan` on the GPU with each predictor (the
# file is the fp32 master weights, so the CPU-trained one plans on the GPU and the GPU-trained one on the CPU), which
# exits 4 if an energy is not finite. SKIP without a usable GPU. ~1 minute. (The tight checks, one forward, the
# gradients and the AdamW steps against the CPU, are tests/test_cuda_ac.c's.)
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu ac"
steps=40
$jepa data synth --world tworooms --policy random --episodes 40 --frames 16 -o $tmp/r.h5 > $tmp/synth.log 2>&1 &&
$jepa data synth --world tworooms --policy noisy-expert --episodes 40 --frames 16 --seed 1 -o $tmp/e.h5 >> $tmp/synth.log 2>&1
common="logging.folder=$tmp/runs data.datasets=[$tmp/r.h5,$tmp/e.h5] logging.log_every=1000"
$jepa train configs/tworooms_encoder.yaml $common meta.threads=4 optimization.max_steps=20 > $tmp/enc.log 2>&1
enc=$(ls -d $tmp/runs/tworooms_encoder/checkpoints/step_* 2>/dev/null | tail -1)
if [ -z "$enc" ]; then fail "gpu ac: encoder" "$(tail -5 $tmp/synth.log $tmp/enc.log)"; exit 1; fi
ac="configs/ac_tworooms.yaml $common ac.encoder_checkpoint=$enc optimization.max_steps=$steps optimization.warmup=0"
gpu="meta.device=cuda meta.dtype=bfloat16"
$jepa train $ac meta.threads=4 logging.write_tag=ac_cpu > $tmp/ac_cpu.log 2>&1
$jepa train $ac $gpu logging.write_tag=ac_gpu > $tmp/ac_gpu.log 2>&1
rc=$?
check "gpu ac: jepa train model.kind ac on cuda" "exit $rc: $(tail -5 $tmp/ac_gpu.log)" \
    bash -c "test $rc = 0 && test -s $tmp/runs/ac_gpu/predictor.safetensors && test -s $tmp/runs/ac_cpu/predictor.safetensors"
check "gpu ac: the run says it ran on the GPU" "$(grep -m1 '^device' $tmp/ac_gpu.log)" grep -q '^device: cuda' $tmp/ac_gpu.log
grep -m1 '^device' $tmp/ac_gpu.log | sed 's/^/     /'
# The same windows and init on both: the GPU adds bf16 rounding of the encoder's and the predictor's activations,
# each within 1e-2 relative of the CPU for a loss (tests/test_cuda_backend.c, tests/test_cuda_ac.c), so the mean of
# the first ten losses agrees within 3e-2; later steps add AdamW's drift under those differences: the last ten within
# 5e-2. Both must fall, and every loss be finite.
python3 - "$tmp/runs/ac_cpu/metrics.jsonl" "$tmp/runs/ac_gpu/metrics.jsonl" $steps <<'EOF'
import json, math, sys
cpu, gpu = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
steps = int(sys.argv[3])
def check(name, ok, detail):
    print(("PASS " if ok else "FAIL ") + "gpu ac: " + name + ("" if ok else ": " + detail))
check("one metrics record per step on both", len(cpu) == steps and len(gpu) == steps, f"{len(cpu)}, {len(gpu)}")
if len(cpu) == steps and len(gpu) == steps:
    keys = ("loss_teacher_forcing", "loss_rollout")
    finite = all(math.isfinite(r[k]) for r in gpu for k in keys)
    check("every loss on cuda is finite", finite, "a NaN or Inf loss")
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)
    for k in keys:
        c0, g0, c1, g1 = mean(cpu[:10], k), mean(gpu[:10], k), mean(cpu[-10:], k), mean(gpu[-10:], k)
        check(f"{k}, first ten steps, cuda vs cpu (relative error < 3e-2)", abs(g0 - c0) < 3e-2 * c0,
              f"cuda {g0:.5f} cpu {c0:.5f}")
        check(f"{k}, last ten steps, cuda vs cpu (relative error < 5e-2)", abs(g1 - c1) < 5e-2 * c1,
              f"cuda {g1:.5f} cpu {c1:.5f}")
        print(f"     ({k}: first ten cuda {g0:.5f} cpu {c0:.5f}; last ten cuda {g1:.5f} cpu {c1:.5f})")
    check("the loss falls on cuda", mean(gpu[-10:], keys[0]) < mean(gpu[:10], keys[0]),
          f"{mean(gpu[:10], keys[0]):.5f} -> {mean(gpu[-10:], keys[0]):.5f}")
EOF
# Planning: 2 short episodes with each predictor on the GPU, and the GPU-trained one back on the CPU.
plan="configs/ac_tworooms.yaml ac.encoder_checkpoint=$enc --episodes 2 --per-episode --only model plan.samples=32
      plan.elites=4 plan.iterations=2 plan.step_limit=10"
for run in ac_gpu ac_cpu; do
    $jepa plan $plan --checkpoint $tmp/runs/$run $gpu > $tmp/plan_$run.log 2>&1
    rc=$?
    check "gpu ac: jepa plan on cuda with the predictor trained by $run (2 episodes, finite energies)" \
        "exit $rc: $(tail -4 $tmp/plan_$run.log)" bash -c "test $rc = 0 && grep -q '^device: cuda' $tmp/plan_$run.log &&
        test \$(grep -c ' episode ' $tmp/plan_$run.log) = 2 && grep -q '^ac model .*success' $tmp/plan_$run.log"
done
grep '^ac model' $tmp/plan_ac_gpu.log | sed 's/^/     /'
$jepa plan $plan --checkpoint $tmp/runs/ac_gpu meta.device=cpu meta.threads=4 > $tmp/plan_back.log 2>&1
rc=$?
check "gpu ac: the cuda-trained predictor plans on the cpu" "exit $rc: $(tail -4 $tmp/plan_back.log)" \
    bash -c "test $rc = 0 && grep -q '^ac model .*success' $tmp/plan_back.log"
# --fidelity ranks random plans by the predictor's energy: a finite correlation per episode on the GPU.
$jepa plan configs/ac_tworooms.yaml ac.encoder_checkpoint=$enc --checkpoint $tmp/runs/ac_gpu $gpu --episodes 2 \
    --per-episode plan.samples=16 --fidelity > $tmp/fid.log 2>&1
rho=$(grep -o 'rank correlation mean -\?[0-9.]*' $tmp/fid.log | awk '{print $4}')
check "gpu ac: --fidelity on cuda gives a rank correlation in [-1, 1]" "$(tail -4 $tmp/fid.log)" \
    awk -v r="$rho" 'BEGIN { exit !(r != "" && r >= -1 && r <= 1) }'
