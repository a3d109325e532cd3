// flops.h: FLOPs per step counted as executed (DESIGN): 2*m*n*k per GEMM (patch embedding included), attention
// 4*B*H*N^2*d forward and 2.5x that backward, GEMM backward 2x forward, target encoder forward only,
// recomputation not counted.
#pragma once
#include "model.h"

typedef struct {
    double target_fwd;       // target encoder incl. its patch embedding
    double context_fwd, context_bwd;      // context encoder over all generators, patch embedding once
    double predictor_fwd, predictor_bwd;  // predictor over all generators
    double attention;        // the attention part of all of the above
    double total;
} StepFlops;

// One micro-batch of B clips with n_ctx[g], n_tgt[g] tokens per generator.
StepFlops flops_micro_batch(const ModelDims *d, int B, const int *n_ctx, const int *n_tgt);
