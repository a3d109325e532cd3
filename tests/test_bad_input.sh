#!/usr/bin/env bash
# Bad input, one stop: broken configs, clip stores, checkpoints, run folders and a full disk, each given to build/jepa
# as a user would. Every case checks the exit code (2: bad input), that the one-line message names the file, key or
# value and what was expected, and that every file that existed before (run folders, checkpoints, stores: the sha256
# of each file under the test folder) is untouched. tests/test_config.c has the config reader's finer cases.
set -u
source "$(dirname "$0")/lib.sh"
runs=$tmp/runs
train() { $jepa train configs/tiny.yaml meta.threads=2 logging.folder=$runs "$@"; }
py=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import h5py, numpy' 2> /dev/null; then py=$candidate; break; fi
done

# expect NAME EXIT_CODE TEXT... -- COMMAND...: PASS when COMMAND exits EXIT_CODE, its output holds every TEXT (fixed
# strings) and no file under $tmp (or under $keep, when set) that existed before has changed.
expect() {
    local name=$1 want=$2 texts=() out rc problems="" changed t
    shift 2
    while [ "$1" != "--" ]; do texts+=("$1"); shift; done
    shift
    (cd ${keep:-$tmp} && find . -type f ! -name .hashes -print0 | xargs -0 -r sha256sum) > $tmp/.hashes
    out=$("$@" 2>&1); rc=$?
    [ "$rc" -eq "$want" ] || problems="exit $rc, expected $want; "
    for t in "${texts[@]}"; do grep -qF -- "$t" <<< "$out" || problems+="no '$t' in the message; "; done
    changed=$(cd ${keep:-$tmp} && sha256sum -c --quiet $tmp/.hashes 2>&1)
    [ -z "$changed" ] || problems+="files changed: $changed; "
    check "bad input: $name" "$problems$(grep -E '^(error|internal error)' <<< "$out" | head -3)" [ -z "$problems" ]
}

# ------------------------------------------------------------------------------------------------ fixtures
mkdir -p $tmp/cfg $tmp/h5
out=$(train logging.write_tag=base optimization.max_steps=2 2>&1) \
    || { fail "bad input: fixture run" "$(tail -3 <<< "$out")"; exit 1; }
ck=$runs/base/checkpoints/step_000002
$jepa data synth --world balls --size 48x48 --frames 8 --clips 16 --seed 1 -o $tmp/h5/ok.h5 > /dev/null
cfg() { printf -- "$2" > $tmp/cfg/$1.yaml; }  # name, text

# ------------------------------------------------------------------------------------------------ YAML
cfg syntax 'model:\n  depth: [4\n'
expect "yaml: syntax error names the file and line" 2 "syntax.yaml:" "YAML syntax error" -- \
    $jepa train $tmp/cfg/syntax.yaml
cfg unknown 'model:\n  dept: 4\n'
expect "yaml: unknown key names it and the nearest key" 2 "unknown.yaml:2: unknown key 'model.dept'" "model.depth" -- \
    $jepa train $tmp/cfg/unknown.yaml
cfg section 'modle:\n  depth: 4\n'
expect "yaml: unknown section" 2 "section.yaml:1:" "modle" -- $jepa train $tmp/cfg/section.yaml
cfg type 'model:\n  depth: four\n'
expect "yaml: wrong type names key, value and the type expected" 2 "type.yaml:2:" "model.depth" "four" "expected" -- \
    $jepa train $tmp/cfg/type.yaml
cfg list_type 'optimization:\n  ema: [0.996, high]\n'
expect "yaml: wrong type inside a list" 2 "list_type.yaml:2:" "optimization.ema" "high" -- $jepa train $tmp/cfg/list_type.yaml
cfg range 'optimization:\n  lr: -1.0\n'
expect "yaml: out of range names key, value and the range" 2 "range.yaml:2:" "optimization.lr" ">= 0" "-1" -- \
    $jepa train $tmp/cfg/range.yaml
cfg empty ''
expect "yaml: an empty file (a default ViT-L run would start)" 2 "empty.yaml: the file is empty" "expected a mapping" -- \
    $jepa train $tmp/cfg/empty.yaml
