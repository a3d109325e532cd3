// matmul.cu: the dense layers on cuBLASLt (cuda_ops.h), bf16 inputs with fp32 accumulation; the CPU reference is
// kernels/matmul_cpu.c.
//
// Row-major onto cuBLAS's column-major. A row-major matrix X[r,c] (row stride c) is, read column-major, the matrix
// X^T of c rows and r columns with leading dimension c, in the same bytes. So every product is computed on the
// transposes, C^T = B^T A^T, and no data moves (T(X) below: cuBLAS transposes operand X):
//   op        row-major                          column-major, what cuBLAS computes          cuBLAS m, n, k  opA opB
//   forward   out[M,N] = inp[M,K] @ w[N,K]^T     out^T (N x M) = T(w^T: K x N) @ inp^T (K x M)    N, M, K     T   N
//   dinp      dinp[M,K] += dout[M,N] @ w[N,K]    dinp^T (K x M) = w^T (K x N) @ dout^T (N x M)    K, M, N     N   N
//   dw        dw[N,K] += dout^T @ inp[M,K]       dw^T (K x N) = inp^T (K x M) @ T(dout^T: N x M)  K, N, M     N   T
// Every leading dimension is the row length of the row-major matrix: K for w, inp, dinp and dw; N for out and dout.
// The forward's bias epilogue adds bias[i] to row i of the column-major result, which is output feature i. dinp and
// dw accumulate (beta = 1); dw's C and D are fp32, everything else bf16; compute and scale fp32.
// dbias[N] += column sums of dout is our own two-pass reduction (fixed row chunks summed in a fixed order), not the
// BGRADB epilogue, whose summation order cuBLASLt does not document. A bias whose address is not 16-byte aligned
// (cuBLASLt's epilogue fails on it) is added by a separate kernel after the GEMM.
//
// GELU epilogues (cuda_matmul_fwd_gelu, cuda_matmul_bwd_dgelu; the backend uses them only with JEPA_FUSE_GELU=1):
// GELU_AUX(_BIAS) writes gelu(out) to D and the pre-activation to the aux matrix (bf16 as D, ld N); DGELU multiplies
// the dinp product by gelu'(aux) (aux = the forward's pre-activation, ld K) and so needs beta = 0: d_pre is written.
// cuBLASLt's GELU is the tanh approximation, not V-JEPA's exact erf GELU (PyTorch's addmm_activation falls back to
// gelu(approximate="tanh") to match it, aten/src/ATen/native/cuda/Blas.cpp): it differs by at most 4.7e-4 in gelu and
// 8.7e-4 in its derivative (2e-4 and 5e-4 in relative norm over unit normal inputs), under bf16's rounding but
// systematic. Its aux must be 16-byte aligned with ld a multiple of 8 (cublasLt.h, EPILOGUE_AUX_LD); shapes or
// pointers outside that, or with no algorithm, return 0 and the caller runs the unfused ops.
//
// Algorithms: cublasLtMatmulAlgoGetHeuristic once per (kind, M, N, K, pointer alignments), kept with its descriptors
// in a hash table, so a shape runs the same algorithm for the whole process. With `deterministic`, split-K schemes
// that reduce in place through the output are excluded as well; the others reduce in a fixed order. Bitwise
// reproducibility then holds for the same cuBLASLt version, GPU model and inputs (cuBLAS's own guarantee).
//
// One 32 MiB workspace serves every GEMM and the dbias partial sums: all of them run on the backend's one compute
// stream, in order. A second stream issuing GEMMs concurrently would need its own workspace.
#include <cublasLt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

#define MATMUL_WORKSPACE_BYTES ((size_t)32 << 20)
#define BIAS_EPILOGUE_ALIGN 16   // cuBLASLt's bias epilogue fails on less; such biases are added by add_bias_kernel
#define DBIAS_ROWS_PER_CHUNK 256 // dbias pass 1: at least this many rows per partial sum
#define DBIAS_MAX_CHUNKS 64

