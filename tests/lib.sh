# lib.sh: what the shell tests share; each sources it first (tests/run.sh runs only tests/test_*.sh).
# Leaves the shell at the repository root with $jepa, a temporary folder $tmp removed on exit, and
# pass/fail/skip NAME [DETAIL] and check NAME DETAIL COMMAND... (PASS when COMMAND succeeds).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jepa=${JEPA_BIN:-build/jepa}  # JEPA_BIN: another binary (a private copy while build/jepa is being rebuilt)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
check() {  # name, detail on failure, condition command...
    local name=$1 detail=$2; shift 2
    if "$@"; then pass "$name"; else fail "$name" "$detail"; fi
}
# Exits 0 after a SKIP line naming the reason unless `jepa --devices` lists a CUDA GPU; sets $devices.
require_gpu() {  # name of the skipped group
    devices=$($jepa --devices 2>&1)
    if ! grep -q '^cuda:0 ' <<< "$devices"; then
        skip "$1" "$(head -1 <<< "$devices")"
        exit 0
    fi
}
# Exits 0 after a SKIP line unless mpirun is there; sets $mpi (the launcher words the multi-rank CPU tests use) and
# one BLAS/OpenMP thread per rank (ranks share the 2 cores).
require_mpirun() {  # name of the skipped group
    if ! command -v mpirun > /dev/null; then
        skip "$1" "no mpirun (apt-get install openmpi-bin libopenmpi-dev)"
        exit 0
    fi
    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    mpi="mpirun --allow-run-as-root --oversubscribe --bind-to none"
}
