#!/usr/bin/python3
"""Converts official V-JEPA checkpoints (the .pth.tar files of facebookresearch/jepa app/vjepa/train.py, and V-JEPA 2's
.pt files of facebookresearch/vjepa2, training checkpoints and the released weights) to jepa.c checkpoint folders
and back. Needs PyTorch (Debian: apt-get install python3-torch; run with /usr/bin/python3) and a
built jepa (for `jepa config --resolve`). docs/checkpoints.md explains both formats.

  # official -> jepa.c (step = epoch x ipe): CONFIG (+ overrides) must describe the official model's sizes; the folder goes into a run
  # folder's checkpoints/, where `jepa train CONFIG meta.resume=must` (same write_tag) continues it
  convert_vjepa_checkpoint.py to-jepa vitl16.pth.tar --config configs/vitl16.yaml -o runs/vitl16/checkpoints/step_090000

  # jepa.c -> official: load with the official load_checkpoint (DDP + MultiMaskWrapper names: module.backbone.*)
  convert_vjepa_checkpoint.py to-official runs/tiny/checkpoints/step_000500 -o tiny.pth.tar [--num-frames T] [--crop-size S]

Names: jepa.c's are the official ones with "encoder.", "predictor." and "target_encoder." in front; the fixed
sincos tables (pos_embed, predictor_pos_embed) are not stored by jepa.c, which computes them for its grid. Going to
the official format they are computed (bit-identical to the official get_3d_sincos_pos_embed) and, when
--num-frames or --crop-size differ from the jepa.c config, interpolated trilinearly as the official
interpolate_pos_encoding does. Coming from the official format a table on another grid than the config's is
interpolated the same way and compared with the sincos table jepa.c will use; the largest difference is printed.
AdamW moments map through the official init_opt parameter groups (encoder/predictor x decay/no-decay).

V-JEPA 2 (a config with model.pos_embed: rope3d, e.g. configs/vjepa2_vitg16.yaml): RoPE has no tables, so none are
written going to the official format, and any a file holds (the released ones do; the official hub loads them with
strict=False) are dropped with a note. A file without an optimizer or epoch (released weights) converts with zero
moments at step --step (default 0); one without target_encoder takes the encoder for it (noted). The predictor's
mask tokens: V-JEPA 2 training files hold one per mask generator and clip length (its hub builds 10): jepa.c keeps
mask_tokens.0 .. G-1 for its G generators, missing ones zero, extra ones dropped, each noted."""
import argparse
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The config keys whose values shape the model, in the order jepa.c hashes them (host/checkpoint.c).
MODEL_KEYS = ["data.num_frames", "data.tubelet_size", "data.crop_size", "data.patch_size", "model.model_name",
              "model.embed_dim", "model.depth", "model.num_heads", "model.mlp_ratio", "model.pred_depth",
              "model.pred_embed_dim", "model.pred_num_heads", "model.uniform_power", "model.pos_embed",
              "model.use_mask_tokens"]
MASK_COUNT_KEY = "mask (number of generators)"
WRAPPER_PREFIX = "module.backbone."


def fail(message):
    raise SystemExit("error: " + message)


# ---------------------------------------------------------------------------------------------------- config

