// arena.c: see arena.h.
#include "arena.h"

#include "common.h"

void *arena_take(Arena *a, size_t bytes) {
    const size_t aligned = (bytes + 255) & ~(size_t)255;
    void *p = a->base ? a->base + a->used : NULL;
    if (a->base && a->used + aligned > a->capacity)
        die_internal("activation arena overflow: %zu + %zu > %zu bytes (the plan missed a case)", a->used, aligned,
                     a->capacity);
    a->used += aligned;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

size_t arena_mark(const Arena *a) { return a->used; }

void arena_reset(Arena *a, size_t mark) { a->used = mark; }
