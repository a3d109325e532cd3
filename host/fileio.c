// fileio.c: see fileio.h.
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common.h"

// A system call on a file being written: on failure, one line naming the file, the call and where, exit 2.
#define WRITE_CHECK(call, path)                                                                             \
    do {                                                                                                    \
        if ((call) < 0)                                                                                     \
            die_input("cannot write %s: %s (%s at %s:%d)", path, strerror(errno), #call, __FILE__, __LINE__); \
    } while (0)

#define XXH_CHECK(call)                                                                                     \
    do {                                                                                                    \
        if ((call) != XXH_OK) die_internal("%s:%d: %s failed", __FILE__, __LINE__, #call);                 \
    } while (0)

int error_set(ErrorText *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

static XXH3_state_t *hash_new(void) {
    XXH3_state_t *h = XXH3_createState();
    if (!h) die_internal("%s:%d: XXH3_createState failed", __FILE__, __LINE__);
    XXH_CHECK(XXH3_64bits_reset(h));
    return h;
}

void synced_open(SyncedFile *f, const char *path) {
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    WRITE_CHECK(f->fd, path);
    f->hash = hash_new();
}

void synced_write(SyncedFile *f, const void *data, size_t bytes) {
    const char *p = data;
    while (bytes > 0) {
        const size_t chunk = bytes < ((size_t)1 << 30) ? bytes : ((size_t)1 << 30);
        const ssize_t n = write(f->fd, p, chunk);
        if (n < 0 && errno == EINTR) continue;
        WRITE_CHECK(n, f->path);
        XXH_CHECK(XXH3_64bits_update(f->hash, p, (size_t)n));
        p += n;
        bytes -= (size_t)n;
        f->bytes += (uint64_t)n;
    }
}

uint64_t synced_close(SyncedFile *f, uint64_t *xxh3) {
    WRITE_CHECK(fsync(f->fd), f->path);
    WRITE_CHECK(close(f->fd), f->path);
    if (xxh3) *xxh3 = XXH3_64bits_digest(f->hash);
    XXH3_freeState(f->hash);
    f->hash = NULL;
    f->fd = -1;
    return f->bytes;
}

uint64_t synced_write_file(const char *path, const void *data, size_t bytes, uint64_t *xxh3) {
    SyncedFile f;
    synced_open(&f, path);
    synced_write(&f, data, bytes);
    return synced_close(&f, xxh3);
}

void fsync_dir(const char *path) {
    const int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    WRITE_CHECK(fd, path);
    WRITE_CHECK(fsync(fd), path);
    WRITE_CHECK(close(fd), path);
}

int file_xxh3(const char *path, uint64_t *hash, uint64_t *bytes, ErrorText *err) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    XXH3_state_t *state = hash_new();
    enum { CHUNK = 1 << 22 };
    char *buf = xmalloc(CHUNK);
    int rc = 0;
    *bytes = 0;
    for (;;) {
        const ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = error_set(err, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        XXH_CHECK(XXH3_64bits_update(state, buf, (size_t)n));
        *bytes += (uint64_t)n;
    }
    *hash = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    free(buf);
    close(fd);
    return rc;
}

char *file_read_text(const char *path, size_t max_bytes, ErrorText *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = xmalloc(max_bytes + 1);
    const size_t n = fread(text, 1, max_bytes + 1, f);
    const int failed = ferror(f);
    fclose(f);
    if (failed || n > max_bytes) {
        error_set(err, "%s: %s", path, failed ? "read failed" : "larger than expected");
        free(text);
        return NULL;
    }
    text[n] = 0;
    return text;
}

int remove_flat_dir(const char *path, ErrorText *err) {
    DIR *d = opendir(path);
    if (!d) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char file[2048];
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        if (unlink(file) != 0) rc = error_set(err, "%s: cannot remove: %s", file, strerror(errno));
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0) rc = error_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return rc;
}
