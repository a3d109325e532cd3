"""Reading and writing jepa.c's files from Python with numpy only (no PyPI package): safetensors files, the xxh3_64
hashes of a checkpoint manifest (through Debian's libxxhash), and whole checkpoint folders written as jepa.c writes
them (temporary name, fsync, rename; manifest last). Used by convert_vjepa_checkpoint.py, official_keys.py and the
tests. docs/checkpoints.md describes the format."""
import ctypes
import ctypes.util
import json
import os
import struct

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
CHECKPOINT_FILES = ["model.safetensors", "optimizer.safetensors", "state.json", "config.yaml"]


def read_header(path):
    """(header dict without __metadata__, metadata dict, data start offset)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    return header, meta, 8 + n


def read_safetensors(path):
    """{name: numpy array} of a safetensors file, and its metadata."""
    header, meta, start = read_header(path)
    with open(path, "rb") as f:
        data = f.read()[start:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: numpy array} written in order, header padded with spaces to 8 bytes; fsynced."""
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())


_xxhash = None


def xxh3_64_bytes(data):
    """The xxh3_64 of bytes as 16 hex digits, through libxxhash (Debian's libxxhash0)."""
    global _xxhash
    if _xxhash is None:
        name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
        _xxhash = ctypes.CDLL(name)
        _xxhash.XXH3_64bits.restype = ctypes.c_uint64
        _xxhash.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return "%016x" % _xxhash.XXH3_64bits(data, len(data))


def xxh3_64(path):
    """The xxh3_64 of a file as 16 hex digits."""
    with open(path, "rb") as f:
        return xxh3_64_bytes(f.read())


def write_manifest(folder, step):
    """manifest.json of a checkpoint folder from the files in it (written last, fsynced)."""
    files = {}
    for name in CHECKPOINT_FILES:
        path = os.path.join(folder, name)
        files[name] = {"bytes": os.path.getsize(path), "xxh3_64": xxh3_64(path)}
    manifest = {"format": "jepa.c checkpoint manifest", "format_version": 1, "step": step, "hash": "xxh3_64",
                "files": files}
    write_text(os.path.join(folder, "manifest.json"), json.dumps(manifest, indent=2))


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(folder, model, optimizer, state, config_yaml):
    """A jepa.c checkpoint folder: model/optimizer tensors ({name: array}), state (dict), the resolved config text.
    Written under folder + '.tmp', manifest last, then renamed; an existing folder is refused."""
    if os.path.exists(folder):
        raise SystemExit(f"error: {folder} exists; remove it or choose another output")
    tmp = folder + ".tmp"
    os.makedirs(tmp)
    step = str(state["step"])
    write_safetensors(os.path.join(tmp, "model.safetensors"), model, {"format": "jepa.c checkpoint", "step": step})
    write_safetensors(os.path.join(tmp, "optimizer.safetensors"), optimizer,
                      {"format": "jepa.c checkpoint", "step": step})
    write_text(os.path.join(tmp, "state.json"), json.dumps(state, indent=2))
    write_text(os.path.join(tmp, "config.yaml"), config_yaml)
    write_manifest(tmp, state["step"])
    fsync_dir(tmp)
    os.rename(tmp, folder)
    fsync_dir(os.path.dirname(os.path.abspath(folder)))


def read_checkpoint(folder):
    """(model tensors, optimizer tensors, state dict, config text) of a jepa.c checkpoint folder whose manifest
    verifies; raises SystemExit naming the file otherwise."""
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    for name in CHECKPOINT_FILES:
        entry, path = manifest["files"].get(name), os.path.join(folder, name)
        if entry is None or os.path.getsize(path) != entry["bytes"] or xxh3_64(path) != entry["xxh3_64"]:
            raise SystemExit(f"error: {path}: does not match {folder}/manifest.json (size or xxh3_64)")
    model, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    optimizer, _ = read_safetensors(os.path.join(folder, "optimizer.safetensors"))
    with open(os.path.join(folder, "state.json")) as f:
        state = json.load(f)
    with open(os.path.join(folder, "config.yaml")) as f:
        config = f.read()
    return model, optimizer, state, config
