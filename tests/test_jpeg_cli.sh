#!/usr/bin/env bash
# JPEG clip stores as a user makes and uses them: jepa data convert --codec jpeg from a video and from a raw
# store, jepa data check, a bad --codec, jepa bench data naming the decode path, and training from a JPEG store.
# (Damaged offset tables and frames: tests/test_jpeg.c.)
source "$(dirname "$0")/lib.sh"
if ! command -v ffmpeg > /dev/null; then skip "jpeg cli" "ffmpeg is not installed (apt-get install ffmpeg)"; exit 0; fi
# 4 s of ffmpeg's testsrc2 (moving shapes and gradients) at 25 fps: 100 frames -> 11 clips of 16 every 8.
ffmpeg -v error -f lavfi -i testsrc2=size=96x80:rate=25 -t 4 -c:v mpeg4 -q:v 3 "$tmp/v.avi"

out=$($jepa data convert "$tmp/v.avi" -o "$tmp/j.h5" --size 64 --frames 16 --stride 8 --codec jpeg --quality 80 2>&1); rc=$?
check "convert --codec jpeg: a video becomes a JPEG store" "rc=$rc: $out" \
    bash -c '[ $1 -eq 0 ] && grep -qF "11 clips of 16 frames of 64x64 from 1 videos, JPEG frames" <<< "$0"' "$out" "$rc"
out=$($jepa data check "$tmp/j.h5" 2>&1); rc=$?
check "data check: a JPEG store is valid, with codec, quality and offset table named" "rc=$rc: $out" \
    bash -c '[ $1 -eq 0 ] && grep -qF "11 clips of 16 JPEG frames of 64x64, quality 80" <<< "$0" &&
             grep -qF "/frame_offsets int64 [11,17] (every row checked)" <<< "$0" && grep -qF "ok: " <<< "$0"' "$out" "$rc"

# The same pixels through a raw store: --from-h5 --codec jpeg writes the same JPEG bytes (same size of /frames).
$jepa data convert "$tmp/v.avi" -o "$tmp/r.h5" --size 64 --frames 16 --stride 8 --deflate 0 > /dev/null 2>&1
out=$($jepa data convert --from-h5 "$tmp/r.h5" -o "$tmp/j2.h5" --codec jpeg --quality 80 2>&1); rc=$?
frames_of() { $jepa data check "$1" 2>&1 | grep -o '/frames uint8 \[[0-9]*\]'; }
check "convert --from-h5 --codec jpeg: a raw store rewritten gives the same /frames" "rc=$rc: $out; $(frames_of $tmp/j.h5) vs $(frames_of $tmp/j2.h5)" \
    bash -c '[ $0 -eq 0 ] && [ -n "$1" ] && [ "$1" = "$2" ]' "$rc" "$(frames_of $tmp/j.h5)" "$(frames_of $tmp/j2.h5)"

out=$($jepa data convert "$tmp/v.avi" -o "$tmp/x.h5" --codec webp 2>&1); rc=$?
check "convert --codec webp: exit 2, one line naming the choices" "rc=$rc: $out" \
    bash -c '[ $1 -eq 2 ] && [ $(wc -l <<< "$0") -eq 1 ] && grep -qF "expected raw or jpeg" <<< "$0"' "$out" "$rc"
out=$($jepa data convert "$tmp/v.avi" -o "$tmp/x.h5" --codec jpeg --quality 0 2>&1); rc=$?
check "convert --quality 0: exit 2 naming the range" "rc=$rc: $out" \
    bash -c '[ $1 -eq 2 ] && grep -qF "expected an integer in [1, 100]" <<< "$0"' "$out" "$rc"

out=$($jepa bench data "$tmp/j.h5" "$tmp/r.h5" --seconds 1 --threads 1,2 --frames 4 --rate 2 --crop 32 --batch 4 2>&1); rc=$?
check "bench data: JPEG and raw stores, the decode path and the headroom named" "rc=$rc: $out" \
    bash -c '[ $1 -eq 0 ] && grep -qF "jpeg q80" <<< "$0" && grep -qF "decode: cpu turbojpeg" <<< "$0" &&
             grep -qF "headroom" <<< "$0" && grep -qF "raw (1.00x)" <<< "$0"' "$out" "$rc"

out=$($jepa train configs/tiny.yaml "data.datasets=[$tmp/j.h5]" optimization.max_steps=2 logging.folder=$tmp/runs \
      logging.write_tag=jpeg 2>&1); rc=$?
check "train: configs/tiny.yaml trains from a JPEG store" "rc=$rc: $(tail -3 <<< "$out")" \
    bash -c '[ $0 -eq 0 ] && [ "$(wc -l < $1/runs/jpeg/metrics.jsonl)" = 2 ]' "$rc" "$tmp"
