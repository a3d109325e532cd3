// elementwise.cu: GELU, adds and scales, token movement (gather, scatter-add, copy, row tables, broadcast, column
// sums), video patchify and fp32 <-> bf16 conversion: the CUDA twin of elementwise_cpu.c on bf16 activations.
// Arithmetic is fp32 on bf16 loads; results are rounded to nearest even once, when stored.
//
// Flat ops: grid-stride loops with size_t indices (n up to ~3e8). Token ops: a block per token row (grid-stride
// over rows), its threads over the C columns. Deterministic throughout:
// - scatter_add_tokens: one thread per (sample, column) walks i in order, so repeated indices add up in a fixed
//   order (each add is a bf16 read-modify-write, as dinp is bf16). Correct rather than fast: its parallelism is
//   B*C threads each walking n rows.
// - sum_rows: partial sums over fixed row chunks (fp32, rows in order) into a workspace [chunks, C], then a second
//   kernel adds the chunks in order in double. The workspace grows on first use (cuda_common.cuh): not
//   thread-safe, one stream.
// Out-of-range token indices stop the kernel (device printf, then __trap): the next checked CUDA call fails (the
// context is lost), and the printed line says which op, index and position.
//
// Ladder: plain versions; next step for the flat ops and token rows is 16-byte vector loads.
#include "cuda_common.cuh"

#define EW_THREADS 256
#define EW_ROW_GRID_CAP 65535  // token-row kernels: blocks in flight, each walks rows blockIdx.x + k*gridDim.x
#define EW_CHUNK_ROWS 256      // rows per partial sum in sum_rows

static CudaScratch ew_scratch;

static unsigned row_grid(long rows) {
    return rows <= 0 ? 1u : rows > EW_ROW_GRID_CAP ? (unsigned)EW_ROW_GRID_CAP : (unsigned)rows;
}

// ---- GELU, exact: x * Phi(x)
static __global__ void gelu_fwd_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp, size_t n) {
    const float inv_sqrt2 = 0.70710678118654752440f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = __bfloat162float(inp[i]);
        out[i] = __float2bfloat16_rn(0.5f * x * (1.0f + erff(x * inv_sqrt2)));
    }
}

// d/dx x*Phi(x) = Phi(x) + x * phi(x)
static __global__ void gelu_bwd_kernel(bf16 *__restrict__ dinp, const bf16 *__restrict__ inp,
                                       const bf16 *__restrict__ dout, size_t n) {
    const float inv_sqrt2 = 0.70710678118654752440f, inv_sqrt_2pi = 0.39894228040143267794f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = __bfloat162float(inp[i]);
        const float cdf = 0.5f * (1.0f + erff(x * inv_sqrt2));
        const float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] = __float2bfloat16_rn(__bfloat162float(dinp[i]) + __bfloat162float(dout[i]) * (cdf + x * pdf));
    }
}

// ---- adds and scales (no __restrict__ on add: out may alias x or y; each element is read before it is written)
static __global__ void add_kernel(bf16 *out, const bf16 *x, const bf16 *y, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(__bfloat162float(x[i]) + __bfloat162float(y[i]));
}

static __global__ void accumulate_kernel(bf16 *__restrict__ y, const bf16 *__restrict__ x, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(__bfloat162float(y[i]) + __bfloat162float(x[i]));
}

static __global__ void scale_kernel(bf16 *__restrict__ x, float factor, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) * factor);
}

// ---- token movement
// say: this thread prints (one per block or row, not all of them)
static __device__ __forceinline__ void check_index(int32_t v, int limit, size_t at, const char *op, int say) {
    if (v < 0 || v >= limit) {
        if (say)
            printf("internal error: %s: index %d at %llu outside [0, %d)\n", op, (int)v, (unsigned long long)at,
                   limit);
        __trap();
    }
}

