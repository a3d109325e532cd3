#!/usr/bin/env bash
# `jepa data` and `jepa bench data` as a user runs them: synth -> info -> h5py -> train round trip, the world's
# ground truth against its pixels, bad stores through the CLI, convert --from-h5, convert on real footage (the
# mechanics clips of Debian's python3-mecavideo, decoded by ffmpeg), and the benchmark's report.
set -u
source "$(dirname "$0")/lib.sh"
has() { grep -qF -- "$2" <<< "$1"; }  # text, fixed string
# Debian's python3 has python3-h5py; a python3 earlier on PATH (pyenv, venv) may not.
py=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import h5py, numpy' 2> /dev/null; then py=$candidate; break; fi
done

# ------------------------------------------------------------------------------------------------ synth and info
out=$($jepa data synth --world balls --size 32x48 --frames 16 --clips 40 --balls 2 --seed 3 -o $tmp/s.h5 2>&1); rc=$?
check "data: synth writes a deflate store" "rc=$rc: $out" [ "$rc" -eq 0 -a -s $tmp/s.h5 ]
$jepa data synth --world balls --size 32x48 --frames 16 --clips 40 --balls 2 --seed 3 --deflate 0 -o $tmp/s_raw.h5 > /dev/null 2>&1
out=$($jepa data info $tmp/s.h5 2>&1); rc=$?
check "data: info validates and summarises (shape, chunking, compression, states, attributes)" "rc=$rc: $out" \
    bash -c '[ $1 -eq 0 ] && grep -qF "[40,16,32,48,3], one chunk per clip [1,16,32,48,3], deflate" <<< "$0" &&
             grep -qF "ball1_vy" <<< "$0" && grep -qF "40 source videos" <<< "$0" && grep -q "^ok: " <<< "$0"' "$out" "$rc"
out=$($jepa data info $tmp/s_raw.h5 2>&1)
check "data: info reports a raw store as uncompressed (1.00x)" "$out" has "$out" "(1.00x)"

out=$($jepa data synth --world balls --clips 4 -o $tmp/s.h5 2>&1); rc=$?
check "data: synth refuses to replace a file without --force" "rc=$rc: $out" \
    bash -c '[ $1 -eq 2 ] && grep -qF "s.h5 exists" <<< "$0" && grep -qF -- "--force" <<< "$0"' "$out" "$rc"
out=$($jepa data synth --clips 4 -o $tmp/x.h5 2>&1); rc=$?
check "data: synth without --world exits 2 naming it" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF -- "--world is required" <<< "$0"' "$out" "$rc"
out=$($jepa data synth --world cubes -o $tmp/x.h5 2>&1); rc=$?
check "data: synth --world cubes exits 2 listing the worlds" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF "worlds: balls" <<< "$0"' "$out" "$rc"
out=$($jepa data synth --world balls --size 0x9 -o $tmp/x.h5 2>&1); rc=$?
check "data: synth --size 0x9 exits 2" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF -- "--size '"'"'0x9'"'"': expected HxW" <<< "$0"' "$out" "$rc"
out=$($jepa data info $tmp/none.h5 2>&1); rc=$?
check "data: info on a missing file exits 2 naming it" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF "none.h5: cannot open store" <<< "$0"' "$out" "$rc"

# ------------------------------------------------------------------------------------------------ h5py reads our stores
if [ -z "$py" ]; then
    skip "data: h5py reads our stores" "no python3 with h5py (Debian: apt-get install python3-h5py)"
