// attention_sm90.cu: the Hopper (sm_90a) flash-attention forward and backward (the backward below the forward's
// kernel) for head dims 24, 32, 64, 80, 88 and 128 (one templated kernel each way, per-dim traits below), with or
// without the frame-causal mask, bf16 in and out with fp32 accumulation. Same contract as cuda_attention_fwd
// (attention.cu): qkv [B,N,3,H,hd] bf16, out [B,N,H,hd] bf16, lse [B,H,N] fp32 natural log (or NULL), scale
// 1/sqrt(hd); frame_tokens F > 0: token i sees key j iff j/F <= i/F.
//
// STATUS: compiled and disassembled only; NOT RUN on a GPU yet, so correctness and speed are unverified. It is
// therefore opt-in (the backward likewise, from cuda_attention_bwd, see cuda_attention_bwd_sm90):
// cuda_attention_fwd calls cuda_attention_fwd_sm90 first, which runs only when JEPA_ATTN_SM90=1 is set, the device
// is compute capability 9.0, hd is one of the traits' dims and the pointers are aligned as TMA needs, and otherwise
// returns 0 so the mma.sync path runs. Built only for compute_90a/sm_90a (its own Makefile rule); the device code
// is compiled out for any other target, so a generic build still links.
//
// Head dims as swizzle atoms (Sm90Traits): a row of hd bf16 is held in shared memory as NA0 "main" atoms of A0
// elements (A0 = 64: 128-byte rows, 128-byte swizzle; A0 = 32: 64-byte rows, 64-byte swizzle) and at most one tail
// atom of TW elements (16: 32-byte swizzle; 32: 64-byte swizzle). Each atom of a tile is its own region [rows][W]
// (1024-byte aligned), loaded by its own TMA box; a box running past hd is zero-filled by the copy engine (TMA
// out-of-bounds fill), which pads hd to HDP for the K dimension of Q K^T (wgmma needs K % 16 == 0) and for the N
// of P V (zero columns, never stored):
//   hd 24: one 32-wide atom (64 B swizzle), box 32 over a 24-wide tensor: elements 24..31 zero-filled, HDP 32
//   hd 32: one 32-wide atom (64 B);  hd 64: one 64-wide atom (128 B);  hd 128: two 64-wide atoms (FA3's split)
//   hd 80: 64 (128 B) + 16 (32 B), HDP 80;  hd 88: 64 (128 B) + 32 (64 B, elements 88..95 zero-filled), HDP 96
// No 48-, 160- or 176-byte swizzled row exists: splitting into atoms avoids the no-swizzle layout. Q K^T runs
// its k-steps (16 elements) atom by atom (+32 B inside a swizzled row); P V, dV += P^T dO and dK += dS^T Q run
// one wgmma per atom with N = the atom's width (64, 32 or 16; wgmma needs N % 8 == 0).
//
// Frame-causal (runtime F, no extra instantiation): the forward's CTA of query rows [m0, m0+128) computes only key
// tiles below its last row's frame end (later tiles are not loaded or computed); keys past each row's own frame
// end get -inf by the element, the same rule as the tail tile's keys >= N (one per-row key limit covers both).
// The backward's CTA of keys [n0, n0+128) starts at the query tile holding the first query of n0's frame (earlier
// query tiles are skipped); P^T is set to 0 for queries before a key's frame by the element.
//
// Forward, a CTA = 128 query rows of one (b,h), 3 warpgroups (384 threads):
//   warpgroup 0, producer: one thread issues TMA copies (cp.async.bulk.tensor, CUtensorMaps over all of qkv,
//     4D {d, slot*H+h, n, b}, 64-row boxes, one per atom, rows past N zero-filled by the copy engine): Q once,
//     then K_j and V_j (128 keys each) into a ring of FWD_STAGES; stage s is "full" when its mbarrier's
//     transaction bytes land, and is refilled after both consumers arrive on its "empty" mbarrier. setmaxnreg gives
//     its registers to the consumers (24 kept, 240 for each consumer thread).
//   warpgroups 1, 2, consumers: 64 query rows each. Per key tile: S[64x128] = Q K^T by HDP/16 wgmma m64n128k16 (A
//     and B from shared memory, K-major), the online softmax in registers (fp32, log2 domain; keys past the row's
//     limit masked to -inf), P packed to bf16 in the A-register layout, O[64xHDP] += P V by 8 x (one wgmma per
//     atom) (A from registers, V MN-major), then the stage is released. Each row is owned by the 4 lanes of a quad.
//   epilogue: O / l stored as bf16 pairs straight from the accumulator fragments (columns < hd); lse = (m + log2 l)
//     ln 2.
// Version 1 does not yet overlap the softmax of tile j with the GEMMs of tile j+1 inside a warpgroup (FA3's
// intra-warpgroup pipelining) nor ping-pong the two consumers: the next steps once it is verified on a GPU.
//
// Shared memory (offsets from a 1024-byte aligned base; the swizzles repeat every 8 rows and the wgmma descriptors
// assume atom regions that start on 1024): Q [128 rows][HDP], then K[s], V[s] [128][HDP] per stage (each tile as
// its atoms' regions, one after the other), then the
// mbarriers full[S], empty[S], q; sizes per dim in bench/attention-notes.md.
//
// wgmma shared-memory descriptors (PTX ISA "matrix descriptor"): start address >> 4 in bits 0-13, leading byte
// offset >> 4 in 16-29, stride byte offset >> 4 in 32-45, swizzle mode in 62-63 (1 = 128-byte, 2 = 64-byte, 3 =
// 32-byte). An atom of W elements keeps 8 rows x 2W bytes per swizzle block: the stride between 8-row groups (K-major
// Q, K; MN-major V, dO, Q, K) is 16W bytes. Both offsets are set to it: in each use only one of them is read (the
// other direction spans a single atom), so the value is right whichever.
#include <cuda.h>          // CUtensorMap and its enums (types only: the driver call comes through the runtime)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include "cuda_common.cuh"

#define SM90_BM 128          // query rows per forward CTA (2 consumer warpgroups x 64)
#define SM90_BN 128          // keys per K/V tile (forward) and per backward CTA
#define SM90_BOX 64          // rows per TMA box
#define SM90_THREADS 384     // 3 warpgroups
#define SM90_LOG2E 1.4426950408889634f
#define SM90_LN2 0.6931471805599453f

// The head dims with an instantiation (X(hd) for each); anything else takes attention.cu's path.
#define SM90_HDS(X) X(24) X(32) X(64) X(80) X(88) X(128)

