#!/usr/bin/env bash
# On a GPU machine, once `bash scripts/gpu_check.sh OUT build` has built build/jepa (this script builds nothing):
#   1. jepa bench kernels: ceilings, attention (cuDNN beside), LayerNorm, EMA, AdamW, GEMMs at the V-JEPA shapes;
#   2. a 16x224 store of 96 bouncing-balls clips of 64 frames (configs' 16 frames at sampling_rate 4), off OUT;
#   3. jepa bench step configs/vitl16.yaml (ViT-L/16, batch 24): STEPS steps on a staged batch, then the same steps
#      through the HDF5 loader reading that store.
# Tables on stdout (the step's last) and in OUT/*.txt; every figure in OUT/kernels.json and OUT/step.json.
# Usage: bash scripts/gpu_bench.sh OUT [STEPS]    (about 2 to 3 minutes on one H100 with 16 cores)
set -u
out=${1:?usage: gpu_bench.sh OUT [STEPS]}
steps=${2:-20}
store=${JEPA_BENCH_STORE:-/tmp/jepa_bench_16x224.h5}
mkdir -p "$out"
[ -x build/jepa ] || { echo "build/jepa is missing: run scripts/gpu_check.sh OUT build first"; exit 1; }
status=0
t0=$(date +%s)
build/jepa --devices | tee "$out/devices.txt"
build/jepa bench kernels --json "$out/kernels.json" > "$out/kernels.txt" 2>&1 || status=1
cat "$out/kernels.txt"
t1=$(date +%s)
echo "bench kernels: $((t1 - t0)) s"
if [ ! -s "$store" ]; then
    build/jepa data synth --world balls --size 224 --frames 64 --clips 96 -o "$store" --force > "$out/synth.txt" 2>&1 ||
        { tail -5 "$out/synth.txt"; exit 1; }
fi
t2=$(date +%s)
echo "store $store: $(du -h "$store" | cut -f1) in $((t2 - t1)) s"
build/jepa bench step configs/vitl16.yaml --steps "$steps" "data.datasets=[$store]" --json "$out/step.json" \
    > "$out/step.txt" 2>&1 || status=1
cat "$out/step.txt"
echo "bench step: $(( $(date +%s) - t2 )) s; total $(( $(date +%s) - t0 )) s; exit $status"
exit $status