// cuBLASLt calls, reported as cuda_common.cuh's CUDA_CHECK reports runtime calls: the call, file, line, status; exit 1.
#define CUBLAS_CHECK(call)                                                                                    \
    do {                                                                                                      \
        cublasStatus_t cublas_check_st_ = (call);                                                             \
        if (cublas_check_st_ != CUBLAS_STATUS_SUCCESS) {                                                      \
            fflush(stdout);                                                                                   \
            fprintf(stderr, "internal error: %s:%d: %s failed: %s (status %d)\n", __FILE__, __LINE__, #call,  \
                    cublasLtGetStatusString(cublas_check_st_), (int)cublas_check_st_);                        \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)

typedef enum {
    GEMM_FWD = 0, GEMM_FWD_BIAS = 1, GEMM_DINP = 2, GEMM_DW = 3,
    GEMM_FWD_GELU = 4, GEMM_FWD_GELU_BIAS = 5, GEMM_DINP_DGELU = 6  // the GELU epilogues (aux matrix)
} GemmKind;
static const char *const GEMM_NAMES[] = {"forward", "forward+bias", "dinp", "dw", "forward+gelu", "forward+bias+gelu",
                                         "dinp+dgelu"};

typedef struct {
    int kind, M, N, K;
    uint32_t align[4];  // bytes, A B C D as cuBLAS sees them (powers of two up to 256)
    uint32_t aux_align; // bytes, the GELU epilogues' aux matrix (0: none)
} GemmKey;

typedef struct {
    GemmKey key;
    int used;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, cd;  // C and D share a layout (same type, shape, ld)
    cublasLtMatmulAlgo_t algo;
    size_t workspace;  // bytes the algorithm asked for
    int none;          // the heuristic found no algorithm (kept, so that the search is not repeated)
} GemmPlan;

static struct {
    int ready, deterministic;
    cublasLtHandle_t lt;
    void *workspace;      // MATMUL_WORKSPACE_BYTES
    GemmPlan *plans;      // open addressing, `capacity` a power of two
    size_t capacity, count;
} g_mm;

static uint32_t ptr_align(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && a % al) al >>= 1;
    return al;
}

static uint64_t key_hash(const GemmKey *k) {  // FNV-1a over the key's bytes (the key has no padding)
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(*k); i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static GemmPlan *plan_slot(GemmPlan *plans, size_t capacity, const GemmKey *k) {
    size_t i = key_hash(k) & (capacity - 1);
    while (plans[i].used && memcmp(&plans[i].key, k, sizeof(*k)) != 0) i = (i + 1) & (capacity - 1);
    return &plans[i];
}

static void plans_grow(void) {
    const size_t cap = g_mm.capacity ? 2 * g_mm.capacity : 256;
    GemmPlan *fresh = (GemmPlan *)calloc(cap, sizeof(GemmPlan));
    if (!fresh) {
        fprintf(stderr, "internal error: %s:%d: out of host memory for %zu GEMM plans\n", __FILE__, __LINE__, cap);
        exit(1);
    }
    for (size_t i = 0; i < g_mm.capacity; i++)
        if (g_mm.plans[i].used) *plan_slot(fresh, cap, &g_mm.plans[i].key) = g_mm.plans[i];
    free(g_mm.plans);
    g_mm.plans = fresh;
    g_mm.capacity = cap;
}

static void plans_clear(void) {
    for (size_t i = 0; i < g_mm.capacity; i++) {
        GemmPlan *p = &g_mm.plans[i];
        if (!p->used) continue;
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->cd));
    }
    free(g_mm.plans);
    g_mm.plans = NULL;
    g_mm.capacity = g_mm.count = 0;
}

extern "C" void cuda_matmul_init(int deterministic) {
    if (g_mm.ready) {
        if (g_mm.deterministic != deterministic) plans_clear();  // plans were chosen under the other policy
        g_mm.deterministic = deterministic;
        return;
    }
    CUBLAS_CHECK(cublasLtCreate(&g_mm.lt));
    CUDA_CHECK(cudaMalloc(&g_mm.workspace, MATMUL_WORKSPACE_BYTES));
    g_mm.deterministic = deterministic;
    g_mm.ready = 1;
}

