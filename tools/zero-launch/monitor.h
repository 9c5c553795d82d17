/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero-launch's liveness monitor, for runs across hosts: the top level listens
 * on a TCP socket, every rank wrapper connects to it, and each side hears from
 * the other every second. The top level names a host whose ranks stopped
 * answering and ends mpirun itself (SIGTERM, SIGKILL after a grace), so a job
 * ends in bounded time whatever TCP does with the lost host's connections; a
 * wrapper that stops hearing from the top level stops its program.
 *
 * The protocol (lines of at most ZL_LINE_MAX bytes, '\n'-terminated, ASCII):
 *   wrapper -> top level: "hello TOKEN RANK HOST PID" first (TOKEN: the 32 hex
 *                         digits of ZRT_LAUNCH_MONITOR; HOST: gethostname, any
 *                         byte that is not printable ASCII as '?'), then
 *                         "beat" every second, "signal N" once when a signal
 *                         from outside was forwarded to the program, and
 *                         "exit N" (the wrapper's exit status) at the end;
 *   top level -> wrapper: "ok" for a hello it accepts, "beat" for each beat.
 * Anything else, a wrong token, a second hello for a rank (or one for a rank
 * given up after the start bound), or a line that is too long drops the
 * connection (an accepted rank's then counts as lost). A connection says its
 * hello within min(heartbeat bound, ZL_HEARTBEAT_S) or is dropped; when all
 * nproc + 64 are open, the oldest without a hello is dropped for a new one.
 * The PID is named in the lost-host sentence.
 *
 * The ranks find the top level in the environment: ZRT_LAUNCH_MONITOR=
 * ADDR:PORT:TOKEN:SECONDS (SECONDS: the heartbeat bound), which mpirun
 * receives in its environment and forwards with `-x ZRT_LAUNCH_MONITOR`, so
 * the token never appears in a command line; the wrapper removes it from its
 * program's environment.
 *
 * Process-wide effects: both waits replace the SIGCHLD handler with a no-op
 * one (it interrupts ppoll) and block SIGCHLD outside ppoll, so a child's end
 * is seen at once, restoring both on return: call them from the main thread
 * of a process that handles SIGCHLD nowhere else. zl_monitor_open may raise
 * the soft RLIMIT_NOFILE (children inherit it). Everything else lives in the
 * opaque structs.
 */
#ifndef ZERO_LAUNCH_MONITOR_H
#define ZERO_LAUNCH_MONITOR_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#define ZL_MONITOR_ENV "ZRT_LAUNCH_MONITOR"

enum {
    ZL_LINE_MAX = 320,         /* bytes of one protocol line, '\n' included */
    ZL_BEAT_MS = 1000,         /* each side says something this often */
    ZL_HEARTBEAT_S = 5,        /* default bound on silence (--heartbeat-timeout) */
    ZL_START_S = 60,           /* default bound for every rank to connect */
    ZL_MPIRUN_GRACE_MS = 3000, /* SIGTERM to SIGKILL, for mpirun */
    ZL_PROGRAM_GRACE_MS = 2000 /* SIGTERM to SIGKILL, for a rank's program */
};

struct zl_monitor_params {
    struct in_addr bind;      /* INADDR_ANY or an address of this host */
    struct in_addr advertise; /* what the ranks connect to */
    int nproc;                /* ranks 0 .. nproc-1 are expected */
    int heartbeat_s, start_s;
};

struct zl_monitor; /* the top level's side: opaque */
struct zl_link;    /* a wrapper's side: opaque */

/* Prints "zero-launch: <message>" on stderr in one write (a rank's stderr
 * goes through mpirun, which tags each piece it reads); returns -1. Shared
 * by zero_launch.c and monitor.c. */
__attribute__((format(printf, 1, 2))) int zl_say(const char *fmt, ...);

/* A sentence under construction: zl_addf appends, truncating at the end
 * of s (always NUL-terminated). Shared by zero_launch.c and monitor.c. */
struct zl_text {
    char s[4096];
    size_t n;
};
__attribute__((format(printf, 2, 3))) void zl_addf(struct zl_text *t, const char *fmt,
                                                   ...);

/* Listens (port chosen by the kernel) and draws the token (getrandom). Needs
 * nproc + 81 open files (ppoll refuses more descriptors than the soft
 * RLIMIT_NOFILE): raises the soft limit to that when it is lower, refuses
 * when the hard limit is. On failure prints why and returns -1, *out
 * untouched. */
int zl_monitor_open(const struct zl_monitor_params *p, struct zl_monitor **out);

/* "ZRT_LAUNCH_MONITOR=ADDR:PORT:TOKEN:SECONDS", for mpirun's environment;
 * owned by the monitor. */
const char *zl_monitor_env(const struct zl_monitor *m);

/* Waits for child (mpirun) to end, serving the ranks meanwhile. When ranks
 * are lost it prints one sentence a host naming them, then ends child
 * (SIGTERM, SIGKILL after ZL_MPIRUN_GRACE_MS); so too, with a sentence, when
 * the monitor itself fails (ppoll). *status is child's wait status. Returns 1
 * when lost ranks were named or the monitor failed (the job failed for that),
 * 0 when not, -1 when waitpid failed. */
int zl_monitor_wait(struct zl_monitor *m, pid_t child, int *status);

/* A rank the monitor found lost (zl_monitor_lost_ranks). */
struct zl_lost_rank {
    int rank;
    bool connected;             /* it said hello: host and addr are set */
    char host[256];             /* its hostname from the hello, else "" */
    char addr[INET_ADDRSTRLEN]; /* its connection's peer address, else "" */
    double at;                  /* when it was found lost, unix seconds */
};

/* After zl_monitor_wait: the ranks it found lost (connections closed without
 * an exit status, silent past the heartbeat bound, or never connected within
 * the start bound), in rank order; at most max of them into out (out may be
 * NULL when max is 0). Returns how many there are, which may exceed max; 0
 * when none was lost (a rank that failed with an exit status is not lost). */
int zl_monitor_lost_ranks(const struct zl_monitor *m, struct zl_lost_rank *out, int max);

void zl_monitor_close(struct zl_monitor *m); /* NULL: no-op */

/* A wrapper's connection: parses value (ZRT_LAUNCH_MONITOR's), connects and
 * says hello, waiting for "ok" at most the heartbeat bound. On failure prints
 * why, naming rank, and returns -1, *out untouched. */
int zl_link_open(const char *value, const char *rank, struct zl_link **out);

/* Waits for child (the rank's program) to end while beating. Reports the
 * first signal forwarded (*forwarded non-zero). When the top level is lost
 * (the connection closed, silent past the bound, or not reading: a line sent
 * only in part) it prints why and stops child (SIGTERM, SIGKILL after
 * ZL_PROGRAM_GRACE_MS). *status is child's wait status. Returns 1 when the
 * top level was lost, 0 when child ended by itself, -1 when waitpid failed;
 * zl_link_close follows in every case (a top level that was only stopped
 * reads its "exit" when it resumes). */
int zl_link_wait(struct zl_link *l, pid_t child, const volatile sig_atomic_t *forwarded,
                 int *status);

/* Sends "exit CODE" (when the top level is still there) and closes; NULL:
 * no-op. */
void zl_link_close(struct zl_link *l, int code);

#endif
