#!/usr/bin/python3
"""jepa.c's V-JEPA 2 encoder against the official one: builds the official V-JEPA 2 model (encoder, predictor,
target encoder; 3D RoPE) with random weights from a checkout of facebookresearch/vjepa2 (its src/ is imported,
nothing of it is copied), converts it with convert_vjepa_checkpoint.py, runs `jepa embed` over random clips and the
official forward over the same normalised clips, and compares the target encoder's features (after its final norm).
Also checks that `jepa export` of the converted checkpoint loads into the official classes with strict=True and the
same weights, and (fp32, CPU) the context encoder on gathered tokens plus the predictor at the targets against the
official ones, jepa.c's side run by build/tests/test_rope_predict. Prints PASS/FAIL lines (tests/lib.sh style);
exit 1 on a FAIL.

  vjepa2_parity.py --official-src VJEPA2_CHECKOUT --config configs/tiny.yaml [--device cpu|cuda] [key=value ...]

The config (with the overrides) must set model.pos_embed: rope3d and names the model's sizes; --device cuda runs
jepa.c in bf16 on the GPU and the official model in fp32 and under bf16 autocast. Bounds: fp32 relative norm
error < 1e-4, bf16 < 1e-2 (the issue's). Needs PyTorch, numpy and h5py (Debian: python3-torch, python3-h5py);
timm and einops, which the official modules import but do not use for this forward, are stubbed when missing."""
import argparse
import copy
import os
import subprocess
import sys
import tempfile
import types
from functools import partial

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_vjepa_checkpoint as conv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # host/data.c DATA_MEAN, DATA_STD
FP32_TOL, BF16_TOL = 1e-4, 1e-2


def stub_missing_modules():
    """timm (drop_path, only used with drop_path_rate > 0) and einops (imported by patch_embed, unused)."""
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        layers = types.ModuleType("timm.models.layers")
        layers.drop_path = lambda x, p=0.0, training=False: x
        for name, mod in (("timm", types.ModuleType("timm")), ("timm.models", types.ModuleType("timm.models")),
                          ("timm.models.layers", layers)):
            sys.modules.setdefault(name, mod)
    try:
        import einops  # noqa: F401
    except ImportError:
        einops = types.ModuleType("einops")
        einops.rearrange = None
        sys.modules["einops"] = einops


def official_models(src, v):
    """The official encoder and predictor for the resolved config values v, with RoPE."""
    stub_missing_modules()
    sys.path.insert(0, src)
    import src.models.predictor as vit_pred
    import src.models.vision_transformer as video_vit
    frames, crop = int(v["data.num_frames"]), int(v["data.crop_size"])
    common = dict(img_size=crop, patch_size=int(v["data.patch_size"]), num_frames=frames,
                  tubelet_size=int(v["data.tubelet_size"]), uniform_power=v["model.uniform_power"] == "true",
                  use_rope=True, use_sdpa=True)
    # (without SDPA, torch < 2.0, the official attention takes its explicit softmax(q k^T * scale) v path, below)
    width, depth, heads = int(v["model.embed_dim"]), int(v["model.depth"]), int(v["model.num_heads"])
    if v["model.model_name"] == "vit_custom" or width or depth or heads:
        if v["model.model_name"] != "vit_custom":
            raise SystemExit("error: this script builds named sizes or vit_custom, not a named size with overrides")
        encoder = video_vit.VisionTransformer(embed_dim=width, depth=depth, num_heads=heads,
                                              mlp_ratio=float(v["model.mlp_ratio"]), qkv_bias=True,
                                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **common)
    else:
        encoder = video_vit.__dict__[v["model.model_name"]](**common)
    pred_heads = int(v["model.pred_num_heads"]) or encoder.num_heads
    predictor = vit_pred.vit_predictor(embed_dim=encoder.embed_dim, predictor_embed_dim=int(v["model.pred_embed_dim"]),
                                       depth=int(v["model.pred_depth"]), num_heads=pred_heads, use_mask_tokens=True,
                                       num_mask_tokens=int(v[conv.MASK_COUNT_KEY]), zero_init_mask_tokens=True,
                                       **common)
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):  # the predictor always asks for SDPA
        for block in list(encoder.blocks) + list(predictor.predictor_blocks):
            block.attn.use_sdpa = False
    return encoder, predictor


