// safetensors.c: see safetensors.h.
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
              {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}};

size_t st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof(DTYPES) / sizeof(DTYPES[0]); i++)
        if (strcmp(DTYPES[i].name, dtype) == 0) return DTYPES[i].size;
    return 0;
}

const char *st_float_dtype(size_t elem_size) {
    switch (elem_size) {
    case 8: return "F64";
    case 4: return "F32";
    case 2: return "BF16";
    }
    die_internal("no safetensors float dtype of %zu bytes", elem_size);
}

void st_tensor_set(StTensor *t, const char *name, const char *dtype, int ndim, const int64_t *shape, const void *data) {
    JEPA_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS && strlen(name) < sizeof(t->name));
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->dtype, sizeof(t->dtype), "%s", dtype);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
}

uint64_t st_numel(const StTensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

// ------------------------------------------------------------------------------------------------ writing

// The header JSON padded with spaces so that 8 + its length is a multiple of 8.
static char *header_json(StTensor *tensors, int count, const StMeta *meta, int n_meta, size_t *padded_len) {
    json_object *root = json_object_new_object();
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        StTensor *t = &tensors[i];
        t->begin = offset;
        t->end = offset + st_numel(t) * st_dtype_size(t->dtype);
        offset = t->end;
        json_object *entry = json_object_new_object(), *shape = json_object_new_array(),
                    *offsets = json_object_new_array();
        for (int d = 0; d < t->ndim; d++) json_object_array_add(shape, json_object_new_int64(t->shape[d]));
        json_object_array_add(offsets, json_object_new_int64((int64_t)t->begin));
        json_object_array_add(offsets, json_object_new_int64((int64_t)t->end));
        json_object_object_add(entry, "dtype", json_object_new_string(t->dtype));
        json_object_object_add(entry, "shape", shape);
        json_object_object_add(entry, "data_offsets", offsets);
        json_object_object_add(root, t->name, entry);
    }
    if (n_meta > 0) {
        json_object *m = json_object_new_object();
        for (int i = 0; i < n_meta; i++) json_object_object_add(m, meta[i].key, json_object_new_string(meta[i].value));
        json_object_object_add(root, "__metadata__", m);
    }
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    const size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    char *out = xmalloc(padded + 1);
    memcpy(out, text, len);
    memset(out + len, ' ', padded - len);
    out[padded] = 0;
    json_object_put(root);
    *padded_len = padded;
    return out;
}