// out[t,:] = inp[b, idx[t], :], t = b*n + i; a block per token row
static __global__ void gather_tokens_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp,
                                            const int32_t *__restrict__ idx, int B, int n, int Nsrc, int C) {
    const long rows = (long)B * n;
    for (long t = blockIdx.x; t < rows; t += gridDim.x) {
        const int32_t j = idx[t];
        check_index(j, Nsrc, (size_t)t, "cuda_gather_tokens", threadIdx.x == 0);
        const long b = t / n;
        const bf16 *src = inp + ((size_t)b * Nsrc + j) * C;  // [C]
        bf16 *dst = out + (size_t)t * C;                       // [C]
        for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
    }
}

// dinp[b, idx[b,i], c] += dout[b,i,c]: thread = (b, c), i in order (repeats add up deterministically)
static __global__ void scatter_add_tokens_kernel(bf16 *dinp, const bf16 *__restrict__ dout,
                                                 const int32_t *__restrict__ idx, int B, int n, int Nsrc, int C) {
    const size_t total = (size_t)B * C;
    for (size_t bc = (size_t)blockIdx.x * blockDim.x + threadIdx.x; bc < total; bc += (size_t)gridDim.x * blockDim.x) {
        const size_t b = bc / C, c = bc % C;
        const int32_t *ib = idx + b * n;      // [n]
        const bf16 *src = dout + b * n * C;   // [n,C]
        bf16 *dst = dinp + b * Nsrc * C;      // [Nsrc,C]
        for (int i = 0; i < n; i++) {
            const int32_t j = ib[i];
            check_index(j, Nsrc, b * n + i, "cuda_scatter_add_tokens", c == 0);
            bf16 *d = dst + (size_t)j * C + c;
            *d = __float2bfloat16_rn(__bfloat162float(*d) + __bfloat162float(src[(size_t)i * C + c]));
        }
    }
}

// dst[b, dst_start + i, :] (= or +=) src[b, src_start + i, :]; a block per (b, i)
static __global__ void copy_tokens_kernel(bf16 *__restrict__ dst, int dst_tokens, int dst_start,
                                          const bf16 *__restrict__ src, int src_tokens, int src_start, int count,
                                          int B, int C, int accumulate) {
    const long rows = (long)B * count;
    for (long t = blockIdx.x; t < rows; t += gridDim.x) {
        const long b = t / count, i = t % count;
        bf16 *d = dst + ((size_t)b * dst_tokens + dst_start + i) * C;        // [C]
        const bf16 *s = src + ((size_t)b * src_tokens + src_start + i) * C;  // [C]
        if (accumulate) {
            for (int c = threadIdx.x; c < C; c += blockDim.x)
                d[c] = __float2bfloat16_rn(__bfloat162float(d[c]) + __bfloat162float(s[c]));
        } else {
            for (int c = threadIdx.x; c < C; c += blockDim.x) d[c] = s[c];
        }
    }
}

// x[t,:] += table[idx ? idx[t] : t % n, :]
static __global__ void add_rows_kernel(bf16 *__restrict__ x, const bf16 *__restrict__ table,
                                       const int32_t *__restrict__ idx, int B, int n, int C) {
    const long rows = (long)B * n;
    for (long t = blockIdx.x; t < rows; t += gridDim.x) {
        long row = t % n;
        if (idx) {
            row = idx[t];
            // only the sign can be checked: the table's length is not passed
            check_index(idx[t], 0x7fffffff, (size_t)t, "cuda_add_rows", threadIdx.x == 0);
        }
        bf16 *y = x + (size_t)t * C;                  // [C]
        const bf16 *e = table + (size_t)row * C;      // [C]
        for (int c = threadIdx.x; c < C; c += blockDim.x)
            y[c] = __float2bfloat16_rn(__bfloat162float(y[c]) + __bfloat162float(e[c]));
    }
}

static __global__ void broadcast_row_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ row, int R, int C) {
    for (long r = blockIdx.x; r < R; r += gridDim.x) {
        bf16 *o = out + (size_t)r * C;  // [C]
        for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = row[c];
    }
}

