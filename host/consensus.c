// consensus.c: see consensus.h and docs/consensus.md.
#include "consensus.h"

#include <string.h>

#include "common.h"
#include "dist.h"

struct Consensus {
    const Config *cfg;
    Model *m;
    size_t n;          // trained parameters (encoder + predictor), the flat master buffer
    float *global;     // [n] outer: the global parameters; elastic: the consensus copy
    float *momentum;   // [n] outer: Nesterov momentum buffer
    float *send;       // [n] what this rank contributes to the all-reduce
    double *local;     // [n] this site's parameters, downloaded (overlap: as at the exchange step, the snapshot)
    double *now;       // [n] overlap: this site's parameters one inner step after the exchange step
    int bf16;          // exchange_dtype bfloat16: the values sent are rounded to bf16
    int elastic;       // dist.consensus elastic (else outer)
    DistPending *pending;  // overlap: the exchange started at the last exchange step, not yet applied; NULL: none
};

Consensus *consensus_create(Model *m, const Config *cfg) {
    if (strcmp(cfg->dist.sync, "consensus") != 0) return NULL;
    if (!dist_active() || dist_world() < 2)
        die_input("dist.sync: consensus needs at least 2 ranks launched by mpirun (this run has %d)\n---> HINT: "
                  "mpirun -np 2 build/jepa train ... dist.sync=consensus dist.sites=2, or dist.sync=allreduce",
                  dist_world());
    if (cfg->dist.sites < 2)
        die_input("dist.sites: consensus needs at least 2 sites, got %d", cfg->dist.sites);
    if (strcmp(cfg->dist.consensus, "elastic") == 0 && cfg->dist.rho * cfg->dist.sites >= 1)
        die_input("dist.rho: %g x %d sites >= 1 makes the consensus overshoot the sites (EASGD needs rho * sites < 1)",
                  cfg->dist.rho, cfg->dist.sites);
    dist_split_sites(cfg->dist.sites);
    Consensus *c = xcalloc(1, sizeof *c);
    c->cfg = cfg, c->m = m, c->n = m->table.total;
    c->bf16 = strcmp(cfg->dist.exchange_dtype, "bfloat16") == 0;
    c->elastic = strcmp(cfg->dist.consensus, "elastic") == 0;
    c->global = xcalloc(c->n, sizeof(float));
    c->momentum = xcalloc(c->n, sizeof(float));
    c->send = xcalloc(c->n, sizeof(float));
    c->local = xcalloc(c->n, sizeof(double));
    c->now = xcalloc(c->n, sizeof(double));
    m->be->download_f64(m->be, c->local, m->params, m->be->msize, c->n);
    for (size_t i = 0; i < c->n; i++) c->global[i] = (float)c->local[i];
    return c;
}

void consensus_free(Consensus *c) {
    if (!c) return;
    dist_allreduce_host_wait(c->pending, "the consensus parameter exchange");
    free(c->global), free(c->momentum), free(c->send), free(c->local), free(c->now);
    free(c);
}

double consensus_link_seconds(const Config *cfg, double bytes) {
    if (bytes <= 0) return 0;
    return cfg->dist.link_latency_ms * 1e-3 + bytes * 8.0 / (cfg->dist.link_gbps * 1e9);
}

double consensus_mean_over_sites(double site_value) {
    dist_allreduce_host(&site_value, 1, DIST_DOUBLE, DIST_SUM, "the mean of the sites' losses");
    return site_value / dist_world();  // every site has dist_site_ranks() ranks holding its value
}

static void upload_local(Consensus *c, const double *x) {
    Backend *be = c->m->be;
    be->upload_f64(be, c->m->params, be->msize, x, c->n);
    be->cast_params(be, c->m->work, c->m->params, c->n);
}

static float wire(const Consensus *c, double x) {
    return c->bf16 ? dist_bf16_to_float(dist_bf16_from_float((float)x)) : (float)x;
}

// An exchange is begin (this site's part: what it sends, and for elastic its own pull), the sum over sites of send[]
// (an all-reduce among the sites' first ranks, then a broadcast within each site: dist_sites_sum_start), then end (the
// global update, and for outer the new site parameters). Without overlap the sum is waited for at once; with
// dist.overlap_exchange it runs during the next inner step and end takes that step's progress along.

// outer (DiLoCo) begin: send = global - x_s with x_s the parameters at the exchange step (c->local).
// elastic (EASGD, synchronous) begin: d_s = x_s - global; x_s -= rho*d_s (local: applied at once).
static void exchange_begin(Consensus *c) {
    const double rho = c->cfg->dist.rho;
    if (!c->elastic) {
        for (size_t i = 0; i < c->n; i++) c->send[i] = wire(c, (double)c->global[i] - c->local[i]);
        return;
    }
    for (size_t i = 0; i < c->n; i++) c->send[i] = wire(c, c->local[i] - (double)c->global[i]);
    for (size_t i = 0; i < c->n; i++) c->local[i] -= rho * c->send[i];
    upload_local(c, c->local);
}

