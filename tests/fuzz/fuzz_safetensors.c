// fuzz_safetensors.c: libFuzzer harness for the safetensors reader (checkpoints, export). The input is a whole file:
// st_open must validate it or report why (never exit, never read outside the file); each tensor it accepts is then
// read. Any exit (die_hook), crash or sanitizer report is a finding. Built and run by `make fuzz` (tests/test_fuzz.sh).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "safetensors.h"

static char path[64];

static void no_exit(int exit_code) { abort(); }  // the reader reports; it must not exit on any file

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    snprintf(path, sizeof path, "/tmp/jepa_fuzz_st_%d.safetensors", (int)getpid());
    die_hook = no_exit;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    StFile st;
    ErrorText err;
    if (st_open(path, &st, &err) == 0) {
        if (st.data_start > st.file_size) abort();
        for (int i = 0; i < st.count; i++) {
            const StTensor *t = &st.tensors[i];
            if (t->end > st.file_size - st.data_start || st_find(&st, t->name) == NULL) abort();  // validated = inside
            void *buf = malloc(t->end - t->begin + 1);
            if (st_read(&st, t, buf, &err) != 0) abort();  // a validated file reads whole
            free(buf);
        }
        st_close(&st);
    }
    unlink(path);
    return 0;
}