// partial[k*C + c] = sum of dout[r,c] over the rows of chunk k, in order, fp32
static __global__ void sum_rows_partial_kernel(float *__restrict__ partial, const bf16 *__restrict__ dout, int R,
                                               int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int r0 = blockIdx.y * EW_CHUNK_ROWS;
    const int r1 = R - r0 < EW_CHUNK_ROWS ? R : r0 + EW_CHUNK_ROWS;
    float acc = 0;
    for (int r = r0; r < r1; r++) acc += __bfloat162float(dout[(size_t)r * C + c]);
    partial[(size_t)blockIdx.y * C + c] = acc;
}

// drow[c] += sum_k partial[k*C + c], chunks in order, in double
static __global__ void sum_rows_finish_kernel(float *__restrict__ drow, const float *__restrict__ partial, int chunks,
                                              int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double acc = 0;
    for (int k = 0; k < chunks; k++) acc += (double)partial[(size_t)k * C + c];
    drow[c] += (float)acc;
}

// patches[b, tok, v] = clips[b, it*tt + kt, ih*p + kh, iw*p + kw, ch], tok = (it, ih, iw) raster,
// v = (ch, kt, kh, kw) raster (a Conv3d weight [D,3,tt,p,p] flattened); a thread per output element
static __global__ void patchify_kernel(bf16 *__restrict__ patches, const bf16 *__restrict__ clips, int B, int T,
                                       int H, int W, int tt, int p) {
    const int nt = T / tt, nh = H / p, nw = W / p;
    const size_t ntok = (size_t)nt * nh * nw, plen = (size_t)3 * tt * p * p, pp = (size_t)p * p;
    const size_t total = (size_t)B * ntok * plen;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        const size_t t = e / plen, v = e % plen;
        const size_t b = t / ntok, tok = t % ntok;
        const size_t it = tok / ((size_t)nh * nw), ih = tok / nw % nh, iw = tok % nw;
        const size_t ch = v / ((size_t)tt * pp), kt = v / pp % tt, kh = v / p % p, kw = v % p;
        const size_t frame = b * T + it * tt + kt;
        const size_t pixel = (frame * H + ih * p + kh) * W + iw * p + kw;
        patches[e] = clips[pixel * 3 + ch];
    }
}

