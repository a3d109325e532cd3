// bench.c: `jepa bench`: the dispatch and help, and the pieces every target shares (bench.h): the timer, timing,
// input fills, the GEMM ceiling, peer figures, JSON and tables. The targets: bench_kernels.c, bench_step.c,
// bench_data.c.
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_cuda.h"
#include "common.h"
#include "provenance.h"
#include "rng.h"
#include "tools.h"

#ifdef JEPA_CUDA
#include "cuda_check.h"
#endif

#define SAMPLE_SECONDS 2e-3  // a timed sample runs back to back for about this long
#define MIN_SAMPLES 7
#define MAX_SAMPLES 200
#define FILL_POOL ((size_t)1 << 20)
#define PEER_DEFAULT "bench/peer-figures.json"

// ---------------------------------------------------------------------------------------------------- timer

struct BenchClock {
    int gpu;
    int n, cap;    // marks since the last collect (mark 0 is the one carried over)
    int *tag;
    double *host;  // CPU: seconds at each mark
#ifdef JEPA_CUDA
    cudaStream_t stream;
    cudaEvent_t *event;
#endif
};

BenchClock *bench_clock_create(Backend *be) {
    BenchClock *c = xcalloc(1, sizeof *c);
    c->gpu = strcmp(be->name, "cuda") == 0;
#ifdef JEPA_CUDA
    if (c->gpu) c->stream = backend_cuda_stream(be);
#endif
    return c;
}

static void clock_grow(BenchClock *c) {
    const int cap = c->cap ? 2 * c->cap : 64;
    c->tag = xrealloc(c->tag, (size_t)cap * sizeof *c->tag);
    c->host = xrealloc(c->host, (size_t)cap * sizeof *c->host);
#ifdef JEPA_CUDA
    if (c->gpu) {
        c->event = xrealloc(c->event, (size_t)cap * sizeof *c->event);
        for (int i = c->cap; i < cap; i++) CUDA_CHECK(cudaEventCreate(&c->event[i]));
    }
#endif
    c->cap = cap;
}

void bench_clock_mark(BenchClock *c, int tag) {
    if (c->n == c->cap) clock_grow(c);
    c->tag[c->n] = tag;
#ifdef JEPA_CUDA
    if (c->gpu) CUDA_CHECK(cudaEventRecord(c->event[c->n], c->stream));
#endif
    if (!c->gpu) c->host[c->n] = now_seconds();
    c->n++;
}

// Seconds between marks a and b (both recorded, b later).
static double clock_interval(BenchClock *c, int a, int b) {
#ifdef JEPA_CUDA
    if (c->gpu) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, c->event[a], c->event[b]));
        return 1e-3 * ms;
    }
#endif
    return c->host[b] - c->host[a];
}

double bench_clock_collect(BenchClock *c, double *seconds, int ntags) {
    if (c->n == 0) return 0;
#ifdef JEPA_CUDA
    if (c->gpu) CUDA_CHECK(cudaEventSynchronize(c->event[c->n - 1]));
#endif
    double total = 0;
    for (int i = 1; i < c->n; i++) {
        const double s = clock_interval(c, i - 1, i);
        if (c->tag[i - 1] >= 0 && c->tag[i - 1] < ntags) seconds[c->tag[i - 1]] += s;
        total += s;
    }
    const int last = c->n - 1;  // stays open: it starts the next interval
#ifdef JEPA_CUDA
    if (c->gpu) {
        const cudaEvent_t e = c->event[0];
        c->event[0] = c->event[last];
        c->event[last] = e;
    }
#endif
    c->host[0] = c->host[last];
    c->tag[0] = c->tag[last];
    c->n = 1;
    return total;
}

