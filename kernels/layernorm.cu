// layernorm.cu: LayerNorm over the last dimension on bf16 activations with fp32 statistics, the CUDA twin of
// layernorm_cpu.c (torch.nn.LayerNorm: biased variance, rstd = 1/sqrt(var + eps); w and bias NULL = non-affine).
//
// Bytes each kernel must move (R rows of C bf16; w and bias, 2C bytes each, stay in cache):
//   forward   read inp (2 B/elem), write out (2 B/elem), write mean and rstd (8 B/row)          = 4 B/elem
//   backward  read dout, inp (4 B/elem), read and write dinp (+=, 4 B/elem), read mean and rstd (8 B/row),
//             plus the dw/dbias partials (8 B per column per block, written once, read back once) = 8 B/elem
//             (dinp NULL: 4 B/elem; dw and dbias NULL: no partials)
// At the encoder's shape, 37632 rows x 1024: forward 154.4 MB, backward 308.6 MB + ~5 MB of partials.
//
// Vector path (C a multiple of 8, at most 2048, every bf16 pointer 16-byte aligned): a row is C/8 16-byte chunks;
// a row group of L lanes (16 when C <= 384, else 32) owns a row, lane l holding chunks l, l+L, ... (at most V of
// them, V = ceil(C/8/L) <= 8), so every access is a 16-byte load or store and a warp's accesses are contiguous.
//   forward: the row is loaded once into registers (all its chunks in flight at once, and the row group's next row
//     loaded before this one is reduced), mean and variance from the registers (two passes over registers: no
//     cancellation), the output written once. Persistent grid (SM count x resident blocks), row groups walking the
//     rows grid-stride; w and bias read per row from L1.
//   backward: one kernel reads dout, inp, dinp, mean, rstd of each row once (all of the row's chunks in flight at
//     once; w from L1), writes dinp += ... and accumulates the dw/dbias column partials of its rows in shared
//     memory (one slot per row group and column: no atomics). Block b owns the contiguous rows
//     [R*b/G, R*(b+1)/G) of a persistent grid of G blocks; its row groups take them in a fixed interleave and sum
//     in row order (fp32), then the block adds its row groups in order and writes its partials [2, G, C]. A
//     finishing kernel adds the G partials per column in a fixed order, in double, and does dw += (float)sum.
//     Bitwise reproducible for a given GPU model (G is the SM count x resident blocks); a GPU with another SM count
//     rounds dw/dbias differently in the last fp32 bits.
// add_layernorm (cuda_add_layernorm_fwd): the forward's vector kernel with ADD, the row loaded from x and y and
//   summed in registers, the sum written beside the output: 8 B/elem instead of add 6 + forward 4 (the residual
//   stream is written once and not read back), one launch instead of two. Vector path only; otherwise the caller
//   composes the two ops.
// Fallback path (any other C or alignment): one warp per row, scalar bf16 accesses, the row read once per pass
// (mean, variance, output) from L1; dw/dbias by a separate column pass in chunks of LN_CHUNK_ROWS rows, partials
// in a workspace, finished in double in chunk order (a function of R only).
// Tuning round 2 (predictions, H100, 37632 rows, before -> predicted; measured 1: fwd C1024 0.060, fwd+bwd C1024
// 0.186, fwd C384 0.023, fwd+bwd C384 0.079 ms). The backward's main kernel is near 89% of copy already (20-24 warps
// per SM each with 3V 16-byte loads in flight: far more than Little's law asks), so the gap is in the fixed costs
// around it: (1) the old finishing kernel ran C/32 blocks (12 at C384, 32 at C1024) each walking ~G/32 partials
// per thread in a serial chain of L2 round trips, ~4-5 us; now C/8 blocks of 8 columns x 128 partial lanes (48 and
// 128 blocks), all of a lane's loads in flight at once, a fixed shared-memory tree: ~1.5 us. (2) Programmatic
// dependent launch (sm_90+): the backward and the finishing kernel are launched with programmatic stream
// serialization and call griddepcontrol.wait before touching memory; the forward and the backward trigger their
// dependents at entry, so the next kernel's launch and block placement overlap the previous one's tail instead of
// following its completion: ~1-2 us per boundary (two in fwd+bwd: fwd->bwd, bwd->finish). (3) The backward reads
// inp and dout with evict-first hints (__ldcs; their last use), so the partials stay in L2 for the finish.
// Predicted: fwd C1024 0.060 -> 0.060 (unchanged); fwd+bwd C1024 0.186 -> 0.178 (bwd 0.126 -> 0.118, ~2650 GB/s
// with the fwd, 88%); fwd C384 0.023 -> 0.023; fwd+bwd C384 0.079 -> 0.070 (bwd 0.056 -> 0.047, ~2490 GB/s, 83%).
// Workspaces grow on first use (cudaMalloc, see cuda_common.cuh): not thread-safe, one stream.
#include "cuda_common.cuh"

