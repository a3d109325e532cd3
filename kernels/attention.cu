// attention.cu: flash-style multi-head attention on bf16, the CUDA twin of attention_cpu.c.
//   qkv [B,N,3,H,hd] (PyTorch's fused qkv Linear output), out [B,N,H,hd], lse [B,H,N] fp32 (natural log),
//   scale 1/sqrt(hd); frame_tokens > 0: frame-causal, token i sees j iff j/frame_tokens <= i/frame_tokens.
//
// Two paths, both in this file:
//   - tensor-core path (default): mma.sync.m16n8k16 bf16 -> fp32 through inline PTX (sm_80 and sm_90 alike),
//     tiles staged in shared memory by cp.async (16-byte, zero-filled outside the tensor). One template per
//     padded head dim HDP in {32, 64, 96, 128}; hd (a multiple of 8) runs on the smallest HDP >= hd, with the
//     padding columns zero in shared memory (they add nothing to q.k and their outputs are not stored).
//   - scalar path: one thread per query row (forward, dQ) or per key (dK/dV), fp32, no shared memory. Obviously
//     right and slow; selected by JEPA_ATTN_SCALAR=1 (read at every call) or when a pointer is not 16-byte aligned.
//
// Forward (FlashAttention-2): a CTA = 64 query rows of one (b,h), 4 warps x 16 rows. Q fragments are kept in
// registers; K/V tiles of 64 keys stream through shared memory: V_j loads while S = Q K_j^T and the online softmax
// (fp32, log2 domain) run, K_{j+1} loads while O += P V_j runs. Frame-causal: key tiles past the last visible key of
// the CTA's last row are never visited, a warp whose rows see none of a tile skips it, tiles that straddle a row's
// visibility end (or N) are masked element-wise. O is normalised, staged through shared memory, stored in 16 bytes.
//
// Backward (FlashAttention-2 without atomics, so bitwise deterministic):
//   1. D[b,h,i] = dout_i . out_i (fp32, into the workspace; one 16-lane group per row, fixed shuffle tree).
//   2. dK/dV: a CTA = 64 keys (4 warps x 16 keys); it loops over the query tiles that can see its keys
//      (double-buffered Q/dO/lse/D tiles), recomputes S^T = K Q^T, P^T = exp(S^T - lse), dP^T = V dO^T,
//      dS^T = P^T (dP^T - D), and accumulates dV += P^T dO, dK += dS^T Q in registers. Each warp owns its keys:
//      no reduction across warps or CTAs.
//   3. dQ: a CTA = 64 query rows (4 warps x 16 rows); it loops over the key tiles its rows see (double-buffered
//      K/V), recomputes S, P, dP, dS and accumulates dQ += dS K in registers.
//   dQ/dK/dV are scaled by 1/sqrt(hd) at the end and added (+=) into the bf16 dqkv (read-modify-write; dQ and
//   dK/dV live in disjoint slots of dqkv, so the two kernels never touch the same element).
//   The price of determinism is recomputing S and dP in kernel 3 (7 matrix products per tile pair instead of 5).
//
// Fragment layouts (PTX ISA, mma.m16n8k16, .bf16): g = lane/4, t = lane%4;
//   A (16x16, row-major) a0:(g, 2t..2t+1) a1:(g+8, 2t..) a2:(g, 2t+8..) a3:(g+8, 2t+8..)   (2 bf16 per register)
//   B (16x8, "col"-major) b0:(k=2t..2t+1, n=g) b1:(k=2t+8.., n=g)
//   C (16x8 fp32) c0,c1:(g, 2t, 2t+1) c2,c3:(g+8, 2t, 2t+1)
// A row-major [row][k] tile gives A fragments and a [n][k] tile gives B fragments as aligned 32-bit shared loads.
// A [k][n] tile (V in P V, dO in P^T dO, Q in dS^T Q, K in dS K) gives B fragments through ldmatrix.x4.trans.
// The C fragments of two adjacent n-tiles of a score tile are the A fragment of one k-step (packed to bf16).
// Shared rows are HDP + 8 bf16 long: the 8-row groups of a fragment load hit 32 distinct banks.
//
// Shared memory per CTA (bytes; > 48 KiB opted in per kernel) and sm_90 registers per thread, by padded head dim:
//   HDP          32            64             96            128
//   forward   15360 / 102   27648 / 128*   39936 / 179   52224 / 242
//   dK/dV     32256 / 150   56832 / 216    54016 / 172   70400 / 255
//   dQ        30720 / 128   55296 / 168*   53248 / 168   69632 / 168*      (* a few bytes of spill)
// Registers, not shared memory, bound the occupancy (2-4 CTAs of 4 warps per SM): a tuning knob for later is
// __launch_bounds__(128, 3) on the backward kernels at HDP <= 64 (168 registers, 28 bytes of spill).
//
// Ladder: this is version 1 (mma.sync, sm_80 instructions on both targets). Next: a wgmma (sm_90a) forward,
// larger query tiles for small head dims, dQ computed inside the dK/dV kernel with a deterministic partial
// reduction if the recomputation shows up in the profile.
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

#define ATTN_THREADS 128  // 4 warps in every tensor-core kernel
#define ATTN_MAX_HD 128
#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f

// attention_sm90.cu: runs the sm_90a forward and returns 1 when it is opted in and applies, else 0 (nothing done).
extern "C" int cuda_attention_fwd_sm90(cudaStream_t s, bf16 *out, float *lse, const bf16 *qkv, int B, int N, int H,
                                       int hd, int frame_tokens);
// ... and the sm_90a backward (D already computed; ws: the workspace past D), and the extra workspace it needs
// (0 unless JEPA_ATTN_SM90=1 and hd 64, so the default size is unchanged).
extern "C" int cuda_attention_bwd_sm90(cudaStream_t s, bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                                       const float *lse, const float *D, void *ws, size_t ws_bytes, int B, int N,
                                       int H, int hd, int frame_tokens);
