#!/usr/bin/env bash
# test_sm90_sass.sh: the sm_90a attention kernels (kernels/attention_sm90.cu) as compiled, read without a GPU:
#   - the machine code is sm_90a; the forward's SASS has both GEMMs as HGMMA (S = Q K^T as 64x128x16 from shared
#     memory, O += P V as 64x64x16 with A from registers and V transposed) and the TMA tile loads (UTMALDG);
#   - the backward's SASS has its five GEMMs as HGMMA (S^T = K Q^T and dP^T = V dO^T as 64x64x16 from shared
#     memory; dV += P^T dO and dK += dS^T Q as 64x64x16 with A from registers, tnspB; dQ = dS K as 64x32x16,
#     tnspB), dS written by transposing stmatrix (STSM .MT88), and TMA loads of K/V, Q and dO;
#   - nothing went to local memory in any kernel of the file: no LDL/STL, STACK:0 and LOCAL:0 (a spill, or a
#     register array indexed at run time, shows up in all three); no HMMA (mma.sync) anywhere.
# SM90_OBJ names another object (how the test was checked against a mutated build). Needs cuobjdump and nvdisasm:
# $CUOBJDUMP, PATH, $CUDA_HOME/bin, or PyPI's nvidia-cuda-cuobjdump + nvidia-cuda-nvdisasm in build/venv; SKIP without.
source "$(dirname "$0")/lib.sh"
obj=${SM90_OBJ:-build/kernels/attention_sm90.o}
name="sm90 attention sass"

if [ ! -f "$obj" ]; then
    if [ -f kernels/attention_sm90.cu ] && command -v "${NVCC:-nvcc}" > /dev/null 2>&1; then
        fail "$name: object built" "$obj missing although nvcc is there (run make build/jepa first)"
    else
        skip "$name" "$obj not built (no nvcc: CPU-only build)"
    fi
    exit 0
fi

# PyPI's copies come with build/venv (scripts/python_env.sh is idempotent and never fails)
command -v cuobjdump > /dev/null 2>&1 || ls build/venv/lib/python3*/site-packages/nvidia/cu*/bin/nvdisasm > /dev/null 2>&1 ||
    bash scripts/python_env.sh > /dev/null
cuobjdump=${CUOBJDUMP:-}
for c in "$(command -v cuobjdump 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump" \
    build/venv/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump; do
    [ -z "$cuobjdump" ] && [ -n "$c" ] && [ -x "$c" ] && cuobjdump=$c
done
if [ -z "$cuobjdump" ]; then
    skip "$name" "no cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm into build/venv)"
    exit 0
fi
export PATH="$(dirname "$cuobjdump"):$PATH"  # cuobjdump -sass runs nvdisasm, shipped beside it
if ! command -v nvdisasm > /dev/null; then
    skip "$name" "cuobjdump at $cuobjdump but no nvdisasm beside it or on PATH (pip install nvidia-cuda-nvdisasm)"
    exit 0
fi

sass=$tmp/sass.txt res=$tmp/res.txt
if ! "$cuobjdump" -sass "$obj" > "$sass" 2> "$tmp/err" ||
    ! "$cuobjdump" --dump-resource-usage "$obj" > "$res" 2>> "$tmp/err"; then
    fail "$name: cuobjdump" "$(head -2 "$tmp/err")"
    exit 0
fi
# one kernel's SASS: from its "Function :" line to the next one
section() { awk -v f="$1" '/Function : /{on = index($0, f) > 0} on' "$sass"; }
count() { grep -cE "$1" "$sass"; }
fcount() { section "$1" | grep -cE "$2"; }

check "$name: machine code is sm_90a only" "archs: $(grep -o 'arch = sm_[0-9a-z]*' "$sass" | sort -u | tr '\n' ' ')" \
    test "$(grep -o 'arch = sm_[0-9a-z]*' "$sass" | sort -u)" = "arch = sm_90a"
for k in attn_fwd_sm90_kernel attn_bwd_sm90_kernel; do
    check "$name: $k present" "no 'Function : ...$k' section in the SASS" test "$(fcount $k 'EXIT')" -ge 1
done

