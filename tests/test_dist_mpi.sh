#!/usr/bin/env bash
# test_dist_mpi.sh: data parallel on the CPU through mpirun (host/dist.c, docs/distributed.md).
# - the collectives and gradient buckets on 3 ranks (build/tests/test_dist under mpirun);
# - 2 and 3 ranks equal 1 rank with 2 and 3 accumulated micro-batches after 5 steps; 1 rank under mpirun equals
#   the plain run bit for bit;
# - a checkpoint of 2 ranks resumes on 1 rank with accum_steps adjusted (and is refused when no accum fits);
# - a rank stopped with SIGSTOP makes the others exit within dist.timeout_s naming it and the operation;
# - SIGTERM on one rank: every rank checkpoints and exits 3.
source "$(dirname "$0")/lib.sh"
require_mpirun test_dist
[ -x build/tests/test_dist ] || { fail test_dist "build/tests/test_dist missing (make build/tests/test_dist)"; exit 0; }
$mpi -np 3 build/tests/test_dist 2>&1 | grep -E '^(PASS|FAIL|SKIP) ' ||
    fail "dist collectives" "no output from mpirun -np 3"

# Small enough for 2 cores: tiny.yaml at batch 4, 5 steps.
common=(meta.threads=1 optimization.max_steps=5 data.batch_size=4 logging.folder="$tmp/runs" logging.log_every=1
        meta.resume=never)
train() {  # tag, then launcher words (or none) before "--", then overrides
    local tag=$1; shift
    local launch=()
    while [ "$1" != "--" ]; do launch+=("$1"); shift; done
    shift
    "${launch[@]}" $jepa train configs/tiny.yaml "${common[@]}" logging.write_tag="$tag" "$@" > "$tmp/$tag.out" 2>&1
}

# Compares two runs: per-step loss, per-generator losses, target std and gradient norms (relative), and the final
# parameters (relative norm of the difference; bitwise when asked). Tolerances: the runs differ only in the order
# fp32 gradients are summed (1 rank: the GEMM accumulates micro-batch k+1 into k's gradient; N ranks: each has its
# own and MPI adds them), ~1e-7 relative per element; AdamW divides by sqrt(v), so the update keeps that relative
# size. Measured over 5 steps: metrics 4e-8, parameters 4e-9 (2026-11-23). The bounds are 250x above that and far
# below what a wrong sample, mask or gradient scale gives (1e-3 in the loss at step 1).
compare() {  # run_a run_b step_dir [bitwise]
    PYTHONPATH="$(dirname "$0")" /usr/bin/python3 - "$@" << 'EOF'
import json, struct, sys
import numpy as np
a, b, ck = sys.argv[1:4]
bitwise = len(sys.argv) > 4
def metrics(run): return [json.loads(l) for l in open(run + "/metrics.jsonl")]
from flat_params import flat_params
def params(run): return flat_params(run, ck)
ma, mb = metrics(a), metrics(b)
keys = ("loss", "target_std", "grad_norm_encoder", "grad_norm_predictor")
worst = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(ma, mb) for k in keys)
worst = max([worst] + [abs(p - q) / abs(p) for x, y in zip(ma, mb)
                       for p, q in zip(x["loss_per_mask"], y["loss_per_mask"])])
pa, pb = params(a), params(b)
rel = np.linalg.norm(pa - pb) / np.linalg.norm(pa)
print(f"{len(ma)} vs {len(mb)} steps, metrics max relative difference {worst:.2e}, parameters relative {rel:.2e}")
ok = len(ma) == len(mb) and len(ma) > 0
ok = ok and (worst == 0 and np.array_equal(pa, pb) if bitwise else worst <= 1e-5 and rel <= 1e-6)
sys.exit(0 if ok else 1)
EOF
}

