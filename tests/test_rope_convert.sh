#!/usr/bin/env bash
# test_rope_convert.sh: scripts/convert_vjepa_checkpoint.py with V-JEPA 2 (model.pos_embed: rope3d) checkpoints,
# on small random models on the CPU (PyTorch needed; SKIP without it):
#   - jepa.c -> official .pt: V-JEPA 2 names (module.backbone.*), no position tables, one mask token per generator;
#   - back to jepa.c: every weight and moment bit for bit, and the run resumes from it (meta.resume=must);
#   - a file shaped like V-JEPA 2's released weights, built by hand from it (no optimizer, epoch or target encoder;
#     pos_embed tables; 10 mask tokens as the official hub builds): converts with notes, weights exact, target = the
#     encoder, moments zero, and trains from there.
source "$(dirname "$0")/lib.sh"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    skip "rope convert" "PyTorch is not installed (apt-get install python3-torch)"; exit 0
fi
conv="/usr/bin/python3 scripts/convert_vjepa_checkpoint.py"
rope=(model.pos_embed=rope3d model.shared_mask_token=true meta.threads=2 logging.folder=$tmp)
$jepa train configs/tiny.yaml "${rope[@]}" logging.write_tag=v2 optimization.max_steps=2 > /dev/null 2>&1 ||
    { fail "rope convert: tiny RoPE run" "did not train"; exit 0; }
ck=$tmp/v2/checkpoints/step_000002

out=$($conv to-official $ck -o $tmp/v2.pt 2>&1); rc=$?
check "rope convert: jepa.c -> official .pt" "rc=$rc: $out" [ "$rc" -eq 0 ]
out=$(/usr/bin/python3 - $tmp/v2.pt <<'PY'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu")
enc, pred = ck["encoder"], ck["predictor"]
pos = [k for part in (enc, pred, ck["target_encoder"]) for k in part if "pos_embed" in k]
print("enc", len(enc), "pred", len(pred), "pos", len(pos), "masks",
      sorted(k for k in pred if "mask_tokens" in k), "prefix", all(k.startswith("module.backbone.") for k in enc))
PY
)
check "rope convert: official layout without position tables (module.backbone.*, 2 mask tokens)" "$out" \
    grep -q "enc 52 pred 32 pos 0 masks \['module.backbone.mask_tokens.0', 'module.backbone.mask_tokens.1'\] prefix True" <<< "$out"

out=$($conv to-jepa $tmp/v2.pt "${rope[@]}" --config configs/tiny.yaml -o $tmp/back/checkpoints/step_000002 2>&1); rc=$?
check "rope convert: official .pt -> jepa.c" "rc=$rc: $out" [ "$rc" -eq 0 ]
same() {  # folder a, folder b, which files: every tensor bit for bit
    /usr/bin/python3 - "$@" <<'PY'
import sys, numpy as np
sys.path.insert(0, "scripts")
import ckpt_io
a, b = ckpt_io.read_checkpoint(sys.argv[1]), ckpt_io.read_checkpoint(sys.argv[2])
bad = [k for i in (0, 1) for k in a[i] if k not in b[i] or not np.array_equal(a[i][k], b[i][k])]
print("same" if not bad and len(a[0]) == len(b[0]) else f"differ: {bad[:3]}")
PY
}
out=$(same $ck $tmp/back/checkpoints/step_000002)
check "rope convert: the round trip keeps every weight and moment bit for bit" "$out" [ "$out" = same ]
out=$($jepa train configs/tiny.yaml "${rope[@]}" logging.write_tag=back optimization.max_steps=3 meta.resume=must 2>&1); rc=$?
check "rope convert: the converted checkpoint resumes (meta.resume=must)" "rc=$rc: $(tail -2 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'resuming from' <<< \"\$0\"" "$out"

# a released-weights-shaped file: encoder and predictor only, with pos_embed tables and 10 mask tokens
/usr/bin/python3 - $tmp/v2.pt $tmp/released.pt <<'PY'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu")
enc, pred = dict(ck["encoder"]), dict(ck["predictor"])
enc = {"module.backbone.pos_embed": torch.zeros(1, 144, 96), **enc}
pred = {"module.backbone.predictor_pos_embed": torch.zeros(1, 144, 64), **pred}
for i in range(2, 10):
    pred[f"module.backbone.mask_tokens.{i}"] = torch.full((1, 1, 64), float(i))
torch.save({"encoder": enc, "predictor": pred}, sys.argv[2])
PY
out=$($conv to-jepa $tmp/released.pt "${rope[@]}" --config configs/tiny.yaml -o $tmp/rel/checkpoints/step_000000 2>&1); rc=$?
check "rope convert: released-weights layout converts, naming what it drops and fills" "rc=$rc: $out" \
    bash -c "[ $rc -eq 0 ] && grep -q 'pos_embed in the file is not used with RoPE' <<< \"\$0\" &&
             grep -q 'mask_tokens \[2, 3, 4, 5, 6, 7, 8, 9\] dropped' <<< \"\$0\" &&
             grep -q 'target encoder starts as a copy of the encoder' <<< \"\$0\" && grep -q 'moments start at zero' <<< \"\$0\"" "$out"
out=$(/usr/bin/python3 - $ck $tmp/rel/checkpoints/step_000000 <<'PY'
import sys, numpy as np
sys.path.insert(0, "scripts")
import ckpt_io
(m, _, _, _), (r, o, s, _) = ckpt_io.read_checkpoint(sys.argv[1]), ckpt_io.read_checkpoint(sys.argv[2])
weights = all(np.array_equal(m[k], r[k]) for k in m if not k.startswith("target_encoder."))
target = all(np.array_equal(r["target_encoder." + k[len("encoder."):]], r[k]) for k in r if k.startswith("encoder."))
zero = all(not v.any() for v in o.values())
print("ok" if weights and target and zero and len(r) == len(m) and s["step"] == 0 else
      f"weights {weights} target {target} zero moments {zero} tensors {len(r)}/{len(m)} step {s['step']}")
PY
)
check "rope convert: released weights exact, target = encoder, zero moments, step 0" "$out" [ "$out" = ok ]
out=$($jepa train configs/tiny.yaml "${rope[@]}" logging.write_tag=rel optimization.max_steps=1 meta.resume=must 2>&1); rc=$?
check "rope convert: training continues from the converted released weights" "rc=$rc: $(tail -2 <<< "$out")" [ "$rc" -eq 0 ]