#define LN_WARPS 8          // rows per block in the fallback row kernels (256 threads)
#define LN_COL_THREADS 256  // columns per block in the fallback dw/dbias partial kernel
#define LN_CHUNK_ROWS 256   // rows per partial sum of dw/dbias in the fallback
#define LN_FWD_THREADS 256  // vector forward block
#define LN_BWD_THREADS 128  // vector backward block
#define LN_MAX_V 8          // 16-byte chunks per lane at most: C <= 8 * 32 * LN_MAX_V = 2048 on the vector path

static CudaScratch ln_scratch;

// Programmatic dependent launch (sm_90+; no-ops below): a kernel launched with programmatic stream serialization
// (ln_launch) may be placed while the previous kernel of the stream still runs; ln_pdl_wait blocks until that
// kernel has completed and its memory is visible, so it comes before the kernel's first global memory access.
// ln_pdl_trigger lets the next such kernel be placed early (it still waits for this one to complete).
static __device__ __forceinline__ void ln_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
static __device__ __forceinline__ void ln_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// ================================================================ vector path
// Sum over the L lanes of a row group (L = 16 or 32; the xor tree stays inside the group). Every lane of the warp
// must call it (full mask), so row groups whose row is past the end still take part.
template <int L>
static __device__ __forceinline__ float ln_group_sum(float v) {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ void ln_unpack8(const uint4 u, float f[8]) {
    f[0] = cuda_bf16_lo(u.x), f[1] = cuda_bf16_hi(u.x), f[2] = cuda_bf16_lo(u.y), f[3] = cuda_bf16_hi(u.y);
    f[4] = cuda_bf16_lo(u.z), f[5] = cuda_bf16_hi(u.z), f[6] = cuda_bf16_lo(u.w), f[7] = cuda_bf16_hi(u.w);
}
static __device__ __forceinline__ uint4 ln_pack8(const float f[8]) {
    return make_uint4(cuda_bf16x2_bits(f[0], f[1]), cuda_bf16x2_bits(f[2], f[3]), cuda_bf16x2_bits(f[4], f[5]),
                      cuda_bf16x2_bits(f[6], f[7]));
}

// Bytes: 4 per element (read inp, write out) + 8 per row (mean, rstd); w, bias from cache.
// out = (inp - mean) * rstd * w + bias per row. Row groups of L lanes, 32/L row groups per warp stepping together
// (the warp's loop condition is uniform: the shuffles see the full warp). The next row's chunks are loaded before
// the current row is reduced (two rows in flight per row group); the row stays packed (bf16) in registers and is
// unpacked on use; w and bias come from L1 in the output pass.
template <int L, int V>
static __device__ __forceinline__ void ln_load_row(uint4 (&xv)[V], const bf16 *__restrict__ inp, int r, int R, int C,
                                                   int lane) {
    const int nch = C / 8;
    const uint4 *xr = reinterpret_cast<const uint4 *>(inp + (size_t)r * C);  // [nch]
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int q = k * L + lane;
        xv[k] = r < R && q < nch ? xr[q] : make_uint4(0, 0, 0, 0);
    }
}

// The residual add of add_layernorm: x + y per element in fp32, rounded to bf16 as cuda_add rounds it.
static __device__ __forceinline__ uint4 ln_add8(uint4 a, uint4 b) {
    float fa[8], fb[8];
    ln_unpack8(a, fa);
    ln_unpack8(b, fb);
#pragma unroll
    for (int j = 0; j < 8; j++) fa[j] = fa[j] + fb[j];
    return ln_pack8(fa);
}

