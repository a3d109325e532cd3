// tensors.h: the one tensor table (DESIGN "Memory"). It drives allocation (offsets into the flat parameter, gradient
// and optimizer buffers), initialisation, optimizer groups (module x decay), the EMA target (the encoder's range),
// checkpoint and export names, and tests. Names follow the official V-JEPA state-dict names.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { MODULE_ENCODER = 0, MODULE_PREDICTOR = 1, MODULE_COUNT = 2 } ModuleId;
typedef enum { INIT_TRUNC_NORMAL, INIT_ZEROS, INIT_ONES } InitKind;

typedef struct {
    char name[96];      // e.g. "encoder.blocks.3.attn.qkv.weight"
    int ndim;
    int64_t shape[5];
    size_t numel;
    size_t offset;      // elements from the start of the flat buffer
    ModuleId module;
    int decay;          // weight decay applies (not a bias, not 1-D)
    InitKind init;
    double init_std;    // INIT_TRUNC_NORMAL only
} TensorSpec;

typedef struct {
    TensorSpec *tensors;
    int count, capacity;
    size_t total;                       // elements in the flat buffer
    size_t module_begin[MODULE_COUNT];  // modules are contiguous: [begin, end) in elements
    size_t module_end[MODULE_COUNT];
} TensorTable;

// Appends a tensor (shape given as ndim dims) and returns its index; offsets are assigned in order.
int table_add(TensorTable *t, ModuleId module, InitKind init, const char *name, int ndim, const int64_t *shape);
void table_finish(TensorTable *t);  // computes module ranges; modules must have been added contiguously
int table_find(const TensorTable *t, const char *name);  // -1 if absent
void table_free(TensorTable *t);
// Host values for every tensor, double precision, drawn from rng_stream(seed, RNG_INIT, tensor index, 0).
void table_init_values(const TensorTable *t, uint64_t seed, double *values /* [total] */);
size_t table_module_numel(const TensorTable *t, ModuleId m);
