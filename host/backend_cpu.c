#ifndef CPU_GENERIC_BODY
// backend_cpu.c: the CPU Backend (backend.h) over kernels/*_cpu.c: fp32 for training, fp64 for finite-difference
// tests. Backend memory is host memory, so upload/download are copies and nothing is ever asynchronous.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "cpu_ops.h"
#include "rope_cpu.h"

#define CPU_ALIGN 64  // cache line; also enough for any SIMD load

// ---- input double buffer and memory accounting
typedef struct {
    float *input[2];  // [input_elems[slot]] host clips per slot
    size_t input_elems[2];
    AllocLedger ledger;  // every allocation alive, for Backend.memory
} CpuImpl;

void alloc_ledger_add(AllocLedger *l, void *p, size_t bytes) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->live = xrealloc(l->live, l->cap * sizeof(*l->live));
    }
    l->live[l->n].p = p;
    l->live[l->n++].bytes = bytes;
    l->now += bytes;
    if (l->now > l->peak) l->peak = l->now;
}

void alloc_ledger_remove(AllocLedger *l, void *p) {
    for (size_t i = l->n; i-- > 0;)  // the newest first: scratch buffers come and go
        if (l->live[i].p == p) {
            l->now -= l->live[i].bytes;
            l->live[i] = l->live[--l->n];
            return;
        }
}

// ---- memory (type-free)
static void *cpu_alloc(Backend *b, size_t bytes) {
    const size_t rounded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;  // aligned_alloc wants a multiple
    void *p = aligned_alloc(CPU_ALIGN, rounded ? rounded : CPU_ALIGN);
    if (!p)
        die_internal("out of host memory allocating %zu bytes for %s on the CPU backend", bytes,
                     b->alloc_what ? b->alloc_what : "a buffer");
    memset(p, 0, rounded);
    alloc_ledger_add(&((CpuImpl *)b->impl)->ledger, p, bytes);
    return p;
}

static void cpu_release(Backend *b, void *p) {
    alloc_ledger_remove(&((CpuImpl *)b->impl)->ledger, p);
    free(p);
}