static void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *value, size_t size) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, value, size));
}

static int is_gelu_kind(int kind) { return kind >= GEMM_FWD_GELU; }

// The GELU epilogues' settings: epilogue, aux pointer (for the heuristic's alignment guess) and its ld = cuBLAS's m.
static void set_gelu_epilogue(cublasLtMatmulDesc_t d, int kind, const void *aux, int64_t ld) {
    const cublasLtEpilogue_t epi = kind == GEMM_FWD_GELU        ? CUBLASLT_EPILOGUE_GELU_AUX
                                   : kind == GEMM_FWD_GELU_BIAS ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                                                : CUBLASLT_EPILOGUE_DGELU;
    set_attr(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
    set_attr(d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux));
    set_attr(d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld));
}

// The plan for one GEMM shape: descriptors (column-major view, see the top of the file) and the algorithm. aux: the
// GELU kinds' aux matrix. A GELU kind with no algorithm gives a plan marked `none`; any other kind exits.
static GemmPlan *plan_for(const GemmKey *k, const void *aux) {
    if (!g_mm.ready) {
        fprintf(stderr, "internal error: %s:%d: cuda_matmul_init was not called\n", __FILE__, __LINE__);
        exit(1);
    }
    if (2 * (g_mm.count + 1) > g_mm.capacity) plans_grow();
    GemmPlan *p = plan_slot(g_mm.plans, g_mm.capacity, k);
    if (p->used) return p;
    memset(p, 0, sizeof(*p));
    p->key = *k;
    const cublasOperation_t T = CUBLAS_OP_T, N = CUBLAS_OP_N;
    cublasOperation_t opa = N, opb = N;
    uint64_t m, n;                              // cuBLAS's m and n (k follows from the layouts and ops)
    uint64_t a_rows, a_cols, b_rows, b_cols;    // stored (column-major) shapes of A and B
    cudaDataType_t cd_type = CUDA_R_16BF;
    switch (k->kind) {
    case GEMM_FWD:
    case GEMM_FWD_BIAS:
    case GEMM_FWD_GELU:
    case GEMM_FWD_GELU_BIAS:  // A = w^T (K x N), B = inp^T (K x M), D = out^T (N x M)
        m = k->N, n = k->M, opa = T;
        a_rows = k->K, a_cols = k->N, b_rows = k->K, b_cols = k->M;
        break;
    case GEMM_DINP:
    case GEMM_DINP_DGELU:  // A = w^T (K x N), B = dout^T (N x M), D = dinp^T (K x M)
        m = k->K, n = k->M;
        a_rows = k->K, a_cols = k->N, b_rows = k->N, b_cols = k->M;
        break;
    default:  // GEMM_DW: A = inp^T (K x M), B = dout^T (N x M) transposed, D = dw^T (K x N) fp32
        m = k->K, n = k->N, opb = T, cd_type = CUDA_R_32F;
        a_rows = k->K, a_cols = k->M, b_rows = k->N, b_cols = k->M;
        break;
    }
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa));
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb));
    if (k->kind == GEMM_FWD_BIAS) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
    }
    if (is_gelu_kind(k->kind)) set_gelu_epilogue(p->desc, k->kind, aux, (int64_t)m);
    if (k->kind == GEMM_FWD_BIAS || k->kind == GEMM_FWD_GELU_BIAS) {
        const int32_t bias_type = CUDA_R_16BF;
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, a_rows, a_cols, (int64_t)a_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, b_rows, b_cols, (int64_t)b_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->cd, cd_type, m, n, (int64_t)m));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = MATMUL_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    if (g_mm.deterministic) {
        const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                                 CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                          sizeof(schemes)));
    }
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &k->align[i], sizeof(k->align[i])));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(g_mm.lt, p->desc, p->a, p->b, p->cd, p->cd, pref, 1, &result, &found);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    p->used = 1;
    g_mm.count++;
    if ((st != CUBLAS_STATUS_SUCCESS || found == 0) && is_gelu_kind(k->kind)) {
        p->none = 1;
        return p;
    }
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        fprintf(stderr,
                "internal error: %s:%d: cuBLASLt has no algorithm for the %s GEMM M=%d N=%d K=%d (pointer alignments "
                "A %u B %u C %u D %u bytes): %s\n",
                __FILE__, __LINE__, GEMM_NAMES[k->kind], k->M, k->N, k->K, k->align[0], k->align[1], k->align[2],
                k->align[3], st == CUBLAS_STATUS_SUCCESS ? "no result" : cublasLtGetStatusString(st));
        exit(1);
    }
    p->algo = result.algo;
    p->workspace = result.workspaceSize;
    return p;
}