// Per-dim traits: the atoms (see the header), the padded head dim, the ring depths and the shared memory layout.
template <int HD>
struct Sm90Traits {
    static constexpr int D = HD;
    static constexpr int A0 = HD >= 64 ? 64 : 32;       // main atom width (elements)
    static constexpr int NA0 = HD >= 64 ? HD / 64 : 1;  // main atoms
    static constexpr int REM = HD - NA0 * A0;           // elements left past them (<= 0: none)
    static constexpr int TW = REM <= 0 ? 0 : REM <= 16 ? 16 : 32;  // tail atom width (0: none)
    static constexpr int NATOM = NA0 + (TW > 0 ? 1 : 0);
    static constexpr int HDP = NA0 * A0 + TW;  // padded head dim in shared memory
    // small rows make short tiles: one more stage hides more of the load latency behind the same smem
    static constexpr int FWD_STAGES = HDP <= 32 ? 3 : 2;
    static constexpr int BWD_STAGES = 2;
    // forward layout (bytes from the aligned base)
    static constexpr int F_Q_BYTES = SM90_BM * HDP * 2;
    static constexpr int F_TILE_BYTES = SM90_BN * HDP * 2;  // one K or V tile
    static constexpr int F_BAR_OFF = F_Q_BYTES + FWD_STAGES * 2 * F_TILE_BYTES;
    static constexpr int F_SMEM = F_BAR_OFF + (2 * FWD_STAGES + 1) * 8 + 1024;  // + slack to align the base
    // backward layout: K, V [128][HDP]; Q[s], dO[s] [64][HDP]; dS[2] [64][128]; rows[s] (lse, D) [2][64] fp32
    static constexpr int B_KV_BYTES = SM90_BN * HDP * 2;
    static constexpr int B_QT_BYTES = 64 * HDP * 2;
    static constexpr int B_DS_BYTES = 64 * SM90_BN * 2;
    static constexpr int B_OFF_V = B_KV_BYTES;
    static constexpr int B_OFF_Q = 2 * B_KV_BYTES;
    static constexpr int B_OFF_DO = B_OFF_Q + BWD_STAGES * B_QT_BYTES;
    static constexpr int B_OFF_DS = B_OFF_DO + BWD_STAGES * B_QT_BYTES;
    static constexpr int B_OFF_ROWS = B_OFF_DS + 2 * B_DS_BYTES;
    static constexpr int B_OFF_BAR = B_OFF_ROWS + BWD_STAGES * 2 * 64 * 4;
    static constexpr int B_SMEM = B_OFF_BAR + (2 * BWD_STAGES + 1) * 8 + 1024;
    static_assert(HD % 8 == 0 && REM <= 32, "head dim not expressible as the atoms");
    // TMA: a box's row (2W bytes) a multiple of 16 and equal to its swizzle span (128, 64 or 32 bytes)
    static_assert((A0 == 64 || A0 == 32) && (TW == 0 || TW == 16 || TW == 32), "atom widths with a swizzle mode");
    static_assert(HDP % 16 == 0, "wgmma K steps of 16");
    static_assert(B_SMEM <= 227 * 1024 && F_SMEM <= 227 * 1024, "shared memory per block");
    // atom a's width (elements) and its region's byte offset in a tile of `rows` rows (regions are 1024-aligned:
    // rows * W * 2 is a multiple of 1024 for 64-row boxes and W >= 16)
    static __host__ __device__ constexpr int w(int a) { return a < NA0 ? A0 : TW; }
    static __host__ __device__ constexpr int region(int a, int rows) { return a * rows * A0 * 2; }
    // the atom holding K-step kk (elements 16kk .. 16kk+15) and the byte offset of the step inside its rows
    static __host__ __device__ constexpr int k_atom(int kk) { return 16 * kk < NA0 * A0 ? 16 * kk / A0 : NA0; }
    static __host__ __device__ constexpr int k_off(int kk) { return (16 * kk - k_atom(kk) * A0) * 2; }
};

// Launches that took this path (the GPU test checks it ran; read by cuda_attention_sm90_launches).
static long sm90_launches = 0;
// Set by a pipeline wait that gave up (see mbar_wait); read and cleared by cuda_attention_sm90_hang_flag.
__device__ int sm90_hang_flag;

// One tensor's maps: boxes of the main atom's width, and of the tail atom's (a copy of main where there is none).
struct Sm90Maps {
    CUtensorMap main, tail;
};

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
// parity, byte count or arrival count) gives up after ~2^35 cycles (~20 s) instead of hanging the GPU session: it
// sets sm90_hang_flag (read and cleared by cuda_attention_sm90_hang_flag; the results are then garbage) and every
// later wait of any CTA (of any sm90 launch until it is cleared) returns after ~0.5 ms, so the kernels end. Not
// __trap(): a trap in the consumers' code makes ptxas cap their region at the launch bound's 168 registers instead
// of setmaxnreg's 240 (spills from hd 80 up).
#define SM90_HANG_CYCLES (1ll << 35)
#define SM90_FLAG_CYCLES (1ll << 20)  // ~0.5 ms: only a wait this long also reads the flag (no load in short waits)
static __device__ __forceinline__ bool sm90_hung(long long t0) {
    const long long waited = clock64() - t0;
    if (waited <= SM90_FLAG_CYCLES) return false;
    if (*(volatile int *)&sm90_hang_flag) return true;
    if (waited <= SM90_HANG_CYCLES) return false;
    atomicExch(&sm90_hang_flag, 1);
    return true;
}
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    if (mbar_try(bar, parity)) return;
    const long long t0 = clock64();
    while (!mbar_try(bar, parity))
        if (sm90_hung(t0)) return;
}
// One box {W d from d0, 1 slot, 64 rows, 1 batch} of a tensor map into shared memory at dst, completing on bar.
static __device__ __forceinline__ void tma_load_box(uint32_t dst, const CUtensorMap *map, int d0, int slot, int row,
                                                    int b, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
        "[%6];\n" ::"r"(dst),
        "l"((uint64_t)map), "r"(d0), "r"(slot), "r"(row), "r"(b), "r"(bar)
        : "memory");
}
// Rows [row, row+64) of one slot, every atom: atom a into its region of a `tile_rows`-row tile at row r0. The
// expected bytes are 64 * HDP * 2 (boxes past hd or N count in full: the copy engine writes their zeros).
template <class T>
static __device__ __forceinline__ void tma_load_rows(uint32_t tile, int tile_rows, int r0, const Sm90Maps *m,
                                                     int slot, int row, int b, uint32_t bar) {
#pragma unroll
    for (int a = 0; a < T::NATOM; a++)
        tma_load_box(tile + T::region(a, tile_rows) + r0 * T::w(a) * 2, a < T::NA0 ? &m->main : &m->tail,
                     a * T::A0, slot, row, b, bar);
}
// Descriptor of an operand tile in an atom of width w (64, 32, 16 elements: 128-, 64-, 32-byte swizzle).
static __device__ __forceinline__ uint64_t gmma_desc(uint32_t addr, int w) {
    const uint64_t group = (uint64_t)(16 * w) >> 4;  // leading and stride byte offsets (see the header)
    const uint64_t mode = w == 64 ? 1 : w == 32 ? 2 : 3;
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (group << 16) | (group << 32) | (mode << 62);
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
// wgmma m64nNk16, bf16 in, fp32 accumulators d[N/2] per thread (accumulate 0: d = A B, else d += A B):
//   wgmma_ss<N>    A and B from shared memory, both K-major (transpose flags 0)
//   wgmma_rs<N>    A from registers (per warp the mma.m16n8k16 A layout), B from shared memory MN-major (flag 1)
//   wgmma_ss_tb<N> A from shared memory K-major, B from shared memory MN-major (flag 1)
// Accumulator operand lists "+f"(d[i]) .. "+f"(d[i + n - 1]) for the wgmma wrappers below
#define SM90_ACC4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define SM90_ACC8(i) SM90_ACC4(i), SM90_ACC4(i + 4)
#define SM90_ACC16(i) SM90_ACC8(i), SM90_ACC8(i + 8)
#define SM90_ACC32(i) SM90_ACC16(i), SM90_ACC16(i + 16)
template <int N, int TB>
struct Sm90WgmmaSS;  // A and B from shared memory, A K-major, B K-major (TB 0) or MN-major (TB 1)
template <int N>
struct Sm90WgmmaRS;  // A from registers, B from shared memory MN-major
template <int TB>
struct Sm90WgmmaSS<128, TB> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
            "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
            "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
            "}, %64, %65, p, 1, 1, 0, %67;\n}\n"
            : SM90_ACC32(0), SM90_ACC32(32)
            : "l"(da), "l"(db), "r"(accumulate), "n"(TB));
    }
};
template <int TB>
struct Sm90WgmmaSS<64, TB> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
            "}, %32, %33, p, 1, 1, 0, %35;\n}\n"
            : SM90_ACC32(0)
            : "l"(da), "l"(db), "r"(accumulate), "n"(TB));
    }
};
template <int TB>
struct Sm90WgmmaSS<32, TB> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
            "}, %16, %17, p, 1, 1, 0, %19;\n}\n"
            : SM90_ACC16(0)
            : "l"(da), "l"(db), "r"(accumulate), "n"(TB));
    }
};
template <int TB>
struct Sm90WgmmaSS<16, TB> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7"
            "}, %8, %9, p, 1, 1, 0, %11;\n}\n"
            : SM90_ACC8(0)
            : "l"(da), "l"(db), "r"(accumulate), "n"(TB));
    }
};
template <>
struct Sm90WgmmaRS<64> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
            "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
            : SM90_ACC32(0)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
    }
};
template <>
struct Sm90WgmmaRS<32> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
            "}, {%16, %17, %18, %19}, %20, p, 1, 1, 1;\n}\n"
            : SM90_ACC16(0)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
    }
};
template <>
struct Sm90WgmmaRS<16> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t db, int accumulate) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
            "%0, %1, %2, %3, %4, %5, %6, %7"
            "}, {%8, %9, %10, %11}, %12, p, 1, 1, 1;\n}\n"
            : SM90_ACC8(0)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
    }
};
template <int N>
static __device__ __forceinline__ void wgmma_ss(float *d, uint64_t da, uint64_t db, int accumulate) {
    Sm90WgmmaSS<N, 0>::run(d, da, db, accumulate);
}
template <int N>
static __device__ __forceinline__ void wgmma_ss_tb(float *d, uint64_t da, uint64_t db, int accumulate) {
    Sm90WgmmaSS<N, 1>::run(d, da, db, accumulate);
}
template <int N>
static __device__ __forceinline__ void wgmma_rs(float *d, const uint32_t *a, uint64_t db, int accumulate) {
    Sm90WgmmaRS<N>::run(d, a, db, accumulate);
}