void bench_clock_free(BenchClock *c) {
    if (!c) return;
#ifdef JEPA_CUDA
    for (int i = 0; c->gpu && i < c->cap; i++) CUDA_CHECK(cudaEventDestroy(c->event[i]));
    free(c->event);
#endif
    free(c->tag);
    free(c->host);
    free(c);
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

BenchTiming bench_time(BenchClock *c, BenchRunFn run, void *ctx, int sets, double budget_s) {
    enum { IDLE = 0, RUN = 1 };
    BenchTiming t = {.sets = sets};
    int k = 0;
    for (int i = 0; i < (sets > 3 ? sets : 3); i++) run(ctx, k++ % sets);
    double s[2] = {0, 0};
    bench_clock_mark(c, RUN);
    run(ctx, k++ % sets);
    bench_clock_mark(c, IDLE);
    bench_clock_collect(c, s, 2);
    const double reps = ceil(SAMPLE_SECONDS / fmax(s[RUN], 1e-7));
    t.reps = reps > 10000 ? 10000 : (int)reps;
    double times[MAX_SAMPLES];
    const double t0 = now_seconds();
    while (t.samples < MAX_SAMPLES && (t.samples < MIN_SAMPLES || now_seconds() - t0 < budget_s)) {
        s[RUN] = 0;
        bench_clock_mark(c, RUN);
        for (int r = 0; r < t.reps; r++) run(ctx, k++ % sets);
        bench_clock_mark(c, IDLE);
        bench_clock_collect(c, s, 2);
        times[t.samples++] = 1e3 * s[RUN] / t.reps;
    }
    qsort(times, (size_t)t.samples, sizeof(double), compare_doubles);
    t.ms = times[t.samples / 2];
    t.p10 = times[t.samples / 10];
    t.p90 = times[t.samples - 1 - t.samples / 10];
    return t;
}

double bench_median(const double *v, int n) {
    double *s = xmalloc((size_t)n * sizeof(double));
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), compare_doubles);
    const double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

int bench_sets_for(size_t set_bytes, size_t rotate_bytes) {
    const size_t sets = set_bytes ? (rotate_bytes + set_bytes - 1) / set_bytes : 1;
    return sets < 1 ? 1 : sets > 64 ? 64 : (int)sets;
}

// ---------------------------------------------------------------------------------------------------- inputs

void bench_fill(Backend *be, void *dst, size_t elem_size, size_t n, double mean, double scale, int positive,
                uint64_t seed) {
    static double *pool;  // FILL_POOL standard normals, drawn once
    if (!pool) {
        pool = xmalloc(FILL_POOL * sizeof(double));
        Rng rng = rng_stream(20261122, RNG_TEST, 0, 0);
        for (size_t i = 0; i < FILL_POOL; i++) pool[i] = rng_normal(&rng);
    }
    const size_t first = n < FILL_POOL ? n : FILL_POOL, shift = (size_t)(seed * 7919u) % FILL_POOL;
    double *h = xmalloc(first * sizeof(double));
    for (size_t i = 0; i < first; i++) {
        const double z = pool[(i + shift) % FILL_POOL];
        h[i] = mean + scale * (positive ? fabs(z) : z);
    }
    be->upload_f64(be, dst, elem_size, h, first);
    free(h);
    for (size_t done = first; done < n;) {  // doubling copies of what is there
        const size_t count = done < n - done ? done : n - done;
        be->copy(be, (char *)dst + done * elem_size, dst, count * elem_size);
        done += count;
    }
}

// ---------------------------------------------------------------------------------------------------- ceilings

typedef struct {
    Backend *be;
    void *a, *w, *out;  // [n,n] each
    int n;
} GemmCeiling;

static void run_gemm_ceiling(void *ctx, int set) {
    GemmCeiling *g = ctx;
    g->be->matmul_fwd(g->be, g->out, g->a, g->w, NULL, g->n, g->n, g->n);
}

double bench_gemm_ceiling(BenchClock *c, Backend *be, int n, double budget_s) {
    const size_t bytes = (size_t)n * n * be->esize;
    GemmCeiling g = {be, backend_alloc(be, "the GEMM ceiling's operands", bytes),
                     backend_alloc(be, "the GEMM ceiling's operands", bytes),
                     backend_alloc(be, "the GEMM ceiling's operands", bytes), n};
    bench_fill(be, g.a, be->esize, (size_t)n * n, 0, 1, 0, 1);
    bench_fill(be, g.w, be->esize, (size_t)n * n, 0, 1, 0, 2);
    const BenchTiming t = bench_time(c, run_gemm_ceiling, &g, 1, budget_s);
    be->release(be, g.a);
    be->release(be, g.w);
    be->release(be, g.out);
    return 2.0 * n * n * (double)n / (1e-3 * t.ms) / 1e12;
}

// ---------------------------------------------------------------------------------------------------- peers, JSON

static void peer_default_path(char *buf, size_t n) {
    snprintf(buf, n, "%s", PEER_DEFAULT);
    if (access(buf, R_OK) == 0) return;
    char exe[1024];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(buf, n, "%s/../%s", exe, PEER_DEFAULT);  // build/jepa -> bench/
    if (access(buf, R_OK) != 0) snprintf(buf, n, "%s", PEER_DEFAULT);
}

