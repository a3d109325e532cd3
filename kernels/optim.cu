// optim.cu: flat-buffer optimizer ops on fp32 master parameters, the CUDA twin of optim_cpu.c: squared norm,
// clipping by a norm that stays on the device, AdamW and EMA (each also writing the bf16 working copy in the same
// pass), and the working-copy cast.
//
// Bytes each op must move (each input read once, each output written once; n parameters):
//   adamw        read p, g, m, v (16 B), write p, m, v (12 B) + the bf16 working copy (2 B)  = 30 B/param
//   ema          read target, source (8 B), write target (4 B) + the bf16 working copy (2 B)  = 14 B/param
//   sum_squares  read x (4 B)                                                                 =  4 B/param
//   clip_by_norm read x, write x                                                              =  8 B/param
//   cast_params  read master (4 B), write working (2 B)                                       =  6 B/param
//   adamw_ema    read p, g, m, v, target (20 B), write p, m, v, target (16 B) + both working copies (4 B)
//                = 40 B/param, against 30 + 14 = 44 for adamw then ema (the new weights are read once)
// (without a working copy adamw and ema move 2 B/param less). At the ViT-L/16 + predictor size, 305,490,944
// parameters: adamw 9.16 GB, ema 4.28 GB (the EMA runs over the encoder only in training).
//
// Access pattern: every op is elementwise (sum_squares a reduction), so each thread moves 16-byte float4 groups
// (8-byte bf16x4 for the working copy), two groups per array in flight before the first use. A flat range can start
// at any element (the optimizer's module and group ranges do), so the launcher splits it: `head` scalar elements
// until the first pointer is 16-byte aligned, then float4 groups, then a scalar tail of at most 3; when the
// pointers' alignments disagree (no common head), the whole range takes the scalar path. Both paths apply the same
// per-element function, so the split never changes a value.
// Grids: adamw, ema, clip and cast are persistent (the SM count x the resident blocks per SM, fewer for short
// ranges), each thread walking the groups grid-stride; elementwise results do not depend on the grid.
// sum_squares: accumulated in double (not fp32 Kahan). Block b sums a fixed chunk of SUMSQ_CHUNK float4 groups
// (a function of n and the pointer's alignment only), each thread in double, then the block in a fixed tree, into a
// partial in a workspace; one block of 1024 threads adds the partials in a fixed order and writes out[0] =
// (float)sum. Bitwise reproducible, the same on every GPU.
// AdamW and EMA follow optim_cpu.c operation by operation, with the fp32 roundings spelled out (__fmul_rn,
// __fadd_rn, ...: no fused multiply-adds), and their constants computed on the host in double exactly as there,
// so they reproduce the CPU reference's fp32 results bitwise.
#include "cuda_common.cuh"

#define OPT_THREADS 256
#define SUMSQ_CHUNK 2048        // float4 groups per sum_squares block: 8 per thread, loaded before they are summed
#define SUMSQ_FINISH_THREADS 1024

static CudaScratch sumsq_scratch;  // [blocks] double partials of sum_squares

// ---------------------------------------------------------------- the split of a range for 16-byte accesses
// Elements [0, head) and [head + 4*nvec, n) are scalar, [head, head + 4*nvec) float4 groups, 16-byte aligned in
// every fp32 array (8-byte aligned in the bf16 one). Scalar element q of the n - 4*nvec is opt_scalar_at(q).
typedef struct {
    size_t head, nvec;
} OptSplit;

// f: the nf fp32 arrays (NULL entries ignored), b, b2: bf16 arrays or NULL, all indexed by the same n elements.
static OptSplit opt_split(size_t n, const void *const *f, int nf, const void *b, const void *b2) {
    const OptSplit scalar = {n, 0};
    const uintptr_t a0 = (uintptr_t)f[0];
    if (a0 % 4 != 0) return scalar;  // not even float-aligned: no common head exists
    size_t head = ((16 - a0 % 16) % 16) / 4;
    if (head > n) head = n;
    for (int k = 0; k < nf; k++)
        if (f[k] && ((uintptr_t)f[k] + head * 4) % 16 != 0) return scalar;
    if (b && ((uintptr_t)b + head * 2) % 8 != 0) return scalar;
    if (b2 && ((uintptr_t)b2 + head * 2) % 8 != 0) return scalar;
    const OptSplit s = {head, (n - head) / 4};
    return s;
}

