// test_ops.c: the CPU backend's ops, through the Backend interface (backend.h), checked
//   - against central finite differences in double precision (every op with a backward), with the gradient
//     outputs pre-filled so that their accumulate (+=) semantics are checked at the same time;
//   - against naive references written here (attention, frame-causal mask, LayerNorm, patchify, AdamW, ...);
//   - fp32 against fp64; forward outputs pre-filled with NaN; bitwise reproducibility with several threads.
#include <math.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "rng.h"
#include "test.h"

#define TEST_SEED 1234
#define TEST_THREADS 4  // more than one, so the OpenMP splits and their determinism are exercised

// Central differences with step 1e-5 on O(1) inputs in double: truncation error ~h^2 = 1e-10 and roundoff
// ~1e-16/h = 1e-11 relative, while a wrong gradient term gives O(1e-2) or more. 1e-6 leaves room for both.
#define FD_STEP 1e-5
#define FD_TOL 1e-6
// fp32 vs fp64 on the same inputs: fp32 rounding (6e-8) amplified by short sums and softmax stays below 1e-5.
#define F32_TOL 1e-5

static Backend *be64, *be32;
static uint64_t draw_index = 0;  // every random array gets its own stream: RNG_TEST, step 0, index = draw count

// ---------------------------------------------------------------- helpers
static Rng next_stream(void) { return rng_stream(TEST_SEED, RNG_TEST, 0, draw_index++); }

static double *rand_uniform(size_t n, double lo, double hi) {
    Rng r = next_stream();
    double *x = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform_range(&r, lo, hi);
    return x;
}

static double *rand_normal(size_t n) {
    Rng r = next_stream();
    double *x = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
    return x;
}

static int32_t *rand_indices(size_t n, int limit) {
    Rng r = next_stream();
    int32_t *idx = xmalloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) idx[i] = (int32_t)rng_randint(&r, 0, limit);
    return idx;
}

static double *copy_of(const double *x, size_t n) {
    double *y = xmalloc(n * sizeof(double));
    memcpy(y, x, n * sizeof(double));
    return y;
}

// Backend buffer of n elements of size es holding h (or zeros when h is NULL).
static void *up_es(Backend *b, size_t es, const double *h, size_t n) {
    void *d = b->alloc(b, n * es);
    if (h) b->upload_f64(b, d, es, h, n);
    return d;
}
static void *up(Backend *b, const double *h, size_t n) { return up_es(b, b->esize, h, n); }
// parameter gradients (dw, dbias, sum_rows) are in the master type (backend.h)
static void *up_m(Backend *b, const double *h, size_t n) { return up_es(b, b->msize, h, n); }

// Index lists live in backend memory too.
static int32_t *up_idx(Backend *b, const int32_t *idx, size_t n) {
    int32_t *d = b->alloc(b, n * sizeof(int32_t));
    b->upload(b, d, idx, n * sizeof(int32_t));
    return d;
}

static double *down_es(Backend *b, size_t es, const void *d, size_t n) {
    double *h = xmalloc(n * sizeof(double));
    b->download_f64(b, h, d, es, n);
    return h;
}
static double *down(Backend *b, const void *d, size_t n) { return down_es(b, b->esize, d, n); }

// Download into h, then release the buffer.
static void fetch_es(Backend *b, size_t es, double *h, void *d, size_t n) {
    b->download_f64(b, h, d, es, n);
    b->release(b, d);
}
static void fetch(Backend *b, double *h, void *d, size_t n) { fetch_es(b, b->esize, h, d, n); }

static void *nan_filled(Backend *b, size_t es, size_t n) {
    double *h = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    void *d = up_es(b, es, h, n);
    free(h);
    return d;
}

static int count_nan(const double *x, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += isnan(x[i]) != 0;
    return k;
}

static double max_abs_diff(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

// A named check on a measured relative error, printed so the log shows how far inside the tolerance it is.
static void check_err(const char *name, double err, double tol) {
    char label[256];
    snprintf(label, sizeof label, "%s (rel err %.1e, tol %.0e)", name, err, tol);
    TEST_CHECK(label, err < tol, "relative error %.3e exceeds %.1e", err, tol);
}

// ---------------------------------------------------------------- naive references (double, obviously right)
static double gelu_ref(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }

// out[M,N] = inp[M,K] w[N,K]^T + bias[N]
static void matmul_ref(double *out, const double *inp, const double *w, const double *bias, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0;
            for (int k = 0; k < K; k++) s += inp[m * K + k] * w[n * K + k];
            out[m * N + n] = s;
        }
}

// Frame-causal visibility built frame block by frame block (not from the kernel's j/ft <= i/ft formula):
// visible[i*N + j] = 1 for every query frame and every key frame up to it; frame_tokens 0 = all visible.
static unsigned char *frame_causal_mask(int N, int frame_tokens) {
    unsigned char *visible = xcalloc((size_t)N * N, 1);
    if (frame_tokens <= 0) {
        memset(visible, 1, (size_t)N * N);
        return visible;
    }
    for (int qf = 0; qf * frame_tokens < N; qf++)
        for (int kf = 0; kf <= qf; kf++)
            for (int i = qf * frame_tokens; i < (qf + 1) * frame_tokens && i < N; i++)
                for (int j = kf * frame_tokens; j < (kf + 1) * frame_tokens && j < N; j++) visible[i * N + j] = 1;
    return visible;
}

// softmax attention with an explicit mask: out[B,N,H,hd], lse[B,H,N] from qkv[B,N,3,H,hd]
static void attention_ref(double *out, double *lse, const double *qkv, int B, int N, int H, int hd,
                          const unsigned char *visible) {
    double *s = xmalloc((size_t)N * sizeof(double));
    const size_t tok = (size_t)3 * H * hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < N; i++) {
                const double *q = qkv + ((size_t)b * N + i) * tok + (size_t)h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; j++) {
                    const double *k = qkv + ((size_t)b * N + j) * tok + (size_t)(H + h) * hd;
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += q[d] * k[d];
                    s[j] = visible[i * N + j] ? dot / sqrt((double)hd) : -INFINITY;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < N; j++) sum += exp(s[j] - mx);
                lse[((size_t)b * H + h) * N + i] = mx + log(sum);
                double *o = out + (((size_t)b * N + i) * H + h) * hd;
                for (int d = 0; d < hd; d++) o[d] = 0;
                for (int j = 0; j < N; j++) {
                    const double *v = qkv + ((size_t)b * N + j) * tok + (size_t)(2 * H + h) * hd;
                    const double p = exp(s[j] - mx) / sum;
                    for (int d = 0; d < hd; d++) o[d] += p * v[d];
                }
            }
    free(s);
}

// ---------------------------------------------------------------- gradient checks against finite differences
// An op under test on the f64 backend: fwd maps the host inputs in[] to out[out_n]; bwd adds the analytic
// gradients of L = sum(out * dout) to grad[k] (host arrays, pre-filled) through the backend's backward op.
typedef struct GradCase GradCase;
struct GradCase {
    const char *name;
    int n_in;                // differentiated inputs
    double *in[3];           // host inputs, perturbed in place by the check
    size_t in_n[3];
    size_t out_n;
    void (*fwd)(const GradCase *c, double *out);
    void (*bwd)(const GradCase *c, const double *dout, double **grad);
    int dim[8];              // op sizes (meaning per op)
    const double *fixed;     // a non-differentiated input (l1 target, copy destination), or NULL
    const int32_t *idx;      // host token indices, or NULL
    size_t probes;           // 0: every input element; else this many random elements per input
};

static double objective(const GradCase *c, const double *weights, double *out) {
    c->fwd(c, out);
    double L = 0;
    for (size_t i = 0; i < c->out_n; i++) L += out[i] * weights[i];
    return L;
}

static void grad_check(GradCase *c) {
    double *weights = rand_normal(c->out_n), *out = xmalloc(c->out_n * sizeof(double));
    double *grad[3] = {0}, *prefill[3] = {0};
    for (int k = 0; k < c->n_in; k++) {
        prefill[k] = rand_normal(c->in_n[k]);
        grad[k] = copy_of(prefill[k], c->in_n[k]);
    }
    c->bwd(c, weights, grad);
    size_t total = 0;
    for (int k = 0; k < c->n_in; k++) total += c->probes ? c->probes : c->in_n[k];
    double *analytic = xmalloc(total * sizeof(double)), *numeric = xmalloc(total * sizeof(double));
    Rng r = next_stream();
    size_t at = 0;
    for (int k = 0; k < c->n_in; k++) {
        const size_t count = c->probes ? c->probes : c->in_n[k];
        for (size_t p = 0; p < count; p++, at++) {
            const size_t i = c->probes ? (size_t)rng_randint(&r, 0, (int64_t)c->in_n[k]) : p;
            const double x = c->in[k][i];
            c->in[k][i] = x + FD_STEP;
            const double Lp = objective(c, weights, out);
            c->in[k][i] = x - FD_STEP;
            const double Lm = objective(c, weights, out);
            c->in[k][i] = x;
            numeric[at] = (Lp - Lm) / (2 * FD_STEP);
            analytic[at] = grad[k][i] - prefill[k][i];  // what the op added; the pre-fill must have been kept
        }
    }
    char name[160];
    snprintf(name, sizeof name, "grad %s vs finite differences, accumulating onto pre-filled grads", c->name);
    check_err(name, rel_norm_error(analytic, numeric, total), FD_TOL);
    for (int k = 0; k < c->n_in; k++) {
        free(grad[k]);
        free(prefill[k]);
    }
    free(weights);
    free(out);
    free(analytic);
    free(numeric);
}

