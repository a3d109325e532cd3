// common.c: see common.h.
#include "common.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

void (*die_hook)(int exit_code);

static _Noreturn void die_with(int code, const char *prefix, const char *fmt, va_list ap) {
    fflush(stdout);
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (die_hook) die_hook(code);
    exit(code);
}

void die_input(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    die_with(JEPA_EXIT_BAD_INPUT, "error: ", fmt, ap);
}

void die_internal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    die_with(JEPA_EXIT_INTERNAL, "internal error: ", fmt, ap);
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die_internal("out of host memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_internal("out of host memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) die_internal("out of host memory reallocating %zu bytes", bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
