// attention_sm90.cu: the Hopper (sm_90a) flash-attention forward and backward (the backward below the forward's
// kernel) for head dim 64, non-causal, bf16 in and out with fp32 accumulation. Same contract as cuda_attention_fwd
// (attention.cu): qkv [B,N,3,H,64] bf16, out [B,N,H,64] bf16, lse [B,H,N] fp32 natural log (or NULL), scale 1/8.
//
// STATUS: compiled and disassembled only; NOT RUN on a GPU yet, so correctness and speed are unverified. It is
// therefore opt-in (the backward likewise, from cuda_attention_bwd, see cuda_attention_bwd_sm90):
// cuda_attention_fwd calls cuda_attention_fwd_sm90 first, which runs only when JEPA_ATTN_SM90=1
// is set, the device is compute capability 9.0, hd == 64, frame_tokens == 0 and the pointers are aligned as TMA
// needs, and otherwise returns 0 so the mma.sync path runs. Built only for compute_90a/sm_90a (its own Makefile
// rule); the device code is compiled out for any other target, so a generic build still links.
//
// A CTA = 128 query rows of one (b,h), 3 warpgroups (384 threads):
//   warpgroup 0, producer: one thread issues TMA copies (cp.async.bulk.tensor, one CUtensorMap over all of qkv,
//     4D {d, slot*H+h, n, b}, 64-row boxes, 128-byte swizzle, rows past N zero-filled by the copy engine): Q once,
//     then K_j and V_j (128 keys each) into a 2-stage ring; stage s is "full" when its mbarrier's transaction
//     bytes land, and is refilled after both consumers arrive on its "empty" mbarrier. setmaxnreg gives its
//     registers to the consumers (24 kept, 240 for each consumer thread).
//   warpgroups 1, 2, consumers: 64 query rows each. Per key tile: S[64x128] = Q K^T by 4 wgmma m64n128k16 (A and
//     B from shared memory, K-major), the online softmax in registers (fp32, log2 domain; keys >= N masked to
//     -inf on the tail tile), P packed to bf16 in the A-register layout, O[64x64] += P V by 8 wgmma m64n64k16 (A
//     from registers, V MN-major), then the stage is released. Each row is owned by the 4 lanes of one quad.
//   epilogue: O / l stored as bf16 pairs straight from the accumulator fragments; lse = (m + log2 l) ln 2.
// Version 1 does not yet overlap the softmax of tile j with the GEMMs of tile j+1 inside a warpgroup (FA3's
// intra-warpgroup pipelining) nor ping-pong the two consumers: the next steps once it is verified on a GPU.
//
// Shared memory (offsets from a 1024-byte aligned base; the 128-byte swizzle repeats every 1024 bytes and the
// wgmma descriptors assume tiles that start on one):
//   Q [2 consumers][64 rows][64]   16384 B      K[s] [128][64], V[s] [128][64]: 16384 B each, 2 stages = 65536 B
//   mbarriers: full[2], empty[2], q                                          total 81960 B + 1024 alignment slack
//
// wgmma shared-memory descriptors (PTX ISA "matrix descriptor"): start address >> 4 in bits 0-13, leading byte
// offset >> 4 in 16-29, stride byte offset >> 4 in 32-45, swizzle mode in 62-63 (1 = 128-byte). With 128-byte rows
// (64 bf16) and the 128-byte swizzle, an 8-row x 128-byte core block is one 1024-byte atom: the stride between
// 8-row groups (K-major Q, K) and between 8-key groups (MN-major V) is 1024 B. Both offsets are set to 1024: in
// each use only one of them is read (the other direction spans a single atom), so the value is right whichever.
// K steps: +32 B along a swizzled K-major row (Q, K: 16 bf16), +2048 B (16 keys of V).
#include <cuda.h>          // CUtensorMap and its enums (types only: the driver call comes through the runtime)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include "cuda_common.cuh"

#define SM90_HD 64           // head dim (one 128-byte swizzled row)
#define SM90_BM 128          // query rows per CTA (2 consumer warpgroups x 64)
#define SM90_BN 128          // keys per K/V tile
#define SM90_BOX 64          // rows per TMA box
#define SM90_STAGES 2        // K/V ring depth
#define SM90_THREADS 384     // 3 warpgroups
#define SM90_TILE_BYTES (SM90_BN * SM90_HD * 2)          // one K or V tile, 16384
#define SM90_Q_BYTES (SM90_BM * SM90_HD * 2)             // 16384
#define SM90_BAR_OFF (SM90_Q_BYTES + SM90_STAGES * 2 * SM90_TILE_BYTES)
#define SM90_SMEM (SM90_BAR_OFF + (2 * SM90_STAGES + 1) * 8 + 1024)  // + slack to align the base to 1024
#define SM90_LOG2E 1.4426950408889634f
#define SM90_LN2 0.6931471805599453f
#define SM90_SCALE 0.125f  // 1/sqrt(64): dQ, dK

// Launches that took this path (the GPU test checks it ran; read by cuda_attention_sm90_launches).
static long sm90_launches = 0;

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SM90_DEVICE_CODE 1  // host pass, or the sm_90a device pass: the real kernel body
#else
#define SM90_DEVICE_CODE 0  // any other device target: an empty kernel (never launched: the dispatch checks cc 9.0)
#endif

