#!/usr/bin/env bash
# test_gpu_dist.sh: the NCCL path end to end on one GPU (host/dist.c): configs/tiny.yaml for 5 steps with
# meta.deterministic true, as one rank launched two ways (mpirun -np 1: the NCCL unique id by MPI; RANK=0
# WORLD_SIZE=1: the TCP rendezvous on MASTER_ADDR:MASTER_PORT), each against the same run without a launcher.
# One rank's all-reduce is a copy (NCCL sums one buffer), the comm stream only reorders the waits, so the losses must
# be equal bit for bit: any difference is a race between the streams. Also dist.reduce_dtype=bfloat16 (rounds the
# gradients to bf16 once: close, not equal). SKIP without a usable GPU.
set -u
source "$(dirname "$0")/lib.sh"
require_gpu "gpu dist"
common=(meta.device=cuda meta.dtype=bfloat16 meta.deterministic=true optimization.max_steps=5
        logging.folder="$tmp" logging.log_every=1 meta.resume=never)
run() {  # tag, launcher words..., --, overrides...
    local tag=$1; shift
    local launch=()
    while [ "$1" != "--" ]; do launch+=("$1"); shift; done
    shift
    "${launch[@]}" $jepa train configs/tiny.yaml "${common[@]}" logging.write_tag="$tag" "$@" > "$tmp/$tag.out" 2>&1
}
losses() { /usr/bin/python3 -c "import json,sys; [print(json.loads(l)['loss']) for l in open(sys.argv[1])]" "$1"; }

run plain -- || { fail "gpu dist" "the run without a launcher failed: $(tail -3 "$tmp/plain.out")"; exit 0; }
if command -v mpirun > /dev/null; then
    run mpi mpirun --allow-run-as-root -np 1 --
    rc=$?
    a=$(losses "$tmp/plain/metrics.jsonl"); b=$(losses "$tmp/mpi/metrics.jsonl" 2> /dev/null)
    check "gpu dist: mpirun -np 1 over NCCL = no launcher, bitwise" \
          "rc $rc; losses $(echo $a) vs $(echo $b); $(tail -3 "$tmp/mpi.out")" \
          test $rc -eq 0 -a "$a" = "$b" -a -n "$a" -a "$(grep -c 'collectives over NCCL' "$tmp/mpi.out")" = 1
else
    skip "gpu dist: mpirun -np 1" "no mpirun on this machine"
fi
run tcp env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 --
rc=$?
a=$(losses "$tmp/plain/metrics.jsonl"); b=$(losses "$tmp/tcp/metrics.jsonl" 2> /dev/null)
check "gpu dist: RANK/WORLD_SIZE (TCP rendezvous) over NCCL = no launcher, bitwise" \
      "rc $rc; losses $(echo $a) vs $(echo $b); $(tail -3 "$tmp/tcp.out")" \
      test $rc -eq 0 -a "$a" = "$b" -a -n "$a"
run bf16 env RANK=0 WORLD_SIZE=1 MASTER_PORT=29534 -- dist.reduce_dtype=bfloat16
rc=$?
# bf16 gradients (8-bit mantissa) move AdamW's first steps by up to its lr per element only where the sign flips;
# the loss after 5 steps stays within 1% of the fp32-reduced run.
ok=$(/usr/bin/python3 - "$tmp/plain/metrics.jsonl" "$tmp/bf16/metrics.jsonl" << 'EOF'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
try: b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
except OSError: b = []
print("yes" if len(a) == len(b) == 5 and all(abs(x - y) <= 0.01 * x for x, y in zip(a, b)) else f"no {a} {b}")
EOF
)
check "gpu dist: dist.reduce_dtype=bfloat16 trains within 1% of fp32" "rc $rc; $ok; $(tail -2 "$tmp/bf16.out")" \
      test "$ok" = yes