def resolve_config(jepa, config, overrides):
    """The resolved config text and {dotted key: value text}, from `jepa config --resolve`."""
    run = subprocess.run([jepa, "config", "--resolve", config] + overrides, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{jepa} config --resolve {config}: {run.stderr.strip()}")
    values, section, masks = {}, None, 0
    for line in run.stdout.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        if section == "mask":
            masks += line.startswith("  - ")
            continue
        key, _, value = line.strip().partition(": ")
        values[f"{section}.{key}"] = value
    values[MASK_COUNT_KEY] = str(masks)
    return run.stdout, values


def model_config(values):
    keys = {k: values[k] for k in MODEL_KEYS}
    keys[MASK_COUNT_KEY] = values[MASK_COUNT_KEY]
    text = "".join(f"{k}={v}\n" for k, v in keys.items()).encode()
    return keys, "xxh3_64:" + ckpt_io.xxh3_64_bytes(text)


def grid(values):
    frames, tubelet = int(values["data.num_frames"]), int(values["data.tubelet_size"])
    crop, patch = int(values["data.crop_size"]), int(values["data.patch_size"])
    return frames // tubelet, crop // patch, crop // patch


# ---------------------------------------------------------------------------------------------------- positions

def sincos_1d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=float) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_3d(dim, grid_t, grid_h, grid_w, uniform_power):
    """The official get_3d_sincos_pos_embed (uniform_power as V-JEPA's configs set it), as float32 [1, N, dim]."""
    gh, gt, gw = np.meshgrid(np.arange(grid_h, dtype=float), np.arange(grid_t, dtype=float),
                             np.arange(grid_w, dtype=float))
    if uniform_power:
        dt = dh = dw = int(np.ceil(dim / 6) * 2)
    else:
        dh, dw, dt = dim // 4, dim // 4, dim // 2
    table = np.concatenate([sincos_1d(dt, gt), sincos_1d(dh, gh), sincos_1d(dw, gw)], axis=1)[:, :dim]
    return torch.from_numpy(table).float().unsqueeze(0)


def interpolate(table, src_grid, dst_grid):
    """Trilinear resize of a [1, N, D] table from src_grid to dst_grid (t, h, w), as the official
    VisionTransformer.interpolate_pos_encoding does it."""
    if tuple(src_grid) == tuple(dst_grid):
        return table
    dim = table.shape[-1]
    scale = tuple(d / s for d, s in zip(dst_grid, src_grid))
    x = table.reshape(1, *src_grid, dim).permute(0, 4, 1, 2, 3)
    x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="trilinear")
    return x.permute(0, 2, 3, 4, 1).reshape(1, -1, dim)


# ---------------------------------------------------------------------------------------------------- optimizer

def param_groups(encoder_names, encoder_shapes, predictor_names, predictor_shapes):
    """The official init_opt groups as lists of (module, name): encoder decay, predictor decay, encoder no-decay,
    predictor no-decay, each in named_parameters order."""
    def split(names, shapes, decay):
        return [n for n in names if (("bias" not in n) and len(shapes[n]) != 1) == decay]
    return [[("encoder", n) for n in split(encoder_names, encoder_shapes, True)],
            [("predictor", n) for n in split(predictor_names, predictor_shapes, True)],
            [("encoder", n) for n in split(encoder_names, encoder_shapes, False)],
            [("predictor", n) for n in split(predictor_names, predictor_shapes, False)]]


def strip(state_dict):
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------- to jepa.c

def is_rope(values):
    return values.get("model.pos_embed", "sincos") == "rope3d"


def load_official(args, rope):
    """The checkpoint's stripped encoder, predictor and target state_dicts; V-JEPA 2's released files may lack the
    optimizer, the epoch and (then taken from the encoder) the target encoder."""
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    needed = ("encoder", "predictor") if rope else ("encoder", "predictor", "target_encoder", "opt", "epoch")
    for part in needed:
        if part not in ckpt:
            fail(f"{args.checkpoint}: expected an official V-JEPA checkpoint with '{part}'")
    enc, pred = strip(ckpt["encoder"]), strip(ckpt["predictor"])
    if "target_encoder" in ckpt:
        tgt = strip(ckpt["target_encoder"])
    else:
        print("note: no target_encoder in the file: the target encoder starts as a copy of the encoder")
        tgt = dict(enc)
    return ckpt, enc, pred, tgt