#if SM90_DEVICE_CODE
// ---------------------------------------------------------------- PTX wrappers (sm_90 / sm_90a)
static __device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ uint32_t mbar_try(uint32_t bar, uint32_t parity) {
    uint32_t done;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
    return done;
}
// Spins until the phase of parity `parity` has completed. Unverified pipeline: a wait that never ends (a wrong
// parity, byte count or arrival count) traps after ~2^35 cycles (~20 s) instead of hanging the GPU session; the
// launcher's next CUDA call then fails with the kernel's error.
#define SM90_HANG_CYCLES (1ll << 35)
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    if (mbar_try(bar, parity)) return;
    const long long t0 = clock64();
    while (!mbar_try(bar, parity))
        if (clock64() - t0 > SM90_HANG_CYCLES) __trap();
}
// One box {64 d, 1 slot, 64 rows, 1 batch} of the qkv tensor map into shared memory at dst, completing on bar.
static __device__ __forceinline__ void tma_load_box(uint32_t dst, const CUtensorMap *map, int slot, int row, int b,
                                                    uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
        "[%6];\n" ::"r"(dst),
        "l"((uint64_t)map), "r"(0), "r"(slot), "r"(row), "r"(b), "r"(bar)
        : "memory");
}
static __device__ __forceinline__ uint64_t gmma_desc(uint32_t addr) {
    const uint64_t atom = 1024 >> 4;  // leading and stride byte offsets (see the header)
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (atom << 16) | (atom << 32) | ((uint64_t)1 << 62);
}
static __device__ __forceinline__ void wgmma_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit(void) {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wgmma_wait_all(void) {
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// The accumulators are written asynchronously: pin every use after the wait (CUTLASS's warpgroup_fence_operand).
template <int NREG>
static __device__ __forceinline__ void fence_regs(float (&d)[NREG]) {
#pragma unroll
    for (int i = 0; i < NREG; i++) asm volatile("" : "+f"(d[i])::"memory");
}
// D[64 x 128] (+)= A[64 x 16] B[16 x 128]: A and B from shared memory, both K-major (transpose flags 0)
static __device__ __forceinline__ void wgmma_m64n128k16_ss(float d[64], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(accumulate));
}

// D[64 x 64] (+)= A[64 x 16] B[16 x 64]: A from registers (per warp the mma.m16n8k16 A layout), B from
// shared memory MN-major (transpose flag 1)
static __device__ __forceinline__ void wgmma_m64n64k16_rs(float d[32], const uint32_t a[4], uint64_t db,
                                                           int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}
static __device__ __forceinline__ void setmaxnreg_producer(void) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
}
static __device__ __forceinline__ void setmaxnreg_consumer(void) {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
}
#endif  // SM90_DEVICE_CODE

// ---------------------------------------------------------------- the kernel
struct Sm90Params {
    bf16 *out;   // [B,N,H,64]
    float *lse;  // [B,H,N] or NULL
    int N, H;
    float scale_log2;  // log2(e) / sqrt(64)
};

#if SM90_DEVICE_CODE
// The producer: one thread loads Q (both consumers' 64-row boxes), then every K/V tile into the ring.
static __device__ __forceinline__ void sm90_produce(const CUtensorMap *map, uint32_t sq, uint32_t sk0, uint32_t qbar,
                                                    uint32_t full0, uint32_t empty0, int m0, int h, int b, int H,
                                                    int n_tiles) {
    mbar_expect_tx(qbar, SM90_Q_BYTES);
    tma_load_box(sq, map, h, m0, b, qbar);
    tma_load_box(sq + SM90_BOX * SM90_HD * 2, map, h, m0 + SM90_BOX, b, qbar);
    for (int j = 0; j < n_tiles; j++) {
        const int s = j % SM90_STAGES;
        // stage s was last filled for tile j - 2: wait until both consumers released it
        if (j >= SM90_STAGES) mbar_wait(empty0 + 8 * s, (uint32_t)((j / SM90_STAGES - 1) & 1));
        const uint32_t full = full0 + 8 * s, k = sk0 + (uint32_t)s * 2 * SM90_TILE_BYTES, v = k + SM90_TILE_BYTES;
        mbar_expect_tx(full, 2 * SM90_TILE_BYTES);
        for (int half = 0; half < SM90_BN / SM90_BOX; half++) {
            const int row = j * SM90_BN + half * SM90_BOX;
            const uint32_t off = (uint32_t)half * SM90_BOX * SM90_HD * 2;
            tma_load_box(k + off, map, H + h, row, b, full);
            tma_load_box(v + off, map, 2 * H + h, row, b, full);
        }
    }
}

