#!/usr/bin/env bash
# test_rope_official.sh: jepa.c's V-JEPA 2 (rope3d) model against the official facebookresearch/vjepa2 code, both
# in fp32 on the CPU, on a random-weight official model converted with scripts/convert_vjepa_checkpoint.py
# (scripts/vjepa2_parity.py does the work): `jepa export` loads back into the official classes (strict), the target
# encoder's features (`jepa embed`), and the predictions at the targets from gathered context tokens
# (tests/test_rope_predict.c). Needs JEPA_VJEPA2_SRC=<a vjepa2 checkout>, PyTorch and h5py; SKIP otherwise.
# Measured: features 4.5e-7, predictions 3.9e-7 relative error (bound 1e-4); the interleaved frequency layout
# instead of the official tiled one gives 1.3e-3 on the features.
source "$(dirname "$0")/lib.sh"
if [ -z "${JEPA_VJEPA2_SRC:-}" ] || ! /usr/bin/python3 -c "import torch, h5py" 2>/dev/null; then
    skip "vjepa2 parity" "needs JEPA_VJEPA2_SRC=<facebookresearch/vjepa2 checkout>, PyTorch and h5py"; exit 0
fi
# heads of 64 (20+20+20 rotated, 4 not) in the encoder, 32 in the predictor, an 8x4x4 token grid
/usr/bin/python3 scripts/vjepa2_parity.py --official-src "$JEPA_VJEPA2_SRC" --work $tmp --config configs/tiny.yaml \
    model.pos_embed=rope3d model.shared_mask_token=true model.embed_dim=128 model.num_heads=2 model.depth=2 model.pred_num_heads=2 \
    data.num_frames=16 data.crop_size=32 2>&1 | grep -E '^(PASS|FAIL|SKIP|     )' || fail "vjepa2 parity" "the script failed"
