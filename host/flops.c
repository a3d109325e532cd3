// flops.c: see flops.h.
#include "flops.h"

static double gemm(double m, double n, double k) { return 2.0 * m * n * k; }

// Forward GEMM and attention FLOPs of one stack over B sequences of n tokens.
static void stack_flops(const StackDims *s, double B, double n, double *gemm_out, double *attn_out) {
    const double C = s->width, Hd = s->mlp_hidden, R = B * n;
    const double per_block = gemm(R, 3 * C, C) + gemm(R, C, C) + gemm(R, Hd, C) + gemm(R, C, Hd);
    *gemm_out = s->depth * per_block;
    *attn_out = s->depth * 4.0 * B * s->heads * n * n * s->head_dim;
}

StepFlops flops_micro_batch(const ModelDims *d, int B, const int *n_ctx, const int *n_tgt) {
    StepFlops f = {0};
    const double D = d->enc.width, P = d->pred.width, N = d->tokens;
    const double patch = gemm(B * N, D, d->patch_dim);
    double g, a;
    stack_flops(&d->enc, B, N, &g, &a);
    f.target_fwd = patch + g + a;
    f.attention += a;
    f.context_fwd = patch;
    f.context_bwd = patch;  // weight gradient only: the clips need no gradient
    for (int k = 0; k < d->num_masks; k++) {
        const double nc = n_ctx[k], nt = n_tgt[k];
        stack_flops(&d->enc, B, nc, &g, &a);
        f.context_fwd += g + a;
        f.context_bwd += 2.0 * g + 2.5 * a;
        f.attention += 3.5 * a;
        const double io = gemm(B * nc, P, D) + gemm(B * nt, D, P);  // predictor_embed, predictor_proj
        stack_flops(&d->pred, B, nc + nt, &g, &a);
        f.predictor_fwd += io + g + a;
        f.predictor_bwd += 2.0 * (io + g) + 2.5 * a;
        f.attention += 3.5 * a;
    }
    f.total = f.target_fwd + f.context_fwd + f.context_bwd + f.predictor_fwd + f.predictor_bwd;
    return f;
}