// One consumer warpgroup: 64 query rows. Per thread (lane = 4g + t, warp w of the warpgroup): rows w*16 + g and
// w*16 + g + 8 (r = 0, 1); accumulator element 4c + 2r + e is column 8c + 2t + e of row r (the wgmma D layout).
static __device__ __forceinline__ void sm90_consume(const Sm90Params &p, uint32_t sq, uint32_t sk0, uint32_t qbar,
                                                    uint32_t full0, uint32_t empty0, int row0, int h, int b,
                                                    int n_tiles) {
    const int lane = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = lane / 4, t = lane % 4;
    float o[32];  // O [64 x 64] fragment, unnormalised
#pragma unroll
    for (int i = 0; i < 32; i++) o[i] = 0.f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};  // log2-domain row max; this lane's row sum
    mbar_wait(qbar, 0);
    for (int j = 0; j < n_tiles; j++) {
        const int s = j % SM90_STAGES;
        const uint32_t k = sk0 + (uint32_t)s * 2 * SM90_TILE_BYTES, v = k + SM90_TILE_BYTES;
        mbar_wait(full0 + 8 * s, (uint32_t)((j / SM90_STAGES) & 1));
        float sc[64];  // S [64 x 128] fragment
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < SM90_HD / 16; kk++)
            wgmma_m64n128k16_ss(sc, gmma_desc(sq + 32 * kk), gmma_desc(k + 32 * kk), kk > 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(sc);
        const int key0 = j * SM90_BN + 2 * t;
        if ((j + 1) * SM90_BN > p.N) {  // tail tile: keys >= N (zero-filled by TMA) get no weight
#pragma unroll
            for (int c = 0; c < SM90_BN / 8; c++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    if (key0 + 8 * c + e >= p.N) sc[4 * c + e] = sc[4 * c + 2 + e] = -INFINITY;
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = -INFINITY;
#pragma unroll
            for (int c = 0; c < SM90_BN / 8; c++) mx = fmaxf(mx, fmaxf(sc[4 * c + 2 * r], sc[4 * c + 2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m_run[r], mx * p.scale_log2);  // finite: every tile has a key < N
            const float alpha = exp2f(m_run[r] - m_new);
            float sum = 0.f;
#pragma unroll
            for (int c = 0; c < SM90_BN / 8; c++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float pe = exp2f(fmaf(sc[4 * c + 2 * r + e], p.scale_log2, -m_new));
                    sc[4 * c + 2 * r + e] = pe;
                    sum += pe;
                }
            l_run[r] = l_run[r] * alpha + sum;
            m_run[r] = m_new;
#pragma unroll
            for (int c = 0; c < SM90_HD / 8; c++) o[4 * c + 2 * r] *= alpha, o[4 * c + 2 * r + 1] *= alpha;
        }
        // P as A fragments: k-step q (keys 16q..16q+15) = score n8-blocks 2q and 2q+1
        uint32_t pa[32];
#pragma unroll
        for (int q = 0; q < SM90_BN / 16; q++)
#pragma unroll
            for (int i = 0; i < 4; i++) pa[4 * q + i] = cuda_bf16x2_bits(sc[8 * q + 2 * i], sc[8 * q + 2 * i + 1]);
        wgmma_fence();
#pragma unroll
        for (int q = 0; q < SM90_BN / 16; q++) wgmma_m64n64k16_rs(o, &pa[4 * q], gmma_desc(v + 2048 * q), 1);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(o);
        mbar_arrive(empty0 + 8 * s);
    }
    // epilogue: out = O / l (bf16 pairs), lse = (m + log2 l) ln 2
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = l_run[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = row0 + 16 * w + g + 8 * r;
        if (row >= p.N) continue;
        const float inv = 1.f / l;
        bf16 *dst = p.out + (((size_t)b * p.N + row) * p.H + h) * SM90_HD + 2 * t;
#pragma unroll
        for (int c = 0; c < SM90_HD / 8; c++)
            *reinterpret_cast<uint32_t *>(dst + 8 * c) =
                cuda_bf16x2_bits(o[4 * c + 2 * r] * inv, o[4 * c + 2 * r + 1] * inv);
        if (p.lse && t == 0) p.lse[((size_t)b * p.H + h) * p.N + row] = (m_run[r] + log2f(l)) * SM90_LN2;
    }
}
#endif  // SM90_DEVICE_CODE

// grid (ceil(N/128), B*H), 384 threads, SM90_SMEM bytes of dynamic shared memory.
static __global__ void __launch_bounds__(SM90_THREADS, 1)
    attn_fwd_sm90_kernel(const __grid_constant__ CUtensorMap map, const Sm90Params p) {
#if SM90_DEVICE_CODE
    extern __shared__ __align__(1024) unsigned char sm90_smem_raw[];
    const uint32_t base = (smem_addr(sm90_smem_raw) + 1023u) & ~1023u;
    const uint32_t sq = base, sk0 = base + SM90_Q_BYTES, bars = base + SM90_BAR_OFF;
    const uint32_t full0 = bars, empty0 = bars + 8 * SM90_STAGES, qbar = bars + 16 * SM90_STAGES;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, m0 = blockIdx.x * SM90_BM;
    const int n_tiles = (p.N + SM90_BN - 1) / SM90_BN, wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < SM90_STAGES; s++) {
            mbar_init(full0 + 8 * s, 1);         // the producer's arrive.expect_tx, then the bytes
            mbar_init(empty0 + 8 * s, 2 * 128);  // every consumer thread arrives after its last wgmma read
        }
        mbar_init(qbar, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_producer();
        if (threadIdx.x == 0) sm90_produce(&map, sq, sk0, qbar, full0, empty0, m0, h, b, p.H, n_tiles);
    } else {
        setmaxnreg_consumer();
        const uint32_t my_q = sq + (uint32_t)(wg - 1) * SM90_BOX * SM90_HD * 2;
        sm90_consume(p, my_q, sk0, qbar, full0, empty0, m0 + (wg - 1) * SM90_BOX, h, b, n_tiles);
    }
#endif
}

// ================================================================ the backward (sm_90a), head dim 64, non-causal
// Contract as cuda_attention_bwd (attention.cu): dqkv [B,N,3,H,64] bf16 +=, dout/out [B,N,H,64], lse [B,H,N] from
// the forward, D [B,H,N] = rowsum(dout * out) already computed by attention.cu's pre-pass; dQ, dK scaled by 1/8.
//
// Kernel 1, a CTA = 128 keys of one (b,h) (FA3 style: dK, dV stay in registers over every query tile):
//   warpgroup 0, producer warp: K and V of the tile once (4 TMA boxes on kvbar); then per query tile of 64 rows
//     the Q box (qkv map) and the dO box (dout map) into a 2-stage ring, and the tile's lse * log2(e) (+inf past N,
//     so those rows get P = 0 with no mask) and D rows by plain stores of its 32 lanes; full[s] completes on 32
//     arrivals (lane 0's carries the expected bytes) plus the TMA bytes. setmaxnreg gives its registers away.
//   warpgroups 1, 2, consumers: 64 keys each (rows w*16 + g + 8r of S^T, as the forward's query rows). Per tile:
//     S^T = K Q^T and dP^T = V dO^T by 4 + 4 wgmma m64n64k16 (both operands from shared memory, K-major);
//     P^T = exp2(S^T scale log2e - lse log2e), dS^T = P^T (dP^T - D) in registers; dV += P^T dO and dK += dS^T Q
//     by 4 + 4 wgmma m64n64k16 (A from registers, dO and Q MN-major); the stage is released; dS^T is written
//     transposed (stmatrix .trans) as dS [64 queries][128 keys] bf16 into a double-buffered, 128-byte swizzled
//     tile (consumer c writes keys 64c..64c+63, one 8 KiB K-major region); a named barrier over the 256 consumer
//     threads; then dQ [64 x 64] = dS K over the CTA's 128 keys, consumer c computing d columns 32c..32c+31 by 8
//     wgmma m64n32k16 (A = dS K-major, B = K MN-major from +64 B into its swizzled rows), stored as an fp32
//     partial for this key tile: partial [key tile][B*H][N][64] in the workspace (no atomics: deterministic).
//   epilogue: dqkv[k] += dK / 8, dqkv[v] += dV (bf16 pairs from the fragments; keys >= N not stored).
// Kernel 2: dqkv[q] += (sum over key tiles in order of partial) / 8, one thread per pair of columns.
// Shared memory (1024-byte aligned base): K 16384, V 16384, Q[2] 16384, dO[2] 16384, dS[2] 32768, rows[2] (lse,
// D: 64 floats each) 1024, mbarriers full[2] empty[2] kv 40: 99368 B + 1024 alignment slack.
#define SM90B_BN 128                                   // keys per CTA (2 consumers x 64)
#define SM90B_BM 64                                    // query rows per streamed tile
#define SM90B_KV_BYTES (SM90B_BN * SM90_HD * 2)        // K or V tile, 16384
#define SM90B_QT_BYTES (SM90B_BM * SM90_HD * 2)        // a Q or dO tile, 8192
#define SM90B_DS_BYTES (SM90B_BM * SM90B_BN * 2)       // one dS buffer, 16384
#define SM90B_OFF_V SM90B_KV_BYTES
#define SM90B_OFF_Q (2 * SM90B_KV_BYTES)
#define SM90B_OFF_DO (SM90B_OFF_Q + SM90_STAGES * SM90B_QT_BYTES)
#define SM90B_OFF_DS (SM90B_OFF_DO + SM90_STAGES * SM90B_QT_BYTES)
#define SM90B_OFF_ROWS (SM90B_OFF_DS + 2 * SM90B_DS_BYTES)
#define SM90B_OFF_BAR (SM90B_OFF_ROWS + SM90_STAGES * 2 * SM90B_BM * 4)
#define SM90B_SMEM (SM90B_OFF_BAR + (2 * SM90_STAGES + 1) * 8 + 1024)
#define SM90B_WS_CAP ((size_t)3 << 30)  // largest dQ partial workspace asked for (3 GiB); above, the mma.sync path

struct Sm90BwdParams {
    bf16 *dqkv;         // [B,N,3,H,64] += (dK, dV by kernel 1)
    const float *lse;   // [B,H,N] natural log
    const float *D;     // [B,H,N]
    float *partial;     // [n_kt][B*H][N][64] fp32 dQ partials (unscaled), or with sem: [1][B*H][N][64] the sum
    int *sem;           // NULL, or "ordered": [B*H][n_q] the key tile whose turn it is to add into query tile
    int N, H;
    float scale_log2;   // log2(e) / 8
};

#if SM90_DEVICE_CODE
// D[64 x 64] (+)= A[64 x 16] B[16 x 64], both from shared memory, K-major
static __device__ __forceinline__ void wgmma_m64n64k16_ss(float d[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
}
// D[64 x 32] (+)= A[64 x 16] B[16 x 32]: A from shared memory K-major, B from shared memory MN-major (flag 1)
static __device__ __forceinline__ void wgmma_m64n32k16_ss_tb(float d[16], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
        "}, %16, %17, p, 1, 1, 0, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(accumulate));
}
// Four 8x8 bf16 matrices stored transposed; lane l gives the address of memory row l%8 of matrix l/8.
static __device__ __forceinline__ void stmatrix_x4_trans(uint32_t addr, const uint32_t r[4]) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]),
                 "r"(r[1]), "r"(r[2]), "r"(r[3])
                 : "memory");
}
// Ordinary shared stores (stmatrix) made visible to the async proxy (the wgmma that reads dS next).
static __device__ __forceinline__ void fence_proxy_async(void) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Named barrier 1 over the two consumer warpgroups (the producer warpgroup never joins it).
static __device__ __forceinline__ void consumers_sync(void) { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }

