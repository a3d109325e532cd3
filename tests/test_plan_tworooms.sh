#!/usr/bin/env bash
# test_plan_tworooms.sh: the world-model pipeline end to end on tworooms: data synth with actions, encoder
# pretraining (jepa train), the action-conditioned predictor (model.kind: ac), jepa plan with its baselines and the
# PNG strip. The quick version (default, ~30 s on 2 cores) checks that every stage runs and reports; with
# JEPA_TEST_LONG=1 a few-minute run checks that the trained model plans better than random actions.
source "$(dirname "$0")/lib.sh"
long=${JEPA_TEST_LONG:-0}
if [ "$long" = 1 ]; then episodes=600 enc_steps=400 ac_steps=800 plan_eps=10; else episodes=60 enc_steps=20 ac_steps=40 plan_eps=2; fi
quick_plan=$([ "$long" = 1 ] || echo plan.step_limit=20)

$jepa data synth --world tworooms --policy random --episodes $episodes --frames 16 -o $tmp/r.h5 > $tmp/synth.log 2>&1 &&
$jepa data synth --world tworooms --policy noisy-expert --episodes $episodes --frames 16 --seed 1 -o $tmp/e.h5 >> $tmp/synth.log 2>&1
check tworooms_synth "$(tail -2 $tmp/synth.log)" test -s $tmp/e.h5
info=$($jepa data info $tmp/e.h5 2>&1)
check tworooms_store_has_actions "$info" grep -q "actions    /actions float32 \[$episodes,16,2\]" <<< "$info"

common="logging.folder=$tmp/runs meta.threads=1 data.datasets=[$tmp/r.h5,$tmp/e.h5]"
$jepa train configs/tworooms_encoder.yaml $common optimization.max_steps=$enc_steps logging.log_every=1000 > $tmp/enc.log 2>&1
enc=$(ls -d $tmp/runs/tworooms_encoder/checkpoints/step_* 2>/dev/null | tail -1)
check tworooms_encoder_trains "$(tail -3 $tmp/enc.log)" test -n "$enc"

$jepa train configs/ac_tworooms.yaml $common ac.encoder_checkpoint=$enc optimization.max_steps=$ac_steps \
    optimization.warmup=0 logging.log_every=1000 > $tmp/ac.log 2>&1
check ac_trains "$(tail -3 $tmp/ac.log)" test -s $tmp/runs/ac_tworooms/predictor.safetensors
first=$(grep -o '"loss_teacher_forcing": [0-9.]*' $tmp/runs/ac_tworooms/metrics.jsonl | head -1 | cut -d' ' -f2)
last=$(grep -o '"loss_teacher_forcing": [0-9.]*' $tmp/runs/ac_tworooms/metrics.jsonl | tail -1 | cut -d' ' -f2)
check ac_loss_decreases "first $first, last $last" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'

$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/runs/ac_tworooms ac.encoder_checkpoint=$enc meta.threads=1 \
    --episodes $plan_eps plan.samples=32 plan.elites=4 plan.iterations=2 $quick_plan --strip $tmp/strip.png > $tmp/plan.log 2>&1
rc=$?
check plan_runs "exit $rc: $(tail -3 $tmp/plan.log)" test $rc = 0
check plan_reports_every_planner "$(cat $tmp/plan.log)" \
    bash -c "grep -q '^random actions' $tmp/plan.log && grep -q '^true dynamics' $tmp/plan.log && grep -q '^ac model' $tmp/plan.log"
check plan_writes_png_strip "$(ls -la $tmp/strip.png 2>&1)" bash -c "head -c 8 $tmp/strip.png | od -An -c | grep -q 'P   N   G'"
# --energy-map: the encoder's energy over the arena beside the distance through the door, as a PNG and a summary.
$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/runs/ac_tworooms ac.encoder_checkpoint=$enc meta.threads=1 \
    --select 2 --energy-map $tmp/emap.png > $tmp/emap.log 2>&1
check plan_energy_map "$(cat $tmp/emap.log)" bash -c "grep -q 'energy map, episode 2: start' $tmp/emap.log &&
    grep -q 'rank correlation of the energy with the geodesic distance -\?[01]\.[0-9]*' $tmp/emap.log &&
    head -c 8 $tmp/emap.png | od -An -c | grep -q 'P   N   G' && ! grep -q '^ac model' $tmp/emap.log"
