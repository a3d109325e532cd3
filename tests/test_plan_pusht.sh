#!/usr/bin/env bash
# test_plan_pusht.sh: the Push-T world-model pipeline end to end on a tiny model (~20 s on 2 cores): data synth
# with actions and states, encoder pretraining on 96x96 frames, the action-conditioned predictor (model.kind ac,
# plan.world pusht), then jepa plan's MPC loop for pusht with its baselines, the per-episode lines and the PNG strip.
# What it checks is that every stage runs and reports, not how well a model trained for seconds plans; and the two
# episode protocols (plan.pusht_start).
source "$(dirname "$0")/lib.sh"
$jepa data synth --world pusht --policy random --episodes 12 --frames 8 -o $tmp/r.h5 > $tmp/synth.log 2>&1 &&
$jepa data synth --world pusht --policy noisy-expert --episodes 12 --frames 8 --seed 1 -o $tmp/e.h5 >> $tmp/synth.log 2>&1
check pusht_synth "$(tail -2 $tmp/synth.log)" test -s $tmp/e.h5

# A ViT of width 32, one block (36 patches per 96x96 frame), on the CPU in f32.
tiny="model.embed_dim=32 model.depth=1 model.num_heads=2 model.pred_depth=1 model.pred_embed_dim=32 \
model.pred_num_heads=2 data.batch_size=4 data.num_frames=4 meta.device=cpu meta.dtype=float32 meta.threads=1"
common="logging.folder=$tmp/runs data.datasets=[$tmp/r.h5,$tmp/e.h5] logging.log_every=1000"
$jepa train configs/pusht_encoder.yaml $common $tiny optimization.max_steps=4 > $tmp/enc.log 2>&1
enc=$(ls -d $tmp/runs/pusht_encoder/checkpoints/step_* 2>/dev/null | tail -1)
check pusht_encoder_trains "$(tail -3 $tmp/enc.log)" test -n "$enc"

$jepa train configs/ac_pusht.yaml $common $tiny ac.encoder_checkpoint=$enc ac.pred_depth=1 ac.pred_embed_dim=32 \
    ac.pred_num_heads=2 ac.frames=3 optimization.max_steps=6 optimization.warmup=0 > $tmp/ac.log 2>&1
check pusht_ac_trains "$(tail -3 $tmp/ac.log)" test -s $tmp/runs/ac_pusht/predictor.safetensors

cem="plan.samples=12 plan.elites=3 plan.iterations=2 plan.horizon=3 plan.execute=3 plan.step_limit=6"
$jepa plan configs/ac_pusht.yaml --checkpoint $tmp/runs/ac_pusht ac.encoder_checkpoint=$enc $tiny ac.pred_depth=1 \
    ac.pred_embed_dim=32 ac.pred_num_heads=2 ac.frames=3 $cem --episodes 2 --with-latent --per-episode \
    --strip $tmp/strip.png > $tmp/plan.log 2>&1
rc=$?
check pusht_plan_runs "exit $rc: $(tail -5 $tmp/plan.log)" test $rc = 0
check pusht_plan_reports_every_planner "$(cat $tmp/plan.log)" bash -c "grep -q '^random actions' $tmp/plan.log && \
    grep -q '^true dynamics' $tmp/plan.log && grep -q '^true dyn+latent' $tmp/plan.log && grep -q '^ac model' $tmp/plan.log"
# 2 episodes x 4 planners; a step limit of 6 actions caps every episode's steps (none starts solved).
lines=$(grep -c 'episode *[01]: agent' $tmp/plan.log)
check pusht_plan_per_episode_lines "$lines lines: $(cat $tmp/plan.log)" test "$lines" = 8
check pusht_plan_step_limit "$(grep 'steps' $tmp/plan.log)" \
    bash -c "! grep -q ' in *0 steps' $tmp/plan.log && ! grep -qE ' in +([7-9]|[1-9][0-9]+) steps' $tmp/plan.log"
# The strip: 4 rows x 9 columns of 96x96 frames with 2-pixel gaps: 882 x 392 (PNG IHDR width, height).
dims=$(od -An -tu1 -j16 -N8 $tmp/strip.png 2>/dev/null | awk '{print $3*256+$4, $7*256+$8}')
check pusht_plan_strip_96px "dims '$dims'" test "$dims" = "882 392"

# The baselines alone are deterministic: two runs print the same outcomes.
$jepa plan configs/ac_pusht.yaml --no-model $cem --episodes 2 --per-episode meta.threads=1 2>/dev/null | grep episode > $tmp/a.txt
$jepa plan configs/ac_pusht.yaml --no-model $cem --episodes 2 --per-episode meta.threads=1 2>/dev/null | grep episode > $tmp/b.txt
check pusht_plan_deterministic "$(diff $tmp/a.txt $tmp/b.txt)" bash -c "test -s $tmp/a.txt && cmp -s $tmp/a.txt $tmp/b.txt"

# The protocols (plan.pusht_start): the config's default is DINO-WM's (start and goal 25 steps apart on an expert
# trajectory: each episode its own goal); uniform starts with the fixed goal T still run; a bad value exits 2.
check pusht_plan_trajectory_default "$(grep '^pusht:' $tmp/plan.log)" \
    grep -q '^pusht: .*start on an expert trajectory, goal its state 25 steps later' $tmp/plan.log
goals=$(grep -o 'goal ([^)]*)' $tmp/a.txt | sort -u | wc -l)
check pusht_plan_trajectory_goals_differ "$goals distinct goals: $(cat $tmp/a.txt)" test "$goals" = 2
$jepa plan configs/ac_pusht.yaml --no-model $cem --episodes 2 --per-episode meta.threads=1 plan.pusht_start=uniform \
    > $tmp/u.txt 2>&1
rc=$?
check pusht_plan_uniform_runs "exit $rc: $(cat $tmp/u.txt)" bash -c "test $rc = 0 && grep -q 'uniform starts' $tmp/u.txt && \
    test \$(grep -c 'goal (256, 256,  0.79)' $tmp/u.txt) = 4"
$jepa plan configs/ac_pusht.yaml --no-model plan.pusht_start=fixed > $tmp/bad.txt 2>&1
rc=$?
check pusht_plan_bad_protocol_exits_2 "exit $rc: $(cat $tmp/bad.txt)" bash -c "test $rc = 2 && grep -q pusht_start $tmp/bad.txt"