// The producer warp (all 32 lanes; lane 0 issues the copies): K, V once, then Q, dO, lse, D per query tile.
static __device__ __forceinline__ void sm90b_produce(const CUtensorMap *qmap, const CUtensorMap *omap,
                                                     const Sm90BwdParams &p, uint32_t base, int n0, int h, int b,
                                                     int n_q) {
    const int lane = threadIdx.x % 32;
    const uint32_t bars = base + SM90B_OFF_BAR, full0 = bars, empty0 = bars + 8 * SM90_STAGES;
    const uint32_t kvbar = bars + 16 * SM90_STAGES;
    const size_t row_off = ((size_t)b * p.H + h) * p.N;
    float *rows = reinterpret_cast<float *>(__cvta_shared_to_generic(base + SM90B_OFF_ROWS));  // [2][lse 64, D 64]
    if (lane == 0) {
        mbar_expect_tx(kvbar, 2 * SM90B_KV_BYTES);
        for (int half = 0; half < SM90B_BN / SM90_BOX; half++) {
            const uint32_t off = (uint32_t)half * SM90_BOX * SM90_HD * 2;
            tma_load_box(base + off, qmap, p.H + h, n0 + half * SM90_BOX, b, kvbar);
            tma_load_box(base + SM90B_OFF_V + off, qmap, 2 * p.H + h, n0 + half * SM90_BOX, b, kvbar);
        }
    }
    for (int it = 0; it < n_q; it++) {
        const int s = it % SM90_STAGES;
        // stage s last held tile it - 2: every consumer thread must have released it
        if (it >= SM90_STAGES) mbar_wait(empty0 + 8 * s, (uint32_t)((it / SM90_STAGES - 1) & 1));
        float *r = rows + s * 2 * SM90B_BM;
#pragma unroll
        for (int k = 0; k < SM90B_BM / 32; k++) {
            const int i = it * SM90B_BM + lane + 32 * k;
            r[lane + 32 * k] = i < p.N ? p.lse[row_off + i] * SM90_LOG2E : INFINITY;  // +inf: P = 0 past N
            r[SM90B_BM + lane + 32 * k] = i < p.N ? p.D[row_off + i] : 0.f;
        }
        const uint32_t full = full0 + 8 * s;
        if (lane == 0) {  // arrive (release: this lane's row stores) with the bytes to expect, then the copies
            mbar_expect_tx(full, 2 * SM90B_QT_BYTES);
            tma_load_box(base + SM90B_OFF_Q + (uint32_t)s * SM90B_QT_BYTES, qmap, h, it * SM90B_BM, b, full);
            tma_load_box(base + SM90B_OFF_DO + (uint32_t)s * SM90B_QT_BYTES, omap, h, it * SM90B_BM, b, full);
        } else {
            mbar_arrive(full);
        }
    }
}

