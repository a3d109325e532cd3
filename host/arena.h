// arena.h: the per-step activation arena (DESIGN "Memory"). Planned once for the largest token counts of the config
// by running the same carving code in measuring mode (no memory), then carved per micro-batch and per generator.
#pragma once
#include <stddef.h>

#include "backend.h"

typedef struct {
    char *base;       // backend memory; NULL while measuring
    size_t capacity;  // bytes
    size_t used;      // bytes carved so far
    size_t peak;      // largest `used` seen
} Arena;

void *arena_take(Arena *a, size_t bytes);  // 256-byte aligned; NULL while measuring
size_t arena_mark(const Arena *a);
void arena_reset(Arena *a, size_t mark);