// ---- matmul: in = inp[M,K], w[N,K], bias[N]; dim = M, N, K
static void mm_fwd(const GradCase *c, double *out) {
    Backend *b = be64;
    const int M = c->dim[0], N = c->dim[1], K = c->dim[2];
    void *inp = up(b, c->in[0], (size_t)M * K), *w = up(b, c->in[1], (size_t)N * K), *bias = up(b, c->in[2], N);
    void *o = up(b, NULL, (size_t)M * N);
    b->matmul_fwd(b, o, inp, w, bias, M, N, K);
    fetch(b, out, o, (size_t)M * N);
    b->release(b, inp), b->release(b, w), b->release(b, bias);
}
static void mm_bwd(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int M = c->dim[0], N = c->dim[1], K = c->dim[2];
    void *inp = up(b, c->in[0], (size_t)M * K), *w = up(b, c->in[1], (size_t)N * K), *d = up(b, dout, (size_t)M * N);
    void *dinp = up(b, grad[0], (size_t)M * K), *dw = up_m(b, grad[1], (size_t)N * K), *dbias = up_m(b, grad[2], N);
    b->matmul_bwd(b, dinp, dw, dbias, d, inp, w, M, N, K);
    fetch(b, grad[0], dinp, (size_t)M * K);
    fetch_es(b, b->msize, grad[1], dw, (size_t)N * K), fetch_es(b, b->msize, grad[2], dbias, N);
    b->release(b, inp), b->release(b, w), b->release(b, d);
}

// ---- layernorm: in = inp[R,C] (, w[C], bias[C] when n_in == 3); dim = R, C
static void ln_fwd(const GradCase *c, double *out) {
    Backend *b = be64;
    const int R = c->dim[0], C = c->dim[1], affine = c->n_in == 3;
    void *inp = up(b, c->in[0], (size_t)R * C), *o = up(b, NULL, (size_t)R * C);
    void *w = affine ? up(b, c->in[1], C) : NULL, *bias = affine ? up(b, c->in[2], C) : NULL;
    void *mean = up_es(b, b->ssize, NULL, R), *rstd = up_es(b, b->ssize, NULL, R);
    b->layernorm_fwd(b, o, mean, rstd, inp, w, bias, R, C, 1e-5);
    fetch(b, out, o, (size_t)R * C);
    b->release(b, inp), b->release(b, mean), b->release(b, rstd);
    if (affine) b->release(b, w), b->release(b, bias);
}
static void ln_bwd(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int R = c->dim[0], C = c->dim[1], affine = c->n_in == 3;
    void *inp = up(b, c->in[0], (size_t)R * C), *o = up(b, NULL, (size_t)R * C), *d = up(b, dout, (size_t)R * C);
    void *w = affine ? up(b, c->in[1], C) : NULL, *bias = affine ? up(b, c->in[2], C) : NULL;
    void *mean = up_es(b, b->ssize, NULL, R), *rstd = up_es(b, b->ssize, NULL, R);
    b->layernorm_fwd(b, o, mean, rstd, inp, w, bias, R, C, 1e-5);
    void *dinp = up(b, grad[0], (size_t)R * C);
    void *dw = affine ? up_m(b, grad[1], C) : NULL, *dbias = affine ? up_m(b, grad[2], C) : NULL;
    b->layernorm_bwd(b, dinp, dw, dbias, d, inp, w, mean, rstd, R, C);
    fetch(b, grad[0], dinp, (size_t)R * C);
    if (affine) {
        fetch_es(b, b->msize, grad[1], dw, C), fetch_es(b, b->msize, grad[2], dbias, C);
        b->release(b, w), b->release(b, bias);
    }
    b->release(b, inp), b->release(b, o), b->release(b, d), b->release(b, mean), b->release(b, rstd);
}

// ---- attention: in = qkv[B,N,3,H,hd]; dim = B, N, H, hd, frame_tokens
static void attn_fwd(const GradCase *c, double *out) {
    Backend *b = be64;
    const int B = c->dim[0], N = c->dim[1], H = c->dim[2], hd = c->dim[3], ft = c->dim[4];
    void *qkv = up(b, c->in[0], c->in_n[0]), *o = up(b, NULL, c->out_n);
    void *lse = up_es(b, b->ssize, NULL, (size_t)B * H * N);
    b->attention_fwd(b, o, lse, qkv, B, N, H, hd, ft);
    fetch(b, out, o, c->out_n);
    b->release(b, qkv), b->release(b, lse);
}
static void attn_bwd(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int B = c->dim[0], N = c->dim[1], H = c->dim[2], hd = c->dim[3], ft = c->dim[4];
    void *qkv = up(b, c->in[0], c->in_n[0]), *o = up(b, NULL, c->out_n), *d = up(b, dout, c->out_n);
    void *lse = up_es(b, b->ssize, NULL, (size_t)B * H * N), *dqkv = up(b, grad[0], c->in_n[0]);
    b->attention_fwd(b, o, lse, qkv, B, N, H, hd, ft);
    b->attention_bwd(b, dqkv, d, qkv, o, lse, B, N, H, hd, ft);
    fetch(b, grad[0], dqkv, c->in_n[0]);
    b->release(b, qkv), b->release(b, o), b->release(b, d), b->release(b, lse);
}

// ---- gelu: in = x[n]
static void gelu_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    void *x = up(b, c->in[0], c->in_n[0]), *o = up(b, NULL, c->out_n);
    b->gelu_fwd(b, o, x, c->in_n[0]);
    fetch(b, out, o, c->out_n);
    b->release(b, x);
}
static void gelu_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    void *x = up(b, c->in[0], c->in_n[0]), *d = up(b, dout, c->out_n), *dx = up(b, grad[0], c->in_n[0]);
    b->gelu_bwd(b, dx, x, d, c->in_n[0]);
    fetch(b, grad[0], dx, c->in_n[0]);
    b->release(b, x), b->release(b, d);
}

// ---- gather / scatter-add, each the other's backward: dim = B, n, Nsrc, C
// gather: in = inp[B,Nsrc,C] -> out[B,n,C]
static void gather_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], Nsrc = c->dim[2], C = c->dim[3];
    void *inp = up(b, c->in[0], c->in_n[0]), *o = up(b, NULL, c->out_n);
    int32_t *idx = up_idx(b, c->idx, (size_t)B * n);
    b->gather_tokens(b, o, inp, idx, B, n, Nsrc, C);
    fetch(b, out, o, c->out_n);
    b->release(b, inp), b->release(b, idx);
}
static void gather_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], Nsrc = c->dim[2], C = c->dim[3];
    void *d = up(b, dout, c->out_n), *dinp = up(b, grad[0], c->in_n[0]);
    int32_t *idx = up_idx(b, c->idx, (size_t)B * n);
    b->scatter_add_tokens(b, dinp, d, idx, B, n, Nsrc, C);
    fetch(b, grad[0], dinp, c->in_n[0]);
    b->release(b, d), b->release(b, idx);
}
// scatter-add onto a fixed base: in = src[B,n,C] -> out[B,Nsrc,C] = base + scattered src
static void scatter_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], Nsrc = c->dim[2], C = c->dim[3];
    void *src = up(b, c->in[0], c->in_n[0]), *o = up(b, c->fixed, c->out_n);
    int32_t *idx = up_idx(b, c->idx, (size_t)B * n);
    b->scatter_add_tokens(b, o, src, idx, B, n, Nsrc, C);
    fetch(b, out, o, c->out_n);
    b->release(b, src), b->release(b, idx);
}
static void scatter_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], Nsrc = c->dim[2], C = c->dim[3];
    void *d = up(b, dout, c->out_n), *g = up(b, NULL, c->in_n[0]), *dsrc = up(b, grad[0], c->in_n[0]);
    int32_t *idx = up_idx(b, c->idx, (size_t)B * n);
    b->gather_tokens(b, g, d, idx, B, n, Nsrc, C);  // gather overwrites, so accumulate its result
    b->accumulate(b, dsrc, g, c->in_n[0]);
    fetch(b, grad[0], dsrc, c->in_n[0]);
    b->release(b, d), b->release(b, g), b->release(b, idx);
}

// ---- copy_tokens: in = src[B,src_tokens,C] -> out = dst[B,dst_tokens,C] starting from a fixed base;
// dim = B, C, dst_tokens, dst_start, src_tokens, src_start, count, accumulate
static void copy_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    const int *d = c->dim;
    void *src = up(b, c->in[0], c->in_n[0]), *dst = up(b, c->fixed, c->out_n);
    b->copy_tokens(b, dst, d[2], d[3], src, d[4], d[5], d[6], d[0], d[1], d[7]);
    fetch(b, out, dst, c->out_n);
    b->release(b, src);
}
static void copy_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int *d = c->dim;
    void *ddst = up(b, dout, c->out_n), *dsrc = up(b, grad[0], c->in_n[0]);
    b->copy_tokens(b, dsrc, d[4], d[5], ddst, d[2], d[3], d[6], d[0], d[1], 1);  // the reverse copy, accumulating
    fetch(b, grad[0], dsrc, c->in_n[0]);
    b->release(b, ddst);
}

// ---- add_rows: in = x[B,n,C], table[Ntable,C]; idx [B,n] or NULL; dim = B, n, C, Ntable
// The table's gradient is a per-sample scatter-add (B = 1 calls, summed over samples); x's is the identity.
static void add_rows_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], C = c->dim[2];
    void *x = up(b, c->in[0], c->in_n[0]), *table = up(b, c->in[1], c->in_n[1]);
    int32_t *idx = c->idx ? up_idx(b, c->idx, (size_t)B * n) : NULL;
    b->add_rows(b, x, table, idx, B, n, C);
    fetch(b, out, x, c->out_n);
    b->release(b, table);
    if (idx) b->release(b, idx);
}
static void add_rows_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    const int B = c->dim[0], n = c->dim[1], C = c->dim[2], Ntable = c->dim[3];
    void *d = up(b, dout, c->out_n), *dx = up(b, grad[0], c->in_n[0]), *dtable = up(b, grad[1], c->in_n[1]);
    int32_t *rows = xmalloc((size_t)B * n * sizeof(int32_t));
    for (int t = 0; t < B * n; t++) rows[t] = c->idx ? c->idx[t] : t % n;
    int32_t *idx = up_idx(b, rows, (size_t)B * n);
    b->accumulate(b, dx, d, c->in_n[0]);
    for (int s = 0; s < B; s++)
        b->scatter_add_tokens(b, dtable, (char *)d + (size_t)s * n * C * b->esize, idx + (size_t)s * n, 1, n, Ntable,
                              C);
    fetch(b, grad[0], dx, c->in_n[0]), fetch(b, grad[1], dtable, c->in_n[1]);
    b->release(b, d), b->release(b, idx);
    free(rows);
}

