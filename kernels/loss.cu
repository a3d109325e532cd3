// loss.cu: the L1 prediction loss and the column-std collapse statistic, the CUDA twin of loss_cpu.c.
// Both sums run in double in a fixed order, so the values are bitwise reproducible and the same on every GPU:
// - l1_loss: a grid of min(ceil(n/256), 1024) blocks (a function of n only) walks the elements grid-stride, each
//   thread adding |pred - target| in double, each block reducing its threads in a fixed tree into one partial in a
//   static device array; one block of 1024 threads then adds the partials in a fixed tree and does
//   loss_out[0] += (float)(sum / n * loss_scale). The gradient is written in the same pass as the sum.
// - mean_column_std: two passes per column. Partial column sums over fixed row chunks (double, rows in order) into
//   a workspace [chunks, C]; a kernel per column adds them in chunk order -> mean; then the same for the squared
//   deviations -> population std per column; one block adds the C stds in a fixed tree and does
//   out[0] += (float)(scale * sum / C). The workspace grows on first use (cuda_common.cuh): not thread-safe,
//   one stream.
#include "cuda_common.cuh"

#define L1_THREADS 256
#define L1_MAX_BLOCKS 1024  // partial sums; the finishing block has one thread per partial
#define MCS_CHUNK_ROWS 256  // rows per partial column sum
#define MCS_THREADS 256

static __device__ double l1_partials[L1_MAX_BLOCKS];
static CudaScratch mcs_scratch;

// dpred[i] += sign(pred - target) * g (sign(0) = 0, as torch.sign); when want_loss, l1_partials[block] = the
// block's sum of |pred - target| in double
static __global__ void l1_loss_kernel(bf16 *__restrict__ dpred, const bf16 *__restrict__ pred,
                                      const bf16 *__restrict__ target, size_t n, float g, int want_loss) {
    double acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float d = __bfloat162float(pred[i]) - __bfloat162float(target[i]);
        acc += (double)fabsf(d);
        if (dpred) {
            const float step = d > 0.0f ? g : d < 0.0f ? -g : 0.0f;
            dpred[i] = __float2bfloat16_rn(__bfloat162float(dpred[i]) + step);
        }
    }
    if (want_loss) {  // uniform over the block
        acc = cuda_block_sum_d(acc);
        if (threadIdx.x == 0) l1_partials[blockIdx.x] = acc;
    }
}

// one block of L1_MAX_BLOCKS threads: loss_out[0] += (float)(sum of the partials / n * loss_scale)
static __global__ void l1_loss_finish_kernel(float *__restrict__ loss_out, int blocks, size_t n, double loss_scale) {
    double v = (int)threadIdx.x < blocks ? l1_partials[threadIdx.x] : 0.0;
    v = cuda_block_sum_d(v);
    if (threadIdx.x == 0) loss_out[0] += (float)(v / (double)n * loss_scale);
}

// partial[k*C + c] = sum over the rows of chunk k of x[r,c] (mean NULL) or of (x[r,c] - mean[c])^2, in double
static __global__ void column_partial_kernel(double *__restrict__ partial, const bf16 *__restrict__ x,
                                             const double *__restrict__ mean, int R, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int r0 = blockIdx.y * MCS_CHUNK_ROWS;
    const int r1 = R - r0 < MCS_CHUNK_ROWS ? R : r0 + MCS_CHUNK_ROWS;
    double acc = 0;
    if (mean) {
        const double mu = mean[c];
        for (int r = r0; r < r1; r++) {
            const double d = (double)__bfloat162float(x[(size_t)r * C + c]) - mu;
            acc += d * d;
        }
    } else {
        for (int r = r0; r < r1; r++) acc += (double)__bfloat162float(x[(size_t)r * C + c]);
    }
    partial[(size_t)blockIdx.y * C + c] = acc;
}

// stat[c] = (sum_k partial[k*C + c]) / R, chunks in order; its square root when take_sqrt
static __global__ void column_finish_kernel(double *__restrict__ stat, const double *__restrict__ partial, int chunks,
                                            int R, int C, int take_sqrt) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double acc = 0;
    for (int k = 0; k < chunks; k++) acc += partial[(size_t)k * C + c];
    const double v = acc / (double)R;
    stat[c] = take_sqrt ? sqrt(v) : v;
}

// one block: out[0] += (float)(scale * mean of col_std[0..C))
static __global__ void mean_of_columns_kernel(float *__restrict__ out, const double *__restrict__ col_std, int C,
                                              double scale) {
    double acc = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) acc += col_std[c];
    acc = cuda_block_sum_d(acc);
    if (threadIdx.x == 0) out[0] += (float)(scale * (acc / (double)C));
}

extern "C" void cuda_l1_loss(cuda_stream s, float *loss_out, bf16_bits *dpred, const bf16_bits *pred,
                             const bf16_bits *target, size_t n, float loss_scale, float grad_scale) {
    if (n == 0 || (!loss_out && !dpred)) return;
    const size_t want = (n + L1_THREADS - 1) / L1_THREADS;
    const int blocks = want > L1_MAX_BLOCKS ? L1_MAX_BLOCKS : (int)want;
    const float g = (float)((double)grad_scale / (double)n);
    l1_loss_kernel<<<blocks, L1_THREADS, 0, s>>>(BF16(dpred), CBF16(pred), CBF16(target), n, g, loss_out != NULL);
    CUDA_CHECK_LAUNCH();
    if (loss_out) {
        l1_loss_finish_kernel<<<1, L1_MAX_BLOCKS, 0, s>>>(loss_out, blocks, n, (double)loss_scale);
        CUDA_CHECK_LAUNCH();
    }
}

extern "C" void cuda_mean_column_std(cuda_stream s, float *out, const bf16_bits *x, int R, int C, float scale) {
    if (R <= 0 || C <= 0) return;
    const int chunks = (R + MCS_CHUNK_ROWS - 1) / MCS_CHUNK_ROWS;
    if (chunks > 65535) {  // gridDim.y limit: R above 16.7M rows
        fflush(stdout);
        fprintf(stderr, "internal error: %s:%d: cuda_mean_column_std: R = %d rows exceeds %d\n", __FILE__, __LINE__, R,
                65535 * MCS_CHUNK_ROWS);
        exit(1);
    }
    double *partial = (double *)cuda_scratch(&mcs_scratch, ((size_t)chunks + 1) * C * sizeof(double),
                                             "cuda_mean_column_std");  // [chunks, C]
    double *stat = partial + (size_t)chunks * C;                        // [C] column means, then column stds
    const unsigned col_blocks = (unsigned)((C + MCS_THREADS - 1) / MCS_THREADS);
    const dim3 grid(col_blocks, (unsigned)chunks);
    column_partial_kernel<<<grid, MCS_THREADS, 0, s>>>(partial, CBF16(x), NULL, R, C);
    CUDA_CHECK_LAUNCH();
    column_finish_kernel<<<col_blocks, MCS_THREADS, 0, s>>>(stat, partial, chunks, R, C, 0);
    CUDA_CHECK_LAUNCH();
    column_partial_kernel<<<grid, MCS_THREADS, 0, s>>>(partial, CBF16(x), stat, R, C);
    CUDA_CHECK_LAUNCH();
    column_finish_kernel<<<col_blocks, MCS_THREADS, 0, s>>>(stat, partial, chunks, R, C, 1);
    CUDA_CHECK_LAUNCH();
    mean_of_columns_kernel<<<1, 1024, 0, s>>>(out, stat, C, (double)scale);
    CUDA_CHECK_LAUNCH();
}