def fit_mask_tokens(pred, generators):
    """Keeps mask_tokens.0 .. generators-1 of a V-JEPA 2 predictor state_dict (jepa.c's table), zero-filling
    missing ones and dropping extras, with a note for each."""
    have = sorted(int(k.split(".")[1]) for k in pred if k.startswith("mask_tokens."))
    if not have:
        return pred
    shape = pred[f"mask_tokens.{have[0]}"].shape
    out = {k: v for k, v in pred.items() if not k.startswith("mask_tokens.")}
    for i in range(generators):
        key = f"mask_tokens.{i}"
        out[key] = pred[key] if key in pred else torch.zeros(shape)
        if key not in pred:
            print(f"note: predictor {key} is not in the file: zero")
    dropped = [i for i in have if i >= generators]
    if dropped:
        print(f"note: predictor mask_tokens {dropped} dropped (jepa.c keeps one per mask generator: {generators}; "
              "V-JEPA 2 trains mask_tokens.0 only with one clip length, see model.shared_mask_token)")
    return out


def to_jepa(args):
    text, values = resolve_config(args.jepa, args.config, args.overrides)
    keys, config_hash = model_config(values)
    rope = is_rope(values)
    ckpt, enc, pred, tgt = load_official(args, rope)
    if rope:
        pred = fit_mask_tokens(pred, int(values[MASK_COUNT_KEY]))
    dst_grid = grid(values)
    uniform = values["model.uniform_power"] == "true"
    for name, part, prefix in (("pos_embed", enc, "encoder"), ("predictor_pos_embed", pred, "predictor")):
        if name not in part:
            continue
        if rope:
            print(f"note: {prefix} {name} in the file is not used with RoPE (model.pos_embed: rope3d): dropped")
            continue
        table = part[name].float()
        n, dim = table.shape[1], table.shape[2]
        src_grid = official_grid(args, values, n)
        ours = sincos_3d(dim, *dst_grid, uniform)
        diff = (interpolate(table, src_grid, dst_grid) - ours).abs().max().item()
        how = "" if tuple(src_grid) == tuple(dst_grid) else f" interpolated from {src_grid} to {dst_grid}"
        print(f"{prefix} {name}{how}: largest difference from jepa.c's sincos table {diff:.3g}")
    model = {}
    for prefix, part in (("encoder.", enc), ("predictor.", pred), ("target_encoder.", tgt)):
        for k, v in part.items():
            if k not in ("pos_embed", "predictor_pos_embed"):
                model[prefix + k] = v.float().numpy()
    ipe = int(values["optimization.ipe"])
    ours = ckpt.get("jepa.c", {})  # written by to-official: the exact step and data position
    if "opt" in ckpt and "epoch" in ckpt:
        exp_avg, exp_avg_sq, adam_step = moments_from_official(ckpt["opt"], strip(ckpt["encoder"]),
                                                               strip(ckpt["predictor"]))
        step = int(ours.get("step", int(ckpt["epoch"]) * ipe))
    else:  # released weights: no optimizer
        exp_avg, exp_avg_sq, adam_step, step = {}, {}, None, args.step
        print(f"note: no optimizer state in the file: AdamW moments start at zero, step {step}")
    if adam_step is not None and adam_step != step:
        print(f"note: AdamW counted {adam_step} steps, epoch {ckpt['epoch']} x ipe {ipe} = {step}; "
              f"jepa.c continues from step {step}")
    optimizer = {}
    for prefix, moments in (("exp_avg.", exp_avg), ("exp_avg_sq.", exp_avg_sq)):
        for name in [k for k in model if not k.startswith("target_encoder.")]:
            optimizer[prefix + name] = moments.get(name, np.zeros_like(model[name]))
    global_batch = int(values["data.batch_size"]) * int(values["optimization.accum_steps"])
    cursor = int(ours.get("data_cursor", step * global_batch))
    state = state_json(step, ipe, cursor, values, keys, config_hash, model,
                       lr=ckpt.get("lr"), source=os.path.abspath(args.checkpoint))
    ckpt_io.write_checkpoint(args.output, model, optimizer, state, text)
    print(f"wrote {args.output}: step {step}, {len(model)} weight tensors, {len(optimizer)} moment tensors")