static __device__ __forceinline__ size_t opt_scalar_at(size_t q, size_t head, size_t nvec) {
    return q < head ? q : q + 4 * nvec;
}

// Blocks for a persistent grid-stride kernel: enough for `units` per thread-unit (two float4 groups per thread),
// at most what is resident at once.
static unsigned opt_grid(const void *kernel, const OptSplit *s, size_t n) {
    const size_t scalars = n - 4 * s->nvec;
    const size_t want_vec = (s->nvec + 2 * OPT_THREADS - 1) / (2 * OPT_THREADS);
    const size_t want_scalar = (scalars + OPT_THREADS - 1) / OPT_THREADS;
    size_t want = want_vec > want_scalar ? want_vec : want_scalar;
    if (want < 1) want = 1;
    const unsigned cap = cuda_persistent_grid(kernel, OPT_THREADS, 0);
    return want < cap ? (unsigned)want : cap;
}

static __device__ __forceinline__ uint2 bf16x4_of(float4 a) {
    return make_uint2(cuda_bf16x2_bits(a.x, a.y), cuda_bf16x2_bits(a.z, a.w));
}

// ---------------------------------------------------------------- sum_squares
static __device__ __forceinline__ double sq4(float4 a) {
    const double x = a.x, y = a.y, z = a.z, w = a.w;
    return x * x + y * y + z * z + w * w;  // each square exact in double (24-bit mantissas)
}

