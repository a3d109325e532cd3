// bench_kernels.c: `jepa bench kernels|attention|layernorm|rope|ema|adamw|fusion|gemm`: the CUDA kernels at the real
// V-JEPA shapes, timed with bench.h's method, against the two ceilings measured in the same process and their
// references: cuBLASLt (our GEMMs are cuBLASLt calls; the ceiling is an 8192^3 product through the same path), cuDNN's
// fused attention (host/cudnn_attention.h, when built), a device-to-device copy of the same bytes for memory-bound
// ops; the fused ops (fusion) beside the ops they replace.
//
// What is counted (printed with the tables and kept in the JSON):
// - attention: 4*B*H*N^2*d FLOPs forward, 2.5x that backward (DESIGN), so fwd+bwd = 3.5x the forward.
// - GEMMs: 2*M*N*K for the forward and for each of the two backward products (dinp, dw).
// - memory-bound ops: the fewest bytes each launch must move through device memory, each input read once and each
//   output written once; an accumulated output (+=) is read and written.
// Peer figures (bench/peer-figures.json, the official code on the same GPU model) stand beside ours; where the peer
// counted bytes differently, its time (its bytes over its GB/s) is what compares, and both counts are printed.
#include <math.h>
#include <string.h>

#include "backend_cuda.h"
#include "bench.h"
#include "common.h"
#include "provenance.h"
#include "tools.h"

#ifdef JEPA_CUDA
#include "cuda_check.h"
#include "cuda_ops.h"
#if defined(__has_include)
#if __has_include("cudnn_attention.h")
#include "cudnn_attention.h"
#define BENCH_CUDNN_REFERENCE 1
#endif
#endif
#endif

const char *const BENCH_KERNEL_OPTIONS =
    "\n"
    "Every kernel target first measures the ceilings: a bf16 8192^3 GEMM through cuda_matmul_fwd (cuBLASLt) and a\n"
    "1 GiB device-to-device copy (bytes read + written). Each case is timed with CUDA events after a warm-up, as the\n"
    "median of samples of back-to-back runs, its inputs rotated through sets that together exceed the L2 cache 4x.\n"
    "Needs a CUDA GPU (exit 2 naming why there is none).\n"
    "\n"
    "options:\n"
    "  --json FILE          also write every figure as JSON (with GPU, date, commit, command)\n"
    "  --peer FILE          peer figures (default bench/peer-figures.json)\n"
    "  --seconds S          timing budget per case (default 0.3)\n"
    "  --deterministic 0|1  GEMM algorithms as meta.deterministic (default 1, the trainer's default)\n"
    "  --help               this text\n";

typedef struct {
    const char *json, *peer;
    double seconds;
    int deterministic;
} KernelOptions;

static void parse_kernel_options(int argc, char **argv, const char *target, KernelOptions *o) {
    char command[64];
    snprintf(command, sizeof command, "bench %s", target);
    ToolArgs a = {argc, argv, 0, command};
    *o = (KernelOptions){.seconds = 0.3, .deterministic = 1};
    while (a.next < argc) {
        const char *arg = argv[a.next++];
        if (!strcmp(arg, "--json")) o->json = tool_value(&a, arg);
        else if (!strcmp(arg, "--peer")) o->peer = tool_value(&a, arg);
        else if (!strcmp(arg, "--deterministic")) o->deterministic = tool_int(&a, arg, 0, 1);
        else if (!strcmp(arg, "--seconds")) {
            const char *v = tool_value(&a, arg);
            char *end;
            o->seconds = strtod(v, &end);
            if (*end || !(o->seconds > 0 && o->seconds <= 600))
                die_input("%s: --seconds '%s': expected seconds in (0, 600]", command, v);
        } else die_input("%s: unknown argument '%s' (see jepa bench %s --help)", command, arg, target);
    }
}

static int run_kernel_targets(const char *target, const KernelOptions *o, int argc, char **argv);

int bench_kernels_command(const char *target, int argc, char **argv) {
    KernelOptions o;
    parse_kernel_options(argc, argv, target, &o);
    char why[256];
    if (cuda_device_count(why, sizeof why) == 0) die_input("bench %s: needs a CUDA GPU: %s", target, why);
    return run_kernel_targets(target, &o, argc, argv);
}

#ifndef JEPA_CUDA

static int run_kernel_targets(const char *target, const KernelOptions *o, int argc, char **argv) {
    die_internal("bench %s: a GPU was found in a build without CUDA", target);  // cuda_device_count returns 0 here
}

#else

// ---------------------------------------------------------------------------------------------------- kernel cases

typedef struct {
    Backend *be;
    void *src, *dst;
    size_t bytes;
} CopyCeiling;

static void run_copy_ceiling(void *ctx, int set) {
    CopyCeiling *c = ctx;
    c->be->copy(c->be, c->dst, c->src, c->bytes);
}

// GB/s of a device-to-device copy of `bytes`, counting bytes read + written.
static double copy_ceiling(BenchClock *c, Backend *be, size_t bytes, double budget_s) {
    CopyCeiling cc = {be, backend_alloc(be, "the copy ceiling's buffers", bytes),
                      backend_alloc(be, "the copy ceiling's buffers", bytes), bytes};
    bench_fill(be, cc.src, 4, bytes / 4, 0, 1, 0, 3);
    const BenchTiming t = bench_time(c, run_copy_ceiling, &cc, 1, budget_s);
    be->release(be, cc.src);
    be->release(be, cc.dst);
    return 2.0 * (double)bytes / (1e-3 * t.ms) / 1e9;
}