json_object *bench_peer_load(const char *path, char *why, size_t n) {
    char def[1200];
    if (!path) peer_default_path(def, sizeof def), path = def;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        return NULL;
    }
    fclose(f);
    json_object *o = json_object_from_file(path);
    if (!o) snprintf(why, n, "%s: not valid JSON (%s)", path, json_util_get_last_err());
    return o;
}

double bench_json_number(json_object *o, const char *key) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v) return NAN;
    const json_type t = json_object_get_type(v);
    if (t != json_type_double && t != json_type_int && t != json_type_boolean) return NAN;
    return json_object_get_double(v);
}

json_object *bench_json_double(double v) { return isfinite(v) ? json_object_new_double(v) : NULL; }

void bench_json_provenance(json_object *o, const char *device, int argc, char **argv, const char *target) {
    char when[64], command[4096];
    snprintf(command, sizeof command, "jepa bench %s", target);
    const time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", gmtime(&now));
    for (int i = 0; i < argc; i++) {
        strncat(command, " ", sizeof command - strlen(command) - 1);
        strncat(command, argv[i], sizeof command - strlen(command) - 1);
    }
    json_object_object_add(o, "target", json_object_new_string(target));
    json_object_object_add(o, "device", json_object_new_string(device));
    json_object_object_add(o, "date_utc", json_object_new_string(when));
    json_object_object_add(o, "commit", json_object_new_string(build_commit()));
    json_object_object_add(o, "command", json_object_new_string(command));
}

void bench_json_write(json_object *o, const char *path) {
    if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY) != 0)
        die_input("bench: cannot write --json %s: %s", path, json_util_get_last_err());
    printf("wrote %s\n", path);
}

// ---------------------------------------------------------------------------------------------------- tables

void bench_table_init(BenchTable *t, int cols, const char *const *header) {
    *t = (BenchTable){.cols = cols};
    for (int i = 0; i < cols; i++) bench_table_add(t, "%s", header[i]);
}

void bench_table_add(BenchTable *t, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t->cells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cell = xrealloc(t->cell, (size_t)t->cap * sizeof(char *));
    }
    t->cell[t->cells++] = xstrdup(buf);
}

void bench_table_print(BenchTable *t, FILE *out) {
    JEPA_ASSERT(t->cells % t->cols == 0);
    int width[32] = {0};
    JEPA_ASSERT(t->cols <= 32);
    for (int i = 0; i < t->cells; i++) {
        const int w = (int)strlen(t->cell[i]);
        if (w > width[i % t->cols]) width[i % t->cols] = w;
    }
    for (int i = 0; i < t->cells; i++) {
        const int col = i % t->cols;
        fprintf(out, "| %-*s ", width[col], t->cell[i]);
        if (col == t->cols - 1) {
            fputs("|\n", out);
            if (i == t->cols - 1) {  // under the header
                for (int c = 0; c < t->cols; c++) {
                    fputc('|', out);
                    for (int k = 0; k < width[c] + 2; k++) fputc('-', out);
                }
                fputs("|\n", out);
            }
        }
        free(t->cell[i]);
    }
    free(t->cell);
    *t = (BenchTable){0};
    fflush(out);
}

const char *bench_num(char *buf, size_t n, int decimals, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.*f", decimals, v);
    else snprintf(buf, n, "-");
    return buf;
}

// ---------------------------------------------------------------------------------------------------- targets

typedef struct {
    const char *name, *summary, *detail;
    int gpu;
} BenchTarget;

