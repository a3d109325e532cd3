// kernel_profile.c: see kernel_profile.h.
#include "kernel_profile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *const FAMILY_NAMES[KF_COUNT] = {
    "GEMM (cuBLASLt, bias passes)", "attention", "LayerNorm", "elementwise (GELU, add, scale, casts)",
    "token movement (gather, scatter, patchify, rows)", "loss and statistics", "optimizer (AdamW, EMA, clip, casts)",
    "copies and memsets", "other"};

const char *kernel_family_name(KernelFamily f) { return f >= 0 && f < KF_COUNT ? FAMILY_NAMES[f] : "?"; }

// First match wins, so the specific names come before the general ones ("sum_squares" is the loss family's, not
// the tokens' "sum_rows"; cuDNN's attention kernels contain "sdpa" or "flash").
static const struct {
    const char *needle;
    KernelFamily family;
} NEEDLES[] = {
    {"attention", KF_ATTENTION}, {"attn_", KF_ATTENTION},     {"sdpa", KF_ATTENTION},
    {"flash", KF_ATTENTION},     {"sum_partials", KF_GEMM},    {"add_bias", KF_GEMM},  // matmul.cu's bias passes
    {"column_sums", KF_GEMM},
    {"layernorm", KF_LAYERNORM}, {"nvjet", KF_GEMM},           {"gemm", KF_GEMM},
    {"xmma", KF_GEMM},           {"cutlass", KF_GEMM},         {"splitKreduce", KF_GEMM},
    {"adamw", KF_OPTIMIZER},     {"ema_kernel", KF_OPTIMIZER}, {"clip_by_norm", KF_OPTIMIZER},
    {"cast_params", KF_OPTIMIZER}, {"nonfinite", KF_OPTIMIZER}, {"sum_squares", KF_LOSS},
    {"l1_loss", KF_LOSS},        {"column", KF_LOSS},          {"gather", KF_TOKENS},
    {"scatter", KF_TOKENS},      {"copy_tokens", KF_TOKENS},   {"add_rows", KF_TOKENS},
    {"broadcast_row", KF_TOKENS}, {"sum_rows", KF_TOKENS},     {"patchify", KF_TOKENS},
    {"gelu", KF_ELEMENTWISE},    {"add", KF_ELEMENTWISE},      {"accumulate", KF_ELEMENTWISE},
    {"scale", KF_ELEMENTWISE},   {"bf16", KF_ELEMENTWISE},     {"f32", KF_ELEMENTWISE},
};

KernelFamily kernel_family_of(const char *name) {
    if (!name) return KF_OTHER;
    for (size_t i = 0; i < sizeof NEEDLES / sizeof NEEDLES[0]; i++)
        if (strstr(name, NEEDLES[i].needle)) return NEEDLES[i].family;
    return KF_OTHER;
}

#ifdef JEPA_HAVE_CUPTI
#include <cuda_runtime.h>
#include <cupti.h>

#include "cuda_check.h"

#define CUPTI_CHECK(call)                                                                                  \
    do {                                                                                                   \
        CUptiResult cupti_check_r_ = (call);                                                               \
        if (cupti_check_r_ != CUPTI_SUCCESS) {                                                             \
            const char *cupti_check_s_ = NULL;                                                             \
            cuptiGetResultString(cupti_check_r_, &cupti_check_s_);                                         \
            die_internal("%s:%d: %s failed: %s", __FILE__, __LINE__, #call,                                \
                         cupti_check_s_ ? cupti_check_s_ : "?");                                           \
        }                                                                                                  \
    } while (0)

// Intervals [start, end) in ns, and names of the unmatched kernels with their totals.
typedef struct {
    uint64_t start, end;
} Interval;
typedef struct {
    Interval *iv;  // every kernel's and copy's interval
    size_t n, cap;
    KernelProfile prof;
    char (*name)[128];  // distinct kernel names, their totals and launches
    double *name_s;
    long *name_n;
    int n_names, cap_names;
} Collected;
static Collected col;

enum { BUFFER_BYTES = 8 << 20, RECORD_ALIGN = 8 };

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(RECORD_ALIGN, BUFFER_BYTES);
    *size = BUFFER_BYTES;
    *max_records = 0;  // as many as fit
}

static void add_interval(uint64_t start, uint64_t end) {
    if (end <= start) return;
    if (col.n == col.cap) col.iv = xrealloc(col.iv, (col.cap = col.cap ? 2 * col.cap : 4096) * sizeof(Interval));
    col.iv[col.n++] = (Interval){start, end};
}

static void add_name(const char *name, double s) {
    for (int i = 0; i < col.n_names; i++)
        if (!strncmp(col.name[i], name, sizeof col.name[i] - 1)) {
            col.name_s[i] += s;
            col.name_n[i]++;
            return;
        }
    if (col.n_names == col.cap_names) {
        col.cap_names = col.cap_names ? 2 * col.cap_names : 64;
        col.name = xrealloc(col.name, (size_t)col.cap_names * sizeof *col.name);
        col.name_s = xrealloc(col.name_s, (size_t)col.cap_names * sizeof(double));
        col.name_n = xrealloc(col.name_n, (size_t)col.cap_names * sizeof(long));
    }
    snprintf(col.name[col.n_names], sizeof col.name[0], "%s", name);
    col.name_s[col.n_names] = s;
    col.name_n[col.n_names++] = 1;
}

