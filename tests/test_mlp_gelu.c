// test_mlp_gelu.c: backend.h's matmul_fwd_gelu / matmul_bwd_dgelu on the CPU backends (fp32 and fp64) are the
// separate ops composed, bit for bit (the model calls them, so every CPU test's numbers stay what they were), and
// the backward WRITES d_pre (a pre-filled d_pre is overwritten, not added to) while dw and dbias accumulate.
// The CUDA epilogue path is tests/test_cuda_gelu_fused.c.
#include <string.h>

#include "backend.h"
#include "common.h"
#include "rng.h"
#include "test.h"

static Rng rng;

static void *rand_buf(Backend *b, size_t n) {
    double *v = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) v[i] = 2.0 * rng_normal(&rng);
    void *p = backend_alloc(b, "a test buffer", n * b->esize);
    b->upload_f64(b, p, b->esize, v, n);
    free(v);
    return p;
}

static void *copy_of(Backend *b, const void *src, size_t n) {
    void *p = backend_alloc(b, "a test buffer", n * b->esize);
    b->copy(b, p, src, n * b->esize);
    return p;
}

static void same_bits(const char *name, const void *a, const void *b, size_t bytes) {
    size_t i = 0;
    while (i < bytes && ((const unsigned char *)a)[i] == ((const unsigned char *)b)[i]) i++;
    TEST_CHECK(name, i == bytes, "first differing byte %zu of %zu", i, bytes);
}

static void test_backend(Backend *b, int M, int N, int K) {
    const size_t mn = (size_t)M * N, mk = (size_t)M * K, nk = (size_t)N * K, es = b->esize;
    char name[160];
    // forward: pre[M,N], out[M,N] from inp[M,K], w[N,K], bias[N]
    void *inp = rand_buf(b, mk), *w = rand_buf(b, nk), *bias = rand_buf(b, N);
    void *pre = rand_buf(b, mn), *out = rand_buf(b, mn), *pre_ref = rand_buf(b, mn), *out_ref = rand_buf(b, mn);
    b->matmul_fwd_gelu(b, out, pre, inp, w, bias, M, N, K);
    b->matmul_fwd(b, pre_ref, inp, w, bias, M, N, K);
    b->gelu_fwd(b, out_ref, pre_ref, mn);
    snprintf(name, sizeof name, "%s matmul_fwd_gelu M=%d N=%d K=%d == matmul_fwd then gelu_fwd: pre", b->name, M, N, K);
    same_bits(name, pre, pre_ref, mn * es);
    snprintf(name, sizeof name, "%s matmul_fwd_gelu M=%d N=%d K=%d == matmul_fwd then gelu_fwd: out", b->name, M, N, K);
    same_bits(name, out, out_ref, mn * es);

    // backward of the GEMM whose input was gelu(pre2): pre2, act [M,K]; dout [M,N]; w [N,K]
    void *pre2 = rand_buf(b, mk), *act = rand_buf(b, mk), *dout = rand_buf(b, mn);
    void *dw = rand_buf(b, nk), *db = rand_buf(b, N), *dw_ref = copy_of(b, dw, nk), *db_ref = copy_of(b, db, N);
    void *dpre = rand_buf(b, mk), *scratch = rand_buf(b, mk);  // garbage in both: d_pre is written, scratch unread
    void *dh = backend_alloc(b, "d_hidden", mk * es), *dpre_ref = backend_alloc(b, "d_pre", mk * es);
    b->matmul_bwd_dgelu(b, dpre, dw, db, scratch, dout, act, w, pre2, M, N, K);
    b->matmul_bwd(b, dh, dw_ref, db_ref, dout, act, w, M, N, K);  // dh, dpre_ref start zeroed (alloc)
    b->gelu_bwd(b, dpre_ref, pre2, dh, mk);
    snprintf(name, sizeof name, "%s matmul_bwd_dgelu M=%d N=%d K=%d: d_pre written == gelu_bwd of matmul_bwd", b->name,
             M, N, K);
    same_bits(name, dpre, dpre_ref, mk * es);
    snprintf(name, sizeof name, "%s matmul_bwd_dgelu M=%d N=%d K=%d: dw += as matmul_bwd", b->name, M, N, K);
    same_bits(name, dw, dw_ref, nk * b->msize);
    snprintf(name, sizeof name, "%s matmul_bwd_dgelu M=%d N=%d K=%d: dbias += as matmul_bwd", b->name, M, N, K);
    same_bits(name, db, db_ref, (size_t)N * b->msize);

    void *bufs[] = {inp, w, bias, pre, out, pre_ref, out_ref, pre2, act, dout, dw, db, dw_ref, db_ref, dpre, scratch,
                    dh, dpre_ref};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) b->release(b, bufs[i]);
}

int main(void) {
    rng = rng_stream(3, RNG_TEST, 1, 0);
    for (int dp = 0; dp < 2; dp++) {
        Backend *b = backend_cpu_create(dp, 1);
        test_backend(b, 37, 24, 16);
        test_backend(b, 5, 12, 40);
        backend_destroy(b);
    }
    TEST_EXIT();
}