// ADD (add_layernorm): the row is sum = bf16(inp + y), written to `sum` beside the output and normalised from the
// rounded values, so both equal cuda_add then cuda_layernorm_fwd bit for bit. The next row's y chunks travel with
// its inp chunks and are added once they are needed (3V 16-byte registers per lane instead of 2V).
// Bytes with ADD: 8 per element (read inp, y; write sum, out) + 8 per row, against 6 + 4 for the two launches.
template <int L, int V, bool ADD>
static __global__ void __launch_bounds__(LN_FWD_THREADS)
    layernorm_fwd_vec_kernel(bf16 *__restrict__ out, float *__restrict__ mean, float *__restrict__ rstd,
                             const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                             const bf16 *__restrict__ bias, int R, int C, float eps, bf16 *__restrict__ sum,
                             const bf16 *__restrict__ y) {
    constexpr int P = 32 / L;                 // rows per warp at a time
    constexpr int ROWS = LN_FWD_THREADS / L;  // rows per block at a time
    ln_pdl_wait();     // launched as a dependent (ln_launch): the previous kernel complete before any global access
    ln_pdl_trigger();  // a backward launched next may be placed now (it waits for this grid to complete)
    const int lane = threadIdx.x % L, sub = (threadIdx.x % 32) / L, warp = threadIdx.x / 32;
    const int nch = C / 8;
    const uint4 *w4 = reinterpret_cast<const uint4 *>(w), *b4 = reinterpret_cast<const uint4 *>(bias);
    const int step = gridDim.x * ROWS;
    int r0 = (blockIdx.x * (LN_FWD_THREADS / 32) + warp) * P;
    uint4 xv[V];
    ln_load_row<L, V>(xv, inp, r0 + sub, R, C, lane);
    if constexpr (ADD) {
        uint4 yv[V];
        ln_load_row<L, V>(yv, y, r0 + sub, R, C, lane);
#pragma unroll
        for (int k = 0; k < V; k++) xv[k] = ln_add8(xv[k], yv[k]);
    }
    for (; r0 < R; r0 += step) {
        const int r = r0 + sub;
        uint4 xn[V], yn[V];  // the next row, in flight while this one is reduced and written
        ln_load_row<L, V>(xn, inp, r + step, R, C, lane);
        if constexpr (ADD) ln_load_row<L, V>(yn, y, r + step, R, C, lane);
        float s = 0;  // absent chunks are zeros: they add nothing
#pragma unroll
        for (int k = 0; k < V; k++) {
            float x[8];
            ln_unpack8(xv[k], x);
#pragma unroll
            for (int j = 0; j < 8; j++) s += x[j];
        }
        const float m = ln_group_sum<L>(s) / (float)C;
        float v = 0;
#pragma unroll
        for (int k = 0; k < V; k++) {
            if (k * L + lane < nch) {
                float x[8];
                ln_unpack8(xv[k], x);
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float d = x[j] - m;
                    v += d * d;  // two passes: no cancellation
                }
            }
        }
        const float var = ln_group_sum<L>(v) / (float)C;
        const float rs = 1.0f / sqrtf(var + eps);
        if (r < R) {
            uint4 *yr = reinterpret_cast<uint4 *>(out + (size_t)r * C);  // [nch]
            uint4 *sr = ADD ? reinterpret_cast<uint4 *>(sum + (size_t)r * C) : nullptr;  // [nch]
#pragma unroll
            for (int k = 0; k < V; k++) {
                const int q = k * L + lane;
                if (q < nch) {
                    if (ADD) sr[q] = xv[k];
                    float x[8], wf[8], bf[8], o[8];
                    ln_unpack8(xv[k], x);
                    ln_unpack8(w ? __ldg(w4 + q) : make_uint4(0, 0, 0, 0), wf);  // L1 hits after the first rows
                    ln_unpack8(bias ? __ldg(b4 + q) : make_uint4(0, 0, 0, 0), bf);
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        const float xhat = (x[j] - m) * rs;
                        o[j] = w ? xhat * wf[j] + bf[j] : xhat;  // bias NULL: bf = 0
                    }
                    yr[q] = ln_pack8(o);
                }
            }
            if (lane == 0) {
                if (mean) mean[r] = m;
                if (rstd) rstd[r] = rs;
            }
        }
        if constexpr (ADD) {
#pragma unroll
            for (int k = 0; k < V; k++) xv[k] = ln_add8(xn[k], yn[k]);
        } else {
#pragma unroll
            for (int k = 0; k < V; k++) xv[k] = xn[k];
        }
    }
}

