#!/usr/bin/env bash
# `jepa bench`: help texts, the no-GPU exit, and `bench step` on the CPU backend (tiny config): its tables, its JSON,
# and FLOPs that equal an independent count by the DESIGN rule at the logged mask lengths. With a GPU, a short
# `bench step` and one kernel target on it as well.
set -u
source "$(dirname "$0")/lib.sh"

for args in "" "kernels" "attention" "layernorm" "ema" "adamw" "fusion" "gemm" "step" "data"; do
    out=$($jepa bench $args --help 2>&1); rc=$?
    check "bench: jepa bench${args:+ $args} --help" "rc=$rc: $(head -3 <<< "$out")" \
        bash -c "[ $rc -eq 0 ] && grep -q '^usage: jepa bench' <<< \"\$0\"" "$out"
done

out=$($jepa bench frobnicate 2>&1); rc=$?
check "bench: unknown target exits 2 naming the targets" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q 'kernels' <<< \"\$0\"" "$out"

# No GPU visible (hidden on a GPU machine): the kernel targets exit 2 and say why.
for target in kernels attention gemm; do
    out=$(CUDA_VISIBLE_DEVICES= $jepa bench $target 2>&1); rc=$?
    check "bench: bench $target without a GPU exits 2 with the reason" "rc=$rc: $out" \
        bash -c "[ $rc -eq 2 ] && grep -q 'needs a CUDA GPU: .' <<< \"\$0\"" "$out"
done
out=$(CUDA_VISIBLE_DEVICES= $jepa bench step configs/tiny.yaml meta.device=cuda 2>&1); rc=$?
check "bench: bench step with meta.device=cuda and no GPU exits 2" "rc=$rc: $out" [ "$rc" -eq 2 ]

# Checks a `bench step --json` file: fields, one record per timed step, and FLOPs = the DESIGN rule at the logged
# mask lengths, counted here per token and layer independently of host/flops.c.
check_step_json() {  # file, steps, runs (space-separated)
    /usr/bin/python3 - "$@" <<'PY'
import json, math, sys
path, steps, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
j = json.load(open(path))
for key in ("target", "device", "date_utc", "commit", "command", "model", "gemm_ceiling_tflops", "runs"):
    assert key in j, f"missing {key}"
m = j["model"]
assert m["accum_steps"] == 1, "the count below takes one micro-batch per step"
B, N, C, L, H, Hd = m["batch"], m["tokens"], m["enc_width"], m["enc_depth"], m["enc_heads"], m["enc_mlp_hidden"]
P, Lp, Hp, Hdp = m["pred_width"], m["pred_depth"], m["pred_heads"], m["pred_mlp_hidden"]
enc_tok = 2 * (4 * C * C + 2 * C * Hd)   # qkv 3C^2, proj C^2, fc1 and fc2 C*Hd: 2 FLOPs per multiply-add
pred_tok = 2 * (4 * P * P + 2 * P * Hdp)
def attn(h, n, d): return 4.0 * B * h * n * n * d
def design_flops(ctx, tgt):
    patch = 2.0 * B * N * m["patch_dim"] * C
    f = patch + B * N * L * enc_tok + L * attn(H, N, C / H)          # target encoder, forward only
    f += 2 * patch                                                   # patch embedding forward + weight gradient
    for nc, nt in zip(ctx, tgt):
        npred = nc + nt
        f += 3 * B * nc * L * enc_tok + 3.5 * L * attn(H, nc, C / H)  # context encoder: forward, 2x backward
        f += 3 * (B * npred * Lp * pred_tok + 2 * B * nc * C * P + 2 * B * nt * P * C)
        f += 3.5 * Lp * attn(Hp, npred, P / Hp)
    return f
phases = {"target_fwd", "context_fwd", "predictor_fwd", "predictor_bwd", "context_bwd", "optimizer", "input_wait",
          "host_wait"}
for name in runs:
    r = j["runs"][name]
    for key in ("step_ms_median", "clips_per_s", "flops_per_step", "tflops", "mfu", "peak_memory_bytes"):
        assert r[key] > 0 and math.isfinite(r[key]), f"{name}.{key} = {r[key]}"
    assert set(r["phases_ms"]) == phases, sorted(r["phases_ms"])
    assert len(r["per_step"]) == steps, f"{name}: {len(r['per_step'])} step records, expected {steps}"
    for s in r["per_step"]:
        want = design_flops(s["tokens_context"], s["tokens_target"])
        assert abs(s["flops"] - want) <= 1e-9 * want, f"{name} step {s['step']}: {s['flops']} vs {want}"
        assert abs(sum(s["phases_ms"].values()) - s["clock_ms"]) <= 1e-6 * s["clock_ms"] + 1e-6
    mean = sum(s["flops"] for s in r["per_step"]) / steps
    assert abs(r["flops_per_step"] - mean) <= 1e-9 * mean
print(f"json ok: {len(runs)} runs x {steps} steps, FLOPs per step {j['runs'][runs[0]]['flops_per_step']:.4e}")
PY
}