// dS^T (fp32 fragments of 64 keys x 64 queries, this warp's 16 keys) -> dS [query][key] bf16 in the swizzled
// region `region` (64 queries x 64 keys, 128-byte rows): matrix m of k-step q is (key rows +8(m&1), query columns
// 16q + 8(m>>1)); stored transposed, its memory row j is query 16q + 8(m>>1) + j, keys 16w + 8(m&1) .. +7, which
// is 16-byte chunk 2w + (m&1) of that row, swizzled by XOR with the row index mod 8 (= j: rows are 1024-aligned).
static __device__ __forceinline__ void sm90b_store_ds(uint32_t region, const uint32_t sa[16], int w, int lane) {
    const int m = lane / 8, j = lane % 8;
#pragma unroll
    for (int q = 0; q < SM90B_BM / 16; q++) {
        const int query = 16 * q + 8 * (m >> 1) + j;
        const uint32_t addr = region + (uint32_t)query * 128 + (uint32_t)(((2 * w + (m & 1)) ^ j) * 16);
        stmatrix_x4_trans(addr, &sa[4 * q]);
    }
}

// "ordered" dQ (JEPA_ATTN_SM90_DQ=ordered): key tile kt adds its dQ tile into the fp32 sum after tile kt - 1 did,
// so the sum is in a fixed order (deterministic) in one [B*H][N][64] buffer instead of n_kt partials. One thread
// waits for its turn (acquire), a named barrier lets the other consumers on; after the adds, every thread fences,
// the barrier, one thread passes the turn (release). Relies on CTAs of lower blockIdx.x (key tile) being scheduled
// no later than higher ones (as FA3's deterministic mode does); a wait that never ends traps (SM90_HANG_CYCLES).
static __device__ __forceinline__ void sm90b_turn_wait(const int *sem, int kt) {
    if (threadIdx.x == 128) {
        const long long t0 = clock64();
        for (;;) {
            int v;
            asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(sem) : "memory");
            if (v == kt) break;
            if (clock64() - t0 > SM90_HANG_CYCLES) __trap();
        }
    }
    consumers_sync();
}
static __device__ __forceinline__ void sm90b_turn_pass(int *sem, int kt) {
    __threadfence();
    consumers_sync();
    if (threadIdx.x == 128) asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(sem), "r"(kt + 1) : "memory");
}