// ---- broadcast_row, backward sum_rows: in = row[C] -> out[R,C]; dim = R, C
static void bcast_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    void *row = up(b, c->in[0], c->in_n[0]), *o = up(b, NULL, c->out_n);
    b->broadcast_row(b, o, row, c->dim[0], c->dim[1]);
    fetch(b, out, o, c->out_n);
    b->release(b, row);
}
static void bcast_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    void *d = up(b, dout, c->out_n), *drow = up_m(b, grad[0], c->in_n[0]);
    b->sum_rows(b, drow, d, c->dim[0], c->dim[1]);
    fetch_es(b, b->msize, grad[0], drow, c->in_n[0]);
    b->release(b, d);
}

// ---- l1 loss: in = pred[n], fixed = target[n] -> out[1] = loss; loss_scale 0.7
static void l1_fwd_case(const GradCase *c, double *out) {
    Backend *b = be64;
    void *pred = up(b, c->in[0], c->in_n[0]), *target = up(b, c->fixed, c->in_n[0]);
    void *loss = up_es(b, b->ssize, NULL, 1);
    b->l1_loss(b, loss, NULL, pred, target, c->in_n[0], 0.7, 0.0);
    b->download_f64(b, out, loss, b->ssize, 1);
    b->release(b, pred), b->release(b, target), b->release(b, loss);
}
static void l1_bwd_case(const GradCase *c, const double *dout, double **grad) {
    Backend *b = be64;
    void *pred = up(b, c->in[0], c->in_n[0]), *target = up(b, c->fixed, c->in_n[0]);
    void *dpred = up(b, grad[0], c->in_n[0]);
    b->l1_loss(b, NULL, dpred, pred, target, c->in_n[0], 0.7, 0.7 * dout[0]);  // grad_scale carries dL/dloss
    fetch(b, grad[0], dpred, c->in_n[0]);
    b->release(b, pred), b->release(b, target);
}

static void gradient_checks(void) {
    {
        const int M = 5, N = 4, K = 6;
        GradCase c = {.name = "matmul (inp, w, bias)", .n_in = 3, .fwd = mm_fwd, .bwd = mm_bwd, .dim = {M, N, K}};
        c.in_n[0] = (size_t)M * K, c.in_n[1] = (size_t)N * K, c.in_n[2] = N, c.out_n = (size_t)M * N;
        for (int k = 0; k < 3; k++) c.in[k] = rand_normal(c.in_n[k]);
        grad_check(&c);
        for (int k = 0; k < 3; k++) free(c.in[k]);
    }
    for (int affine = 1; affine >= 0; affine--) {
        const int R = 5, C = 7;
        GradCase c = {.name = affine ? "layernorm affine (inp, w, bias)" : "layernorm non-affine (inp)",
                      .n_in = affine ? 3 : 1, .fwd = ln_fwd, .bwd = ln_bwd, .dim = {R, C}};
        c.in_n[0] = c.out_n = (size_t)R * C, c.in_n[1] = c.in_n[2] = C;
        c.in[0] = rand_normal(c.in_n[0]);
        if (affine) c.in[1] = rand_uniform(C, 0.5, 1.5), c.in[2] = rand_normal(C);
        grad_check(&c);
        for (int k = 0; k < c.n_in; k++) free(c.in[k]);
    }
    // hd = 24 (not a power of two); N = 7 with 3 tokens per frame leaves a partial last frame.
    const int attn_sizes[3][5] = {{2, 7, 2, 24, 0}, {2, 7, 2, 24, 3}, {1, 300, 1, 8, 70}};
    const char *attn_names[3] = {"attention full (B2 N7 H2 hd24)", "attention frame-causal (B2 N7 H2 hd24 ft3)",
                                 "attention frame-causal, 2 row blocks (N300 hd8 ft70, 200 sampled coords)"};
    for (int t = 0; t < 3; t++) {
        const int *s = attn_sizes[t];
        GradCase c = {.name = attn_names[t], .n_in = 1, .fwd = attn_fwd, .bwd = attn_bwd, .probes = t == 2 ? 200 : 0};
        memcpy(c.dim, s, 5 * sizeof(int));
        c.in_n[0] = (size_t)s[0] * s[1] * 3 * s[2] * s[3], c.out_n = (size_t)s[0] * s[1] * s[2] * s[3];
        c.in[0] = rand_normal(c.in_n[0]);
        grad_check(&c);
        free(c.in[0]);
    }
    {
        GradCase c = {.name = "gelu", .n_in = 1, .fwd = gelu_fwd_case, .bwd = gelu_bwd_case};
        c.in_n[0] = c.out_n = 40;
        c.in[0] = rand_uniform(40, -4, 4);
        grad_check(&c);
        free(c.in[0]);
    }
    {
        // a repeated index per sample: its gradient rows must add up
        const int B = 2, n = 4, Nsrc = 5, C = 3;
        const int32_t idx[8] = {4, 0, 4, 2, 1, 3, 3, 0};
        GradCase g = {.name = "gather_tokens (backward scatter_add_tokens, repeated indices)", .n_in = 1,
                      .fwd = gather_fwd_case, .bwd = gather_bwd_case, .dim = {B, n, Nsrc, C}, .idx = idx};
        g.in_n[0] = (size_t)B * Nsrc * C, g.out_n = (size_t)B * n * C;
        g.in[0] = rand_normal(g.in_n[0]);
        grad_check(&g);
        GradCase s = {.name = "scatter_add_tokens (backward gather_tokens)", .n_in = 1, .fwd = scatter_fwd_case,
                      .bwd = scatter_bwd_case, .dim = {B, n, Nsrc, C}, .idx = idx};
        s.in_n[0] = (size_t)B * n * C, s.out_n = (size_t)B * Nsrc * C;
        s.in[0] = rand_normal(s.in_n[0]);
        double *base = rand_normal(s.out_n);
        s.fixed = base;
        grad_check(&s);
        free(g.in[0]), free(s.in[0]), free(base);
    }
    for (int acc = 0; acc <= 1; acc++) {
        const int B = 2, C = 4, dst_tokens = 6, src_tokens = 5;
        GradCase c = {.name = acc ? "copy_tokens accumulate=1" : "copy_tokens accumulate=0", .n_in = 1,
                      .fwd = copy_fwd_case, .bwd = copy_bwd_case, .dim = {B, C, dst_tokens, 2, src_tokens, 1, 3, acc}};
        c.in_n[0] = (size_t)B * src_tokens * C, c.out_n = (size_t)B * dst_tokens * C;
        c.in[0] = rand_normal(c.in_n[0]);
        double *base = rand_normal(c.out_n);
        c.fixed = base;
        grad_check(&c);
        free(c.in[0]), free(base);
    }
    for (int with_idx = 1; with_idx >= 0; with_idx--) {
        const int B = 2, n = 4, C = 3, Ntable = 6;
        const int32_t idx[8] = {5, 0, 2, 5, 1, 1, 3, 4};
        GradCase c = {.name = with_idx ? "add_rows with idx (x, table)" : "add_rows idx NULL (x, table)",
                      .n_in = 2, .fwd = add_rows_fwd_case, .bwd = add_rows_bwd_case, .dim = {B, n, C, Ntable},
                      .idx = with_idx ? idx : NULL};
        c.in_n[0] = c.out_n = (size_t)B * n * C, c.in_n[1] = (size_t)Ntable * C;
        c.in[0] = rand_normal(c.in_n[0]), c.in[1] = rand_normal(c.in_n[1]);
        grad_check(&c);
        free(c.in[0]), free(c.in[1]);
    }
    {
        const int R = 5, C = 6;
        GradCase c = {.name = "broadcast_row (backward sum_rows)", .n_in = 1, .fwd = bcast_fwd_case,
                      .bwd = bcast_bwd_case, .dim = {R, C}};
        c.in_n[0] = C, c.out_n = (size_t)R * C;
        c.in[0] = rand_normal(C);
        grad_check(&c);
        free(c.in[0]);
    }
    {
        const size_t n = 30;
        GradCase c = {.name = "l1_loss (loss_scale 0.7)", .n_in = 1, .fwd = l1_fwd_case, .bwd = l1_bwd_case};
        c.in_n[0] = n, c.out_n = 1;
        c.in[0] = rand_normal(n);
        double *target = rand_normal(n);
        for (size_t i = 0; i < n; i++)  // keep |pred - target| >> FD_STEP: |x| has a kink at 0
            if (fabs(c.in[0][i] - target[i]) < 0.05) target[i] += 0.1;
        c.fixed = target;
        grad_check(&c);
        free(c.in[0]), free(target);
    }
}

// ---------------------------------------------------------------- forward references (f64 backend)
static void check_matmul_ref(void) {
    Backend *b = be64;
    const int M = 9, N = 7, K = 11;
    double *inp = rand_normal((size_t)M * K), *w = rand_normal((size_t)N * K), *bias = rand_normal(N);
    double *ref = xmalloc((size_t)M * N * sizeof(double)), *got = xmalloc((size_t)M * N * sizeof(double));
    void *di = up(b, inp, (size_t)M * K), *dw = up(b, w, (size_t)N * K), *db = up(b, bias, N);
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        void *o = up(b, NULL, (size_t)M * N);
        b->matmul_fwd(b, o, di, dw, with_bias ? db : NULL, M, N, K);
        fetch(b, got, o, (size_t)M * N);
        matmul_ref(ref, inp, w, with_bias ? bias : NULL, M, N, K);
        check_err(with_bias ? "matmul_fwd vs naive loops, bias" : "matmul_fwd vs naive loops, no bias",
                  rel_norm_error(got, ref, (size_t)M * N), 1e-13);
    }
    // matmul_bwd with some outputs NULL gives the same dinp
    double *dout = rand_normal((size_t)M * N);
    void *dd = up(b, dout, (size_t)M * N), *dinp1 = up(b, NULL, (size_t)M * K), *dinp2 = up(b, NULL, (size_t)M * K);
    void *dwt = up_m(b, NULL, (size_t)N * K), *dbt = up_m(b, NULL, N);
    b->matmul_bwd(b, dinp1, dwt, dbt, dd, di, dw, M, N, K);
    b->matmul_bwd(b, dinp2, NULL, NULL, dd, di, dw, M, N, K);
    double *a = down(b, dinp1, (size_t)M * K), *c = down(b, dinp2, (size_t)M * K);
    TEST_CHECK("matmul_bwd with dw, dbias NULL gives the same dinp", memcmp(a, c, (size_t)M * K * sizeof(double)) == 0,
               "max diff %.3e", max_abs_diff(a, c, (size_t)M * K));
    b->release(b, di), b->release(b, dw), b->release(b, db), b->release(b, dd);
    b->release(b, dinp1), b->release(b, dinp2), b->release(b, dwt), b->release(b, dbt);
    free(inp), free(w), free(bias), free(ref), free(got), free(dout), free(a), free(c);
}

