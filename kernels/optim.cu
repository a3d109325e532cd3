// optim.cu: flat-buffer optimizer ops on fp32 master parameters, the CUDA twin of optim_cpu.c: squared norm,
// clipping by a norm that stays on the device, AdamW and EMA (each also writing the bf16 working copy in the same
// pass), and the working-copy cast.
//
// sum_squares: accumulated in double (not fp32 Kahan). A grid of min(ceil(n/256), 1024) blocks (a function of n
// only) walks x grid-stride, each thread summing x^2 in double, each block reducing its threads in a fixed tree into
// a partial in a static device array; one block of 1024 threads adds the partials in a fixed tree and writes
// out[0] = (float)sum. Bitwise reproducible, the same on every GPU.
// AdamW and EMA follow optim_cpu.c operation by operation, with the fp32 roundings spelled out (__fmul_rn,
// __fadd_rn, ...: no fused multiply-adds), and their constants computed on the host in double exactly as there,
// so they reproduce the CPU reference's fp32 results.
#include "cuda_common.cuh"

#define OPT_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024  // partial sums; the finishing block has one thread per partial

static __device__ double sumsq_partials[SUMSQ_MAX_BLOCKS];

static __global__ void sum_squares_kernel(const float *__restrict__ x, size_t n) {
    double acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const double v = (double)x[i];
        acc += v * v;
    }
    acc = cuda_block_sum_d(acc);
    if (threadIdx.x == 0) sumsq_partials[blockIdx.x] = acc;
}

// one block of SUMSQ_MAX_BLOCKS threads: out[0] = (float)(sum of the partials)
static __global__ void sum_squares_finish_kernel(float *__restrict__ out, int blocks) {
    double v = (int)threadIdx.x < blocks ? sumsq_partials[threadIdx.x] : 0.0;
    v = cuda_block_sum_d(v);
    if (threadIdx.x == 0) out[0] = (float)v;
}

// torch's clip_grad_norm_: coef = max_norm / (sqrt(sumsq) + 1e-6) in double, x *= (float)coef when coef < 1
static __global__ void clip_by_norm_kernel(float *__restrict__ x, size_t n, const float *__restrict__ sumsq,
                                           double max_norm) {
    const double coef = max_norm / (sqrt((double)sumsq[0]) + 1e-6);
    if (!(coef < 1.0)) return;  // uniform over the grid; NaN norms leave x alone, as on the CPU
    const float f = (float)coef;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], f);
}

// torch.optim.AdamW, single-tensor path, as optim_cpu.c:
//   p *= 1 - lr*wd;  m += (1-b1)*(g - m);  v = b2*v + (1-b2)*g*g;
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps;  p -= lr / (1 - b1^t) * m / denom
static __global__ void adamw_kernel(float *__restrict__ param, bf16 *__restrict__ working,
                                    const float *__restrict__ grad, float *__restrict__ m, float *__restrict__ v,
                                    size_t n, float decay, float step_size, float bc2_sqrt, float one_minus_b1,
                                    float b2, float one_minus_b2, float eps) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grad[i], m0 = m[i], v0 = v[i];
        const float mi = __fadd_rn(m0, __fmul_rn(one_minus_b1, __fsub_rn(g, m0)));
        const float vi = __fadd_rn(__fmul_rn(b2, v0), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        const float p = __fsub_rn(__fmul_rn(param[i], decay), __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        if (working) working[i] = __float2bfloat16_rn(p);
    }
}

// target = momentum * target + (1 - momentum) * source
static __global__ void ema_kernel(float *__restrict__ target, bf16 *__restrict__ working,
                                  const float *__restrict__ source, size_t n, float mom, float rest) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float t = __fadd_rn(__fmul_rn(mom, target[i]), __fmul_rn(rest, source[i]));
        target[i] = t;
        if (working) working[i] = __float2bfloat16_rn(t);
    }
}

static __global__ void cast_params_kernel(bf16 *__restrict__ working, const float *__restrict__ master, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        working[i] = __float2bfloat16_rn(master[i]);
}

extern "C" void cuda_sum_squares(cuda_stream s, float *out, const float *x, size_t n) {
    const size_t want = (n + OPT_THREADS - 1) / OPT_THREADS;
    const int blocks = want == 0 ? 1 : want > SUMSQ_MAX_BLOCKS ? SUMSQ_MAX_BLOCKS : (int)want;  // n = 0: out = 0
    sum_squares_kernel<<<blocks, OPT_THREADS, 0, s>>>(x, n);
    CUDA_CHECK_LAUNCH();
    sum_squares_finish_kernel<<<1, SUMSQ_MAX_BLOCKS, 0, s>>>(out, blocks);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_clip_by_norm(cuda_stream s, float *x, size_t n, const float *sumsq, float max_norm) {
    if (n == 0) return;
    clip_by_norm_kernel<<<cuda_grid_1d(n, OPT_THREADS), OPT_THREADS, 0, s>>>(x, n, sumsq, (double)max_norm);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_adamw(cuda_stream s, float *param, bf16_bits *working, const float *grad, float *m, float *v,
                           size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, long step) {
    if (step < 1) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuda_adamw: step %ld (steps count from 1)\n", __FILE__, __LINE__, step);
        exit(1);
    }
    if (n == 0) return;
    if ((void *)working == (void *)param) working = NULL;  // backend.h: working == param means none
    // the constants exactly as optim_cpu.c computes them: in double from the (double) hyper-parameters, then fp32
    const double dlr = lr, db1 = beta1, db2 = beta2;
    const float decay = (float)(1.0 - dlr * (double)weight_decay);
    const float step_size = (float)(dlr / (1.0 - pow(db1, (double)step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(db2, (double)step));
    adamw_kernel<<<cuda_grid_1d(n, OPT_THREADS), OPT_THREADS, 0, s>>>(
        param, BF16(working), grad, m, v, n, decay, step_size, bc2_sqrt, (float)(1.0 - db1), (float)db2,
        (float)(1.0 - db2), eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_ema(cuda_stream s, float *target, bf16_bits *working, const float *source, size_t n,
                         float momentum) {
    if (n == 0) return;
    if ((void *)working == (void *)target) working = NULL;
    const double mom = momentum;
    ema_kernel<<<cuda_grid_1d(n, OPT_THREADS), OPT_THREADS, 0, s>>>(target, BF16(working), source, n, (float)mom,
                                                                   (float)(1.0 - mom));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_cast_params(cuda_stream s, bf16_bits *working, const float *master, size_t n) {
    if (n == 0) return;
    cast_params_kernel<<<cuda_grid_1d(n, OPT_THREADS), OPT_THREADS, 0, s>>>(BF16(working), master, n);
    CUDA_CHECK_LAUNCH();
}
