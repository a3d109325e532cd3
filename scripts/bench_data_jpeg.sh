#!/usr/bin/env bash
# The data benchmark of bench/RESULTS.md ("JPEG store"): raw, deflate and JPEG stores of the same real footage at
# 256 x 256, as 16-frame clips and as V-JEPA's 64-frame clips (16 frames at step 4), then `jepa bench data` on
# each for 1, 2, 4, ... and all cores (and nvJPEG + GPU augment where built in), and the GPU JPEG test.
#   bash scripts/bench_data_jpeg.sh VIDEO_DIR OUT_DIR [SECONDS]
# VIDEO_DIR: the videos (bench/RESULTS.md used python3-mecavideo's eight, build/cache/mecavideo/usr/share/
# pymecavideo/data/video). Prints the commands it runs; the stores stay in OUT_DIR.
set -eu
videos=$1 out=$2 seconds=${3:-5}
jepa=${JEPA:-build/jepa}
mkdir -p "$out"
run() { echo "+ $*"; "$@"; }
cores=$(nproc); threads=1; t=2
while [ "$t" -lt "$cores" ]; do threads="$threads,$t"; t=$((t * 2)); done
[ "$cores" -gt 1 ] && threads="$threads,$cores"
frames_in() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1" 2>/dev/null | grep -E '^[0-9]+$' || echo 0; }
long=""  # the videos long enough for 64-frame clips
for v in "$videos"/*; do if [ "$(frames_in "$v")" -ge 80 ]; then long="$long $v"; fi; done
for kind in raw deflate jpeg; do
    case $kind in raw) opts="--deflate 0" ;; deflate) opts="--deflate 1" ;; jpeg) opts="--codec jpeg --quality 90" ;; esac
    run "$jepa" data convert "$videos"/* -o "$out/real256_$kind.h5" --size 256 --frames 16 --stride 4 $opts --force
    [ -n "$long" ] && run "$jepa" data convert $long -o "$out/real64_$kind.h5" --size 256 --frames 64 --stride 16 $opts --force
done
run "$jepa" bench data "$out"/real256_{raw,deflate,jpeg}.h5 --seconds "$seconds" --threads "$threads"
[ -n "$long" ] && run "$jepa" bench data "$out"/real64_{raw,deflate,jpeg}.h5 --seconds "$seconds" --threads "$threads"
if [ -x build/tests/test_cuda_jpeg ]; then run build/tests/test_cuda_jpeg; fi