// Q K^T-shaped products (K = the head dim): acc[64 x N] = A[64 rows from a_r0 of an a_rows tile] B^T[N rows from
// b_r0 of a b_rows tile], HDP/16 k-steps walking the atoms (A and B both K-major).
template <class T, int N>
static __device__ __forceinline__ void wgmma_over_hd(float *acc, uint32_t a_tile, int a_rows, int a_r0,
                                                     uint32_t b_tile, int b_rows, int b_r0) {
#pragma unroll
    for (int kk = 0; kk < T::HDP / 16; kk++) {
        const int a = T::k_atom(kk), w = T::w(a);
        const uint32_t da = a_tile + T::region(a, a_rows) + a_r0 * w * 2 + T::k_off(kk);
        const uint32_t db = b_tile + T::region(a, b_rows) + b_r0 * w * 2 + T::k_off(kk);
        wgmma_ss<N>(acc, gmma_desc(da, w), gmma_desc(db, w), kk > 0);
    }
}
// P V-shaped products (N = the head dim): acc[64 x HDP] += A[64 x 16] (registers a4) B[16 rows from krow of a
// b_rows tile][HDP], one wgmma per atom (B MN-major); the accumulators of atom a start at acc[a * A0 / 2].
template <class T, int A = 0>
static __device__ __forceinline__ void wgmma_rs_atoms(float *acc, const uint32_t *a4, uint32_t b_tile, int b_rows,
                                                      int krow) {
    if constexpr (A < T::NATOM) {
        constexpr int W = T::w(A);
        wgmma_rs<W>(acc + A * T::A0 / 2, a4, gmma_desc(b_tile + T::region(A, b_rows) + krow * W * 2, W), 1);
        wgmma_rs_atoms<T, A + 1>(acc, a4, b_tile, b_rows, krow);
    }
}
static __device__ __forceinline__ void setmaxnreg_producer(void) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
}
static __device__ __forceinline__ void setmaxnreg_consumer(void) {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
}
#endif  // SM90_DEVICE_CODE

// ---------------------------------------------------------------- the forward kernel
struct Sm90Params {
    bf16 *out;   // [B,N,H,hd]
    float *lse;  // [B,H,N] or NULL
    int N, H;
    int F;             // frame_tokens (0: no mask)
    float scale_log2;  // log2(e) / sqrt(hd)
};

// The key limit of query row i: keys >= it get no weight (N, or with the mask the end of i's frame).
static __host__ __device__ __forceinline__ int sm90_key_limit(int i, int N, int F) {
    if (F <= 0) return N;
    const long long end = ((long long)i / F + 1) * F;
    return end < N ? (int)end : N;
}
// The first query tile (of bm rows) that can see key n0: the one holding the first query of n0's frame.
static __host__ __device__ __forceinline__ int sm90_first_query_tile(int n0, int F, int bm) {
    return F > 0 ? (n0 / F) * F / bm : 0;
}
// The forward CTA of query rows [m0, m0 + SM90_BM): key tiles up to its last row's limit (with the mask, the tiles
// wholly in the future of every row are neither loaded nor computed).
static __host__ __device__ __forceinline__ int sm90_fwd_key_tiles(int m0, int N, int F) {
    const int last = (m0 + SM90_BM < N ? m0 + SM90_BM : N) - 1;
    return (sm90_key_limit(last, N, F) + SM90_BN - 1) / SM90_BN;
}

#if SM90_DEVICE_CODE
// The producer: one thread loads Q (both consumers' 64-row boxes), then every K/V tile into the ring.
template <class T>
static __device__ __forceinline__ void sm90_produce(const Sm90Maps *map, uint32_t sq, uint32_t sk0, uint32_t qbar,
                                                    uint32_t full0, uint32_t empty0, int m0, int h, int b, int H,
                                                    int n_tiles) {
    constexpr int S = T::FWD_STAGES;
    mbar_expect_tx(qbar, T::F_Q_BYTES);
    tma_load_rows<T>(sq, SM90_BM, 0, map, h, m0, b, qbar);
    tma_load_rows<T>(sq, SM90_BM, SM90_BOX, map, h, m0 + SM90_BOX, b, qbar);
    for (int j = 0; j < n_tiles; j++) {
        const int s = j % S;
        // stage s was last filled for tile j - S: wait until both consumers released it
        if (j >= S) mbar_wait(empty0 + 8 * s, (uint32_t)((j / S - 1) & 1));
        const uint32_t full = full0 + 8 * s, k = sk0 + (uint32_t)s * 2 * T::F_TILE_BYTES, v = k + T::F_TILE_BYTES;
        mbar_expect_tx(full, 2 * T::F_TILE_BYTES);
        for (int half = 0; half < SM90_BN / SM90_BOX; half++) {
            const int row = j * SM90_BN + half * SM90_BOX;
            tma_load_rows<T>(k, SM90_BN, half * SM90_BOX, map, H + h, row, b, full);
            tma_load_rows<T>(v, SM90_BN, half * SM90_BOX, map, 2 * H + h, row, b, full);
        }
    }
}