extern "C" size_t cuda_attention_bwd_sm90_workspace(int B, int N, int H, int hd);

// Workspace set by the backend before any backward (cuda_attention_set_workspace); one device, one stream.
static void *attn_workspace = NULL;
static size_t attn_workspace_bytes = 0;

struct AttnParams {
    const bf16 *qkv;   // [B,N,3,H,hd]
    bf16 *out;         // [B,N,H,hd] (forward)
    float *lse;        // [B,H,N] forward output, or NULL
    const bf16 *o;     // [B,N,H,hd] (backward input)
    const bf16 *dout;  // [B,N,H,hd]
    const float *lse_in;  // [B,H,N] (backward input)
    const float *D;    // [B,H,N] rowsum(dout*out) (backward)
    bf16 *dqkv;        // [B,N,3,H,hd] +=
    int B, N, H, hd, ft;
    float scale;       // 1/sqrt(hd)
    float scale_log2;  // scale * log2(e)
};

// One past the last key that query i may see (attention_cpu.c's attn_kv_end).
static __host__ __device__ __forceinline__ int attn_kv_end(int i, int N, int ft) {
    if (ft <= 0) return N;
    const long long end = ((long long)i / ft + 1) * ft;
    return end < N ? (int)end : N;
}

// ---------------------------------------------------------------- PTX helpers
static __device__ __forceinline__ uint32_t lds32(const bf16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
    return *reinterpret_cast<uint32_t *>(&v);
}

// c[4] += A[16x16] * B[16x8]
static __device__ __forceinline__ void mma_bf16_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four transposed 8x8 matrices; lane l supplies the address of row l%8 of matrix l/8.
static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const bf16 *p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// 16 bytes global -> shared, asynchronously; valid == false writes 16 zero bytes (src-size 0, src not read).
static __device__ __forceinline__ void cp_async16(bf16 *dst, const bf16 *src, bool valid) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(src_bytes)
                 : "memory");
}
static __device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING>
static __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

// p[0..1] += (a, b), in bf16 storage with fp32 arithmetic
static __device__ __forceinline__ void add_bf16x2(bf16 *p, float a, float b) {
    __nv_bfloat162 *q = reinterpret_cast<__nv_bfloat162 *>(p);
    const float2 old = __bfloat1622float2(*q);
    *q = __floats2bfloat162_rn(old.x + a, old.y + b);
}

// ---------------------------------------------------------------- tile traits (one entry per padded head dim)
template <int HDP>
struct AttnTile {
    static constexpr int LD = HDP + 8;  // shared row length in bf16 (16-byte multiple, bank-conflict-free)
    // forward: 64 query rows x 64 keys per step
    static constexpr int FWD_BM = 64, FWD_BN = 64;
    static constexpr size_t FWD_SMEM = (size_t)(FWD_BM + 2 * FWD_BN) * LD * sizeof(bf16);
    // dK/dV: 64 keys per CTA, query tiles of 64 rows (32 above HDP 64, to bound registers), double-buffered
    static constexpr int KV_BN = 64, KV_BM = HDP <= 64 ? 64 : 32;
    static constexpr size_t KV_SMEM =
        (size_t)(2 * KV_BN + 4 * KV_BM) * LD * sizeof(bf16) + (size_t)2 * KV_BM * (2 * sizeof(float) + sizeof(int));
    // dQ: 64 query rows per CTA, key tiles of 64 (32 above HDP 64), double-buffered
    static constexpr int DQ_BM = 64, DQ_BN = HDP <= 64 ? 64 : 32;
    static constexpr size_t DQ_SMEM = (size_t)(2 * DQ_BM + 4 * DQ_BN) * LD * sizeof(bf16);
};

// Rows [r0, r0 + ROWS) x columns [0, HDP) of a [N, hd] view (row stride ld) into shared [ROWS][HDP + 8];
// rows >= N and columns >= hd are zero-filled. Issued by all ATTN_THREADS threads; the caller commits.
template <int ROWS, int HDP>
static __device__ __forceinline__ void load_tile_async(bf16 *s, const bf16 *g, size_t ld, int r0, int N, int hd) {
    constexpr int CPR = HDP / 8, LD = HDP + 8, TOTAL = ROWS * CPR;
    constexpr int ITERS = (TOTAL + ATTN_THREADS - 1) / ATTN_THREADS;
#pragma unroll
    for (int it = 0; it < ITERS; it++) {
        const int c = it * ATTN_THREADS + (int)threadIdx.x;
        if (TOTAL % ATTN_THREADS != 0 && c >= TOTAL) break;
        const int r = c / CPR, cc = c % CPR, row = r0 + r;
        const bool ok = row < N && cc * 8 < hd;
        cp_async16(s + r * LD + cc * 8, ok ? g + (size_t)row * ld + cc * 8 : g, ok);
    }
}