static void sum_start(Consensus *c) {
    c->pending = dist_sites_sum_start(c->send, c->n, DIST_FLOAT, "the consensus parameter exchange");
}

// now: the site's parameters when the exchange completes (without overlap: c->local itself).
// outer: delta = mean_s(global - x_s); u = mu*u + delta; global -= lr*(delta + mu*u) (Nesterov, as
// torch.optim.SGD(nesterov=True)); x_s = global + (now - x_s at the exchange step): the inner step made meanwhile
// (none without overlap) is kept on top of the new global parameters.
// elastic: global += rho * sum_s d_s; the sites' parameters do not change.
static void exchange_end(Consensus *c, const double *now) {
    dist_allreduce_host_wait(c->pending, "the consensus parameter exchange");
    c->pending = NULL;
    if (c->elastic) {
        const double rho = c->cfg->dist.rho;
        for (size_t i = 0; i < c->n; i++) c->global[i] = (float)(c->global[i] + rho * c->send[i]);
        return;
    }
    const double lr = c->cfg->dist.outer_lr, mu = c->cfg->dist.outer_momentum, sites = c->cfg->dist.sites;
    for (size_t i = 0; i < c->n; i++) {
        const double delta = c->send[i] / sites;
        c->momentum[i] = (float)(mu * c->momentum[i] + delta);
        c->global[i] = (float)(c->global[i] - lr * (delta + mu * c->momentum[i]));
        c->local[i] = (double)c->global[i] + (now[i] - c->local[i]);  // now == local: exactly global
    }
    upload_local(c, c->local);
}

void consensus_after_update(Consensus *c, long step1, int last_step, double *bytes) {
    *bytes = 0;
    if (!c) return;
    Backend *be = c->m->be;
    if (c->pending) {  // overlap: the exchange of the previous step, with this step's progress
        be->download_f64(be, c->now, c->m->params, be->msize, c->n);
        exchange_end(c, c->now);
    }
    if (step1 % c->cfg->dist.local_steps != 0) return;
    be->download_f64(be, c->local, c->m->params, be->msize, c->n);
    exchange_begin(c);
    sum_start(c);
    // the last step has no next inner step to overlap: the final parameters are the exchanged ones
    if (!c->cfg->dist.overlap_exchange || last_step) exchange_end(c, c->local);
    *bytes = (double)c->n * (c->bf16 ? 2 : 4);
}

// ---------------------------------------------------------------- checkpoint state

// The blob: CONSENSUS_HEADER int64 {magic, n, encoder numel, sites}, then fp32 global[n], momentum[n], then for each
// site s = 1..sites-1 its params[n], exp_avg[n], exp_avg_sq[n], target[enc] (site 0's are the checkpoint's own).
enum { CONSENSUS_HEADER = 4 };
#define CONSENSUS_MAGIC 0x534e43415045414aLL          // "JAEPACNS" in the file (little-endian)
#define CONSENSUS_MAGIC_PENDING 0x504e43415045414aLL  // "JAEPACNP": an outer exchange was in flight (overlap)

static size_t site_floats(const Consensus *c, size_t enc) { return 3 * c->n + enc; }
static size_t state_floats(const Consensus *c, size_t enc) {
    return 2 * c->n + (size_t)(c->cfg->dist.sites - 1) * site_floats(c, enc);
}
static int this_site(void) { return dist_rank() / dist_site_ranks(); }
static int site_leader(void) { return dist_rank() % dist_site_ranks() == 0; }

// Which of this site's buffers goes at float offset k of a site's record, with its length.
static void site_buffers(const Consensus *c, size_t enc, void *bufs[4], size_t lens[4]) {
    Model *m = c->m;
    bufs[0] = m->params, bufs[1] = m->adam_m, bufs[2] = m->adam_v, bufs[3] = m->target;
    lens[0] = lens[1] = lens[2] = c->n, lens[3] = enc;
}

