#!/usr/bin/env bash
# test_sm90_sass.sh: the sm_90a attention kernels (kernels/attention_sm90.cu) as compiled, read without a GPU, for
# every instantiation: head dims 24, 32, 64, 80, 88, 128, forward and backward (the frame-causal mask is a run-time
# parameter of the same kernels, so each instantiation covers masked and unmasked):
#   - the machine code is sm_90a; each forward's SASS has both GEMMs as HGMMA (S = Q K^T as 64x128x16 from shared
#     memory over the padded head dim's k-steps; O += P V with A from registers and V transposed, one 64xWx16 per
#     swizzle atom of width W) and the TMA tile loads (UTMALDG);
#   - each backward's SASS has its five GEMMs as HGMMA (S^T = K Q^T and dP^T = V dO^T as 64x64x16 from shared
#     memory; dV += P^T dO and dK += dS^T Q with A from registers, tnspB, one per atom; dQ = dS K tnspB, per
#     consumer one atom or half of the only one), dS written by transposing stmatrix (STSM .MT88), and TMA loads;
#   - nothing went to local memory in any kernel: no LDL/STL, STACK:0 and LOCAL:0 (a spill, or a register array
#     indexed at run time, shows up in all three); no HMMA (mma.sync) anywhere; the registers each kernel's
#     consumers use (highest register + 1, at most setmaxnreg's 240) are reported in the check names.
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

# Per head dim: the padded head dim (HDP) and the widths of its swizzle atoms (kernels/attention_sm90.cu, Sm90Traits)
declare -A HDP=([24]=32 [32]=32 [64]=64 [80]=80 [88]=96 [128]=128)
declare -A ATOMS=([24]="32" [32]="32" [64]="64" [80]="64 16" [88]="64 32" [128]="64 64")
# occurrences of width W in a list of atoms
times() { local n=0 a; for a in $2; do [ "$a" = "$1" ] && n=$((n + 1)); done; echo $n; }
# highest register number used in a kernel's SASS, + 1
regs() { section "$1" | grep -oE '\bR[0-9]+\b' | tr -d R | sort -n | tail -1 | awk '{print $1 + 1}'; }

