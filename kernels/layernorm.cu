// layernorm.cu: LayerNorm over the last dimension on bf16 activations with fp32 statistics, the CUDA twin of
// layernorm_cpu.c (torch.nn.LayerNorm: biased variance, rstd = 1/sqrt(var + eps); w and bias NULL = non-affine).
//
// Forward and the input gradient: one warp per row, fp32 sums per lane then a fixed xor-shuffle tree; the row is
// read once per pass (mean, variance, output) and stays in L1 between passes.
// Weight/bias gradients (dw[c] += sum_r dout*xhat, dbias[c] += sum_r dout): a column reduction in two kernels,
//   1. grid (column blocks, row chunks): thread = one column, sums the LN_CHUNK_ROWS rows of its chunk in row order
//      in fp32 and writes the partial to a workspace [chunks, C] (dw partials, then dbias partials);
//   2. thread = one column, adds its chunk partials in chunk order in double, then dw[c] += (float)sum.
// The chunking depends on R only, so the result is bitwise reproducible and the same on every GPU; no atomics.
// The workspace grows with R*C on first use (cudaMalloc, see cuda_common.cuh): not thread-safe, one stream.
//
// Ladder: this is the plain version. Next steps: 16-byte loads when C % 8 == 0, the row kept in registers,
// the dw/dbias partials fused into the input-gradient pass (one read of dout and inp instead of two).
#include "cuda_common.cuh"

#define LN_WARPS 8          // rows per block in the row kernels (256 threads)
#define LN_COL_THREADS 256  // columns per block in the dw/dbias partial kernel
#define LN_CHUNK_ROWS 256   // rows per partial sum of dw/dbias

static CudaScratch ln_scratch;

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

extern "C" void cuda_layernorm_fwd(cuda_stream s, bf16_bits *out, float *mean, float *rstd, const bf16_bits *inp,
                                   const bf16_bits *w, const bf16_bits *bias, int R, int C, float eps) {
    if (R <= 0 || C <= 0) return;
    const unsigned blocks = (unsigned)((R + LN_WARPS - 1) / LN_WARPS);
    layernorm_fwd_kernel<<<blocks, LN_WARPS * 32, 0, s>>>(BF16(out), mean, rstd, CBF16(inp), CBF16(w), CBF16(bias),
                                                           R, C, eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_layernorm_bwd(cuda_stream s, bf16_bits *dinp, float *dw, float *dbias, const bf16_bits *dout,
                                   const bf16_bits *inp, const bf16_bits *w, const float *mean, const float *rstd,
                                   int R, int C) {
    if (R <= 0 || C <= 0) return;
    if (dinp) {
        const unsigned blocks = (unsigned)((R + LN_WARPS - 1) / LN_WARPS);
        layernorm_bwd_input_kernel<<<blocks, LN_WARPS * 32, 0, s>>>(BF16(dinp), CBF16(dout), CBF16(inp), CBF16(w),
                                                                     mean, rstd, R, C);
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
        layernorm_bwd_params_partial_kernel<<<grid, LN_COL_THREADS, 0, s>>>(partial_w, partial_b, CBF16(dout),
                                                                            CBF16(inp), mean, rstd, R, C);
        CUDA_CHECK_LAUNCH();
        layernorm_bwd_params_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, s>>>(dw, dbias, partial_w,
                                                                                        partial_b, chunks, C);
        CUDA_CHECK_LAUNCH();
    }
}
