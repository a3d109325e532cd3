#!/usr/bin/env python3
"""Data-parallel efficiency on paper (docs/scaling.md): per-step gradient all-reduce volume and time, the backward
it can hide behind, and the efficiency that follows, for ViT-L/H/g on 8 GPUs over NVLink and 2-64 nodes over
400 Gb/s InfiniBand. Every input is a constant below; change one and run again: python3 scripts/scaling_model.py"""
import math

# Trained parameters (encoder + predictor; the target is an EMA, not reduced), from
# `build/jepa train configs/vitl16.yaml --dry-run` (vith16.yaml; ViT-g: vith16.yaml with model.model_name=vit_custom
# model.embed_dim=1408 model.depth=40 model.num_heads=16 model.mlp_ratio=4.3637).
PARAMS = {"ViT-L/16": 303_885_312 + 22_082_944, "ViT-H/16": 631_648_000 + 22_279_808,
          "ViT-g/16": 1_012_173_952 + 23_660_932}
# Step time on one H100 at batch 24 (16x224): ViT-L measured (bench/RESULTS.md, 230 ms); H and g scaled from it by
# the DESIGN FLOP count (61.5, 112.8, 171.6 TFLOP per step) at the same throughput: predictions, not measurements.
FLOPS = {"ViT-L/16": 61.51, "ViT-H/16": 112.77, "ViT-g/16": 171.62}
STEP_L_MS = 230.0
# The measured ViT-L backward: context encoder 46.8 ms, of which the last mask generator's share (its 98 context
# tokens of 464 per clip: 0.21) is when the encoder's final gradients appear; scaled by FLOPs for H and g.
CONTEXT_BWD_L_MS, LAST_GEN_SHARE = 46.8, 98 / (366 + 98)
CONTEXT_BWD_TFLOP = {"ViT-L/16": 14.42, "ViT-H/16": 29.58, "ViT-g/16": 47.06}
# Links (bus bandwidth as nccl-tests defines it: what a ring all-reduce sustains per GPU):
NVLINK_BUSBW = 360e9   # H100 SXM NVLink 4 (450 GB/s per direction), ~80% for large all-reduces
IB_BUSBW = 40e9        # one 400 Gb/s NDR port per GPU = 50 GB/s, ~80%
IB_HOP_LATENCY = 10e-6  # per tree level, per bucket (NCCL's tree across nodes)
BUCKET_BYTES = 25 * 2**20  # dist.bucket_mb
SM_SHARE = 0.10   # compute slowed by NCCL's kernels while they overlap it (~8-16 of 132 SMs on an H100)
FIXED_S = 0.3e-3  # per step: the statistics all-reduce, the preemption flag (MPI on the host), the extra sync


def allreduce_s(bytes_, n, busbw):
    return bytes_ * 2 * (n - 1) / n / busbw


def row(model, gpus, nodes, elem):
    p = PARAMS[model]
    step = STEP_L_MS * FLOPS[model] / FLOPS["ViT-L/16"] / 1e3
    window = CONTEXT_BWD_L_MS * CONTEXT_BWD_TFLOP[model] / CONTEXT_BWD_TFLOP["ViT-L/16"] * LAST_GEN_SHARE / 1e3
    volume = p * elem
    busbw = NVLINK_BUSBW if nodes == 1 else IB_BUSBW
    comm = allreduce_s(volume, gpus, busbw)
    buckets = math.ceil(volume / BUCKET_BYTES)
    latency = 0 if nodes == 1 else buckets * 2 * math.log2(gpus) * IB_HOP_LATENCY
    last_bucket = allreduce_s(min(volume, BUCKET_BYTES), gpus, busbw)
    exposed = max(last_bucket, comm + latency - window) + SM_SHARE * min(comm + latency, window) + FIXED_S
    return step, window, volume, comm + latency, exposed, step / (step + exposed)


print("| model | GPUs | link | reduce | bytes/step/GPU sent | all-reduce ms | hidden behind ms | exposed ms | "
      "step ms | efficiency |")
print("|---|---|---|---|---|---|---|---|---|---|")
for model in PARAMS:
    for nodes in (1, 2, 8, 64):
        for elem, name in ((4, "fp32"), (2, "bf16")):
            gpus = 8 * nodes
            step, window, volume, comm, exposed, eff = row(model, gpus, nodes, elem)
            link = "NVLink" if nodes == 1 else f"{nodes} nodes IB"
            sent = volume * 2 * (gpus - 1) / gpus
            print(f"| {model} | {gpus} | {link} | {name} | {sent / 1e9:.2f} GB | {comm * 1e3:.1f} | "
                  f"{window * 1e3:.1f} | {exposed * 1e3:.1f} | {step * 1e3:.0f} | {100 * eff:.1f}% |")