static void check_attention_ref(void) {
    Backend *b = be64;
    // N = 300 spans two row blocks of the kernel; ft = 70 makes blocks and frames straddle each other.
    const int cases[4][5] = {{2, 10, 3, 24, 0}, {2, 10, 3, 24, 4}, {1, 300, 2, 8, 70}, {1, 300, 1, 12, 0}};
    for (int t = 0; t < 4; t++) {
        const int B = cases[t][0], N = cases[t][1], H = cases[t][2], hd = cases[t][3], ft = cases[t][4];
        const size_t nq = (size_t)B * N * 3 * H * hd, no = (size_t)B * N * H * hd, nl = (size_t)B * H * N;
        double *qkv = rand_normal(nq), *out = xmalloc(no * sizeof(double)), *lse = xmalloc(nl * sizeof(double));
        unsigned char *visible = frame_causal_mask(N, ft);
        attention_ref(out, lse, qkv, B, N, H, hd, visible);
        void *dq = up(b, qkv, nq), *dout = up(b, NULL, no), *dl = up_es(b, b->ssize, NULL, nl);
        b->attention_fwd(b, dout, dl, dq, B, N, H, hd, ft);
        double *got_o = down(b, dout, no), *got_l = down_es(b, b->ssize, dl, nl);
        char name[160];
        if (t == 2) {  // forward-only callers pass lse = NULL: same output
            void *o2 = up(b, NULL, no);
            b->attention_fwd(b, o2, NULL, dq, B, N, H, hd, ft);
            double *g2 = down(b, o2, no);
            TEST_CHECK("attention_fwd with lse NULL gives the same out", memcmp(g2, got_o, no * sizeof(double)) == 0,
                       "max diff %.3e", max_abs_diff(g2, got_o, no));
            b->release(b, o2), free(g2);
        }
        snprintf(name, sizeof name, "attention_fwd out vs naive softmax%s (B%d N%d H%d hd%d ft%d)",
                 ft ? " with explicit frame-causal mask" : "", B, N, H, hd, ft);
        check_err(name, rel_norm_error(got_o, out, no), 1e-12);
        snprintf(name, sizeof name, "attention_fwd lse vs naive (B%d N%d H%d hd%d ft%d)", B, N, H, hd, ft);
        check_err(name, rel_norm_error(got_l, lse, nl), 1e-12);
        b->release(b, dq), b->release(b, dout), b->release(b, dl);
        free(qkv), free(out), free(lse), free(visible), free(got_o), free(got_l);
    }
    // frame_tokens >= N is one frame: the same as full attention
    const int B = 1, N = 9, H = 2, hd = 5;
    const size_t nq = (size_t)B * N * 3 * H * hd, no = (size_t)B * N * H * hd;
    double *qkv = rand_normal(nq);
    void *dq = up(b, qkv, nq), *o1 = up(b, NULL, no), *o2 = up(b, NULL, no), *l = up_es(b, b->ssize, NULL, 18);
    b->attention_fwd(b, o1, l, dq, B, N, H, hd, 0);
    b->attention_fwd(b, o2, l, dq, B, N, H, hd, N);
    double *a = down(b, o1, no), *c = down(b, o2, no);
    TEST_CHECK("attention frame_tokens = N equals full attention", memcmp(a, c, no * sizeof(double)) == 0,
               "max diff %.3e", max_abs_diff(a, c, no));
    // frame-causal: changing keys/values of the last frame leaves earlier frames' outputs unchanged
    const int ft = 3;
    b->attention_fwd(b, o1, l, dq, B, N, H, hd, ft);
    for (int i = 6; i < N; i++)
        for (int k = H * hd; k < 3 * H * hd; k++) qkv[(size_t)i * 3 * H * hd + k] += 1.0;
    b->upload_f64(b, dq, b->esize, qkv, nq);
    b->attention_fwd(b, o2, l, dq, B, N, H, hd, ft);
    b->download_f64(b, a, o1, b->esize, no), b->download_f64(b, c, o2, b->esize, no);
    const size_t early = (size_t)6 * H * hd;  // tokens 0..5 = frames 0, 1
    TEST_CHECK("attention frame-causal: earlier frames ignore later frames' k, v",
               memcmp(a, c, early * sizeof(double)) == 0 && max_abs_diff(a + early, c + early, no - early) > 1e-3,
               "early diff %.3e, late diff %.3e", max_abs_diff(a, c, early), max_abs_diff(a + early, c + early,
                                                                                           no - early));
    b->release(b, dq), b->release(b, o1), b->release(b, o2), b->release(b, l);
    free(qkv), free(a), free(c);
}

static void check_layernorm_ref(void) {
    Backend *b = be64;
    const int R = 6, C = 33;
    const double eps = 1e-5;
    double *x = rand_normal((size_t)R * C), *w = rand_normal(C), *bias = rand_normal(C);
    for (size_t i = 0; i < (size_t)R * C; i++) x[i] = 3 + 2 * x[i];  // an offset and scale LayerNorm removes
    void *dx = up(b, x, (size_t)R * C), *dw = up(b, w, C), *db = up(b, bias, C);
    for (int affine = 1; affine >= 0; affine--) {
        void *o = up(b, NULL, (size_t)R * C), *m = up_es(b, b->ssize, NULL, R), *s = up_es(b, b->ssize, NULL, R);
        b->layernorm_fwd(b, o, m, s, dx, affine ? dw : NULL, affine ? db : NULL, R, C, eps);
        double *got = down(b, o, (size_t)R * C), *gm = down_es(b, b->ssize, m, R), *gs = down_es(b, b->ssize, s, R);
        double *ref = xmalloc((size_t)R * C * sizeof(double)), rm[6], rs[6];
        for (int r = 0; r < R; r++) {
            double mean = 0, var = 0;
            for (int c = 0; c < C; c++) mean += x[r * C + c] / C;
            for (int c = 0; c < C; c++) var += (x[r * C + c] - mean) * (x[r * C + c] - mean) / C;  // biased
            rm[r] = mean, rs[r] = 1 / sqrt(var + eps);
            for (int c = 0; c < C; c++) {
                const double xhat = (x[r * C + c] - mean) * rs[r];
                ref[r * C + c] = affine ? xhat * w[c] + bias[c] : xhat;
            }
        }
        const double err = fmax(rel_norm_error(got, ref, (size_t)R * C),
                                fmax(rel_norm_error(gm, rm, R), rel_norm_error(gs, rs, R)));
        check_err(affine ? "layernorm_fwd affine vs formula (out, mean, rstd)"
                         : "layernorm_fwd non-affine vs formula (out, mean, rstd)", err, 1e-13);
        // forward-only callers pass mean = rstd = NULL: same output
        b->layernorm_fwd(b, o, NULL, NULL, dx, affine ? dw : NULL, affine ? db : NULL, R, C, eps);
        double *got2 = down(b, o, (size_t)R * C);
        TEST_CHECK(affine ? "layernorm_fwd affine with mean, rstd NULL gives the same out"
                          : "layernorm_fwd non-affine with mean, rstd NULL gives the same out",
                   memcmp(got2, got, (size_t)R * C * sizeof(double)) == 0, "max diff %.3e",
                   max_abs_diff(got2, got, (size_t)R * C));
        b->release(b, o), b->release(b, m), b->release(b, s);
        free(got), free(got2), free(gm), free(gs), free(ref);
    }
    b->release(b, dx), b->release(b, dw), b->release(b, db);
    free(x), free(w), free(bias);
}

static void check_patchify_ref(void) {
    Backend *b = be64;
    const int B = 2, T = 4, H = 6, W = 9, tt = 2, p = 3;
    const int nh = H / p, nw = W / p, ntok = (T / tt) * nh * nw, plen = 3 * tt * p * p;
    const size_t nclip = (size_t)B * T * H * W * 3, npatch = (size_t)B * ntok * plen;
    double *clips = rand_normal(nclip), *ref = xmalloc(npatch * sizeof(double));
    for (size_t i = 0; i < npatch; i++) ref[i] = NAN;
    // scatter each pixel to its place: token (t/tt, y/p, x/p) in raster order, vector index (c, t%tt, y%p, x%p)
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < 3; c++) {
                        const int tok = ((t / tt) * nh + y / p) * nw + x / p;
                        const int v = ((c * tt + t % tt) * p + y % p) * p + x % p;
                        const size_t pixel = (((size_t)bb * T + t) * H + y) * W + x;
                        ref[((size_t)bb * ntok + tok) * plen + v] = clips[pixel * 3 + c];
                    }
    void *dc = up(b, clips, nclip), *dp = up(b, NULL, npatch);
    b->patchify(b, dp, dc, B, T, H, W, tt, p);
    double *got = down(b, dp, npatch);
    TEST_CHECK("patchify vs direct index formula (B2 T4 H6 W9 tt2 p3)",
               count_nan(ref, npatch) == 0 && memcmp(got, ref, npatch * sizeof(double)) == 0, "max diff %.3e",
               max_abs_diff(got, ref, npatch));
    b->release(b, dc), b->release(b, dp);
    free(clips), free(ref), free(got);
}