# forward: 4 k-steps of Q K^T over hd 64, 8 of P V over 128 keys (fewer means a loop the compiler did not unroll
# or a changed tile; more is fine: then update the notes)
f=attn_fwd_sm90_kernel
n_qk=$(fcount $f 'HGMMA\.64x128x16\.F32\.BF16') n_pv=$(fcount $f 'HGMMA\.64x64x16\.F32\.BF16 .*tnspB')
check "$name: fwd S = Q K^T as HGMMA.64x128x16 ($n_qk)" "expected >= 4 HGMMA.64x128x16.F32.BF16, found $n_qk" \
    test "$n_qk" -ge 4
check "$name: fwd O += P V as HGMMA.64x64x16 .tnspB, A from registers ($n_pv)" \
    "expected >= 8 HGMMA.64x64x16.F32.BF16 with tnspB, found $n_pv" test "$n_pv" -ge 8
n_tma=$(fcount $f '\bUTMALDG\b')
check "$name: fwd TMA tile loads (UTMALDG, $n_tma)" "expected >= 2 UTMALDG (Q and K/V boxes), found $n_tma" \
    test "$n_tma" -ge 2

# backward: per query tile 4 + 4 k-steps (S^T, dP^T) over hd 64 with both operands in shared memory (A operand a
# descriptor: "R.., gdesc"), 4 + 4 (dV, dK) over 64 queries with A in registers ("R.., R.., gdesc ... tnspB"),
# 8 (dQ) over 128 keys as 64x32x16 tnspB; 4 stmatrix.x4.trans for dS; K/V (4 boxes, or 2 in a rolled loop), Q, dO
f=attn_bwd_sm90_kernel
n_ss=$(fcount $f 'HGMMA\.64x64x16\.F32\.BF16 R[0-9]+, gdesc')
n_rs=$(fcount $f 'HGMMA\.64x64x16\.F32\.BF16 R[0-9]+, R[0-9]+, gdesc.*tnspB')
n_dq=$(fcount $f 'HGMMA\.64x32x16\.F32\.BF16 R[0-9]+, gdesc.*tnspB') n_st=$(fcount $f '\bSTSM\.16\.MT88\.4\b')
check "$name: bwd S^T = K Q^T, dP^T = V dO^T as HGMMA.64x64x16 from shared memory ($n_ss)" \
    "expected >= 8 HGMMA.64x64x16.F32.BF16 with a descriptor A, found $n_ss" test "$n_ss" -ge 8
check "$name: bwd dV += P^T dO, dK += dS^T Q as HGMMA.64x64x16 .tnspB, A from registers ($n_rs)" \
    "expected >= 8 HGMMA.64x64x16.F32.BF16 R, R, gdesc .tnspB, found $n_rs" test "$n_rs" -ge 8
check "$name: bwd dQ = dS K as HGMMA.64x32x16 .tnspB ($n_dq)" \
    "expected >= 8 HGMMA.64x32x16.F32.BF16 with tnspB, found $n_dq" test "$n_dq" -ge 8
check "$name: bwd dS stored by transposing stmatrix (STSM.16.MT88.4: $n_st)" "expected >= 4, found $n_st" \
    test "$n_st" -ge 4
n_tma=$(fcount $f '\bUTMALDG\b')
check "$name: bwd TMA tile loads (UTMALDG, $n_tma)" "expected >= 4 UTMALDG (K, V, Q, dO boxes), found $n_tma" \
    test "$n_tma" -ge 4

# every kernel of the file
check "$name: no mma.sync fallback (no HMMA)" "$(count '\bHMMA\b') HMMA instructions" test "$(count '\bHMMA\b')" -eq 0
n_local=$(count '\b(LDL|STL)(\.|\b)')
check "$name: no local-memory loads/stores (LDL/STL: $n_local)" "$n_local LDL/STL in the SASS (spills?)" \
    test "$n_local" -eq 0
for k in attn_fwd_sm90_kernel attn_bwd_sm90_kernel attn_bwd_sm90_dq_reduce_kernel; do
    usage=$(grep -E "Function .*$k" -A1 "$res" | tail -1 | sed 's/^ *//')
    check "$name: $k resource usage STACK:0 LOCAL:0 ($usage)" "resource usage: '${usage:-none found}'" \
        bash -c '[[ "$1" == *" STACK:0 "* && "$1" == *" LOCAL:0 "* ]]' _ "$usage"
done
