#!/usr/bin/env bash
# jepa eval probe | surprise and jepa embed end to end on a tiny checkpoint (a few seconds): results written,
# deterministic from the seed, the random-init baseline and the pixel baseline present, bad input exits 2.
source "$(dirname "$0")/lib.sh"
cat > $tmp/tiny.yaml <<EOF
data: {source: synthetic, batch_size: 4, num_frames: 4, tubelet_size: 2, sampling_rate: 1, crop_size: 16, patch_size: 4, synth_balls: 2}
data_aug: {random_horizontal_flip: false}
mask:
  - {num_blocks: 2, spatial_scale: [0.15, 0.15]}
  - {num_blocks: 1, spatial_scale: [0.15, 0.15], max_temporal_keep: 0.5}
model: {model_name: vit_custom, embed_dim: 16, depth: 1, num_heads: 2, pred_depth: 1, pred_embed_dim: 16, pred_num_heads: 2}
optimization: {ipe: 4, epochs: 1, warmup: 0, start_lr: 1.0e-3, lr: 1.0e-3, final_lr: 1.0e-4}
meta: {seed: 0, dtype: float32, device: cpu, threads: 1}
logging: {folder: $tmp/runs, write_tag: tiny, log_every: 4}
EOF
if ! out=$($jepa train $tmp/tiny.yaml 2>&1); then fail "eval_cli_setup" "tiny training failed: $(tail -2 <<< "$out")"; exit 0; fi
run=$tmp/runs/tiny
$jepa data synth --world balls -o $tmp/p16.h5 --clips 32 --frames 4 --size 16 --balls 1 > /dev/null
$jepa data synth --world balls -o $tmp/p24.h5 --clips 4 --frames 4 --size 24 --balls 1 > /dev/null

# Probe: a JSON with both encoders' R^2 per column; the same numbers twice (seconds aside), other numbers for
# another seed.
r2() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['trained']['r2'], r['random_init']['r2'])" "$1"; }
$jepa eval probe --checkpoint $run --data $tmp/p16.h5 --epochs 20 -o $tmp/a.json > $tmp/a.out 2>&1
$jepa eval probe --checkpoint $run --data $tmp/p16.h5 --epochs 20 -o $tmp/b.json > /dev/null 2>&1
$jepa eval probe --checkpoint $run --data $tmp/p16.h5 --epochs 20 --seed 1 -o $tmp/c.json > /dev/null 2>&1
check "eval_probe_json" "$(tail -3 $tmp/a.out)" \
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert set(r['trained']['r2']) == {'ball0_x','ball0_y','ball0_vx','ball0_vy'} and 'random_init' in r and len(r['trained']['predicted']) == r['held_out_samples']" $tmp/a.json
check "eval_probe_deterministic" "$(r2 $tmp/a.json) vs $(r2 $tmp/b.json)" [ -s $tmp/a.json -a "$(r2 $tmp/a.json)" = "$(r2 $tmp/b.json)" ]
check "eval_probe_seed_matters" "seeds 0 and 1 gave $(r2 $tmp/a.json)" [ -s $tmp/c.json -a "$(r2 $tmp/a.json)" != "$(r2 $tmp/c.json)" ]

# Surprise: every violation scored by the trained model, the random init and the pixel baseline; deterministic.
acc() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['violations']; print([(v, r[v][s]['pairwise_accuracy'], r[v][s]['auroc']) for v in r for s in r[v]])" "$1"; }
$jepa eval surprise --checkpoint $run --pairs 4 -o $tmp/s1.json > $tmp/s1.out 2>&1
$jepa eval surprise --checkpoint $run --pairs 4 -o $tmp/s2.json > /dev/null 2>&1
check "eval_surprise_json" "$(tail -3 $tmp/s1.out)" \
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['violations']; assert set(r) == {'teleport','vanish','pass_ball','pass_wall','colour'} and all(set(r[v]) == {'trained','random_init','pixels'} for v in r)" $tmp/s1.json
check "eval_surprise_deterministic" "$(acc $tmp/s1.json) vs $(acc $tmp/s2.json)" [ -s $tmp/s1.json -a "$(acc $tmp/s1.json)" = "$(acc $tmp/s2.json)" ]

# Embed: pooled [N, D] and per-token [N, tokens, D] features in an HDF5 file.
out=$($jepa embed --checkpoint $run --data $tmp/p16.h5 -o $tmp/e.h5 2>&1)
check "embed_pooled" "$out" grep -q "32 clips -> .*/features \[32, 16\]" <<< "$out"
out=$($jepa embed --checkpoint $run --data $tmp/p16.h5 -o $tmp/t.h5 --pool tokens --clips 5 2>&1)
check "embed_tokens" "$out" grep -q "5 clips -> .*/features \[5, tokens, 16\]" <<< "$out"
check "embed_hdf5" "no HDF5 signature in $tmp/e.h5" bash -c "head -c 4 $tmp/e.h5 | od -c | grep -q 'H   D   F'"

# Bad input: one line naming what is wrong, exit 2.
bad() {  # name, expected text, command...
    local name=$1 want=$2; shift 2
    local o rc
    o=$("$@" 2>&1); rc=$?
    check "$name" "exit $rc: $o" bash -c "[ $rc -eq 2 ] && grep -q -- '$want' <<< \"\$0\"" "$o"
}
bad "eval_bad_size" "frames are 24x24; the model takes 16x16" $jepa eval probe --checkpoint $run --data $tmp/p24.h5
bad "eval_no_data" "--data FILE are required" $jepa eval probe --checkpoint $run
bad "eval_bad_checkpoint" "expected a checkpoint folder" $jepa eval surprise --checkpoint $tmp
bad "embed_exists" "exists" $jepa embed --checkpoint $run --data $tmp/p16.h5 -o $tmp/e.h5