// ---------------------------------------------------------------- forward, tensor cores
template <int HDP>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_fwd_mma_kernel(const AttnParams p) {
    using T = AttnTile<HDP>;
    constexpr int BM = T::FWD_BM, BN = T::FWD_BN, LD = T::LD;
    constexpr int KS = HDP / 16;  // k-steps of q.k
    constexpr int NS = BN / 8;    // n-tiles of a score row block
    constexpr int NO = HDP / 8;   // n-tiles of the output
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(attn_smem);  // [BM][LD], reused to stage O
    bf16 *sK = sQ + BM * LD;                         // [BN][LD]
    bf16 *sV = sK + BN * LD;                         // [BN][LD]

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int N = p.N, H = p.H, hd = p.hd, ft = p.ft;
    const int m0 = (int)(gridDim.x - 1 - blockIdx.x) * BM;  // last (most work when causal) tiles first
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const bf16 *gQ = p.qkv + (size_t)b * N * ld + (size_t)h * hd;  // [N,hd] views, row stride ld
    const bf16 *gK = gQ + (size_t)H * hd;
    const bf16 *gV = gQ + (size_t)2 * H * hd;

    const int kv_hi = attn_kv_end(min(m0 + BM, N) - 1, N, ft);  // keys any row of the CTA sees
    const int n_tiles = (kv_hi + BN - 1) / BN;
    const int blk_lo_end = attn_kv_end(m0, N, ft);  // keys every row of the CTA sees (rows only see more later)
    const int wrow0 = m0 + warp * 16;
    const int warp_end = wrow0 < N ? attn_kv_end(min(wrow0 + 15, N - 1), N, ft) : 0;
    int row_end[2];  // rows g and g+8 of the warp; rows >= N see everything (their results are dropped)
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wrow0 + g + 8 * r;
        row_end[r] = i < N ? attn_kv_end(i, N, ft) : N;
    }

    load_tile_async<BM, HDP>(sQ, gQ, ld, m0, N, hd);
    load_tile_async<BN, HDP>(sK, gK, ld, 0, N, hd);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[KS][4];  // A fragments of the warp's 16 query rows
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        const bf16 *q = sQ + (warp * 16 + g) * LD + kk * 16 + 2 * t;
        qf[kk][0] = lds32(q);
        qf[kk][1] = lds32(q + 8 * LD);
        qf[kk][2] = lds32(q + 8);
        qf[kk][3] = lds32(q + 8 * LD + 8);
    }

    float o[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};  // log2-domain max, thread-partial sums

    for (int j = 0; j < n_tiles; j++) {
        const int kv0 = j * BN;
        load_tile_async<BN, HDP>(sV, gV, ld, kv0, N, hd);
        cp_async_commit();
        cp_async_wait<1>();  // K_j (the older group) has landed
        __syncthreads();
        const bool active = kv0 < warp_end;
        const bool need_mask = kv0 + BN > blk_lo_end;
        float s[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        if (active) {
            // S = Q K^T
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
#pragma unroll
                for (int n = 0; n < NS; n++) {
                    const bf16 *k = sK + (n * 8 + g) * LD + kk * 16 + 2 * t;
                    mma_bf16_16816(s[n], qf[kk], lds32(k), lds32(k + 8));
                }
            }
            // scale to the log2 domain, mask, online softmax
#pragma unroll
            for (int n = 0; n < NS; n++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = kv0 + n * 8 + 2 * t + (e & 1);
                    float x = s[n][e] * p.scale_log2;
                    if (need_mask && col >= row_end[e >> 1]) x = -INFINITY;
                    s[n][e] = x;
                }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < NS; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m_run[r], mx);
                const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
                const float alpha = exp2f(m_run[r] - m_use);
                m_run[r] = m_new;
                float sum = 0.f;
#pragma unroll
                for (int n = 0; n < NS; n++) {
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const float pv = exp2f(s[n][2 * r + c] - m_use);
                        s[n][2 * r + c] = pv;
                        sum += pv;
                    }
                }
                l_run[r] = l_run[r] * alpha + sum;