void *consensus_state(Consensus *c, size_t *bytes) {
    Backend *be = c->m->be;
    // overlap: a pending elastic exchange only moves the global copy, which nothing reads before the next exchange:
    // completed now. A pending outer one stays in flight; its values (global - x_s at the exchange step, x_s being
    // the parameters saved here) are restarted on resume, so the resumed run is the uninterrupted one.
    if (c->pending && c->elastic) exchange_end(c, c->local);
    const int in_flight = c->pending != NULL;
    const size_t enc = table_module_numel(&c->m->table, MODULE_ENCODER), nf = state_floats(c, enc);
    float *all = xcalloc(nf, sizeof(float));  // [nf] every site leader's share, zero elsewhere: the sum gathers them
    if (this_site() > 0 && site_leader()) {
        void *bufs[4];
        size_t lens[4];
        site_buffers(c, enc, bufs, lens);
        float *at = all + 2 * c->n + (size_t)(this_site() - 1) * site_floats(c, enc);
        double *tmp = xcalloc(c->n, sizeof(double));
        for (int k = 0; k < 4; at += lens[k], k++) {
            be->download_f64(be, tmp, bufs[k], be->msize, lens[k]);
            for (size_t i = 0; i < lens[k]; i++) at[i] = (float)tmp[i];
        }
        free(tmp);
    }
    dist_allreduce_host(all, nf, DIST_FLOAT, DIST_SUM, "the gather of the consensus state for a checkpoint");
    if (dist_rank() != 0) {
        free(all);
        return NULL;
    }
    memcpy(all, c->global, c->n * sizeof(float));  // the same on every rank: rank 0's own
    memcpy(all + c->n, c->momentum, c->n * sizeof(float));
    *bytes = CONSENSUS_HEADER * sizeof(int64_t) + nf * sizeof(float);
    char *blob = xmalloc(*bytes);
    const int64_t head[CONSENSUS_HEADER] = {in_flight ? CONSENSUS_MAGIC_PENDING : CONSENSUS_MAGIC, (int64_t)c->n,
                                            (int64_t)enc, c->cfg->dist.sites};
    memcpy(blob, head, sizeof head);
    memcpy(blob + sizeof head, all, nf * sizeof(float));
    free(all);
    return blob;
}

void consensus_restore(Consensus *c, const void *blob, size_t bytes, const char *where) {
    Backend *be = c->m->be;
    const size_t enc = table_module_numel(&c->m->table, MODULE_ENCODER), nf = state_floats(c, enc);
    double head[CONSENSUS_HEADER] = {0};  // rank 0's header to every rank (MAX over zeros), so all refuse together
    if (dist_rank() == 0 && blob && bytes >= sizeof(int64_t) * CONSENSUS_HEADER) {
        int64_t h[CONSENSUS_HEADER];
        memcpy(h, blob, sizeof h);
        head[0] = h[0] == CONSENSUS_MAGIC ? 1 : h[0] == CONSENSUS_MAGIC_PENDING ? 2 : 0;  // 2: an exchange in flight
        head[1] = (double)h[1], head[2] = (double)h[2], head[3] = (double)h[3];
        if (bytes != sizeof h + ((size_t)h[1] * 2 + (size_t)(h[3] - 1) * (3 * (size_t)h[1] + (size_t)h[2])) * 4)
            head[0] = 0;
    }
    dist_allreduce_host(head, CONSENSUS_HEADER, DIST_DOUBLE, DIST_MAX, "the consensus state's header");
    if (head[0] != 1 && head[0] != 2)
        die_input("%s: no consensus state (consensus.bin) of this model in the checkpoint; it was written by "
                  "another dist.sync or is damaged\n---> HINT: meta.resume=never", where);
    if ((size_t)head[1] != c->n || (size_t)head[2] != enc || (int)head[3] != c->cfg->dist.sites)
        die_input("%s: the consensus state holds %.0f sites of %.0f parameters; this run has dist.sites %d of %zu\n"
                  "---> HINT: resume with the same dist.sites", where, head[3], head[1], c->cfg->dist.sites, c->n);
    float *all = xcalloc(nf, sizeof(float));  // [nf] rank 0's copy to every rank
    if (dist_rank() == 0) memcpy(all, (const char *)blob + CONSENSUS_HEADER * sizeof(int64_t), nf * sizeof(float));
    dist_allreduce_host(all, nf, DIST_FLOAT, DIST_SUM, "the broadcast of the consensus state");
    memcpy(c->global, all, c->n * sizeof(float));
    memcpy(c->momentum, all + c->n, c->n * sizeof(float));
    if (this_site() > 0) {
        void *bufs[4];
        size_t lens[4];
        site_buffers(c, enc, bufs, lens);
        const float *at = all + 2 * c->n + (size_t)(this_site() - 1) * site_floats(c, enc);
        double *tmp = xcalloc(c->n, sizeof(double));
        for (int k = 0; k < 4; at += lens[k], k++) {
            for (size_t i = 0; i < lens[k]; i++) tmp[i] = at[i];
            be->upload_f64(be, bufs[k], be->msize, tmp, lens[k]);
        }
        free(tmp);
        be->cast_params(be, c->m->work, c->m->params, c->n);
        be->cast_params(be, c->m->target_work, c->m->target, enc);
    }
    free(all);
    if (head[0] == 2) {  // the outer exchange in flight at the checkpoint, from the same values: started again
        be->download_f64(be, c->local, c->m->params, be->msize, c->n);
        exchange_begin(c);
        sum_start(c);
    }
}
