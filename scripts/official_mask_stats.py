#!/usr/bin/env python3
"""Measure the official V-JEPA multi-block 3D mask collator; print statistics as JSON.

Usage: official_mask_stats.py OFFICIAL_CHECKOUT [--commit HASH] [--batches N] [--seed S]

Imports MaskCollator from OFFICIAL_CHECKOUT/src/masks/multiblock3d.py (facebookresearch/jepa) and runs it on
the CPU with the two mask generators of configs/pretrain/vitl16.yaml, 16x224 clips, patch 16, tubelet 2
(token grid 8x14x14). For each batch size and generator it records the per-batch context and target lengths,
i.e. the lengths after the collator's cut to the batch minimum, and prints their mean, std and standard errors.
Nothing of the official code is copied here; it is imported from the checkout given on the command line.
Used to write tests/data/mask_stats_official.json (see docs/masks.md).
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys

GENERATORS = [  # configs/pretrain/vitl16.yaml, mask section
    dict(num_blocks=8, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         max_temporal_keep=1.0, max_keep=None),
    dict(num_blocks=2, spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         max_temporal_keep=1.0, max_keep=None),
]
GEN_NAMES = ["short_range", "long_range"]
BATCH_SIZES = [1, 8, 24, 64]
CROP, PATCH, FRAMES, TUBELET = 224, 16, 16, 2


def summarize(values):
    """Mean, std (n-1) and their standard errors; the std's from the 4th central moment (delta method)."""
    n = len(values)
    mean = sum(values) / n
    m2 = sum((v - mean) ** 2 for v in values) / n
    m4 = sum((v - mean) ** 4 for v in values) / n
    std = math.sqrt(m2 * n / (n - 1))
    std_se = math.sqrt(max(m4 - m2 * m2, 0.0) / n) / (2 * std) if std > 0 else 0.0
    return dict(mean=mean, std=std, mean_se=std / math.sqrt(n), std_se=std_se)


def official_commit(checkout, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", checkout, "rev-parse", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(MaskCollator, torch, batch_size, n_batches):
    """Fresh collator (iteration counter from 0, as at the start of training); one call per batch."""
    collator = MaskCollator(cfgs_mask=GENERATORS, crop_size=CROP, num_frames=FRAMES,
                            patch_size=PATCH, tubelet_size=TUBELET)
    dummy = [torch.zeros(1) for _ in range(batch_size)]
    ctx = [[] for _ in GENERATORS]
    tgt = [[] for _ in GENERATORS]
    for _ in range(n_batches):
        _, masks_enc, masks_pred = collator(dummy)
        for g in range(len(GENERATORS)):
            ctx[g].append(masks_enc[g].shape[-1])
            tgt[g].append(masks_pred[g].shape[-1])
    out = {}
    for g, name in enumerate(GEN_NAMES):
        out[name] = dict(context=summarize(ctx[g]), target=summarize(tgt[g]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", help="path to a checkout of facebookresearch/jepa")
    ap.add_argument("--commit", default="", help="official commit hash (default: git rev-parse in checkout)")
    ap.add_argument("--batches", default="", help="comma list of batches per batch size (default 20000,6000,4000,3000)")
    ap.add_argument("--seed", type=int, default=0, help="torch global seed (block positions)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.checkout))
    import torch
    from src.masks.multiblock3d import MaskCollator

    n_batches = [int(x) for x in args.batches.split(",")] if args.batches else [20000, 6000, 4000, 3000]
    torch.manual_seed(args.seed)
    settings = []
    for bs, nb in zip(BATCH_SIZES, n_batches):
        entry = dict(batch_size=bs, batches=nb)
        entry.update(measure(MaskCollator, torch, bs, nb))
        settings.append(entry)
        print(f"batch {bs}: {nb} batches done", file=sys.stderr)
    result = dict(
        source="facebookresearch/jepa src/masks/multiblock3d.py MaskCollator, "
               "measured by scripts/official_mask_stats.py",
        official_commit=official_commit(args.checkout, args.commit),
        date=datetime.date.today().isoformat(),
        torch_version=torch.__version__,
        torch_seed=args.seed,
        grid=dict(T=FRAMES // TUBELET, H=CROP // PATCH, W=CROP // PATCH),
        crop_size=CROP, patch_size=PATCH, num_frames=FRAMES, tubelet_size=TUBELET,
        generators=[dict(name=n, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
                    for n, g in zip(GEN_NAMES, GENERATORS)],
        statistic="per-batch lengths after the cut to the batch minimum; std with n-1; *_se = standard errors",
        settings=settings,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
