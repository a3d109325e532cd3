// tensors.c: see tensors.h.
#include "tensors.h"

#include <string.h>

#include "common.h"
#include "rng.h"

int table_add(TensorTable *t, ModuleId module, InitKind init, const char *name, int ndim, const int64_t *shape) {
    JEPA_ASSERT(ndim >= 1 && ndim <= 5 && strlen(name) < sizeof(t->tensors[0].name));
    if (t->count == t->capacity) {
        t->capacity = t->capacity ? 2 * t->capacity : 64;
        t->tensors = xrealloc(t->tensors, (size_t)t->capacity * sizeof(TensorSpec));
    }
    TensorSpec *s = &t->tensors[t->count];
    memset(s, 0, sizeof(*s));
    strcpy(s->name, name);
    s->ndim = ndim;
    s->numel = 1;
    for (int i = 0; i < ndim; i++) {
        s->shape[i] = shape[i];
        s->numel *= (size_t)shape[i];
    }
    s->offset = t->total;
    s->module = module;
    // V-JEPA's rule: no weight decay for biases and 1-D tensors (so 3-D mask tokens do decay).
    s->decay = !(strstr(name, "bias") != NULL || ndim == 1);
    s->init = init;
    s->init_std = 0.02;
    t->total += s->numel;
    return t->count++;
}

void table_finish(TensorTable *t) {
    for (int m = 0; m < MODULE_COUNT; m++) t->module_begin[m] = t->module_end[m] = 0;
    int seen[MODULE_COUNT] = {0};
    for (int i = 0; i < t->count; i++) {
        const TensorSpec *s = &t->tensors[i];
        if (!seen[s->module]) t->module_begin[s->module] = s->offset;
        else JEPA_ASSERT(t->module_end[s->module] == s->offset);  // contiguous per module
        seen[s->module] = 1;
        t->module_end[s->module] = s->offset + s->numel;
    }
}

int table_find(const TensorTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->tensors[i].name, name) == 0) return i;
    return -1;
}

void table_free(TensorTable *t) {
    free(t->tensors);
    memset(t, 0, sizeof(*t));
}

size_t table_module_numel(const TensorTable *t, ModuleId m) { return t->module_end[m] - t->module_begin[m]; }

// Truncated normal with bounds +-2 absolute, as timm's trunc_normal_ (at std 0.02 it is effectively normal).
static double trunc_normal(Rng *r, double std) {
    for (;;) {
        const double x = rng_normal(r) * std;
        if (x >= -2.0 && x <= 2.0) return x;
    }
}

void table_init_values(const TensorTable *t, uint64_t seed, double *values) {
    for (int i = 0; i < t->count; i++) {
        const TensorSpec *s = &t->tensors[i];
        double *v = values + s->offset;
        Rng r = rng_stream(seed, RNG_INIT, (uint64_t)i, 0);
        for (size_t k = 0; k < s->numel; k++) {
            switch (s->init) {
            case INIT_TRUNC_NORMAL: v[k] = trunc_normal(&r, s->init_std); break;
            case INIT_ZEROS: v[k] = 0.0; break;
            case INIT_ONES: v[k] = 1.0; break;
            }
        }
    }
}
