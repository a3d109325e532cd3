#!/usr/bin/env bash
# Measures graceful preemption: starts `jepa train CONFIG [overrides]` in a fresh run folder, waits until
# metrics.jsonl holds STEPS records (default 3), sends SIGTERM (SIGNAL=USR1|INT for another), and reports the seconds
# from the signal to the process's exit, its exit code (3 expected) and whether the checkpoint it wrote verifies.
# Exit 0 when the run exited 3 and every checkpoint folder verifies, else 1.
#   scripts/measure_preemption.sh configs/tiny.yaml meta.threads=2
#   scripts/measure_preemption.sh configs/vitl16.yaml meta.device=cuda     (the ViT-L/16 figure, on a GPU)
# Environment: JEPA (default build/jepa), STEPS, SIGNAL (default TERM), FOLDER (default a new temporary folder,
# kept and printed), TIMEOUT (seconds to wait for the steps, default 1800).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 1 ] || { echo "usage: scripts/measure_preemption.sh CONFIG [key=value ...]" >&2; exit 2; }
jepa=${JEPA:-build/jepa} steps=${STEPS:-3} sig=${SIGNAL:-TERM} timeout=${TIMEOUT:-1800}
folder=${FOLDER:-$(mktemp -d)}
mkdir -p "$folder"
log=$folder/train.out
"$jepa" train "$@" logging.folder="$folder" meta.resume=never > "$log" 2>&1 &
pid=$!
start=$(date +%s)
records() { cat "$folder"/*/metrics.jsonl 2>/dev/null | wc -l; }
while [ "$(records)" -lt "$steps" ]; do
    if ! kill -0 $pid 2>/dev/null; then echo "the run ended before step $steps:"; tail -5 "$log"; exit 1; fi
    if [ $(($(date +%s) - start)) -gt "$timeout" ]; then echo "no step $steps after ${timeout} s"; kill -KILL $pid; exit 1; fi
    sleep 0.05
done
t0=$(date +%s.%N)
kill -"$sig" $pid
wait $pid
rc=$?
t1=$(date +%s.%N)
seconds=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
echo "signal-to-exit: $seconds s (SIG$sig after $(records) metrics records; exit code $rc, 3 expected)"
grep '^preempted: ' "$log"
ok=1
[ "$rc" -eq 3 ] || ok=0
dirs=$(ls -d "$folder"/*/checkpoints/step_* 2>/dev/null | grep -v '\.tmp$')
if [ -z "$dirs" ]; then echo "no checkpoint was written"; ok=0
elif ! "$jepa" checkpoint verify $dirs; then ok=0; fi
echo "run folder: $(ls -d "$folder"/*/ | head -1) (log $log)"
[ $ok -eq 1 ]
