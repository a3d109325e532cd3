// common.h: error handling, check macros, allocation and timing shared by every host file.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define JEPA_VERSION "0.1.0"

// Exit codes (documented in README): 0 ok, 1 internal error, 2 bad input; 3 preempted (preempt.h); 4 a numerical
// fault (NaN/Inf loss or gradients) that optimization.on_nonfinite says ends the run.
enum { JEPA_EXIT_OK = 0, JEPA_EXIT_INTERNAL = 1, JEPA_EXIT_BAD_INPUT = 2, JEPA_EXIT_NONFINITE = 4 };

// User mistakes: one line "error: ...", exit 2. The message names the file/key/value and what was expected.
_Noreturn void die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Bugs and library failures: "internal error: ...", exit 1.
_Noreturn void die_internal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Test seam for the fuzzers (tests/fuzz/): when set, die_input and die_internal call it with the exit code after
// printing and before exiting; it may longjmp out. Never set in the jepa command.
extern void (*die_hook)(int exit_code);

// Internal invariant with file and line; never used for user input.
#define JEPA_ASSERT(cond)                                                                      \
    do {                                                                                       \
        if (!(cond)) die_internal("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);   \
    } while (0)

// Library call returning 0 on success (libyaml, pthread...).
#define CHECK_ZERO(call)                                                                       \
    do {                                                                                       \
        int check_rc_ = (call);                                                                \
        if (check_rc_ != 0) die_internal("%s:%d: %s returned %d", __FILE__, __LINE__, #call, check_rc_); \
    } while (0)

void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);

double now_seconds(void);  // monotonic clock
