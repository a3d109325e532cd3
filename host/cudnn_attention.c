// cudnn_attention.c: cudnn_attention.h through cuDNN's backend graph API (cudnn_graph.h), C11. The graphs are the
// ones the cuDNN frontend's SDPA nodes lower to (cudnn-frontend, include/cudnn_frontend/node/
// scaled_dot_product_flash_attention.h: CompositeSDPANode, CompositeSDPABackwardNode, and the softmax node they
// expand); cuDNN recognises the pattern and runs its flash-attention engines on it.
//
// Tensors are 4-D (B, H, rows, cols), strides in elements, every one 16-byte aligned. q, k, v are views into qkv:
//   q, v   (B,H,N,hd)  strides (N*3*H*hd, hd, 3*H*hd, 1)  at qkv, qkv + 2*H*hd
//   k^T    (B,H,hd,N)  strides (N*3*H*hd, hd, 1, 3*H*hd)  at qkv + H*hd   (the backend takes K transposed)
//   out, dout (B,H,N,hd) strides (N*H*hd, hd, H*hd, 1); dq, dk, dv like q, k, v inside dqkv
//   lse    (B,H,N,1)   strides (H*N, N, 1, 1) fp32
//   scores (B,H,N,N)   strides (H*N*N, N*N, N, 1) fp32, virtual (never stored); scalars (1,1,1,1) by value.
// Non-virtual tensors have the fixed UIDs below (the variant pack names them); virtual ones are numbered from 100.
//
// Forward (10 ops):                                            Backward (18 ops, + 6 with the padding mask):
//   S   = matmul(q, k^T)               fp32                     D   = rowsum(dout * out) * 1   -> softmax_sum (ws)
//   S'  = S * scale                    pointwise MUL            S'  = matmul(q, k^T) * scale   [padding mask]
//   M   = max_keys S'                  reduction MAX            P   = exp(S' - lse)            fp32
//   E   = exp(S' - M)                  pointwise SUB, EXP       dv  = matmul(reshape(P)^T bf16, dout)
//   Z   = sum_keys E                   reduction ADD            dS  = (matmul(dout, v^T) - D) * P * scale
//   lse = M + log(Z)                   pointwise LOG, ADD       dk  = matmul(reshape(dS)^T bf16, q)
//   P   = E / Z                        pointwise DIV, bf16      dqa = matmul(dS, reshape(k^T)) fp32 -> dq_accum (ws)
//   out = matmul(P, v)                                          dq  = identity(dqa)
// lse is natural log by construction (EXP and LOG are base e). softmax_sum and dq_accum are fp32 tensors the graph
// names; they live in our workspace, in front of cuDNN's own. cuDNN zeroes dq_accum itself from 9.6.0 on (before,
// we memset it). The padding mask (row < N and col < N, else -inf) masks nothing: on cuDNN <= 9.15.0 the backward
// can return NaN when N % 128 != 0 and no mask is present (cudnn-frontend issue #160), so the frontend adds one there
// with sequence lengths N, and so do we (JEPA_CUDNN_BWD_PADDING=0/1 forces it off/on).
//
// Plans: the engine configurations of heuristics mode A, in order; the first whose execution plan finalizes wins.
// Graph building never exits: every cuDNN call goes through TRY, which records the first failure (the object being
// built, the call, cuDNN's status string and last error message, file and line) and skips the calls after it, so
// cudnn_attention_prepare can report it. Calls at execution time go through CUDNN_CHECK, which exits with the same.
#include "cudnn_attention.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

// Pure C, in every build (tests/test_cudnn_plan_cache.c): the first free slot, else the least recently used.
int cudnn_plan_victim(const unsigned long long *last_use, int n) {
    int victim = 0;
    for (int i = 0; i < n; i++) {
        if (last_use[i] == 0) return i;
        if (last_use[i] < last_use[victim]) victim = i;
    }
    return victim;
}

#if !defined(JEPA_CUDA) || !defined(JEPA_HAVE_CUDNN)

static const char NOT_BUILT[] =
    "cuDNN attention not built (it needs JEPA_CUDA and JEPA_HAVE_CUDNN: nvcc, every kernels/*.cu family and cuDNN "
    "found at build time)";

int cudnn_attention_available(char *why, size_t n) {
    if (why && n) snprintf(why, n, "%s", NOT_BUILT);
    return 0;
}
int cudnn_attention_prepare(int B, int N, int H, int hd, char *why, size_t n) {
    if (why && n) snprintf(why, n, "%s", NOT_BUILT);
    return -1;
}
void cudnn_attention_fwd(cuda_stream s, bf16_bits *out, float *lse, const bf16_bits *qkv, int B, int N, int H,
                         int hd) {
    die_internal("cudnn_attention_fwd: %s", NOT_BUILT);
}
void cudnn_attention_bwd(cuda_stream s, bf16_bits *dqkv, const bf16_bits *dout, const bf16_bits *qkv,
                         const bf16_bits *out, const float *lse, int B, int N, int H, int hd) {
    die_internal("cudnn_attention_bwd: %s", NOT_BUILT);
}
void cudnn_attention_release(void) {}
void cudnn_attention_stats(long *built, long *evicted) { *built = *evicted = 0; }

#else

#include <cudnn.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "cuda_check.h"

static const char LOG_HINT[] =
    "---> HINT: CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr makes cuDNN log why; cudnn_attention_prepare() "
    "tells whether a shape is supported without exiting";