train a1 -- optimization.accum_steps=1
train m1 $mpi -np 1 -- optimization.accum_steps=1
out=$(compare "$tmp/runs/a1" "$tmp/runs/m1" step_000005 bitwise 2>&1)
check "dist 1 rank under mpirun = plain, bitwise" "$out" test $? -eq 0
for n in 2 3; do
    train "a$n" -- optimization.accum_steps=$n
    train "m$n" $mpi -np $n -- optimization.accum_steps=1
    out=$(compare "$tmp/runs/a$n" "$tmp/runs/m$n" step_000005 2>&1); ok=$?  # before the detail's $(...) resets $?
    check "dist $n ranks = 1 rank x $n micro-batches ($out)" "$out; $(tail -3 "$tmp/m$n.out")" test $ok -eq 0
done
# The ranks' shards: 5 steps of 3 ranks x 4 clips moved the global sample cursor to 60.
cursor=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['data_cursor'])" \
         "$tmp/runs/m3/checkpoints/step_000005/state.json" 2>&1)
check "dist 3 ranks cover 60 samples in 5 steps" "data_cursor $cursor" test "$cursor" = 60
# Shards of an HDF5 store (the loader's epoch order, reshuffled each epoch): over 5 steps of 8 clips from a 16-clip
# store (2.5 epochs), 2 ranks must read exactly what 1 rank's 2 micro-batches read. Two ranks reading the same clips,
# or any clip of an epoch read twice or missed, changes the losses far beyond compare's bound: the shards are
# disjoint and together cover each step's samples, hence each epoch.
$jepa data synth --world balls --size 48x48 --frames 8 --clips 16 --seed 3 -o "$tmp/shard.h5" > /dev/null
train h1 -- optimization.accum_steps=2 "data.datasets=[$tmp/shard.h5]" data.read_threads=1
train h2 $mpi -np 2 -- optimization.accum_steps=1 "data.datasets=[$tmp/shard.h5]" data.read_threads=1
out=$(compare "$tmp/runs/h1" "$tmp/runs/h2" step_000005 2>&1); ok=$?
check "dist 2 ranks' shards of an HDF5 store over 2.5 epochs = 1 rank x 2 micro-batches ($out)" \
    "$out; $(tail -3 "$tmp/h2.out")" test $ok -eq 0
# Rank 0's read-ahead follows its shard across the steps (loader_set_pattern): started once, not once per step.
grep -q "data: the read-ahead started 1 time$" "$tmp/runs/h2/train.log"; ok=$?
check "dist 2 ranks: rank 0's HDF5 read-ahead started once in 5 steps" "$(grep 'read-ahead' "$tmp/runs/h2/train.log")" \
    test $ok -eq 0
# The read log (hashes of every byte read) is written with data.site_paths only (docs/consensus.md).
check "dist 2 ranks on data.datasets: no read log" "$(ls "$tmp"/runs/h2/reads_rank* 2>&1)" \
    bash -c '! ls "$0"/runs/h2/reads_rank* > /dev/null 2>&1' "$tmp"
grep -q "global batch: 4 per rank x 1 micro-batches x 3 ranks" "$tmp/m3.out"; ok=$?
check "dist global batch logged" "$(grep 'run folder' "$tmp/m3.out")" test $ok -eq 0

# Resume across world sizes: 3 steps on 2 ranks, then on 1 rank (accum_steps 1 -> 2) to 5: as a2 did in one go.
train r2 $mpi -np 2 -- optimization.max_steps=3 optimization.accum_steps=1
train r2 -- optimization.accum_steps=1 meta.resume=auto
grep -q "optimization.accum_steps 1 -> 2" "$tmp/r2.out"; ok=$?
check "dist resume 2 ranks -> 1 adjusts accum_steps" "$(tail -3 "$tmp/r2.out")" test $ok -eq 0
out=$(compare "$tmp/runs/a2" "$tmp/runs/r2" step_000005 2>&1)
check "dist resume 2 ranks -> 1 continues as 1 rank x 2 ($out)" "$out" test $? -eq 0
train r2 -- optimization.max_steps=6 data.batch_size=3 meta.resume=auto
rc=$?
grep -q "global batch of 8 clips.*does not divide" "$tmp/r2.out"; ok=$?
check "dist resume refuses a batch that cannot keep the global batch" "rc $rc: $(tail -2 "$tmp/r2.out")" \
      test $ok -eq 0 -a $rc -eq 2

