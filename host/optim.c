// optim.c: see optim.h.
#include "optim.h"

#include <math.h>
#include <string.h>

#include "common.h"

long schedule_total_steps(const Config *cfg) {
    return (long)(cfg->optimization.ipe_scale * cfg->optimization.epochs * cfg->optimization.ipe);
}

long train_total_steps(const Config *cfg) {
    const long full = (long)cfg->optimization.epochs * cfg->optimization.ipe;
    const long cap = cfg->optimization.max_steps;
    return cap > 0 && cap < full ? cap : full;
}

// After a linear warmup from start_lr (official WarmupCosineSchedule, WSDSchedule, LinearDecaySchedule):
//   cosine   to final_lr over the rest of T, floored at final_lr (V-JEPA; final_lr = lr makes it constant, V-JEPA 2)
//   constant lr
//   wsd      lr, then linear to final_lr over the last decay_epochs*ipe steps of T
//   linear   lr + (s - warmup)/(T - warmup) * (final_lr - lr): the V-JEPA 2 cooldown, whose run ends at epochs*ipe,
//            short of T = ipe_scale*epochs*ipe, so it stops above final_lr (0.8 of the way with ipe_scale 1.25)
static double lr_at(const Config *cfg, long s) {
    const double warmup = (double)cfg->optimization.warmup * cfg->optimization.ipe;
    const double T = (double)schedule_total_steps(cfg);
    const double start = cfg->optimization.start_lr, ref = cfg->optimization.lr, final = cfg->optimization.final_lr;
    const char *kind = cfg->optimization.lr_schedule;
    if (s < warmup) return start + (double)s / warmup * (ref - start);
    if (!strcmp(kind, "constant")) return ref;
    if (!strcmp(kind, "wsd")) {
        const double decay = (double)cfg->optimization.decay_epochs * cfg->optimization.ipe;
        const double stable_end = T - decay;  // official: warmup + (T - warmup - decay)
        if (s < stable_end) return ref;
        return ref + (s - stable_end) / fmax(1.0, decay) * (final - ref);
    }
    const double progress = (s - warmup) / fmax(1.0, T - warmup);
    if (!strcmp(kind, "linear")) return ref + progress * (final - ref);
    return fmax(final, final + (ref - final) * 0.5 * (1.0 + cos(M_PI * progress)));
}

static double wd_at(const Config *cfg, long s) {
    const double T = (double)schedule_total_steps(cfg);
    const double ref = cfg->optimization.weight_decay, final = cfg->optimization.final_weight_decay;
    const double wd = final + (ref - final) * 0.5 * (1.0 + cos(M_PI * (double)s / T));
    return final <= ref ? fmax(final, wd) : fmin(final, wd);  // clamped toward the final value
}

Schedule schedule_at(const Config *cfg, long iter) {
    Schedule s;
    s.lr = lr_at(cfg, iter + 1);
    s.weight_decay = wd_at(cfg, iter + 1);
    const double m0 = cfg->optimization.ema[0], m1 = cfg->optimization.ema[1];
    s.ema_momentum = m0 + (double)iter * (m1 - m0) / (cfg->optimization.ipe * cfg->optimization.epochs *
                                                      cfg->optimization.ipe_scale);
    const long epoch = iter / cfg->optimization.ipe;
    s.clip = cfg->optimization.clip_grad > 0 && epoch > cfg->optimization.warmup;
    return s;
}

// AdamW over [begin, end) of the table; with_ema: also the EMA of the new weights into the target there, in the
// same pass (the range lies inside the encoder).
static void adamw_range(Model *m, const Config *cfg, const Schedule *s, long step, size_t begin, size_t end,
                        double wd, int with_ema, const void *skip) {
    if (begin >= end) return;
    Backend *be = m->be;
    const size_t at = begin * be->msize, n = end - begin;
    void *param = (char *)m->params + at, *working = (char *)m->work + begin * be->esize;
    void *grad = (char *)m->grads + at, *mom1 = (char *)m->adam_m + at, *mom2 = (char *)m->adam_v + at;
    const double b1 = cfg->optimization.betas[0], b2 = cfg->optimization.betas[1], eps = cfg->optimization.eps;
    if (!with_ema) {
        be->adamw(be, param, working, grad, mom1, mom2, n, s->lr, b1, b2, eps, wd, step, skip);
        return;
    }
    const size_t t = begin - m->table.module_begin[MODULE_ENCODER];  // the target holds the encoder only
    be->adamw_ema(be, param, working, grad, mom1, mom2, n, s->lr, b1, b2, eps, wd, step,
                  (char *)m->target + t * be->msize, (char *)m->target_work + t * be->esize, s->ema_momentum, skip);
}

static size_t clamp_size(size_t x, size_t lo, size_t hi) { return x < lo ? lo : x > hi ? hi : x; }

