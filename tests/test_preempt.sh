#!/usr/bin/env bash
# Graceful preemption (README "Preemption and resume"): SIGTERM, SIGUSR1 and SIGINT each finish the step in flight,
# write a checkpoint that verifies and exit 3 well inside Slurm's 30 s grace (the measured figure is printed);
# the same command then resumes and gives the uninterrupted run's losses bit for bit; a second SIGINT stops at once
# without leaving a checkpoint folder that fails to verify.
set -u
source "$(dirname "$0")/lib.sh"
losses() { grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' "$1" 2>/dev/null; }
train() { $jepa train configs/tiny.yaml meta.threads=2 "$@" 2>&1; }

train logging.folder=$tmp/ref optimization.max_steps=12 > /dev/null
ref=$(losses $tmp/ref/tiny/metrics.jsonl)
for sig in TERM USR1 INT; do
    out=$(SIGNAL=$sig FOLDER=$tmp/$sig scripts/measure_preemption.sh configs/tiny.yaml meta.threads=2 \
          optimization.max_steps=400); rc=$?
    secs=$(grep -o 'signal-to-exit: [0-9.]*' <<< "$out" | grep -o '[0-9.]*$')
    check "SIG$sig: exits 3 with a checkpoint that verifies" "rc=$rc: $out" [ $rc -eq 0 ]
    check "SIG$sig: one line names the signal, the step and the checkpoint" "$out" \
        grep -q "^preempted: SIG$sig at step [0-9]*; checkpoint $tmp/$sig/tiny/checkpoints/step_[0-9]* written" <<< "$out"
    check "SIG$sig: signal to exit well under Slurm's 30 s grace (< 10 s): ${secs:-?} s" "$out" \
        python3 -c "import sys; sys.exit(not ${secs:-99} < 10)"
    [ $sig = TERM ] && echo "     (tiny model, CPU, 2 threads: ${secs:-?} s from SIGTERM to exit)"
done
# the same command (meta.resume=auto) continues; 12 steps in all equal the uninterrupted run's
out=$(train logging.folder=$tmp/TERM optimization.max_steps=12); rc=$?
check "resume after SIGTERM: exits 0 and says where it resumed from" "rc=$rc: $(head -3 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'resuming from $tmp/TERM/tiny/checkpoints/step_' <<< \"\$0\"" "$out"
check "resume after SIGTERM: every loss equals the uninterrupted run's bit for bit" \
    "$(diff <(echo "$ref") <(losses $tmp/TERM/tiny/metrics.jsonl))" [ "$ref" = "$(losses $tmp/TERM/tiny/metrics.jsonl)" ]

# Ctrl-C twice: the second stops at once; whatever is left verifies or is a step_N.tmp the resume ignores
$jepa train configs/tiny.yaml meta.threads=2 logging.folder=$tmp/twice optimization.max_steps=400 \
    logging.checkpoint_every=1 > $tmp/twice.out 2>&1 &
pid=$!
for _ in $(seq 1200); do  # at most 60 s: a run that died early must fail the checks below, not hang the suite
    [ "$(cat $tmp/twice/*/metrics.jsonl 2>/dev/null | wc -l)" -ge 3 ] && break
    sleep 0.05
done
kill -INT $pid; sleep 0.02; kill -INT $pid 2>/dev/null
wait $pid; rc=$?
check "second SIGINT: exits 3 (caught up) or 130 (stopped at once)" "rc=$rc" bash -c "[ $rc -eq 3 ] || [ $rc -eq 130 ]"
# step_N.tmp (a write cut short) and step_N.old (a rotation cut short) are leftovers the resume removes, not checkpoints
dirs=$(ls -d $tmp/twice/tiny/checkpoints/step_* | grep -vE '\.(tmp|old)$')
out=$($jepa checkpoint verify $dirs); vrc=$?
check "second SIGINT: every checkpoint folder left verifies" "$out" [ $vrc -eq 0 ]
out=$(train logging.folder=$tmp/twice optimization.max_steps=12); rc=$?
check "second SIGINT: the same command resumes and finishes" "rc=$rc: $(head -3 <<< "$out")" \
    bash -c "[ $rc -eq 0 ] && grep -q 'resuming from' <<< \"\$0\" && [ \"\$1\" = \"\$2\" ]" "$out" "$ref" \
    "$(losses $tmp/twice/tiny/metrics.jsonl)"
