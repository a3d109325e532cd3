// optim.h: V-JEPA v1's recipe: warmup + cosine LR (ipe_scale stretch), cosine weight decay, linear EMA momentum,
// AdamW over four groups (encoder/predictor x decay/no-decay), per-module gradient clipping after the warmup epochs.
#pragma once
#include "config.h"
#include "model.h"

typedef struct {
    double lr, weight_decay, ema_momentum;
    int clip;  // clip this step (epoch index > warmup epochs and clip_grad > 0)
} Schedule;

// Values for 0-based iteration `iter`. The official schedulers step before each iteration starting at 1, so the
// LR and WD use iter + 1; the momentum generator yields its value for iter itself.
Schedule schedule_at(const Config *cfg, long iter);
long schedule_total_steps(const Config *cfg);   // ipe_scale * epochs * ipe
long train_total_steps(const Config *cfg);      // epochs * ipe, or max_steps when smaller and set

// Gradient norms into m->stats, clipping (per module), AdamW step number `step` (1-based), EMA of the target,
// working copies refreshed. Nothing returns to the host.
void optim_step(Model *m, const Config *cfg, const Schedule *s, long step);
// optim_step in two halves (consensus exchanges parameters between them): norms, clipping, the fault flag and
// the AdamW (or SGD) update; then the EMA of the target and its working copy. Without consensus, a backend with
// adamw_ema (the CPU; CUDA with JEPA_FUSE_EMA=1) does the EMA inside optim_update's AdamW pass, at s->ema_momentum,
// and the optim_ema that follows does nothing (m->ema_folded): the same numbers, the weights read once.
void optim_update(Model *m, const Config *cfg, const Schedule *s, long step);
void optim_ema(Model *m, const Schedule *s);
// AdamW step `step` (1-based) at s->lr and s->weight_decay (decaying tensors only) over m's whole table, the working
// copy m->work refreshed in the same pass (backend.h adamw); skip: a stat slot as adamw's, NULL: never skip. Also
// the AC predictor's update (model_ac.c), so both models keep their bf16 working weights the same way.
void optim_adamw_groups(Model *m, const Config *cfg, const Schedule *s, long step, const void *skip);