static void cpu_memory(Backend *b, size_t *now, size_t *peak) {
    const AllocLedger *l = &((CpuImpl *)b->impl)->ledger;
    *now = l->now;
    *peak = l->peak;
}
static void cpu_zero(Backend *b, void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(Backend *b, void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
static void cpu_upload(Backend *b, void *dst, const void *host_src, size_t bytes) { memcpy(dst, host_src, bytes); }
static void cpu_download(Backend *b, void *host_dst, const void *src, size_t bytes) { memcpy(host_dst, src, bytes); }
static void cpu_synchronize(Backend *b) {}

static void cpu_upload_f64(Backend *b, void *dst, size_t elem_size, const double *host_src, size_t n) {
    if (elem_size == sizeof(double)) {
        memcpy(dst, host_src, n * sizeof(double));
    } else if (elem_size == sizeof(float)) {
        float *d = dst;  // [n]
        for (size_t i = 0; i < n; i++) d[i] = (float)host_src[i];
    } else {
        die_internal("CPU backend: upload_f64 with element size %zu (expected 4 or 8)", elem_size);
    }
}

static void cpu_download_f64(Backend *b, double *host_dst, const void *src, size_t elem_size, size_t n) {
    if (elem_size == sizeof(double)) {
        memcpy(host_dst, src, n * sizeof(double));
    } else if (elem_size == sizeof(float)) {
        const float *s = src;  // [n]
        for (size_t i = 0; i < n; i++) host_dst[i] = s[i];
    } else {
        die_internal("CPU backend: download_f64 with element size %zu (expected 4 or 8)", elem_size);
    }
}

// ---- input double buffer: the host buffers are the backend's; the copy is a conversion done at once.
static float *cpu_input_host(Backend *b, int slot, size_t n) {
    CpuImpl *c = b->impl;
    if (c->input_elems[slot] < n) {
        free(c->input[slot]);
        c->input[slot] = xmalloc(n * sizeof(float));
        c->input_elems[slot] = n;
    }
    return c->input[slot];
}

static void cpu_upload_input(Backend *b, int slot, void *dst, size_t n) {
    const float *src = ((CpuImpl *)b->impl)->input[slot];  // [n]
    if (b->esize == sizeof(float)) {
        memcpy(dst, src, n * sizeof(float));
    } else {
        double *d = dst;  // [n]
        for (size_t i = 0; i < n; i++) d[i] = src[i];
    }
}

static void cpu_input_noop(Backend *b, int slot) {}

static void cpu_destroy(Backend *b) {
    CpuImpl *c = b->impl;
    for (int s = 0; s < 2; s++) free(c->input[s]);
    free(c->ledger.live);
    free(c);
}

// The typed op wrappers and cpu_set_ops_f32/_f64 below come from the generic body.
#define CPU_GENERIC_SELF "backend_cpu.c"
#include "cpu_generic.h"

// threads 0 = every core available to the process. The count is set for OpenMP (of the calling thread, which is
// the one that queues ops) and for OpenBLAS; both are process-wide, so the last backend created sets them.
Backend *backend_cpu_create(int double_precision, int threads) {
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);

    Backend *b = xcalloc(1, sizeof(Backend));
    b->name = double_precision ? "cpu-f64" : "cpu-f32";
    b->act_dtype = double_precision ? DT_F64 : DT_F32;
    b->esize = b->ssize = b->msize = double_precision ? sizeof(double) : sizeof(float);
    b->impl = xcalloc(1, sizeof(CpuImpl));
    b->destroy = cpu_destroy;
    b->input_host = cpu_input_host;
    b->upload_input = cpu_upload_input;
    b->wait_input = cpu_input_noop;
    b->input_consumed = cpu_input_noop;
    b->alloc = cpu_alloc;
    b->release = cpu_release;
    b->zero = cpu_zero;
    b->copy = cpu_copy;
    b->upload = cpu_upload;
    b->download = cpu_download;
    b->upload_f64 = cpu_upload_f64;
    b->download_f64 = cpu_download_f64;
    b->synchronize = cpu_synchronize;
    b->memory = cpu_memory;
    if (double_precision) {
        cpu_set_ops_f64(b);
    } else {
        cpu_set_ops_f32(b);
    }
    // the plain compositions: the model's fused-op calls give the separate ops' results bit for bit
    b->matmul_fwd_gelu = backend_matmul_fwd_gelu;
    b->matmul_bwd_dgelu = backend_matmul_bwd_dgelu;
    b->add_layernorm_fwd = backend_add_layernorm_fwd;
    return b;
}

void backend_destroy(Backend *b) {
    if (b->destroy) b->destroy(b);
    free(b);
}

#else

// ---- typed wrappers: backend.h's void* signatures onto the kernels' real* ones
static void FN(cpu_matmul_fwd)(Backend *b, void *out, const void *inp, const void *w, const void *bias, int M, int N,
                               int K) {
    FN(matmul_fwd)(out, inp, w, bias, M, N, K);
}
static void FN(cpu_matmul_bwd)(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                               const void *w, int M, int N, int K) {
    FN(matmul_bwd)(dinp, dw, dbias, dout, inp, w, M, N, K);
}
static void FN(cpu_layernorm_fwd)(Backend *b, void *out, void *mean, void *rstd, const void *inp, const void *w,
                                  const void *bias, int R, int C, double eps) {
    FN(layernorm_fwd)(out, mean, rstd, inp, w, bias, R, C, eps);
}
static void FN(cpu_layernorm_bwd)(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                                  const void *w, const void *mean, const void *rstd, int R, int C) {
    FN(layernorm_bwd)(dinp, dw, dbias, dout, inp, w, mean, rstd, R, C);
}
static void FN(cpu_attention_fwd)(Backend *b, void *out, void *lse, const void *qkv, int B, int N, int H, int hd,
                                  int frame_tokens) {
    FN(attention_fwd)(out, lse, qkv, B, N, H, hd, frame_tokens);
}
static void FN(cpu_attention_bwd)(Backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                                  const void *lse, int B, int N, int H, int hd, int frame_tokens) {
    FN(attention_bwd)(dqkv, dout, qkv, out, lse, B, N, H, hd, frame_tokens);
}
static void FN(cpu_rope_qk)(Backend *b, void *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h,
                            int grid_w, int transpose) {
    FN(rope_qk)(qkv, pos, B, N, H, hd, grid_h, grid_w, transpose);
}
static void FN(cpu_gelu_fwd)(Backend *b, void *out, const void *inp, size_t n) { FN(gelu_fwd)(out, inp, n); }
static void FN(cpu_gelu_bwd)(Backend *b, void *dinp, const void *inp, const void *dout, size_t n) {
    FN(gelu_bwd)(dinp, inp, dout, n);
}
static void FN(cpu_add)(Backend *b, void *out, const void *x, const void *y, size_t n) { FN(add)(out, x, y, n); }
static void FN(cpu_accumulate)(Backend *b, void *y, const void *x, size_t n) { FN(accumulate)(y, x, n); }
static void FN(cpu_scale)(Backend *b, void *x, double factor, size_t n) { FN(scale)(x, factor, n); }
static void FN(cpu_gather_tokens)(Backend *b, void *out, const void *inp, const int32_t *idx, int B, int n, int Nsrc,
                                  int C) {
    FN(gather_tokens)(out, inp, idx, B, n, Nsrc, C);
}
static void FN(cpu_scatter_add_tokens)(Backend *b, void *dinp, const void *dout, const int32_t *idx, int B, int n,
                                       int Nsrc, int C) {
    FN(scatter_add_tokens)(dinp, dout, idx, B, n, Nsrc, C);
}
static void FN(cpu_copy_tokens)(Backend *b, void *dst, int dst_tokens, int dst_start, const void *src,
                                int src_tokens, int src_start, int count, int B, int C, int accumulate) {
    FN(copy_tokens)(dst, dst_tokens, dst_start, src, src_tokens, src_start, count, B, C, accumulate);
}
static void FN(cpu_add_rows)(Backend *b, void *x, const void *table, const int32_t *idx, int B, int n, int C) {
    FN(add_rows)(x, table, idx, B, n, C);
}
static void FN(cpu_broadcast_row)(Backend *b, void *out, const void *row, int R, int C) {
    FN(broadcast_row)(out, row, R, C);
}
static void FN(cpu_sum_rows)(Backend *b, void *drow, const void *dout, int R, int C) { FN(sum_rows)(drow, dout, R, C); }
static void FN(cpu_patchify)(Backend *b, void *patches, const void *clips, int B, int T, int H, int W, int tt,
                             int p) {
    FN(patchify)(patches, clips, B, T, H, W, tt, p);
}
static void FN(cpu_l1_loss)(Backend *b, void *loss_out, void *dpred, const void *pred, const void *target, size_t n,
                            double loss_scale, double grad_scale) {
    FN(l1_loss)(loss_out, dpred, pred, target, n, loss_scale, grad_scale);
}
static void FN(cpu_mean_column_std)(Backend *b, void *out, const void *x, int R, int C, double scale) {
    *(real *)out += (real)(scale * FN(mean_column_std)(x, R, C));
}
static void FN(cpu_sum_squares)(Backend *b, void *out, const void *x, size_t n) { *(real *)out = (real)FN(sum_squares)(x, n); }
static void FN(cpu_clip_by_norm)(Backend *b, void *x, size_t n, const void *sumsq, double max_norm) {
    const double coef = max_norm / (sqrt((double)*(const real *)sumsq) + 1e-6);
    if (coef < 1.0) FN(scale_master)(x, coef, n);
}
// A stat slot the update reads: non-zero means a numerical fault this step (nonfinite_flag), the update is dropped.
static int FN(skip_update)(const void *skip) { return skip && *(const real *)skip != 0; }
static void FN(cpu_nonfinite_flag)(Backend *b, void *flag, const void *x, int n) {
    real any = 0;
    for (int i = 0; i < n; i++)
        if (!isfinite(((const real *)x)[i])) any = 1;
    *(real *)flag = any;
}
static void FN(cpu_adamw)(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n, double lr,
                          double beta1, double beta2, double eps, double weight_decay, long step, const void *skip) {
    if (FN(skip_update)(skip)) return;
    FN(adamw)(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step);
    if (working) FN(cast_params)(working, param, n);  // the CPU's working copy is the master itself
}
static void FN(cpu_ema)(Backend *b, void *target, void *working, const void *source, size_t n, double momentum,
                        const void *skip) {
    if (FN(skip_update)(skip)) return;
    FN(ema)(target, source, n, momentum);
    if (working) FN(cast_params)(working, target, n);
}
// The fused pass of adamw then ema (optim_cpu.c: bit for bit the two ops), used always on the CPU.
static void FN(cpu_adamw_ema)(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n,
                              double lr, double beta1, double beta2, double eps, double weight_decay, long step,
                              void *target, void *target_working, double momentum, const void *skip) {
    if (FN(skip_update)(skip)) return;
    FN(adamw_ema)(param, grad, m, v, target, n, lr, beta1, beta2, eps, weight_decay, step, momentum);
    if (working) FN(cast_params)(working, param, n);
    if (target_working) FN(cast_params)(target_working, target, n);
}
static void FN(cpu_cast_params)(Backend *b, void *working, const void *master, size_t n) {
    FN(cast_params)(working, master, n);
}

static void FN(cpu_set_ops)(Backend *b) {
    b->matmul_fwd = FN(cpu_matmul_fwd);
    b->matmul_bwd = FN(cpu_matmul_bwd);
    b->layernorm_fwd = FN(cpu_layernorm_fwd);
    b->layernorm_bwd = FN(cpu_layernorm_bwd);
    b->attention_fwd = FN(cpu_attention_fwd);
    b->attention_bwd = FN(cpu_attention_bwd);
    b->rope_qk = FN(cpu_rope_qk);
    b->gelu_fwd = FN(cpu_gelu_fwd);
    b->gelu_bwd = FN(cpu_gelu_bwd);
    b->add = FN(cpu_add);
    b->accumulate = FN(cpu_accumulate);
    b->scale = FN(cpu_scale);
    b->gather_tokens = FN(cpu_gather_tokens);
    b->scatter_add_tokens = FN(cpu_scatter_add_tokens);
    b->copy_tokens = FN(cpu_copy_tokens);
    b->add_rows = FN(cpu_add_rows);
    b->broadcast_row = FN(cpu_broadcast_row);
    b->sum_rows = FN(cpu_sum_rows);
    b->patchify = FN(cpu_patchify);
    b->l1_loss = FN(cpu_l1_loss);
    b->mean_column_std = FN(cpu_mean_column_std);
    b->sum_squares = FN(cpu_sum_squares);
    b->clip_by_norm = FN(cpu_clip_by_norm);
    b->nonfinite_flag = FN(cpu_nonfinite_flag);
    b->adamw = FN(cpu_adamw);
    b->ema = FN(cpu_ema);
    b->adamw_ema = FN(cpu_adamw_ema);
    b->cast_params = FN(cpu_cast_params);
}

#endif
