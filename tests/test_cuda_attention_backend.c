// test_cuda_attention_backend.c: the CUDA backend's attention with model.attention: cudnn
// (backend_cuda_use_cudnn_attention) against the cpu-f32 backend on the same bf16-exact inputs: the calls cuDNN runs
// (forward; backward into a dqkv that was just zeroed, which cuDNN writes directly, and into one holding values,
// which goes through a scratch buffer and an add), and the calls left to our kernels (frame-causal, a head dim that
// is not a multiple of 8), over many token counts as the masks produce them (the per-shape plan cache).
// Tolerance: relative norm error 2e-2, as tests/test_cuda_backend.c's attention: cuDNN, like our kernels, rounds the
// probabilities to bf16 before the PV product (unit roundoff 2^-8) and the outputs to bf16; a lost or doubled +=,
// a wrong scale or a transposed view gives errors of order 1. lse is fp32 from fp32 arithmetic: 1e-4.
// Without a GPU (or without cuDNN built in) it prints one SKIP line with the reason.
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "common.h"
#include "cudnn_attention.h"
#include "rng.h"
#include "test.h"

#define TOL_ATTN 2e-2
#define TOL_LSE 1e-4

enum { CPU = 0, GPU = 1 };
static Backend *side[2];
static Rng rng;

typedef struct {
    size_t n, esize[2];
    void *p[2];
} Buf;

// n values (normal times scale, rounded to bf16 so both sides hold the same numbers), or zeros; stat: statistics.
static Buf buf(size_t n, double scale, int stat) {
    Buf b = {n, {0, 0}, {NULL, NULL}};
    double *v = xcalloc(n, sizeof(double));
    for (size_t i = 0; scale > 0 && i < n; i++) v[i] = bf16_to_double(bf16_from_double(scale * rng_normal(&rng)));
    for (int s = 0; s < 2; s++) {
        b.esize[s] = stat ? side[s]->ssize : side[s]->esize;
        b.p[s] = backend_alloc(side[s], "a test buffer", n * b.esize[s]);
        side[s]->upload_f64(side[s], b.p[s], b.esize[s], v, n);
    }
    free(v);
    return b;
}

static void buf_free(Buf *b) {
    for (int s = 0; s < 2; s++) side[s]->release(side[s], b->p[s]);
}

static void check(const Buf *b, double tol, const char *name) {
    double *h[2];
    for (int s = 0; s < 2; s++) {
        h[s] = xmalloc(b->n * sizeof(double));
        side[s]->download_f64(side[s], h[s], b->p[s], b->esize[s], b->n);
    }
    int finite = 1;
    for (size_t i = 0; i < b->n; i++) finite &= isfinite(h[GPU][i]);
    const double err = rel_norm_error(h[GPU], h[CPU], b->n);
    if (!finite) TEST_FAIL(name, "non-finite values from the CUDA backend");
    else TEST_CHECK(name, err <= tol, "relative error %.3e > %.1e over %zu values", err, tol, b->n);
    free(h[0]), free(h[1]);
}

#define BOTH(call)                   \
    for (int s_ = 0; s_ < 2; s_++) { \
        Backend *be = side[s_];      \
        call;                        \
    }
#define P(b) ((b).p[s_])

// dqkv_start: 0 a zeroed dqkv (zeroed just before the call), 1 random values (+= must keep them), 2 zeroed but
// another op queued between the zero and the call.
static void case_(int B, int N, int H, int hd, int frame_tokens, int dqkv_start, const char *what) {
    const size_t nq = (size_t)B * N * 3 * H * hd, no = (size_t)B * N * H * hd;
    Buf qkv = buf(nq, 1.0, 0), out = buf(no, 0, 0), lse = buf((size_t)B * H * N, 0, 1), dout = buf(no, 1.0, 0);
    Buf dqkv = buf(nq, dqkv_start == 1 ? 1.0 : 0, 0), other = buf(16, 1.0, 0);
    char name[200];
    BOTH(be->attention_fwd(be, P(out), P(lse), P(qkv), B, N, H, hd, frame_tokens));
    snprintf(name, sizeof name, "cudnn attention backend: B%d N%d H%d hd%d frame_tokens %d (%s): out", B, N, H, hd,
             frame_tokens, what);
    check(&out, TOL_ATTN, name);
    snprintf(name, sizeof name, "cudnn attention backend: B%d N%d H%d hd%d frame_tokens %d (%s): lse", B, N, H, hd,
             frame_tokens, what);
    check(&lse, TOL_LSE, name);
    BOTH({
        if (dqkv_start != 1) be->zero(be, P(dqkv), nq * be->esize);
        if (dqkv_start == 2) be->scale(be, P(other), 2.0, 16);
        be->attention_bwd(be, P(dqkv), P(dout), P(qkv), P(out), P(lse), B, N, H, hd, frame_tokens);
    });
    snprintf(name, sizeof name, "cudnn attention backend: B%d N%d H%d hd%d frame_tokens %d (%s): dqkv +=", B, N, H, hd,
             frame_tokens, what);
    check(&dqkv, TOL_ATTN, name);
    buf_free(&qkv), buf_free(&out), buf_free(&lse), buf_free(&dout), buf_free(&dqkv), buf_free(&other);
}

int main(void) {
    char why[768];
    if (cuda_device_count(why, sizeof why) == 0 || !cudnn_attention_available(why, sizeof why)) {
        TEST_SKIP("cudnn attention backend: attention through cuDNN vs cpu", why);
        TEST_EXIT();
    }
    side[CPU] = backend_cpu_create(0, 2);
    side[GPU] = backend_cuda_create(0, 0);
    backend_cuda_use_cudnn_attention(side[GPU], why, sizeof why);
    printf("     (%s)\n", why);
    rng = rng_stream(8, RNG_TEST, 1, 0);
    case_(2, 96, 2, 64, 0, 0, "cuDNN writes the zeroed dqkv");
    case_(2, 96, 2, 64, 0, 1, "cuDNN into scratch, added");
    case_(2, 96, 2, 64, 0, 2, "an op between the zero and the call");
    case_(2, 77, 3, 32, 0, 0, "N % 128 != 0: the padding-mask workaround");
    case_(1, 130, 2, 24, 0, 1, "hd 24");
    case_(1, 64, 2, 64, 16, 1, "frame-causal: our kernels");
    case_(1, 40, 2, 20, 0, 1, "hd 20: our kernels");
    for (int N = 50; N < 58; N++) case_(2, N, 2, 64, 0, N % 2, "token counts as masks vary them");
    // cuDNN shapes: B2 N96 hd64, N77 hd32, the eight N50..57, and hd 24 if this cuDNN takes it (asking again builds
    // nothing new; when it does not, its forward plan alone may have been built before the backward's failed)
    long built = 0, evicted = 0;
    cudnn_attention_stats(&built, &evicted);
    const int hd24 = cudnn_attention_prepare(1, 130, 2, 24, why, sizeof why) == 1;
    TEST_CHECK("cudnn attention backend: one forward and one backward plan per cuDNN shape, none evicted",
               (hd24 ? built == 22 : built == 20 || built == 21) && evicted == 0,
               "built %ld, evicted %ld (10 shapes, hd 24 %s)", built, evicted, hd24 ? "supported" : "not supported");
    backend_destroy(side[GPU]);
    backend_destroy(side[CPU]);
    TEST_EXIT();
}
