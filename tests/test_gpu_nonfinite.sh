#!/usr/bin/env bash
# tests/test_nonfinite.sh on the GPU (bfloat16, meta.deterministic on): the device flag guards the CUDA AdamW and
# EMA kernels, so a skipped step leaves the fp32 master state byte for byte as it was. SKIP without a usable GPU.
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu nonfinite"
DEVICE_ARGS="meta.device=cuda meta.dtype=bfloat16 meta.deterministic=true" source "$(dirname "$0")/test_nonfinite.sh"
