// provenance.h: what produced a run (commit, build flags, library versions, device), for the run folder.
#pragma once
#include <stdio.h>

const char *build_commit(void);  // "abc1234" or "abc1234-dirty"; "unknown" outside a git checkout
// Writes provenance.json; device names the backend in words; command is the command line.
void provenance_write(FILE *out, const char *device, const char *command);
void print_version(FILE *out);
