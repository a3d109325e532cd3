// kernel_profile.h: time per kernel family over a stretch of GPU work (`jepa bench step`, issue "twice the official
// throughput": profile first), from CUPTI's activity records: every kernel's and copy's start and end on the device,
// as Nsight Systems collects them. Nothing is added to the stream; the records arrive when the stretch is flushed.
// Built where CUPTI is found (JEPA_HAVE_CUPTI); elsewhere kernel_profile_available says why not.
#pragma once
#include <stddef.h>

typedef enum {
    KF_GEMM = 0,     // cuBLASLt (nvjet / xmma / cutlass kernels)
    KF_ATTENTION,    // ours (attention_*) and cuDNN's fused attention
    KF_LAYERNORM,    // layernorm_*
    KF_ELEMENTWISE,  // GELU, add, accumulate, scale, casts
    KF_TOKENS,       // gather, scatter, copy_tokens, add_rows, broadcast_row, sum_rows, patchify
    KF_LOSS,         // L1 loss, column std, sums of squares
    KF_OPTIMIZER,    // AdamW, EMA, clipping, working copies, the fault flag
    KF_COPY,         // memcpy and memset (host to device, device to device)
    KF_OTHER,        // anything unmatched (named in KernelProfile.other_name)
    KF_COUNT
} KernelFamily;

enum { KERNEL_PROFILE_TOP = 16 };

typedef struct {
    double family_s[KF_COUNT];  // summed durations
    long family_n[KF_COUNT];    // launches
    double busy_s;              // the union of every kernel's and copy's interval (streams may overlap)
    double span_s;              // first start to last end
    double other_s;             // the longest-running unmatched kernel name's total, and its name
    char other_name[128];
    long dropped;               // records CUPTI could not keep (buffers full): 0 for a trustworthy profile
    int n_top;                  // the kernels with the most device time, by (mangled) name, longest first
    struct {
        char name[128];
        double s;
        long n;
        KernelFamily family;
    } top[KERNEL_PROFILE_TOP];
} KernelProfile;

// 1 when kernels can be profiled here; else 0 and why[] says why (not built with CUPTI, or CUPTI refused).
int kernel_profile_available(char *why, size_t n);
void kernel_profile_start(void);                // collection from here (after a device sync)
void kernel_profile_stop(KernelProfile *out);  // syncs the device, flushes, aggregates what ran since start
const char *kernel_family_name(KernelFamily f);
// The family of a kernel by its (possibly mangled) name; exposed for tests.
KernelFamily kernel_family_of(const char *name);