// The first entry of peer[section] whose number fields keys[i] equal values[i] and (skey non-NULL) whose string field
// skey equals sval; NULL when there is none.
static json_object *peer_find(json_object *peer, const char *section, const char *skey, const char *sval, int nkeys,
                              const char *const *keys, const double *values) {
    json_object *list;
    if (!peer || !json_object_object_get_ex(peer, section, &list) || !json_object_is_type(list, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *e = json_object_array_get_idx(list, i), *s;
        int match = 1;
        for (int k = 0; k < nkeys && match; k++) match = bench_json_number(e, keys[k]) == values[k];
        if (match && skey)
            match = json_object_object_get_ex(e, skey, &s) && !strcmp(json_object_get_string(s), sval);
        if (match) return e;
    }
    return NULL;
}

typedef struct {
    Backend *be;
    BenchClock *clock;
    cudaStream_t s;
    double seconds;        // timing budget per case
    size_t rotate_bytes;   // input sets of a case together exceed this (4x L2)
    double gemm_tflops;    // measured ceilings
    double copy_gbps;
    json_object *peer;     // may be NULL
    json_object *report;   // the --json document
    void *live[512];       // device buffers of the current case
    int n_live;
    uint64_t fills;        // seed of the next fill
} KernelBench;

static void *dev_alloc(KernelBench *kb, size_t bytes) {
    JEPA_ASSERT(kb->n_live < (int)(sizeof kb->live / sizeof kb->live[0]));
    return kb->live[kb->n_live++] = backend_alloc(kb->be, "a benchmark input", bytes);
}

// n random elements of elem_size bytes (2: bf16, 4: fp32).
static void *dev_random(KernelBench *kb, size_t n, size_t elem_size, double mean, double scale, int positive) {
    void *p = dev_alloc(kb, n * elem_size);
    bench_fill(kb->be, p, elem_size, n, mean, scale, positive, ++kb->fills);
    return p;
}

static void release_case(KernelBench *kb) {
    kb->be->synchronize(kb->be);
    for (int i = 0; i < kb->n_live; i++) kb->be->release(kb->be, kb->live[i]);
    kb->n_live = 0;
}

static json_object *timing_json(const BenchTiming *t, double work, const char *unit) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ms", json_object_new_double(t->ms));
    json_object_object_add(o, "p10_ms", json_object_new_double(t->p10));
    json_object_object_add(o, "p90_ms", json_object_new_double(t->p90));
    json_object_object_add(o, "samples", json_object_new_int(t->samples));
    json_object_object_add(o, "runs_per_sample", json_object_new_int(t->reps));
    json_object_object_add(o, "input_sets", json_object_new_int(t->sets));
    json_object_object_add(o, unit, json_object_new_double(work / (1e-3 * t->ms)));
    return o;
}

static json_object *report_array(KernelBench *kb, const char *key) {
    json_object *a;
    if (!json_object_object_get_ex(kb->report, key, &a)) {
        a = json_object_new_array();
        json_object_object_add(kb->report, key, a);
    }
    return a;
}

// ---- attention

typedef struct {
    const char *name;
    int B, H, N, d;
    int ft;  // frame_tokens: frame-causal with frames of ft tokens; 0 none
} AttnShape;

static const AttnShape ATTN_SHAPES[] = {
    {"target ViT-L", 24, 16, 1568, 64, 0},     {"context short-range", 24, 16, 362, 64, 0},
    {"context long-range", 24, 16, 106, 64, 0}, {"predictor short-range", 24, 16, 1115, 24, 0},
    {"predictor long-range", 24, 16, 1210, 24, 0}, {"target ViT-H", 16, 16, 1568, 80, 0},
    {"target 64 frames", 24, 16, 6272, 64, 0},  // issue 7's long clip, and V-JEPA 2's ViT-g at 256 px (22 heads of 64)
    {"target ViT-g V-JEPA 2", 24, 22, 2048, 64, 0},
    // issue 8: d32 at B48 (the batch of its cuDNN figure), V-JEPA v1's giant heads of 88, d128, and the
    // action-conditioned predictor's frame-causal mask (8 frames of 256; no cuDNN reference: cuDNN has no such mask)
    {"predictor d32", 48, 12, 1568, 32, 0},    {"target ViT-g V-JEPA 1", 16, 16, 1568, 88, 0},
    {"d128", 24, 16, 1568, 128, 0},            {"frame-causal 8 x 256", 24, 16, 2048, 64, 256},
};

// The fraction of (query, key) pairs the mask leaves (1 without it): what the FLOP counts are scaled by.
static double attn_pair_fraction(const AttnShape *h) {
    if (h->ft <= 0) return 1.0;
    double pairs = 0;
    for (int f0 = 0; f0 < h->N; f0 += h->ft) {
        const int rows = h->N - f0 < h->ft ? h->N - f0 : h->ft, keys = f0 + rows;
        pairs += (double)rows * keys;
    }
    return pairs / ((double)h->N * h->N);
}

typedef struct {
    const AttnShape *sh;
    cudaStream_t s;
    int cudnn;  // the cuDNN reference instead of ours
    void *qkv[64], *out[64], *dout[64], *dqkv[64];  // per input set
    float *lse[64];
} AttnCase;

static void attn_fwd(void *ctx, int i) {
    AttnCase *a = ctx;
    const AttnShape *h = a->sh;
#ifdef BENCH_CUDNN_REFERENCE
    if (a->cudnn) {
        cudnn_attention_fwd(a->s, a->out[i], a->lse[i], a->qkv[i], h->B, h->N, h->H, h->d);
        return;
    }
#endif
    cuda_attention_fwd(a->s, a->out[i], a->lse[i], a->qkv[i], h->B, h->N, h->H, h->d, h->ft);
}

static void attn_fwd_bwd(void *ctx, int i) {
    AttnCase *a = ctx;
    const AttnShape *h = a->sh;
    attn_fwd(ctx, i);
#ifdef BENCH_CUDNN_REFERENCE
    if (a->cudnn) {
        cudnn_attention_bwd(a->s, a->dqkv[i], a->dout[i], a->qkv[i], a->out[i], a->lse[i], h->B, h->N, h->H, h->d);
        return;
    }
#endif
    cuda_attention_bwd(a->s, a->dqkv[i], a->dout[i], a->qkv[i], a->out[i], a->lse[i], h->B, h->N, h->H, h->d, h->ft);
}

// Whether the cuDNN reference can run, with why[] either way.
static int cudnn_reference(char *why, size_t n) {
#ifdef BENCH_CUDNN_REFERENCE
    return cudnn_attention_available(why, n);
#else
    snprintf(why, n, "not built (host/cudnn_attention.h absent at build time)");
    return 0;
#endif
}

// Builds cuDNN's plans for a shape outside the timing: 1 ready; else 0 with why[].
static int cudnn_shape_ready(const AttnShape *h, char *why, size_t n) {
    if (h->ft > 0) {
        snprintf(why, n, "frame-causal (frames of %d): no cuDNN mask for it", h->ft);
        return 0;
    }
#ifdef BENCH_CUDNN_REFERENCE
    return cudnn_attention_prepare(h->B, h->N, h->H, h->d, why, n) == 1;
#else
    snprintf(why, n, "not built");
    return 0;
#endif
}

static void cudnn_reference_release(void) {
#ifdef BENCH_CUDNN_REFERENCE
    cudnn_attention_release();
#endif
}