static void check_token_ops_ref(void) {
    Backend *b = be64;
    const int B = 2, n = 3, Nsrc = 5, C = 4, Ntable = 7;
    const int32_t idx[6] = {4, 1, 1, 0, 3, 2}, tidx[6] = {6, 0, 3, 2, 2, 5};
    double *src = rand_normal((size_t)B * Nsrc * C), *table = rand_normal((size_t)Ntable * C);
    void *ds = up(b, src, (size_t)B * Nsrc * C), *dt = up(b, table, (size_t)Ntable * C);
    int32_t *di = up_idx(b, idx, 6), *dti = up_idx(b, tidx, 6);
    // gather
    void *g = up(b, NULL, (size_t)B * n * C);
    b->gather_tokens(b, g, ds, di, B, n, Nsrc, C);
    double *got = down(b, g, (size_t)B * n * C), err = 0;
    for (int s = 0; s < B; s++)
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++)
                err += fabs(got[(s * n + i) * C + c] - src[(s * Nsrc + idx[s * n + i]) * C + c]);
    TEST_CHECK("gather_tokens vs index formula", err == 0, "sum |diff| %.3e", err);
    b->release(b, g), free(got);
    // add_rows with and without indices
    for (int with_idx = 1; with_idx >= 0; with_idx--) {
        double *x = rand_normal((size_t)B * n * C);
        void *dx = up(b, x, (size_t)B * n * C);
        b->add_rows(b, dx, dt, with_idx ? dti : NULL, B, n, C);
        got = down(b, dx, (size_t)B * n * C), err = 0;
        for (int t = 0; t < B * n; t++)
            for (int c = 0; c < C; c++)
                err += fabs(got[t * C + c] - (x[t * C + c] + table[(with_idx ? tidx[t] : t % n) * C + c]));
        TEST_CHECK(with_idx ? "add_rows with idx vs formula" : "add_rows idx NULL vs formula", err == 0,
                   "sum |diff| %.3e", err);
        b->release(b, dx), free(x), free(got);
    }
    // copy_tokens: copied rows replaced (or added), every other row untouched
    for (int acc = 0; acc <= 1; acc++) {
        const int dst_tokens = 6, dst_start = 3, src_start = 1, count = 3;
        double *dst = rand_normal((size_t)B * dst_tokens * C);
        void *dd = up(b, dst, (size_t)B * dst_tokens * C);
        b->copy_tokens(b, dd, dst_tokens, dst_start, ds, Nsrc, src_start, count, B, C, acc);
        got = down(b, dd, (size_t)B * dst_tokens * C), err = 0;
        for (int s = 0; s < B; s++)
            for (int i = 0; i < dst_tokens; i++)
                for (int c = 0; c < C; c++) {
                    const double old = dst[(s * dst_tokens + i) * C + c];
                    const int inside = i >= dst_start && i < dst_start + count;
                    const double from = inside ? src[(s * Nsrc + src_start + i - dst_start) * C + c] : 0;
                    const double want = inside ? (acc ? old + from : from) : old;
                    err += fabs(got[(s * dst_tokens + i) * C + c] - want);
                }
        TEST_CHECK(acc ? "copy_tokens accumulate=1 vs formula, other rows kept"
                       : "copy_tokens accumulate=0 vs formula, other rows kept", err == 0, "sum |diff| %.3e", err);
        b->release(b, dd), free(dst), free(got);
    }
    // broadcast_row and sum_rows
    void *o = up(b, NULL, (size_t)Nsrc * C);
    b->broadcast_row(b, o, dt, Nsrc, C);
    got = down(b, o, (size_t)Nsrc * C), err = 0;
    for (int r = 0; r < Nsrc; r++)
        for (int c = 0; c < C; c++) err += fabs(got[r * C + c] - table[c]);
    TEST_CHECK("broadcast_row vs formula", err == 0, "sum |diff| %.3e", err);
    free(got);
    double pre[4] = {1, 2, 3, 4}, want[4];
    void *drow = up_m(b, pre, C);
    b->sum_rows(b, drow, ds, B * Nsrc, C);
    got = down_es(b, b->msize, drow, C);
    for (int c = 0; c < C; c++) {
        want[c] = pre[c];
        for (int r = 0; r < B * Nsrc; r++) want[c] += src[r * C + c];
    }
    check_err("sum_rows vs formula, accumulating", rel_norm_error(got, want, C), 1e-14);
    b->release(b, o), b->release(b, drow), free(got);
    // add, accumulate, scale
    const size_t ne = 50;
    double *x = rand_normal(ne), *y = rand_normal(ne);
    void *dx = up(b, x, ne), *dy = up(b, y, ne), *dz = up(b, NULL, ne);
    b->add(b, dz, dx, dy, ne);
    b->add(b, dx, dx, dy, ne);  // aliased output
    b->accumulate(b, dy, dz, ne);
    b->scale(b, dz, -0.5, ne);
    double *gx = down(b, dx, ne), *gy = down(b, dy, ne), *gz = down(b, dz, ne);
    err = 0;
    for (size_t i = 0; i < ne; i++)
        err += fabs(gx[i] - (x[i] + y[i])) + fabs(gy[i] - (y[i] + (x[i] + y[i]))) + fabs(gz[i] + 0.5 * (x[i] + y[i]));
    TEST_CHECK("add (also aliased), accumulate, scale vs formula", err == 0, "sum |diff| %.3e", err);
    b->release(b, dx), b->release(b, dy), b->release(b, dz);
    free(x), free(y), free(gx), free(gy), free(gz);
    b->release(b, ds), b->release(b, dt), b->release(b, di), b->release(b, dti);
    free(src), free(table);
}

static void check_gelu_ref(void) {
    Backend *b = be64;
    const size_t n = 101;
    double *x = rand_uniform(n, -6, 6), *ref = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) ref[i] = gelu_ref(x[i]);
    void *dx = up(b, x, n), *o = up(b, NULL, n);
    b->gelu_fwd(b, o, dx, n);
    double *got = down(b, o, n);
    check_err("gelu_fwd vs 0.5 x (1 + erf(x / sqrt 2))", rel_norm_error(got, ref, n), 1e-15);
    b->release(b, dx), b->release(b, o);
    free(x), free(ref), free(got);
}

// The statistics ops write a device slot; these read it back for the checks.
static double stat_sum_squares(Backend *b, const void *x, size_t n) {
    void *slot = b->alloc(b, b->ssize);
    double v;
    b->sum_squares(b, slot, x, n);
    b->download_f64(b, &v, slot, b->ssize, 1);
    b->release(b, slot);
    return v;
}
static double stat_mean_column_std(Backend *b, const void *x, int R, int C) {
    void *slot = b->alloc(b, b->ssize);  // zero-filled: the op accumulates
    double v;
    b->mean_column_std(b, slot, x, R, C, 1.0);
    b->download_f64(b, &v, slot, b->ssize, 1);
    b->release(b, slot);
    return v;
}
// loss and statistics: l1 value (accumulating), mean_column_std, sum_squares
static void check_stats_ref(void) {
    Backend *b = be64;
    const size_t n = 200000;  // several of the kernels' 65536-element blocks
    double *pred = rand_normal(n), *target = rand_normal(n);
    double l1 = 0, ss = 0;
    for (size_t i = 0; i < n; i++) l1 += fabs(pred[i] - target[i]), ss += pred[i] * pred[i];
    const double pre = 0.25, want = pre + l1 / n * 1.5;
    void *dp = up(b, pred, n), *dt = up(b, target, n), *loss = up_es(b, b->ssize, &pre, 1);
    b->l1_loss(b, loss, NULL, dp, dt, n, 1.5, 0);
    double got;
    b->download_f64(b, &got, loss, b->ssize, 1);
    check_err("l1_loss value vs formula, accumulating onto loss_out", fabs(got - want) / want, 1e-13);
    // sign(0) = 0: equal entries get no gradient
    double *dpred0 = xcalloc(4, sizeof(double)), same[4] = {1, -2, 3, 0};
    void *ds = up(b, same, 4), *dg = up(b, dpred0, 4);
    b->l1_loss(b, NULL, dg, ds, ds, 4, 1, 1);
    double *g0 = down(b, dg, 4);
    TEST_CHECK("l1_loss gradient is 0 where pred == target", g0[0] == 0 && g0[1] == 0 && g0[2] == 0 && g0[3] == 0,
               "got %g %g %g %g", g0[0], g0[1], g0[2], g0[3]);
    b->release(b, ds), b->release(b, dg), free(dpred0), free(g0);
    check_err("sum_squares vs formula", fabs(stat_sum_squares(b, dp, n) - ss) / ss, 1e-13);
    // mean_column_std on [R,C] = the first R*C predictions, population std
    const int R = 1000, C = 70;
    for (int c = 0; c < C; c++)  // column c scaled by (c+1) so the columns differ
        for (int r = 0; r < R; r++) pred[(size_t)r * C + c] *= c + 1;
    b->upload_f64(b, dp, b->esize, pred, (size_t)R * C);
    double mcs = 0;
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (int r = 0; r < R; r++) m += pred[(size_t)r * C + c] / R;
        for (int r = 0; r < R; r++) v += (pred[(size_t)r * C + c] - m) * (pred[(size_t)r * C + c] - m) / R;
        mcs += sqrt(v) / C;
    }
    check_err("mean_column_std vs population std formula", fabs(stat_mean_column_std(b, dp, R, C) - mcs) / mcs, 1e-13);
    b->release(b, dp), b->release(b, dt), b->release(b, loss);
    free(pred), free(target);
}

// AdamW against torch.optim.AdamW's documented algorithm, one scalar at a time, 3 steps with changing gradients.
static void adamw_ref_steps(double *p, double *m, double *v, double *const g[3], size_t n, double lr, double b1,
                            double b2, double eps, double wd) {
    for (int t = 1; t <= 3; t++)
        for (size_t i = 0; i < n; i++) {
            p[i] -= lr * wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g[t - 1][i];
            v[i] = b2 * v[i] + (1 - b2) * g[t - 1][i] * g[t - 1][i];
            const double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mhat / (sqrt(vhat) + eps);
        }
}

