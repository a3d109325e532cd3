// safetensors.h: the safetensors format (huggingface/safetensors) written and read in C. A file is an 8-byte
// little-endian header length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end)}, ...,
// "__metadata__": {string: string}} padded with spaces to a multiple of 8, then the raw little-endian data, offsets
// counted from the end of the header. Writing fsyncs and hashes (xxh3_64) what it writes. Reading checks everything
// the header claims (length, JSON, dtypes, shapes, offsets inside the file, contiguous, no holes) before any tensor
// is read, and reports what is wrong rather than exiting, so that a caller can fall back to another file.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "fileio.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20)  // the reference implementation's limit

typedef struct {
    char name[128];
    char dtype[8];  // "F32", "F64", "BF16", ...
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;  // byte range in the data section
    const void *data;     // writing only: end - begin bytes (st_write fills begin and end)
} StTensor;

typedef struct {
    const char *key, *value;
} StMeta;

typedef struct {
    char path[1024];
    int fd;
    uint64_t file_size, data_start;  // data_start = 8 + header length
    StTensor *tensors;
    int count;
} StFile;

// Bytes per element of a dtype name; 0 for an unknown one.
size_t st_dtype_size(const char *dtype);
// The dtype name for host floats of elem_size bytes (4 "F32", 8 "F64", 2 "BF16").
const char *st_float_dtype(size_t elem_size);
// Fills shape, ndim, dtype and name of a tensor to write (data set by the caller).
void st_tensor_set(StTensor *t, const char *name, const char *dtype, int ndim, const int64_t *shape, const void *data);
uint64_t st_numel(const StTensor *t);

// Writes the tensors in order (contiguous) to path, creating or truncating it, then fsyncs it. Exits with a one-line
// error naming the path when the system refuses (disk full...). Returns the file size; *xxh3 receives its hash.
uint64_t st_write(const char *path, StTensor *tensors, int count, const StMeta *meta, int n_meta, uint64_t *xxh3);

// Opens and validates path. Returns 0, or -1 with the reason in err (the file is then closed).
int st_open(const char *path, StFile *f, ErrorText *err);
const StTensor *st_find(const StFile *f, const char *name);
// Reads a tensor's bytes into dst (end - begin bytes). Returns 0, or -1 with the reason in err.
int st_read(const StFile *f, const StTensor *t, void *dst, ErrorText *err);
void st_close(StFile *f);
