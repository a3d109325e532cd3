#!/usr/bin/env bash
# model.attention: cudnn against native on the GPU: configs/tiny.yaml widened to heads of 64 (encoder 128 wide with
# 2 heads, predictor 64 wide with 1 head; 144 tokens, so N % 128 != 0 and the backward's padding-mask workaround runs)
# for 20 steps with each. The first step runs identical weights on an identical batch, so its loss (forward) and
# gradient norms (backward) differ only by rounding; the run log must say which attention ran. SKIP without a GPU.
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu attention backend"
steps=20
train() {  # $1 tag, $2 model.attention
    $jepa train configs/tiny.yaml meta.device=cuda meta.dtype=bfloat16 meta.deterministic=false \
        model.embed_dim=128 model.num_heads=2 model.pred_embed_dim=64 model.pred_num_heads=1 \
        optimization.max_steps=$steps logging.log_every=1 model.attention=$2 logging.folder=$tmp logging.write_tag=$1 2>&1
}
for a in native cudnn; do
    out=$(train $a $a); rc=$?
    if [ "$rc" -ne 0 ]; then fail "gpu attention backend: $a" "exited $rc: $(tail -5 <<< "$out")"; exit 1; fi
    pass "gpu attention backend: tiny (hd 64) trains $steps steps with model.attention=$a"
    printf '%s\n' "$out" > "$tmp/$a.out"
done
grep '^attention: ' "$tmp/cudnn.out" | sed 's/^/     /'
check "gpu attention backend: train.log's device line names cuDNN attention" "$(grep -m1 'device' "$tmp/cudnn/train.log")" \
    grep -q 'attention: cuDNN fused' "$tmp/cudnn/train.log"
check "gpu attention backend: the native run does not use cuDNN" "$(grep '^attention' "$tmp/native.out")" \
    bash -c "! grep -q 'attention: cuDNN\|runs cuDNN' '$tmp/native.out' '$tmp/native/train.log'"
check "gpu attention backend: every shape ran cuDNN, no plan evicted" "$(grep 'shapes ran cuDNN' "$tmp/cudnn.out")" \
    grep -Eq 'attention: [1-9][0-9]* shapes ran cuDNN, 0 ours; cuDNN plans built [0-9]+, evicted 0' "$tmp/cudnn.out"
# Tolerances. bf16 keeps 8 significant bits: the two implementations round attention outputs and gradients
# differently by up to one unit (2^-8 = 0.4% of an element), but the loss and the gradient norms are means over
# thousands of elements of such independent roundings, so they agree far closer; 1% at step 1 is loose for that and
# tight for a real fault (a wrong scale, a lost or doubled dqkv term moves them by tens of percent). Over 20 steps
# the rounding differences grow through the updates: the mean loss of the last ten steps within 3%.
python3 - "$tmp/native/metrics.jsonl" "$tmp/cudnn/metrics.jsonl" "${JEPA_ATT_TOL1:-0.01}" "${JEPA_ATT_TOL20:-0.03}" <<'PY'
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:3]]
tol1, tol20 = float(sys.argv[3]), float(sys.argv[4])
def rel(a, b): return abs(a - b) / max(abs(a), 1e-12)
def check(name, a, b, tol):
    r = rel(a, b)
    print(("PASS " if r <= tol else "FAIL ") + f"gpu attention backend: {name} agrees within {tol:.0%}" +
          (" (" if r <= tol else ": ") + f"native {a:.6g}, cudnn {b:.6g}, {r:.3%} apart" + (")" if r <= tol else ""))
n, c = rows
if len(n) != len(c) or not n:
    print(f"FAIL gpu attention backend: metrics records: native {len(n)}, cudnn {len(c)}"); sys.exit(0)
for key in ("loss", "grad_norm_encoder", "grad_norm_predictor"):
    check(f"step 1 {key}", n[0][key], c[0][key], tol1)
mean = lambda rs: sum(r["loss"] for r in rs[-10:]) / len(rs[-10:])
check("mean loss of the last ten steps", mean(n), mean(c), tol20)
print(f"     clips/s (last ten): native {sum(r['clips_per_s'] for r in n[-10:]) / 10:.0f}, "
      f"cudnn {sum(r['clips_per_s'] for r in c[-10:]) / 10:.0f}")
PY