static void adamw_backend_steps(Backend *b, double *p, double *m, double *v, double *const g[3], size_t n, double lr,
                                double b1, double b2, double eps, double wd) {
    const size_t es = b->msize;
    void *dp = up_es(b, es, p, n), *dm = up_es(b, es, NULL, n), *dv = up_es(b, es, NULL, n);
    for (int t = 1; t <= 3; t++) {
        void *dg = up_es(b, es, g[t - 1], n);
        b->adamw(b, dp, NULL, dg, dm, dv, n, lr, b1, b2, eps, wd, t, NULL);
        b->release(b, dg);
    }
    b->download_f64(b, p, dp, es, n), b->download_f64(b, m, dm, es, n), b->download_f64(b, v, dv, es, n);
    b->release(b, dp), b->release(b, dm), b->release(b, dv);
}

static void check_optim_ref(void) {
    const size_t n = 40000;  // above the kernels' parallel threshold
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
    double *p0 = rand_normal(n), *g[3] = {rand_normal(n), rand_normal(n), rand_normal(n)};
    double *rp = copy_of(p0, n), *rm = xcalloc(n, sizeof(double)), *rv = xcalloc(n, sizeof(double));
    adamw_ref_steps(rp, rm, rv, g, n, lr, b1, b2, eps, wd);
    double *bp = copy_of(p0, n), *bm = xmalloc(n * sizeof(double)), *bv = xmalloc(n * sizeof(double));
    adamw_backend_steps(be64, bp, bm, bv, g, n, lr, b1, b2, eps, wd);
    // compare the updates p - p0, not p, so a wrong step cannot hide under the parameter's size
    double *du = xmalloc(n * sizeof(double)), *ru = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) du[i] = bp[i] - p0[i], ru[i] = rp[i] - p0[i];
    check_err("adamw 3 steps (update p - p0) vs scalar formula with bias correction",
              rel_norm_error(du, ru, n), 1e-10);
    check_err("adamw 3 steps moments m, v vs scalar formula",
              fmax(rel_norm_error(bm, rm, n), rel_norm_error(bv, rv, n)), 1e-13);
    // f32 master state against the same reference
    double *fp = copy_of(p0, n), *fm = xmalloc(n * sizeof(double)), *fv = xmalloc(n * sizeof(double));
    adamw_backend_steps(be32, fp, fm, fv, g, n, lr, b1, b2, eps, wd);
    for (size_t i = 0; i < n; i++) du[i] = fp[i] - p0[i];
    // the update is ~1e-3 of p, so the fp32 rounding of p (6e-8) is ~1e-4 of the update
    check_err("adamw fp32 vs fp64 formula (update p - p0)", rel_norm_error(du, ru, n), 5e-4);
    // ema, clip_by_norm, cast_params
    Backend *b = be64;
    double *src = rand_normal(n), *want = xmalloc(n * sizeof(double));
    void *dt = up_es(b, b->msize, p0, n), *ds = up_es(b, b->msize, src, n);
    b->ema(b, dt, NULL, ds, n, 0.996, NULL);
    double *got = down_es(b, b->msize, dt, n);
    for (size_t i = 0; i < n; i++) want[i] = 0.996 * p0[i] + (1 - 0.996) * src[i];
    check_err("ema vs m*target + (1-m)*source", rel_norm_error(got, want, n), 1e-15);
    // clip_by_norm to a quarter of the norm scales by 1/4 (up to torch's 1e-6 in the denominator)
    void *sumsq = b->alloc(b, b->ssize);
    b->sum_squares(b, sumsq, ds, n);
    double ss;
    b->download_f64(b, &ss, sumsq, b->ssize, 1);
    const double quarter = 0.25 * (sqrt(ss) + 1e-6);
    b->clip_by_norm(b, ds, n, sumsq, 4.0 * sqrt(ss));  // above the norm: untouched
    b->clip_by_norm(b, ds, n, sumsq, quarter);
    b->release(b, sumsq);
    b->cast_params(b, dt, ds, n);
    b->cast_params(b, dt, dt, n);  // same buffer: nothing happens
    b->download_f64(b, got, dt, b->msize, n);
    for (size_t i = 0; i < n; i++) want[i] = 0.25 * src[i];
    check_err("clip_by_norm (only below the norm) then cast_params copy", rel_norm_error(got, want, n), 1e-15);
    b->release(b, dt), b->release(b, ds);
    free(p0), free(rp), free(rm), free(rv), free(bp), free(bm), free(bv), free(fp), free(fm), free(fv);
    free(du), free(ru), free(src), free(want), free(got);
    for (int t = 0; t < 3; t++) free(g[t]);
}

// ---------------------------------------------------------------- fp32 vs fp64
// Runs one op on a backend from host inputs and returns its (first) output as host doubles.
typedef double *(*OpRun)(Backend *b, double *const *in);

static void f32_vs_f64(const char *name, OpRun run, double *const *in, size_t out_n) {
    double *a = run(be32, in), *r = run(be64, in);
    char label[160];
    snprintf(label, sizeof label, "fp32 vs fp64: %s", name);
    check_err(label, rel_norm_error(a, r, out_n), F32_TOL);
    free(a), free(r);
}

enum { AM = 40, AN = 30, AK = 50, LR = 20, LC = 48, AB = 2, AT = 40, AH = 2, AD = 24 };

static double *run_matmul(Backend *b, double *const *in) {
    void *x = up(b, in[0], AM * AK), *w = up(b, in[1], AN * AK), *bias = up(b, in[2], AN), *o = up(b, NULL, AM * AN);
    b->matmul_fwd(b, o, x, w, bias, AM, AN, AK);
    double *h = down(b, o, AM * AN);
    b->release(b, x), b->release(b, w), b->release(b, bias), b->release(b, o);
    return h;
}
// the three gradients of matmul_bwd, concatenated
static double *run_matmul_bwd(Backend *b, double *const *in) {
    void *x = up(b, in[0], AM * AK), *w = up(b, in[1], AN * AK), *d = up(b, in[3], AM * AN);
    void *dx = up(b, NULL, AM * AK), *dw = up_m(b, NULL, AN * AK), *db = up_m(b, NULL, AN);
    b->matmul_bwd(b, dx, dw, db, d, x, w, AM, AN, AK);
    double *h = xmalloc((AM * AK + AN * AK + AN) * sizeof(double));
    b->download_f64(b, h, dx, b->esize, AM * AK);
    b->download_f64(b, h + AM * AK, dw, b->msize, AN * AK);
    b->download_f64(b, h + AM * AK + AN * AK, db, b->msize, AN);
    b->release(b, x), b->release(b, w), b->release(b, d), b->release(b, dx), b->release(b, dw), b->release(b, db);
    return h;
}
static double *run_layernorm(Backend *b, double *const *in) {
    void *x = up(b, in[0], LR * LC), *w = up(b, in[1], LC), *bias = up(b, in[2], LC), *o = up(b, NULL, LR * LC);
    void *m = up_es(b, b->ssize, NULL, LR), *s = up_es(b, b->ssize, NULL, LR);
    b->layernorm_fwd(b, o, m, s, x, w, bias, LR, LC, 1e-6);
    double *h = down(b, o, LR * LC);
    b->release(b, x), b->release(b, w), b->release(b, bias), b->release(b, o), b->release(b, m), b->release(b, s);
    return h;
}
static double *run_layernorm_bwd(Backend *b, double *const *in) {
    void *x = up(b, in[0], LR * LC), *w = up(b, in[1], LC), *bias = up(b, in[2], LC), *o = up(b, NULL, LR * LC);
    void *m = up_es(b, b->ssize, NULL, LR), *s = up_es(b, b->ssize, NULL, LR), *d = up(b, in[3], LR * LC);
    void *dx = up(b, NULL, LR * LC), *dw = up_m(b, NULL, LC), *db = up_m(b, NULL, LC);
    b->layernorm_fwd(b, o, m, s, x, w, bias, LR, LC, 1e-6);
    b->layernorm_bwd(b, dx, dw, db, d, x, w, m, s, LR, LC);
    double *h = xmalloc((LR * LC + 2 * LC) * sizeof(double));
    b->download_f64(b, h, dx, b->esize, LR * LC);
    b->download_f64(b, h + LR * LC, dw, b->msize, LC);
    b->download_f64(b, h + LR * LC + LC, db, b->msize, LC);
    b->release(b, x), b->release(b, w), b->release(b, bias), b->release(b, o), b->release(b, m), b->release(b, s);
    b->release(b, d), b->release(b, dx), b->release(b, dw), b->release(b, db);
    return h;
}
static double *run_attention_ft(Backend *b, double *const *in, int ft, int backward) {
    const size_t nq = (size_t)AB * AT * 3 * AH * AD, no = (size_t)AB * AT * AH * AD;
    void *q = up(b, in[0], nq), *o = up(b, NULL, no), *l = up_es(b, b->ssize, NULL, (size_t)AB * AH * AT);
    b->attention_fwd(b, o, l, q, AB, AT, AH, AD, ft);
    double *h;
    if (backward) {
        void *d = up(b, in[1], no), *dq = up(b, NULL, nq);
        b->attention_bwd(b, dq, d, q, o, l, AB, AT, AH, AD, ft);
        h = down(b, dq, nq);
        b->release(b, d), b->release(b, dq);
    } else {
        h = down(b, o, no);
    }
    b->release(b, q), b->release(b, o), b->release(b, l);
    return h;
}
static double *run_attention(Backend *b, double *const *in) { return run_attention_ft(b, in, 0, 0); }
static double *run_attention_causal(Backend *b, double *const *in) { return run_attention_ft(b, in, 8, 0); }
static double *run_attention_bwd(Backend *b, double *const *in) { return run_attention_ft(b, in, 0, 1); }
static double *run_attention_causal_bwd(Backend *b, double *const *in) { return run_attention_ft(b, in, 8, 1); }
static double *run_gelu(Backend *b, double *const *in) {
    void *x = up(b, in[0], 500), *o = up(b, NULL, 500);
    b->gelu_fwd(b, o, x, 500);
    double *h = down(b, o, 500);
    b->release(b, x), b->release(b, o);
    return h;
}
static double *run_gelu_bwd(Backend *b, double *const *in) {
    void *x = up(b, in[0], 500), *d = up(b, in[1], 500), *dx = up(b, NULL, 500);
    b->gelu_bwd(b, dx, x, d, 500);
    double *h = down(b, dx, 500);
    b->release(b, x), b->release(b, d), b->release(b, dx);
    return h;
}
static double *run_patchify(Backend *b, double *const *in) {
    const size_t nclip = 2 * 4 * 8 * 8 * 3;
    void *c = up(b, in[0], nclip), *p = up(b, NULL, nclip);
    b->patchify(b, p, c, 2, 4, 8, 8, 2, 4);
    double *h = down(b, p, nclip);
    b->release(b, c), b->release(b, p);
    return h;
}
// l1 value, mean_column_std, sum_squares as one 3-vector of statistics
static double *run_stats(Backend *b, double *const *in) {
    const size_t n = 3000;
    void *x = up(b, in[0], n), *y = up(b, in[1], n), *loss = up_es(b, b->ssize, NULL, 1);
    double *h = xmalloc(3 * sizeof(double));
    b->l1_loss(b, loss, NULL, x, y, n, 1, 0);
    b->download_f64(b, h, loss, b->ssize, 1);
    h[1] = stat_mean_column_std(b, x, 100, 30);
    h[2] = stat_sum_squares(b, x, n);
    b->release(b, x), b->release(b, y), b->release(b, loss);
    return h;
}
static double *run_l1_grad(Backend *b, double *const *in) {
    const size_t n = 3000;
    void *x = up(b, in[0], n), *y = up(b, in[1], n), *d = up(b, NULL, n);
    b->l1_loss(b, NULL, d, x, y, n, 1, 3.0);
    double *h = down(b, d, n);
    b->release(b, x), b->release(b, y), b->release(b, d);
    return h;
}
static double *run_ema(Backend *b, double *const *in) {
    void *t = up_es(b, b->msize, in[0], 3000), *s = up_es(b, b->msize, in[1], 3000);
    b->ema(b, t, NULL, s, 3000, 0.998, NULL);
    double *h = down_es(b, b->msize, t, 3000);
    b->release(b, t), b->release(b, s);
    return h;
}

