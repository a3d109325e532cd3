// preempt.c: see preempt.h.
#include "preempt.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"

static volatile sig_atomic_t received = 0;
static struct timespec received_at;  // written by the handler before `received`

static void on_signal(int sig) {
    if (received) return;
    clock_gettime(CLOCK_MONOTONIC, &received_at);  // async-signal-safe (POSIX)
    received = sig;
}

void preempt_install(void) {
    const int signals[] = {SIGTERM, SIGUSR1, SIGINT};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        // a second SIGINT (Ctrl-C twice) stops at once: the default action
        sa.sa_flags = SA_RESTART | (signals[i] == SIGINT ? SA_RESETHAND : 0);
        if (sigaction(signals[i], &sa, NULL) != 0) die_internal("%s:%d: sigaction failed", __FILE__, __LINE__);
    }
}

int preempt_signal(void) { return received; }

double preempt_seconds_since_signal(void) {
    if (!received) return 0.0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - received_at.tv_sec) + 1e-9 * (double)(now.tv_nsec - received_at.tv_nsec);
}

const char *preempt_signal_name(int sig, char *buf, unsigned n) {
    if (sig == SIGTERM) return "SIGTERM";
    if (sig == SIGUSR1) return "SIGUSR1";
    if (sig == SIGINT) return "SIGINT";
    snprintf(buf, n, "signal %d", sig);
    return buf;
}
