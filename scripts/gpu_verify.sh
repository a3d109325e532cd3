#!/usr/bin/env bash
# One GPU session's checks and figures in one command (device time is short; a call costs a machine start):
#   1. scripts/gpu_check.sh OUT build tests train: build, every CUDA kernel test (tests/test_cuda_*), the GPU
#      end-to-end tests (tests/test_gpu_*: training, resume, numerical faults, one-rank NCCL); model.kind ac on
#      CUDA (tests/test_cuda_ac.c against the CPU, tests/test_gpu_ac.sh: jepa train and jepa plan; never yet run
#      on a GPU);
#   2. jepa bench layernorm, rope and step (ViT-L/16 with its kernel-family profile, V-JEPA 2 ViT-L and ViT-g),
#      each into OUT/*.json beside its table;
#   3. with JEPA_STORES=DIR (JPEG stores made where ffmpeg is, scripts/bench_data_jpeg.sh): jepa bench data on
#      them and on a synthetic raw store, thread counts up to all cores;
#   3b. the opt-in paths awaiting a GPU (JEPA_ATTN_SM90, model.attention=cudnn, JEPA_FUSE_GELU, JEPA_FUSE_LN,
#      JEPA_FUSE_EMA) timed beside the defaults;
#   4. with JEPA_VJEPA2_SRC=DIR (a facebookresearch/vjepa2 checkout): the feature parity of scripts/vjepa2_parity.py
#      on the GPU.
# Usage: bash scripts/gpu_verify.sh OUT [STEPS]   (about 6-8 minutes on one H100; every stage runs, rc 1 if any fails)
set -u
out=${1:?usage: gpu_verify.sh OUT [STEPS]}
steps=${2:-10}
mkdir -p "$out"
status=0
stage() {  # name, command...: runs it, logs to OUT/name.txt, prints the log's tail and the time
    local name=$1 t0=$(date +%s) rc
    shift
    "$@" > "$out/$name.txt" 2>&1; rc=$?
    echo "=== $name: rc=$rc, $(( $(date +%s) - t0 )) s"
    tail -n "${TAIL:-25}" "$out/$name.txt"
    [ $rc -eq 0 ] || status=1
}
bash scripts/gpu_check.sh "$out/check" build tests train || status=1
[ -x build/jepa ] || { echo "no build/jepa: stopping"; exit 1; }
TAIL=8 stage layernorm build/jepa bench layernorm --json "$out/layernorm.json"
TAIL=8 stage rope build/jepa bench rope --json "$out/rope.json"
TAIL=40 stage step_vitl16 build/jepa bench step configs/vitl16.yaml --staged-only --steps "$steps" --json "$out/step_vitl16.json"
# V-JEPA 2 ViT-L without activation checkpointing (the 30 clips/s figure), ViT-g with it (10.8 clips/s)
TAIL=12 stage step_vjepa2_vitl16 build/jepa bench step configs/vjepa2_vitl16.yaml --staged-only --no-kernels \
    --steps "$steps" --json "$out/step_vjepa2_vitl16.json" model.checkpoint_activations=false
TAIL=12 stage step_vjepa2_vitg16 build/jepa bench step configs/vjepa2_vitg16.yaml --staged-only --no-kernels \
    --steps 4 --warmup 2 --json "$out/step_vjepa2_vitg16.json"
# The opt-in GPU paths built without a GPU (session 4), timed beside the defaults; their correctness tests ran in
# stage 1 (test_cuda_attention_sm90, test_cuda_attention_backend, test_cuda_gelu_fused, test_gpu_attention_backend).
TAIL=30 stage attention build/jepa bench attention --json "$out/attention.json"
TAIL=30 stage attention_sm90 env JEPA_ATTN_SM90=1 build/jepa bench attention --json "$out/attention_sm90.json"
TAIL=30 stage attention_sm90_ordered env JEPA_ATTN_SM90=1 JEPA_ATTN_SM90_DQ=ordered build/jepa bench attention \
    --json "$out/attention_sm90_ordered.json"
for variant in native cudnn; do  # cuDNN's attention needs meta.deterministic false: the baseline runs the same
    TAIL=40 stage "step_vitl16_nondet_$variant" build/jepa bench step configs/vitl16.yaml --staged-only \
        --steps "$steps" --json "$out/step_vitl16_nondet_$variant.json" meta.deterministic=false model.attention=$variant
done
TAIL=40 stage step_vitl16_fuse_gelu env JEPA_FUSE_GELU=1 build/jepa bench step configs/vitl16.yaml --staged-only \
    --steps "$steps" --json "$out/step_vitl16_fuse_gelu.json"
# issue 9 item 2 (tests: test_cuda_fusion in stage 1): the fused add + LayerNorm and AdamW + EMA beside the ops they
# replace, then the ViT-L step with both on (JEPA_FUSE_LN=1 JEPA_FUSE_EMA=1; bitwise the default's numbers)
TAIL=14 stage fusion build/jepa bench fusion --json "$out/fusion.json"
TAIL=40 stage step_vitl16_fuse_ln_ema env JEPA_FUSE_LN=1 JEPA_FUSE_EMA=1 build/jepa bench step configs/vitl16.yaml \
    --staged-only --steps "$steps" --json "$out/step_vitl16_fuse_ln_ema.json"
if [ -n "${JEPA_STORES:-}" ]; then
    raw=/tmp/gpu_verify_raw.h5  # a raw store for the read rate (no decode: its content does not matter)
    stage raw_store build/jepa data synth --world balls --size 256 --frames 64 --clips 64 -o "$raw" --force
    TAIL=40 stage bench_data build/jepa bench data "$raw" "$JEPA_STORES"/*.h5 --seconds 3 --threads 1,2,4,8,$(nproc)
fi
if [ -n "${JEPA_VJEPA2_SRC:-}" ]; then
    stage vjepa2_parity python3 scripts/vjepa2_parity.py --official-src "$JEPA_VJEPA2_SRC" \
        --config configs/vjepa2_vitl16.yaml --device cuda data.batch_size=1
fi
echo "gpu_verify: exit $status"
exit $status