// aux: the GELU kinds' aux matrix, else NULL. 0: a GELU kind with no algorithm, nothing queued; 1: queued.
static int run_plan(cuda_stream s, GemmKind kind, int M, int N, int K, const void *a, const void *b, void *cd,
                    const void *bias, const void *aux, float beta) {
    GemmKey key;
    memset(&key, 0, sizeof(key));
    key.kind = kind, key.M = M, key.N = N, key.K = K;
    key.align[0] = ptr_align(a), key.align[1] = ptr_align(b), key.align[2] = key.align[3] = ptr_align(cd);
    key.aux_align = aux ? ptr_align(aux) : 0;
    GemmPlan *p = plan_for(&key, aux);
    if (p->none) return 0;
    if (bias) set_attr(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
    if (aux) set_attr(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux));
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasLtMatmul(g_mm.lt, p->desc, &alpha, a, p->a, b, p->b, &beta, cd, p->cd, cd, p->cd, &p->algo,
                                g_mm.workspace, p->workspace, s));
    return 1;
}

// out[i] += bias[i % N] over M*N elements (biases the epilogue cannot take; rounds twice, unlike the epilogue).
static __global__ void add_bias_kernel(bf16 *out, const bf16 *bias, size_t total, int N) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16(__bfloat162float(out[i]) + __bfloat162float(bias[i % N]));
}

// dbias pass 1: block (32, 8) sums rows [chunk * rows_per_chunk, +rows_per_chunk) of 32 columns; thread row y takes
// rows y, y+8, ... in order, then row 0 adds the 8 partials in order. dst[chunk, c] = sum, or += when accumulate.
static __global__ void column_sums_kernel(float *dst, const bf16 *x, int M, int N, int rows_per_chunk,
                                   int accumulate) {
    __shared__ float part[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * rows_per_chunk;
    const int r1 = min(M, r0 + rows_per_chunk);
    float s = 0.0f;
    if (c < N)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) s += __bfloat162float(x[(size_t)r * N + c]);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= N) return;
    float t = 0.0f;
    for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
    float *o = dst + (size_t)blockIdx.y * N + c;
    *o = accumulate ? *o + t : t;
}

// dbias pass 2: dbias[c] += sum over chunks of partial[chunk, c], chunks in order.
static __global__ void sum_partials_kernel(float *dbias, const float *partial, int chunks, int N) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= N) return;
    float t = 0.0f;
    for (int j = 0; j < chunks; j++) t += partial[(size_t)j * N + c];
    dbias[c] += t;
}

// dbias[N] += column sums of dout[M,N]. The chunking depends on M and N only, never on the GPU: same bits everywhere.
static void bias_grad(cuda_stream s, float *dbias, const bf16 *dout, int M, int N) {
    int chunks = (M + DBIAS_ROWS_PER_CHUNK - 1) / DBIAS_ROWS_PER_CHUNK;
    if (chunks > DBIAS_MAX_CHUNKS) chunks = DBIAS_MAX_CHUNKS;
    const size_t fit = MATMUL_WORKSPACE_BYTES / ((size_t)N * sizeof(float));
    if ((size_t)chunks > fit) chunks = (int)(fit ? fit : 1);
    const int rows_per_chunk = (M + chunks - 1) / chunks;
    const dim3 block(32, 8), grid((N + 31) / 32, chunks);
    if (chunks == 1) {  // one partial per column: add it straight into dbias
        column_sums_kernel<<<grid, block, 0, s>>>(dbias, dout, M, N, rows_per_chunk, 1);
        CUDA_CHECK_LAUNCH();
        return;
    }
    float *partial = (float *)g_mm.workspace;  // [chunks, N]; the stream orders it after the previous GEMM
    column_sums_kernel<<<grid, block, 0, s>>>(partial, dout, M, N, rows_per_chunk, 0);
    CUDA_CHECK_LAUNCH();
    sum_partials_kernel<<<(N + 255) / 256, 256, 0, s>>>(dbias, partial, chunks, N);
    CUDA_CHECK_LAUNCH();
}