// AdamW over runs of consecutive tensors that share a decay flag: the four groups as flat ranges. fold_ema: the
// target's EMA in the same pass (backend adamw_ema) over each run's part inside the encoder.
static void adamw_groups(Model *m, const Config *cfg, const Schedule *s, long step, const void *skip, int fold_ema) {
    const TensorTable *t = &m->table;
    const size_t enc_begin = t->module_begin[MODULE_ENCODER], enc_end = t->module_end[MODULE_ENCODER];
    int i = 0;
    while (i < t->count) {
        int j = i;
        while (j + 1 < t->count && t->tensors[j + 1].decay == t->tensors[i].decay) j++;
        const size_t begin = t->tensors[i].offset, end = t->tensors[j].offset + t->tensors[j].numel;
        const double wd = t->tensors[i].decay ? s->weight_decay : 0.0;
        // [begin, a) before the encoder, [a, b) inside it, [b, end) after it
        const size_t a = fold_ema ? clamp_size(enc_begin, begin, end) : end;
        const size_t b = fold_ema ? clamp_size(enc_end, a, end) : end;
        adamw_range(m, cfg, s, step, begin, a, wd, 0, skip);
        adamw_range(m, cfg, s, step, a, b, wd, 1, skip);
        adamw_range(m, cfg, s, step, b, end, wd, 0, skip);
        i = j + 1;
    }
}

void optim_adamw_groups(Model *m, const Config *cfg, const Schedule *s, long step, const void *skip) {
    adamw_groups(m, cfg, s, step, skip, 0);
}

// Plain SGD (optimization.optimizer: sgd; the consensus equivalence test): p -= lr * (g + wd * p) with the decay
// decoupled as AdamW's (wd only on decaying tensors), no momentum; nothing changes when the fault flag is set.
// On the host through the backend's f64 transfers: meant for the CPU backend (train.c refuses it on CUDA).
static void sgd_groups(Model *m, const Schedule *s, const void *fault) {
    Backend *be = m->be;
    const TensorTable *t = &m->table;
    double skip;
    be->download_f64(be, &skip, fault, be->ssize, 1);
    if (skip != 0) return;
    const size_t n = t->total;
    double *p = xcalloc(n, sizeof(double)), *g = xcalloc(n, sizeof(double));  // [n] master params, gradients
    be->download_f64(be, p, m->params, be->msize, n);
    be->download_f64(be, g, m->grads, be->msize, n);
    for (int k = 0; k < t->count; k++) {
        const double wd = t->tensors[k].decay ? s->weight_decay : 0.0;
        for (size_t i = t->tensors[k].offset; i < t->tensors[k].offset + t->tensors[k].numel; i++)
            p[i] -= s->lr * (g[i] + wd * p[i]);
    }
    be->upload_f64(be, m->params, be->msize, p, n);
    be->cast_params(be, m->work, m->params, n);
    free(p), free(g);
}

void optim_step(Model *m, const Config *cfg, const Schedule *s, long step) {
    optim_update(m, cfg, s, step);
    optim_ema(m, s);
}

void optim_update(Model *m, const Config *cfg, const Schedule *s, long step) {
    Backend *be = m->be;
    const TensorTable *t = &m->table;
    const int slots[MODULE_COUNT] = {STAT_SUMSQ_ENCODER, STAT_SUMSQ_PREDICTOR};
    model_mark_phase(m, PHASE_OPTIMIZER);
    for (int mod = 0; mod < MODULE_COUNT; mod++) {
        void *g = (char *)m->grads + t->module_begin[mod] * be->msize;
        const size_t n = table_module_numel(t, mod);
        void *sumsq = model_stat_slot(m, slots[mod]);
        be->sum_squares(be, sumsq, g, n);
        if (s->clip) be->clip_by_norm(be, g, n, sumsq, cfg->optimization.clip_grad);
    }
    // One device flag over the losses, target std and both sums of squares (any NaN/Inf in a gradient reaches its
    // module's sum): AdamW and the EMA read it and change nothing when set, so a fault costs no host round trip.
    void *fault = model_stat_slot(m, STAT_NONFINITE);
    be->nonfinite_flag(be, fault, m->stats, m->dims.num_masks + STAT_NONFINITE);
    // The EMA folds into AdamW's pass where the backend has one (the CPU always, CUDA with JEPA_FUSE_EMA=1), except
    // under consensus, whose exchange comes between the update and the EMA.
    const int sgd = strcmp(cfg->optimization.optimizer, "sgd") == 0;
    const int fold = !sgd && be->adamw_ema != NULL && strcmp(cfg->dist.sync, "consensus") != 0;
    if (sgd) sgd_groups(m, s, fault);
    else adamw_groups(m, cfg, s, step, fault, fold);
    m->ema_folded = fold;
    model_mark_phase(m, PHASE_LOOP);
}

void optim_ema(Model *m, const Schedule *s) {
    Backend *be = m->be;
    if (m->ema_folded) {  // done in optim_update's AdamW pass, with the same momentum
        m->ema_folded = 0;
        return;
    }
    model_mark_phase(m, PHASE_OPTIMIZER);
    const size_t enc = table_module_numel(&m->table, MODULE_ENCODER);
    be->ema(be, m->target, m->target_work, m->params, enc, s->ema_momentum, model_stat_slot(m, STAT_NONFINITE));
    model_mark_phase(m, PHASE_LOOP);
}