// Bytes: 8 per element (read dout, inp, dinp; write dinp) + 8 per row (mean, rstd) + 8 per column per block
// (partials); w from cache.
// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w (or dout), and (part != NULL) the block's
// dw/dbias partials: part[b*C + c] = sum over the block's rows of dout*xhat, part[(G + b)*C + c] = of dout.
// Shared memory (part != NULL): float4 acc[ROWS][V][4][L], slot (group, chunk k, t, lane) holding the sums of the
// 4 columns 8*(k*L + lane) + 4*(t & 1) + (0..3), t < 2 for dw and t >= 2 for dbias: lane-contiguous float4s, so a
// warp's 16-byte shared accesses do not conflict. Each thread touches only its own slots until the final combine.
template <int L, int V>
static __global__ void __launch_bounds__(LN_BWD_THREADS)
    layernorm_bwd_vec_kernel(bf16 *__restrict__ dinp, float *__restrict__ part, const bf16 *__restrict__ dout,
                             const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                             const float *__restrict__ mean, const float *__restrict__ rstd, int R, int C) {
    extern __shared__ float4 ln_acc[];
    constexpr int P = 32 / L, ROWS = LN_BWD_THREADS / L;
    ln_pdl_wait();     // the previous kernel (the forward: mean, rstd) complete before any global access
    ln_pdl_trigger();  // the finishing kernel may be placed as blocks leave (it waits for this grid)
    const int lane = threadIdx.x % L, sub = (threadIdx.x % 32) / L, warp = threadIdx.x / 32;
    const int grp = threadIdx.x / L;  // = warp * P + sub
    const int nch = C / 8;
    float4 *acc = ln_acc + (size_t)grp * V * 4 * L + lane;  // this thread's slots: acc[(k*4 + t) * L]
    if (part) {
#pragma unroll
        for (int k = 0; k < V; k++)
#pragma unroll
            for (int t = 0; t < 4; t++) acc[(k * 4 + t) * L] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    const uint4 *w4 = reinterpret_cast<const uint4 *>(w);  // w's chunks: L1 hits after the first rows
    // the block's rows [rb, re): a function of R, the grid and the block only
    const int rb = (int)((long long)R * blockIdx.x / gridDim.x);
    const int re = (int)((long long)R * (blockIdx.x + 1) / gridDim.x);
    for (int r0 = rb + warp * P; r0 < re; r0 += ROWS) {
        const int r = r0 + sub;
        const bool ok = r < re;
        const size_t at = (size_t)r * C;
        const uint4 *xr = reinterpret_cast<const uint4 *>(inp + at), *dyr = reinterpret_cast<const uint4 *>(dout + at);
        uint4 *dxr = dinp ? reinterpret_cast<uint4 *>(dinp + at) : nullptr;
        uint4 xv[V], dyv[V], dxv[V];
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int q = k * L + lane;
            const bool has = ok && q < nch;
            xv[k] = has ? __ldcs(xr + q) : make_uint4(0, 0, 0, 0);  // last use: evict first
            dyv[k] = has ? __ldcs(dyr + q) : make_uint4(0, 0, 0, 0);
            dxv[k] = has && dinp ? dxr[q] : make_uint4(0, 0, 0, 0);
        }
        const float m = ok ? mean[r] : 0.f, s = ok ? rstd[r] : 0.f;
        float g_mean = 0, gx_mean = 0;
        if (dinp) {
            float g_sum = 0, gx_sum = 0;  // absent chunks are zeros: g = 0 adds nothing
#pragma unroll
            for (int k = 0; k < V; k++) {
                float x[8], dy[8], wf[8];
                ln_unpack8(xv[k], x);
                ln_unpack8(dyv[k], dy);
                ln_unpack8(w && k * L + lane < nch ? __ldg(w4 + k * L + lane) : make_uint4(0, 0, 0, 0), wf);
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float g = w ? dy[j] * wf[j] : dy[j];
                    g_sum += g;
                    gx_sum += g * ((x[j] - m) * s);
                }
            }
            g_mean = ln_group_sum<L>(g_sum) / (float)C;
            gx_mean = ln_group_sum<L>(gx_sum) / (float)C;
        }
        if (!ok) continue;
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int q = k * L + lane;
            if (q >= nch) continue;
            float x[8], dy[8], wf[8], xhat[8];
            ln_unpack8(xv[k], x);
            ln_unpack8(dyv[k], dy);
            ln_unpack8(w ? __ldg(w4 + q) : make_uint4(0, 0, 0, 0), wf);
#pragma unroll
            for (int j = 0; j < 8; j++) xhat[j] = (x[j] - m) * s;
            if (dinp) {
                float dx[8];
                ln_unpack8(dxv[k], dx);
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float g = w ? dy[j] * wf[j] : dy[j];
                    dx[j] = dx[j] + s * (g - g_mean - xhat[j] * gx_mean);
                }
                dxr[q] = ln_pack8(dx);
            }
            if (part) {
                float4 *a = acc + k * 4 * L;
                float4 w0 = a[0], w1 = a[L], b0 = a[2 * L], b1 = a[3 * L];
                w0.x += dy[0] * xhat[0], w0.y += dy[1] * xhat[1], w0.z += dy[2] * xhat[2], w0.w += dy[3] * xhat[3];
                w1.x += dy[4] * xhat[4], w1.y += dy[5] * xhat[5], w1.z += dy[6] * xhat[6], w1.w += dy[7] * xhat[7];
                b0.x += dy[0], b0.y += dy[1], b0.z += dy[2], b0.w += dy[3];
                b1.x += dy[4], b1.y += dy[5], b1.z += dy[6], b1.w += dy[7];
                a[0] = w0, a[L] = w1, a[2 * L] = b0, a[3 * L] = b1;
            }
        }
    }
    if (part) {
        __syncthreads();  // every row group's slots complete
        const float *accf = reinterpret_cast<const float *>(ln_acc);
        float *pw = part + (size_t)blockIdx.x * C, *pb = part + ((size_t)gridDim.x + blockIdx.x) * C;
        for (int c = threadIdx.x; c < C; c += LN_BWD_THREADS) {
            const int q = c / 8, k = q / L, ln = q % L, t = (c % 8) / 4, e = c % 4;
            float sw = 0, sb = 0;
            for (int g = 0; g < ROWS; g++) {  // row groups in order
                const size_t base = (size_t)g * V * 4 * L;
                sw += accf[(base + (size_t)(k * 4 + t) * L + ln) * 4 + e];
                sb += accf[(base + (size_t)(k * 4 + 2 + t) * L + ln) * 4 + e];
            }
            pw[c] = sw;
            pb[c] = sb;
        }
    }
}