static void check_dims(const char *what, int M, int N, int K) {
    if (M < 0 || N <= 0 || K <= 0) {
        fprintf(stderr, "internal error: %s:%d: %s with M=%d N=%d K=%d\n", __FILE__, __LINE__, what, M, N, K);
        exit(1);
    }
}

extern "C" void cuda_matmul_fwd(cuda_stream s, bf16_bits *out, const bf16_bits *inp, const bf16_bits *w,
                                const bf16_bits *bias, int M, int N, int K) {
    check_dims("cuda_matmul_fwd", M, N, K);
    if (M == 0) return;
    const int epilogue = bias && ptr_align(bias) >= BIAS_EPILOGUE_ALIGN;
    run_plan(s, epilogue ? GEMM_FWD_BIAS : GEMM_FWD, M, N, K, w, inp, out, epilogue ? bias : NULL, NULL, 0.0f);
    if (bias && !epilogue) {
        const size_t total = (size_t)M * N;
        add_bias_kernel<<<cuda_grid_1d(total, 256), 256, 0, s>>>(BF16(out), CBF16(bias), total, N);
        CUDA_CHECK_LAUNCH();
    }
}

extern "C" void cuda_matmul_bwd(cuda_stream s, bf16_bits *dinp, float *dw, float *dbias, const bf16_bits *dout,
                                const bf16_bits *inp, const bf16_bits *w, int M, int N, int K) {
    check_dims("cuda_matmul_bwd", M, N, K);
    if (M == 0) return;
    if (dinp) run_plan(s, GEMM_DINP, M, N, K, w, dout, dinp, NULL, NULL, 1.0f);
    if (dw) run_plan(s, GEMM_DW, M, N, K, inp, dout, dw, NULL, NULL, 1.0f);
    if (dbias) bias_grad(s, dbias, CBF16(dout), M, N);
}

// The aux rules (top of the file): 16-byte aligned, ld a multiple of 8.
static int aux_ok(const void *aux, int ld) { return ptr_align(aux) >= 16 && ld % 8 == 0; }

extern "C" int cuda_matmul_fwd_gelu(cuda_stream s, bf16_bits *out, bf16_bits *pre, const bf16_bits *inp,
                                    const bf16_bits *w, const bf16_bits *bias, int M, int N, int K) {
    check_dims("cuda_matmul_fwd_gelu", M, N, K);
    if (M == 0) return 1;
    if (!aux_ok(pre, N) || (bias && ptr_align(bias) < BIAS_EPILOGUE_ALIGN)) return 0;
    return run_plan(s, bias ? GEMM_FWD_GELU_BIAS : GEMM_FWD_GELU, M, N, K, w, inp, out, bias, pre, 0.0f);
}

extern "C" int cuda_matmul_bwd_dgelu(cuda_stream s, bf16_bits *d_pre, float *dw, float *dbias, const bf16_bits *dout,
                                     const bf16_bits *inp, const bf16_bits *w, const bf16_bits *pre, int M, int N,
                                     int K) {
    check_dims("cuda_matmul_bwd_dgelu", M, N, K);
    if (M == 0) return 1;
    if (!aux_ok(pre, K)) return 0;
    if (!run_plan(s, GEMM_DINP_DGELU, M, N, K, w, dout, d_pre, NULL, pre, 0.0f)) return 0;
    cuda_matmul_bwd(s, NULL, dw, dbias, dout, inp, w, M, N, K);
    return 1;
}
