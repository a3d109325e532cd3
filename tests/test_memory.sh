#!/usr/bin/env bash
# Memory as a user sees it: model.checkpoint_every and model.checkpoint_activations together, the dry run's memory
# plan (per category, smaller with checkpointing), and a short CPU run logging its peak (run log, metrics.jsonl) equal
# to the plan the dry run prints for the CPU backend.
set -u
source "$(dirname "$0")/lib.sh"

out=$($jepa train configs/tiny.yaml model.checkpoint_activations=true model.checkpoint_every=2 --dry-run 2>&1); rc=$?
check "memory: checkpoint_activations true with checkpoint_every 2 exits 2 naming both keys" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q 'model.checkpoint_activations' <<< \"\$0\" && grep -q 'model.checkpoint_every' <<< \"\$0\"" "$out"
out=$($jepa train configs/tiny.yaml model.checkpoint_activations=true model.checkpoint_every=1 --dry-run 2>&1); rc=$?
check "memory: checkpoint_activations true with checkpoint_every 1 is accepted" "rc=$rc: $(tail -2 <<< "$out")" \
    [ "$rc" -eq 0 ]

# The plan's total line, in GiB: "  total   12.34 GiB (...)".
plan_total() { awk '$1 == "total" { print $2 }' <<< "$1"; }
out0=$($jepa train configs/vith16.yaml --dry-run 2>&1)
out1=$($jepa train configs/vith16.yaml model.checkpoint_every=1 --dry-run 2>&1)
for row in "master weights (fp32)" "AdamW moments (fp32)" "activation arena" "input clips" "not planned"; do
    check "memory: vith16 --dry-run plan has '$row'" "$out0" grep -qF "$row" <<< "$out0"
done
t0=$(plan_total "$out0"); t1=$(plan_total "$out1")
check "memory: vith16 plan smaller with checkpoint_every 1 ($t0 -> $t1 GiB)" "'$t0' '$t1'" \
    awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(a > 0 && b > 0 && b < a) }'
old=$(grep -c "model.checkpoint_every 1" <<< "$($jepa train configs/vjepa2_vitg16.yaml --dry-run 2>&1)")
check "memory: vjepa2_vitg16 (checkpoint_activations: true) plans with checkpoint_every 1" "$old" [ "$old" -eq 1 ]

# A 3-step CPU run: the peak of the backend's allocations is the whole plan (model_create allocates exactly it;
# nothing else in the trainer allocates on the backend), in every metrics record and in the run log.
args=(model.checkpoint_every=2 optimization.max_steps=3 meta.threads=1 logging.folder=$tmp/runs logging.write_tag=mem)
planned=$($jepa train configs/tiny.yaml "${args[@]}" --dry-run | sed -n 's/.*CPU backend (float32).*(\([0-9]*\) bytes)/\1/p')
if ! out=$(nice -n 5 $jepa train configs/tiny.yaml "${args[@]}" 2>&1); then
    fail "memory: tiny run" "$(tail -2 <<< "$out")"
    exit 0
fi
res=$(python3 - "$tmp/runs/mem/metrics.jsonl" "$planned" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
planned = int(sys.argv[2])
peaks = [r.get("mem_peak_gib") for r in rows]
assert len(rows) == 3 and all(p is not None for p in peaks), f"records {len(rows)}, mem_peak_gib {peaks}"
for p in peaks:  # a double of GiB: 2^30 * p is the byte count to well under a byte
    assert abs(p * 2**30 - planned) < 1, f"mem_peak_gib {p} = {p * 2**30:.0f} bytes, plan {planned}"
print("ok")
EOF
)
check "memory: metrics.jsonl mem_peak_gib on every step equals the CPU plan ($planned bytes)" "$res" [ "$res" = ok ]
log=$tmp/runs/mem/train.log
check "memory: run log has the peak after the first step and at the end" "$(grep memory $log)" \
    bash -c "grep -q '^memory after the first step: peak' $log && grep -q '^memory at the end: peak' $log"