cfg comments '# only a comment\n'
expect "yaml: a file of comments only" 2 "comments.yaml: the file is empty" -- $jepa train $tmp/cfg/comments.yaml
cfg duplicate 'model:\n  depth: 4\n  depth: 2\n'
expect "yaml: duplicate key names both lines" 2 "duplicate.yaml:3: duplicate key 'model.depth' (first at line 2)" -- \
    $jepa train $tmp/cfg/duplicate.yaml
cfg two_docs 'model:\n  depth: 4\n---\nmodel:\n  depth: 2\n'
expect "yaml: a second document" 2 "two_docs.yaml:4: a second YAML document" -- $jepa train $tmp/cfg/two_docs.yaml
cfg list_root '- model\n- data\n'
expect "yaml: a list at the top" 2 "list_root.yaml:1: expected a mapping of sections" -- $jepa train $tmp/cfg/list_root.yaml
expect "yaml: a missing config file" 2 "$tmp/cfg/nowhere.yaml: cannot open config file: No such file" -- \
    $jepa train $tmp/cfg/nowhere.yaml
expect "yaml: a folder given as the config" 2 "$tmp/cfg: is a directory, expected a YAML config file" -- \
    $jepa train $tmp/cfg
expect "override: a missing key names it" 2 "command line: unknown key 'model.nope'" -- train model.nope=3
expect "override: a mask generator that does not exist" 2 "mask.7.num_blocks: mask index 7 out of range" -- \
    train mask.7.num_blocks=3
expect "override: wrong type" 2 "optimization.lr" "abc" -- train optimization.lr=abc
expect "override: not key=value" 2 "'=3' is not key=value" -- train =3
expect "config: inconsistent keys (heads do not divide the width)" 2 "model.embed_dim (96) must be a multiple of model.num_heads (5)" -- \
    train model.num_heads=5

# ------------------------------------------------------------------------------------------------ HDF5 stores
store() { train "data.datasets=[$1]" optimization.max_steps=1 logging.write_tag=store "${@:2}"; }
expect "hdf5: a missing store" 2 "$tmp/h5/none.h5: cannot open store: No such file" -- store $tmp/h5/none.h5
check "hdf5: a bad store leaves no run folder behind (the stores open before the run folder is made)" \
    "$(ls $runs)" [ ! -e $runs/store ]
echo "not hdf5" > $tmp/h5/text.h5
expect "hdf5: a file that is not HDF5" 2 "text.h5: not an HDF5 file; expected a clip store" -- store $tmp/h5/text.h5
expect "hdf5: a folder given as the store" 2 "$tmp/cfg: is a directory, expected an HDF5 clip store" -- store $tmp/cfg
$jepa data synth --world balls --size 48x48 --frames 4 --clips 16 -o $tmp/h5/short.h5 > /dev/null
expect "hdf5: clips shorter than data.num_frames" 2 "short.h5: /clips: T = 4 frames per clip" "data.num_frames 8" \
    "jepa data convert --frames 8" -- store $tmp/h5/short.h5
$jepa data synth --world balls --size 48x48 --frames 8 --clips 2 -o $tmp/h5/two.h5 > /dev/null
expect "hdf5: fewer clips than data.batch_size" 2 "2 clips in all ($tmp/h5/two.h5), fewer than data.batch_size 8" \
    "lower data.batch_size to at most 2" -- store $tmp/h5/two.h5
cp $tmp/h5/ok.h5 $tmp/h5/truncated.h5
truncate -s $(($(stat -c %s $tmp/h5/ok.h5) / 2)) $tmp/h5/truncated.h5
expect "hdf5: a truncated store" 2 "truncated.h5: libhdf5 cannot open it: a damaged or truncated file" -- \
    store $tmp/h5/truncated.h5
if [ -z "$py" ]; then
    skip "bad input: hdf5 stores written by h5py" "no python3 with h5py (scripts/deps.sh installs python3-h5py)"
else
    "$py" - $tmp/h5 <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