def perturb(module, generator, scale):
    """Every parameter moved off its init (LayerNorm 1/0, biases and mask tokens 0), so each path is exercised."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def write_store(path, clips):
    import h5py
    with h5py.File(path, "w") as f:
        f.create_dataset("clips", data=clips, chunks=(1,) + clips.shape[1:])
        f.attrs["fps"] = 4.0


def normalise(clips):
    """uint8 [N,T,H,W,3] -> float32, as host/data.c's data_normalise (double, then one rounding)."""
    table = np.stack([((np.arange(256) / 255.0 - MEAN[c]) / STD[c]).astype(np.float32) for c in range(3)])
    return np.stack([table[c][clips[..., c]] for c in range(3)], axis=-1)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    return out.stdout


def rel_err(a, b):
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-300))


def predictor_parity(args, work, encoder, predictor, clips, x, v, check):
    """The context encoder on gathered context tokens and the predictor at the targets (positions from the token
    indices, mask token 0), official vs jepa.c (tests/test_rope_predict.c runs model_predict), fp32 on the CPU."""
    helper = os.path.join(REPO, "build", "tests", "test_rope_predict")
    if not os.path.exists(helper):
        print("SKIP vjepa2 parity: predictor: build/tests/test_rope_predict is not built")
        return
    n = clips.shape[0]
    grid = (int(v["data.num_frames"]) // int(v["data.tubelet_size"])) * (int(v["data.crop_size"]) //
                                                                        int(v["data.patch_size"])) ** 2
    rng = np.random.default_rng(args.seed + 1)
    n_ctx, n_tgt = grid // 3, grid // 2
    ctx, tgt = [], []
    for _ in range(n):  # disjoint, each sorted, as a mask generator's lists
        perm = rng.permutation(grid)
        ctx.append(np.sort(perm[:n_ctx]))
        tgt.append(np.sort(perm[n_ctx:n_ctx + n_tgt]))
    ctx, tgt = np.stack(ctx).astype(np.int32), np.stack(tgt).astype(np.int32)
    header = np.array([n, n_ctx, n_tgt], dtype=np.int32)
    np.concatenate([header, ctx.ravel(), tgt.ravel()]).tofile(os.path.join(work, "masks.i32"))
    normalise(clips).astype(np.float32).tofile(os.path.join(work, "clips.f32"))
    run([helper, work])
    ours = np.fromfile(os.path.join(work, "pred.f64"), dtype=np.float64).reshape(n, n_tgt, -1)
    mx, my = torch.from_numpy(ctx).long(), torch.from_numpy(tgt).long()
    with torch.no_grad():
        z = encoder.cpu().eval()(x, masks=[mx])
        ref = predictor.cpu().eval()(z, [mx], [my], mask_index=0).double().numpy()
    check("jepa.c fp32 vs official fp32 predictions (context encoder on gathered tokens, predictor at the targets)",
          rel_err(ours, ref), FP32_TOL)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-src", required=True, help="a facebookresearch/vjepa2 checkout (with src/)")
    p.add_argument("--config", required=True)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--jepa", default=os.path.join(REPO, "build", "jepa"))
    p.add_argument("--work", default=None, help="folder for the files (default: a temporary one)")
    args = p.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="vjepa2_parity_")
    overrides = args.overrides + ["data.sampling_rate=1"]
    _, v = conv.resolve_config(args.jepa, args.config, overrides)
    if v.get("model.pos_embed") != "rope3d":
        raise SystemExit("error: the config must set model.pos_embed: rope3d (V-JEPA 2)")
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    encoder, predictor = official_models(args.official_src, v)
    perturb(encoder, g, 0.02), perturb(predictor, g, 0.02)
    target = copy.deepcopy(encoder)
    perturb(target, g, 0.01)  # differs from the encoder: the comparison shows which one jepa.c ran
    prefixed = lambda m: {conv.WRAPPER_PREFIX + k: t for k, t in m.state_dict().items()}  # noqa: E731
    torch.save({"encoder": prefixed(encoder), "predictor": prefixed(predictor), "target_encoder": prefixed(target)},
               os.path.join(work, "official.pt"))
    ckpt = os.path.join(work, "run", "checkpoints", "step_000000")
    run([sys.executable, os.path.join(REPO, "scripts", "convert_vjepa_checkpoint.py"), "to-jepa",
         os.path.join(work, "official.pt")] + overrides + ["--config", args.config, "--jepa", args.jepa, "-o", ckpt])
    failed = 0

    def check(name, err, bound, what="relative error"):
        nonlocal failed
        ok = err < bound
        failed += not ok
        print(("PASS " if ok else "FAIL ") + f"vjepa2 parity: {name}: {what} {err:.3g} (bound {bound:g})")

    # `jepa export` back into the official classes, strict: V-JEPA 2's names, no position tables
    import ckpt_io
    for what, module, ref in (("target", copy.deepcopy(encoder), target), ("predictor", copy.deepcopy(predictor),
                                                                        predictor)):
        out = os.path.join(work, what + ".safetensors")
        run([args.jepa, "export", ckpt, "-o", out, "--what", what])
        tensors, _ = ckpt_io.read_safetensors(out)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
        worst = max(float((a - b).abs().max()) for a, b in zip(module.state_dict().values(),
                                                               ref.state_dict().values()))
        check(f"jepa export --what {what} loads into the official class (strict), weights bit for bit", worst,
              1e-30, "largest difference")
    # clips: random uint8, frames = data.num_frames (sampling_rate 1)
    frames, crop = int(v["data.num_frames"]), int(v["data.crop_size"])
    clips = np.random.default_rng(args.seed).integers(0, 256, (args.clips, frames, crop, crop, 3), dtype=np.uint8)
    write_store(os.path.join(work, "clips.h5"), clips)
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    feats_path = os.path.join(work, "features.h5")
    run([args.jepa, "embed", "--checkpoint", ckpt, "--data", os.path.join(work, "clips.h5"), "-o", feats_path,
         "--pool", "tokens", "--encoder", "target", "--batch", "1", "--force", f"meta.device={args.device}",
         f"meta.dtype={dtype}", "data.sampling_rate=1"])
    import h5py
    with h5py.File(feats_path, "r") as f:
        ours = np.asarray(f["features"], dtype=np.float64)
    x = torch.from_numpy(normalise(clips)).permute(0, 4, 1, 2, 3).contiguous()  # [N,3,T,H,W]
    dev = torch.device(args.device)
    target = target.to(dev).eval()
    with torch.no_grad():
        ref32 = target(x.to(dev)).double().cpu().numpy()
    if ours.shape != ref32.shape:
        print(f"FAIL vjepa2 parity: feature shapes {ours.shape} (jepa.c) vs {ref32.shape} (official)")
        sys.exit(1)
    if dtype == "float32":
        check(f"jepa.c fp32 ({args.device}) vs official fp32 target-encoder features", rel_err(ours, ref32), FP32_TOL)
    else:
        check("jepa.c bf16 (cuda) vs official fp32 target-encoder features", rel_err(ours, ref32), BF16_TOL)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            ref16 = target(x.to(dev)).double().cpu().numpy()
        print(f"     (official bf16 autocast vs official fp32: {rel_err(ref16, ref32):.3g}; "
              f"jepa.c bf16 vs official bf16: {rel_err(ours, ref16):.3g})")
    if dtype == "float32":
        predictor_parity(args, work, encoder, predictor, clips, x, v, check)
    # the features must not be those of the (other) context encoder: the target was loaded
    with torch.no_grad():
        other = encoder.to(dev).eval()(x.to(dev)).double().cpu().numpy()
    print(f"     (jepa.c vs the official context encoder instead: {rel_err(ours, other):.3g}; work folder {work})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
