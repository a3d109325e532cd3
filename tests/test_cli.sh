#!/usr/bin/env bash
# The jepa command as a user runs it: exit codes, messages naming keys, --dry-run figures, a short run's folder.
set -u
source "$(dirname "$0")/lib.sh"

out=$($jepa train configs/tiny.yaml optimization.lr=abc 2>&1); rc=$?
check "cli: bad override exits 2" "rc=$rc" [ "$rc" -eq 2 ]
check "cli: bad override names optimization.lr" "$out" grep -q "optimization.lr" <<< "$out"

out=$($jepa train configs/no-such.yaml 2>&1); rc=$?
check "cli: missing config exits 2 naming the file" "rc=$rc: $out" bash -c "[ $rc -eq 2 ] && grep -q no-such.yaml <<< \"\$0\"" "$out"

out=$($jepa frobnicate 2>&1); rc=$?
check "cli: unknown command exits 2" "rc=$rc" [ "$rc" -eq 2 ]

out=$($jepa train configs/tiny.yaml --bogus 2>&1); rc=$?
check "cli: unknown option exits 2" "rc=$rc: $out" bash -c "[ $rc -eq 2 ] && grep -q -- --bogus <<< \"\$0\"" "$out"

for sub in "" "train" "config"; do
    out=$($jepa $sub --help 2>&1); rc=$?
    check "cli: jepa $sub --help" "rc=$rc" bash -c "[ $rc -eq 0 ] && grep -q usage <<< \"\$0\"" "$out"
done

out=$($jepa --version 2>&1); rc=$?
check "cli: --version names version, commit and libraries" "$out" bash -c "[ $rc -eq 0 ] && grep -q commit <<< \"\$0\" && grep -q openblas <<< \"\$0\"" "$out"

out=$($jepa config --doc 2>&1); rc=$?
check "cli: config --doc documents optimization.lr" "rc=$rc" bash -c "[ $rc -eq 0 ] && grep -q optimization.lr <<< \"\$0\"" "$out"

# ViT-L/16: ~303.9M encoder parameters and the FLOPs per step.
out=$($jepa train configs/vitl16.yaml --dry-run 2>&1); rc=$?
echo "$out" | sed 's/^/     /'
check "cli: vitl16 --dry-run exits 0" "rc=$rc" [ "$rc" -eq 0 ]
check "cli: vitl16 --dry-run prints ~304M encoder parameters" "$out" grep -q "encoder 303.89M" <<< "$out"
check "cli: vitl16 --dry-run prints FLOPs per step in TFLOP" "$out" grep -Eq "FLOPs per step.*: [0-9.]+T" <<< "$out"
out=$($jepa train configs/vith16.yaml --dry-run 2>&1); rc=$?
check "cli: vith16 --dry-run prints ~632M encoder parameters" "rc=$rc: $out" grep -q "encoder 63[0-9].[0-9]*M" <<< "$out"

# A short run: the run folder holds the resolved config, provenance and one metrics record per step.
out=$($jepa train configs/tiny.yaml optimization.max_steps=3 logging.folder=$tmp/runs logging.write_tag=t 2>&1); rc=$?
check "cli: short run exits 0" "rc=$rc: $(tail -3 <<< "$out")" [ "$rc" -eq 0 ]
check "cli: run folder has config, provenance, log, metrics" "$(ls $tmp/runs/t 2>&1)" bash -c \
    "[ -s $tmp/runs/t/config.yaml ] && [ -s $tmp/runs/t/provenance.json ] && [ -s $tmp/runs/t/train.log ] && [ -s $tmp/runs/t/metrics.jsonl ]"
check "cli: metrics.jsonl has one record per step" "$(wc -l < $tmp/runs/t/metrics.jsonl 2>/dev/null)" \
    [ "$(wc -l < $tmp/runs/t/metrics.jsonl 2>/dev/null)" = 3 ]
out2=$($jepa train $tmp/runs/t/config.yaml optimization.max_steps=1 meta.resume=never 2>&1); rc=$?  # auto would resume t
check "cli: the saved config.yaml trains again (round trip)" "rc=$rc: $(tail -2 <<< "$out2")" [ "$rc" -eq 0 ]
check "cli: a second run never overwrites the first" "$(ls $tmp/runs)" [ -d $tmp/runs/t-2 ]
check "cli: provenance names the commit" "$(cat $tmp/runs/t/provenance.json)" grep -q '"commit"' $tmp/runs/t/provenance.json

# The CPU backend is bitwise deterministic: the same run twice gives the same losses.
for k in a b; do
    $jepa train configs/tiny.yaml optimization.max_steps=4 logging.folder=$tmp/det logging.write_tag=$k > /dev/null 2>&1
done
la=$(grep -o '"loss":[^,]*' $tmp/det/a/metrics.jsonl 2>/dev/null); lb=$(grep -o '"loss":[^,]*' $tmp/det/b/metrics.jsonl 2>/dev/null)
check "cli: two identical runs give bitwise identical losses" "$la vs $lb" bash -c "[ -n \"\$0\" ] && [ \"\$0\" = \"\$1\" ]" "$la" "$lb"