// One consumer warpgroup c: keys n0 + 64c .. +63. Fragment element 4c' + 2r + e: key row w*16 + g + 8r, column
// (query, or d for dK/dV) 8c' + 2t + e.
static __device__ __forceinline__ void sm90b_consume(const Sm90BwdParams &p, uint32_t base, int c, int n0, int h,
                                                     int b, int kt, int n_q) {
    const int lane = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = lane / 4, t = lane % 4;
    const uint32_t bars = base + SM90B_OFF_BAR, full0 = bars, empty0 = bars + 8 * SM90_STAGES;
    const uint32_t kvbar = bars + 16 * SM90_STAGES;
    const uint32_t kc = base + (uint32_t)c * SM90_BOX * SM90_HD * 2, vc = kc + SM90B_OFF_V;
    const float *rows = reinterpret_cast<const float *>(__cvta_shared_to_generic(base + SM90B_OFF_ROWS));
    const int bh = b * p.H + h;
    // keys >= N (zero rows from TMA) get P = 0 explicitly: their exp2(-lse) alone could overflow to inf, and inf
    // times the zero K row would put NaN into dQ
    const int key0 = n0 + 64 * c + 16 * w + g;
    const bool key_ok[2] = {key0 < p.N, key0 + 8 < p.N};
    float dk[32], dv[32];  // [64 keys x 64 d] fragments
#pragma unroll
    for (int i = 0; i < 32; i++) dk[i] = dv[i] = 0.f;
    mbar_wait(kvbar, 0);
    for (int it = 0; it < n_q; it++) {
        const int s = it % SM90_STAGES;
        const uint32_t sq = base + SM90B_OFF_Q + (uint32_t)s * SM90B_QT_BYTES;
        const uint32_t so = base + SM90B_OFF_DO + (uint32_t)s * SM90B_QT_BYTES;
        mbar_wait(full0 + 8 * s, (uint32_t)((it / SM90_STAGES) & 1));
        float st[32], dp[32];  // S^T, dP^T [64 keys x 64 queries]
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < SM90_HD / 16; kk++)
            wgmma_m64n64k16_ss(st, gmma_desc(kc + 32 * kk), gmma_desc(sq + 32 * kk), kk > 0);
#pragma unroll
        for (int kk = 0; kk < SM90_HD / 16; kk++)
            wgmma_m64n64k16_ss(dp, gmma_desc(vc + 32 * kk), gmma_desc(so + 32 * kk), kk > 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(st);
        fence_regs(dp);
        // P^T and dS^T; the columns are queries, their lse and D rows from the stage
        const float *lr = rows + s * 2 * SM90B_BM, *dr = lr + SM90B_BM;
#pragma unroll
        for (int cc = 0; cc < SM90B_BM / 8; cc++) {
            const float2 l2 = *reinterpret_cast<const float2 *>(lr + 8 * cc + 2 * t);
            const float2 d2 = *reinterpret_cast<const float2 *>(dr + 8 * cc + 2 * t);
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int i = 4 * cc + 2 * r + e;
                    const float pv = key_ok[r] ? exp2f(fmaf(st[i], p.scale_log2, -(e ? l2.y : l2.x))) : 0.f;
                    st[i] = pv;
                    dp[i] = pv * (dp[i] - (e ? d2.y : d2.x));
                }
        }
        // A fragments of k-step q (queries 16q..16q+15) = fragment n8-blocks 2q, 2q+1 (as the forward's P)
        uint32_t pa[16], sa[16];
#pragma unroll
        for (int q = 0; q < SM90B_BM / 16; q++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                pa[4 * q + i] = cuda_bf16x2_bits(st[8 * q + 2 * i], st[8 * q + 2 * i + 1]);
                sa[4 * q + i] = cuda_bf16x2_bits(dp[8 * q + 2 * i], dp[8 * q + 2 * i + 1]);
            }
        wgmma_fence();
#pragma unroll
        for (int q = 0; q < SM90B_BM / 16; q++) wgmma_m64n64k16_rs(dv, &pa[4 * q], gmma_desc(so + 2048 * q), 1);
#pragma unroll
        for (int q = 0; q < SM90B_BM / 16; q++) wgmma_m64n64k16_rs(dk, &sa[4 * q], gmma_desc(sq + 2048 * q), 1);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(dv);
        fence_regs(dk);
        mbar_arrive(empty0 + 8 * s);  // Q, dO and the rows of stage s are no longer read
        // dS into buffer it&1 (the other consumer may still read buffer (it-1)&1), then dQ = dS K
        const uint32_t ds = base + SM90B_OFF_DS + (uint32_t)(it & 1) * SM90B_DS_BYTES;
        sm90b_store_ds(ds + (uint32_t)c * SM90_BOX * SM90_HD * 2, sa, w, lane);
        fence_proxy_async();
        consumers_sync();
        float dq[16];  // [64 queries x 32 d] fragment, d columns 32c..32c+31
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < SM90B_BN / 16; kk++)  // 16 keys per k-step: region kk/4, +32 B inside its rows
            wgmma_m64n32k16_ss_tb(dq, gmma_desc(ds + (uint32_t)(kk / 4) * SM90_BOX * SM90_HD * 2 + 32 * (kk % 4)),
                                  gmma_desc(base + 2048 * kk + 64 * c), kk > 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(dq);
        // this key tile's dQ tile: its own partial, or (ordered) added into the sum in key-tile order; L2 only (cg):
        // another SM wrote the sum last
        int *sem = p.sem ? p.sem + (size_t)bh * n_q + it : NULL;
        if (sem) sm90b_turn_wait(sem, kt);
        const bool add = sem && kt > 0;
        float *tile = p.partial + ((size_t)(sem ? 0 : kt) * gridDim.y + bh) * p.N * SM90_HD;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = it * SM90B_BM + 16 * w + g + 8 * r;
            if (i >= p.N) continue;
            float2 *dst = reinterpret_cast<float2 *>(tile + (size_t)i * SM90_HD + 32 * c + 2 * t);
#pragma unroll
            for (int cc = 0; cc < 4; cc++) {
                float2 v = make_float2(dq[4 * cc + 2 * r], dq[4 * cc + 2 * r + 1]);
                if (add) {
                    const float2 o = __ldcg(dst + 4 * cc);
                    v.x += o.x, v.y += o.y;
                }
                __stcg(dst + 4 * cc, v);
            }
        }
        if (sem) sm90b_turn_pass(sem, kt);
    }
    // dqkv[k] += dK / 8, dqkv[v] += dV
    const size_t ld = (size_t)3 * p.H * SM90_HD;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = n0 + 64 * c + 16 * w + g + 8 * r;
        if (key >= p.N) continue;
        bf16 *gk = p.dqkv + ((size_t)b * p.N + key) * ld + ((size_t)p.H + h) * SM90_HD + 2 * t;
        bf16 *gv = gk + (size_t)p.H * SM90_HD;
#pragma unroll
        for (int cc = 0; cc < SM90_HD / 8; cc++) {
            const float2 ok = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(gk + 8 * cc));
            const float2 ov = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(gv + 8 * cc));
            *reinterpret_cast<uint32_t *>(gk + 8 * cc) = cuda_bf16x2_bits(
                ok.x + dk[4 * cc + 2 * r] * SM90_SCALE, ok.y + dk[4 * cc + 2 * r + 1] * SM90_SCALE);
            *reinterpret_cast<uint32_t *>(gv + 8 * cc) =
                cuda_bf16x2_bits(ov.x + dv[4 * cc + 2 * r], ov.y + dv[4 * cc + 2 * r + 1]);
        }
    }
}
#endif  // SM90_DEVICE_CODE