static double peer_attention(KernelBench *kb, const AttnShape *h, const char *backend, const char *key) {
    if (h->ft > 0) return NAN;  // the peer figures are unmasked
    const char *keys[] = {"B", "H", "N", "d"};
    const double values[] = {h->B, h->H, h->N, h->d};
    return bench_json_number(peer_find(kb->peer, "attention", "backend", backend, 4, keys, values), key);
}

static void bench_attention(KernelBench *kb) {
    char why[256], a[32], b[32], c[32], d[32], notes[2048] = "";
    const int have_cudnn = cudnn_reference(why, sizeof why);
    printf("\n## Attention (bf16 in, fp32 softmax; TFLOP/s by 4*B*H*N^2*d forward, 3.5x that forward+backward)\n\n");
    printf("cuDNN reference: %s%s\n\n", why,
           have_cudnn ? " (its backward writes dqkv; ours accumulates into it, reading it too)" : "");
    const char *header[] = {"shape", "B H N d", "pass", "ms", "TFLOP/s", "% GEMM ceiling", "cuDNN here",
                            "peer cuDNN", "peer FlashAttention", "ours / peer cuDNN"};
    BenchTable t;
    bench_table_init(&t, 10, header);
    json_object *list = report_array(kb, "attention");
    for (size_t si = 0; si < sizeof ATTN_SHAPES / sizeof ATTN_SHAPES[0]; si++) {
        const AttnShape *h = &ATTN_SHAPES[si];
        const size_t x = (size_t)h->B * h->N * h->H * h->d, rows = (size_t)h->B * h->H * h->N;
        const size_t set_bytes = 2 * (3 * x + x + x + 3 * x) + 4 * rows;  // qkv, out, dout, dqkv bf16; lse fp32
        AttnCase ac = {.sh = h, .s = kb->s};
        const int sets = bench_sets_for(set_bytes, kb->rotate_bytes);
        for (int i = 0; i < sets; i++) {
            ac.qkv[i] = dev_random(kb, 3 * x, 2, 0, 1, 0);
            ac.out[i] = dev_alloc(kb, 2 * x);
            ac.dout[i] = dev_random(kb, x, 2, 0, 1, 0);
            ac.dqkv[i] = dev_alloc(kb, 2 * 3 * x);
            ac.lse[i] = dev_alloc(kb, 4 * rows);
        }
        const size_t ws = cuda_attention_bwd_workspace(h->B, h->N, h->H, h->d);
        void *workspace = ws ? dev_alloc(kb, ws) : NULL;
        cuda_attention_set_workspace(workspace, ws);
        const double fwd_flops = 4.0 * h->B * h->H * (double)h->N * h->N * h->d * attn_pair_fraction(h);
        json_object *row = json_object_new_object();
        json_object_object_add(row, "case", json_object_new_string(h->name));
        json_object_object_add(row, "B", json_object_new_int(h->B));
        json_object_object_add(row, "H", json_object_new_int(h->H));
        json_object_object_add(row, "N", json_object_new_int(h->N));
        json_object_object_add(row, "d", json_object_new_int(h->d));
        json_object_object_add(row, "frame_tokens", json_object_new_int(h->ft));
        json_object_object_add(row, "fwd_flops", json_object_new_double(fwd_flops));
        char shape_why[256] = "";
        const int cudnn_ok = have_cudnn && cudnn_shape_ready(h, shape_why, sizeof shape_why);
        if (have_cudnn) json_object_object_add(row, "cudnn_plan", json_object_new_string(shape_why));
        if (have_cudnn && !cudnn_ok) {
            const size_t at = strlen(notes);
            snprintf(notes + at, sizeof notes - at, "cuDNN cannot run %s: %s\n", h->name, shape_why);
        }
        for (int pass = 0; pass < 2; pass++) {
            const char *key = pass ? "fwdbwd" : "fwd";
            const double flops = pass ? 3.5 * fwd_flops : fwd_flops;
            const BenchRunFn fn = pass ? attn_fwd_bwd : attn_fwd;
            ac.cudnn = 0;
            const BenchTiming ours = bench_time(kb->clock, fn, &ac, sets, kb->seconds);
            double ref = NAN;
            if (cudnn_ok) {
                ac.cudnn = 1;
                const BenchTiming r = bench_time(kb->clock, fn, &ac, sets, kb->seconds);
                ref = flops / (1e-3 * r.ms) / 1e12;
                char k[32];
                snprintf(k, sizeof k, "cudnn_%s", key);
                json_object_object_add(row, k, timing_json(&r, flops / 1e12, "tflops"));
            }
            char pk[32];
            snprintf(pk, sizeof pk, "%s_tflops", key);
            const double tf = flops / (1e-3 * ours.ms) / 1e12, peer_cudnn = peer_attention(kb, h, "cudnn_attention", pk),
                         peer_flash = peer_attention(kb, h, "flash_attention", pk);
            json_object_object_add(row, key, timing_json(&ours, flops / 1e12, "tflops"));
            char k[48];
            snprintf(k, sizeof k, "peer_cudnn_%s_tflops", key);
            json_object_object_add(row, k, bench_json_double(peer_cudnn));
            snprintf(k, sizeof k, "peer_flash_%s_tflops", key);
            json_object_object_add(row, k, bench_json_double(peer_flash));
            bench_table_add(&t, "%s", pass ? "" : h->name);
            if (pass) bench_table_add(&t, "%s", "");
            else bench_table_add(&t, "%d %d %d %d", h->B, h->H, h->N, h->d);
            bench_table_add(&t, "%s", pass ? "fwd+bwd" : "fwd");
            bench_table_add(&t, "%.3f", ours.ms);
            bench_table_add(&t, "%.1f", tf);
            bench_table_add(&t, "%.1f%%", 100 * tf / kb->gemm_tflops);
            bench_table_add(&t, "%s", bench_num(a, sizeof a, 1, ref));
            bench_table_add(&t, "%s", bench_num(b, sizeof b, 0, peer_cudnn));
            bench_table_add(&t, "%s", bench_num(c, sizeof c, 0, peer_flash));
            bench_table_add(&t, "%s", bench_num(d, sizeof d, 2, tf / peer_cudnn));
        }
        json_object_object_add(row, "bwd_ms_from_difference",
                               json_object_new_double(bench_json_number(json_object_object_get(row, "fwdbwd"), "ms") -
                                                      bench_json_number(json_object_object_get(row, "fwd"), "ms")));
        json_object_array_add(list, row);
        cuda_attention_set_workspace(NULL, 0);
        release_case(kb);
    }
    cudnn_reference_release();
    bench_table_print(&t, stdout);
    fputs(notes, stdout);
    json_object_object_add(kb->report, "cudnn_reference", json_object_new_string(why));
}

