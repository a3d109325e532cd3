// child.h: running a piece of code that should die with a one-line error (exit 2), in a fork()ed child with its
// stderr captured. Shared by the store tests (test_store.c, test_jpeg.c).
#pragma once
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

typedef struct {
    int exit_code;
    char stderr_text[4096];
} ChildResult;

// Runs fn(arg) in a fork()ed child with stderr captured.
static inline ChildResult run_in_child(void (*fn)(const void *), const void *arg) {
    ChildResult r = {0};
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds)) exit(1);
    const pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        const int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while ((got = read(fds[0], r.stderr_text + used, sizeof r.stderr_text - 1 - used)) > 0) used += (size_t)got;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// Exit 2, one line "error: ...", holding every expected piece ({NULL}-terminated).
static inline void expect_error(const char *name, void (*fn)(const void *), const void *arg, const char *const *expect) {
    const ChildResult r = run_in_child(fn, arg);
    const char *newline = strchr(r.stderr_text, '\n');
    if (r.exit_code != 2 || strncmp(r.stderr_text, "error: ", 7) || !newline || newline[1]) {
        TEST_FAIL(name, "want exit 2 and one line 'error: ...', got exit %d: %s", r.exit_code, r.stderr_text);
        return;
    }
    for (int e = 0; expect[e]; e++)
        if (!strstr(r.stderr_text, expect[e])) {
            TEST_FAIL(name, "message lacks '%s': %s", expect[e], r.stderr_text);
            return;
        }
    TEST_PASS(name);
}