// dw[c] += sum_b part[b*C + c], dbias[c] += sum_b part[(G + b)*C + c]: block = 8 columns x 128 partial lanes
// (1024 threads, C/8 blocks); thread (tx, ty) adds partials ty, ty + 128, ... in order, in double (its loads in
// flight four at a time per array), then the 128 lane sums meet in a fixed shared-memory tree. Fixed order for a
// given G: deterministic. 8 consecutive columns = one 32-byte sector per partial row.
#define LN_FIN_COLS 8
#define LN_FIN_LANES 128
static __global__ void __launch_bounds__(LN_FIN_COLS * LN_FIN_LANES)
    layernorm_bwd_params_vec_finish_kernel(float *__restrict__ dw, float *__restrict__ dbias,
                                           const float *__restrict__ part, int blocks, int C) {
    __shared__ double red[2][LN_FIN_LANES][LN_FIN_COLS];
    ln_pdl_wait();  // the backward's partials complete and visible
    const int tx = threadIdx.x % LN_FIN_COLS, ty = threadIdx.x / LN_FIN_COLS;
    const int c = blockIdx.x * LN_FIN_COLS + tx;
    double aw = 0, ab = 0;
    if (c < C) {
        for (int k0 = ty; k0 < blocks; k0 += 4 * LN_FIN_LANES) {
            float pw[4], pb[4];  // eight loads in flight, added in order
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int k = k0 + u * LN_FIN_LANES;
                pw[u] = k < blocks ? part[(size_t)k * C + c] : 0.f;
                pb[u] = k < blocks ? part[((size_t)blocks + k) * C + c] : 0.f;
            }
#pragma unroll
            for (int u = 0; u < 4; u++) aw += (double)pw[u], ab += (double)pb[u];
        }
    }
    red[0][ty][tx] = aw;
    red[1][ty][tx] = ab;
    __syncthreads();
#pragma unroll
    for (int h = LN_FIN_LANES / 2; h > 0; h >>= 1) {  // fixed tree: lane ty += lane ty + h
        if (ty < h) {
            red[0][ty][tx] += red[0][ty + h][tx];
            red[1][ty][tx] += red[1][ty + h][tx];
        }
        __syncthreads();
    }
    if (ty == 0 && c < C) {
        if (dw) dw[c] += (float)red[0][0][tx];
        if (dbias) dbias[c] += (float)red[1][0][tx];
    }
}

// Launch with programmatic stream serialization where the device has it (compute capability 9.0+; the kernel must
// call ln_pdl_wait before its first global access); a plain launch elsewhere, or if the runtime refuses the
// attribute (the refusal is a launch-configuration error, not sticky: cleared and retried plainly).
static int ln_pdl_device(void) {
    static int known[64], ok[64];
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return 0;
    if (!known[dev]) {
        int major = 0;
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        ok[dev] = major >= 9, known[dev] = 1;
    }
    return ok[dev];
}

template <typename... P, typename... A>
static void ln_launch(void (*kernel)(P...), unsigned grid, unsigned threads, size_t smem, cudaStream_t s,
                      A... args) {
    if (ln_pdl_device()) {
        cudaLaunchConfig_t cfg = {};
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.gridDim = dim3(grid), cfg.blockDim = dim3(threads), cfg.dynamicSmemBytes = smem, cfg.stream = s;
        cfg.attrs = attr, cfg.numAttrs = 1;
        if (cudaLaunchKernelEx(&cfg, kernel, args...) == cudaSuccess) return;
        (void)cudaGetLastError();  // refused: clear it and launch plainly
    }
    kernel<<<grid, threads, smem, s>>>(args...);
}