else
    out=$("$py" - "$tmp" <<'PY' 2>&1
import sys, h5py, numpy as np
tmp = sys.argv[1]
f, r = h5py.File(f"{tmp}/s.h5", "r"), h5py.File(f"{tmp}/s_raw.h5", "r")
c = f["clips"]
def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
check("h5py: /clips uint8 (40,16,32,48,3), one chunk per clip, gzip", c.dtype == np.uint8 and c.shape == (40, 16, 32, 48, 3)
      and c.chunks == (1, 16, 32, 48, 3) and c.compression == "gzip" and r["clips"].compression is None,
      (c.dtype, c.shape, c.chunks, c.compression))
check("h5py: raw and deflate stores hold the same pixels", np.array_equal(c[:], r["clips"][:]))
s = f["states"]
names = [n.decode() if isinstance(n, bytes) else n for n in s.attrs["names"]]
check("h5py: /states float32 (40,16,8) named ball0_x .. ball1_vy", s.dtype == np.float32 and s.shape == (40, 16, 8)
      and names[0] == "ball0_x" and names[7] == "ball1_vy", (s.shape, names))
check("h5py: /video_id int32 0..39, attributes fps, source, created_by",
      f["video_id"].dtype == np.int32 and list(f["video_id"][:]) == list(range(40)) and f.attrs["fps"] == 25.0
      and "balls" in f.attrs["source"] and "jepa data synth" in f.attrs["created_by"], dict(f.attrs))
# Ground truth against pixels: the pixel under every ball centre is not the background, and centres are in the box.
st, px = s[:], c[:]
inside = (st[..., 0::4] >= 0).all() and (st[..., 0::4] <= 48).all() and (st[..., 1::4] >= 0).all() and (st[..., 1::4] <= 32).all()
hits = total = 0
for i in range(40):
    for t in range(16):
        for b in range(2):
            x, y = st[i, t, 4 * b], st[i, t, 4 * b + 1]
            total += 1
            hits += not np.array_equal(px[i, t, int(y), int(x)], [24, 24, 24])
check("h5py: /states positions lie in the frame and on a ball's pixels (not background)", inside and hits == total,
      f"inside {inside}, {hits}/{total} centres on a ball")
# Positions move by the stored velocities between frames (frame step 1), except where a ball bounced.
dx = st[:, 1:, 0::4] - st[:, :-1, 0::4]
vx = st[:, :-1, 2::4]
close = np.abs(dx - vx) < 1e-3
check("h5py: /states velocities predict the next position (>= 90% of steps; the rest bounce)", close.mean() > 0.9,
      f"{close.mean():.3f}")
PY
)
    echo "$out"
fi

# ------------------------------------------------------------------------------------------------ train from a store
out=$($jepa train configs/tiny.yaml "data.datasets=[$tmp/s.h5]" optimization.max_steps=3 logging.folder=$tmp/runs \
      logging.write_tag=store 2>&1); rc=$?
check "train: configs/tiny.yaml data.datasets=[store.h5] trains" "rc=$rc: $(tail -3 <<< "$out")" [ "$rc" -eq 0 ]
check "train: one metrics record per step with the data wait" "$(cat $tmp/runs/store/metrics.jsonl 2>&1 | head -2)" \
    bash -c '[ "$(wc -l < '$tmp'/runs/store/metrics.jsonl)" = 3 ] && grep -q data_wait_s '$tmp'/runs/store/metrics.jsonl'
out=$($jepa train configs/tiny.yaml "data.datasets=[$tmp/s.h5]" data.sampling_rate=4 optimization.max_steps=1 \
      logging.folder=$tmp/runs 2>&1); rc=$?
check "train: a store too short for the sampling exits 2 naming file, keys and the fix" "rc=$rc: $out" \
    bash -c '[ $1 -eq 2 ] && grep -qF "s.h5: /clips: T = 16 frames" <<< "$0" &&
             grep -qF "data.num_frames 8 x data.sampling_rate 4 = 32" <<< "$0" && grep -qF "jepa data convert --frames 32" <<< "$0"' "$out" "$rc"
out=$($jepa train configs/tiny.yaml "data.datasets=[$tmp/missing.h5]" optimization.max_steps=1 logging.folder=$tmp/runs 2>&1); rc=$?
check "train: a missing store exits 2 naming it" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF "missing.h5: cannot open store" <<< "$0"' "$out" "$rc"

# ------------------------------------------------------------------------------------------------ convert --from-h5
if [ -z "$py" ]; then
    skip "data: convert --from-h5" "no python3 with h5py"