uint64_t st_write(const char *path, StTensor *tensors, int count, const StMeta *meta, int n_meta, uint64_t *xxh3) {
    size_t header_len;
    char *header = header_json(tensors, count, meta, n_meta, &header_len);
    uint8_t length_le[8];
    for (int i = 0; i < 8; i++) length_le[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    SyncedFile f;
    synced_open(&f, path);
    synced_write(&f, length_le, 8);
    synced_write(&f, header, header_len);
    for (int i = 0; i < count; i++) synced_write(&f, tensors[i].data, tensors[i].end - tensors[i].begin);
    free(header);
    return synced_close(&f, xxh3);
}

// ------------------------------------------------------------------------------------------------ reading

static int read_exact(int fd, void *dst, uint64_t bytes, uint64_t offset, const char *path, ErrorText *err) {
    char *p = dst;
    while (bytes > 0) {
        const size_t chunk = bytes < ((uint64_t)1 << 30) ? (size_t)bytes : ((size_t)1 << 30);
        const ssize_t n = pread(fd, p, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return error_set(err, "%s: read failed: %s", path, strerror(errno));
        if (n == 0) return error_set(err, "%s: the file ends early (truncated?)", path);
        p += n;
        bytes -= (uint64_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int json_int(json_object *o, int64_t *out) {
    if (!o || !json_object_is_type(o, json_type_int)) return 0;
    errno = 0;
    *out = json_object_get_int64(o);
    return errno == 0;
}

// One header entry into t; the dtype, shape and byte count must agree.
static int parse_entry(const char *path, const char *name, json_object *entry, StTensor *t, ErrorText *err) {
    memset(t, 0, sizeof(*t));
    if (strlen(name) >= sizeof(t->name)) return error_set(err, "%s: tensor name too long: '%.60s...'", path, name);
    snprintf(t->name, sizeof(t->name), "%s", name);
    json_object *dtype, *shape, *offsets;
    if (!json_object_is_type(entry, json_type_object) || !json_object_object_get_ex(entry, "dtype", &dtype) ||
        !json_object_object_get_ex(entry, "shape", &shape) || !json_object_object_get_ex(entry, "data_offsets", &offsets))
        return error_set(err, "%s: header entry '%s': expected an object with dtype, shape and data_offsets", path, name);
    const char *dt = json_object_get_string(dtype);
    if (!json_object_is_type(dtype, json_type_string) || st_dtype_size(dt) == 0 || strlen(dt) >= sizeof(t->dtype))
        return error_set(err, "%s: tensor '%s': unknown dtype '%s'", path, name, dt);
    snprintf(t->dtype, sizeof(t->dtype), "%s", dt);
    if (!json_object_is_type(shape, json_type_array) || json_object_array_length(shape) > ST_MAX_DIMS)
        return error_set(err, "%s: tensor '%s': expected a shape of at most %d dimensions", path, name, ST_MAX_DIMS);
    t->ndim = (int)json_object_array_length(shape);
    for (int d = 0; d < t->ndim; d++)
        if (!json_int(json_object_array_get_idx(shape, (size_t)d), &t->shape[d]) || t->shape[d] < 0 ||
            t->shape[d] > ((int64_t)1 << 40))
            return error_set(err, "%s: tensor '%s': shape[%d] is not a size", path, name, d);
    int64_t begin, end;
    if (!json_object_is_type(offsets, json_type_array) || json_object_array_length(offsets) != 2 ||
        !json_int(json_object_array_get_idx(offsets, 0), &begin) || !json_int(json_object_array_get_idx(offsets, 1), &end) ||
        begin < 0 || end < begin)
        return error_set(err, "%s: tensor '%s': expected data_offsets [begin, end] with 0 <= begin <= end", path, name);
    t->begin = (uint64_t)begin;
    t->end = (uint64_t)end;
    const uint64_t want = st_numel(t) * st_dtype_size(t->dtype);
    if (t->end - t->begin != want)
        return error_set(err, "%s: tensor '%s': data_offsets [%llu, %llu) hold %llu bytes, its dtype and shape need %llu",
                         path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)(t->end - t->begin), (unsigned long long)want);
    return 0;
}

static int by_begin(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

// The data section must be covered exactly: sorted by offset, each tensor starts where the previous ended and the
// last ends at the end of the file.
static int check_contiguous(const StFile *f, ErrorText *err) {
    StTensor *sorted = xmalloc((size_t)(f->count ? f->count : 1) * sizeof(StTensor));
    memcpy(sorted, f->tensors, (size_t)f->count * sizeof(StTensor));
    qsort(sorted, (size_t)f->count, sizeof(StTensor), by_begin);
    uint64_t at = 0;
    int rc = 0;
    for (int i = 0; i < f->count && rc == 0; i++) {
        if (sorted[i].begin != at)
            rc = error_set(err, "%s: tensor '%s' starts at byte %llu of the data, expected %llu (%s)", f->path,
                           sorted[i].name, (unsigned long long)sorted[i].begin, (unsigned long long)at,
                           sorted[i].begin > at ? "a hole" : "overlapping tensors");
        at = sorted[i].end;
    }
    const uint64_t data_bytes = f->file_size - f->data_start;
    if (rc == 0 && at != data_bytes)
        rc = error_set(err, "%s: the header describes %llu bytes of data, the file holds %llu (%s)", f->path,
                       (unsigned long long)at, (unsigned long long)data_bytes,
                       at > data_bytes ? "truncated" : "trailing bytes");
    free(sorted);
    return rc;
}

static int parse_header(StFile *f, const char *text, size_t len, ErrorText *err) {
    json_tokener *tok = json_tokener_new();
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    const size_t used = root ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    int rc = 0;
    if (!root || !json_object_is_type(root, json_type_object))
        rc = error_set(err, "%s: the header is not a JSON object", f->path);
    for (size_t i = used; rc == 0 && i < len; i++)
        if (text[i] != ' ') rc = error_set(err, "%s: bytes after the header's JSON (only space padding may follow)", f->path);
    if (rc == 0) {
        f->tensors = xcalloc((size_t)json_object_object_length(root) + 1, sizeof(StTensor));
        json_object_object_foreach(root, key, value) {
            if (strcmp(key, "__metadata__") == 0) continue;
            if (parse_entry(f->path, key, value, &f->tensors[f->count], err) != 0) {
                rc = -1;
                break;
            }
            f->count++;
        }
    }
    json_object_put(root);
    return rc == 0 ? check_contiguous(f, err) : rc;
}

int st_open(const char *path, StFile *f, ErrorText *err) {
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        error_set(err, "%s: cannot stat: %s", path, strerror(errno));
        st_close(f);
        return -1;
    }
    f->file_size = (uint64_t)st.st_size;
    uint8_t length_le[8];
    int rc = f->file_size < 8 ? error_set(err, "%s: %llu bytes, too short for a safetensors file", path,
                                          (unsigned long long)f->file_size)
                              : read_exact(f->fd, length_le, 8, 0, path, err);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)length_le[i] << (8 * i);
    if (rc == 0 && (header_len < 2 || header_len > ST_MAX_HEADER || header_len > f->file_size - 8))
        rc = error_set(err, "%s: header length %llu is not within 2..%u and the file's %llu bytes", path,
                       (unsigned long long)header_len, ST_MAX_HEADER, (unsigned long long)f->file_size);
    char *header = rc == 0 ? xmalloc(header_len + 1) : NULL;
    if (rc == 0) rc = read_exact(f->fd, header, header_len, 8, path, err);
    if (rc == 0) {
        header[header_len] = 0;
        f->data_start = 8 + header_len;
        rc = parse_header(f, header, header_len, err);
    }
    free(header);
    if (rc != 0) st_close(f);
    return rc;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

int st_read(const StFile *f, const StTensor *t, void *dst, ErrorText *err) {
    return read_exact(f->fd, dst, t->end - t->begin, f->data_start + t->begin, f->path, err);
}

void st_close(StFile *f) {
    if (f->fd >= 0) close(f->fd);
    free(f->tensors);
    f->tensors = NULL;
    f->fd = -1;
    f->count = 0;
}