// ---------------------------------------------------------------- vector-path dispatch
// Row-group shape for C: L lanes per row, V chunks per lane; 0 when C takes the fallback path.
static int ln_vec_shape(int C, int *L, int *V) {
    if (C % 8 != 0 || C > 8 * 32 * LN_MAX_V) return 0;
    const int nch = C / 8;
    *L = nch <= 48 ? 16 : 32;  // C <= 384: two rows per warp (C = 384: 3 chunks per lane, none idle)
    *V = (nch + *L - 1) / *L;  // L = 16: 1..3; L = 32: 2..8
    return 1;
}

static int ln_aligned16(const void *p) { return p == NULL || (uintptr_t)p % 16 == 0; }

// ADD: sum = inp + y first (add_layernorm); sum, y unused (NULL) otherwise.
template <int L, int V, bool ADD>
static void ln_fwd_vec_launch(cudaStream_t s, bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *w,
                              const bf16 *bias, int R, int C, float eps, bf16 *sum, const bf16 *y) {
    constexpr int ROWS = LN_FWD_THREADS / L;
    const unsigned cap =
        cuda_persistent_grid((const void *)layernorm_fwd_vec_kernel<L, V, ADD>, LN_FWD_THREADS, 0);
    const unsigned want = (unsigned)((R + ROWS - 1) / ROWS);
    ln_launch(layernorm_fwd_vec_kernel<L, V, ADD>, want < cap ? want : cap, LN_FWD_THREADS, 0, s, out, mean, rstd,
              inp, w, bias, R, C, eps, sum, y);
    CUDA_CHECK_LAUNCH();
}

template <int L, int V>
static void ln_bwd_vec_launch(cudaStream_t s, bf16 *dinp, float *dw, float *dbias, const bf16 *dout, const bf16 *inp,
                              const bf16 *w, const float *mean, const float *rstd, int R, int C) {
    constexpr int ROWS = LN_BWD_THREADS / L;
    const int params = dw || dbias;
    const size_t smem = params ? (size_t)LN_BWD_THREADS * V * 4 * sizeof(float4) : 0;
    const unsigned cap = cuda_persistent_grid((const void *)layernorm_bwd_vec_kernel<L, V>, LN_BWD_THREADS, smem);
    const unsigned want = (unsigned)((R + ROWS - 1) / ROWS);
    const unsigned grid = want < cap ? want : cap;
    float *part = NULL;
    if (params)
        part = (float *)cuda_scratch(&ln_scratch, (size_t)2 * grid * C * sizeof(float), "cuda_layernorm_bwd");
    ln_launch(layernorm_bwd_vec_kernel<L, V>, grid, LN_BWD_THREADS, smem, s, dinp, part, dout, inp, w, mean, rstd,
              R, C);
    CUDA_CHECK_LAUNCH();
    if (params) {
        ln_launch(layernorm_bwd_params_vec_finish_kernel, (unsigned)((C + LN_FIN_COLS - 1) / LN_FIN_COLS),
                  LN_FIN_COLS * LN_FIN_LANES, 0, s, dw, dbias, (const float *)part, (int)grid, C);
        CUDA_CHECK_LAUNCH();
    }
}

#define LN_VEC_CASES(X) \
    X(16, 1) X(16, 2) X(16, 3) X(32, 2) X(32, 3) X(32, 4) X(32, 5) X(32, 6) X(32, 7) X(32, 8)

// ================================================================ fallback path
// out = (inp - mean) * rstd * w + bias per row
static __global__ void layernorm_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ mean,
                                            float *__restrict__ rstd, const bf16 *__restrict__ inp,
                                            const bf16 *__restrict__ w, const bf16 *__restrict__ bias, int R, int C,
                                            float eps) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (r >= R) return;  // whole warps leave together: the shuffles below see full warps
    const bf16 *x = inp + (size_t)r * C;  // [C]
    bf16 *y = out + (size_t)r * C;        // [C]

    float s = 0;
    for (int c = lane; c < C; c += 32) s += __bfloat162float(x[c]);
    const float m = cuda_warp_sum_f(s) / (float)C;
    float v = 0;
    for (int c = lane; c < C; c += 32) {
        const float d = __bfloat162float(x[c]) - m;
        v += d * d;  // two passes: no cancellation
    }
    const float var = cuda_warp_sum_f(v) / (float)C;
    const float rs = 1.0f / sqrtf(var + eps);
    for (int c = lane; c < C; c += 32) {
        const float xhat = (__bfloat162float(x[c]) - m) * rs;
        float o = xhat;
        if (w) o = xhat * __bfloat162float(w[c]) + (bias ? __bfloat162float(bias[c]) : 0.0f);
        y[c] = __float2bfloat16_rn(o);
    }
    if (lane == 0) {
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w (or dout), one warp per row
static __global__ void layernorm_bwd_input_kernel(bf16 *__restrict__ dinp, const bf16 *__restrict__ dout,
                                                  const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                                                  const float *__restrict__ mean, const float *__restrict__ rstd,
                                                  int R, int C) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (r >= R) return;
    const bf16 *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;  // [C]
    bf16 *dx = dinp + (size_t)r * C;                                   // [C]
    const float m = mean[r], s = rstd[r];

    float g_sum = 0, gx_sum = 0;
    for (int c = lane; c < C; c += 32) {
        const float g = w ? __bfloat162float(dy[c]) * __bfloat162float(w[c]) : __bfloat162float(dy[c]);
        g_sum += g;
        gx_sum += g * ((__bfloat162float(x[c]) - m) * s);
    }
    const float g_mean = cuda_warp_sum_f(g_sum) / (float)C;
    const float gx_mean = cuda_warp_sum_f(gx_sum) / (float)C;
    for (int c = lane; c < C; c += 32) {
        const float g = w ? __bfloat162float(dy[c]) * __bfloat162float(w[c]) : __bfloat162float(dy[c]);
        const float xhat = (__bfloat162float(x[c]) - m) * s;
        dx[c] = __float2bfloat16_rn(__bfloat162float(dx[c]) + s * (g - g_mean - xhat * gx_mean));
    }
}

