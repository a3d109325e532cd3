#!/usr/bin/env bash
# Never lose a run: a tiny job is killed with SIGKILL at 22 moments (seeded: the same moments each time; every third
# one inside a checkpoint write, through JEPA_CKPT_KILL_AT=n, which kills the process just after the nth checkpoint
# file it writes) and restarted each time with the same command. Every restart must get going without an error, no
# checkpoint folder left behind may fail `jepa checkpoint verify` (interrupted writes stay step_N.tmp and interrupted
# removals step_N.old, leftovers that resume ignores and the next save removes), and after the last restart the per-step
# losses equal an uninterrupted run's bit for bit.
set -u
source "$(dirname "$0")/lib.sh"
losses() { grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' "$1" 2>/dev/null; }
args=(train configs/tiny.yaml meta.threads=2 optimization.max_steps=24 logging.checkpoint_every=3 logging.keep=3)
$jepa "${args[@]}" logging.folder=$tmp/ref > /dev/null 2>&1
ref=$(losses $tmp/ref/tiny/metrics.jsonl)

RANDOM=11  # the kill moments
kills=0 in_writes=0 corrupt="" errors="" leftovers="" jobs_done=0 mismatched="" tmp_seen=0 job=1 i=0
while [ $kills -lt 22 ]; do  # a job that finishes is compared with the reference; the next job starts afresh
    i=$((i + 1)) log=$tmp/run$i.out
    if [ $((i % 3)) -eq 0 ]; then
        { JEPA_CKPT_KILL_AT=$((RANDOM % 10 + 1)) $jepa "${args[@]}" logging.folder=$tmp/k$job > $log 2>&1; } 2>/dev/null
        rc=$?
        [ $rc -eq 137 ] && in_writes=$((in_writes + 1))
    else
        $jepa "${args[@]}" logging.folder=$tmp/k$job > $log 2>&1 &
        pid=$!
        sleep "$(printf '0.%03d' $((RANDOM % 1000)))"; sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
        kill -KILL $pid 2>/dev/null
        wait $pid 2>/dev/null; rc=$?
    fi
    [ $rc -eq 137 ] && kills=$((kills + 1))
    if [ $rc -ne 0 ] && [ $rc -ne 137 ]; then errors+="run $i exited $rc; "; fi
    grep -q 'error\|does not verify\|refusing' $log && errors+="run $i: $(grep -m1 'error\|does not verify\|refusing' $log); "
    ls -d $tmp/k$job/*/checkpoints/step_*.tmp > /dev/null 2>&1 && tmp_seen=$((tmp_seen + 1))
    dirs=$(ls -d $tmp/k$job/*/checkpoints/step_* 2>/dev/null | grep -v '\.tmp$\|\.old$')
    if [ -n "$dirs" ]; then
        out=$($jepa checkpoint verify $dirs) || corrupt+="after run $i: $(grep -v ': ok$' <<< "$out"); "
    fi
    if [ $rc -eq 0 ]; then
        newest=$(ls -td $tmp/k$job/*/ | head -1)
        # the folder the job finished in; a folder it abandoned (none of its checkpoints verified) keeps its leftovers
        leftovers+=$(ls -d $newest/checkpoints/step_*.tmp $newest/checkpoints/step_*.old 2>/dev/null)
        [ "$(losses $newest/metrics.jsonl)" = "$ref" ] || mismatched+="job $job ($newest); "
        jobs_done=$((jobs_done + 1)) job=$((job + 1))
    fi
done
out=$($jepa "${args[@]}" logging.folder=$tmp/k$job 2>&1); rc=$?
newest=$(ls -td $tmp/k$job/*/ | head -1)
[ "$(losses $newest/metrics.jsonl)" = "$ref" ] || mismatched+="job $job ($newest); "
jobs_done=$((jobs_done + 1))
leftovers+=$(ls -d $newest/checkpoints/step_*.tmp $newest/checkpoints/step_*.old 2>/dev/null)
echo "     ($kills SIGKILLs in $i runs, $in_writes inside checkpoint writes, $tmp_seen left a step_N.tmp; $jobs_done jobs)"
check "kill/resume: at least 6 of the SIGKILLs landed inside checkpoint writes" "$in_writes" [ $in_writes -ge 6 ]
check "kill/resume: every restart got going without an error" "$errors" [ -z "$errors" ]
check "kill/resume: no checkpoint folder ever failed to verify" "$corrupt" [ -z "$corrupt" ]
check "kill/resume: no step_N.tmp or step_N.old is left in the folder a job finishes in" "$leftovers" [ -z "$leftovers" ]
check "kill/resume: the last restart exits 0" "rc=$rc: $(tail -3 <<< "$out")" [ $rc -eq 0 ]
check "kill/resume: every job's 24 losses equal the uninterrupted run's bit for bit" "$mismatched" \
    bash -c '[ "$(wc -l <<< "$0")" = 24 ] && [ -z "$1" ]' "$ref" "$mismatched"

# A kill between install_dir's two renames leaves the replaced checkpoint as step_N.old and no step_N: with keep=1 it
# is the only one, so resume must put it back rather than start afresh. A partial .old (a kill mid-removal) must not
# be put back.
short=(train configs/tiny.yaml meta.threads=2 logging.checkpoint_every=3 logging.keep=1 logging.folder=$tmp/rep)
$jepa "${short[@]}" optimization.max_steps=6 > /dev/null 2>&1
ck=$tmp/rep/tiny/checkpoints
mv $ck/step_000006 $ck/step_000006.old
out=$($jepa "${short[@]}" optimization.max_steps=7 2>&1)
check "kill/resume: an interrupted replacement's step_N.old is put back and resumed from" "$(grep -m2 'recover\|resuming\|fresh' <<< "$out")" \
    bash -c 'grep -q "recovered from step_000006.old" <<< "$0" && grep -q "resuming from .*step_000006 (step 6" <<< "$0"' "$out"
newest=$(ls -td $tmp/rep/*/ | head -1)
mv $newest/checkpoints/step_000007 $newest/checkpoints/step_000007.old
rm $newest/checkpoints/step_000007.old/optimizer.safetensors
out=$($jepa "${short[@]}" optimization.max_steps=7 2>&1)
check "kill/resume: a partial step_N.old is not put back" "$(grep -m2 'recover\|resuming\|fresh' <<< "$out")" \
    bash -c '! grep -q "recovered" <<< "$0"' "$out"