// ---- memory-bound ops: LayerNorm, EMA, AdamW

// One row of the memory-bound table and its JSON.
typedef struct {
    const char *op, *variant;
    double bytes;       // our count, per run
    const char *count;  // how it was counted
    BenchTiming t;
    json_object *peers;  // the matching peer entries
    const char *peer_key;  // their GB/s field
    double peer_bytes;     // the peer's count (its time = peer_bytes / its GB/s)
    const char *peer_count;
} MemRow;

static void mem_row(KernelBench *kb, BenchTable *t, const MemRow *r) {
    char a[32], b[32], c[48];
    const double gbps = r->bytes / (1e-3 * r->t.ms) / 1e9;
    // the fastest peer implementation, and every one in the JSON
    double best = NAN;
    const char *best_impl = "";
    json_object *peer_list = json_object_new_array();
    for (size_t i = 0; r->peers && i < json_object_array_length(r->peers); i++) {
        json_object *e = json_object_array_get_idx(r->peers, i), *impl;
        const double g = bench_json_number(e, r->peer_key);
        json_object_object_get_ex(e, "impl", &impl);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "impl", json_object_new_string(impl ? json_object_get_string(impl) : "?"));
        json_object_object_add(p, "gbps", bench_json_double(g));
        json_object_object_add(p, "ms_by_peer_bytes", bench_json_double(r->peer_bytes / (g * 1e9) * 1e3));
        json_object_array_add(peer_list, p);
        if (isfinite(g) && !(g <= best)) best = g, best_impl = impl ? json_object_get_string(impl) : "?";
    }
    const double peer_ms = r->peer_bytes / (best * 1e9) * 1e3;
    bench_table_add(t, "%s", r->op);
    bench_table_add(t, "%s", r->variant);
    bench_table_add(t, "%.1f", r->bytes / 1e6);
    bench_table_add(t, "%.3f", r->t.ms);
    bench_table_add(t, "%.0f", gbps);
    bench_table_add(t, "%.1f%%", 100 * gbps / kb->copy_gbps);
    bench_table_add(t, "%.3f", r->bytes / (kb->copy_gbps * 1e9) * 1e3);
    if (isfinite(best)) snprintf(c, sizeof c, "%.0f (%s)", best, best_impl);
    else snprintf(c, sizeof c, "-");
    bench_table_add(t, "%s", c);
    bench_table_add(t, "%s", bench_num(a, sizeof a, 3, peer_ms));
    bench_table_add(t, "%s", bench_num(b, sizeof b, 2, peer_ms / r->t.ms));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(r->op));
    json_object_object_add(o, "variant", json_object_new_string(r->variant));
    json_object_object_add(o, "bytes", json_object_new_double(r->bytes));
    json_object_object_add(o, "bytes_counted", json_object_new_string(r->count));
    json_object_object_add(o, "timing", timing_json(&r->t, r->bytes / 1e9, "gbps"));
    json_object_object_add(o, "fraction_of_copy_ceiling", json_object_new_double(gbps / kb->copy_gbps));
    json_object_object_add(o, "copy_ms_same_bytes", json_object_new_double(r->bytes / (kb->copy_gbps * 1e9) * 1e3));
    json_object_object_add(o, "peer_bytes", json_object_new_double(r->peer_bytes));
    json_object_object_add(o, "peer_bytes_counted", json_object_new_string(r->peer_count));
    json_object_object_add(o, "peer", peer_list);
    json_object_array_add(report_array(kb, "memory_bound"), o);
}

static void mem_table_init(BenchTable *t) {
    const char *header[] = {"op", "variant", "MB moved", "ms", "GB/s", "% copy ceiling", "copy ms (same bytes)",
                            "peer GB/s (impl)", "peer ms", "peer ms / ours"};
    bench_table_init(t, 10, header);
}

// The peer entries of memory_bound with op == name and field key == value (key NULL: any).
static json_object *peer_memory(KernelBench *kb, const char *op, int nkeys, const char *const *keys,
                                const double *values) {
    json_object *list, *out = json_object_new_array();
    if (!kb->peer || !json_object_object_get_ex(kb->peer, "memory_bound", &list)) return out;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *e = json_object_array_get_idx(list, i), *s;
        int match = json_object_object_get_ex(e, "op", &s) && !strcmp(json_object_get_string(s), op);
        for (int k = 0; k < nkeys && match; k++) match = bench_json_number(e, keys[k]) == values[k];
        if (match) json_object_array_add(out, json_object_get(e));
    }
    return out;
}

#define LN_ROWS 37632  // 24 clips x 1568 tokens
#define OPT_PARAMS 305490944ul  // the peer's count: ViT-L/16 encoder + predictor

typedef struct {
    cudaStream_t s;
    int R, C;
    void *x[64], *y[64], *dy[64], *dx[64];  // [R,C] bf16 per set
    float *mean[64], *rstd[64];             // [R] per set
    void *w, *b;                            // [C] bf16
    float *dw, *db;                         // [C] fp32 (+=)
} LnCase;

static void ln_fwd(void *ctx, int i) {
    LnCase *l = ctx;
    cuda_layernorm_fwd(l->s, l->y[i], l->mean[i], l->rstd[i], l->x[i], l->w, l->b, l->R, l->C, 1e-6f);
}

static void ln_fwd_bwd(void *ctx, int i) {
    LnCase *l = ctx;
    ln_fwd(ctx, i);
    cuda_layernorm_bwd(l->s, l->dx[i], l->dw, l->db, l->dy[i], l->x[i], l->w, l->mean[i], l->rstd[i], l->R, l->C);
}