// partial[k*C + c] = sum over rows r of chunk k of dout[r,c] * xhat[r,c] (first C*chunks floats: dw) and of
// dout[r,c] (next C*chunks floats: dbias), rows in order, fp32.
static __global__ void layernorm_bwd_params_partial_kernel(float *__restrict__ partial_w,
                                                           float *__restrict__ partial_b,
                                                           const bf16 *__restrict__ dout,
                                                           const bf16 *__restrict__ inp,
                                                           const float *__restrict__ mean,
                                                           const float *__restrict__ rstd, int R, int C) {
    const int c = blockIdx.x * LN_COL_THREADS + threadIdx.x;
    if (c >= C) return;
    const int r0 = blockIdx.y * LN_CHUNK_ROWS;
    const int r1 = R - r0 < LN_CHUNK_ROWS ? R : r0 + LN_CHUNK_ROWS;
    float acc_w = 0, acc_b = 0;
    for (int r = r0; r < r1; r++) {
        const size_t at = (size_t)r * C + c;
        const float dy = __bfloat162float(dout[at]);
        const float xhat = (__bfloat162float(inp[at]) - mean[r]) * rstd[r];
        acc_w += dy * xhat;
        acc_b += dy;
    }
    const size_t k = (size_t)blockIdx.y * C + c;
    partial_w[k] = acc_w;
    partial_b[k] = acc_b;
}

// dw[c] += sum_k partial_w[k*C + c], dbias likewise; chunks in order, in double
static __global__ void layernorm_bwd_params_finish_kernel(float *__restrict__ dw, float *__restrict__ dbias,
                                                          const float *__restrict__ partial_w,
                                                          const float *__restrict__ partial_b, int chunks, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double acc_w = 0, acc_b = 0;
    for (int k = 0; k < chunks; k++) {
        acc_w += (double)partial_w[(size_t)k * C + c];
        acc_b += (double)partial_b[(size_t)k * C + c];
    }
    if (dw) dw[c] += (float)acc_w;
    if (dbias) dbias[c] += (float)acc_b;
}