static const BenchTarget TARGETS[] = {
    {"kernels", "attention + layernorm + rope + ema + adamw + fusion + gemm, after the two ceilings",
     "Every kernel target below, in that order, after one measurement of the ceilings.", 1},
    {"attention", "fused attention fwd and fwd+bwd at the V-JEPA shapes; cuDNN's beside it",
     "cuda_attention_fwd/bwd at target B24 H16 N1568 d64, context B24 H16 N362 and N106 d64, predictor B24 H16\n"
     "N1115 and N1210 d24, ViT-H B16 H16 N1568 d80, 64 frames B24 H16 N6272 d64, V-JEPA 2 ViT-g B24 H22 N2048 d64,\n"
     "B48 H12 N1568 d32, V-JEPA 1 ViT-g B16 H16 N1568 d88, B24 H16 N1568 d128, frame-causal B24 H16 N2048 d64 (8\n"
     "frames of 256): TFLOP/s by 4*B*H*N^2*d forward (times the unmasked fraction of pairs) and 3.5x that\n"
     "forward+backward, with cuDNN's fused attention (host/cudnn_attention.h, when built; not frame-causal) timed\n"
     "the same way, and the peer's cuDNN and FlashAttention figures.", 1},
    {"layernorm", "LayerNorm bf16 fwd and fwd+bwd, 37632 rows of 1024 and of 384",
     "cuda_layernorm_fwd (with mean/rstd) and fwd + cuda_layernorm_bwd (dinp +=, dw, dbias), bf16, eps 1e-6: GB/s\n"
     "by the bytes they must move, against the copy ceiling and torch's LayerNorm.", 1},
    {"rope", "V-JEPA 2's 3D RoPE on bf16 qkv in place: ViT-g, ViT-L and predictor shapes",
     "cuda_rope_qk (kernels/rope.cu) forward at the ViT-g target (24x2048 tokens, 22 heads of 64), a gathered ViT-g\n"
     "context, the ViT-L target and the predictor (12 heads of 32): GB/s by the rotated q, k bytes read and written,\n"
     "against the copy ceiling.", 1},
    {"ema", "target EMA over 305,490,944 fp32 parameters",
     "cuda_ema with and without the bf16 working copy: 12 (+2) bytes per parameter.", 1},
    {"adamw", "AdamW over 305,490,944 fp32 parameters",
     "cuda_adamw with and without the bf16 working copy: 28 (+2) bytes per parameter.", 1},
    {"fusion", "issue 9's fused ops beside the unfused ones: add + LayerNorm, AdamW + EMA",
     "cuda_add_layernorm_fwd against cuda_add then cuda_layernorm_fwd (37632 rows of 1024, 384), and\n"
     "cuda_adamw_ema against cuda_adamw then cuda_ema over the ViT-L/16 encoder's 303,885,312 parameters (with the\n"
     "bf16 working copies, as trained): GB/s by the bytes each must move, and the time saved.", 1},
    {"gemm", "the ViT-L/16 encoder and predictor GEMMs: forward, dinp, dw",
     "cuda_matmul_fwd (bias epilogue) and cuda_matmul_bwd's two products (dinp += dout @ w, dw += dout^T @ inp,\n"
     "each alone) for qkv, proj, fc1, fc2 at the encoder's M = 24x1568, 24x362, 24x106 tokens and the predictor's\n"
     "24x1115, 24x1210: 2*M*N*K each, against the 8192^3 ceiling through the same cuBLASLt path.", 1},
    {"step", "CONFIG: training steps on a staged batch, then through the loader (`jepa bench step --help`)", NULL, 0},
    {"data", "FILE...: loader clips/s per reader thread count (`jepa bench data --help`)", NULL, 0},
};
#define N_TARGETS ((int)(sizeof TARGETS / sizeof TARGETS[0]))

static void print_main_help(FILE *out) {
    fputs("usage: jepa bench <target> [options]\n\ntargets:\n", out);
    for (int i = 0; i < N_TARGETS; i++) fprintf(out, "  %-10s %s%s\n", TARGETS[i].name, TARGETS[i].summary,
                                                TARGETS[i].gpu ? " (GPU)" : "");
    fputs(BENCH_KERNEL_OPTIONS, out);
}

int bench_command(int argc, char **argv) {
    if (argc < 1) {
        print_main_help(stderr);
        return JEPA_EXIT_BAD_INPUT;
    }
    const char *target = argv[0];
    if (!strcmp(target, "--help") || !strcmp(target, "-h") || !strcmp(target, "help")) {
        print_main_help(stdout);
        return JEPA_EXIT_OK;
    }
    if (!strcmp(target, "step")) return bench_step_command(argc - 1, argv + 1);
    if (!strcmp(target, "data")) return bench_data_command(argc - 1, argv + 1);
    const BenchTarget *t = NULL;
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(TARGETS[i].name, target)) t = &TARGETS[i];
    if (!t)
        die_input("bench: unknown target '%s' (targets: kernels, attention, layernorm, rope, ema, adamw, fusion, gemm, "
                  "step, data)",
                  target);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: jepa bench %s [options]\n\n%s\n%s", t->name, t->detail, BENCH_KERNEL_OPTIONS);
            return JEPA_EXIT_OK;
        }
    return bench_kernels_command(t->name, argc - 1, argv + 1);
}

