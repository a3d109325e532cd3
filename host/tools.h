// tools.h: the `jepa data` commands (data_tools.c: synth, info, convert) and `jepa bench data` (bench_data.c).
// Each takes the arguments after its own name and returns the exit code; user mistakes exit 2 (die_input).
#pragma once
#include <stddef.h>

int data_command(int argc, char **argv);
int bench_data_command(int argc, char **argv);

// Shared by the tools: "--name value" parsing and the progress bar on stderr.
typedef struct {
    int argc;
    char **argv;
    int next;             // index of the next argument
    const char *command;  // "data synth", for messages
} ToolArgs;

// The value after option argv[next - 1]; dies naming the option when there is none.
const char *tool_value(ToolArgs *a, const char *option);
int tool_int(ToolArgs *a, const char *option, int lo, int hi);
// "a,b" into two numbers with lo <= a <= b.
void tool_range(ToolArgs *a, const char *option, double lo, double range[2]);
// "HxW" or "S" (square) into height and width >= 1.
void tool_size(ToolArgs *a, const char *option, int *height, int *width);
// "jepa.c VERSION (commit C): the command line", for the created_by attribute.
void tool_created_by(int argc, char **argv, const char *command, char *out, size_t n);
// Redraws "[#####.....]  45% what" on stderr when it is a terminal (done <= total); done == total ends the line.
void tool_progress(const char *what, double done, double total);
