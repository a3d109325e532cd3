#!/usr/bin/env bash
# Checkpoints as a user meets them (tests/test_checkpoint.c tests the pieces): a run interrupted and resumed gives the uninterrupted run's losses bit for bit;
# a finished run has nothing left to do; keep-K rotation; a corrupt newest checkpoint falls back to the previous one;
# refusals (mismatched config, corrupt manifest, truncated tensor file, header lying about offsets) exit 2 naming the
# file; `jepa export` matches the official key list and PyPI's safetensors reads every file we write; the converter
# round-trips through the official .pth.tar format (when PyTorch is installed).
set -u
source "$(dirname "$0")/lib.sh"
has() { grep -q -- "$2" <<< "$1"; }  # text, fixed-ish pattern
train() { $jepa train configs/tiny.yaml meta.threads=2 logging.folder=$tmp "$@" 2>&1; }
losses() { grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' "$1" 2>/dev/null; }
steps_of() { ls "$1/checkpoints" 2>/dev/null | tr '\n' ' '; }

# ---- bit-exact resume: 6 steps uninterrupted vs 4 steps (checkpoint at 3, killed before any later one) + resume
train logging.write_tag=full optimization.max_steps=6 > /dev/null
train logging.write_tag=cut optimization.max_steps=4 logging.checkpoint_every=3 > /dev/null
rm -rf $tmp/cut/checkpoints/step_000004  # the kill came before the end-of-run checkpoint
out=$(train logging.write_tag=cut optimization.max_steps=6); rc=$?
check "resume: exits 0 and says which checkpoint it resumed from" "rc=$rc: $(head -3 <<< "$out")" \
    has "$out" "resuming from $tmp/cut/checkpoints/step_000003 (step 3, next sample 24)"
check "resume: the change of optimization.max_steps is reported" "$(head -3 <<< "$out")" \
    has "$out" "optimization.max_steps: 4 -> 6"
full=$(losses $tmp/full/metrics.jsonl); cut=$(losses $tmp/cut/metrics.jsonl)
check "resume: every loss equals the uninterrupted run's bit for bit" "$(diff <(echo "$full") <(echo "$cut"))" \
    bash -c '[ "$(wc -l <<< "$0")" = 6 ] && [ "$0" = "$1" ]' "$full" "$cut"

# ---- a finished run has nothing to do (make run twice); meta.resume=never starts a new folder
out=$(train logging.write_tag=full optimization.max_steps=6); rc=$?
check "resume: a finished run says there is nothing to train and exits 0" "rc=$rc: $(tail -2 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'nothing to train: the run is at step 6 of 6' <<< \"\$0\"" "$out"
check "resume: ...and leaves the metrics as they were" "$(losses $tmp/full/metrics.jsonl | wc -l)" \
    [ "$(losses $tmp/full/metrics.jsonl)" = "$full" ]
train logging.write_tag=full optimization.max_steps=1 meta.resume=never > /dev/null
check "resume: meta.resume=never starts a new run folder (full-2)" "$(ls $tmp)" [ -s $tmp/full-2/metrics.jsonl ]

# ---- keep-K rotation, and a corrupt newest checkpoint: reported, the previous one used
train logging.write_tag=rot optimization.max_steps=6 logging.checkpoint_every=1 logging.keep=2 > /dev/null
check "rotation: logging.keep=2 leaves the newest two" "$(steps_of $tmp/rot)" \
    [ "$(steps_of $tmp/rot)" = "step_000005 step_000006 " ]
/usr/bin/python3 - "$tmp/rot/checkpoints/step_000006/model.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:  # one byte of the data flipped: same size, different hash
    f.seek(-100, 2); b = f.read(1); f.seek(-100, 2); f.write(bytes([b[0] ^ 0x5A]))
PY
out=$(train logging.write_tag=rot optimization.max_steps=7 logging.checkpoint_every=1 logging.keep=2); rc=$?
check "fallback: the corrupt newest checkpoint is reported" "$(head -3 <<< "$out")" \
    has "$out" "step_000006 does not verify, skipped: .*model.safetensors: xxh3_64"
check "fallback: the previous checkpoint is used" "rc=$rc: $(head -3 <<< "$out")" \
    has "$out" "resuming from $tmp/rot/checkpoints/step_000005"
check "fallback: step 6 trained again gives the uninterrupted loss" "$(losses $tmp/rot/metrics.jsonl | sed -n 6p)" \
    [ "$(losses $tmp/rot/metrics.jsonl | sed -n 6p)" = "$(sed -n 6p <<< "$full")" ]
check "rotation: the bad step 6 was replaced and step 5 rotated out" "$(steps_of $tmp/rot)" \
    [ "$(steps_of $tmp/rot)" = "step_000006 step_000007 " ]

# ---- refusals
out=$(train logging.write_tag=rot optimization.max_steps=8 model.depth=2); rc=$?
check "refusal: a mismatched config exits 2" "rc=$rc" [ "$rc" -eq 2 ]
check "refusal: ...listing the differing key and tensors" "$out" bash -c \
    "grep -q 'refusing to resume: .*model.depth: 4 in the checkpoint, 2 in the config' <<< \"\$0\" && grep -q 'encoder.blocks.2.norm1.weight \[96\]: in the checkpoint, not in the model' <<< \"\$0\"" "$out"
cp -r $tmp/full $tmp/man && rm -rf $tmp/man-2
echo '{"format": "jepa.c checkpoint manifest", "files": {' > $tmp/man/checkpoints/step_000006/manifest.json
out=$(train logging.write_tag=man optimization.max_steps=8 meta.resume=must); rc=$?
check "refusal: a corrupt manifest with meta.resume=must exits 2 naming manifest.json" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q 'man/checkpoints/step_000006/manifest.json: not a JSON object' <<< \"\$0\" && grep -q 'meta.resume=must: no checkpoint' <<< \"\$0\"" "$out"
out=$(train logging.write_tag=man optimization.max_steps=1); rc=$?
check "refusal: ...and with meta.resume=auto starts fresh in a new folder, saying why" "rc=$rc: $(head -3 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && [ -d $tmp/man-2 ] && grep -q 'no checkpoint in $tmp/man/checkpoints verifies; starting fresh in $tmp/man-2' <<< \"\$0\"" "$out"
cp -r $tmp/full $tmp/trunc
truncate -s -1000 $tmp/trunc/checkpoints/step_000006/optimizer.safetensors
out=$(train logging.write_tag=trunc optimization.max_steps=8 meta.resume=must); rc=$?
check "refusal: a truncated tensor file exits 2 naming it" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q 'optimizer.safetensors: [0-9]* bytes, the manifest says [0-9]* (truncated or rewritten)' <<< \"\$0\"" "$out"
cp -r $tmp/full $tmp/lie
/usr/bin/python3 - "$tmp/lie/checkpoints/step_000006" <<'PY'
import json, struct, sys
sys.path.insert(0, "scripts")
import ckpt_io
path = sys.argv[1] + "/model.safetensors"
data = open(path, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
header["encoder.norm.bias"]["data_offsets"][1] += 4  # claims 4 bytes more than its shape holds
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
ckpt_io.write_manifest(sys.argv[1], 6)  # a consistent manifest: only the header lies
PY
out=$(train logging.write_tag=lie optimization.max_steps=8 meta.resume=must); rc=$?
check "refusal: a header lying about offsets exits 2 naming the tensor" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q 'model.safetensors: tensor .encoder.norm.bias.: data_offsets .* hold 388 bytes, its dtype and shape need 384' <<< \"\$0\"" "$out"
out=$(train logging.write_tag=nothing meta.resume=must); rc=$?
check "refusal: meta.resume=must without a run folder exits 2" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q 'meta.resume=must: there is no run folder' <<< \"\$0\"" "$out"

# ---- export
out=$($jepa export $tmp/full -o $tmp/target.safetensors 2>&1); rc=$?
check "export: a run folder exports its newest checkpoint's target encoder" "rc=$rc: $out" \
    has "$out" "exported target of $tmp/full/checkpoints/step_000006: 53 tensors"
$jepa export $tmp/full/checkpoints/step_000006 --what predictor -o $tmp/predictor.safetensors > /dev/null 2>&1
out=$($jepa export $tmp/full --what decoder -o $tmp/x.safetensors 2>&1); rc=$?
check "export: --what decoder exits 2 saying what is expected" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q 'expected target, encoder or predictor' <<< \"\$0\"" "$out"
out=$($jepa export $tmp/nowhere -o $tmp/x.safetensors 2>&1); rc=$?
check "export: a path that is no checkpoint exits 2 naming it" "rc=$rc: $out" bash -c \
    "[ $rc -eq 2 ] && grep -q '$tmp/nowhere: expected a checkpoint folder' <<< \"\$0\"" "$out"
out=$($jepa export $tmp/trunc -o $tmp/x.safetensors 2>&1); rc=$?
check "export: a checkpoint that does not verify exits 2" "rc=$rc: $out" [ "$rc" -eq 2 ]
out=$($jepa export --help 2>&1); rc=$?
check "export: --help" "rc=$rc" bash -c "[ $rc -eq 0 ] && grep -q 'strict=True' <<< \"\$0\"" "$out"

# ---- Python: PyPI's safetensors reads our files; the export has the official names and shapes
py=build/venv/bin/python
[ -x $py ] && $py -c "import safetensors" 2>/dev/null || bash scripts/python_env.sh > /dev/null
if ! { [ -x $py ] && $py -c "import safetensors.numpy" 2>/dev/null; }; then
    skip "python" "PyPI safetensors not installable here (scripts/python_env.sh; see build/venv.log)"
else
    $py - "$tmp" <<'PY'
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
tmp = sys.argv[1]
ck = tmp + "/full/checkpoints/step_000006"
def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
model, opt = load_file(ck + "/model.safetensors"), load_file(ck + "/optimizer.safetensors")
with safe_open(ck + "/model.safetensors", "np") as f:
    meta = f.metadata()
check("python: safetensors reads model.safetensors (encoder, predictor, target encoder)",
      len(model) == 136 and model["encoder.patch_embed.proj.weight"].shape == (96, 3, 2, 8, 8)
      and "target_encoder.norm.weight" in model and meta.get("step") == "6", (len(model), meta))
check("python: safetensors reads optimizer.safetensors (exp_avg, exp_avg_sq)",
      len(opt) == 168 and all(v.dtype == np.float32 for v in opt.values()), len(opt))
official = json.load(open("tests/data/official_keys_tiny.json"))
for what, part in (("target", "encoder"), ("predictor", "predictor")):
    exported = load_file(f"{tmp}/{what}.safetensors")
    want = {k: tuple(s) for k, s in official[part]}
    got = {k: v.shape for k, v in exported.items()}
    check(f"python: the exported {what} has the official {part} keys and shapes", got == want,
          sorted(set(got.items()) ^ set(want.items()))[:4])
exported = load_file(tmp + "/target.safetensors")
same = all(np.array_equal(exported[k[len("target_encoder."):]], v) for k, v in model.items()
           if k.startswith("target_encoder."))
check("python: the exported weights are the checkpoint's target encoder, bit for bit", same)
PY
fi

# ---- the converter: jepa.c -> official .pth.tar -> jepa.c, then resumed: the same losses as uninterrupted
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    skip "convert" "PyTorch is not installed (apt-get install python3-torch)"
else
    conv="/usr/bin/python3 scripts/convert_vjepa_checkpoint.py"
    $conv to-official $tmp/cut/checkpoints/step_000003 -o $tmp/vjepa.pth.tar > /dev/null 2>&1
    out=$($conv to-jepa $tmp/vjepa.pth.tar --config configs/tiny.yaml -o $tmp/conv/checkpoints/step_000003 2>&1); rc=$?
    check "convert: official .pth.tar back to a jepa.c checkpoint" "rc=$rc: $out" has "$out" "step 3, 136 weight tensors"
    out=$(train logging.write_tag=conv optimization.max_steps=6 meta.resume=must); rc=$?
    conv_losses=$(losses $tmp/conv/metrics.jsonl)
    check "convert: resumed after the round trip, steps 4-6 equal the uninterrupted run's losses" \
        "rc=$rc: $conv_losses vs $(sed -n 4,6p <<< "$full")" [ "$conv_losses" = "$(sed -n 4,6p <<< "$full")" ]
    out=$(/usr/bin/python3 - $tmp/vjepa.pth.tar <<'PY'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu")
enc = ck["encoder"]
print("keys", len(enc), "pos", tuple(enc["module.backbone.pos_embed"].shape), "groups", len(ck["opt"]["param_groups"]),
      "state", len(ck["opt"]["state"]), "epoch", ck["epoch"])
PY
)
    check "convert: the .pth.tar has the official layout (module.backbone.*, 4 AdamW groups)" "$out" \
        has "$out" "keys 53 pos (1, 144, 96) groups 4 state 84 epoch 0"
    out=$($conv to-official $tmp/cut/checkpoints/step_000003 -o $tmp/v16.pth.tar --num-frames 16 2>&1); rc=$?
    check "convert: position tables interpolated to another frame count" "rc=$rc: $out" \
        has "$out" "interpolated from (4, 6, 6) to (8, 6, 6)"
fi

# ---- against the real official classes, when a checkout of facebookresearch/jepa is named
if [ -z "${JEPA_OFFICIAL_SRC:-}" ] || ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    skip "official" "strict load into the official classes needs PyTorch and JEPA_OFFICIAL_SRC=<facebookresearch/jepa checkout>"
else
    for what in target predictor; do
        out=$(/usr/bin/python3 scripts/official_keys.py check --official-src "$JEPA_OFFICIAL_SRC" \
            --keys tests/data/official_keys_tiny.json --what $what $tmp/$what.safetensors 2>&1); rc=$?
        check "official: load_state_dict(strict=True) of the exported $what" "rc=$rc: $out" [ "$rc" -eq 0 ]
    done
fi