static void record(KernelFamily f, uint64_t start, uint64_t end, const char *name) {
    const double s = (double)(end - start) * 1e-9;
    col.prof.family_s[f] += s;
    col.prof.family_n[f]++;
    if (name) add_name(name, s);  // kernels; copies and memsets have no name
    add_interval(start, end);
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
            record(kernel_family_of(k->name), k->start, k->end, k->name);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
            record(KF_COPY, m->start, m->end, NULL);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)r;
            record(KF_COPY, m->start, m->end, NULL);
        }
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS) col.prof.dropped += (long)dropped;
    free(buffer);
}

static const CUpti_ActivityKind KINDS[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                           CUPTI_ACTIVITY_KIND_MEMSET};

int kernel_profile_available(char *why, size_t n) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        (void)cudaGetLastError();
        snprintf(why, n, "no CUDA device");
        return 0;
    }
    uint32_t version = 0;
    if (cuptiGetVersion(&version) != CUPTI_SUCCESS) {
        snprintf(why, n, "CUPTI did not answer (cuptiGetVersion failed)");
        return 0;
    }
    return 1;
}

void kernel_profile_start(void) {
    free(col.iv);
    free(col.name);
    free(col.name_s);
    free(col.name_n);
    memset(&col, 0, sizeof col);
    CUDA_CHECK(cudaDeviceSynchronize());
    static int registered = 0;
    if (!registered) {
        CUPTI_CHECK(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
        registered = 1;
    }
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) CUPTI_CHECK(cuptiActivityEnable(KINDS[i]));
}

static int by_start(const void *a, const void *b) {
    const Interval *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

void kernel_profile_stop(KernelProfile *out) {
    CUDA_CHECK(cudaDeviceSynchronize());
    CUPTI_CHECK(cuptiActivityFlushAll(1));  // 1: also the records of buffers not yet full
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) CUPTI_CHECK(cuptiActivityDisable(KINDS[i]));
    qsort(col.iv, col.n, sizeof(Interval), by_start);
    uint64_t busy = 0, run_start = 0, run_end = 0;
    for (size_t i = 0; i < col.n; i++) {  // the union: merge overlapping intervals in start order
        if (i == 0 || col.iv[i].start > run_end) {
            busy += run_end - run_start;
            run_start = col.iv[i].start, run_end = col.iv[i].end;
        } else if (col.iv[i].end > run_end) {
            run_end = col.iv[i].end;
        }
    }
    busy += run_end - run_start;
    col.prof.busy_s = (double)busy * 1e-9;
    uint64_t last = 0;
    for (size_t i = 0; i < col.n; i++) last = col.iv[i].end > last ? col.iv[i].end : last;
    col.prof.span_s = col.n ? (double)(last - col.iv[0].start) * 1e-9 : 0;
    for (int i = 0; i < col.n_names; i++)
        if (kernel_family_of(col.name[i]) == KF_OTHER && col.name_s[i] > col.prof.other_s) {
            col.prof.other_s = col.name_s[i];
            snprintf(col.prof.other_name, sizeof col.prof.other_name, "%s", col.name[i]);
        }
    for (int i = 0; i < col.n_names; i++) {  // insertion into the top list, longest first
        int at = col.prof.n_top;
        while (at > 0 && col.prof.top[at - 1].s < col.name_s[i]) at--;
        if (at >= KERNEL_PROFILE_TOP) continue;
        const int last = col.prof.n_top < KERNEL_PROFILE_TOP ? col.prof.n_top : KERNEL_PROFILE_TOP - 1;
        memmove(&col.prof.top[at + 1], &col.prof.top[at], (size_t)(last - at) * sizeof col.prof.top[0]);
        snprintf(col.prof.top[at].name, sizeof col.prof.top[at].name, "%s", col.name[i]);
        col.prof.top[at].s = col.name_s[i];
        col.prof.top[at].n = col.name_n[i];
        col.prof.top[at].family = kernel_family_of(col.name[i]);
        if (col.prof.n_top < KERNEL_PROFILE_TOP) col.prof.n_top++;
    }
    *out = col.prof;
}

#else

int kernel_profile_available(char *why, size_t n) {
    snprintf(why, n, "not built with CUPTI (the Makefile looks for cupti.h and libcupti.so beside CUDA)");
    return 0;
}
void kernel_profile_start(void) { die_internal("%s:%d: kernel_profile_start without CUPTI", __FILE__, __LINE__); }
void kernel_profile_stop(KernelProfile *out) {
    (void)out;
    die_internal("%s:%d: kernel_profile_stop without CUPTI", __FILE__, __LINE__);
}

#endif
