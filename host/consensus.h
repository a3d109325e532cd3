// consensus.h: training across sites that keep their data (docs/consensus.md). Each site (a group of ranks,
// data-parallel inside: dist_split_sites) takes dist.local_steps optimizer steps on its own, then the sites
// exchange parameters only: `outer` (DiLoCo: the mean parameter change goes through an outer SGD with Nesterov
// momentum on a global copy) or `elastic` (EASGD: each site is pulled toward a consensus copy, which moves toward
// the sites). CPU ranks over MPI only for now.
#pragma once
#include "config.h"
#include "model.h"

typedef struct Consensus Consensus;

// NULL when dist.sync is allreduce. Splits the world into dist.sites (collective) and copies the start parameters
// (identical on every rank: after the start broadcast) into the global copy. Exits 2 on a bad combination.
Consensus *consensus_create(Model *m, const Config *cfg);
// After the inner update of 1-based step `step1` and before the EMA: the exchange when step1 is a multiple of
// dist.local_steps (every rank calls it at every step). With dist.overlap_exchange the exchange's all-reduce is
// started there and applied after the next step's inner update (one-step-stale; not after the last step, whose
// exchange completes at once). *bytes: what one site sent (0: no exchange started this step).
void consensus_after_update(Consensus *c, long step1, int last_step, double *bytes);
void consensus_free(Consensus *c);
// Checkpoints (collective, every rank at the same step): the state beyond site 0's weights, which the checkpoint
// holds itself: the global copy, the outer momentum and every other site's parameters, moments and target, gathered
// to rank 0 (an all-reduce over a buffer of every site's share). Rank 0 gets the blob (*bytes; free it), the
// others NULL. The step within the round is the checkpoint's step modulo dist.local_steps.
void *consensus_state(Consensus *c, size_t *bytes);
// The reverse, after every rank holds the checkpoint's (site 0's) weights: rank 0 passes the blob (NULL when the
// checkpoint has none), the others NULL. Exits 2 naming `where` when it is missing or of other sites or shapes.
void consensus_restore(Consensus *c, const void *blob, size_t bytes, const char *where);
// The mean over sites of a value that is equal on the ranks of each site (a site's loss): a world all-reduce over
// equal-sized sites. Collective; every rank calls it at the same step.
double consensus_mean_over_sites(double site_value);
// The link model: seconds to send `bytes` over dist.link_gbps with dist.link_latency_ms (0 bytes: 0 s).
double consensus_link_seconds(const Config *cfg, double bytes);