// One consumer warpgroup c: 64 query rows. Per thread (lane = 4g + t, warp w of the warpgroup): rows w*16 + g and
// w*16 + g + 8 (r = 0, 1); accumulator element 4c' + 2r + e is column 8c' + 2t + e of row r (the wgmma D layout;
// across the atoms of O the fragments follow one another, so o[] reads as one [HDP] fragment).
template <class T>
static __device__ __forceinline__ void sm90_consume(const Sm90Params &p, uint32_t sq, int c, uint32_t sk0,
                                                    uint32_t qbar, uint32_t full0, uint32_t empty0, int row0, int h,
                                                    int b, int n_tiles) {
    constexpr int S = T::FWD_STAGES, HD = T::D;
    const int lane = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = lane / 4, t = lane % 4;
    float o[T::HDP / 2];  // O [64 x HDP] fragment, unnormalised
#pragma unroll
    for (int i = 0; i < T::HDP / 2; i++) o[i] = 0.f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};  // log2-domain row max; this lane's row sum
    const int lim[2] = {sm90_key_limit(row0 + 16 * w + g, p.N, p.F), sm90_key_limit(row0 + 16 * w + g + 8, p.N, p.F)};
    const int lim_lo = min(lim[0], lim[1]);
    mbar_wait(qbar, 0);
    for (int j = 0; j < n_tiles; j++) {
        const int s = j % S;
        const uint32_t k = sk0 + (uint32_t)s * 2 * T::F_TILE_BYTES, v = k + T::F_TILE_BYTES;
        mbar_wait(full0 + 8 * s, (uint32_t)((j / S) & 1));
        float sc[64];  // S [64 x 128] fragment
        wgmma_fence();
        wgmma_over_hd<T, SM90_BN>(sc, sq, SM90_BM, SM90_BOX * c, k, SM90_BN, 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(sc);
        const int key0 = j * SM90_BN + 2 * t;
        if ((j + 1) * SM90_BN > lim_lo) {  // keys past a row's limit (>= N: zero-filled; later frames) get no weight
#pragma unroll
            for (int cc = 0; cc < SM90_BN / 8; cc++)
#pragma unroll
                for (int r = 0; r < 2; r++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        if (key0 + 8 * cc + e >= lim[r]) sc[4 * cc + 2 * r + e] = -INFINITY;
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = -INFINITY;
#pragma unroll
            for (int cc = 0; cc < SM90_BN / 8; cc++)
                mx = fmaxf(mx, fmaxf(sc[4 * cc + 2 * r], sc[4 * cc + 2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            // finite: tile 0 comes first and key 0 is visible to every row; a later tile wholly masked for this
            // row (mx = -inf) leaves m_run, alpha = 1 and p = 0
            const float m_new = fmaxf(m_run[r], mx * p.scale_log2);
            const float alpha = exp2f(m_run[r] - m_new);
            float sum = 0.f;
#pragma unroll
            for (int cc = 0; cc < SM90_BN / 8; cc++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float pe = exp2f(fmaf(sc[4 * cc + 2 * r + e], p.scale_log2, -m_new));
                    sc[4 * cc + 2 * r + e] = pe;
                    sum += pe;
                }
            l_run[r] = l_run[r] * alpha + sum;
            m_run[r] = m_new;
#pragma unroll
            for (int cc = 0; cc < T::HDP / 8; cc++) o[4 * cc + 2 * r] *= alpha, o[4 * cc + 2 * r + 1] *= alpha;
        }
        // P as A fragments: k-step q (keys 16q..16q+15) = score n8-blocks 2q and 2q+1
        uint32_t pa[32];
#pragma unroll
        for (int q = 0; q < SM90_BN / 16; q++)
#pragma unroll
            for (int i = 0; i < 4; i++) pa[4 * q + i] = cuda_bf16x2_bits(sc[8 * q + 2 * i], sc[8 * q + 2 * i + 1]);
        wgmma_fence();
#pragma unroll
        for (int q = 0; q < SM90_BN / 16; q++) wgmma_rs_atoms<T>(o, &pa[4 * q], v, SM90_BN, 16 * q);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(o);
        mbar_arrive(empty0 + 8 * s);
    }
    // epilogue: out = O / l (bf16 pairs, columns < hd), lse = (m + log2 l) ln 2
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = l_run[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = row0 + 16 * w + g + 8 * r;
        if (row >= p.N) continue;
        const float inv = 1.f / l;
        bf16 *dst = p.out + (((size_t)b * p.N + row) * p.H + h) * HD + 2 * t;
#pragma unroll
        for (int cc = 0; cc < T::HDP / 8; cc++)
            if (8 * cc < HD)
                *reinterpret_cast<uint32_t *>(dst + 8 * cc) =
                    cuda_bf16x2_bits(o[4 * cc + 2 * r] * inv, o[4 * cc + 2 * r + 1] * inv);
        if (p.lse && t == 0) p.lse[((size_t)b * p.H + h) * p.N + row] = (m_run[r] + log2f(l)) * SM90_LN2;
    }
}
#endif  // SM90_DEVICE_CODE

// grid (ceil(N/128), B*H), 384 threads, T::F_SMEM bytes of dynamic shared memory.
template <int HD>
static __global__ void __launch_bounds__(SM90_THREADS, 1)
    attn_fwd_sm90_kernel(const __grid_constant__ Sm90Maps map, const Sm90Params p) {
#if SM90_DEVICE_CODE
    using T = Sm90Traits<HD>;
    extern __shared__ __align__(1024) unsigned char sm90_smem_raw[];
    const uint32_t base = (smem_addr(sm90_smem_raw) + 1023u) & ~1023u;
    const uint32_t sq = base, sk0 = base + T::F_Q_BYTES, bars = base + T::F_BAR_OFF;
    const uint32_t full0 = bars, empty0 = bars + 8 * T::FWD_STAGES, qbar = bars + 16 * T::FWD_STAGES;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, m0 = blockIdx.x * SM90_BM, wg = threadIdx.x / 128;
    const int n_tiles = sm90_fwd_key_tiles(m0, p.N, p.F);
    if (threadIdx.x == 0) {
        for (int s = 0; s < T::FWD_STAGES; s++) {
            mbar_init(full0 + 8 * s, 1);         // the producer's arrive.expect_tx, then the bytes
            mbar_init(empty0 + 8 * s, 2 * 128);  // every consumer thread arrives after its last wgmma read
        }
        mbar_init(qbar, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (wg == 0) {  // the producer returns here: the consumers' code below is a region of 240 registers
        setmaxnreg_producer();
        if (threadIdx.x == 0) sm90_produce<T>(&map, sq, sk0, qbar, full0, empty0, m0, h, b, p.H, n_tiles);
        return;
    }
    setmaxnreg_consumer();
    sm90_consume<T>(p, sq, wg - 1, sk0, qbar, full0, empty0, m0 + (wg - 1) * SM90_BOX, h, b, n_tiles);
#endif
}

// ================================================================ the backward (sm_90a)
// Contract as cuda_attention_bwd (attention.cu): dqkv [B,N,3,H,hd] bf16 +=, dout/out [B,N,H,hd], lse [B,H,N] from
// the forward, D [B,H,N] = rowsum(dout * out) already computed by attention.cu's pre-pass; dQ, dK scaled by
// 1/sqrt(hd); frame_tokens F > 0: the frame-causal mask (see the header).
//
// Kernel 1, a CTA = 128 keys of one (b,h) (FA3 style: dK, dV stay in registers over every query tile):
//   warpgroup 0, producer warp: K and V of the tile once (64-row boxes per atom on kvbar); then per query tile of
//     64 rows (from the first that sees the CTA's keys) the Q boxes (qkv maps) and the dO boxes (dout maps) into a
//     ring of BWD_STAGES, and the tile's lse * log2(e) (+inf past N, so those rows get P = 0 with no mask) and D
//     rows by plain stores of its 32 lanes; full[s] completes on 32 arrivals (lane 0's carries the expected
//     bytes) plus the TMA bytes. setmaxnreg gives its registers away.
//   warpgroups 1, 2, consumers: 64 keys each (rows w*16 + g + 8r of S^T, as the forward's query rows). Per tile:
//     S^T = K Q^T and dP^T = V dO^T by HDP/16 + HDP/16 wgmma m64n64k16 (both operands from shared memory,
//     K-major, atom by atom); P^T = exp2(S^T scale log2e - lse log2e) (0 for keys >= N and, masked, for queries
//     before the key's frame), dS^T = P^T (dP^T - D) in registers; dV += P^T dO and dK += dS^T Q by 4 + 4 k-steps
//     of one wgmma per atom (A from registers, dO and Q MN-major); the stage is released; dS^T is written
//     transposed (stmatrix .trans) as dS [64 queries][128 keys] bf16 into a double-buffered, 128-byte swizzled
//     tile (consumer c writes keys 64c..64c+63, one 8 KiB K-major region); a named barrier over the 256 consumer
//     threads; then dQ [64 x HDP] = dS K over the CTA's 128 keys by 8 k-steps, the columns split between the two
//     consumers (Sm90DqCols: one atom each where there are two, else each half of the one atom: B = K MN-major
//     from the half's byte offset inside its swizzled rows), stored as an fp32 partial for this key tile:
//     partial [key tile][B*H][N][hd] in the workspace (no atomics: deterministic).
//   epilogue: dqkv[k] += dK / sqrt(hd), dqkv[v] += dV (bf16 pairs from the fragments; keys >= N not stored).
// Kernel 2: dqkv[q] += (sum over the key tiles that saw the row, in order, of partial) / sqrt(hd), one thread per
// pair of columns.
// Shared memory (1024-byte aligned base, Sm90Traits B_*): K, V [128][HDP]; Q[s], dO[s] [64][HDP]; dS[2]
// [64][128] (16384 each); rows[s] (lse, D: 64 floats each); mbarriers full[s], empty[s], kv.
#define SM90B_BM 64                     // query rows per streamed tile
#define SM90B_DS_REGION 8192            // one consumer's 64 keys of a dS buffer: [64 queries][64 keys] bf16
#define SM90B_WS_CAP ((size_t)3 << 30)  // largest dQ partial workspace asked for (3 GiB); above, the mma.sync path

struct Sm90BwdParams {
    bf16 *dqkv;         // [B,N,3,H,hd] += (dK, dV by kernel 1)
    const float *lse;   // [B,H,N] natural log
    const float *D;     // [B,H,N]
    float *partial;     // [n_kt][B*H][N][hd] fp32 dQ partials (unscaled), or with sem: [1][B*H][N][hd] the sum
    int *sem;           // NULL, or "ordered": [B*H][n_q] the key tile whose turn it is to add into query tile
    int N, H;
    int F;              // frame_tokens (0: no mask)
    float scale;        // 1 / sqrt(hd)
    float scale_log2;   // log2(e) / sqrt(hd)
};

// Consumer C's columns of dQ [64 x HDP]: atom C where there are two atoms, else half C of the only atom.
template <class T, int C>
struct Sm90DqCols {
    static_assert(T::NATOM <= 2, "dQ split for at most two atoms");
    static constexpr int ATOM = T::NATOM == 1 ? 0 : C;
    static constexpr int W = T::w(ATOM);                       // the atom's width (its swizzle)
    static constexpr int N = T::NATOM == 1 ? W / 2 : W;        // columns this consumer computes (wgmma N)
    static constexpr int OFF = T::NATOM == 1 ? C * W / 2 : 0;  // first of them inside the atom
    static constexpr int D0 = ATOM * T::A0 + OFF;              // first of them in the head dim
};

// The key tiles whose dQ partials hold query row i: those that visit its query tile, a prefix 0 .. n-1 of the key
// tiles (sm90_first_query_tile never decreases with the key tile); every key tile without the mask.
static __host__ __device__ __forceinline__ int sm90_dq_key_tiles(int i, int N, int F) {
    const int n_kt = (N + SM90_BN - 1) / SM90_BN;
    if (F <= 0) return n_kt;
    int n = 0;
    while (n < n_kt && sm90_first_query_tile(n * SM90_BN, F, SM90B_BM) <= i / SM90B_BM) n++;
    return n;
}

#if SM90_DEVICE_CODE
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

// The producer warp (all 32 lanes; lane 0 issues the copies): K, V once, then Q, dO, lse, D per query tile from it0.
template <class T>
static __device__ __forceinline__ void sm90b_produce(const Sm90Maps *qmap, const Sm90Maps *omap,
                                                     const Sm90BwdParams &p, uint32_t base, int n0, int h, int b,
                                                     int it0, int n_q) {
    constexpr int S = T::BWD_STAGES;
    const int lane = threadIdx.x % 32;
    const uint32_t bars = base + T::B_OFF_BAR, full0 = bars, empty0 = bars + 8 * S, kvbar = bars + 16 * S;
    const size_t row_off = ((size_t)b * p.H + h) * p.N;
    float *rows = reinterpret_cast<float *>(__cvta_shared_to_generic(base + T::B_OFF_ROWS));  // [S][lse 64, D 64]
    if (lane == 0) {
        mbar_expect_tx(kvbar, 2 * T::B_KV_BYTES);
        for (int half = 0; half < SM90_BN / SM90_BOX; half++) {
            const int row = n0 + half * SM90_BOX;
            tma_load_rows<T>(base, SM90_BN, half * SM90_BOX, qmap, p.H + h, row, b, kvbar);
            tma_load_rows<T>(base + T::B_OFF_V, SM90_BN, half * SM90_BOX, qmap, 2 * p.H + h, row, b, kvbar);
        }
    }
    for (int it = it0; it < n_q; it++) {
        const int li = it - it0, s = li % S;
        // stage s last held tile li - S: every consumer thread must have released it
        if (li >= S) mbar_wait(empty0 + 8 * s, (uint32_t)((li / S - 1) & 1));
        float *r = rows + s * 2 * SM90B_BM;
#pragma unroll
        for (int k = 0; k < SM90B_BM / 32; k++) {
            const int i = it * SM90B_BM + lane + 32 * k;
            r[lane + 32 * k] = i < p.N ? p.lse[row_off + i] * SM90_LOG2E : INFINITY;  // +inf: P = 0 past N
            r[SM90B_BM + lane + 32 * k] = i < p.N ? p.D[row_off + i] : 0.f;
        }
        const uint32_t full = full0 + 8 * s;
        if (lane == 0) {  // arrive (release: this lane's row stores) with the bytes to expect, then the copies
            mbar_expect_tx(full, 2 * T::B_QT_BYTES);
            tma_load_rows<T>(base + T::B_OFF_Q + (uint32_t)s * T::B_QT_BYTES, SM90B_BM, 0, qmap, h,
                             it * SM90B_BM, b, full);
            tma_load_rows<T>(base + T::B_OFF_DO + (uint32_t)s * T::B_QT_BYTES, SM90B_BM, 0, omap, h,
                             it * SM90B_BM, b, full);
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
// so the sum is in a fixed order (deterministic) in one [B*H][N][hd] buffer instead of n_kt partials. One thread
// waits for its turn (acquire), a named barrier lets the other consumers on; after the adds, every thread fences,
// the barrier, one thread passes the turn (release). Relies on CTAs of lower blockIdx.x (key tile) being scheduled
// no later than higher ones (as FA3's deterministic mode does); a wait that never ends gives up (sm90_hung).
// With the mask the key tiles that visit a query tile are a prefix 0..k (the first query tile a key tile visits
// never decreases with kt), so the turns still pass 0, 1, 2, ... and no tile waits on one that skips it.
static __device__ __forceinline__ void sm90b_turn_wait(const int *sem, int kt) {
    if (threadIdx.x == 128) {
        const long long t0 = clock64();
        for (;;) {
            int v;
            asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(sem) : "memory");
            if (v == kt || sm90_hung(t0)) break;
        }
    }
    consumers_sync();
}
static __device__ __forceinline__ void sm90b_turn_pass(int *sem, int kt) {
    __threadfence();
    consumers_sync();
    if (threadIdx.x == 128) asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(sem), "r"(kt + 1) : "memory");
}

// Consumer C's dQ columns for query tile it: dQ = dS K (A = dS from buffer ds, K-major, 128-byte swizzle; B = the
// K tile MN-major from the columns' atom), then this key tile's partial (or the ordered sum) for rows < N.
template <class T, int C>
static __device__ __forceinline__ void sm90b_dq(const Sm90BwdParams &p, uint32_t base, uint32_t ds, int w, int g,
                                                int t, int bh, int kt, int it, int n_q) {
    using Q = Sm90DqCols<T, C>;
    constexpr int HD = T::D;
    float dq[Q::N / 2];  // [64 queries x Q::N] fragment, head-dim columns Q::D0 ..
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < SM90_BN / 16; kk++) {  // 16 keys per k-step: dS region kk/4, +32 B inside its rows
        const uint32_t kb = base + T::region(Q::ATOM, SM90_BN) + 16 * kk * Q::W * 2 + Q::OFF * 2;
        wgmma_ss_tb<Q::N>(dq, gmma_desc(ds + (uint32_t)(kk / 4) * SM90B_DS_REGION + 32 * (kk % 4), 64),
                          gmma_desc(kb, Q::W), kk > 0);
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(dq);
    // this key tile's dQ tile: its own partial, or (ordered) added into the sum in key-tile order; L2 only (cg):
    // another SM wrote the sum last
    int *sem = p.sem ? p.sem + (size_t)bh * n_q + it : NULL;
    if (sem) sm90b_turn_wait(sem, kt);
    const bool add = sem && kt > 0;
    float *tile = p.partial + ((size_t)(sem ? 0 : kt) * gridDim.y + bh) * p.N * HD;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = it * SM90B_BM + 16 * w + g + 8 * r;
        if (i >= p.N) continue;
        float2 *dst = reinterpret_cast<float2 *>(tile + (size_t)i * HD + Q::D0 + 2 * t);
#pragma unroll
        for (int cc = 0; cc < Q::N / 8; cc++) {
            if (Q::D0 + 8 * cc >= HD) continue;  // padding columns (hd 88: 88..95)
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

// One consumer warpgroup c: keys n0 + 64c .. +63. Fragment element 4c' + 2r + e: key row w*16 + g + 8r, column
// (query, or d for dK/dV) 8c' + 2t + e.
template <class T>
static __device__ __forceinline__ void sm90b_consume(const Sm90BwdParams &p, uint32_t base, int c, int n0, int h,
                                                     int b, int kt, int it0, int n_q) {
    constexpr int S = T::BWD_STAGES, HD = T::D;
    const int lane = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = lane / 4, t = lane % 4;
    const uint32_t bars = base + T::B_OFF_BAR, full0 = bars, empty0 = bars + 8 * S, kvbar = bars + 16 * S;
    const float *rows = reinterpret_cast<const float *>(__cvta_shared_to_generic(base + T::B_OFF_ROWS));
    const int bh = b * p.H + h;
    // keys >= N (zero rows from TMA) get P = 0 explicitly: their exp2(-lse) alone could overflow to inf, and inf
    // times the zero K row would put NaN into dQ; with the mask, queries before the key's frame (i < qmin) too
    const int key0 = n0 + 64 * c + 16 * w + g;
    const bool key_ok[2] = {key0 < p.N, key0 + 8 < p.N};
    const int qmin[2] = {p.F > 0 ? key0 / p.F * p.F : 0, p.F > 0 ? (key0 + 8) / p.F * p.F : 0};
    float dk[T::HDP / 2], dv[T::HDP / 2];  // [64 keys x HDP] fragments
#pragma unroll
    for (int i = 0; i < T::HDP / 2; i++) dk[i] = dv[i] = 0.f;
    mbar_wait(kvbar, 0);
    for (int it = it0; it < n_q; it++) {
        const int li = it - it0, s = li % S;
        const uint32_t sq = base + T::B_OFF_Q + (uint32_t)s * T::B_QT_BYTES;
        const uint32_t so = base + T::B_OFF_DO + (uint32_t)s * T::B_QT_BYTES;
        mbar_wait(full0 + 8 * s, (uint32_t)((li / S) & 1));
        float st[32], dp[32];  // S^T, dP^T [64 keys x 64 queries]
        wgmma_fence();
        wgmma_over_hd<T, 64>(st, base, SM90_BN, 64 * c, sq, SM90B_BM, 0);
        wgmma_over_hd<T, 64>(dp, base + T::B_OFF_V, SM90_BN, 64 * c, so, SM90B_BM, 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(st);
        fence_regs(dp);
        // P^T and dS^T; the columns are queries, their lse and D rows from the stage
        const float *lr = rows + s * 2 * SM90B_BM, *dr = lr + SM90B_BM;
        const bool mask_q = it * SM90B_BM < qmin[1];  // some query of the tile precedes a key's frame
#pragma unroll
        for (int cc = 0; cc < SM90B_BM / 8; cc++) {
            const float2 l2 = *reinterpret_cast<const float2 *>(lr + 8 * cc + 2 * t);
            const float2 d2 = *reinterpret_cast<const float2 *>(dr + 8 * cc + 2 * t);
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int i = 4 * cc + 2 * r + e, query = it * SM90B_BM + 8 * cc + 2 * t + e;
                    const bool ok = key_ok[r] && (!mask_q || query >= qmin[r]);
                    const float pv = ok ? exp2f(fmaf(st[i], p.scale_log2, -(e ? l2.y : l2.x))) : 0.f;
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
        for (int q = 0; q < SM90B_BM / 16; q++) wgmma_rs_atoms<T>(dv, &pa[4 * q], so, SM90B_BM, 16 * q);
#pragma unroll
        for (int q = 0; q < SM90B_BM / 16; q++) wgmma_rs_atoms<T>(dk, &sa[4 * q], sq, SM90B_BM, 16 * q);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(dv);
        fence_regs(dk);
        mbar_arrive(empty0 + 8 * s);  // Q, dO and the rows of stage s are no longer read
        // dS into buffer li&1 (the other consumer may still read buffer (li-1)&1), then dQ = dS K
        const uint32_t ds = base + T::B_OFF_DS + (uint32_t)(li & 1) * T::B_DS_BYTES;
        sm90b_store_ds(ds + (uint32_t)c * SM90B_DS_REGION, sa, w, lane);
        fence_proxy_async();
        consumers_sync();
        if (c == 0) sm90b_dq<T, 0>(p, base, ds, w, g, t, bh, kt, it, n_q);
        else sm90b_dq<T, 1>(p, base, ds, w, g, t, bh, kt, it, n_q);
    }
    // dqkv[k] += dK / sqrt(hd), dqkv[v] += dV (columns < hd)
    const size_t ld = (size_t)3 * p.H * HD;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = key0 + 8 * r;
        if (key >= p.N) continue;
        bf16 *gk = p.dqkv + ((size_t)b * p.N + key) * ld + ((size_t)p.H + h) * HD + 2 * t;
        bf16 *gv = gk + (size_t)p.H * HD;
#pragma unroll
        for (int cc = 0; cc < T::HDP / 8; cc++) {
            if (8 * cc >= HD) continue;
            const float2 ok = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(gk + 8 * cc));
            const float2 ov = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(gv + 8 * cc));
            *reinterpret_cast<uint32_t *>(gk + 8 * cc) =
                cuda_bf16x2_bits(ok.x + dk[4 * cc + 2 * r] * p.scale, ok.y + dk[4 * cc + 2 * r + 1] * p.scale);
            *reinterpret_cast<uint32_t *>(gv + 8 * cc) =
                cuda_bf16x2_bits(ov.x + dv[4 * cc + 2 * r], ov.y + dv[4 * cc + 2 * r + 1]);
        }
    }
}
#endif  // SM90_DEVICE_CODE

// grid (ceil(N/128) key tiles, B*H), 384 threads, T::B_SMEM bytes of dynamic shared memory.
template <int HD>
static __global__ void __launch_bounds__(SM90_THREADS, 1)
    attn_bwd_sm90_kernel(const __grid_constant__ Sm90Maps qmap, const __grid_constant__ Sm90Maps omap,
                         const Sm90BwdParams p) {
#if SM90_DEVICE_CODE
    using T = Sm90Traits<HD>;
    constexpr int S = T::BWD_STAGES;
    extern __shared__ __align__(1024) unsigned char sm90b_smem_raw[];
    const uint32_t base = (smem_addr(sm90b_smem_raw) + 1023u) & ~1023u;
    const uint32_t bars = base + T::B_OFF_BAR;
    const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H, kt = blockIdx.x, n0 = kt * SM90_BN;
    // with the mask, query tiles wholly before the CTA's first frame are neither loaded nor computed
    const int n_q = (p.N + SM90B_BM - 1) / SM90B_BM, it0 = sm90_first_query_tile(n0, p.F, SM90B_BM);
    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) {
            mbar_init(bars + 8 * s, 32);             // the producer warp's lanes (lane 0: + bytes)
            mbar_init(bars + 8 * (S + s), 2 * 128);  // every consumer thread, after its last read
        }
        mbar_init(bars + 16 * S, 1);  // K, V
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (wg == 0) {  // the producer returns here: the consumers' code below is a region of 240 registers
        setmaxnreg_producer();
        if (threadIdx.x < 32) sm90b_produce<T>(&qmap, &omap, p, base, n0, h, b, it0, n_q);
        return;
    }
    setmaxnreg_consumer();
    sm90b_consume<T>(p, base, wg - 1, n0, h, b, kt, it0, n_q);
#endif
}

// dqkv[q] (b, i, h, 2j..2j+1) += (sum over key tiles kt = 0.. in order of partial[kt][bh][i][2j..]) * scale; with
// the mask only the key tiles that visited row i's query tile wrote it (a prefix of kt, see sm90b_turn_wait).
static __global__ void attn_bwd_sm90_dq_reduce_kernel(bf16 *dqkv, const float *partial, int B, int N, int H, int hd,
                                                      int n_kt, int F, float scale) {
#if SM90_DEVICE_CODE
    const int half = hd / 2;
    const size_t pairs = (size_t)B * H * N * half;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= pairs) return;
    const int j = (int)(idx % half);
    const size_t row = idx / half;  // bh * N + i
    const int i = (int)(row % N), bh = (int)(row / N), b = bh / H, h = bh % H;
    const int n_sum = F > 0 ? sm90_dq_key_tiles(i, N, F) : n_kt;  // ordered: n_kt 1 (the one sum) and F 0
    const size_t stride = (size_t)B * H * N * hd;
    const float *src = partial + row * hd + 2 * j;
    float sx = 0.f, sy = 0.f;
    for (int kt = 0; kt < n_sum; kt++) {
        const float2 v = *reinterpret_cast<const float2 *>(src + (size_t)kt * stride);
        sx += v.x, sy += v.y;
    }
    bf16 *dst = dqkv + (((size_t)b * N + i) * 3 * H + h) * hd + 2 * j;
    const float2 old = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dst));
    *reinterpret_cast<uint32_t *>(dst) = cuda_bf16x2_bits(old.x + sx * scale, old.y + sy * scale);
#endif
}

// ---------------------------------------------------------------- host side
static int sm90_env_on(void) {
    const char *env = getenv("JEPA_ATTN_SM90");  // read at every call, as JEPA_ATTN_SCALAR
    return env && strcmp(env, "1") == 0;
}

// Whether hd has an instantiation (SM90_HDS).
static int sm90_hd_ok(int hd) {
    switch (hd) {
#define SM90_HD_CASE(d) case d:
        SM90_HDS(SM90_HD_CASE)
#undef SM90_HD_CASE
        return 1;
        default: return 0;
    }
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

// A [B,N,slots,hd] bf16 tensor (qkv: slots 3H; dout: H) as a 4D map {d hd, slot, n N, b B} with box_w x 1 x 64 x 1
// boxes and the swizzle of a box_w-wide atom (64: 128 B, 32: 64 B, 16: 32 B; the box's row bytes equal the swizzle
// span, as TMA requires <=). Elements of a box past hd (hd 24, 88) and rows past N are zero-filled.
static CUtensorMap sm90_rows_map(const bf16 *base, int B, int N, int slots, int hd, int box_w) {
    CUtensorMap map;
    const cuuint64_t dims[4] = {(cuuint64_t)hd, (cuuint64_t)slots, (cuuint64_t)N, (cuuint64_t)B};
    const cuuint64_t row = (cuuint64_t)hd * 2;  // bytes between heads/slots: a multiple of 16 for hd % 8 == 0
    const cuuint64_t strides[3] = {row, row * slots, row * slots * (cuuint64_t)N};
    const cuuint32_t box[4] = {(cuuint32_t)box_w, 1, SM90_BOX, 1}, elem_strides[4] = {1, 1, 1, 1};
    const CUtensorMapSwizzle swz = box_w == 64   ? CU_TENSOR_MAP_SWIZZLE_128B
                                   : box_w == 32 ? CU_TENSOR_MAP_SWIZZLE_64B
                                                 : CU_TENSOR_MAP_SWIZZLE_32B;
    const CUresult r = sm90_encode_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, (void *)base, dims, strides, box,
                                        elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swz,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fflush(stdout);
        fprintf(stderr,
                "internal error: %s:%d: cuTensorMapEncodeTiled failed (CUresult %d) for B=%d N=%d slots=%d hd=%d "
                "box %d\n",
                __FILE__, __LINE__, (int)r, B, N, slots, hd, box_w);
        exit(1);
    }
    return map;
}

// The maps of one tensor for head dim HD's atoms.
template <int HD>
static Sm90Maps sm90_maps(const bf16 *base, int B, int N, int slots) {
    using T = Sm90Traits<HD>;
    Sm90Maps m;
    m.main = sm90_rows_map(base, B, N, slots, HD, T::A0);
    m.tail = T::TW > 0 ? sm90_rows_map(base, B, N, slots, HD, T::TW) : m.main;
    return m;
}

template <int HD>
static void sm90_fwd_launch(cudaStream_t s, const Sm90Params &p, const bf16 *qkv, int B) {
    using T = Sm90Traits<HD>;
    const Sm90Maps map = sm90_maps<HD>(qkv, B, p.N, 3 * p.H);
    CUDA_CHECK(cudaFuncSetAttribute(attn_fwd_sm90_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::F_SMEM));
    const dim3 grid((unsigned)((p.N + SM90_BM - 1) / SM90_BM), (unsigned)(B * p.H));
    attn_fwd_sm90_kernel<HD><<<grid, SM90_THREADS, T::F_SMEM, s>>>(map, p);
    CUDA_CHECK_LAUNCH();
}

// Runs the sm_90a forward and returns 1 when it applies (see the header), else returns 0 having done nothing.
extern "C" int cuda_attention_fwd_sm90(cudaStream_t s, bf16 *out, float *lse, const bf16 *qkv, int B, int N, int H,
                                       int hd, int frame_tokens) {
    if (!sm90_env_on() || !sm90_hd_ok(hd) || B <= 0 || N <= 0 || H <= 0) return 0;
    // TMA reads qkv from a 16-byte aligned base (row strides hd * 2, multiples of 16); out is stored as 4-byte pairs
    if (((uintptr_t)qkv & 15) != 0 || ((uintptr_t)out & 15) != 0 || ((uintptr_t)lse & 3) != 0) return 0;
    if (!sm90_device_ok()) return 0;
    Sm90Params p;
    p.out = out;
    p.lse = lse;
    p.N = N;
    p.H = H;
    p.F = frame_tokens > 0 ? frame_tokens : 0;
    p.scale_log2 = (float)(SM90_LOG2E / sqrt((double)hd));
    switch (hd) {
#define SM90_FWD_CASE(d) \
    case d: sm90_fwd_launch<d>(s, p, qkv, B); break;
        SM90_HDS(SM90_FWD_CASE)
#undef SM90_FWD_CASE
        default: return 0;
    }
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

// The sm_90a backward's workspace (past D): partials [n_kt][B*H][N][hd] fp32, n_kt = ceil(N/128), or ordered: the
// sum [B*H][N][hd] fp32 then the turns [B*H][ceil(N/64)] int. 0 where it would pass SM90B_WS_CAP.
static size_t sm90_bwd_ws_bytes(int B, int N, int H, int hd, int ordered) {
    const size_t rows = (size_t)B * H * N * hd * sizeof(float);
    const size_t n_kt = (size_t)(N + SM90_BN - 1) / SM90_BN, n_q = (size_t)(N + SM90B_BM - 1) / SM90B_BM;
    const size_t bytes = ordered ? sm90_round256(rows) + sm90_round256((size_t)B * H * n_q * sizeof(int))
                                 : sm90_round256(n_kt * rows);
    return bytes > SM90B_WS_CAP ? 0 : bytes;
}

// The workspace the sm_90a backward needs beyond attention.cu's own (D). 0 unless JEPA_ATTN_SM90=1 and hd has an
// instantiation (so the default workspace is unchanged). Partials, B24 H16 hd 64: N1568 2.0 GB; N2048 H22 (4.7 GB)
// and N6272 (30 GB) pass the 3 GiB cap and fall back to the mma.sync backward. Ordered: 154 MB at N1568.
extern "C" size_t cuda_attention_bwd_sm90_workspace(int B, int N, int H, int hd) {
    if (!sm90_env_on() || !sm90_hd_ok(hd) || B <= 0 || N <= 0 || H <= 0) return 0;
    return sm90_bwd_ws_bytes(B, N, H, hd, sm90_dq_ordered());
}

template <int HD>
static void sm90_bwd_launch(cudaStream_t s, const Sm90BwdParams &p, const bf16 *qkv, const bf16 *dout, int B) {
    using T = Sm90Traits<HD>;
    const Sm90Maps qmap = sm90_maps<HD>(qkv, B, p.N, 3 * p.H), omap = sm90_maps<HD>(dout, B, p.N, p.H);
    CUDA_CHECK(cudaFuncSetAttribute(attn_bwd_sm90_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::B_SMEM));
    const dim3 grid((unsigned)((p.N + SM90_BN - 1) / SM90_BN), (unsigned)(B * p.H));
    attn_bwd_sm90_kernel<HD><<<grid, SM90_THREADS, T::B_SMEM, s>>>(qmap, omap, p);
    CUDA_CHECK_LAUNCH();
}

// Runs the sm_90a backward and returns 1 when it applies (as the forward, and ws_bytes covers the partials), else
// returns 0 having done nothing. D [B,H,N] must already hold rowsum(dout * out); ws: the workspace past D.
extern "C" int cuda_attention_bwd_sm90(cudaStream_t s, bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                                       const float *lse, const float *D, void *ws, size_t ws_bytes, int B, int N,
                                       int H, int hd, int frame_tokens) {
    if (!sm90_env_on() || !sm90_hd_ok(hd) || B <= 0 || N <= 0 || H <= 0) return 0;
    const int ordered = sm90_dq_ordered();
    const size_t need = sm90_bwd_ws_bytes(B, N, H, hd, ordered);
    if (need == 0 || !ws || ws_bytes < need) return 0;
    // TMA bases 16-byte aligned; dqkv pairs and the float2 partials 8-byte aligned
    if (((uintptr_t)qkv & 15) != 0 || ((uintptr_t)dout & 15) != 0 || ((uintptr_t)dqkv & 15) != 0 ||
        ((uintptr_t)ws & 15) != 0)
        return 0;
    if (!sm90_device_ok()) return 0;
    const int n_kt = (N + SM90_BN - 1) / SM90_BN, n_q = (N + SM90B_BM - 1) / SM90B_BM;
    Sm90BwdParams p;
    p.dqkv = dqkv;
    p.lse = lse;
    p.D = D;
    p.partial = (float *)ws;
    p.sem = ordered ? (int *)((char *)ws + sm90_round256((size_t)B * H * N * hd * sizeof(float))) : NULL;
    if (ordered)  // every query tile starts at key tile 0's turn (key tile 0 visits every query tile)
        CUDA_CHECK(cudaMemsetAsync(p.sem, 0, (size_t)B * H * n_q * sizeof(int), s));
    p.N = N;
    p.H = H;
    p.F = frame_tokens > 0 ? frame_tokens : 0;
    p.scale = (float)(1.0 / sqrt((double)hd));
    p.scale_log2 = (float)(SM90_LOG2E / sqrt((double)hd));
    switch (hd) {
#define SM90_BWD_CASE(d) \
    case d: sm90_bwd_launch<d>(s, p, qkv, dout, B); break;
        SM90_HDS(SM90_BWD_CASE)
#undef SM90_BWD_CASE
        default: return 0;
    }
    const size_t pairs = (size_t)B * H * N * (hd / 2);
    // the sum's buffers: n_kt partials (with the mask, each row its prefix), or the one ordered sum
    attn_bwd_sm90_dq_reduce_kernel<<<(unsigned)((pairs + 255) / 256), 256, 0, s>>>(
        dqkv, p.partial, B, N, H, hd, ordered ? 1 : n_kt, ordered ? 0 : p.F, p.scale);
    CUDA_CHECK_LAUNCH();
    sm90_bwd_launches++;
    return 1;
}

// How many backwards took the sm_90a path.
extern "C" long cuda_attention_sm90_bwd_launches(void) { return sm90_bwd_launches; }

// The tile plan of the mask, for the host-only test (tests/test_cuda_attention_sm90.c checks it against the pairs
// the mask leaves): per forward CTA of 128 query rows the key tiles it runs (fwd_tiles[ceil(N/128)]), per backward
// CTA of 128 keys its first query tile of 64 (bwd_first[ceil(N/128)]), per query row the key tiles the dQ reduce
// sums (dq_tiles[N]).
extern "C" void cuda_attention_sm90_tile_plan(int N, int F, int *fwd_tiles, int *bwd_first, int *dq_tiles) {
    for (int t = 0; t * SM90_BN < N; t++) {
        fwd_tiles[t] = sm90_fwd_key_tiles(t * SM90_BM, N, F);
        bwd_first[t] = sm90_first_query_tile(t * SM90_BN, F, SM90B_BM);
    }
    for (int i = 0; i < N; i++) dq_tiles[i] = sm90_dq_key_tiles(i, N, F);
}

// 1 when a wait of an sm_90a kernel gave up since the last call (a pipeline bug: its results are garbage), else 0;
// clears the flag. Synchronises the device.
extern "C" int cuda_attention_sm90_hang_flag(void) {
    int flag = 0;
    const int zero = 0;
    CUDA_CHECK(cudaMemcpyFromSymbol(&flag, sm90_hang_flag, sizeof flag));
    CUDA_CHECK(cudaMemcpyToSymbol(sm90_hang_flag, &zero, sizeof zero));
    return flag;
}