static void bench_layernorm(KernelBench *kb) {
    printf("\n## LayerNorm (bf16, affine, eps 1e-6; %d rows)\n\n", LN_ROWS);
    printf("bytes counted, S = rows x C x 2: fwd reads x, w, b and writes y, mean, rstd = 2S + 4C + 8R; bwd reads dy,\n"
           "x, mean, rstd, w and reads + writes dx (+=), dw and db (+=, fp32) = 4S + 8R + 2C + 16C. The peer (torch) is\n"
           "compared by time, its bytes taken as fwd 2S (x, y) and fwd+bwd 5S (x, y; x, dy, dx).\n\n");
    BenchTable t;
    mem_table_init(&t);
    const int widths[] = {1024, 384};
    for (int wi = 0; wi < 2; wi++) {
        LnCase l = {.s = kb->s, .R = LN_ROWS, .C = widths[wi]};
        const double R = l.R, C = l.C, S = R * C * 2;
        const size_t set_bytes = (size_t)(4 * S + 8 * R);
        const int sets = bench_sets_for(set_bytes, kb->rotate_bytes);
        for (int i = 0; i < sets; i++) {
            l.x[i] = dev_random(kb, (size_t)l.R * l.C, 2, 0, 1, 0);
            l.y[i] = dev_alloc(kb, (size_t)S);
            l.dy[i] = dev_random(kb, (size_t)l.R * l.C, 2, 0, 1, 0);
            l.dx[i] = dev_alloc(kb, (size_t)S);
            l.mean[i] = dev_alloc(kb, 4 * (size_t)l.R);
            l.rstd[i] = dev_alloc(kb, 4 * (size_t)l.R);
        }
        l.w = dev_random(kb, (size_t)l.C, 2, 1, 0.1, 0);
        l.b = dev_random(kb, (size_t)l.C, 2, 0, 0.1, 0);
        l.dw = dev_alloc(kb, 4 * (size_t)l.C);
        l.db = dev_alloc(kb, 4 * (size_t)l.C);
        const char *keys[] = {"D", "rows"};
        const double values[] = {C, R};
        const double fwd = 2 * S + 4 * C + 8 * R, bwd = 4 * S + 8 * R + 2 * C + 16 * C;
        char variant[64];
        snprintf(variant, sizeof variant, "C %d fwd", l.C);
        json_object *peers = peer_memory(kb, "layernorm_bf16", 2, keys, values);
        MemRow r = {"layernorm", variant, fwd, "read x, w, b; write y, mean, rstd",
                    bench_time(kb->clock, ln_fwd, &l, sets, kb->seconds), peers, "fwd_gbps", 2 * S, "x, y"};
        mem_row(kb, &t, &r);
        snprintf(variant, sizeof variant, "C %d fwd+bwd", l.C);
        r = (MemRow){"layernorm", variant, fwd + bwd,
                     "fwd; then read dy, x, mean, rstd, w; read+write dx (+=), dw, db (+=, fp32)",
                     bench_time(kb->clock, ln_fwd_bwd, &l, sets, kb->seconds), peers, "fwdbwd_gbps", 5 * S,
                     "x, y; x, dy, dx"};
        mem_row(kb, &t, &r);
        json_object_put(peers);
        release_case(kb);
    }
    bench_table_print(&t, stdout);
}

// ---- V-JEPA 2's 3D RoPE (kernels/rope.cu), in place on q and k of a bf16 qkv
typedef struct {
    cudaStream_t s;
    int B, N, H, hd, gh, gw;
    void *qkv[64];      // [B,N,3,H,hd] bf16 per set
    int32_t *pos;       // [B,N] grid indices, or NULL (all tokens)
} RopeCase;

static void run_rope(void *ctx, int i) {
    RopeCase *r = ctx;
    cuda_rope_qk(r->s, r->qkv[i], r->pos, r->B, r->N, r->H, r->hd, r->gh, r->gw, 0);
}