# pid of `rank N` from rank 0's world layout (printed once the first step is logged: stdout is flushed then).
rank_pid() { sed -n "s/^  rank $2: host .* pid \([0-9]*\) .*/\1/p" "$1" | head -1; }
wait_steps() {  # metrics file, steps; up to 30 s
    for _ in $(seq 150); do
        [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

# Watchdog: rank 2 of 3 stopped (a hang mpirun does not clean up) -> ranks 0 and 1 exit within dist.timeout_s.
timeout_s=4
$mpi -np 3 $jepa train configs/tiny.yaml "${common[@]}" logging.write_tag=hang optimization.max_steps=1000 \
    dist.timeout_s=$timeout_s > "$tmp/hang.out" 2>&1 &
mpirun_pid=$!
stopped=""
trap 'kill -9 $stopped 2> /dev/null; kill $mpirun_pid 2> /dev/null; rm -rf "$tmp"' EXIT
if wait_steps "$tmp/runs/hang/metrics.jsonl" 2; then
    stopped=$(rank_pid "$tmp/hang.out" 2)
    kill -STOP "$stopped"
    t0=$(date +%s.%N)
    for _ in $(seq $(( (timeout_s + 10) * 10 ))); do
        grep -q "did not complete" "$tmp/hang.out" && break
        sleep 0.1
    done
    elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
    kill -9 "$stopped"
    wait $mpirun_pid
    msg=$(grep -m1 "did not complete" "$tmp/hang.out")
    # one step (0.3 s) may run before the next collective starts waiting; 2 s of slack for 2 busy cores
    check "dist watchdog: stopped rank -> exit in $elapsed s (timeout $timeout_s s)" "$(tail -5 "$tmp/hang.out")" \
          test -n "$msg" -a "$(echo "$elapsed <= $timeout_s + 2" | bc)" = 1
    check "dist watchdog names rank 2 and the operation" "$msg" \
          grep -q "rank 2 (host .* pid $stopped) did not answer" <<< "$msg"
    grep -q "all-reduce" <<< "$msg"
    check "dist watchdog message names the all-reduce" "$msg" test $? -eq 0
else
    fail "dist watchdog" "the run did not reach step 2: $(tail -3 "$tmp/hang.out")"
    kill $mpirun_pid
fi

# SIGTERM on rank 1 of 2: both ranks agree at the end of the step, rank 0 writes the checkpoint, all exit 3.
$mpi -np 2 $jepa train configs/tiny.yaml "${common[@]}" logging.write_tag=term optimization.max_steps=1000 \
    > "$tmp/term.out" 2>&1 &
mpirun_pid=$!
if wait_steps "$tmp/runs/term/metrics.jsonl" 2; then
    kill -TERM "$(rank_pid "$tmp/term.out" 1)"
    wait $mpirun_pid
    rc=$?
    ck=$(sed -n 's/^preempted: SIGTERM at step [0-9]*; checkpoint \([^ ]*\) written.*/\1/p' "$tmp/term.out")
    check "dist SIGTERM on one rank -> all checkpoint and exit 3" "rc $rc, $(tail -3 "$tmp/term.out")" \
          test $rc -eq 3 -a -n "$ck"
    $jepa checkpoint verify "$ck" > /dev/null 2>&1
    check "dist preemption checkpoint verifies" "$ck" test $? -eq 0
else
    fail "dist SIGTERM" "the run did not reach step 2: $(tail -3 "$tmp/term.out")"
    kill $mpirun_pid
fi