else
    "$py" - "$tmp" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File(sys.argv[1] + "/contiguous.h5", "w") as f:  # what a user's own pipeline might write
    f["clips"] = rng.integers(0, 256, (5, 8, 16, 16, 3), dtype=np.uint8)
    f["states"] = rng.standard_normal((5, 8, 2)).astype(np.float32)
    f["states"].attrs["names"] = np.array([b"a", b"b"])  # fixed-length strings
    f["labels"] = np.arange(5, dtype=np.int64)
    f.attrs["fps"] = 30
PY
    out=$($jepa data info $tmp/contiguous.h5 2>&1); rc=$?
    check "data: info on a contiguous /clips exits 2 saying how to rewrite it" "rc=$rc: $out" \
        bash -c '[ $1 -eq 2 ] && grep -qF "stored contiguous (not chunked)" <<< "$0" && grep -qF "jepa data convert --from-h5" <<< "$0"' "$out" "$rc"
    out=$($jepa data convert --from-h5 $tmp/contiguous.h5 -o $tmp/fixed.h5 2>&1 && $jepa data info $tmp/fixed.h5 2>&1); rc=$?
    check "data: convert --from-h5 rewrites it as a valid store" "rc=$rc: $out" bash -c '[ $1 -eq 0 ] && grep -q "^ok: " <<< "$0"' "$out" "$rc"
    out=$("$py" - "$tmp" <<'PY' 2>&1
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1] + "/contiguous.h5", "r"), h5py.File(sys.argv[1] + "/fixed.h5", "r")
ok = (np.array_equal(a["clips"][:], b["clips"][:]) and b["clips"].chunks == (1, 8, 16, 16, 3)
      and np.array_equal(a["states"][:], b["states"][:]) and list(b["labels"][:]) == list(range(5))
      and b["labels"].dtype == np.int32 and b.attrs["fps"] == 30
      and [n.decode() if isinstance(n, bytes) else n for n in b["states"].attrs["names"]] == ["a", "b"])
print("PASS data: --from-h5 keeps pixels, states and names, labels, fps" if ok else "FAIL data: --from-h5 lost data")
PY
)
    echo "$out"
fi

# ------------------------------------------------------------------------------------------------ real footage
# Eight short mechanics clips (.avi, .mp4, .ogv) from Debian's python3-mecavideo, fetched once into build/cache.
cache=build/cache/mecavideo
videos=$cache/usr/share/pymecavideo/data/video
if [ ! -d "$videos" ]; then
    mkdir -p $cache
    (cd $cache && apt-get download python3-mecavideo > download.log 2>&1 && dpkg-deb -x python3-mecavideo_*.deb .) \
        || rm -rf $cache/usr
fi
if ! command -v ffmpeg > /dev/null || ! command -v ffprobe > /dev/null; then
    skip "data: convert on real footage" "ffmpeg is not installed (Debian: apt-get install ffmpeg)"
elif [ ! -d "$videos" ]; then
    skip "data: convert on real footage" "python3-mecavideo could not be fetched (apt-get download: $(tail -1 $cache/download.log 2>/dev/null))"