// Bytes: 4 per element read (plus 8 per block of partials). Block b: groups [b*SUMSQ_CHUNK, (b+1)*SUMSQ_CHUNK) of
// the float4 view of x + head, eight per thread; block 0 also the (at most six) scalar elements.
static __global__ void __launch_bounds__(OPT_THREADS)
    sum_squares_kernel(double *__restrict__ partial, const float *__restrict__ x, size_t n, size_t head,
                       size_t nvec) {
    const float4 *x4 = reinterpret_cast<const float4 *>(x + head);
    const size_t j0 = (size_t)blockIdx.x * SUMSQ_CHUNK + threadIdx.x;
    constexpr int PER = SUMSQ_CHUNK / OPT_THREADS;
    float4 a[PER];
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const size_t j = j0 + (size_t)k * OPT_THREADS;
        a[k] = j < nvec ? x4[j] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    double acc = 0;
#pragma unroll
    for (int k = 0; k < PER; k++) acc += sq4(a[k]);
    if (blockIdx.x == 0) {
        const size_t scalars = n - 4 * nvec;  // <= 6
        for (size_t q = threadIdx.x; q < scalars; q += OPT_THREADS) {
            const double v = (double)x[opt_scalar_at(q, head, nvec)];
            acc += v * v;
        }
    }
    acc = cuda_block_sum_d(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// one block of SUMSQ_FINISH_THREADS threads: out[0] = (float)(sum of the partials), thread t adding partials
// t, t + 1024, ... in order, then the block tree
static __global__ void __launch_bounds__(SUMSQ_FINISH_THREADS)
    sum_squares_finish_kernel(float *__restrict__ out, const double *__restrict__ partial, unsigned blocks) {
    double v = 0;
    for (unsigned k0 = threadIdx.x; k0 < blocks; k0 += 8 * SUMSQ_FINISH_THREADS) {
        double p[8];  // eight loads in flight, added in order
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const unsigned k = k0 + (unsigned)u * SUMSQ_FINISH_THREADS;
            p[u] = k < blocks ? partial[k] : 0.0;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) v += p[u];
    }
    v = cuda_block_sum_d(v);
    if (threadIdx.x == 0) out[0] = (float)v;
}

// ---------------------------------------------------------------- clip_by_norm
// torch's clip_grad_norm_: coef = max_norm / (sqrt(sumsq) + 1e-6) in double, x *= (float)coef when coef < 1.
// Bytes: 8 per element (read and write x) when it scales, none otherwise (4 bytes of sumsq per block).
static __global__ void __launch_bounds__(OPT_THREADS)
    clip_by_norm_kernel(float *__restrict__ x, size_t n, size_t head, size_t nvec, const float *__restrict__ sumsq,
                        double max_norm) {
    const double coef = max_norm / (sqrt((double)sumsq[0]) + 1e-6);
    if (!(coef < 1.0)) return;  // uniform over the grid; NaN norms leave x alone, as on the CPU
    const float f = (float)coef;
    float4 *x4 = reinterpret_cast<float4 *>(x + head);
    const size_t stride = (size_t)gridDim.x * blockDim.x, tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t j = tid;
    for (; j + stride < nvec; j += 2 * stride) {
        float4 a = x4[j], b = x4[j + stride];
        a.x = __fmul_rn(a.x, f), a.y = __fmul_rn(a.y, f), a.z = __fmul_rn(a.z, f), a.w = __fmul_rn(a.w, f);
        b.x = __fmul_rn(b.x, f), b.y = __fmul_rn(b.y, f), b.z = __fmul_rn(b.z, f), b.w = __fmul_rn(b.w, f);
        x4[j] = a, x4[j + stride] = b;
    }
    if (j < nvec) {
        float4 a = x4[j];
        a.x = __fmul_rn(a.x, f), a.y = __fmul_rn(a.y, f), a.z = __fmul_rn(a.z, f), a.w = __fmul_rn(a.w, f);
        x4[j] = a;
    }
    for (size_t q = tid; q < n - 4 * nvec; q += stride) {
        const size_t i = opt_scalar_at(q, head, nvec);
        x[i] = __fmul_rn(x[i], f);
    }
}

// ---------------------------------------------------------------- AdamW
typedef struct {
    float decay, step_size, bc2_sqrt, one_minus_b1, b2, one_minus_b2, eps;
} AdamConsts;

// torch.optim.AdamW, single-tensor path, as optim_cpu.c, one element (p, m, v updated in place):
//   p *= 1 - lr*wd;  m += (1-b1)*(g - m);  v = b2*v + (1-b2)*g*g;
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps;  p -= lr / (1 - b1^t) * m / denom
static __device__ __forceinline__ void adamw_one(float &p, float g, float &m, float &v, const AdamConsts &k) {
    const float mi = __fadd_rn(m, __fmul_rn(k.one_minus_b1, __fsub_rn(g, m)));
    const float vi = __fadd_rn(__fmul_rn(k.b2, v), __fmul_rn(__fmul_rn(k.one_minus_b2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
    p = __fsub_rn(__fmul_rn(p, k.decay), __fmul_rn(k.step_size, __fdiv_rn(mi, denom)));
    m = mi;
    v = vi;
}

static __device__ __forceinline__ void adamw_four(float4 &p, float4 g, float4 &m, float4 &v, const AdamConsts &k) {
    adamw_one(p.x, g.x, m.x, v.x, k);
    adamw_one(p.y, g.y, m.y, v.y, k);
    adamw_one(p.z, g.z, m.z, v.z, k);
    adamw_one(p.w, g.w, m.w, v.w, k);
}

// Bytes: 30 per parameter (read p, g, m, v: 16; write p, m, v: 12; working: 2), 28 without the working copy.
// Groups j (and j + stride) of the float4 views: 8 (4 arrays x 2) 16-byte loads in flight per thread.
template <bool WORK>
static __global__ void __launch_bounds__(OPT_THREADS)
    adamw_kernel(float *__restrict__ param, bf16 *__restrict__ working, const float *__restrict__ grad,
                 float *__restrict__ m, float *__restrict__ v, size_t n, size_t head, size_t nvec, AdamConsts k,
                 const float *__restrict__ skip) {
    if (skip && *skip != 0.0f) return;  // a numerical fault this step: the update is dropped
    float4 *p4 = reinterpret_cast<float4 *>(param + head), *m4 = reinterpret_cast<float4 *>(m + head);
    float4 *v4 = reinterpret_cast<float4 *>(v + head);
    const float4 *g4 = reinterpret_cast<const float4 *>(grad + head);
    uint2 *w4 = WORK ? reinterpret_cast<uint2 *>(working + head) : nullptr;
    const size_t stride = (size_t)gridDim.x * blockDim.x, tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t j = tid;
    for (; j + stride < nvec; j += 2 * stride) {
        const size_t j1 = j + stride;
        float4 pa = p4[j], ma = m4[j], va = v4[j];
        const float4 ga = g4[j];
        float4 pb = p4[j1], mb = m4[j1], vb = v4[j1];
        const float4 gb = g4[j1];
        adamw_four(pa, ga, ma, va, k);
        adamw_four(pb, gb, mb, vb, k);
        p4[j] = pa, m4[j] = ma, v4[j] = va;
        p4[j1] = pb, m4[j1] = mb, v4[j1] = vb;
        if (WORK) w4[j] = bf16x4_of(pa), w4[j1] = bf16x4_of(pb);
    }
    if (j < nvec) {
        float4 pa = p4[j], ma = m4[j], va = v4[j];
        const float4 ga = g4[j];
        adamw_four(pa, ga, ma, va, k);
        p4[j] = pa, m4[j] = ma, v4[j] = va;
        if (WORK) w4[j] = bf16x4_of(pa);
    }
    for (size_t q = tid; q < n - 4 * nvec; q += stride) {
        const size_t i = opt_scalar_at(q, head, nvec);
        float p = param[i], mi = m[i], vi = v[i];
        adamw_one(p, grad[i], mi, vi, k);
        param[i] = p, m[i] = mi, v[i] = vi;
        if (WORK) working[i] = __float2bfloat16_rn(p);
    }
}

// ---------------------------------------------------------------- EMA
// target = momentum * target + (1 - momentum) * source
static __device__ __forceinline__ float ema_one(float t, float s, float mom, float rest) {
    return __fadd_rn(__fmul_rn(mom, t), __fmul_rn(rest, s));
}
static __device__ __forceinline__ float4 ema_four(float4 t, float4 s, float mom, float rest) {
    return make_float4(ema_one(t.x, s.x, mom, rest), ema_one(t.y, s.y, mom, rest), ema_one(t.z, s.z, mom, rest),
                       ema_one(t.w, s.w, mom, rest));
}

// Bytes: 14 per parameter (read target, source: 8; write target: 4; working: 2), 12 without the working copy.
template <bool WORK>
static __global__ void __launch_bounds__(OPT_THREADS)
    ema_kernel(float *__restrict__ target, bf16 *__restrict__ working, const float *__restrict__ source, size_t n,
               size_t head, size_t nvec, float mom, float rest, const float *__restrict__ skip) {
    if (skip && *skip != 0.0f) return;
    float4 *t4 = reinterpret_cast<float4 *>(target + head);
    const float4 *s4 = reinterpret_cast<const float4 *>(source + head);
    uint2 *w4 = WORK ? reinterpret_cast<uint2 *>(working + head) : nullptr;
    const size_t stride = (size_t)gridDim.x * blockDim.x, tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t j = tid;
    for (; j + stride < nvec; j += 2 * stride) {
        const size_t j1 = j + stride;
        const float4 ta = t4[j], sa = s4[j], tb = t4[j1], sb = s4[j1];
        const float4 ra = ema_four(ta, sa, mom, rest), rb = ema_four(tb, sb, mom, rest);
        t4[j] = ra, t4[j1] = rb;
        if (WORK) w4[j] = bf16x4_of(ra), w4[j1] = bf16x4_of(rb);
    }
    if (j < nvec) {
        const float4 ra = ema_four(t4[j], s4[j], mom, rest);
        t4[j] = ra;
        if (WORK) w4[j] = bf16x4_of(ra);
    }
    for (size_t q = tid; q < n - 4 * nvec; q += stride) {
        const size_t i = opt_scalar_at(q, head, nvec);
        const float t = ema_one(target[i], source[i], mom, rest);
        target[i] = t;
        if (WORK) working[i] = __float2bfloat16_rn(t);
    }
}

// ---------------------------------------------------------------- AdamW with the EMA folded in
// adamw_one, then ema_one with the new parameter as the source: the two kernels' arithmetic, element by element,
// so the results are theirs bit for bit; the new weights never leave registers between the two.
static __device__ __forceinline__ void adamw_ema_four(float4 &p, float4 g, float4 &m, float4 &v, float4 &t,
                                                      const AdamConsts &k, float mom, float rest) {
    adamw_four(p, g, m, v, k);
    t = ema_four(t, p, mom, rest);
}

// Bytes: 40 per parameter (read p, g, m, v, target: 20; write p, m, v, target: 16; both bf16 working copies: 4),
// 36 without the working copies; adamw then ema move 44 (30 + 14): the second read of p is what is saved.
// Groups j (and j + stride) of the float4 views: 10 (5 arrays x 2) 16-byte loads in flight per thread.
template <bool WORK>
static __global__ void __launch_bounds__(OPT_THREADS)
    adamw_ema_kernel(float *__restrict__ param, bf16 *__restrict__ working, const float *__restrict__ grad,
                     float *__restrict__ m, float *__restrict__ v, float *__restrict__ target,
                     bf16 *__restrict__ target_working, size_t n, size_t head, size_t nvec, AdamConsts k, float mom,
                     float rest, const float *__restrict__ skip) {
    if (skip && *skip != 0.0f) return;  // a numerical fault this step: neither the update nor the EMA happens
    float4 *p4 = reinterpret_cast<float4 *>(param + head), *m4 = reinterpret_cast<float4 *>(m + head);
    float4 *v4 = reinterpret_cast<float4 *>(v + head), *t4 = reinterpret_cast<float4 *>(target + head);
    const float4 *g4 = reinterpret_cast<const float4 *>(grad + head);
    uint2 *w4 = WORK ? reinterpret_cast<uint2 *>(working + head) : nullptr;
    uint2 *tw4 = WORK ? reinterpret_cast<uint2 *>(target_working + head) : nullptr;
    const size_t stride = (size_t)gridDim.x * blockDim.x, tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t j = tid;
    for (; j + stride < nvec; j += 2 * stride) {
        const size_t j1 = j + stride;
        float4 pa = p4[j], ma = m4[j], va = v4[j], ta = t4[j];
        const float4 ga = g4[j];
        float4 pb = p4[j1], mb = m4[j1], vb = v4[j1], tb = t4[j1];
        const float4 gb = g4[j1];
        adamw_ema_four(pa, ga, ma, va, ta, k, mom, rest);
        adamw_ema_four(pb, gb, mb, vb, tb, k, mom, rest);
        p4[j] = pa, m4[j] = ma, v4[j] = va, t4[j] = ta;
        p4[j1] = pb, m4[j1] = mb, v4[j1] = vb, t4[j1] = tb;
        if (WORK) w4[j] = bf16x4_of(pa), w4[j1] = bf16x4_of(pb), tw4[j] = bf16x4_of(ta), tw4[j1] = bf16x4_of(tb);
    }
    if (j < nvec) {
        float4 pa = p4[j], ma = m4[j], va = v4[j], ta = t4[j];
        adamw_ema_four(pa, g4[j], ma, va, ta, k, mom, rest);
        p4[j] = pa, m4[j] = ma, v4[j] = va, t4[j] = ta;
        if (WORK) w4[j] = bf16x4_of(pa), tw4[j] = bf16x4_of(ta);
    }
    for (size_t q = tid; q < n - 4 * nvec; q += stride) {
        const size_t i = opt_scalar_at(q, head, nvec);
        float p = param[i], mi = m[i], vi = v[i];
        adamw_one(p, grad[i], mi, vi, k);
        const float t = ema_one(target[i], p, mom, rest);
        param[i] = p, m[i] = mi, v[i] = vi, target[i] = t;
        if (WORK) working[i] = __float2bfloat16_rn(p), target_working[i] = __float2bfloat16_rn(t);
    }
}

// ---------------------------------------------------------------- numerical-fault flag
// One thread: n is a handful of statistics (losses, sums of squares).
static __global__ void nonfinite_flag_kernel(float *flag, const float *x, int n) {
    float any = 0.0f;
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) any = 1.0f;
    *flag = any;
}

// ---------------------------------------------------------------- cast
// Bytes: 6 per parameter (read master: 4; write working: 2).
static __global__ void __launch_bounds__(OPT_THREADS)
    cast_params_kernel(bf16 *__restrict__ working, const float *__restrict__ master, size_t n, size_t head,
                       size_t nvec) {
    const float4 *x4 = reinterpret_cast<const float4 *>(master + head);
    uint2 *w4 = reinterpret_cast<uint2 *>(working + head);
    const size_t stride = (size_t)gridDim.x * blockDim.x, tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t j = tid;
    for (; j + stride < nvec; j += 2 * stride) {
        const float4 a = x4[j], b = x4[j + stride];
        w4[j] = bf16x4_of(a), w4[j + stride] = bf16x4_of(b);
    }
    if (j < nvec) w4[j] = bf16x4_of(x4[j]);
    for (size_t q = tid; q < n - 4 * nvec; q += stride) {
        const size_t i = opt_scalar_at(q, head, nvec);
        working[i] = __float2bfloat16_rn(master[i]);
    }
}

// ---------------------------------------------------------------- launchers
extern "C" void cuda_sum_squares(cuda_stream s, float *out, const float *x, size_t n) {
    const void *arrays[1] = {x};
    const OptSplit sp = opt_split(n, arrays, 1, NULL, NULL);  // one array: scalars are the head and tail only
    size_t blocks = (sp.nvec + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    if (blocks == 0) blocks = 1;  // n < 4 (or 0: out = 0)
    if (blocks > 0x7fffffffu) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuda_sum_squares: n = %zu too large\n", __FILE__, __LINE__, n);
        exit(1);
    }
    double *partial = (double *)cuda_scratch(&sumsq_scratch, blocks * sizeof(double), "cuda_sum_squares");
    sum_squares_kernel<<<(unsigned)blocks, OPT_THREADS, 0, s>>>(partial, x, n, sp.head, sp.nvec);
    CUDA_CHECK_LAUNCH();
    sum_squares_finish_kernel<<<1, SUMSQ_FINISH_THREADS, 0, s>>>(out, partial, (unsigned)blocks);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_clip_by_norm(cuda_stream s, float *x, size_t n, const float *sumsq, float max_norm) {
    if (n == 0) return;
    const void *arrays[1] = {x};
    const OptSplit sp = opt_split(n, arrays, 1, NULL, NULL);
    const unsigned grid = opt_grid((const void *)clip_by_norm_kernel, &sp, n);
    clip_by_norm_kernel<<<grid, OPT_THREADS, 0, s>>>(x, n, sp.head, sp.nvec, sumsq, (double)max_norm);
    CUDA_CHECK_LAUNCH();
}

// AdamW's constants exactly as optim_cpu.c computes them: in double from the (double) hyper-parameters, then fp32.
static AdamConsts adam_consts(const char *who, float lr, float beta1, float beta2, float eps, float weight_decay,
                              long step) {
    if (step < 1) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: %s: step %ld (steps count from 1)\n", __FILE__, __LINE__, who, step);
        exit(1);
    }
    const double dlr = lr, db1 = beta1, db2 = beta2;
    AdamConsts k;
    k.decay = (float)(1.0 - dlr * (double)weight_decay);
    k.step_size = (float)(dlr / (1.0 - pow(db1, (double)step)));
    k.bc2_sqrt = (float)sqrt(1.0 - pow(db2, (double)step));
    k.one_minus_b1 = (float)(1.0 - db1);
    k.b2 = (float)db2;
    k.one_minus_b2 = (float)(1.0 - db2);
    k.eps = eps;
    return k;
}

// The EMA's constants: momentum and 1 - momentum (in double) rounded to fp32.
static void ema_consts(float momentum, float *mom, float *rest) {
    const double dm = momentum;
    *mom = (float)dm;
    *rest = (float)(1.0 - dm);
}

extern "C" void cuda_adamw(cuda_stream s, float *param, bf16_bits *working, const float *grad, float *m, float *v,
                           size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, long step,
                           const float *skip) {
    const AdamConsts k = adam_consts("cuda_adamw", lr, beta1, beta2, eps, weight_decay, step);
    if (n == 0) return;
    if ((void *)working == (void *)param) working = NULL;  // backend.h: working == param means none
    const void *arrays[4] = {param, grad, m, v};
    const OptSplit sp = opt_split(n, arrays, 4, working, NULL);
    if (working) {
        const unsigned grid = opt_grid((const void *)adamw_kernel<true>, &sp, n);
        adamw_kernel<true><<<grid, OPT_THREADS, 0, s>>>(param, BF16(working), grad, m, v, n, sp.head, sp.nvec, k, skip);
    } else {
        const unsigned grid = opt_grid((const void *)adamw_kernel<false>, &sp, n);
        adamw_kernel<false><<<grid, OPT_THREADS, 0, s>>>(param, NULL, grad, m, v, n, sp.head, sp.nvec, k, skip);
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_ema(cuda_stream s, float *target, bf16_bits *working, const float *source, size_t n,
                         float momentum, const float *skip) {
    if (n == 0) return;
    if ((void *)working == (void *)target) working = NULL;
    float fmom, rest;
    ema_consts(momentum, &fmom, &rest);
    const void *arrays[2] = {target, source};
    const OptSplit sp = opt_split(n, arrays, 2, working, NULL);
    if (working) {
        const unsigned grid = opt_grid((const void *)ema_kernel<true>, &sp, n);
        ema_kernel<true><<<grid, OPT_THREADS, 0, s>>>(target, BF16(working), source, n, sp.head, sp.nvec, fmom, rest, skip);
    } else {
        const unsigned grid = opt_grid((const void *)ema_kernel<false>, &sp, n);
        ema_kernel<false><<<grid, OPT_THREADS, 0, s>>>(target, NULL, source, n, sp.head, sp.nvec, fmom, rest, skip);
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_adamw_ema(cuda_stream s, float *param, bf16_bits *working, const float *grad, float *m, float *v,
                               float *target, bf16_bits *target_working, size_t n, float lr, float beta1, float beta2,
                               float eps, float weight_decay, long step, float momentum, const float *skip) {
    const AdamConsts k = adam_consts("cuda_adamw_ema", lr, beta1, beta2, eps, weight_decay, step);
    if (n == 0) return;
    if ((void *)working == (void *)param) working = NULL;
    if ((void *)target_working == (void *)target) target_working = NULL;
    if ((working == NULL) != (target_working == NULL)) {  // one working copy without the other: not a trainer's case
        cuda_adamw(s, param, working, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, skip);
        cuda_ema(s, target, target_working, param, n, momentum, skip);
        return;
    }
    float fmom, rest;
    ema_consts(momentum, &fmom, &rest);
    const void *arrays[5] = {param, grad, m, v, target};
    const OptSplit sp = opt_split(n, arrays, 5, working, target_working);
    if (working) {
        const unsigned grid = opt_grid((const void *)adamw_ema_kernel<true>, &sp, n);
        adamw_ema_kernel<true><<<grid, OPT_THREADS, 0, s>>>(param, BF16(working), grad, m, v, target,
                                                            BF16(target_working), n, sp.head, sp.nvec, k, fmom, rest,
                                                            skip);
    } else {
        const unsigned grid = opt_grid((const void *)adamw_ema_kernel<false>, &sp, n);
        adamw_ema_kernel<false><<<grid, OPT_THREADS, 0, s>>>(param, NULL, grad, m, v, target, NULL, n, sp.head,
                                                             sp.nvec, k, fmom, rest, skip);
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_nonfinite_flag(cuda_stream s, float *flag, const float *x, int n) {
    nonfinite_flag_kernel<<<1, 1, 0, s>>>(flag, x, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_cast_params(cuda_stream s, bf16_bits *working, const float *master, size_t n) {
    if (n == 0) return;
    const void *arrays[1] = {master};
    const OptSplit sp = opt_split(n, arrays, 1, working, NULL);
    const unsigned grid = opt_grid((const void *)cast_params_kernel, &sp, n);
    cast_params_kernel<<<grid, OPT_THREADS, 0, s>>>(BF16(working), master, n, sp.head, sp.nvec);
    CUDA_CHECK_LAUNCH();
}