// A cuDNN call outside graph building: exits naming the call, the context, cuDNN's status and message.
#define CUDNN_CHECK(ctx, call)                                                                                \
    do {                                                                                                      \
        const cudnnStatus_t st_ = (call);                                                                     \
        if (st_ != CUDNN_STATUS_SUCCESS) cudnn_die(st_, #call, ctx, __FILE__, __LINE__);                      \
    } while (0)

_Noreturn static void cudnn_die(cudnnStatus_t st, const char *call, const char *ctx, const char *file, int line) {
    char msg[1024] = "";
    cudnnGetLastErrorString(msg, sizeof msg);
    die_internal("%s:%d: cuDNN attention %s: %s failed: %s (%d)%s%s\n%s", file, line, ctx, call,
                 cudnnGetErrorString(st), (int)st, msg[0] ? ": " : "", msg, LOG_HINT);
}

// ---------------------------------------------------------------- graph building (errors recorded, never fatal)

enum {  // UIDs of the non-virtual tensors (the variant pack's keys)
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_DO, UID_DQ, UID_DK, UID_DV, UID_ONE, UID_SOFTMAX_SUM,
    UID_DQ_ACCUM, UID_SEQ_Q, UID_SEQ_KV, UID_NEG_INF,
    UID_VIRTUAL = 100,  // virtual tensors: 100, 101, ...
};

#define MAX_OPS 32

typedef cudnnBackendDescriptor_t Desc;

typedef struct {
    Desc *desc;               // every descriptor made for this graph [n_desc], destroyed together
    int n_desc, cap_desc;
    Desc ops[MAX_OPS];        // the operations, in the order made
    int n_ops;
    int64_t next_uid;         // next virtual tensor's UID
    const char *graph;        // "fwd" or "bwd"
    char what[160];           // the object being built
    cudnnStatus_t status;     // the first failure; once set, TRY skips every later call
    char err[2048];           // that failure, in words
} Builder;

static void builder_fail(Builder *b, cudnnStatus_t st, const char *call, const char *file, int line) {
    char msg[1024] = "";
    cudnnGetLastErrorString(msg, sizeof msg);
    b->status = st;
    snprintf(b->err, sizeof b->err, "%s graph, %s: %s failed: %s (%d)%s%s (%s:%d)", b->graph, b->what, call,
             cudnnGetErrorString(st), (int)st, msg[0] ? ": " : "", msg, file, line);
}

#define TRY(b, call)                                                                                          \
    do {                                                                                                      \
        if ((b)->status == CUDNN_STATUS_SUCCESS) {                                                            \
            const cudnnStatus_t try_st_ = (call);                                                             \
            if (try_st_ != CUDNN_STATUS_SUCCESS) builder_fail((b), try_st_, #call, __FILE__, __LINE__);       \
        }                                                                                                     \
    } while (0)
#define SET(b, d, attr, type, count, ptr) TRY(b, cudnnBackendSetAttribute(d, attr, type, count, ptr))
#define FINALIZE(b, d) TRY(b, cudnnBackendFinalize(d))

static void builder_what(Builder *b, const char *fmt, const char *name) {
    if (b->status == CUDNN_STATUS_SUCCESS) snprintf(b->what, sizeof b->what, fmt, name);
}

static void builder_keep(Builder *b, Desc d) {
    if (b->n_desc == b->cap_desc) {
        b->cap_desc = b->cap_desc ? 2 * b->cap_desc : 64;
        b->desc = xrealloc(b->desc, (size_t)b->cap_desc * sizeof(Desc));
    }
    b->desc[b->n_desc++] = d;
}

// A new descriptor owned by the builder; NULL after a failure.
static Desc new_desc(Builder *b, cudnnBackendDescriptorType_t type) {
    Desc d = NULL;
    TRY(b, cudnnBackendCreateDescriptor(type, &d));
    if (b->status != CUDNN_STATUS_SUCCESS) return NULL;
    builder_keep(b, d);
    return d;
}

static void builder_free(Builder *b) {  // newest first: plans before the graphs they were made from
    for (int i = b->n_desc - 1; i >= 0; i--) CUDNN_CHECK(b->graph, cudnnBackendDestroyDescriptor(b->desc[i]));
    free(b->desc);
    b->desc = NULL;
    b->n_desc = b->cap_desc = 0;
}

typedef struct {
    int64_t d[4], s[4];  // dims, strides (elements)
} Shape;

static Shape shape4(int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
    const Shape sh = {{d0, d1, d2, d3}, {s0, s1, s2, s3}};
    return sh;
}

enum { T_VIRTUAL = 1, T_BY_VALUE = 2 };

static Desc tensor(Builder *b, const char *name, int64_t uid, cudnnDataType_t type, Shape sh, int flags) {
    builder_what(b, "tensor '%s'", name);
    Desc t = new_desc(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t align = 16;
    const bool yes = true;
    SET(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    SET(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, sh.d);
    SET(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, sh.s);
    SET(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    if (flags & T_VIRTUAL) SET(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
    if (flags & T_BY_VALUE) SET(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    FINALIZE(b, t);
    return t;
}

static Desc vtensor(Builder *b, const char *name, cudnnDataType_t type, Shape sh) {
    return tensor(b, name, b->next_uid++, type, sh, T_VIRTUAL);
}

static void add_op(Builder *b, Desc op) {
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    JEPA_ASSERT(b->n_ops < MAX_OPS);
    b->ops[b->n_ops++] = op;
}

// y = mode(x [, bb [, t]]); bb and t may be NULL; axis only for GEN_INDEX.
static void pointwise(Builder *b, const char *name, cudnnPointwiseMode_t mode, cudnnDataType_t prec, Desc x, Desc bb,
                      Desc t, Desc y, int64_t axis) {
    builder_what(b, "pointwise '%s'", name);
    Desc pw = new_desc(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    SET(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (mode == CUDNN_POINTWISE_GEN_INDEX) SET(b, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    FINALIZE(b, pw);
    Desc op = new_desc(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    const float one = 1.0f;
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (bb) SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bb);
    if (t) SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
    FINALIZE(b, op);
    add_op(b, op);
}

// c = a @ bm (batched over the first two dims), fp32 accumulation; m/n/k: GEMM size overrides (INT32 (B,1,1,1)
// tensors) or NULL.
static void matmul(Builder *b, const char *name, Desc a, Desc bm, Desc c, Desc m, Desc n, Desc k) {
    builder_what(b, "matmul '%s'", name);
    Desc mm = new_desc(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SET(b, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    FINALIZE(b, mm);
    Desc op = new_desc(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bm);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    if (m) SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m);
    if (n) SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n);
    if (k) SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k);
    FINALIZE(b, op);
    add_op(b, op);
}

// y = reduce(x) over the dims where y has extent 1, fp32.
static void reduction(Builder *b, const char *name, cudnnReduceTensorOp_t mode, Desc x, Desc y) {
    builder_what(b, "reduction '%s'", name);
    Desc rd = new_desc(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SET(b, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    SET(b, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    FINALIZE(b, rd);
    Desc op = new_desc(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    FINALIZE(b, op);
    add_op(b, op);
}

// y = x seen with y's dims and strides (a transpose when the strides swap), possibly another data type.
static void reshape(Builder *b, const char *name, Desc x, Desc y) {
    builder_what(b, "reshape '%s'", name);
    Desc op = new_desc(b, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    SET(b, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    FINALIZE(b, op);
    add_op(b, op);
}

// ---------------------------------------------------------------- plans

typedef enum { KIND_FWD = 0, KIND_BWD = 1 } Kind;
static const char *const kind_name[2] = {"fwd", "bwd"};

// Plans (a forward and a backward per shape) kept at once. The context encoder's and the predictor's token counts
// follow the masks (the micro-batch minimum), so a run meets a few dozen to a few hundred shapes; rebuilding one
// costs milliseconds to a second, so the table holds them all in practice and evicts only beyond that.
#define PLAN_SLOTS 256

typedef struct {
    int live;
    Kind kind;
    int B, N, H, hd, pad;  // the key; pad: the backward's padding-mask workaround is in the graph
    unsigned long long last_use;
    Desc *desc;            // every descriptor of the graph and plan [n_desc]
    int n_desc;
    Desc plan;             // the execution plan (one of desc)
    int64_t engine;        // global index of its engine (-1: unknown)
    int64_t n_configs;     // engine configurations heuristics offered
    int64_t ws_bytes;      // cuDNN's workspace
    int32_t *seq_len;      // device [2][B] = N (the padding mask's sequence lengths), or NULL
    float scale, one, neg_inf;  // the by-value scalars: their host addresses go in the variant pack
} Plan;

static cudnnHandle_t g_handle = NULL;
static int g_device = -1;
static Plan g_plans[PLAN_SLOTS];
static unsigned long long g_clock = 0;
static long g_built = 0, g_evicted = 0;  // plans built, live plans evicted (cudnn_attention_stats)
static void *g_ws = NULL;  // device workspace, grown on demand
static size_t g_ws_bytes = 0;

// The table's size in use: PLAN_SLOTS, or JEPA_CUDNN_PLANS (2..PLAN_SLOTS) to exercise eviction in tests.
static int plan_slots(void) {
    static int slots = 0;
    if (!slots) {
        const char *e = getenv("JEPA_CUDNN_PLANS");
        slots = PLAN_SLOTS;
        if (e && *e) {
            char *end = NULL;
            const long v = strtol(e, &end, 10);
            if (*end || v < 2 || v > PLAN_SLOTS)
                die_input("JEPA_CUDNN_PLANS: expected a whole number from 2 to %d, got '%s'", PLAN_SLOTS, e);
            slots = (int)v;
        }
    }
    return slots;
}

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

// The handle, made on the current device at the first call; NULL with the reason when that fails.
static cudnnHandle_t handle_try(char *why, size_t n) {
    int dev = 0;
    cudaError_t ce = cudaGetDevice(&dev);
    if (ce != cudaSuccess) {
        snprintf(why, n, "cudaGetDevice failed: %s", cudaGetErrorString(ce));
        return NULL;
    }
    if (g_handle) {
        if (dev != g_device) {
            snprintf(why, n, "the cuDNN handle was made on device %d, the current device is %d (one device per process)",
                     g_device, dev);
            return NULL;
        }
        return g_handle;
    }
    const size_t rt = cudnnGetVersion();
    if (rt / 10000 != CUDNN_MAJOR) {
        snprintf(why, n, "cuDNN library %zu.%zu.%zu does not match the headers built against (%d.%d.%d)", rt / 10000,
                 rt % 10000 / 100, rt % 100, CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
        return NULL;
    }
    cudnnHandle_t h = NULL;
    const cudnnStatus_t st = cudnnCreate(&h);
    if (st != CUDNN_STATUS_SUCCESS) {
        char msg[512] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        snprintf(why, n, "cudnnCreate(&h) failed on device %d: %s (%d)%s%s", dev, cudnnGetErrorString(st), (int)st,
                 msg[0] ? ": " : "", msg);
        return NULL;
    }
    g_handle = h;
    g_device = dev;
    return h;
}

static cudnnHandle_t handle_get(void) {
    char why[768];
    cudnnHandle_t h = handle_try(why, sizeof why);
    if (!h) die_internal("cuDNN attention: %s", why);
    return h;
}

static void plan_free(Plan *p) {
    if (!p->live) return;
    CUDA_CHECK(cudaDeviceSynchronize());  // work queued on the plan (its kernels, its seq_len) is done
    for (int i = p->n_desc - 1; i >= 0; i--)
        CUDNN_CHECK(kind_name[p->kind], cudnnBackendDestroyDescriptor(p->desc[i]));
    free(p->desc);
    if (p->seq_len) CUDA_CHECK(cudaFree(p->seq_len));
    memset(p, 0, sizeof *p);
}

// Backward: does the graph carry the padding mask that cuDNN <= 9.15.0 needs when N % 128 != 0?
static int bwd_padding(int N) {
    const char *e = getenv("JEPA_CUDNN_BWD_PADDING");
    if (e && *e) return strcmp(e, "0") != 0;
    return N % 128 != 0 && cudnnGetVersion() <= 91500;
}

static void build_fwd(Builder *b, Plan *p) {
    const int64_t B = p->B, N = p->N, H = p->H, hd = p->hd;
    const int64_t sb = N * 3 * H * hd, sn = 3 * H * hd;  // batch and token strides of qkv
    const Shape qv = shape4(B, H, N, hd, sb, hd, sn, 1);
    const Shape kt = shape4(B, H, hd, N, sb, hd, 1, sn);
    const Shape o = shape4(B, H, N, hd, N * H * hd, hd, H * hd, 1);
    const Shape row = shape4(B, H, N, 1, H * N, N, 1, 1);
    const Shape sc = shape4(B, H, N, N, H * N * N, N * N, N, 1);
    const Shape scalar = shape4(1, 1, 1, 1, 1, 1, 1, 1);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT, bf16 = CUDNN_DATA_BFLOAT16;

    Desc q = tensor(b, "q", UID_Q, bf16, qv, 0);
    Desc k = tensor(b, "k^T", UID_K, bf16, kt, 0);
    Desc v = tensor(b, "v", UID_V, bf16, qv, 0);
    Desc out = tensor(b, "out", UID_O, bf16, o, 0);
    Desc lse = tensor(b, "lse (stats)", UID_STATS, f32, row, 0);
    Desc scale = tensor(b, "scale", UID_SCALE, f32, scalar, T_BY_VALUE);
    Desc s = vtensor(b, "S = q k^T", f32, sc);
    Desc ss = vtensor(b, "S * scale", f32, sc);
    Desc m = vtensor(b, "M = row max", f32, row);
    Desc sm = vtensor(b, "S - M", f32, sc);
    Desc e = vtensor(b, "E = exp(S - M)", f32, sc);
    Desc z = vtensor(b, "Z = row sum", f32, row);
    Desc lz = vtensor(b, "log Z", f32, row);
    Desc pr = vtensor(b, "P = E / Z", bf16, sc);

    matmul(b, "q k^T", q, k, s, NULL, NULL, NULL);
    pointwise(b, "S * scale", CUDNN_POINTWISE_MUL, f32, s, scale, NULL, ss, 0);
    reduction(b, "row max", CUDNN_REDUCE_TENSOR_MAX, ss, m);
    pointwise(b, "S - M", CUDNN_POINTWISE_SUB, f32, ss, m, NULL, sm, 0);
    pointwise(b, "exp", CUDNN_POINTWISE_EXP, f32, sm, NULL, NULL, e, 0);
    reduction(b, "row sum", CUDNN_REDUCE_TENSOR_ADD, e, z);
    pointwise(b, "log Z", CUDNN_POINTWISE_LOG, f32, z, NULL, NULL, lz, 0);
    pointwise(b, "lse = M + log Z", CUDNN_POINTWISE_ADD, f32, m, lz, NULL, lse, 0);
    pointwise(b, "P = E / Z", CUDNN_POINTWISE_DIV, f32, e, z, NULL, pr, 0);
    matmul(b, "P v", pr, v, out, NULL, NULL, NULL);
}

static void build_bwd(Builder *b, Plan *p) {
    const int64_t B = p->B, N = p->N, H = p->H, hd = p->hd;
    const int64_t sb = N * 3 * H * hd, sn = 3 * H * hd;
    const Shape qv = shape4(B, H, N, hd, sb, hd, sn, 1);  // q, v, dq, dk, dv, and k seen untransposed
    const Shape kt = shape4(B, H, hd, N, sb, hd, 1, sn);  // k^T, v^T
    const Shape o = shape4(B, H, N, hd, N * H * hd, hd, H * hd, 1);
    const Shape doo = shape4(B, H, N, hd, H * N * hd, N * hd, H * hd, 1);  // dout*out, virtual (frontend's strides)
    const Shape dqa = shape4(B, H, N, hd, H * N * hd, N * hd, hd, 1);
    const Shape row = shape4(B, H, N, 1, H * N, N, 1, 1);
    const Shape sc = shape4(B, H, N, N, H * N * N, N * N, N, 1);
    const Shape sct = shape4(B, H, N, N, H * N * N, N * N, 1, N);  // the same scores seen transposed
    const Shape scalar = shape4(1, 1, 1, 1, 1, 1, 1, 1);
    const Shape seq = shape4(B, 1, 1, 1, 1, 1, 1, 1);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT, bf16 = CUDNN_DATA_BFLOAT16, i32 = CUDNN_DATA_INT32,
                          boolean = CUDNN_DATA_BOOLEAN;

    Desc q = tensor(b, "q", UID_Q, bf16, qv, 0);
    Desc k = tensor(b, "k^T", UID_K, bf16, kt, 0);
    Desc v = tensor(b, "v^T", UID_V, bf16, kt, 0);
    Desc out = tensor(b, "out", UID_O, bf16, o, 0);
    Desc dout = tensor(b, "dout", UID_DO, bf16, o, 0);
    Desc lse = tensor(b, "lse (stats)", UID_STATS, f32, row, 0);
    Desc scale = tensor(b, "scale", UID_SCALE, f32, scalar, T_BY_VALUE);
    Desc one = tensor(b, "one", UID_ONE, f32, scalar, T_BY_VALUE);
    Desc dq = tensor(b, "dq", UID_DQ, bf16, qv, 0);
    Desc dk = tensor(b, "dk", UID_DK, bf16, qv, 0);
    Desc dv = tensor(b, "dv", UID_DV, bf16, qv, 0);
    Desc dsum = tensor(b, "softmax_sum", UID_SOFTMAX_SUM, f32, row, 0);
    Desc dq_acc = tensor(b, "dq_accum", UID_DQ_ACCUM, f32, dqa, 0);
    Desc seq_q = NULL, seq_kv = NULL, neg_inf = NULL;
    if (p->pad) {
        seq_q = tensor(b, "seq_len_q", UID_SEQ_Q, i32, seq, 0);
        seq_kv = tensor(b, "seq_len_kv", UID_SEQ_KV, i32, seq, 0);
        neg_inf = tensor(b, "-inf", UID_NEG_INF, f32, scalar, T_BY_VALUE);
    }

    // D = rowsum(dout * out), through the non-virtual softmax_sum
    Desc doo_t = vtensor(b, "dout * out", f32, doo);
    Desc dsum_v = vtensor(b, "rowsum(dout * out)", f32, row);
    pointwise(b, "dout * out", CUDNN_POINTWISE_MUL, f32, dout, out, NULL, doo_t, 0);
    reduction(b, "rowsum(dout * out)", CUDNN_REDUCE_TENSOR_ADD, doo_t, dsum_v);
    pointwise(b, "softmax_sum = D * 1", CUDNN_POINTWISE_MUL, f32, dsum_v, one, NULL, dsum, 0);

    // P = exp(S * scale - lse), masked
    Desc s = vtensor(b, "S = q k^T", f32, sc);
    Desc ss = vtensor(b, "S * scale", f32, sc);
    matmul(b, "q k^T", q, k, s, seq_q, seq_kv, NULL);
    pointwise(b, "S * scale", CUDNN_POINTWISE_MUL, f32, s, scale, NULL, ss, 0);
    if (p->pad) {
        Desc ri = vtensor(b, "row index", i32, sc);
        Desc ci = vtensor(b, "col index", i32, sc);
        Desc rm = vtensor(b, "row < seq_len_q", boolean, sc);
        Desc cm = vtensor(b, "col < seq_len_kv", boolean, sc);
        Desc mask = vtensor(b, "padding mask", boolean, sc);
        Desc masked = vtensor(b, "S masked", f32, sc);
        pointwise(b, "row index", CUDNN_POINTWISE_GEN_INDEX, i32, ss, NULL, NULL, ri, 2);
        pointwise(b, "col index", CUDNN_POINTWISE_GEN_INDEX, i32, ss, NULL, NULL, ci, 3);
        pointwise(b, "row < seq_len_q", CUDNN_POINTWISE_CMP_LT, boolean, ri, seq_q, NULL, rm, 0);
        pointwise(b, "col < seq_len_kv", CUDNN_POINTWISE_CMP_LT, boolean, ci, seq_kv, NULL, cm, 0);
        pointwise(b, "padding mask", CUDNN_POINTWISE_LOGICAL_AND, boolean, rm, cm, NULL, mask, 0);
        pointwise(b, "select(mask, S, -inf)", CUDNN_POINTWISE_BINARY_SELECT, f32, ss, neg_inf, mask, masked, 0);
        ss = masked;
    }
    Desc sl = vtensor(b, "S - lse", f32, sc);
    Desc pe = vtensor(b, "P = exp(S - lse)", f32, sc);
    pointwise(b, "S - lse", CUDNN_POINTWISE_SUB, f32, ss, lse, NULL, sl, 0);
    pointwise(b, "P = exp(S - lse)", CUDNN_POINTWISE_EXP, f32, sl, NULL, NULL, pe, 0);

    // dv = P^T dout
    Desc pt = vtensor(b, "P^T (bf16)", bf16, sct);
    reshape(b, "P^T", pe, pt);
    matmul(b, "dv = P^T dout", pt, dout, dv, seq_kv, NULL, seq_q);

    // dS = (dout v^T - D) * P * scale
    Desc dp = vtensor(b, "dP = dout v^T", f32, sc);
    Desc dpd = vtensor(b, "dP - D", f32, sc);
    Desc ds0 = vtensor(b, "(dP - D) * P", f32, sc);
    Desc ds = vtensor(b, "dS", f32, sc);
    matmul(b, "dP = dout v^T", dout, v, dp, seq_q, seq_kv, NULL);
    pointwise(b, "dP - D", CUDNN_POINTWISE_SUB, f32, dp, dsum, NULL, dpd, 0);
    pointwise(b, "(dP - D) * P", CUDNN_POINTWISE_MUL, f32, dpd, pe, NULL, ds0, 0);
    pointwise(b, "dS = ... * scale", CUDNN_POINTWISE_MUL, f32, ds0, scale, NULL, ds, 0);

    // dk = dS^T q
    Desc dst = vtensor(b, "dS^T (bf16)", bf16, sct);
    reshape(b, "dS^T", ds, dst);
    matmul(b, "dk = dS^T q", dst, q, dk, seq_kv, NULL, seq_q);

    // dq = dS k, accumulated in fp32 dq_accum
    Desc kr = vtensor(b, "k (k^T seen untransposed)", bf16, qv);
    reshape(b, "k", k, kr);
    matmul(b, "dq_accum = dS k", ds, kr, dq_acc, seq_q, NULL, seq_kv);
    pointwise(b, "dq = dq_accum", CUDNN_POINTWISE_IDENTITY, f32, dq_acc, NULL, NULL, dq, 0);
}

// Engine global index of an engine configuration, for messages (-1 when cuDNN does not say). The one place where
// cuDNN's status is ignored on purpose: a diagnostic that fails must not turn a good plan into an error.
static int64_t engine_index(Desc cfg) {
    Desc eng = NULL;
    int64_t idx = -1, got = 0;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return -1;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &eng) ==
            CUDNN_STATUS_SUCCESS &&
        got == 1) {
        if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &idx) !=
            CUDNN_STATUS_SUCCESS)
            idx = -1;
    }
    cudnnBackendDestroyDescriptor(eng);
    return idx;
}

// Operation graph, heuristics (mode A), and the first engine configuration whose execution plan finalizes.
static void build_plan(Builder *b, Plan *p, cudnnHandle_t h) {
    builder_what(b, "operation graph of %s", kind_name[p->kind]);
    Desc graph = new_desc(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    SET(b, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, b->n_ops, b->ops);
    SET(b, graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    FINALIZE(b, graph);

    builder_what(b, "%s", "engine heuristics (CUDNN_HEUR_MODE_A)");
    Desc heur = new_desc(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    SET(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    SET(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    FINALIZE(b, heur);
    int64_t count = 0;
    TRY(b, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                    NULL));
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    if (count <= 0) {
        b->status = CUDNN_STATUS_NOT_SUPPORTED;
        snprintf(b->err, sizeof b->err, "%s graph: heuristics (mode A) offered no engine configuration (%s)",
                 b->graph, cudnnGetErrorString(b->status));
        return;
    }
    Desc *cfg = xcalloc((size_t)count, sizeof(Desc));
    for (int64_t i = 0; i < count; i++) cfg[i] = new_desc(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    TRY(b, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                    cfg));
    p->n_configs = got;

    // Try each configuration; the rejections are kept for the message if none finalizes.
    char rejected[1024] = "";
    size_t used = 0;
    cudnnStatus_t first_fail = CUDNN_STATUS_SUCCESS;
    for (int64_t i = 0; i < got && b->status == CUDNN_STATUS_SUCCESS && !p->plan; i++) {
        Desc plan = NULL;
        snprintf(b->what, sizeof b->what, "execution plan of engine configuration %lld", (long long)i);
        TRY(b, cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan));
        SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
        SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
        if (b->status != CUDNN_STATUS_SUCCESS) {  // creating or setting up a plan failed: that is an error
            if (plan) CUDNN_CHECK(b->graph, cudnnBackendDestroyDescriptor(plan));
            break;
        }
        const cudnnStatus_t st = cudnnBackendFinalize(plan);
        if (st == CUDNN_STATUS_SUCCESS) {
            builder_keep(b, plan);
            p->plan = plan;
            p->engine = engine_index(cfg[i]);
            break;
        }
        char msg[256] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        if (first_fail == CUDNN_STATUS_SUCCESS) first_fail = st;
        if (used + 1 < sizeof rejected)
            used += (size_t)snprintf(rejected + used, sizeof rejected - used, "%sengine %lld: %s%s%s",
                                     used ? "; " : "", (long long)engine_index(cfg[i]), cudnnGetErrorString(st),
                                     msg[0] ? " " : "", msg);
        CUDNN_CHECK(b->graph, cudnnBackendDestroyDescriptor(plan));
    }
    free(cfg);
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    if (!p->plan && got == 0) {  // cuDNN filters out what cannot run here (no libnvrtc, no driver...)
        char msg[512] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        b->status = CUDNN_STATUS_NOT_SUPPORTED;
        snprintf(b->err, sizeof b->err,
                 "%s graph: heuristics mode A counted %lld engine configurations but returned none viable on this "
                 "machine (engines compiled at run time need libnvrtc; cuDNN's log says which prerequisite is "
                 "missing)%s%s",
                 b->graph, (long long)count, msg[0] ? ": " : "", msg);
        return;
    }
    if (!p->plan) {
        b->status = first_fail;
        snprintf(b->err, sizeof b->err,
                 "%s graph: none of the %lld engine configurations of heuristics mode A finalized an execution plan "
                 "(cudnnBackendFinalize(plan)): %s",
                 b->graph, (long long)got, rejected);
        return;
    }
    int64_t n_ws = 0;
    builder_what(b, "%s", "workspace size of the execution plan");
    TRY(b, cudnnBackendGetAttribute(p->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n_ws,
                                    &p->ws_bytes));
}

// The plan of (kind, shape), from the table or built now (evicting the least recently used); NULL with the reason
// and *rc = 0 (cuDNN does not support it) or -1 (an error).
static Plan *plan_get(Kind kind, int B, int N, int H, int hd, char *why, size_t n, int *rc) {
    *rc = -1;
    if (B <= 0 || N <= 0 || H <= 0 || hd <= 0) {
        snprintf(why, n, "bad shape B%d N%d H%d hd%d", B, N, H, hd);
        return NULL;
    }
    if (hd % 8 != 0) {  // also what makes the k and v views (qkv + H*hd, + 2*H*hd) 16-byte aligned
        *rc = 0;
        snprintf(why, n, "hd %d is not a multiple of 8 (cuDNN's fused attention needs one)", hd);
        return NULL;
    }
    if (kind == KIND_BWD && N == 1) {
        *rc = 0;
        snprintf(why, n, "N = 1: cuDNN's fused attention backward does not support one token");
        return NULL;
    }
    cudnnHandle_t h = handle_try(why, n);
    if (!h) return NULL;
    const int pad = kind == KIND_BWD ? bwd_padding(N) : 0;
    const int slots = plan_slots();
    unsigned long long last_use[PLAN_SLOTS];  // 0: free
    for (int i = 0; i < slots; i++) {
        Plan *p = &g_plans[i];
        if (p->live && p->kind == kind && p->B == B && p->N == N && p->H == H && p->hd == hd && p->pad == pad) {
            p->last_use = ++g_clock;
            *rc = 1;
            return p;
        }
        last_use[i] = p->live ? p->last_use : 0;
    }
    Plan *slot = &g_plans[cudnn_plan_victim(last_use, slots)];
    if (slot->live) g_evicted++;
    plan_free(slot);  // a free slot, else the least recently used

    Plan *p = slot;
    p->kind = kind;
    p->B = B, p->N = N, p->H = H, p->hd = hd, p->pad = pad;
    p->engine = -1;
    p->scale = (float)(1.0 / sqrt((double)hd));
    p->one = 1.0f;
    p->neg_inf = cudnnGetVersion() < 91000 ? -FLT_MAX : -INFINITY;  // older cuDNN wants the lowest finite value
    Builder b;
    memset(&b, 0, sizeof b);
    b.next_uid = UID_VIRTUAL;
    b.graph = kind_name[kind];
    b.status = CUDNN_STATUS_SUCCESS;
    if (kind == KIND_FWD) build_fwd(&b, p);
    else build_bwd(&b, p);
    build_plan(&b, p, h);
    if (b.status != CUDNN_STATUS_SUCCESS) {
        snprintf(why, n, "%s", b.err);
        *rc = CUDNN_STATUS_CATEGORY(b.status) == CUDNN_STATUS_NOT_SUPPORTED ? 0 : -1;
        builder_free(&b);
        memset(p, 0, sizeof *p);
        return NULL;
    }
    if (pad) {  // the padding mask's sequence lengths: N for every batch element
        int32_t *lens = xmalloc((size_t)2 * B * sizeof(int32_t));
        for (int i = 0; i < 2 * B; i++) lens[i] = N;
        CUDA_CHECK(cudaMalloc((void **)&p->seq_len, (size_t)2 * B * sizeof(int32_t)));
        CUDA_CHECK(cudaMemcpy(p->seq_len, lens, (size_t)2 * B * sizeof(int32_t), cudaMemcpyHostToDevice));
        free(lens);
    }
    p->desc = b.desc;
    p->n_desc = b.n_desc;
    p->live = 1;
    p->last_use = ++g_clock;
    g_built++;
    *rc = 1;
    return p;
}

static void describe_plan(char *buf, size_t n, const Plan *p) {
    snprintf(buf, n, "%s: engine %lld (first to finalize of %lld offered), workspace %.2f MiB%s", kind_name[p->kind],
             (long long)p->engine, (long long)p->n_configs, (double)p->ws_bytes / (1 << 20),
             p->pad ? ", with the padding-mask workaround" : "");
}

// ---------------------------------------------------------------- execution

// The workspace, grown to at least `bytes` (the old one freed once the device is idle); never NULL.
static char *workspace(size_t bytes) {
    if (bytes > g_ws_bytes || !g_ws) {
        if (g_ws) {
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaFree(g_ws));
            g_ws = NULL;
            g_ws_bytes = 0;
        }
        const size_t unit = (size_t)2 << 20, want = bytes ? (bytes + unit - 1) / unit * unit : unit;  // whole 2 MiB
        const cudaError_t e = cudaMalloc(&g_ws, want);
        if (e != cudaSuccess)
            die_internal("cuDNN attention: cudaMalloc of a %.1f MiB workspace failed: %s\n---> HINT: lower the batch "
                         "size or the token count",
                         (double)want / (1 << 20), cudaGetErrorString(e));
        g_ws_bytes = want;
    }
    return g_ws;
}

static void check_aligned(const char *fn, const char *what, const void *ptr) {
    if ((uintptr_t)ptr % 16 != 0)
        die_internal("%s: %s = %p is not 16-byte aligned (cuDNN's fused attention needs it)", fn, what, ptr);
}

static void execute(const Plan *p, cuda_stream s, const int64_t *uids, void *const *ptrs, int n, void *ws) {
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%s B%d N%d H%d hd%d (engine %lld)", kind_name[p->kind], p->B, p->N, p->H, p->hd,
             (long long)p->engine);
    cudnnHandle_t h = handle_get();
    CUDNN_CHECK(ctx, cudnnSetStream(h, (cudaStream_t)s));
    Desc vp = NULL;
    CUDNN_CHECK(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    CUDNN_CHECK(ctx, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    CUDNN_CHECK(ctx, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    CUDNN_CHECK(ctx, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    CUDNN_CHECK(ctx, cudnnBackendFinalize(vp));
    CUDNN_CHECK(ctx, cudnnBackendExecute(h, p->plan, vp));
    CUDNN_CHECK(ctx, cudnnBackendDestroyDescriptor(vp));
}

static Plan *plan_or_die(Kind kind, int B, int N, int H, int hd) {
    char why[2048];
    int rc = 0;
    Plan *p = plan_get(kind, B, N, H, hd, why, sizeof why, &rc);
    if (!p)
        die_internal("cudnn_attention_%s B%d N%d H%d hd%d: %s: %s\n%s", kind_name[kind], B, N, H, hd,
                     rc == 0 ? "not supported by cuDNN" : "failed", why, LOG_HINT);
    return p;
}

// ---------------------------------------------------------------- API

int cudnn_attention_available(char *why, size_t n) {
    char buf[768];
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        if (why && n)
            snprintf(why, n, "no CUDA device (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0 devices");
        return 0;
    }
    if (!handle_try(buf, sizeof buf)) {
        if (why && n) snprintf(why, n, "%s", buf);
        return 0;
    }
    const size_t rt = cudnnGetVersion();
    if (why && n)
        snprintf(why, n, "cuDNN %zu.%zu.%zu (headers %d.%d.%d), device %d", rt / 10000, rt % 10000 / 100, rt % 100,
                 CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL, g_device);
    return 1;
}

int cudnn_attention_prepare(int B, int N, int H, int hd, char *why, size_t n) {
    char buf[2048], f[256], b[256];
    int rc = 0;
    const Plan *pf = plan_get(KIND_FWD, B, N, H, hd, buf, sizeof buf, &rc);
    if (pf) describe_plan(f, sizeof f, pf);  // (before the backward's build may evict it: the table is LRU)
    const Plan *pb = pf ? plan_get(KIND_BWD, B, N, H, hd, buf, sizeof buf, &rc) : NULL;
    if (!pb) {
        if (why && n) snprintf(why, n, "%s", buf);
        return rc;
    }
    describe_plan(b, sizeof b, pb);
    if (why && n) snprintf(why, n, "%s; %s", f, b);
    return 1;
}

void cudnn_attention_fwd(cuda_stream s, bf16_bits *out, float *lse, const bf16_bits *qkv, int B, int N, int H,
                         int hd) {
    if (B <= 0 || N <= 0) return;
    const Plan *p = plan_or_die(KIND_FWD, B, N, H, hd);
    check_aligned("cudnn_attention_fwd", "qkv", qkv);
    check_aligned("cudnn_attention_fwd", "out", out);
    if (lse) check_aligned("cudnn_attention_fwd", "lse", lse);
    const size_t hh = (size_t)H * hd;
    const size_t lse_bytes = lse ? 0 : align256((size_t)B * H * N * sizeof(float));  // scratch statistics
    char *ws = workspace(lse_bytes + (size_t)p->ws_bytes);
    const int64_t uids[] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE};
    void *const ptrs[] = {(void *)qkv, (void *)(qkv + hh), (void *)(qkv + 2 * hh), out,
                          lse ? (void *)lse : (void *)ws, (void *)&p->scale};
    execute(p, s, uids, ptrs, 6, ws + lse_bytes);
}

void cudnn_attention_bwd(cuda_stream s, bf16_bits *dqkv, const bf16_bits *dout, const bf16_bits *qkv,
                         const bf16_bits *out, const float *lse, int B, int N, int H, int hd) {
    if (B <= 0 || N <= 0) return;
    const Plan *p = plan_or_die(KIND_BWD, B, N, H, hd);
    check_aligned("cudnn_attention_bwd", "dqkv", dqkv);
    check_aligned("cudnn_attention_bwd", "dout", dout);
    check_aligned("cudnn_attention_bwd", "qkv", qkv);
    check_aligned("cudnn_attention_bwd", "out", out);
    check_aligned("cudnn_attention_bwd", "lse", lse);
    const size_t hh = (size_t)H * hd;
    const size_t sum_bytes = align256((size_t)B * H * N * sizeof(float));          // softmax_sum [B,H,N]
    const size_t dqa_bytes = align256((size_t)B * H * N * hd * sizeof(float));     // dq_accum [B,H,N,hd]
    char *ws = workspace(sum_bytes + dqa_bytes + (size_t)p->ws_bytes);
    if (cudnnGetVersion() < 90600)  // cuDNN zeroes dq_accum itself from 9.6.0 on
        CUDA_CHECK(cudaMemsetAsync(ws + sum_bytes, 0, (size_t)B * H * N * hd * sizeof(float), (cudaStream_t)s));
    int64_t uids[16] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_DO, UID_DQ, UID_DK, UID_DV, UID_ONE,
                        UID_SOFTMAX_SUM, UID_DQ_ACCUM};
    void *ptrs[16] = {(void *)qkv, (void *)(qkv + hh), (void *)(qkv + 2 * hh), (void *)out, (void *)lse,
                      (void *)&p->scale, (void *)dout, dqkv, dqkv + hh, dqkv + 2 * hh, (void *)&p->one, ws,
                      ws + sum_bytes};
    int n = 13;
    if (p->pad) {
        uids[n] = UID_SEQ_Q, ptrs[n++] = p->seq_len;
        uids[n] = UID_SEQ_KV, ptrs[n++] = p->seq_len + B;
        uids[n] = UID_NEG_INF, ptrs[n++] = (void *)&p->neg_inf;
    }
    execute(p, s, uids, ptrs, n, ws + sum_bytes + dqa_bytes);
}

void cudnn_attention_release(void) {
    if (g_handle || g_ws) CUDA_CHECK(cudaDeviceSynchronize());
    for (int i = 0; i < PLAN_SLOTS; i++) plan_free(&g_plans[i]);
    if (g_ws) CUDA_CHECK(cudaFree(g_ws));
    g_ws = NULL;
    g_ws_bytes = 0;
    if (g_handle) CUDNN_CHECK("release", cudnnDestroy(g_handle));
    g_handle = NULL;
    g_device = -1;
    g_clock = 0;
    g_built = g_evicted = 0;
}

void cudnn_attention_stats(long *built, long *evicted) {
    *built = g_built;
    *evicted = g_evicted;
}

#endif