else
    clips=$(ls $videos/*.avi $videos/*.mp4 $videos/*.ogv 2>/dev/null)
    n_videos=$(wc -w <<< "$clips")
    check "data: python3-mecavideo ships 8 clips (.avi, .mp4, .ogv)" "$n_videos: $clips" [ "$n_videos" -eq 8 ]
    out=$($jepa data convert $clips -o $tmp/real.h5 --size 64 --frames 16 --stride 8 2>&1); rc=$?
    check "data: convert cuts the 8 real videos into a store" "rc=$rc: $(tail -3 <<< "$out")" [ "$rc" -eq 0 ]
    out=$($jepa data info $tmp/real.h5 2>&1); rc=$?
    check "data: the converted store is valid, one video id per video" "rc=$rc: $out" \
        bash -c '[ $1 -eq 0 ] && grep -qF "8 source videos" <<< "$0" && grep -q "^ok: " <<< "$0"' "$out" "$rc"
    # Clips per video from ffprobe's own frame count: floor((frames - 16) / 8) + 1.
    i=0
    for v in $clips; do  # in parallel: each decodes its whole video
        ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$v" \
            > $tmp/frames.$i &
        i=$((i + 1))
    done
    wait
    expected=""
    for ((i = 0; i < n_videos; i++)); do
        n=$(cat $tmp/frames.$i)
        expected="$expected $(( n >= 16 ? (n - 16) / 8 + 1 : 0 ))"
    done
    if [ -n "$py" ]; then
        # Every clip of the h264 video equals frames [8k, 8k + 16) of an independent ffmpeg decode.
        index=$(grep -n "balle-jbart.mp4" <<< "$clips" | cut -d: -f1)
        ffmpeg -v error -nostdin -i $videos/balle-jbart.mp4 -an \
            -vf "scale=64:64:force_original_aspect_ratio=increase,crop=64:64" -pix_fmt rgb24 -f rawvideo $tmp/one.rgb
        out=$("$py" - "$tmp" "$expected" "$((index - 1))" <<'PY' 2>&1
import sys, h5py, numpy as np
tmp, expected = sys.argv[1], [int(x) for x in sys.argv[2].split()]
f = h5py.File(tmp + "/real.h5", "r")
ids = f["video_id"][:]
got = [int((ids == v).sum()) for v in range(8)]
print(("PASS" if got == expected else "FAIL") + f" convert: clips per video = floor((frames - 16) / 8) + 1 from ffprobe"
      + ("" if got == expected else f": got {got}, want {expected}"))
raw = np.fromfile(tmp + "/one.rgb", dtype=np.uint8).reshape(-1, 64, 64, 3)
mine = f["clips"][ids == int(sys.argv[3])]
ok = len(mine) == 30 and all(np.array_equal(mine[k], raw[8 * k: 8 * k + 16]) for k in range(len(mine)))
print(("PASS" if ok else "FAIL") + " convert: the 30 clips of the h264 video equal ffmpeg's frames [8k, 8k + 16)"
      + ("" if ok else f" ({len(mine)} clips)"))
print(("PASS" if float(mine.std()) > 5 else "FAIL") + f" convert: real frames are not blank (pixel std {float(mine.std()):.1f})")
PY
)
        echo "$out"
    fi
    out=$($jepa train configs/tiny.yaml "data.datasets=[$tmp/real.h5, $tmp/s.h5]" "data.datasets_weights=[3, 1]" \
          optimization.max_steps=2 logging.folder=$tmp/runs logging.write_tag=real 2>&1); rc=$?
    check "train: real footage mixed with a synthetic store by weight trains" "rc=$rc: $(tail -3 <<< "$out")" [ "$rc" -eq 0 ]
fi
out=$($jepa data convert $tmp/none.mp4 -o $tmp/y.h5 2>&1); rc=$?
check "data: convert on a missing video exits 2 naming it" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qF "none.mp4: cannot read video" <<< "$0"' "$out" "$rc"

# ------------------------------------------------------------------------------------------------ bench
out=$($jepa bench data $tmp/s.h5 $tmp/s_raw.h5 --threads 1,2 --seconds 1 --frames 8 --crop 32 --batch 4 2>&1); rc=$?
echo "$out" | sed 's/^/     /'
check "bench: data reports clips/s and headroom per thread count for raw and deflate stores" "rc=$rc" \
    bash -c '[ $1 -eq 0 ] && [ $(grep -cE "^ +[12] +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+x$" <<< "$0") -eq 4 ] && grep -qF "raw (1.00x)" <<< "$0" &&
             grep -qF "deflate (" <<< "$0"' "$out" "$rc"
check "bench: data reports the stage breakdown and the cores a ViT-L GPU needs" "$out" \
    bash -c 'grep -qE "CPU time per clip: read [0-9.]+ ms, inflate [0-9.]+ ms, augment [0-9.]+ ms" <<< "$0" &&
             grep -qE "one ViT-L GPU at 160 clips/s needs [0-9.]+ cores" <<< "$0"' "$out"
out=$($jepa bench model 2>&1); rc=$?
check "bench: another target exits 2 listing the targets" "rc=$rc: $out" bash -c '[ $1 -eq 2 ] && grep -qE "targets: .*step, data" <<< "$0"' "$out" "$rc"
