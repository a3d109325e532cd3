#!/usr/bin/env python3
"""The official V-JEPA modules' state_dict keys and shapes, and a check of `jepa export` files against the real
classes. Needs PyTorch (Debian's python3-torch: run with /usr/bin/python3) and a checkout of facebookresearch/jepa
(only its src/ is imported; nothing of it is copied here).

  official_keys.py dump  --official-src DIR --model FILE.json -o tests/data/official_keys_NAME.json
  official_keys.py check --official-src DIR --keys tests/data/official_keys_NAME.json --what target EXPORT.safetensors

FILE.json names the sizes: {"model_name": "vit_large" or null, "embed_dim", "depth", "num_heads" (when model_name is
null), "num_frames", "crop_size", "patch_size", "tubelet_size", "pred_depth", "pred_embed_dim", "num_mask_tokens",
"uniform_power"}. `dump` records the keys file that tests/test_checkpoint.c and tests/test_checkpoint.sh compare
`jepa export` with; `check` loads an export with load_state_dict(strict=True) and compares the position tables."""
import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_io  # noqa: E402


def official_modules(src, m):
    sys.path.insert(0, src)
    import src.models.predictor as vit_pred
    import src.models.vision_transformer as video_vit
    common = dict(img_size=m["crop_size"], patch_size=m["patch_size"], num_frames=m["num_frames"],
                  tubelet_size=m["tubelet_size"], uniform_power=m["uniform_power"])
    if m.get("model_name"):
        encoder = video_vit.__dict__[m["model_name"]](**common)
    else:
        from functools import partial
        encoder = video_vit.VisionTransformer(embed_dim=m["embed_dim"], depth=m["depth"], num_heads=m["num_heads"],
                                              mlp_ratio=4, qkv_bias=True,
                                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **common)
    predictor = vit_pred.vit_predictor(embed_dim=encoder.embed_dim, predictor_embed_dim=m["pred_embed_dim"],
                                       depth=m["pred_depth"], num_heads=encoder.num_heads, use_mask_tokens=True,
                                       num_mask_tokens=m["num_mask_tokens"], zero_init_mask_tokens=True, **common)
    return encoder, predictor


def commit_of(src):
    try:
        return subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dump(args):
    with open(args.model) as f:
        m = json.load(f)
    encoder, predictor = official_modules(args.official_src, m)
    keys = {"source": "facebookresearch/jepa src/models (VisionTransformer, vit_predictor) instantiated with torch "
                      + torch.__version__ + ("" if args.commit is None else ", commit " + args.commit),
            "model": m,
            "encoder": [[k, list(v.shape)] for k, v in encoder.state_dict().items()],
            "predictor": [[k, list(v.shape)] for k, v in predictor.state_dict().items()]}
    with open(args.output, "w") as f:  # one key per line, so that a diff shows what changed
        f.write("{\n")
        for field in ("source", "model"):
            f.write(f' "{field}": {json.dumps(keys[field])},\n')
        for part in ("encoder", "predictor"):
            rows = ",\n".join("  " + json.dumps(row) for row in keys[part])
            f.write(f' "{part}": [\n{rows}\n ]{"," if part == "encoder" else ""}\n')
        f.write("}\n")
    print(f"{args.output}: {len(keys['encoder'])} encoder keys, {len(keys['predictor'])} predictor keys")


def check(args):
    with open(args.keys) as f:
        m = json.load(f)["model"]
    encoder, predictor = official_modules(args.official_src, m)
    module = predictor if args.what == "predictor" else encoder
    tensors, _ = ckpt_io.read_safetensors(args.export)
    reference = {k: v.clone() for k, v in module.state_dict().items()}
    module.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    pos = "predictor_pos_embed" if args.what == "predictor" else "pos_embed"
    diff = (module.state_dict()[pos] - reference[pos]).abs().max().item()
    print(f"strict load of {args.export} into the official {type(module).__name__}: ok; "
          f"{pos} differs from the official sincos by at most {diff:.3g}")
    if diff > 1e-6:
        raise SystemExit(f"error: {pos} differs from the official table by {diff}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--official-src", required=True)
    d.add_argument("--model", required=True)
    d.add_argument("--commit", default=None, help="the official commit, recorded in the keys file")
    d.add_argument("-o", "--output", required=True)
    c = sub.add_parser("check")
    c.add_argument("--official-src", required=True)
    c.add_argument("--keys", required=True)
    c.add_argument("--what", choices=["target", "encoder", "predictor"], default="target")
    c.add_argument("export")
    args = p.parse_args()
    if args.command == "dump" and args.commit is None:
        args.commit = commit_of(args.official_src)
    dump(args) if args.command == "dump" else check(args)


if __name__ == "__main__":
    main()