// grid (ceil(N/128) key tiles, B*H), 384 threads, SM90B_SMEM bytes of dynamic shared memory.
static __global__ void __launch_bounds__(SM90_THREADS, 1)
    attn_bwd_sm90_kernel(const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap omap,
                         const Sm90BwdParams p) {
#if SM90_DEVICE_CODE
    extern __shared__ __align__(1024) unsigned char sm90b_smem_raw[];
    const uint32_t base = (smem_addr(sm90b_smem_raw) + 1023u) & ~1023u;
    const uint32_t bars = base + SM90B_OFF_BAR;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, kt = blockIdx.x, n0 = kt * SM90B_BN;
    const int n_q = (p.N + SM90B_BM - 1) / SM90B_BM, wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < SM90_STAGES; s++) {
            mbar_init(bars + 8 * s, 32);                        // the producer warp's lanes (lane 0: + bytes)
            mbar_init(bars + 8 * (SM90_STAGES + s), 2 * 128);  // every consumer thread, after its last read
        }
        mbar_init(bars + 16 * SM90_STAGES, 1);  // K, V
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_producer();
        if (threadIdx.x < 32) sm90b_produce(&qmap, &omap, p, base, n0, h, b, n_q);
    } else {
        setmaxnreg_consumer();
        sm90b_consume(p, base, wg - 1, n0, h, b, kt, n_q);
    }
#endif
}

// dqkv[q] (b, i, h, 2j..2j+1) += (sum over key tiles kt = 0.. in order of partial[kt][bh][i][2j..]) / 8
static __global__ void attn_bwd_sm90_dq_reduce_kernel(bf16 *dqkv, const float *partial, int B, int N, int H,
                                                      int n_kt) {
#if SM90_DEVICE_CODE
    const size_t pairs = (size_t)B * H * N * (SM90_HD / 2);
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= pairs) return;
    const int j = (int)(idx % (SM90_HD / 2));
    const size_t row = idx / (SM90_HD / 2);  // bh * N + i
    const int i = (int)(row % N), bh = (int)(row / N), b = bh / H, h = bh % H;
    const size_t stride = (size_t)B * H * N * SM90_HD;
    const float *src = partial + row * SM90_HD + 2 * j;
    float sx = 0.f, sy = 0.f;
    for (int kt = 0; kt < n_kt; kt++) {
        const float2 v = *reinterpret_cast<const float2 *>(src + (size_t)kt * stride);
        sx += v.x, sy += v.y;
    }
    bf16 *dst = dqkv + (((size_t)b * N + i) * 3 * H + h) * SM90_HD + 2 * j;
    const float2 old = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dst));
    *reinterpret_cast<uint32_t *>(dst) = cuda_bf16x2_bits(old.x + sx * SM90_SCALE, old.y + sy * SM90_SCALE);
#endif
}

// ---------------------------------------------------------------- host side
static int sm90_env_on(void) {
    const char *env = getenv("JEPA_ATTN_SM90");  // read at every call, as JEPA_ATTN_SCALAR
    return env && strcmp(env, "1") == 0;
}

// Compute capability 9.0 (H100/H200: the sm_90a code runs there and nowhere else), cached per device.
static int sm90_device_ok(void) {
    static int cached[64];  // 0 unknown, 1 yes, 2 no
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return 0;
    if (!cached[dev]) {
        int major = 0, minor = 0;
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
        cached[dev] = major == 9 && minor == 0 ? 1 : 2;
    }
    return cached[dev] == 1;
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no -lcuda link).
static PFN_cuTensorMapEncodeTiled_v12000 sm90_encode_fn(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = NULL;
    if (!fn) {
        void *f = NULL;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
        if (q != cudaDriverEntryPointSuccess || !f) {
            fflush(stdout);
            fprintf(stderr, "internal error: %s:%d: cuTensorMapEncodeTiled not found in the driver (query %d)\n",
                    __FILE__, __LINE__, (int)q);
            exit(1);
        }
        fn = (PFN_cuTensorMapEncodeTiled_v12000)f;
    }
    return fn;
}

// A [B,N,slots,64] bf16 tensor (qkv: slots 3H; dout: H) as a 4D map {d 64, slot, n N, b B} with 64 x 1 x 64 x 1
// boxes, 128-byte swizzle; rows past N are zero-filled by the copy engine.
static CUtensorMap sm90_rows_map(const bf16 *base, int B, int N, int slots) {
    CUtensorMap map;
    const cuuint64_t dims[4] = {SM90_HD, (cuuint64_t)slots, (cuuint64_t)N, (cuuint64_t)B};
    const cuuint64_t row = (cuuint64_t)SM90_HD * 2;  // bytes between heads/slots
    const cuuint64_t strides[3] = {row, row * slots, row * slots * (cuuint64_t)N};
    const cuuint32_t box[4] = {SM90_HD, 1, SM90_BOX, 1}, elem_strides[4] = {1, 1, 1, 1};
    const CUresult r = sm90_encode_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, (void *)base, dims, strides, box,
                                        elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuTensorMapEncodeTiled failed (CUresult %d) for B=%d N=%d slots=%d\n",
                __FILE__, __LINE__, (int)r, B, N, slots);
        exit(1);
    }
    return map;
}

// Runs the sm_90a forward and returns 1 when it applies (see the header), else returns 0 having done nothing.
extern "C" int cuda_attention_fwd_sm90(cudaStream_t s, bf16 *out, float *lse, const bf16 *qkv, int B, int N, int H,
                                       int hd, int frame_tokens) {
    if (!sm90_env_on() || hd != SM90_HD || frame_tokens > 0 || B <= 0 || N <= 0) return 0;
    // TMA reads qkv from a 16-byte aligned base (row strides are 128 B); out is stored as 4-byte pairs
    if (((uintptr_t)qkv & 15) != 0 || ((uintptr_t)out & 15) != 0 || ((uintptr_t)lse & 3) != 0) return 0;
    if (!sm90_device_ok()) return 0;
    const CUtensorMap map = sm90_rows_map(qkv, B, N, 3 * H);
    Sm90Params p;
    p.out = out;
    p.lse = lse;
    p.N = N;
    p.H = H;
    p.scale_log2 = (float)(SM90_LOG2E / sqrt((double)SM90_HD));
    CUDA_CHECK(cudaFuncSetAttribute(attn_fwd_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SM90_SMEM));
    const dim3 grid((unsigned)((N + SM90_BM - 1) / SM90_BM), (unsigned)(B * H));
    attn_fwd_sm90_kernel<<<grid, SM90_THREADS, SM90_SMEM, s>>>(map, p);
    CUDA_CHECK_LAUNCH();
    sm90_launches++;
    return 1;
}