static void check_f32_vs_f64(void) {
    double *mm[4] = {rand_normal(AM * AK), rand_normal(AN * AK), rand_normal(AN), rand_normal(AM * AN)};
    f32_vs_f64("matmul_fwd", run_matmul, mm, AM * AN);
    f32_vs_f64("matmul_bwd (dinp, dw, dbias)", run_matmul_bwd, mm, AM * AK + AN * AK + AN);
    double *ln[4] = {rand_normal(LR * LC), rand_uniform(LC, 0.5, 1.5), rand_normal(LC), rand_normal(LR * LC)};
    f32_vs_f64("layernorm_fwd", run_layernorm, ln, LR * LC);
    f32_vs_f64("layernorm_bwd (dinp, dw, dbias)", run_layernorm_bwd, ln, LR * LC + 2 * LC);
    double *at[2] = {rand_normal((size_t)AB * AT * 3 * AH * AD), rand_normal((size_t)AB * AT * AH * AD)};
    f32_vs_f64("attention_fwd full", run_attention, at, (size_t)AB * AT * AH * AD);
    f32_vs_f64("attention_fwd frame-causal", run_attention_causal, at, (size_t)AB * AT * AH * AD);
    f32_vs_f64("attention_bwd full", run_attention_bwd, at, (size_t)AB * AT * 3 * AH * AD);
    f32_vs_f64("attention_bwd frame-causal", run_attention_causal_bwd, at, (size_t)AB * AT * 3 * AH * AD);
    double *ge[2] = {rand_uniform(500, -5, 5), rand_normal(500)};
    f32_vs_f64("gelu_fwd", run_gelu, ge, 500);
    f32_vs_f64("gelu_bwd", run_gelu_bwd, ge, 500);
    double *pa[1] = {rand_normal(2 * 4 * 8 * 8 * 3)};
    f32_vs_f64("patchify", run_patchify, pa, 2 * 4 * 8 * 8 * 3);
    double *st[2] = {rand_normal(3000), rand_normal(3000)};
    f32_vs_f64("l1_loss value, mean_column_std, sum_squares", run_stats, st, 3);
    f32_vs_f64("l1_loss gradient", run_l1_grad, st, 3000);
    f32_vs_f64("ema", run_ema, st, 3000);
    for (int k = 0; k < 4; k++) free(mm[k]), free(ln[k]);
    free(at[0]), free(at[1]), free(ge[0]), free(ge[1]), free(pa[0]), free(st[0]), free(st[1]);
}

// ---------------------------------------------------------------- forward outputs pre-filled with NaN
static void check_poisoned(Backend *b) {
    const size_t es = b->esize, ss = b->ssize;
    char label[160];
#define POISON_CHECK(what, buf, elem, n)                                                                       \
    do {                                                                                                       \
        double *h_ = down_es(b, elem, buf, n);                                                                 \
        const int k_ = count_nan(h_, n);                                                                       \
        snprintf(label, sizeof label, "%s: no NaN left in %s after NaN pre-fill", b->name, what);              \
        TEST_CHECK(label, k_ == 0, "%d of %zu elements still NaN", k_, (size_t)(n));                           \
        free(h_);                                                                                              \
    } while (0)
    const int M = 33, N = 17, K = 20;
    double *x = rand_normal((size_t)M * K), *w = rand_normal((size_t)N * K), *bias = rand_normal(N);
    void *dx = up(b, x, (size_t)M * K), *dw = up(b, w, (size_t)N * K), *db = up(b, bias, N);
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        void *o = nan_filled(b, es, (size_t)M * N);
        b->matmul_fwd(b, o, dx, dw, with_bias ? db : NULL, M, N, K);
        POISON_CHECK(with_bias ? "matmul_fwd out (bias)" : "matmul_fwd out (no bias)", o, es, (size_t)M * N);
        b->release(b, o);
    }
    for (int affine = 1; affine >= 0; affine--) {  // rows of x viewed as [M, K]; w, bias the first K of w
        void *o = nan_filled(b, es, (size_t)M * K), *m = nan_filled(b, ss, M), *s = nan_filled(b, ss, M);
        b->layernorm_fwd(b, o, m, s, dx, affine ? dw : NULL, affine ? db : NULL, M, K, 1e-6);
        POISON_CHECK(affine ? "layernorm_fwd out (affine)" : "layernorm_fwd out (non-affine)", o, es, (size_t)M * K);
        POISON_CHECK(affine ? "layernorm_fwd mean (affine)" : "layernorm_fwd mean (non-affine)", m, ss, M);
        POISON_CHECK(affine ? "layernorm_fwd rstd (affine)" : "layernorm_fwd rstd (non-affine)", s, ss, M);
        b->release(b, o), b->release(b, m), b->release(b, s);
    }
    {
        const int AB2 = 1, AN2 = 300, AH2 = 2, AD2 = 10;  // two row blocks
        const size_t nq = (size_t)AB2 * AN2 * 3 * AH2 * AD2, no = (size_t)AB2 * AN2 * AH2 * AD2, nl = AB2 * AH2 * AN2;
        double *q = rand_normal(nq);
        void *dq = up(b, q, nq);
        for (int ft = 0; ft <= 64; ft += 64) {
            void *o = nan_filled(b, es, no), *l = nan_filled(b, ss, nl);
            b->attention_fwd(b, o, l, dq, AB2, AN2, AH2, AD2, ft);
            POISON_CHECK(ft ? "attention_fwd out (frame-causal)" : "attention_fwd out (full)", o, es, no);
            POISON_CHECK(ft ? "attention_fwd lse (frame-causal)" : "attention_fwd lse (full)", l, ss, nl);
            b->release(b, o), b->release(b, l);
        }
        b->release(b, dq), free(q);
    }
    {
        const size_t n = (size_t)M * K;
        void *o = nan_filled(b, es, n);
        b->gelu_fwd(b, o, dx, n);
        POISON_CHECK("gelu_fwd out", o, es, n);
        b->release(b, o);
        o = nan_filled(b, es, n);
        b->add(b, o, dx, dx, n);
        POISON_CHECK("add out", o, es, n);
        b->release(b, o);
        o = nan_filled(b, es, n);
        b->cast_params(b, o, dx, n);
        POISON_CHECK("cast_params working copy", o, es, n);
        b->release(b, o);
    }
    {
        const int32_t idx[6] = {3, 0, 7, 7, 1, 2};
        int32_t *di = up_idx(b, idx, 6);
        void *o = nan_filled(b, es, (size_t)2 * 3 * K);
        b->gather_tokens(b, o, dx, di, 2, 3, 8, K);  // x as [2, 8 (of 16), K]
        POISON_CHECK("gather_tokens out", o, es, (size_t)2 * 3 * K);
        b->release(b, o), b->release(b, di);
        o = nan_filled(b, es, (size_t)M * K);
        b->copy_tokens(b, o, M, 0, dx, M, 0, M, 1, K, 0);
        POISON_CHECK("copy_tokens (accumulate=0) dst", o, es, (size_t)M * K);
        b->release(b, o);
        o = nan_filled(b, es, (size_t)M * K);
        b->broadcast_row(b, o, dx, M, K);
        POISON_CHECK("broadcast_row out", o, es, (size_t)M * K);
        b->release(b, o);
    }
    {
        const size_t nclip = 2 * 2 * 4 * 6 * 3;
        double *c = rand_normal(nclip);
        void *dc = up(b, c, nclip), *o = nan_filled(b, es, nclip);
        b->patchify(b, o, dc, 2, 2, 4, 6, 2, 2);
        POISON_CHECK("patchify patches", o, es, nclip);
        b->release(b, dc), b->release(b, o), free(c);
    }
#undef POISON_CHECK
    b->release(b, dx), b->release(b, dw), b->release(b, db);
    free(x), free(w), free(bias);
}

