// fuzz_config.c: libFuzzer harness for the config reader. The input is a YAML config file; bytes after a first NUL,
// if any, are one command-line override (key=value). config_load and config_validate must either accept it or end in
// die_input (exit 2), caught here through die_hook; an internal error (exit 1) or a sanitizer report is a finding.
// Built and run by `make fuzz` (tests/test_fuzz.sh).
#include <dirent.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"

static jmp_buf on_die;
static char path[64];
static unsigned char fd_open_at_start[1024];  // config_load leaves its FILE open when it dies: closed after each input

static void jump_back(int exit_code) {
    if (exit_code != JEPA_EXIT_BAD_INPUT) abort();  // bad input must never be an internal error
    longjmp(on_die, 1);
}

static void fds_snapshot(unsigned char *open_fds) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        const int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < 1024) open_fds[fd] = 1;
    }
    closedir(d);
}

static void close_leaked_fds(void) {
    unsigned char now[1024] = {0};
    fds_snapshot(now);
    for (int fd = 3; fd < 1024; fd++)
        if (now[fd] && !fd_open_at_start[fd]) close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    snprintf(path, sizeof path, "/tmp/jepa_fuzz_config_%d.yaml", (int)getpid());
    die_hook = jump_back;
    fds_snapshot(fd_open_at_start);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t file_bytes = nul ? (size_t)(nul - data) : size;
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, file_bytes, f);
    fclose(f);
    char *override = NULL;
    if (nul) {
        const size_t n = size - file_bytes - 1;
        override = malloc(n + 1);
        memcpy(override, nul + 1, n);
        override[n] = 0;
    }
    static Config cfg;  // static: a longjmp leaves no half-built locals behind
    if (setjmp(on_die) == 0) {
        config_load(&cfg, path, override ? 1 : 0, &override);
        config_validate(&cfg);
    } else {
        close_leaked_fds();
    }
    free(override);
    unlink(path);
    return 0;
}
