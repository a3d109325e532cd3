// attention_sm90.cu: the Hopper (sm_90a) flash-attention forward for head dim 64, non-causal, bf16 in and out with
// fp32 accumulation. Same contract as cuda_attention_fwd (attention.cu): qkv [B,N,3,H,64] bf16, out [B,N,H,64]
// bf16, lse [B,H,N] fp32 natural log (or NULL), scale 1/8.
//
// STATUS: compiled and disassembled only; NOT RUN on a GPU yet, so correctness and speed are unverified. It is
// therefore opt-in: cuda_attention_fwd calls cuda_attention_fwd_sm90 first, which runs only when JEPA_ATTN_SM90=1
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

// qkv [B,N,3,H,64] bf16 as a 4D map {d 64, slot*H+h 3H, n N, b B} with 64 x 1 x 64 x 1 boxes, 128-byte swizzle.
static CUtensorMap sm90_qkv_map(const bf16 *qkv, int B, int N, int H) {
    CUtensorMap map;
    const cuuint64_t dims[4] = {SM90_HD, (cuuint64_t)3 * H, (cuuint64_t)N, (cuuint64_t)B};
    const cuuint64_t row = (cuuint64_t)SM90_HD * 2;  // bytes between heads/slots
    const cuuint64_t strides[3] = {row, row * 3 * H, row * 3 * H * (cuuint64_t)N};
    const cuuint32_t box[4] = {SM90_HD, 1, SM90_BOX, 1}, elem_strides[4] = {1, 1, 1, 1};
    const CUresult r = sm90_encode_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, (void *)qkv, dims, strides, box,
                                        elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuTensorMapEncodeTiled failed (CUresult %d) for B=%d N=%d H=%d\n",
                __FILE__, __LINE__, (int)r, B, N, H);
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
    const CUtensorMap map = sm90_qkv_map(qkv, B, N, H);
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