clips = rng.integers(0, 256, (16, 8, 48, 48, 3), dtype=np.uint8)
def write(name, key, data, chunks):
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        f.create_dataset(key, data=data, chunks=chunks)
write("no_clips", "frames", clips, (1, 8, 48, 48, 3))
write("float_clips", "clips", clips.astype(np.float32), (1, 8, 48, 48, 3))
write("int16_clips", "clips", clips.astype(np.int16), (1, 8, 48, 48, 3))
write("rank4", "clips", clips[..., 0], (1, 8, 48, 48))
write("rgba", "clips", np.concatenate([clips, clips[..., :1]], axis=4), (1, 8, 48, 48, 4))
with h5py.File(f"{d}/zero.h5", "w") as f:
    f.create_dataset("clips", shape=(0, 8, 48, 48, 3), maxshape=(None, 8, 48, 48, 3), dtype=np.uint8,
                     chunks=(1, 8, 48, 48, 3))
# One deflated chunk overwritten in its middle: the file opens and validates; reading clip 5 cannot inflate.
import shutil
shutil.copy(f"{d}/ok.h5", f"{d}/bad_chunk.h5")
with h5py.File(f"{d}/bad_chunk.h5", "r") as f:
    info = f["clips"].id.get_chunk_info(5)
with open(f"{d}/bad_chunk.h5", "r+b") as f:
    f.seek(info.byte_offset + info.size // 3)
    f.write(b"\xff" * (info.size // 3))
PY
    expect "hdf5: no /clips" 2 "no_clips.h5: no dataset /clips; expected uint8 [N,T,H,W,3]" -- store $tmp/h5/no_clips.h5
    expect "hdf5: float32 pixels" 2 "float_clips.h5: /clips: dtype float32" "expected uint8" -- store $tmp/h5/float_clips.h5
    expect "hdf5: int16 pixels" 2 "int16_clips.h5: /clips: dtype" "expected uint8" -- store $tmp/h5/int16_clips.h5
    expect "hdf5: rank 4" 2 "rank4.h5: /clips: shape [16,8,48,48] has rank 4, expected uint8 [N,T,H,W,3]" -- \
        store $tmp/h5/rank4.h5
    expect "hdf5: 4 channels" 2 "rgba.h5: /clips: shape [16,8,48,48,4] has 4 channels" -- store $tmp/h5/rgba.h5
    expect "hdf5: zero clips" 2 "zero.h5: /clips: shape [0,8,48,48,3] holds N = 0 clips, expected at least one" -- \
        store $tmp/h5/zero.h5
    expect "hdf5: an unreadable (corrupt) chunk" 2 "bad_chunk.h5: /clips: clip 5: damaged deflate chunk" "make the store again" -- \
        store $tmp/h5/bad_chunk.h5 data.batch_size=16
fi

# ------------------------------------------------------------------------------------------------ checkpoints
# Each case is a copy of the base run with its checkpoint broken, resumed with meta.resume=must.
broken() { rm -rf $runs/$1 && cp -r $runs/base $runs/$1; }
resume() { train logging.write_tag=$1 optimization.max_steps=4 meta.resume=must "${@:2}"; }
rewrite_manifest() { /usr/bin/python3 -c "import sys; sys.path.insert(0, 'scripts'); import ckpt_io; ckpt_io.write_manifest(sys.argv[1], 2)" "$1"; }
expect "checkpoint: no run folder to resume" 2 "meta.resume=must: there is no run folder $runs/gone" -- resume gone
broken nockpt && rm -rf $runs/nockpt/checkpoints/step_000002
expect "checkpoint: a run folder without checkpoints" 2 "meta.resume=must: no checkpoint in $runs/nockpt/checkpoints verifies" -- \
    resume nockpt
broken trunc && truncate -s -4096 $runs/trunc/checkpoints/step_000002/model.safetensors
expect "checkpoint: a truncated model.safetensors" 2 "model.safetensors: 4336392 bytes, the manifest says 4340488 (truncated or rewritten)" -- \
    resume trunc
broken flip && /usr/bin/python3 - $runs/flip/checkpoints/step_000002/optimizer.safetensors <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-100, 2); b = f.read(1); f.seek(-100, 2); f.write(bytes([b[0] ^ 0x5A]))
PY
expect "checkpoint: checksum mismatch (one byte flipped)" 2 "optimizer.safetensors: xxh3_64" "does not verify" -- resume flip
broken header && printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of=$runs/header/checkpoints/step_000002/model.safetensors conv=notrunc status=none \
    && rewrite_manifest $runs/header/checkpoints/step_000002
expect "checkpoint: a bad safetensors header (manifest consistent)" 2 "model.safetensors: header length 9223372036854775807 is not within" -- \
    resume header
broken shape && /usr/bin/python3 - $runs/shape/checkpoints/step_000002 <<'PY'
import json, struct, sys
sys.path.insert(0, "scripts")
import ckpt_io
path = sys.argv[1] + "/model.safetensors"
data = open(path, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
header["encoder.norm.weight"]["shape"] = [2, 48]  # the same bytes, another shape
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
ckpt_io.write_manifest(sys.argv[1], 2)
PY
expect "checkpoint: a tensor of the wrong shape" 2 "refusing to resume" "encoder.norm.weight" "[2,48]" -- resume shape
broken size
expect "checkpoint: another model size (model.embed_dim)" 2 "refusing to resume" "model.embed_dim: 96 in the checkpoint, 128 in the config" -- \
    resume size model.embed_dim=128
broken state && echo '{"step": ' > $runs/state/checkpoints/step_000002/state.json && rewrite_manifest $runs/state/checkpoints/step_000002
expect "checkpoint: a corrupt state.json (manifest consistent)" 2 "state.json" "does not verify" -- resume state
broken manifest && rm $runs/manifest/checkpoints/step_000002/manifest.json
expect "checkpoint: no manifest (an interrupted write)" 2 "manifest.json" "no checkpoint in $runs/manifest/checkpoints verifies" -- \
    resume manifest
expect "export: a truncated checkpoint" 2 "$runs/trunc/checkpoints/step_000002" "truncated or rewritten" -- \
    $jepa export $runs/trunc/checkpoints/step_000002 -o $tmp/out.safetensors
expect "export: a missing checkpoint" 2 "$runs/gone: expected a checkpoint folder" -- $jepa export $runs/gone -o $tmp/out.safetensors

# ------------------------------------------------------------------------------------------------ run folder, disk
echo "a file" > $tmp/afile
expect "run folder: logging.folder under a file" 2 "logging.folder: cannot create $tmp/afile/runs" "Not a directory" -- \
    train logging.folder=$tmp/afile/runs optimization.max_steps=1
if [ "$(id -u)" -ne 0 ]; then
    mkdir -p $tmp/readonly && chmod 555 $tmp/readonly
    expect "run folder: logging.folder not writable" 2 "logging.folder: cannot create $tmp/readonly/runs" "Permission denied" -- \
        train logging.folder=$tmp/readonly/runs optimization.max_steps=1
else
    skip "bad input: run folder not writable" "running as root, which may write anywhere (the ENOTDIR case above stands in)"
fi
# A full disk while writing a checkpoint: a 14 MiB tmpfs holds the base run (9 MiB) but not a second checkpoint.
mkdir -p $tmp/disk
if ! mount_err=$(mount -t tmpfs -o size=14m tmpfs $tmp/disk 2>&1); then
    skip "bad input: disk full" "cannot mount a small tmpfs (${mount_err:-mount failed}; needs root)"
else
    trap 'umount $tmp/disk 2>/dev/null; rm -rf "$tmp"' EXIT
    cp -r $runs/base $tmp/disk/base
    # Resuming appends to the run's log and metrics; its checkpoint must stay as it was.
    keep=$tmp/disk/base/checkpoints/step_000002 expect "disk full: a checkpoint that does not fit exits 2 naming the file" 2 \
        "No space left on device" "$tmp/disk/base/checkpoints/step_000004" -- \
        train logging.folder=$tmp/disk logging.write_tag=base optimization.max_steps=4
    left=$(ls $tmp/disk/base/checkpoints | grep -v '[.]tmp$')
    check "bad input: disk full: the previous checkpoint is kept, no partial one listed" "$left" [ "$left" = step_000002 ]
    mount -o remount,size=64m $tmp/disk  # space freed: the run goes on from its last checkpoint
    out=$(train logging.folder=$tmp/disk logging.write_tag=base optimization.max_steps=4 2>&1); rc=$?
    check "bad input: disk full: with space again the run resumes from its last checkpoint" "rc=$rc: $(tail -2 <<< "$out")" \
        bash -c '[ $1 -eq 0 ] && grep -qF "resuming from $2/disk/base/checkpoints/step_000002" <<< "$0"' "$out" "$rc" "$tmp"
    umount $tmp/disk
fi