// How many forwards took the sm_90a path (tests check the opt-in actually ran it).
extern "C" long cuda_attention_sm90_launches(void) { return sm90_launches; }

// ---------------------------------------------------------------- backward, host side
static long sm90_bwd_launches = 0;

// JEPA_ATTN_SM90_DQ=ordered: dQ summed in key-tile order into one buffer (see sm90b_turn_wait); else partials.
static int sm90_dq_ordered(void) {
    const char *env = getenv("JEPA_ATTN_SM90_DQ");
    return env && strcmp(env, "ordered") == 0;
}

static size_t sm90_round256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The sm_90a backward's workspace (past D): partials [n_kt][B*H][N][64] fp32, n_kt = ceil(N/128), or ordered: the
// sum [B*H][N][64] fp32 then the turns [B*H][ceil(N/64)] int. 0 where it would pass SM90B_WS_CAP.
static size_t sm90_bwd_ws_bytes(int B, int N, int H, int ordered) {
    const size_t rows = (size_t)B * H * N * SM90_HD * sizeof(float);
    const size_t n_kt = (size_t)(N + SM90B_BN - 1) / SM90B_BN, n_q = (size_t)(N + SM90B_BM - 1) / SM90B_BM;
    const size_t bytes = ordered ? sm90_round256(rows) + sm90_round256((size_t)B * H * n_q * sizeof(int))
                                 : sm90_round256(n_kt * rows);
    return bytes > SM90B_WS_CAP ? 0 : bytes;
}

// The workspace the sm_90a backward needs beyond attention.cu's own (D). 0 unless JEPA_ATTN_SM90=1 and hd 64 (so
// the default workspace is unchanged). Partials, B24 H16: N1568 2.0 GB; N2048 H22 (4.7 GB) and N6272 (30 GB) pass
// the 3 GiB cap and fall back to the mma.sync backward. Ordered: 154 MB at N1568, 617 MB at N6272.
extern "C" size_t cuda_attention_bwd_sm90_workspace(int B, int N, int H, int hd) {
    if (!sm90_env_on() || hd != SM90_HD || B <= 0 || N <= 0 || H <= 0) return 0;
    return sm90_bwd_ws_bytes(B, N, H, sm90_dq_ordered());
}

// Runs the sm_90a backward and returns 1 when it applies (as the forward, and ws_bytes covers the partials), else
// returns 0 having done nothing. D [B,H,N] must already hold rowsum(dout * out); ws: the workspace past D.
extern "C" int cuda_attention_bwd_sm90(cudaStream_t s, bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                                       const float *lse, const float *D, void *ws, size_t ws_bytes, int B, int N,
                                       int H, int hd, int frame_tokens) {
    if (!sm90_env_on() || hd != SM90_HD || frame_tokens > 0 || B <= 0 || N <= 0 || H <= 0) return 0;
    const int ordered = sm90_dq_ordered();
    const size_t need = sm90_bwd_ws_bytes(B, N, H, ordered);
    if (need == 0 || !ws || ws_bytes < need) return 0;
    // TMA bases 16-byte aligned; dqkv pairs and the float2 partials 8-byte aligned
    if (((uintptr_t)qkv & 15) != 0 || ((uintptr_t)dout & 15) != 0 || ((uintptr_t)dqkv & 15) != 0 ||
        ((uintptr_t)ws & 15) != 0)
        return 0;
    if (!sm90_device_ok()) return 0;
    const CUtensorMap qmap = sm90_rows_map(qkv, B, N, 3 * H), omap = sm90_rows_map(dout, B, N, H);
    const int n_kt = (N + SM90B_BN - 1) / SM90B_BN;
    Sm90BwdParams p;
    p.dqkv = dqkv;
    p.lse = lse;
    p.D = D;
    p.partial = (float *)ws;
    p.sem = ordered ? (int *)((char *)ws + sm90_round256((size_t)B * H * N * SM90_HD * sizeof(float))) : NULL;
    if (ordered)  // every query tile starts at key tile 0's turn
        CUDA_CHECK(cudaMemsetAsync(p.sem, 0, (size_t)B * H * ((N + SM90B_BM - 1) / SM90B_BM) * sizeof(int), s));
    p.N = N;
    p.H = H;
    p.scale_log2 = (float)(SM90_LOG2E / sqrt((double)SM90_HD));
    CUDA_CHECK(cudaFuncSetAttribute(attn_bwd_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SM90B_SMEM));
    attn_bwd_sm90_kernel<<<dim3((unsigned)n_kt, (unsigned)(B * H)), SM90_THREADS, SM90B_SMEM, s>>>(qmap, omap, p);
    CUDA_CHECK_LAUNCH();
    const size_t pairs = (size_t)B * H * N * (SM90_HD / 2);
    const int n_sum = ordered ? 1 : n_kt;  // buffers to sum
    attn_bwd_sm90_dq_reduce_kernel<<<(unsigned)((pairs + 255) / 256), 256, 0, s>>>(dqkv, p.partial, B, N, H, n_sum);
    CUDA_CHECK_LAUNCH();
    sm90_bwd_launches++;
    return 1;
}

// How many backwards took the sm_90a path.
extern "C" long cuda_attention_sm90_bwd_launches(void) { return sm90_bwd_launches; }
