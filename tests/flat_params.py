"""A checkpoint's model.safetensors as one float64 vector (tensors in name order), for the shell tests' comparisons."""
import json
import struct

import numpy as np


def flat_params(run, ck):
    raw = open(f"{run}/checkpoints/{ck}/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    parts = []
    for k in sorted(x for x in head if x != "__metadata__"):
        s, e = head[k]["data_offsets"]
        parts.append(np.frombuffer(raw[8 + n + s:8 + n + e], dtype=np.float32))
    return np.concatenate(parts).astype(np.float64)