out=$(CUDA_VISIBLE_DEVICES= $jepa bench step configs/tiny.yaml meta.device=cpu --steps 2 --warmup 1 \
      --json $tmp/step.json 2>&1); rc=$?
echo "$out" | sed 's/^/     /'
check "bench: bench step tiny on the CPU exits 0" "rc=$rc" [ "$rc" -eq 0 ]
check "bench: bench step prints the step and phase tables" "$(tail -5 <<< "$out")" \
    bash -c "grep -q '^| staged ' <<< \"\$0\" && grep -q '^| loader ' <<< \"\$0\" && grep -q '^| target forward' <<< \"\$0\" && grep -q 'loader / staged clips/s' <<< \"\$0\"" "$out"
res=$(check_step_json $tmp/step.json 2 "staged loader" 2>&1); rc=$?
check "bench: bench step JSON has the fields; FLOPs = the DESIGN rule at the logged mask lengths" "$res" [ "$rc" -eq 0 ]

out=$(CUDA_VISIBLE_DEVICES= $jepa bench step configs/tiny.yaml meta.device=cpu --steps 2 --warmup 0 --staged-only \
      --ceiling 1 optimization.accum_steps=1 --json $tmp/bogus/step.json 2>&1); rc=$?
check "bench: an unwritable --json exits 2 naming the file" "rc=$rc: $(tail -2 <<< "$out")" \
    bash -c "[ $rc -eq 2 ] && grep -q 'bogus/step.json' <<< \"\$0\"" "$out"

# With a GPU: the CUDA event path of bench step, and one kernel target end to end.
devices=$($jepa --devices 2>&1)
if ! grep -q '^cuda:0 ' <<< "$devices"; then
    skip "bench: bench step and bench ema on the GPU" "$(head -1 <<< "$devices")"
    exit 0
fi
out=$($jepa bench step configs/tiny.yaml meta.device=cuda meta.dtype=bfloat16 --steps 3 --warmup 1 \
      --json $tmp/gpu_step.json 2>&1); rc=$?
echo "$out" | sed 's/^/     /'
res=$(check_step_json $tmp/gpu_step.json 3 "staged loader" 2>&1); rc2=$?
check "bench: bench step tiny on the GPU (CUDA events); JSON and FLOPs as on the CPU" "rc=$rc: $res" \
    bash -c "[ $rc -eq 0 ] && [ $rc2 -eq 0 ]"
out=$($jepa bench ema --seconds 0.05 --json $tmp/ema.json 2>&1); rc=$?
echo "$out" | sed 's/^/     /'
check "bench: bench ema on the GPU writes its table and JSON" "rc=$rc: $(tail -3 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j[\"memory_bound\"][0][\"timing\"][\"gbps\"] > 0' $tmp/ema.json"
