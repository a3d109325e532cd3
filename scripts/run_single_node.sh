#!/usr/bin/env bash
# One node, N ranks (one per GPU; or N CPU ranks through mpirun): docs/distributed.md.
#   scripts/run_single_node.sh 8 configs/vitl16.yaml data.datasets=[/data/clips.h5]
#   scripts/run_single_node.sh 2 configs/tiny.yaml meta.device=cpu meta.threads=1      # CPU ranks need mpirun
# With mpirun: `mpirun -np N build/jepa train ...` (Open MPI's variables; NCCL's id goes by MPI).
# Without it: N processes started here with RANK/WORLD_SIZE/LOCAL_RANK and the TCP rendezvous on
# MASTER_ADDR:MASTER_PORT (127.0.0.1:29500 unless set); SIGTERM/SIGUSR1/SIGINT are passed to every rank, which
# checkpoint together and exit 3 (run the same command again to continue).
set -u
n=${1:?usage: scripts/run_single_node.sh N CONFIG [key=value ...]}
config=${2:?usage: scripts/run_single_node.sh N CONFIG [key=value ...]}
shift 2
cd "$(dirname "$0")/.."
if command -v mpirun > /dev/null && [ -z "${NO_MPI:-}" ]; then
    root=()
    [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
    exec mpirun "${root[@]}" -np "$n" --bind-to none build/jepa train "$config" "$@"
fi
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29500} WORLD_SIZE=$n
pids=()
for ((r = 0; r < n; r++)); do
    RANK=$r LOCAL_RANK=$r build/jepa train "$config" "$@" &
    pids+=($!)
done
forward() { kill -"$1" "${pids[@]}" 2> /dev/null; }
trap 'forward TERM' TERM
trap 'forward USR1' USR1
trap 'forward INT' INT
rc=0
for p in "${pids[@]}"; do
    while :; do
        wait "$p"
        code=$?
        kill -0 "$p" 2> /dev/null || break
    done
    [ "$code" -gt "$rc" ] && rc=$code
done
exit "$rc"