static __global__ void f32_to_bf16_kernel(bf16 *__restrict__ out, const float *__restrict__ in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

static __global__ void bf16_to_f32_kernel(float *__restrict__ out, const bf16 *__restrict__ in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __bfloat162float(in[i]);
}

// ---- launchers
extern "C" void cuda_gelu_fwd(cuda_stream s, bf16_bits *out, const bf16_bits *inp, size_t n) {
    if (n == 0) return;
    gelu_fwd_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(out), CBF16(inp), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_gelu_bwd(cuda_stream s, bf16_bits *dinp, const bf16_bits *inp, const bf16_bits *dout, size_t n) {
    if (n == 0) return;
    gelu_bwd_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(dinp), CBF16(inp), CBF16(dout), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_add(cuda_stream s, bf16_bits *out, const bf16_bits *x, const bf16_bits *y, size_t n) {
    if (n == 0) return;
    add_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(out), CBF16(x), CBF16(y), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_accumulate(cuda_stream s, bf16_bits *y, const bf16_bits *x, size_t n) {
    if (n == 0) return;
    accumulate_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(y), CBF16(x), n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_scale(cuda_stream s, bf16_bits *x, float factor, size_t n) {
    if (n == 0) return;
    scale_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(x), factor, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_gather_tokens(cuda_stream s, bf16_bits *out, const bf16_bits *inp, const int32_t *idx, int B,
                                   int n, int Nsrc, int C) {
    if (B <= 0 || n <= 0 || C <= 0) return;
    gather_tokens_kernel<<<row_grid((long)B * n), EW_THREADS, 0, s>>>(BF16(out), CBF16(inp), idx, B, n, Nsrc, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_scatter_add_tokens(cuda_stream s, bf16_bits *dinp, const bf16_bits *dout, const int32_t *idx,
                                        int B, int n, int Nsrc, int C) {
    if (B <= 0 || n <= 0 || C <= 0) return;
    scatter_add_tokens_kernel<<<cuda_grid_1d((size_t)B * C, EW_THREADS), EW_THREADS, 0, s>>>(
        BF16(dinp), CBF16(dout), idx, B, n, Nsrc, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_copy_tokens(cuda_stream s, bf16_bits *dst, int dst_tokens, int dst_start, const bf16_bits *src,
                                 int src_tokens, int src_start, int count, int B, int C, int accumulate) {
    if (count < 0 || dst_start < 0 || src_start < 0 || dst_start + count > dst_tokens ||
        src_start + count > src_tokens) {
        fflush(stdout);
        fprintf(stderr,
                "internal error: %s:%d: cuda_copy_tokens: rows [%d, %d) of %d destination tokens, [%d, %d) of %d "
                "source tokens\n",
                __FILE__, __LINE__, dst_start, dst_start + count, dst_tokens, src_start, src_start + count,
                src_tokens);
        exit(1);
    }
    if (B <= 0 || count == 0 || C <= 0) return;
    copy_tokens_kernel<<<row_grid((long)B * count), EW_THREADS, 0, s>>>(BF16(dst), dst_tokens, dst_start, CBF16(src),
                                                                       src_tokens, src_start, count, B, C, accumulate);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_add_rows(cuda_stream s, bf16_bits *x, const bf16_bits *table, const int32_t *idx, int B, int n,
                              int C) {
    if (B <= 0 || n <= 0 || C <= 0) return;
    add_rows_kernel<<<row_grid((long)B * n), EW_THREADS, 0, s>>>(BF16(x), CBF16(table), idx, B, n, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_broadcast_row(cuda_stream s, bf16_bits *out, const bf16_bits *row, int R, int C) {
    if (R <= 0 || C <= 0) return;
    broadcast_row_kernel<<<row_grid(R), EW_THREADS, 0, s>>>(BF16(out), CBF16(row), R, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_sum_rows(cuda_stream s, float *drow, const bf16_bits *dout, int R, int C) {
    if (R <= 0 || C <= 0) return;
    const int chunks = (R + EW_CHUNK_ROWS - 1) / EW_CHUNK_ROWS;
    if (chunks > 65535) {  // gridDim.y limit: R above 16.7M rows
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuda_sum_rows: R = %d rows exceeds %d\n", __FILE__, __LINE__, R,
                65535 * EW_CHUNK_ROWS);
        exit(1);
    }
    float *partial = (float *)cuda_scratch(&ew_scratch, (size_t)chunks * C * sizeof(float), "cuda_sum_rows");
    const dim3 grid((unsigned)((C + EW_THREADS - 1) / EW_THREADS), (unsigned)chunks);
    sum_rows_partial_kernel<<<grid, EW_THREADS, 0, s>>>(partial, CBF16(dout), R, C);
    CUDA_CHECK_LAUNCH();
    sum_rows_finish_kernel<<<(unsigned)((C + EW_THREADS - 1) / EW_THREADS), EW_THREADS, 0, s>>>(drow, partial, chunks,
                                                                                                C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_patchify(cuda_stream s, bf16_bits *patches, const bf16_bits *clips, int B, int T, int H, int W,
                              int tt, int p) {
    if (tt <= 0 || p <= 0 || T % tt != 0 || H % p != 0 || W % p != 0) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuda_patchify: T=%d H=%d W=%d not divisible by tubelet %d / patch %d\n",
                __FILE__, __LINE__, T, H, W, tt, p);
        exit(1);
    }
    const size_t total = (size_t)B * T * H * W * 3;  // patches hold exactly the clip's elements, reordered
    if (B <= 0 || total == 0) return;
    patchify_kernel<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, s>>>(BF16(patches), CBF16(clips), B, T, H, W, tt,
                                                                          p);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_f32_to_bf16(cuda_stream s, bf16_bits *out, const float *in, size_t n) {
    if (n == 0) return;
    f32_to_bf16_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(BF16(out), in, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_bf16_to_f32(cuda_stream s, float *out, const bf16_bits *in, size_t n) {
    if (n == 0) return;
    bf16_to_f32_kernel<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, s>>>(out, CBF16(in), n);
    CUDA_CHECK_LAUNCH();
}