for hd in 24 32 64 80 88 128; do
    atoms=${ATOMS[$hd]} natom=$(wc -w <<< "${ATOMS[$hd]}") kq=$((HDP[$hd] / 16))
    # forward: HDP/16 k-steps of Q K^T, 8 k-steps of P V per atom (fewer means a loop the compiler did not unroll
    # or a changed tile; more is fine: then update the notes)
    f="attn_fwd_sm90_kernelILi${hd}E" t="$name: fwd hd $hd"
    n=$(fcount "$f" 'EXIT')
    check "$t present" "no 'Function : ...$f' section in the SASS" test "$n" -ge 1
    [ "$n" -ge 1 ] || continue
    n=$(fcount "$f" 'HGMMA\.64x128x16\.F32\.BF16')
    check "$t S = Q K^T as HGMMA.64x128x16 ($n)" "expected >= $kq, found $n" test "$n" -ge "$kq"
    for w in $(tr ' ' '\n' <<< "$atoms" | sort -u); do
        want=$((8 * $(times "$w" "$atoms")))
        n=$(fcount "$f" "HGMMA\.64x${w}x16\.F32\.BF16 R[0-9]+, R[0-9]+, gdesc.*tnspB")
        check "$t O += P V as HGMMA.64x${w}x16 .tnspB, A from registers ($n)" "expected >= $want, found $n" \
            test "$n" -ge "$want"
    done
    n=$(fcount "$f" '\bUTMALDG\b')
    check "$t TMA tile loads (UTMALDG, $n)" "expected >= $((2 * natom)) (Q and K/V boxes per atom), found $n" \
        test "$n" -ge $((2 * natom))

    # backward: per query tile HDP/16 + HDP/16 k-steps (S^T, dP^T) with both operands in shared memory (A a
    # descriptor: "R.., gdesc", no transpose), 4 + 4 per atom (dV, dK) with A in registers ("R.., R.., gdesc ...
    # tnspB"), 8 per consumer (dQ, tnspB); 4 stmatrix.x4.trans for dS; TMA boxes of K, V, Q, dO per atom
    f="attn_bwd_sm90_kernelILi${hd}E" t="$name: bwd hd $hd"
    n=$(fcount "$f" 'EXIT')
    check "$t present" "no 'Function : ...$f' section in the SASS" test "$n" -ge 1
    [ "$n" -ge 1 ] || continue
    n=$(section "$f" | grep -E 'HGMMA\.64x64x16\.F32\.BF16 R[0-9]+, gdesc' | grep -vc tnspB)
    check "$t S^T = K Q^T, dP^T = V dO^T as HGMMA.64x64x16 from shared memory ($n)" \
        "expected >= $((2 * kq)) HGMMA.64x64x16 with a descriptor A and no transpose, found $n" \
        test "$n" -ge $((2 * kq))
    for w in $(tr ' ' '\n' <<< "$atoms" | sort -u); do
        want=$((8 * $(times "$w" "$atoms")))
        n=$(fcount "$f" "HGMMA\.64x${w}x16\.F32\.BF16 R[0-9]+, R[0-9]+, gdesc.*tnspB")
        check "$t dV += P^T dO, dK += dS^T Q as HGMMA.64x${w}x16 .tnspB, A from registers ($n)" \
            "expected >= $want, found $n" test "$n" -ge "$want"
    done
    if [ "$natom" -eq 1 ]; then dq_cols="$((atoms / 2)) $((atoms / 2))"; else dq_cols=$atoms; fi
    for w in $(tr ' ' '\n' <<< "$dq_cols" | sort -u); do
        want=$((8 * $(times "$w" "$dq_cols")))
        n=$(fcount "$f" "HGMMA\.64x${w}x16\.F32\.BF16 R[0-9]+, gdesc.*tnspB")
        check "$t dQ = dS K as HGMMA.64x${w}x16 .tnspB ($n)" "expected >= $want, found $n" test "$n" -ge "$want"
    done
    n=$(fcount "$f" '\bSTSM\.16\.MT88\.4\b')
    check "$t dS stored by transposing stmatrix (STSM.16.MT88.4: $n)" "expected >= 4, found $n" test "$n" -ge 4
    n=$(fcount "$f" '\bUTMALDG\b')
    check "$t TMA tile loads (UTMALDG, $n)" "expected >= $((4 * natom)) (K, V, Q, dO boxes per atom), found $n" \
        test "$n" -ge $((4 * natom))
    for k in attn_fwd_sm90_kernelILi${hd}E attn_bwd_sm90_kernelILi${hd}E; do
        n=$(fcount "$k" '\b(LDL|STL)(\.|\b)') r=$(regs "$k")
        check "$name: ${k%%ILi*} hd $hd: no local-memory loads/stores (LDL/STL: $n), registers used $r <= 240" \
            "$n LDL/STL (spills?), or $r registers" bash -c '[ "$1" -eq 0 ] && [ "$2" -le 240 ]' _ "$n" "$r"
    done
done

# every kernel of the file
check "$name: no mma.sync fallback (no HMMA)" "$(count '\bHMMA\b') HMMA instructions" test "$(count '\bHMMA\b')" -eq 0
n_local=$(count '\b(LDL|STL)(\.|\b)')
check "$name: no local-memory loads/stores (LDL/STL: $n_local)" "$n_local LDL/STL in the SASS (spills?)" \
    test "$n_local" -eq 0
kernels="attn_bwd_sm90_dq_reduce_kernel"
for hd in 24 32 64 80 88 128; do kernels="$kernels attn_fwd_sm90_kernelILi${hd}E attn_bwd_sm90_kernelILi${hd}E"; done
for k in $kernels; do
    usage=$(grep -E "Function .*$k" -A1 "$res" | tail -1 | sed 's/^ *//')
    check "$name: $k resource usage STACK:0 LOCAL:0 ($usage)" "resource usage: '${usage:-none found}'" \
        bash -c '[[ "$1" == *" STACK:0 "* && "$1" == *" LOCAL:0 "* ]]' _ "$usage"
done