static void ln_bwd_fallback(cudaStream_t s, bf16 *dinp, float *dw, float *dbias, const bf16 *dout, const bf16 *inp,
                            const bf16 *w, const float *mean, const float *rstd, int R, int C) {
    if (dinp) {
        const unsigned blocks = (unsigned)((R + LN_WARPS - 1) / LN_WARPS);
        layernorm_bwd_input_kernel<<<blocks, LN_WARPS * 32, 0, s>>>(dinp, dout, inp, w, mean, rstd, R, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dw || dbias) {
        const int chunks = (R + LN_CHUNK_ROWS - 1) / LN_CHUNK_ROWS;
        if (chunks > 65535) {  // gridDim.y limit: R above 16.7M rows
            fflush(stdout);
            fprintf(stderr, "internal error: %s:%d: cuda_layernorm_bwd: R = %d rows exceeds %d\n", __FILE__, __LINE__,
                    R, 65535 * LN_CHUNK_ROWS);
            exit(1);
        }
        float *partial_w = (float *)cuda_scratch(&ln_scratch, (size_t)2 * chunks * C * sizeof(float),
                                                 "cuda_layernorm_bwd");  // [2, chunks, C]
        float *partial_b = partial_w + (size_t)chunks * C;
        const dim3 grid((unsigned)((C + LN_COL_THREADS - 1) / LN_COL_THREADS), (unsigned)chunks);
        layernorm_bwd_params_partial_kernel<<<grid, LN_COL_THREADS, 0, s>>>(partial_w, partial_b, dout, inp, mean,
                                                                            rstd, R, C);
        CUDA_CHECK_LAUNCH();
        layernorm_bwd_params_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, s>>>(dw, dbias, partial_w,
                                                                                        partial_b, chunks, C);
        CUDA_CHECK_LAUNCH();
    }
}

// ================================================================ launchers
extern "C" void cuda_layernorm_fwd(cuda_stream s, bf16_bits *out, float *mean, float *rstd, const bf16_bits *inp,
                                   const bf16_bits *w, const bf16_bits *bias, int R, int C, float eps) {
    if (R <= 0 || C <= 0) return;
    int L = 0, V = 0;
    if (ln_vec_shape(C, &L, &V) && ln_aligned16(out) && ln_aligned16(inp) && ln_aligned16(w) &&
        ln_aligned16(bias)) {
#define LN_FWD_CASE(l, v)                                                                                     \
    if (L == l && V == v) {                                                                                   \
        ln_fwd_vec_launch<l, v, false>(s, BF16(out), mean, rstd, CBF16(inp), CBF16(w), CBF16(bias), R, C, eps, \
                                       NULL, NULL);                                                           \
        return;                                                                                               \
    }
        LN_VEC_CASES(LN_FWD_CASE)
#undef LN_FWD_CASE
    }
    const unsigned blocks = (unsigned)((R + LN_WARPS - 1) / LN_WARPS);
    layernorm_fwd_kernel<<<blocks, LN_WARPS * 32, 0, s>>>(BF16(out), mean, rstd, CBF16(inp), CBF16(w), CBF16(bias),
                                                           R, C, eps);
    CUDA_CHECK_LAUNCH();
}

// Whether the byte ranges [a, a + bytes) and [b, b + bytes) share a byte.
static int ln_overlap(const void *a, const void *b, size_t bytes) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bytes && y < x + bytes;
}

extern "C" int cuda_add_layernorm_fwd(cuda_stream s, bf16_bits *sum, bf16_bits *out, float *mean, float *rstd,
                                      const bf16_bits *x, const bf16_bits *y, const bf16_bits *w,
                                      const bf16_bits *bias, int R, int C, float eps) {
    if (R <= 0 || C <= 0) return 1;  // nothing to do, as the two ops
    const size_t bytes = (size_t)R * C * 2;
    int L = 0, V = 0;
    if (!ln_vec_shape(C, &L, &V) || !ln_aligned16(sum) || !ln_aligned16(out) || !ln_aligned16(x) ||
        !ln_aligned16(y) || !ln_aligned16(w) || !ln_aligned16(bias))
        return 0;
    if (ln_overlap(sum, x, bytes) || ln_overlap(sum, y, bytes) || ln_overlap(out, x, bytes) ||
        ln_overlap(out, y, bytes) || ln_overlap(out, sum, bytes))
        return 0;  // the kernel reads a row ahead of its writes and its pointers are __restrict__
#define LN_ADD_CASE(l, v)                                                                                    \
    if (L == l && V == v) {                                                                                  \
        ln_fwd_vec_launch<l, v, true>(s, BF16(out), mean, rstd, CBF16(x), CBF16(w), CBF16(bias), R, C, eps,  \
                                      BF16(sum), CBF16(y));                                                  \
        return 1;                                                                                            \
    }
    LN_VEC_CASES(LN_ADD_CASE)
#undef LN_ADD_CASE
    return 0;
}

extern "C" void cuda_layernorm_bwd(cuda_stream s, bf16_bits *dinp, float *dw, float *dbias, const bf16_bits *dout,
                                   const bf16_bits *inp, const bf16_bits *w, const float *mean, const float *rstd,
                                   int R, int C) {
    if (R <= 0 || C <= 0) return;
    if (!dinp && !dw && !dbias) return;
    int L = 0, V = 0;
    if (ln_vec_shape(C, &L, &V) && ln_aligned16(dinp) && ln_aligned16(dout) && ln_aligned16(inp) &&
        ln_aligned16(w)) {
#define LN_BWD_CASE(l, v)                                                                                          \
    if (L == l && V == v) {                                                                                        \
        ln_bwd_vec_launch<l, v>(s, BF16(dinp), dw, dbias, CBF16(dout), CBF16(inp), CBF16(w), mean, rstd, R, C);   \
        return;                                                                                                    \
    }
        LN_VEC_CASES(LN_BWD_CASE)
#undef LN_BWD_CASE
    }
    ln_bwd_fallback(s, BF16(dinp), dw, dbias, CBF16(dout), CBF16(inp), CBF16(w), mean, rstd, R, C);
}