def official_grid(args, values, n):
    """The official model's token grid: its frames and crop (--official-num-frames, --official-crop-size; by default
    the config's) in the config's tubelets and patches; it must hold the table's n tokens."""
    frames = args.official_num_frames or int(values["data.num_frames"])
    crop = args.official_crop_size or int(values["data.crop_size"])
    tubelet, patch = int(values["data.tubelet_size"]), int(values["data.patch_size"])
    g = (frames // tubelet, crop // patch, crop // patch)
    if g[0] * g[1] * g[2] != n:
        fail(f"the official position table holds {n} tokens, not {g[0]}x{g[1]}x{g[2]} = {g[0] * g[1] * g[2]} "
             f"({frames} frames at {crop} px); give the official model's --official-num-frames and "
             f"--official-crop-size")
    return g


def moments_from_official(opt, enc, pred):
    """{jepa.c name: exp_avg}, {...: exp_avg_sq}, AdamW's step count (None without state)."""
    enc_names, pred_names = list(enc.keys()), list(pred.keys())
    groups = param_groups(enc_names, {k: tuple(v.shape) for k, v in enc.items()}, pred_names,
                          {k: tuple(v.shape) for k, v in pred.items()})
    if len(opt["param_groups"]) != 4:
        fail(f"expected the official 4 AdamW parameter groups, found {len(opt['param_groups'])}")
    exp_avg, exp_avg_sq, steps = {}, {}, set()
    for group, names in zip(opt["param_groups"], groups):
        if len(group["params"]) != len(names):
            fail(f"an AdamW group holds {len(group['params'])} parameters, the official init_opt order gives "
                 f"{len(names)} (different model or optimizer layout)")
        for index, (module, name) in zip(group["params"], names):
            s = opt["state"].get(index)
            if s is None:
                continue  # the position tables (never trained), or a parameter not stepped yet
            exp_avg[f"{module}.{name}"] = s["exp_avg"].float().numpy()
            exp_avg_sq[f"{module}.{name}"] = s["exp_avg_sq"].float().numpy()
            steps.add(int(float(s["step"])))
    return exp_avg, exp_avg_sq, (max(steps) if steps else None)


def state_json(step, ipe, cursor, values, keys, config_hash, model, lr=None, source=None):
    seed = int(values["meta.seed"])
    return {
        "format": "jepa.c checkpoint", "format_version": 1, "step": step, "epoch": step // ipe,
        "data_cursor": cursor,
        "counters": {"seed": seed, "next_step": step, "next_sample": cursor},
        "schedule": {"iteration": step, "adamw_step": step, "lr": lr},
        "config_hash": config_hash, "model_config": keys, "dtype": "F32",
        "parameters": int(sum(v.size for k, v in model.items() if not k.startswith("target_encoder."))),
        "jepa_version": "convert_vjepa_checkpoint.py", "commit": "n/a",
        "saved_utc": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "converted_from": source,
    }


# ---------------------------------------------------------------------------------------------------- to official

def config_values(text):
    """{dotted key: value text} of a resolved config.yaml (as jepa writes it)."""
    values, section = {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
        elif section != "mask":
            key, _, value = line.strip().partition(": ")
            values[f"{section}.{key}"] = value
    return values


def to_official(args):
    model, optimizer, state, text = ckpt_io.read_checkpoint(args.checkpoint)
    values = config_values(text)
    src_grid = grid(values)
    frames = args.num_frames or int(values["data.num_frames"])
    crop = args.crop_size or int(values["data.crop_size"])
    dst_grid = (frames // int(values["data.tubelet_size"]), crop // int(values["data.patch_size"]),
                crop // int(values["data.patch_size"]))
    uniform = values["model.uniform_power"] == "true"
    rope = is_rope(values)
    parts = {"encoder": {}, "predictor": {}, "target_encoder": {}}
    for name, array in model.items():
        module, _, key = name.partition(".")
        parts[module][key] = torch.from_numpy(array)
    enc_dim = parts["encoder"]["patch_embed.proj.weight"].shape[0]
    pred_dim = parts["predictor"]["predictor_embed.weight"].shape[0]
    for module, pos, dim in (("encoder", "pos_embed", enc_dim), ("target_encoder", "pos_embed", enc_dim),
                             ("predictor", "predictor_pos_embed", pred_dim)):
        if rope:  # V-JEPA 2's RoPE modules hold no position table
            break
        table = interpolate(sincos_3d(dim, *src_grid, uniform), src_grid, dst_grid)
        parts[module] = {pos: table.contiguous(), **parts[module]}
    opt = official_optimizer(parts, optimizer, state, values)
    ipe = int(values["optimization.ipe"])
    out = {f"{m}": {WRAPPER_PREFIX + k: v for k, v in sd.items()} for m, sd in parts.items()}
    out.update({"opt": opt, "scaler": None, "epoch": state["step"] // ipe, "loss": None,
                "batch_size": int(values["data.batch_size"]), "world_size": 1,
                "lr": float(values["optimization.lr"]),
                "jepa.c": {"step": state["step"], "data_cursor": state["data_cursor"]}})  # ignored by the official code
    torch.save(out, args.output)
    how = "" if src_grid == dst_grid or rope else f", position tables interpolated from {src_grid} to {dst_grid}"
    print(f"wrote {args.output}: step {state['step']} (epoch {out['epoch']}){how}")


def official_optimizer(parts, optimizer, state, values):
    """An AdamW state_dict laid out as the official init_opt builds it (four groups, indices in group order)."""
    enc, pred = parts["encoder"], parts["predictor"]
    groups = param_groups(list(enc), {k: tuple(v.shape) for k, v in enc.items()}, list(pred),
                          {k: tuple(v.shape) for k, v in pred.items()})
    betas = tuple(float(x) for x in values["optimization.betas"].strip("[]").split(","))
    base = {"lr": float(values["optimization.lr"]), "betas": betas, "eps": float(values["optimization.eps"]),
            "amsgrad": False, "maximize": False, "foreach": None, "capturable": False}
    param_groups_out, opt_state, index = [], {}, 0
    for g, names in enumerate(groups):
        group = dict(base, weight_decay=float(values["optimization.weight_decay"]) if g < 2 else 0.0, params=[])
        if g >= 2:
            group["WD_exclude"] = True
        for module, name in names:
            key = f"{module}.{name}"
            if f"exp_avg.{key}" in optimizer:
                opt_state[index] = {"step": torch.tensor(float(state["step"])),
                                    "exp_avg": torch.from_numpy(optimizer[f"exp_avg.{key}"]),
                                    "exp_avg_sq": torch.from_numpy(optimizer[f"exp_avg_sq.{key}"])}
            group["params"].append(index)
            index += 1
        param_groups_out.append(group)
    return {"state": opt_state, "param_groups": param_groups_out}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="direction", required=True)
    a = sub.add_parser("to-jepa", help="official .pth.tar -> jepa.c checkpoint folder")
    a.add_argument("checkpoint")
    a.add_argument("--config", required=True, help="the jepa.c config describing the model")
    a.add_argument("overrides", nargs="*", help="section.key=value overrides of the config")
    a.add_argument("-o", "--output", required=True, help="the checkpoint folder to create (RUN/checkpoints/step_N)")
    a.add_argument("--jepa", default=os.path.join(REPO, "build", "jepa"), help="the jepa binary (default build/jepa)")
    a.add_argument("--official-num-frames", type=int, default=None, help="frames the official model was built for "
                   "(default: the config's)")
    a.add_argument("--official-crop-size", type=int, default=None, help="crop size the official model was built for "
                   "(default: the config's)")
    a.add_argument("--step", type=int, default=0, help="the step a file without optimizer state (V-JEPA 2's "
                   "released weights) is placed at (default 0)")
    b = sub.add_parser("to-official", help="jepa.c checkpoint folder -> official .pth.tar")
    b.add_argument("checkpoint")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--num-frames", type=int, default=None, help="frames of the official model (position tables)")
    b.add_argument("--crop-size", type=int, default=None, help="crop size of the official model (position tables)")
    args = p.parse_args()
    to_jepa(args) if args.direction == "to-jepa" else to_official(args)


if __name__ == "__main__":
    main()
