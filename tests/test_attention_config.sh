#!/usr/bin/env bash
# model.attention (native|cudnn): documented by `jepa config --doc`, and cudnn refused (exit 2, the key named, a
# HINT) wherever it cannot be honoured: meta.device cpu, meta.device auto with no GPU, meta.deterministic true.
set -u
source "$(dirname "$0")/lib.sh"

out=$($jepa config --doc 2>&1); rc=$?
check "attention config: config --doc lists model.attention native|cudnn" "rc=$rc: $(grep attention <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -E 'model\.attention.*native' <<< \"\$0\" | grep -q cudnn" "$out"
check "attention config: docs/config.md has a model.attention row" "no row" grep -q '^| `model.attention` |' docs/config.md

# refused: exit 2 with one message naming the key; $1 test name, $2 text the message must hold, the rest: overrides
refused() {
    local name=$1 want=$2; shift 2
    local out rc
    out=$($jepa train configs/tiny.yaml optimization.max_steps=1 logging.folder=$tmp logging.write_tag=att "$@" 2>&1)
    rc=$?
    check "attention config: $name exits 2 naming model.attention" "rc=$rc: $(tail -3 <<< "$out")" \
        bash -c "[ $rc -eq 2 ] && grep -q 'model.attention: cudnn' <<< \"\$0\" && grep -q 'HINT' <<< \"\$0\" \
                 && grep -q \"\$1\" <<< \"\$0\"" "$out" "$want"
}
refused "cudnn with meta.device cpu" "meta.device=cuda" model.attention=cudnn meta.device=cpu meta.deterministic=false
refused "cudnn with meta.deterministic true" "meta.deterministic=false" model.attention=cudnn meta.device=cuda \
    meta.dtype=bfloat16
if ! grep -q '^cuda:0 ' <<< "$($jepa --devices 2>&1)"; then  # auto falls back to the CPU here
    refused "cudnn with meta.device auto and no GPU" "found none" model.attention=cudnn meta.device=auto \
        meta.deterministic=false meta.dtype=float32
else
    skip "attention config: cudnn with meta.device auto and no GPU" "this machine has a GPU"
fi
out=$($jepa train configs/tiny.yaml model.attention=bogus optimization.max_steps=1 logging.folder=$tmp 2>&1); rc=$?
check "attention config: an unknown model.attention exits 2 listing native|cudnn" "rc=$rc: $out" \
    bash -c "[ $rc -eq 2 ] && grep -q 'model.attention' <<< \"\$0\" && grep -q 'native' <<< \"\$0\"" "$out"
