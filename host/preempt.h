// preempt.h: graceful preemption. SIGTERM, SIGUSR1 and SIGINT set a flag (async-signal-safe); the training loop
// finishes the step in flight, writes a checkpoint and exits JEPA_EXIT_PREEMPTED ("resume with the same command").
// A second SIGINT takes the default action (the checkpoint writer is atomic: an interrupted write leaves step_N.tmp).
#pragma once

enum { JEPA_EXIT_PREEMPTED = 3 };

// Installs the handlers (sigaction, SA_RESTART).
void preempt_install(void);
// The first signal received since preempt_install, or 0.
int preempt_signal(void);
// Seconds since that signal arrived (0 when none).
double preempt_seconds_since_signal(void);
// "SIGTERM", "SIGUSR1", "SIGINT" or "signal N".
const char *preempt_signal_name(int sig, char *buf, unsigned n);
