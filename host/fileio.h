// fileio.h: files written so that they survive a crash (written whole, fsynced, hashed with xxh3_64 as they go),
// folder fsyncs for renames, streamed file hashes, and ErrorText for readers that report instead of exiting.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Why an operation failed, one line for the user (names the file and what was expected).
typedef struct {
    char text[1024];
} ErrorText;

// printf into err->text; returns -1 so that `return error_set(err, ...)` reads as a failure.
int error_set(ErrorText *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A file being written: every byte goes through synced_write and into its hash.
typedef struct {
    int fd;
    char path[1024];
    uint64_t bytes;
    void *hash;  // XXH3_state_t
} SyncedFile;

// Each exits 2 with one line naming the file when the system refuses (disk full, permissions).
void synced_open(SyncedFile *f, const char *path);  // creates or truncates
void synced_write(SyncedFile *f, const void *data, size_t bytes);
uint64_t synced_close(SyncedFile *f, uint64_t *xxh3);  // fsync, close; returns the size, *xxh3 its hash
// A whole file at once: the three above.
uint64_t synced_write_file(const char *path, const void *data, size_t bytes, uint64_t *xxh3);
// fsync of a folder, so that the names created or renamed in it are durable.
void fsync_dir(const char *path);

// Hash of a whole file, streamed; 0, or -1 with the reason in err. *bytes receives its size.
int file_xxh3(const char *path, uint64_t *hash, uint64_t *bytes, ErrorText *err);
// The whole file into a NUL-terminated buffer (free it); NULL with the reason in err.
char *file_read_text(const char *path, size_t max_bytes, ErrorText *err);
// Removes a folder holding only regular files. 0, or -1 with the reason in err.
int remove_flat_dir(const char *path, ErrorText *err);