#pragma unroll
                for (int n = 0; n < NO; n++) {
                    o[n][2 * r] *= alpha;
                    o[n][2 * r + 1] *= alpha;
                }
            }
        }
        cp_async_wait<0>();  // V_j has landed
        __syncthreads();     // ... for every thread, and every warp is done with K_j
        if (j + 1 < n_tiles) {
            load_tile_async<BN, HDP>(sK, gK, ld, kv0 + BN, N, hd);
            cp_async_commit();
        }
        if (active) {
            // O += P V: the score C fragments of n-tiles 2kk, 2kk+1 are the A fragment of k-step kk
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                uint32_t a[4];
                a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
                a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
                a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                const bf16 *vrow = sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
#pragma unroll
                for (int d2 = 0; d2 < HDP / 16; d2++) {
                    uint32_t bv[4];
                    ldmatrix_x4_trans(bv, vrow + d2 * 16);
                    mma_bf16_16816(o[2 * d2], a, bv[0], bv[1]);
                    mma_bf16_16816(o[2 * d2 + 1], a, bv[2], bv[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with V_j before the next iteration overwrites it
    }

    // epilogue: O / l staged in sQ (free since the prologue), then 16-byte coalesced stores; lse per row
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
        l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
        const float inv = l_run[r] > 0.f ? 1.f / l_run[r] : 0.f;
        bf16 *srow = sQ + (warp * 16 + g + 8 * r) * LD + 2 * t;
#pragma unroll
        for (int n = 0; n < NO; n++)
            *reinterpret_cast<uint32_t *>(srow + n * 8) = pack_bf16x2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
        const int i = wrow0 + g + 8 * r;
        if (p.lse && t == 0 && i < N) p.lse[(size_t)bh * N + i] = (m_run[r] + log2f(l_run[r])) * ATTN_LN2;
    }
    __syncthreads();
    bf16 *gO = p.out + (size_t)b * N * ldo + (size_t)h * hd;
    constexpr int CPR = HDP / 8;
    for (int c = threadIdx.x; c < BM * CPR; c += ATTN_THREADS) {
        const int r = c / CPR, cc = c % CPR, i = m0 + r;
        if (i < N && cc * 8 < hd)
            *reinterpret_cast<uint4 *>(gO + (size_t)i * ldo + cc * 8) =
                *reinterpret_cast<const uint4 *>(sQ + r * LD + cc * 8);
    }
}

// ---------------------------------------------------------------- backward 1: D = rowsum(dout * out)
// 16 lanes per (b, n, h) row of out/dout; lane c sums columns c, c+16, ... then a fixed xor tree.
static __global__ void attn_bwd_rowdot_kernel(float *D, const bf16 *o, const bf16 *dout, int B, int N, int H,
                                              int hd) {
    const size_t rows = (size_t)B * N * H;
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 4;
    const int sub = threadIdx.x & 15;
    float acc = 0.f;
    if (row < rows) {
        const bf16 *orow = o + row * hd, *drow = dout + row * hd;
        for (int d = sub; d < hd; d += 16) acc += __bfloat162float(orow[d]) * __bfloat162float(drow[d]);
    }
#pragma unroll
    for (int off = 8; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (row < rows && sub == 0) {
        const int h = (int)(row % H), n = (int)((row / H) % N), b = (int)(row / ((size_t)H * N));
        D[((size_t)b * H + h) * N + n] = acc;
    }
}

// ---------------------------------------------------------------- backward 2: dK, dV, tensor cores
template <int HDP>
static __device__ __forceinline__ void kv_load_q_stage(bf16 *sQ, bf16 *sO, float *sL, float *sD, int *sE,
                                                        const bf16 *gQ, const bf16 *gdO, const float *lse,
                                                        const float *D, size_t ld, size_t ldo, int i0, int N, int hd,
                                                        int ft) {
    constexpr int BM = AttnTile<HDP>::KV_BM;
    load_tile_async<BM, HDP>(sQ, gQ, ld, i0, N, hd);
    load_tile_async<BM, HDP>(sO, gdO, ldo, i0, N, hd);
    if ((int)threadIdx.x < BM) {  // plain stores: visible after the barrier that precedes their use
        const int i = i0 + (int)threadIdx.x;
        sL[threadIdx.x] = i < N ? lse[i] * ATTN_LOG2E : 0.f;
        sD[threadIdx.x] = i < N ? D[i] : 0.f;
        sE[threadIdx.x] = i < N ? attn_kv_end(i, N, ft) : 0;  // 0: a padding row sees no key
    }
}

template <int HDP>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_bwd_dkdv_mma_kernel(const AttnParams p) {
    using T = AttnTile<HDP>;
    constexpr int BN = T::KV_BN, BM = T::KV_BM, LD = T::LD;
    constexpr int KS = HDP / 16;  // k-steps over the head dim
    constexpr int NQ = BM / 8;    // n-tiles over the query rows of S^T
    constexpr int NO = HDP / 8;   // n-tiles of dK, dV
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16 *sK = reinterpret_cast<bf16 *>(attn_smem);  // [BN][LD]
    bf16 *sV = sK + BN * LD;                         // [BN][LD]
    bf16 *sQ = sV + BN * LD;                         // [2][BM][LD]
    bf16 *sO = sQ + 2 * BM * LD;                     // [2][BM][LD] dout
    float *sL = reinterpret_cast<float *>(sO + 2 * BM * LD);  // [2][BM] lse * log2(e)
    float *sD = sL + 2 * BM;                                  // [2][BM]
    int *sE = reinterpret_cast<int *>(sD + 2 * BM);           // [2][BM] visibility end of each row

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int N = p.N, H = p.H, hd = p.hd, ft = p.ft;
    const int n0 = blockIdx.x * BN;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const size_t head_off = (size_t)b * N * ld + (size_t)h * hd;
    const bf16 *gQ = p.qkv + head_off, *gK = gQ + (size_t)H * hd, *gV = gQ + (size_t)2 * H * hd;
    const bf16 *gdO = p.dout + (size_t)b * N * ldo + (size_t)h * hd;
    const float *lse = p.lse_in + (size_t)bh * N, *Dv = p.D + (size_t)bh * N;

    // query rows that see key n0 (the first of the tile) start at its frame; earlier rows see none of the tile
    const int row_lo = ft > 0 ? (n0 / ft) * ft : 0;
    const int it0 = row_lo / BM, it_end = (N + BM - 1) / BM;
    const int kw0 = n0 + warp * 16;  // first key of this warp

    load_tile_async<BN, HDP>(sK, gK, ld, n0, N, hd);
    load_tile_async<BN, HDP>(sV, gV, ld, n0, N, hd);
    kv_load_q_stage<HDP>(sQ, sO, sL, sD, sE, gQ, gdO, lse, Dv, ld, ldo, it0 * BM, N, hd, ft);
    cp_async_commit();

    float dk[NO][4], dv[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.f;

    for (int it = it0; it < it_end; it++) {
        const int st = (it - it0) & 1;
        if (it + 1 < it_end) {
            const int nx = st ^ 1;
            kv_load_q_stage<HDP>(sQ + nx * BM * LD, sO + nx * BM * LD, sL + nx * BM, sD + nx * BM, sE + nx * BM, gQ,
                                 gdO, lse, Dv, ld, ldo, (it + 1) * BM, N, hd, ft);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *q_s = sQ + st * BM * LD, *o_s = sO + st * BM * LD;
        const float *l_s = sL + st * BM, *d_s = sD + st * BM;
        const int *e_s = sE + st * BM;
        const int i0 = it * BM;
        const bool active = kw0 < N && kw0 < attn_kv_end(min(i0 + BM, N) - 1, N, ft);
        const bool need_mask = n0 + BN > attn_kv_end(i0, N, ft) || i0 + BM > N;
        if (active) {
            // S^T = K_w Q^T (16 keys x BM rows)
            float s[NQ][4];
#pragma unroll
            for (int n = 0; n < NQ; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                const bf16 *kp = sK + (warp * 16 + g) * LD + kk * 16 + 2 * t;
                const uint32_t a[4] = {lds32(kp), lds32(kp + 8 * LD), lds32(kp + 8), lds32(kp + 8 * LD + 8)};
#pragma unroll
                for (int n = 0; n < NQ; n++) {
                    const bf16 *qp = q_s + (n * 8 + g) * LD + kk * 16 + 2 * t;
                    mma_bf16_16816(s[n], a, lds32(qp), lds32(qp + 8));
                }
            }
            // P^T = exp2(S^T * scale * log2e - lse * log2e), 0 where the row does not see the key
#pragma unroll
            for (int n = 0; n < NQ; n++) {
                const float2 lv = *reinterpret_cast<const float2 *>(l_s + n * 8 + 2 * t);
                const int2 ev = *reinterpret_cast<const int2 *>(e_s + n * 8 + 2 * t);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float pv = exp2f(s[n][e] * p.scale_log2 - ((e & 1) ? lv.y : lv.x));
                    if (need_mask && kw0 + g + (e >> 1) * 8 >= ((e & 1) ? ev.y : ev.x)) pv = 0.f;
                    s[n][e] = pv;
                }
            }
            // dP^T = V_w dO^T
            float dp[NQ][4];
#pragma unroll
            for (int n = 0; n < NQ; n++) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                const bf16 *vp = sV + (warp * 16 + g) * LD + kk * 16 + 2 * t;
                const uint32_t a[4] = {lds32(vp), lds32(vp + 8 * LD), lds32(vp + 8), lds32(vp + 8 * LD + 8)};
#pragma unroll
                for (int n = 0; n < NQ; n++) {
                    const bf16 *op = o_s + (n * 8 + g) * LD + kk * 16 + 2 * t;
                    mma_bf16_16816(dp[n], a, lds32(op), lds32(op + 8));
                }
            }
            // dS^T = P^T (dP^T - D)
#pragma unroll
            for (int n = 0; n < NQ; n++) {
                const float2 dv2 = *reinterpret_cast<const float2 *>(d_s + n * 8 + 2 * t);
#pragma unroll
                for (int e = 0; e < 4; e++) dp[n][e] = s[n][e] * (dp[n][e] - ((e & 1) ? dv2.y : dv2.x));
            }
            // dV += P^T dO and dK += dS^T Q (k = query rows; B fragments by transposed ldmatrix)
#pragma unroll
            for (int kk = 0; kk < BM / 16; kk++) {
                uint32_t ap[4], as[4];
                ap[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
                ap[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
                ap[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                ap[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                as[0] = pack_bf16x2(dp[2 * kk][0], dp[2 * kk][1]);
                as[1] = pack_bf16x2(dp[2 * kk][2], dp[2 * kk][3]);
                as[2] = pack_bf16x2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
                as[3] = pack_bf16x2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
                const int roff = (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
#pragma unroll
                for (int d2 = 0; d2 < HDP / 16; d2++) {
                    uint32_t bo[4], bq[4];
                    ldmatrix_x4_trans(bo, o_s + roff + d2 * 16);
                    mma_bf16_16816(dv[2 * d2], ap, bo[0], bo[1]);
                    mma_bf16_16816(dv[2 * d2 + 1], ap, bo[2], bo[3]);
                    ldmatrix_x4_trans(bq, q_s + roff + d2 * 16);
                    mma_bf16_16816(dk[2 * d2], as, bq[0], bq[1]);
                    mma_bf16_16816(dk[2 * d2 + 1], as, bq[2], bq[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with this stage before iteration it+1 refills it
    }

    // dqkv[k slot] += scale * dK, dqkv[v slot] += dV; rows = keys g, g+8 of the warp, columns 2t, 2t+1 of n-tiles
    bf16 *gdK = p.dqkv + head_off + (size_t)H * hd, *gdV = p.dqkv + head_off + (size_t)2 * H * hd;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = kw0 + g + 8 * r;
        if (key >= N) continue;
#pragma unroll
        for (int n = 0; n < NO; n++) {
            const int col = n * 8 + 2 * t;
            if (col >= hd) continue;
            add_bf16x2(gdK + (size_t)key * ld + col, dk[n][2 * r] * p.scale, dk[n][2 * r + 1] * p.scale);
            add_bf16x2(gdV + (size_t)key * ld + col, dv[n][2 * r], dv[n][2 * r + 1]);
        }
    }
}

// ---------------------------------------------------------------- backward 3: dQ, tensor cores
template <int HDP>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_bwd_dq_mma_kernel(const AttnParams p) {
    using T = AttnTile<HDP>;
    constexpr int BM = T::DQ_BM, BN = T::DQ_BN, LD = T::LD;
    constexpr int KS = HDP / 16;  // k-steps over the head dim
    constexpr int NS = BN / 8;    // n-tiles over the keys of S
    constexpr int NO = HDP / 8;   // n-tiles of dQ
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(attn_smem);  // [BM][LD]
    bf16 *sO = sQ + BM * LD;                         // [BM][LD] dout
    bf16 *sK = sO + BM * LD;                         // [2][BN][LD]
    bf16 *sV = sK + 2 * BN * LD;                     // [2][BN][LD]

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int N = p.N, H = p.H, hd = p.hd, ft = p.ft;
    const int m0 = (int)(gridDim.x - 1 - blockIdx.x) * BM;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const size_t head_off = (size_t)b * N * ld + (size_t)h * hd;
    const bf16 *gQ = p.qkv + head_off, *gK = gQ + (size_t)H * hd, *gV = gQ + (size_t)2 * H * hd;
    const bf16 *gdO = p.dout + (size_t)b * N * ldo + (size_t)h * hd;

    const int kv_hi = attn_kv_end(min(m0 + BM, N) - 1, N, ft);
    const int n_tiles = (kv_hi + BN - 1) / BN;
    const int blk_lo_end = attn_kv_end(m0, N, ft);
    const int wrow0 = m0 + warp * 16;
    const int warp_end = wrow0 < N ? attn_kv_end(min(wrow0 + 15, N - 1), N, ft) : 0;
    int row_end[2];
    float lse_r[2], D_r[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wrow0 + g + 8 * r;
        row_end[r] = i < N ? attn_kv_end(i, N, ft) : 0;
        lse_r[r] = i < N ? p.lse_in[(size_t)bh * N + i] * ATTN_LOG2E : 0.f;
        D_r[r] = i < N ? p.D[(size_t)bh * N + i] : 0.f;
    }

    load_tile_async<BM, HDP>(sQ, gQ, ld, m0, N, hd);
    load_tile_async<BM, HDP>(sO, gdO, ldo, m0, N, hd);
    load_tile_async<BN, HDP>(sK, gK, ld, 0, N, hd);
    load_tile_async<BN, HDP>(sV, gV, ld, 0, N, hd);
    cp_async_commit();

    float dq[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

    for (int j = 0; j < n_tiles; j++) {
        const int st = j & 1;
        if (j + 1 < n_tiles) {
            const int nx = st ^ 1;
            load_tile_async<BN, HDP>(sK + nx * BN * LD, gK, ld, (j + 1) * BN, N, hd);
            load_tile_async<BN, HDP>(sV + nx * BN * LD, gV, ld, (j + 1) * BN, N, hd);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *k_s = sK + st * BN * LD, *v_s = sV + st * BN * LD;
        const int kv0 = j * BN;
        const bool active = kv0 < warp_end;
        const bool need_mask = kv0 + BN > blk_lo_end || m0 + BM > N;
        if (active) {
            // S = Q_w K^T and dP = dO_w V^T (16 rows x BN keys)
            float s[NS][4], dp[NS][4];
#pragma unroll
            for (int n = 0; n < NS; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                const bf16 *qp = sQ + (warp * 16 + g) * LD + kk * 16 + 2 * t;
                const bf16 *op = sO + (warp * 16 + g) * LD + kk * 16 + 2 * t;
                const uint32_t aq[4] = {lds32(qp), lds32(qp + 8 * LD), lds32(qp + 8), lds32(qp + 8 * LD + 8)};
                const uint32_t ao[4] = {lds32(op), lds32(op + 8 * LD), lds32(op + 8), lds32(op + 8 * LD + 8)};
#pragma unroll
                for (int n = 0; n < NS; n++) {
                    const bf16 *kp = k_s + (n * 8 + g) * LD + kk * 16 + 2 * t;
                    const bf16 *vp = v_s + (n * 8 + g) * LD + kk * 16 + 2 * t;
                    mma_bf16_16816(s[n], aq, lds32(kp), lds32(kp + 8));
                    mma_bf16_16816(dp[n], ao, lds32(vp), lds32(vp + 8));
                }
            }
            // P = exp2(S * scale * log2e - lse * log2e) (0 where masked); dS = P (dP - D), kept in dp
#pragma unroll
            for (int n = 0; n < NS; n++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = e >> 1, col = kv0 + n * 8 + 2 * t + (e & 1);
                    float pv = exp2f(s[n][e] * p.scale_log2 - lse_r[r]);
                    if (need_mask && col >= row_end[r]) pv = 0.f;
                    dp[n][e] = pv * (dp[n][e] - D_r[r]);
                }
            }
            // dQ += dS K (k = keys; B fragments by transposed ldmatrix of the K tile)
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                uint32_t a[4];
                a[0] = pack_bf16x2(dp[2 * kk][0], dp[2 * kk][1]);
                a[1] = pack_bf16x2(dp[2 * kk][2], dp[2 * kk][3]);
                a[2] = pack_bf16x2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
                a[3] = pack_bf16x2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
                const bf16 *krow = k_s + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
#pragma unroll
                for (int d2 = 0; d2 < HDP / 16; d2++) {
                    uint32_t bk[4];
                    ldmatrix_x4_trans(bk, krow + d2 * 16);
                    mma_bf16_16816(dq[2 * d2], a, bk[0], bk[1]);
                    mma_bf16_16816(dq[2 * d2 + 1], a, bk[2], bk[3]);
                }
            }
        }
        __syncthreads();  // every warp is done with this K/V stage before iteration j+1 refills it
    }

    bf16 *gdQ = p.dqkv + head_off;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wrow0 + g + 8 * r;
        if (i >= N) continue;
#pragma unroll
        for (int n = 0; n < NO; n++) {
            const int col = n * 8 + 2 * t;
            if (col >= hd) continue;
            add_bf16x2(gdQ + (size_t)i * ld + col, dq[n][2 * r] * p.scale, dq[n][2 * r + 1] * p.scale);
        }
    }
}

// ---------------------------------------------------------------- scalar path (reference-like, fp32)
// forward: thread = one query row, online softmax over its visible keys
static __global__ void attn_fwd_scalar_kernel(const AttnParams p) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int N = p.N, H = p.H, hd = p.hd;
    if (i >= N) return;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const bf16 *Q = p.qkv + (size_t)b * N * ld + (size_t)h * hd, *K = Q + (size_t)H * hd, *V = Q + (size_t)2 * H * hd;
    float q[ATTN_MAX_HD], acc[ATTN_MAX_HD];
    for (int d = 0; d < hd; d++) {
        q[d] = __bfloat162float(Q[(size_t)i * ld + d]);
        acc[d] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const int end = attn_kv_end(i, N, p.ft);
    for (int j = 0; j < end; j++) {
        const bf16 *k = K + (size_t)j * ld, *v = V + (size_t)j * ld;
        float s = 0.f;
        for (int d = 0; d < hd; d++) s += q[d] * __bfloat162float(k[d]);
        s *= p.scale;
        const float m_new = fmaxf(m, s), corr = expf(m - m_new), pj = expf(s - m_new);
        l = l * corr + pj;
        for (int d = 0; d < hd; d++) acc[d] = acc[d] * corr + pj * __bfloat162float(v[d]);
        m = m_new;
    }
    const float inv = 1.f / l;
    bf16 *o = p.out + ((size_t)b * N + i) * ldo + (size_t)h * hd;
    for (int d = 0; d < hd; d++) o[d] = __float2bfloat16(acc[d] * inv);
    if (p.lse) p.lse[(size_t)bh * N + i] = m + logf(l);
}

// dQ: thread = one query row
static __global__ void attn_bwd_dq_scalar_kernel(const AttnParams p) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int N = p.N, H = p.H, hd = p.hd;
    if (i >= N) return;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const size_t head_off = (size_t)b * N * ld + (size_t)h * hd;
    const bf16 *Q = p.qkv + head_off, *K = Q + (size_t)H * hd, *V = Q + (size_t)2 * H * hd;
    const bf16 *dO = p.dout + ((size_t)b * N + i) * ldo + (size_t)h * hd;
    float q[ATTN_MAX_HD], dor[ATTN_MAX_HD], dq[ATTN_MAX_HD];
    for (int d = 0; d < hd; d++) {
        q[d] = __bfloat162float(Q[(size_t)i * ld + d]);
        dor[d] = __bfloat162float(dO[d]);
        dq[d] = 0.f;
    }
    const float lse = p.lse_in[(size_t)bh * N + i], Di = p.D[(size_t)bh * N + i];
    const int end = attn_kv_end(i, N, p.ft);
    for (int j = 0; j < end; j++) {
        const bf16 *k = K + (size_t)j * ld, *v = V + (size_t)j * ld;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < hd; d++) {
            s += q[d] * __bfloat162float(k[d]);
            dp += dor[d] * __bfloat162float(v[d]);
        }
        const float ds = expf(s * p.scale - lse) * (dp - Di);
        for (int d = 0; d < hd; d++) dq[d] += ds * __bfloat162float(k[d]);
    }
    bf16 *g = p.dqkv + head_off + (size_t)i * ld;
    for (int d = 0; d < hd; d++) g[d] = __float2bfloat16(__bfloat162float(g[d]) + dq[d] * p.scale);
}

// dK, dV: thread = one key, over the query rows that see it
static __global__ void attn_bwd_dkdv_scalar_kernel(const AttnParams p) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int N = p.N, H = p.H, hd = p.hd, ft = p.ft;
    if (j >= N) return;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const size_t ld = (size_t)3 * H * hd, ldo = (size_t)H * hd;
    const size_t head_off = (size_t)b * N * ld + (size_t)h * hd;
    const bf16 *Q = p.qkv + head_off, *K = Q + (size_t)H * hd, *V = Q + (size_t)2 * H * hd;
    const bf16 *dO = p.dout + (size_t)b * N * ldo + (size_t)h * hd;
    float k[ATTN_MAX_HD], v[ATTN_MAX_HD], dk[ATTN_MAX_HD], dv[ATTN_MAX_HD];
    for (int d = 0; d < hd; d++) {
        k[d] = __bfloat162float(K[(size_t)j * ld + d]);
        v[d] = __bfloat162float(V[(size_t)j * ld + d]);
        dk[d] = dv[d] = 0.f;
    }
    const int row_lo = ft > 0 ? (j / ft) * ft : 0;
    for (int i = row_lo; i < N; i++) {
        const bf16 *q = Q + (size_t)i * ld, *dor = dO + (size_t)i * ldo;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < hd; d++) {
            s += __bfloat162float(q[d]) * k[d];
            dp += __bfloat162float(dor[d]) * v[d];
        }
        const float pij = expf(s * p.scale - p.lse_in[(size_t)bh * N + i]);
        const float ds = pij * (dp - p.D[(size_t)bh * N + i]);
        for (int d = 0; d < hd; d++) {
            dv[d] += pij * __bfloat162float(dor[d]);
            dk[d] += ds * __bfloat162float(q[d]);
        }
    }
    bf16 *gk = p.dqkv + head_off + (size_t)H * hd + (size_t)j * ld, *gv = gk + (size_t)H * hd;
    for (int d = 0; d < hd; d++) {
        gk[d] = __float2bfloat16(__bfloat162float(gk[d]) + dk[d] * p.scale);
        gv[d] = __float2bfloat16(__bfloat162float(gv[d]) + dv[d]);
    }
}

// ---------------------------------------------------------------- launchers
static void attn_check_shape(const char *who, int B, int N, int H, int hd) {
    if (H <= 0 || hd <= 0 || hd > ATTN_MAX_HD || hd % 8 != 0 || B * H > 65535) {
        fflush(stdout);
        fprintf(stderr,
                "internal error: %s: unsupported shape B=%d N=%d H=%d hd=%d (head dim a multiple of 8 up to %d, "
                "B*H <= 65535)\n",
                who, B, N, H, hd, ATTN_MAX_HD);
        exit(1);
    }
}

static int attn_use_scalar(const void *a, const void *b, const void *c) {
    const char *env = getenv("JEPA_ATTN_SCALAR");
    if (env && env[0] && strcmp(env, "0") != 0) return 1;
    // the tensor-core path moves 16-byte vectors: every row start must be 16-byte aligned (hd % 8 == 0 does the
    // rest), so an unaligned base pointer falls back to the scalar path
    return (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15) != 0;
}

static int attn_padded_hd(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 96 ? 96 : 128; }

static AttnParams attn_params(int B, int N, int H, int hd, int ft) {
    AttnParams p;
    memset(&p, 0, sizeof p);
    p.B = B;
    p.N = N;
    p.H = H;
    p.hd = hd;
    p.ft = ft > 0 ? ft : 0;
    const double scale = 1.0 / sqrt((double)hd);
    p.scale = (float)scale;
    p.scale_log2 = (float)(scale * 1.4426950408889634);
    return p;
}

// Kernels above 48 KiB of dynamic shared memory must opt in (per kernel; cheap, no synchronisation).
template <typename Kernel>
static void attn_smem_opt_in(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int HDP>
static void attn_fwd_launch(const AttnParams &p, cudaStream_t s) {
    using T = AttnTile<HDP>;
    attn_smem_opt_in(attn_fwd_mma_kernel<HDP>, T::FWD_SMEM);
    const dim3 grid((unsigned)((p.N + T::FWD_BM - 1) / T::FWD_BM), (unsigned)(p.B * p.H));
    attn_fwd_mma_kernel<HDP><<<grid, ATTN_THREADS, T::FWD_SMEM, s>>>(p);
    CUDA_CHECK_LAUNCH();
}

template <int HDP>
static void attn_bwd_launch(const AttnParams &p, cudaStream_t s) {
    using T = AttnTile<HDP>;
    attn_smem_opt_in(attn_bwd_dkdv_mma_kernel<HDP>, T::KV_SMEM);
    attn_smem_opt_in(attn_bwd_dq_mma_kernel<HDP>, T::DQ_SMEM);
    const dim3 grid_kv((unsigned)((p.N + T::KV_BN - 1) / T::KV_BN), (unsigned)(p.B * p.H));
    attn_bwd_dkdv_mma_kernel<HDP><<<grid_kv, ATTN_THREADS, T::KV_SMEM, s>>>(p);
    CUDA_CHECK_LAUNCH();
    const dim3 grid_q((unsigned)((p.N + T::DQ_BM - 1) / T::DQ_BM), (unsigned)(p.B * p.H));
    attn_bwd_dq_mma_kernel<HDP><<<grid_q, ATTN_THREADS, T::DQ_SMEM, s>>>(p);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_attention_fwd(cuda_stream stream, bf16_bits *out, float *lse, const bf16_bits *qkv, int B,
                                   int N, int H, int hd, int frame_tokens) {
    if (B <= 0 || N <= 0) return;
    attn_check_shape("cuda_attention_fwd", B, N, H, hd);
    cudaStream_t s = (cudaStream_t)stream;
    AttnParams p = attn_params(B, N, H, hd, frame_tokens);
    p.qkv = CBF16(qkv);
    p.out = BF16(out);
    p.lse = lse;
    if (attn_use_scalar(qkv, out, NULL)) {
        const dim3 grid((unsigned)((N + 127) / 128), (unsigned)(B * H));
        attn_fwd_scalar_kernel<<<grid, 128, 0, s>>>(p);
        CUDA_CHECK_LAUNCH();
        return;
    }
    // opt-in Hopper path (attention_sm90.cu: JEPA_ATTN_SM90=1, cc 9.0, hd 24|32|64|80|88|128, frame-causal or
    // not; unverified on a GPU)
    if (cuda_attention_fwd_sm90(s, p.out, lse, p.qkv, B, N, H, hd, frame_tokens)) return;
    switch (attn_padded_hd(hd)) {
        case 32: attn_fwd_launch<32>(p, s); break;
        case 64: attn_fwd_launch<64>(p, s); break;
        case 96: attn_fwd_launch<96>(p, s); break;
        default: attn_fwd_launch<128>(p, s); break;
    }
}

// D [B,H,N] fp32, what the mma.sync and scalar backwards need
static size_t attn_bwd_d_bytes(int B, int N, int H) {
    if (B <= 0 || N <= 0 || H <= 0) return 0;
    const size_t bytes = (size_t)B * H * N * sizeof(float);
    return (bytes + 255) / 256 * 256;
}

extern "C" size_t cuda_attention_bwd_workspace(int B, int N, int H, int hd) {
    if (B <= 0 || N <= 0 || H <= 0) return 0;
    return attn_bwd_d_bytes(B, N, H) + cuda_attention_bwd_sm90_workspace(B, N, H, hd);  // D, then sm90's dQ partials
}

extern "C" void cuda_attention_set_workspace(void *workspace, size_t bytes) {
    attn_workspace = workspace;
    attn_workspace_bytes = bytes;
}

extern "C" void cuda_attention_bwd(cuda_stream stream, bf16_bits *dqkv, const bf16_bits *dout, const bf16_bits *qkv,
                                   const bf16_bits *out, const float *lse, int B, int N, int H, int hd,
                                   int frame_tokens) {
    if (B <= 0 || N <= 0) return;
    attn_check_shape("cuda_attention_bwd", B, N, H, hd);
    const size_t need = attn_bwd_d_bytes(B, N, H);  // the sm90 path checks its own part
    if (!attn_workspace || attn_workspace_bytes < need) {
        fflush(stdout);
        fprintf(stderr,
                "internal error: cuda_attention_bwd: workspace of %zu bytes set, %zu needed for B=%d N=%d H=%d\n"
                "---> HINT: call cuda_attention_set_workspace with cuda_attention_bwd_workspace(B, N, H, hd) bytes "
                "(the largest shape of the run) before the first backward\n",
                attn_workspace_bytes, need, B, N, H);
        exit(1);
    }
    cudaStream_t s = (cudaStream_t)stream;
    AttnParams p = attn_params(B, N, H, hd, frame_tokens);
    p.qkv = CBF16(qkv);
    p.o = CBF16(out);
    p.dout = CBF16(dout);
    p.lse_in = lse;
    p.D = (const float *)attn_workspace;
    p.dqkv = BF16(dqkv);

    const size_t rows = (size_t)B * N * H;
    const unsigned blocks = (unsigned)((rows * 16 + 255) / 256);
    attn_bwd_rowdot_kernel<<<blocks, 256, 0, s>>>((float *)attn_workspace, p.o, p.dout, B, N, H, hd);
    CUDA_CHECK_LAUNCH();

    if (attn_use_scalar(qkv, dout, dqkv)) {
        const dim3 grid((unsigned)((N + 127) / 128), (unsigned)(B * H));
        attn_bwd_dkdv_scalar_kernel<<<grid, 128, 0, s>>>(p);
        CUDA_CHECK_LAUNCH();
        attn_bwd_dq_scalar_kernel<<<grid, 128, 0, s>>>(p);
        CUDA_CHECK_LAUNCH();
        return;
    }
    // opt-in Hopper path (attention_sm90.cu: JEPA_ATTN_SM90=1, cc 9.0, hd 24|32|64|80|88|128, frame-causal or
    // not, workspace; unverified)
    if (cuda_attention_bwd_sm90(s, p.dqkv, p.dout, p.qkv, lse, p.D, (char *)attn_workspace + need,
                                attn_workspace_bytes - need, B, N, H, hd, frame_tokens))
        return;
    switch (attn_padded_hd(hd)) {
        case 32: attn_bwd_launch<32>(p, s); break;
        case 64: attn_bwd_launch<64>(p, s); break;
        case 96: attn_bwd_launch<96>(p, s); break;
        default: attn_bwd_launch<128>(p, s); break;
    }
}