# --fidelity: the predictor's ranking of random plans against the world's own dynamics, a correlation in [-1, 1].
$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/runs/ac_tworooms ac.encoder_checkpoint=$enc meta.threads=1 \
    --episodes 2 --per-episode plan.samples=16 --fidelity > $tmp/fid.log 2>&1
rho=$(grep -o 'rank correlation mean -\?[0-9.]*' $tmp/fid.log | awk '{print $4}')
check plan_fidelity "$(cat $tmp/fid.log)" bash -c "test \$(grep -c 'fidelity episode' $tmp/fid.log) = 2 &&
    awk -v r='$rho' 'BEGIN { exit !(r != \"\" && r >= -1 && r <= 1) }' && ! grep -q '^ac model' $tmp/fid.log"
# plan.action_repeat: the model rolls each planned action out for 2 steps; the header says so.
$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/runs/ac_tworooms ac.encoder_checkpoint=$enc meta.threads=1 \
    --episodes 1 --only model plan.samples=16 plan.elites=4 plan.iterations=1 plan.horizon=3 plan.action_repeat=2 \
    plan.step_limit=6 > $tmp/repeat.log 2>&1
rc=$?
check plan_action_repeat_model "exit $rc: $(cat $tmp/repeat.log)" bash -c "test $rc = 0 &&
    grep -q 'action repeat 2' $tmp/repeat.log && grep -q '^ac model .*success' $tmp/repeat.log"
$jepa plan configs/ac_pusht.yaml --no-model --energy-map $tmp/x.png > $tmp/bad_emap.log 2>&1
rc=$?
check plan_energy_map_needs_tworooms_exit_2 "exit $rc: $(cat $tmp/bad_emap.log)" test $rc = 2
# A predictor trained with other ac.* keys (here without the state token) is refused, not half loaded.
$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/runs/ac_tworooms ac.encoder_checkpoint=$enc ac.state_token=true \
    --episodes 1 > $tmp/mismatch.log 2>&1
rc=$?
check plan_other_ac_keys_exit_2 "exit $rc: $(cat $tmp/mismatch.log)" bash -c "test $rc = 2 && grep -q 'ac.state_token' $tmp/mismatch.log"
$jepa plan configs/ac_tworooms.yaml --checkpoint $tmp/nowhere ac.encoder_checkpoint=$enc > $tmp/bad.log 2>&1
rc=$?
check plan_missing_checkpoint_exit_2 "exit $rc: $(cat $tmp/bad.log)" test $rc = 2

# --select runs the named episodes, in that order; the same episode gives the same line as in a plain run.
$jepa plan configs/ac_tworooms.yaml --no-model --select 3,1 --per-episode --only 'true dynamics' > $tmp/sel.log 2>&1
$jepa plan configs/ac_tworooms.yaml --no-model --episodes 4 --per-episode --only 'true dynamics' > $tmp/all.log 2>&1
order=$(grep -o 'episode *[0-9]*:' $tmp/sel.log | tr -d ' ' | tr '\n' ' ')
check plan_select_episodes "got '$order'" test "$order" = "episode3: episode1: "
check plan_select_same_outcome "$(grep 'episode   3' $tmp/sel.log $tmp/all.log)" \
    test "$(grep 'episode   3' $tmp/sel.log)" = "$(grep 'episode   3' $tmp/all.log)"
$jepa plan configs/ac_tworooms.yaml --no-model --select 2,,x > $tmp/bad_sel.log 2>&1
rc=$?
check plan_bad_select_exit_2 "exit $rc: $(cat $tmp/bad_sel.log)" test $rc = 2

if [ "$long" != 1 ]; then
    skip ac_plans_better_than_random "JEPA_TEST_LONG=1 runs the few-minute training that checks it"
    exit 0
fi
rate() { grep "^$1" $tmp/plan.log | grep -o '= *[0-9.]*%' | tr -dc '0-9.'; }
dist() { grep "^$1" $tmp/plan.log | grep -o 'final distance *[0-9.]*' | awk '{print $3}'; }
check ac_plans_better_than_random "$(cat $tmp/plan.log)" \
    awk -v m="$(dist 'ac model')" -v r="$(dist 'random actions')" 'BEGIN { exit !(m < r) }'
