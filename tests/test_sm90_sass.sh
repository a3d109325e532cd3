#!/usr/bin/env bash
# test_sm90_sass.sh: the sm_90a attention forward (kernels/attention_sm90.cu) as compiled, read without a GPU:
#   - its machine code is sm_90a and the SASS has both tensor-core GEMMs as HGMMA (S = Q K^T as 64x128x16 from
#     shared memory, O += P V as 64x64x16 with A from registers and V transposed) and the TMA tile loads (UTMALDG);
#   - nothing went to local memory: no LDL/STL in the SASS, STACK:0 and LOCAL:0 in the resource usage (a spill, or a
#     register array indexed at run time, shows up in all three).
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
count() { grep -cE "$1" "$sass"; }

check "$name: machine code is sm_90a only" "archs: $(grep -o 'arch = sm_[0-9a-z]*' "$sass" | sort -u | tr '\n' ' ')" \
    test "$(grep -o 'arch = sm_[0-9a-z]*' "$sass" | sort -u)" = "arch = sm_90a"
# 4 k-steps of Q K^T over hd 64, 8 of P V over 128 keys (fewer means a loop the compiler did not unroll or a
# changed tile; more is fine: then update the notes)
n_qk=$(count 'HGMMA\.64x128x16\.F32\.BF16') n_pv=$(count 'HGMMA\.64x64x16\.F32\.BF16 .*tnspB')
check "$name: S = Q K^T as HGMMA.64x128x16 ($n_qk)" "expected >= 4 HGMMA.64x128x16.F32.BF16, found $n_qk" \
    test "$n_qk" -ge 4
check "$name: O += P V as HGMMA.64x64x16 .tnspB, A from registers ($n_pv)" \
    "expected >= 8 HGMMA.64x64x16.F32.BF16 with tnspB, found $n_pv" test "$n_pv" -ge 8
check "$name: no mma.sync fallback (no HMMA)" "$(count '\bHMMA\b') HMMA instructions" test "$(count '\bHMMA\b')" -eq 0
n_tma=$(count '\bUTMALDG\b')
check "$name: TMA tile loads (UTMALDG, $n_tma)" "expected >= 2 UTMALDG (Q and K/V boxes), found $n_tma" \
    test "$n_tma" -ge 2
n_local=$(count '\b(LDL|STL)(\.|\b)')
check "$name: no local-memory loads/stores (LDL/STL: $n_local)" "$n_local LDL/STL in the SASS (spills?)" \
    test "$n_local" -eq 0
usage=$(grep -E 'Function .*attn_fwd_sm90' -A1 "$res" | tail -1 | sed 's/^ *//')
check "$name: resource usage STACK:0 LOCAL:0 ($usage)" "resource usage: '${usage:-none found}'" \
    bash -c '[[ "$1" == *" STACK:0 "* && "$1" == *" LOCAL:0 "* ]]' _ "$usage"