// ---------------------------------------------------------------- determinism
// Runs a fixed set of ops (sizes large enough to split across threads and blocks) on b and returns every result
// concatenated as raw backend bytes.
static unsigned char *run_op_suite(Backend *b, size_t *bytes, int use_blas) {
    const size_t es = b->esize;
    const int R = 600, C = 200, K = 150;  // layernorm rows, matmul M = R, N = C, K
    const int AB2 = 2, AN2 = 300, AH2 = 2, AD2 = 24, FT = 50;
    const size_t nq = (size_t)AB2 * AN2 * 3 * AH2 * AD2, no = (size_t)AB2 * AN2 * AH2 * AD2, nl = AB2 * AH2 * AN2;
    const size_t nbig = 300000;
    draw_index = 1000000;  // the same inputs on every call
    double *x = rand_normal((size_t)R * C), *d = rand_normal((size_t)R * C), *w = rand_normal(C);
    double *mw = rand_normal((size_t)C * K), *mi = rand_normal((size_t)R * K), *q = rand_normal(nq);
    double *dq = rand_normal(no), *big = rand_normal(nbig), *big2 = rand_normal(nbig);
    int32_t *idx = rand_indices((size_t)R, 50);  // many repeats
    unsigned char *res = xmalloc(1 << 24), *at = res;
#define KEEP(buf, nbytes) (b->download(b, at, buf, nbytes), at += (nbytes))
    void *dx = up(b, x, (size_t)R * C), *dd = up(b, d, (size_t)R * C), *dw = up(b, w, C);
    void *o = up(b, NULL, (size_t)R * C), *m = up_es(b, b->ssize, NULL, R), *s = up_es(b, b->ssize, NULL, R);
    void *gx = up(b, NULL, (size_t)R * C), *gw = up_m(b, NULL, C), *gb = up_m(b, NULL, C);
    b->layernorm_fwd(b, o, m, s, dx, dw, dw, R, C, 1e-6);
    b->layernorm_bwd(b, gx, gw, gb, dd, dx, dw, m, s, R, C);
    const size_t ms = b->msize;
    KEEP(o, (size_t)R * C * es), KEEP(gx, (size_t)R * C * es), KEEP(gw, C * ms), KEEP(gb, C * ms);
    b->sum_rows(b, gb, dd, R, C);
    KEEP(gb, C * ms);
    int32_t *di = up_idx(b, idx, R);
    void *sc = up(b, NULL, (size_t)50 * C);
    b->scatter_add_tokens(b, sc, dd, di, 1, R, 50, C);
    KEEP(sc, (size_t)50 * C * es);
    b->gelu_bwd(b, gx, dx, dd, (size_t)R * C);
    KEEP(gx, (size_t)R * C * es);
    void *db1 = up(b, big, nbig), *db2 = up(b, big2, nbig), *gbig = up(b, NULL, nbig);
    void *loss = up_es(b, b->ssize, NULL, 1);
    b->l1_loss(b, loss, gbig, db1, db2, nbig, 1, 1);
    KEEP(loss, b->ssize), KEEP(gbig, nbig * es);
    const double stats[2] = {stat_sum_squares(b, db1, nbig), stat_mean_column_std(b, dx, R, C)};
    memcpy(at, stats, sizeof stats), at += sizeof stats;
    if (use_blas) {
        void *dmi = up(b, mi, (size_t)R * K), *dmw = up(b, mw, (size_t)C * K), *mo = up(b, NULL, (size_t)R * C);
        void *gmi = up(b, NULL, (size_t)R * K), *gmw = up_m(b, NULL, (size_t)C * K);
        b->matmul_fwd(b, mo, dmi, dmw, dw, R, C, K);
        b->matmul_bwd(b, gmi, gmw, gb, dd, dmi, dmw, R, C, K);
        KEEP(mo, (size_t)R * C * es), KEEP(gmi, (size_t)R * K * es), KEEP(gmw, (size_t)C * K * ms), KEEP(gb, C * ms);
        void *dqkv = up(b, q, nq), *ao = up(b, NULL, no), *al = up_es(b, b->ssize, NULL, nl), *ad = up(b, dq, no);
        void *gq = up(b, NULL, nq);
        b->attention_fwd(b, ao, al, dqkv, AB2, AN2, AH2, AD2, FT);
        b->attention_bwd(b, gq, ad, dqkv, ao, al, AB2, AN2, AH2, AD2, FT);
        KEEP(ao, no * es), KEEP(al, nl * b->ssize), KEEP(gq, nq * es);
        b->release(b, dmi), b->release(b, dmw), b->release(b, mo), b->release(b, gmi), b->release(b, gmw);
        b->release(b, dqkv), b->release(b, ao), b->release(b, al), b->release(b, ad), b->release(b, gq);
    }
#undef KEEP
    *bytes = (size_t)(at - res);
    b->release(b, dx), b->release(b, dd), b->release(b, dw), b->release(b, o), b->release(b, m), b->release(b, s);
    b->release(b, gx), b->release(b, gw), b->release(b, gb), b->release(b, di), b->release(b, sc);
    b->release(b, db1), b->release(b, db2), b->release(b, gbig), b->release(b, loss);
    free(x), free(d), free(w), free(mw), free(mi), free(q), free(dq), free(big), free(big2), free(idx);
    return res;
}

static void check_determinism(void) {
    size_t n1, n2;
    unsigned char *a = run_op_suite(be32, &n1, 1), *c = run_op_suite(be32, &n2, 1);
    TEST_CHECK("determinism: layernorm, sum_rows, scatter_add, gelu, l1, stats, matmul, attention fwd+bwd "
               "bitwise equal on a second run (4 threads)", n1 == n2 && memcmp(a, c, n1) == 0,
               "results differ");
    free(c);
    // the OpenMP kernels sum in a fixed order: one thread gives the same bits (GEMM may split differently)
    Backend *one = backend_cpu_create(0, 1);
    size_t n3, n4;
    unsigned char *s1 = run_op_suite(one, &n3, 0);
    backend_destroy(one);
    Backend *many = backend_cpu_create(0, TEST_THREADS);
    unsigned char *s4 = run_op_suite(many, &n4, 0);
    backend_destroy(many);
    TEST_CHECK("determinism: non-GEMM ops bitwise equal with 1 and 4 threads", n3 == n4 && memcmp(s1, s4, n3) == 0,
               "results differ");
    free(a), free(s1), free(s4);
}

// The numerical-fault guard: nonfinite_flag over a few stats, and adamw/ema that change nothing when it is set
// (and update as usual when it is clear), in both precisions.
static void check_update_guard(Backend *b) {
    char what[160];
    const double stats_ok[4] = {0.5, 1.0, 2.0, 3.0}, stats_nan[4] = {0.5, NAN, 2.0, 3.0};
    const double stats_inf[4] = {0.5, 1.0, 2.0, INFINITY};
    const double *cases[3] = {stats_ok, stats_nan, stats_inf};
    const double want_flag[3] = {0, 1, 1};
    for (int c = 0; c < 3; c++) {
        void *x = up_es(b, b->ssize, cases[c], 4), *flag = up_es(b, b->ssize, (const double[]){-7}, 1);
        b->nonfinite_flag(b, flag, x, 4);
        double got;
        b->download_f64(b, &got, flag, b->ssize, 1);
        snprintf(what, sizeof what, "%s nonfinite_flag case %d (%s)", b->name, c, c == 0 ? "finite" : "NaN/Inf");
        TEST_CHECK(what, got == want_flag[c], "flag %g, expected %g", got, want_flag[c]);
        b->release(b, x), b->release(b, flag);
    }
    const size_t n = 5000;
    double *p = rand_normal(n), *g = rand_normal(n), *src = rand_normal(n);
    for (int set = 0; set <= 1; set++) {
        void *dp = up_es(b, b->msize, p, n), *dg = up_es(b, b->msize, g, n), *dm = up_es(b, b->msize, NULL, n);
        void *dv = up_es(b, b->msize, NULL, n), *dt = up_es(b, b->msize, src, n);
        void *skip = up_es(b, b->ssize, (const double[]){set}, 1);
        b->adamw(b, dp, NULL, dg, dm, dv, n, 1e-3, 0.9, 0.999, 1e-8, 0.05, 1, skip);
        b->ema(b, dt, NULL, dp, n, 0.99, skip);
        double *gp = down_es(b, b->msize, dp, n), *gm = down_es(b, b->msize, dm, n), *gt = down_es(b, b->msize, dt, n);
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) changed += (gp[i] != (double)(float)p[i] && b->msize == 4) ||
                                                  (gp[i] != p[i] && b->msize == 8) || gm[i] != 0 ||
                                                  (gt[i] != src[i] && b->msize == 8) ||
                                                  (gt[i] != (double)(float)src[i] && b->msize == 4);
        snprintf(what, sizeof what, "%s adamw + ema with the skip flag %s", b->name, set ? "set: nothing changes"
                                                                                          : "clear: they update");
        TEST_CHECK(what, set ? changed == 0 : changed == n, "%zu of %zu elements changed", changed, n);
        free(gp), free(gm), free(gt);
        b->release(b, dp), b->release(b, dg), b->release(b, dm), b->release(b, dv), b->release(b, dt);
        b->release(b, skip);
    }
    free(p), free(g), free(src);
}

int main(void) {
    const double t0 = now_seconds();
    be64 = backend_cpu_create(1, TEST_THREADS);
    be32 = backend_cpu_create(0, TEST_THREADS);
    TEST_CHECK("backend_cpu_create names and sizes", !strcmp(be64->name, "cpu-f64") && be64->esize == 8 &&
               be64->ssize == 8 && be64->msize == 8 && !strcmp(be32->name, "cpu-f32") && be32->esize == 4 &&
               be32->act_dtype == DT_F32, "got %s/%zu, %s/%zu", be64->name, be64->esize, be32->name, be32->esize);
    gradient_checks();
    check_matmul_ref();
    check_attention_ref();
    check_layernorm_ref();
    check_patchify_ref();
    check_token_ops_ref();
    check_gelu_ref();
    check_stats_ref();
    check_optim_ref();
    check_update_guard(be32);
    check_update_guard(be64);
    check_f32_vs_f64();
    check_poisoned(be32);
    check_poisoned(be64);
    check_determinism();
    backend_destroy(be64);
    backend_destroy(be32);
    printf("test_ops: %.1f s\n", now_seconds() - t0);
    TEST_EXIT();
}