static void bench_rope(KernelBench *kb) {
    printf("\n## 3D RoPE (bf16 qkv in place, V-JEPA 2)\n\n");
    printf("bytes counted: the rotated dims of q and k, read and written (2 x B*N*2*H*3S*2 with S = 2*((hd/3)/2)),\n"
           "plus the int32 positions when gathered. Unrotated dims and v are not touched.\n\n");
    BenchTable t;
    mem_table_init(&t);
    const struct {
        const char *name;
        int B, N, H, hd, gathered;
    } shapes[] = {{"ViT-g target 24x2048 22x64", 24, 2048, 22, 64, 0}, {"ViT-g context 24x483", 24, 483, 22, 64, 1},
                  {"ViT-L target 24x2048 16x64", 24, 2048, 16, 64, 0}, {"predictor 24x1443 12x32", 24, 1443, 12, 32, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        RopeCase r = {.s = kb->s, .B = shapes[k].B, .N = shapes[k].N, .H = shapes[k].H, .hd = shapes[k].hd,
                      .gh = 16, .gw = 16};
        const size_t elems = (size_t)r.B * r.N * 3 * r.H * r.hd;
        const int sets = bench_sets_for(elems * 2, kb->rotate_bytes);
        for (int i = 0; i < sets; i++) r.qkv[i] = dev_random(kb, elems, 2, 0, 1, 0);
        if (shapes[k].gathered) {  // every 4th grid index of an 8x16x16 grid, as a context's sorted indices
            int32_t *h = xmalloc((size_t)r.B * r.N * sizeof(int32_t));
            for (int i = 0; i < r.B * r.N; i++) h[i] = (int32_t)((i % r.N) * 4 % 2048);
            r.pos = dev_alloc(kb, (size_t)r.B * r.N * sizeof(int32_t));
            kb->be->upload(kb->be, r.pos, h, (size_t)r.B * r.N * sizeof(int32_t));
            free(h);
        }
        const double S = 2 * ((r.hd / 3) / 2);
        const double bytes = 2.0 * r.B * r.N * 2 * r.H * 3 * S * 2 + (r.pos ? 4.0 * r.B * r.N : 0);
        json_object *peers = json_object_new_array();
        const MemRow row = {"rope", shapes[k].name, bytes, "read + write q, k rotated dims (+ positions)",
                            bench_time(kb->clock, run_rope, &r, sets, kb->seconds), peers, "gbps", bytes, "same"};
        mem_row(kb, &t, &row);
        json_object_put(peers);
        release_case(kb);
    }
    bench_table_print(&t, stdout);
}

typedef struct {
    cudaStream_t s;
    size_t n;
    float *target, *source, *param, *grad, *m, *v;
    void *working;  // bf16 [n] or NULL
} OptCase;

static void run_ema(void *ctx, int set) {
    OptCase *o = ctx;
    cuda_ema(o->s, o->target, o->working, o->source, o->n, 0.998f, NULL);
}

static void run_adamw(void *ctx, int set) {
    OptCase *o = ctx;
    cuda_adamw(o->s, o->param, o->working, o->grad, o->m, o->v, o->n, 6.25e-4f, 0.9f, 0.999f, 1e-8f, 0.04f, 100, NULL);
}

static void bench_optimizer_op(KernelBench *kb, int adamw) {
    const size_t n = OPT_PARAMS;
    printf("\n## %s (%zu fp32 parameters, one launch over the flat buffer)\n\n", adamw ? "AdamW" : "EMA", n);
    printf("bytes counted per parameter: %s; the bf16 working copy the trainer refreshes in the same pass adds 2. The\n"
           "peer's figures count the fp32 bytes.\n\n",
           adamw ? "read p, g, m, v and write p, m, v, fp32 = 28" : "read target and source, write target, fp32 = 12");
    BenchTable t;
    mem_table_init(&t);
    OptCase o = {.s = kb->s, .n = n};
    if (adamw) {
        o.param = dev_random(kb, n, 4, 0, 0.02, 0);
        o.grad = dev_random(kb, n, 4, 0, 1e-3, 0);
        o.m = dev_random(kb, n, 4, 0, 1e-4, 0);
        o.v = dev_random(kb, n, 4, 0, 1e-6, 1);
    } else {
        o.target = dev_random(kb, n, 4, 0, 0.02, 0);
        o.source = dev_random(kb, n, 4, 0, 0.02, 0);
    }
    void *working = dev_alloc(kb, 2 * n);
    const double per = adamw ? 28 : 12;
    json_object *peers = peer_memory(kb, adamw ? "adamw_fp32" : "ema_fp32", 1, (const char *const[]){"params"},
                                     (const double[]){(double)n});
    for (int with_working = 1; with_working >= 0; with_working--) {
        o.working = with_working ? working : NULL;
        const MemRow r = {adamw ? "adamw" : "ema", with_working ? "fp32 + bf16 working (as trained)" : "fp32 only",
                          (per + 2 * with_working) * n,
                          adamw ? (with_working ? "read p, g, m, v; write p, m, v (fp32), working (bf16)"
                                                : "read p, g, m, v; write p, m, v (fp32)")
                                : (with_working ? "read target, source; write target (fp32), working (bf16)"
                                                : "read target, source; write target (fp32)"),
                          bench_time(kb->clock, adamw ? run_adamw : run_ema, &o, 1, kb->seconds), peers, "gbps",
                          per * n, adamw ? "28 bytes per parameter" : "12 bytes per parameter"};
        mem_row(kb, &t, &r);
    }
    json_object_put(peers);
    release_case(kb);
    bench_table_print(&t, stdout);
}

// ---- issue 9's fusions, each beside the ops it replaces (the fused kernels are opt-in in training:
// JEPA_FUSE_LN=1, JEPA_FUSE_EMA=1)
#define ENC_PARAMS 303885312ul  // the ViT-L/16 encoder (jepa train configs/vitl16.yaml --dry-run): the EMA's range

typedef struct {
    cudaStream_t s;
    int R, C;
    void *x[64], *y[64], *sum[64], *out[64];  // [R,C] bf16 per set
    float *mean[64], *rstd[64];               // [R] per set
    void *w, *b;                              // [C] bf16
} AddLnCase;

static void add_ln_unfused(void *ctx, int i) {
    AddLnCase *l = ctx;
    cuda_add(l->s, l->sum[i], l->x[i], l->y[i], (size_t)l->R * l->C);
    cuda_layernorm_fwd(l->s, l->out[i], l->mean[i], l->rstd[i], l->sum[i], l->w, l->b, l->R, l->C, 1e-6f);
}

static void add_ln_fused(void *ctx, int i) {
    AddLnCase *l = ctx;
    if (!cuda_add_layernorm_fwd(l->s, l->sum[i], l->out[i], l->mean[i], l->rstd[i], l->x[i], l->y[i], l->w, l->b,
                                l->R, l->C, 1e-6f))
        die_internal("bench fusion: cuda_add_layernorm_fwd declined R=%d C=%d", l->R, l->C);
}

typedef struct {
    cudaStream_t s;
    size_t n;
    float *param, *grad, *m, *v, *target;  // [n] fp32
    void *work, *target_work;              // [n] bf16
} FusedOptCase;

static void adamw_then_ema(void *ctx, int set) {
    FusedOptCase *o = ctx;
    cuda_adamw(o->s, o->param, o->work, o->grad, o->m, o->v, o->n, 6.25e-4f, 0.9f, 0.999f, 1e-8f, 0.04f, 100, NULL);
    cuda_ema(o->s, o->target, o->target_work, o->param, o->n, 0.998f, NULL);
}

static void adamw_ema_fused(void *ctx, int set) {
    FusedOptCase *o = ctx;
    cuda_adamw_ema(o->s, o->param, o->work, o->grad, o->m, o->v, o->target, o->target_work, o->n, 6.25e-4f, 0.9f,
                   0.999f, 1e-8f, 0.04f, 100, 0.998f, NULL);
}

// The unfused and the fused row of one case, and the line saying what the fusion saved.
static void fusion_rows(KernelBench *kb, BenchTable *t, const char *op, const char *what, double bytes_unfused,
                        double bytes_fused, const char *count_unfused, const char *count_fused, BenchRunFn unfused,
                        BenchRunFn fused, void *ctx, int sets, char *saved, size_t saved_size) {
    json_object *none = json_object_new_array();
    char variant[96];
    snprintf(variant, sizeof variant, "%s unfused", what);
    const MemRow u = {op, variant, bytes_unfused, count_unfused, bench_time(kb->clock, unfused, ctx, sets, kb->seconds),
                      none, "gbps", bytes_unfused, "none"};
    mem_row(kb, t, &u);
    snprintf(variant, sizeof variant, "%s fused", what);
    const MemRow f = {op, variant, bytes_fused, count_fused, bench_time(kb->clock, fused, ctx, sets, kb->seconds),
                      none, "gbps", bytes_fused, "none"};
    mem_row(kb, t, &f);
    json_object_put(none);
    const size_t len = strlen(saved);
    snprintf(saved + len, saved_size - len, "  %s %s: fused %.3f ms vs %.3f ms, saves %.3f ms (bytes %.0f%% fewer)\n",
             op, what, f.t.ms, u.t.ms, u.t.ms - f.t.ms, 100 * (1 - bytes_fused / bytes_unfused));
}

static void bench_fusion(KernelBench *kb) {
    printf("\n## Fusions (issue 9): the fused kernel beside the ops it replaces\n\n");
    printf("bytes counted, S = rows x C x 2: add then layernorm fwd = add (read x, y; write sum: 3S) + fwd (read sum,\n"
           "write out: 2S) + 8R + 4C; fused = read x, y, write sum, out = 4S + 8R + 4C. AdamW then EMA over the\n"
           "encoder, per parameter: adamw 30 (read p, g, m, v; write p, m, v; bf16 working) + ema 14 (read target, p;\n"
           "write target; bf16 working) = 44; fused 40 (p read once).\n\n");
    BenchTable t;
    mem_table_init(&t);
    char saved[1024] = "";
    const int widths[] = {1024, 384};
    for (int wi = 0; wi < 2; wi++) {
        AddLnCase l = {.s = kb->s, .R = LN_ROWS, .C = widths[wi]};
        const double R = l.R, C = l.C, S = R * C * 2;
        const int sets = bench_sets_for((size_t)(4 * S + 8 * R), kb->rotate_bytes);
        for (int i = 0; i < sets; i++) {
            l.x[i] = dev_random(kb, (size_t)l.R * l.C, 2, 0, 1, 0);
            l.y[i] = dev_random(kb, (size_t)l.R * l.C, 2, 0, 1, 0);
            l.sum[i] = dev_alloc(kb, (size_t)S);
            l.out[i] = dev_alloc(kb, (size_t)S);
            l.mean[i] = dev_alloc(kb, 4 * (size_t)l.R);
            l.rstd[i] = dev_alloc(kb, 4 * (size_t)l.R);
        }
        l.w = dev_random(kb, (size_t)l.C, 2, 1, 0.1, 0);
        l.b = dev_random(kb, (size_t)l.C, 2, 0, 0.1, 0);
        char what[48];
        snprintf(what, sizeof what, "C %d", l.C);
        fusion_rows(kb, &t, "add+layernorm", what, 5 * S + 8 * R + 4 * C, 4 * S + 8 * R + 4 * C,
                    "add: read x, y, write sum; fwd: read sum, w, b, write out, mean, rstd",
                    "read x, y, w, b; write sum, out, mean, rstd", add_ln_unfused, add_ln_fused, &l, sets, saved,
                    sizeof saved);
        release_case(kb);
    }
    const size_t n = ENC_PARAMS;
    FusedOptCase o = {.s = kb->s, .n = n};
    o.param = dev_random(kb, n, 4, 0, 0.02, 0);
    o.grad = dev_random(kb, n, 4, 0, 1e-3, 0);
    o.m = dev_random(kb, n, 4, 0, 1e-4, 0);
    o.v = dev_random(kb, n, 4, 0, 1e-6, 1);
    o.target = dev_random(kb, n, 4, 0, 0.02, 0);
    o.work = dev_alloc(kb, 2 * n);
    o.target_work = dev_alloc(kb, 2 * n);
    fusion_rows(kb, &t, "adamw+ema", "ViT-L encoder", 44.0 * n, 40.0 * n,
                "adamw: read p, g, m, v, write p, m, v, working; ema: read target, p, write target, working",
                "read p, g, m, v, target; write p, m, v, target, both working copies", adamw_then_ema,
                adamw_ema_fused, &o, 1, saved, sizeof saved);
    release_case(kb);
    bench_table_print(&t, stdout);
    printf("\n%s", saved);
}

// ---- GEMMs

typedef struct {
    const char *stack, *tokens;
    int M, width, hidden;
} GemmSite;

static const GemmSite GEMM_SITES[] = {
    {"encoder", "target 24x1568", 24 * 1568, 1024, 4096},
    {"encoder", "context 24x362", 24 * 362, 1024, 4096},
    {"encoder", "context 24x106", 24 * 106, 1024, 4096},
    {"predictor", "24x1115", 24 * 1115, 384, 1536},
    {"predictor", "24x1210", 24 * 1210, 384, 1536},
};

typedef struct {
    cudaStream_t s;
    int M, N, K;
    void *inp[64], *out[64], *dinp[64];  // [M,K], [M,N] (also dout), [M,K] bf16
    float *dw[64];                       // [N,K] fp32 (+=)
    void *w, *bias;                      // [N,K], [N] bf16
} GemmCase;

static void gemm_fwd(void *ctx, int i) {
    GemmCase *g = ctx;
    cuda_matmul_fwd(g->s, g->out[i], g->inp[i], g->w, g->bias, g->M, g->N, g->K);
}
static void gemm_dinp(void *ctx, int i) {
    GemmCase *g = ctx;
    cuda_matmul_bwd(g->s, g->dinp[i], NULL, NULL, g->out[i], g->inp[i], g->w, g->M, g->N, g->K);
}
static void gemm_dw(void *ctx, int i) {
    GemmCase *g = ctx;
    cuda_matmul_bwd(g->s, NULL, g->dw[i], NULL, g->out[i], g->inp[i], g->w, g->M, g->N, g->K);
}

static void bench_gemm(KernelBench *kb) {
    printf("\n## GEMMs (bf16 in, fp32 accumulate, cuBLASLt through cuda_matmul_fwd/bwd; 2*M*N*K each; %% of the "
           "measured %.0f TFLOP/s ceiling)\n\n", kb->gemm_tflops);
    const char *header[] = {"stack", "tokens", "layer", "M N K", "fwd ms", "fwd TFLOP/s", "dinp TFLOP/s",
                            "dw TFLOP/s", "% ceiling fwd / dinp / dw"};
    BenchTable t;
    bench_table_init(&t, 9, header);
    json_object *list = report_array(kb, "gemm");
    for (size_t si = 0; si < sizeof GEMM_SITES / sizeof GEMM_SITES[0]; si++) {
        const GemmSite *site = &GEMM_SITES[si];
        const int D = site->width, Hd = site->hidden;
        const struct { const char *name; int N, K; } layers[] = {
            {"qkv", 3 * D, D}, {"proj", D, D}, {"fc1", Hd, D}, {"fc2", D, Hd}};
        for (int li = 0; li < 4; li++) {
            GemmCase g = {.s = kb->s, .M = site->M, .N = layers[li].N, .K = layers[li].K};
            const size_t MK = (size_t)g.M * g.K, MN = (size_t)g.M * g.N, NK = (size_t)g.N * g.K;
            const int sets = bench_sets_for(2 * (2 * MK + MN) + 4 * NK, kb->rotate_bytes);
            for (int i = 0; i < sets; i++) {
                g.inp[i] = dev_random(kb, MK, 2, 0, 1, 0);
                g.out[i] = dev_random(kb, MN, 2, 0, 1, 0);
                g.dinp[i] = dev_alloc(kb, 2 * MK);
                g.dw[i] = dev_alloc(kb, 4 * NK);
            }
            g.w = dev_random(kb, NK, 2, 0, 0.02, 0);
            g.bias = dev_random(kb, (size_t)g.N, 2, 0, 0.02, 0);
            const double flops = 2.0 * g.M * g.N * (double)g.K;
            const BenchRunFn fns[3] = {gemm_fwd, gemm_dinp, gemm_dw};
            const char *names[3] = {"fwd", "dinp", "dw"};
            double tf[3];
            json_object *row = json_object_new_object();
            json_object_object_add(row, "stack", json_object_new_string(site->stack));
            json_object_object_add(row, "tokens", json_object_new_string(site->tokens));
            json_object_object_add(row, "layer", json_object_new_string(layers[li].name));
            json_object_object_add(row, "M", json_object_new_int(g.M));
            json_object_object_add(row, "N", json_object_new_int(g.N));
            json_object_object_add(row, "K", json_object_new_int(g.K));
            json_object_object_add(row, "flops", json_object_new_double(flops));
            double fwd_ms = 0;
            for (int p = 0; p < 3; p++) {
                const BenchTiming tm = bench_time(kb->clock, fns[p], &g, sets, kb->seconds);
                tf[p] = flops / (1e-3 * tm.ms) / 1e12;
                if (p == 0) fwd_ms = tm.ms;
                json_object *o = timing_json(&tm, flops / 1e12, "tflops");
                json_object_object_add(o, "fraction_of_gemm_ceiling", json_object_new_double(tf[p] / kb->gemm_tflops));
                json_object_object_add(row, names[p], o);
            }
            json_object_array_add(list, row);
            bench_table_add(&t, "%s", site->stack);
            bench_table_add(&t, "%s", site->tokens);
            bench_table_add(&t, "%s", layers[li].name);
            bench_table_add(&t, "%d %d %d", g.M, g.N, g.K);
            bench_table_add(&t, "%.3f", fwd_ms);
            bench_table_add(&t, "%.0f", tf[0]);
            bench_table_add(&t, "%.0f", tf[1]);
            bench_table_add(&t, "%.0f", tf[2]);
            bench_table_add(&t, "%.0f / %.0f / %.0f%%", 100 * tf[0] / kb->gemm_tflops, 100 * tf[1] / kb->gemm_tflops,
                            100 * tf[2] / kb->gemm_tflops);
            release_case(kb);
        }
    }
    bench_table_print(&t, stdout);
}

// ---- the run

static void measure_ceilings(KernelBench *kb) {
    const size_t copy_bytes = (size_t)1 << 30;
    kb->gemm_tflops = bench_gemm_ceiling(kb->clock, kb->be, 8192, fmax(kb->seconds, 1.0));
    kb->copy_gbps = copy_ceiling(kb->clock, kb->be, copy_bytes, fmax(kb->seconds, 1.0));
    const char *keys[] = {"bf16_gemm_tflops", "copy_gbps"};
    json_object *pc = NULL;
    if (kb->peer) json_object_object_get_ex(kb->peer, "ceilings", &pc);
    const double peer_gemm = bench_json_number(pc, keys[0]), peer_copy = bench_json_number(pc, keys[1]);
    char a[32], b[32];
    printf("\n## Ceilings (measured here; the peer's on the same GPU model)\n\n");
    const char *header[] = {"ceiling", "measured", "peer", "ours / peer"};
    BenchTable t;
    bench_table_init(&t, 4, header);
    bench_table_add(&t, "bf16 GEMM 8192^3 (cuda_matmul_fwd: cuBLASLt), TFLOP/s");
    bench_table_add(&t, "%.0f", kb->gemm_tflops);
    bench_table_add(&t, "%s", bench_num(a, sizeof a, 0, peer_gemm));
    bench_table_add(&t, "%s", bench_num(b, sizeof b, 2, kb->gemm_tflops / peer_gemm));
    bench_table_add(&t, "device copy 1 GiB (cudaMemcpyAsync D2D), GB/s read + written");
    bench_table_add(&t, "%.0f", kb->copy_gbps);
    bench_table_add(&t, "%s", bench_num(a, sizeof a, 0, peer_copy));
    bench_table_add(&t, "%s", bench_num(b, sizeof b, 2, kb->copy_gbps / peer_copy));
    bench_table_print(&t, stdout);
    json_object *c = json_object_new_object();
    json_object_object_add(c, "bf16_gemm_tflops", json_object_new_double(kb->gemm_tflops));
    json_object_object_add(c, "gemm_n", json_object_new_int(8192));
    json_object_object_add(c, "copy_gbps", json_object_new_double(kb->copy_gbps));
    json_object_object_add(c, "copy_bytes", json_object_new_double((double)copy_bytes));
    json_object_object_add(c, "peer_bf16_gemm_tflops", bench_json_double(peer_gemm));
    json_object_object_add(c, "peer_copy_gbps", bench_json_double(peer_copy));
    json_object_object_add(kb->report, "ceilings", c);
}

static int run_kernel_targets(const char *target, const KernelOptions *o, int argc, char **argv) {
    KernelBench kb = {.seconds = o->seconds};
    kb.be = backend_cuda_create(0, o->deterministic);
    kb.s = backend_cuda_stream(kb.be);
    kb.clock = bench_clock_create(kb.be);
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    kb.rotate_bytes = 4 * (size_t)prop.l2CacheSize;
    char device[512], why[1300];
    backend_cuda_describe(0, device, sizeof device);
    kb.peer = bench_peer_load(o->peer, why, sizeof why);
    kb.report = json_object_new_object();
    bench_json_provenance(kb.report, device, argc, argv, target);
    json_object_object_add(kb.report, "deterministic_gemm", json_object_new_boolean(o->deterministic));
    json_object_object_add(kb.report, "rotate_bytes", json_object_new_double((double)kb.rotate_bytes));
    printf("# jepa bench %s\n\ndevice: %s\ncommit %s, GEMM algorithms %s, inputs rotated over > %.0f MB (4x L2), "
           "%.2f s per case\n", target, device, build_commit(), o->deterministic ? "deterministic" : "heuristic",
           kb.rotate_bytes / 1e6, kb.seconds);
    if (!kb.peer) printf("peer figures: %s (none printed)\n", why);
    measure_ceilings(&kb);
    const int all = !strcmp(target, "kernels");
    if (all || !strcmp(target, "attention")) bench_attention(&kb);
    if (all || !strcmp(target, "layernorm")) bench_layernorm(&kb);
    if (all || !strcmp(target, "rope")) bench_rope(&kb);
    if (all || !strcmp(target, "ema")) bench_optimizer_op(&kb, 0);
    if (all || !strcmp(target, "adamw")) bench_optimizer_op(&kb, 1);
    if (all || !strcmp(target, "fusion")) bench_fusion(&kb);
    if (all || !strcmp(target, "gemm")) bench_gemm(&kb);
    if (o->json) bench_json_write(kb.report, o->json);
    json_object_put(kb.report);
    if (kb.peer) json_object_put(kb.peer);
    bench_clock_free(kb.clock);
    backend_destroy(kb.be);
    return JEPA_EXIT_OK;
}

#endif
