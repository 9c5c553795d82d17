/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-launch/monitor.c — zero-launch's liveness monitor (monitor.h):
 * the top level's listening side, which names lost hosts and ends mpirun, and
 * the rank wrapper's connecting side, which stops its program when the top
 * level is gone.
 *
 * Invariants: what a peer sends is hostile until its hello is accepted, and
 * checked after that too: every read is bounded by a connection's line
 * buffer (a longer line drops the connection), every number is range-checked,
 * nothing a peer says is used as a length; connections that never say hello
 * are dropped after the hello bound, and at most nproc + SPARE_CONNS are
 * open (when all are, the oldest that has said no hello makes room: an
 * accepted rank's connection is never dropped for a new one). The soft
 * RLIMIT_NOFILE covers them all (ppoll refuses more descriptors than it).
 * All state lives in struct zl_monitor or struct zl_link.
 */
#include "monitor.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    TICK_MS = 200,          /* the waits look at the clock this often */
    SETTLE_MS = 1500,       /* after a silence, a beat and more for the host's others */
    CLOSED_SETTLE_MS = 300, /* after a closed connection (its host's close at once) */
    SPARE_CONNS = 64,       /* connections beyond one a rank (not yet said hello) */
    OWN_FILES = 16,         /* open files the top level needs besides its sockets */
    MAX_RANKS = 1 << 20,    /* the monitor refuses more */
    TOKEN_BYTES = 16,       /* 32 hex digits */
    HOST_MAX = 255,         /* bytes of a host name in a hello */
    DROPS_SAID = 10,        /* dropped connections named on stderr, then one note */
    SHOWN_RANKS = 32        /* ranks listed in one sentence */
};

/* Prints "zero-launch: <message>" on stderr in one write (a rank's stderr
 * goes through mpirun, which tags each piece it reads); returns -1. */
int zl_say(const char *fmt, ...)
{
    char line[2048] = "zero-launch: ";
    size_t n = strlen(line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    fputs(line, stderr);
    return -1;
}

/* The wall clock, unix seconds. */
static double unix_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Small messages on a non-blocking socket; a full buffer (a peer that does
 * not read) loses one, which the heartbeat bound then notices. Returns -1
 * when only part of s went (the next line would be glued to that part). */
static int send_line(int fd, const char *s)
{
    size_t len = strlen(s);
    ssize_t n = send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 && (size_t)n < len ? -1 : 0;
}

/* s is decimal digits only, in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0]) || strlen(s) > 10)
        return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* Splits s at spaces into at most max words; returns how many there were
 * (max + 1 when there were more). */
static int split(char *s, char **w, int max)
{
    char *save = NULL;
    int n = 0;
    for (char *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == max)
            return max + 1;
        w[n++] = t;
    }
    return n;
}

/* ---- children: both sides wait for one while serving a socket ---------- */

struct sigchld_guard {
    struct sigaction old_action;
    sigset_t old_mask, unblocked; /* unblocked: the mask ppoll waits under */
};

static void sigchld_noop(int sig)
{
    (void)sig; /* only to interrupt ppoll: SIG_DFL would discard the signal */
}

/* SIGCHLD is blocked but for ppoll, so a child that ends between the
 * waitpid check and ppoll still wakes it. */
static void catch_sigchld(struct sigchld_guard *g)
{
    struct sigaction sa = {.sa_handler = sigchld_noop};
    sigset_t block;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &g->old_action);
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &g->old_mask);
    g->unblocked = g->old_mask;
    sigdelset(&g->unblocked, SIGCHLD);
}

static void release_sigchld(const struct sigchld_guard *g)
{
    sigaction(SIGCHLD, &g->old_action, NULL);
    sigprocmask(SIG_SETMASK, &g->old_mask, NULL);
}

/* 1 when child has ended (*status set), 0 while it runs, -1 on error. */
static int reaped(pid_t child, int *status)
{
    pid_t r;
    while ((r = waitpid(child, status, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return zl_say("waitpid: %s", strerror(errno));
    return r == child;
}

/* SIGTERM to child (unless !term: it is ending already), SIGKILL when it has
 * not ended within grace_ms; reaps it. Returns true when SIGKILL was needed. */
static bool end_child(pid_t child, bool term, int grace_ms, int *status)
{
    const struct timespec step = {0, 20 * 1000000};
    int64_t until = now_ms() + grace_ms;
    *status = 0;
    if (term)
        kill(child, SIGTERM);
    while (now_ms() < until) {
        if (reaped(child, status) != 0)
            return false;
        nanosleep(&step, NULL);
    }
    kill(child, SIGKILL);
    while (waitpid(child, status, 0) < 0 && errno == EINTR)
        ;
    return true;
}

/* ---- the top level's side ---------------------------------------------- */

enum rank_state { RANK_WAITING, RANK_LIVE, RANK_STOPPING, RANK_DONE, RANK_LOST };
enum lost_why { WHY_CLOSED = 1, WHY_SILENT = 2, WHY_NEVER = 4 };

struct rank {
    enum rank_state state;
    int why;    /* lost_why bits, once lost */
    bool named; /* in a sentence already */
    int conn;   /* its connection's slot, or -1 */
    int pid;    /* its wrapper's, from the hello */
    int64_t heard_ms;
    double lost_at; /* unix seconds, once lost */
    char host[HOST_MAX + 1];
    char addr[INET_ADDRSTRLEN]; /* its connection's peer address */
};

struct conn {
    int fd;   /* -1: a free slot */
    int rank; /* -1 until its hello is accepted */
    int64_t opened_ms;
    char addr[INET_ADDRSTRLEN];
    size_t len; /* bytes in buf */
    char buf[ZL_LINE_MAX];
};

struct zl_monitor {
    int fd; /* listening */
    int nproc, heartbeat_ms, start_ms, nconn;
    int hello_ms;       /* a connection says hello within this, or is dropped */
    int64_t started_ms; /* mpirun's start */
    int64_t settle_ms;  /* 0, or when to name the ranks lost so far */
    int64_t accept_ms;  /* after an accept error, not before then */
    int drops;          /* connections dropped, up to DROPS_SAID (each said) */
    bool ending;        /* mpirun is ending the job (see end_mpirun) */
    char where[INET_ADDRSTRLEN + 8];
    char token[2 * TOKEN_BYTES + 1];
    char env[sizeof ZL_MONITOR_ENV + INET_ADDRSTRLEN + 2 * TOKEN_BYTES + 32];
    struct rank *ranks;  /* nproc */
    struct conn *conns;  /* nconn */
    struct pollfd *pfds; /* 1 + nconn: the listening socket, then conns */
};

static int draw_token(char *hex)
{
    unsigned char raw[TOKEN_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            return zl_say("monitor: getrandom: %s", strerror(errno));
        got += n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static int listen_on(struct zl_monitor *m, const struct zl_monitor_params *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = p->bind};
    socklen_t len = sizeof a;
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &p->bind, addr, sizeof addr);
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(m->fd, SOMAXCONN) != 0 || getsockname(m->fd, (struct sockaddr *)&a, &len))
        return zl_say("monitor: cannot listen on %s: %s", addr, strerror(errno));
    inet_ntop(AF_INET, &p->advertise, addr, sizeof addr);
    snprintf(m->where, sizeof m->where, "%s:%d", addr, ntohs(a.sin_port));
    return 0;
}

/* Open files for nconn connections, the listening socket and OWN_FILES
 * (ppoll fails with EINVAL past the soft limit, accept with EMFILE): raises
 * the soft limit when it is lower (mpirun inherits that), refuses when the
 * hard limit is. */
static int check_open_files(int nproc, int nconn)
{
    struct rlimit l;
    rlim_t need = (rlim_t)nconn + 1 + OWN_FILES;
    if (getrlimit(RLIMIT_NOFILE, &l) != 0)
        return zl_say("monitor: getrlimit: %s", strerror(errno));
    if (l.rlim_cur == RLIM_INFINITY || l.rlim_cur >= need)
        return 0;
    if (l.rlim_max != RLIM_INFINITY && l.rlim_max < need)
        return zl_say("monitor: %d ranks need %llu open files (one a rank, %d spare, %d "
                      "of its own); ulimit -n is %llu, and its hard limit (ulimit -Hn) "
                      "%llu: raise that to %llu",
                      nproc, (unsigned long long)need, SPARE_CONNS, OWN_FILES + 1,
                      (unsigned long long)l.rlim_cur, (unsigned long long)l.rlim_max,
                      (unsigned long long)need);
    rlim_t was = l.rlim_cur;
    l.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &l) != 0)
        return zl_say("monitor: %d ranks need %llu open files; ulimit -n is %llu, and "
                      "raising it failed: %s",
                      nproc, (unsigned long long)need, (unsigned long long)was,
                      strerror(errno));
    return 0;
}

int zl_monitor_open(const struct zl_monitor_params *p, struct zl_monitor **out)
{
    if (p->nproc < 1 || p->nproc > MAX_RANKS)
        return zl_say("monitor: %d ranks; it watches 1 to %d", p->nproc, MAX_RANKS);
    if (check_open_files(p->nproc, p->nproc + SPARE_CONNS) != 0)
        return -1;
    struct zl_monitor *m = calloc(1, sizeof *m);
    if (!m)
        return zl_say("out of memory");
    m->fd = -1;
    m->nproc = p->nproc;
    m->nconn = p->nproc + SPARE_CONNS;
    m->heartbeat_ms = p->heartbeat_s * 1000;
    /* a wrapper says hello as it connects; the default heartbeat bound is
     * ample for that one line, so a longer --heartbeat-timeout does not let
     * an idle connection hold a slot longer */
    m->hello_ms =
        p->heartbeat_s < ZL_HEARTBEAT_S ? p->heartbeat_s * 1000 : ZL_HEARTBEAT_S * 1000;
    m->start_ms = p->start_s * 1000;
    m->ranks = calloc((size_t)m->nproc, sizeof *m->ranks);
    m->conns = calloc((size_t)m->nconn, sizeof *m->conns);
    m->pfds = calloc((size_t)m->nconn + 1, sizeof *m->pfds);
    int rc = m->ranks && m->conns && m->pfds ? 0 : zl_say("out of memory");
    for (int i = 0; rc == 0 && i < m->nconn; i++)
        m->conns[i] = (struct conn){.fd = -1, .rank = -1};
    for (int i = 0; rc == 0 && i < m->nproc; i++)
        m->ranks[i].conn = -1;
    if (rc != 0 || draw_token(m->token) != 0 || listen_on(m, p) != 0) {
        zl_monitor_close(m);
        return -1;
    }
    snprintf(m->env, sizeof m->env, "%s=%s:%s:%d", ZL_MONITOR_ENV, m->where, m->token,
             p->heartbeat_s);
    *out = m;
    return 0;
}

const char *zl_monitor_env(const struct zl_monitor *m)
{
    return m->env;
}

void zl_monitor_close(struct zl_monitor *m)
{
    if (!m)
        return;
    for (int i = 0; m->conns && i < m->nconn; i++)
        if (m->conns[i].fd >= 0)
            close(m->conns[i].fd);
    if (m->fd >= 0)
        close(m->fd);
    free(m->ranks);
    free(m->conns);
    free(m->pfds);
    free(m);
}

int zl_monitor_lost_ranks(const struct zl_monitor *m, struct zl_lost_rank *out, int max)
{
    int n = 0;
    for (int r = 0; r < m->nproc; r++) {
        const struct rank *k = &m->ranks[r];
        if (k->state != RANK_LOST)
            continue;
        if (n < max) {
            struct zl_lost_rank *l = &out[n];
            *l = (struct zl_lost_rank){
                .rank = r, .connected = k->pid != 0, .at = k->lost_at};
            snprintf(l->host, sizeof l->host, "%s", k->host);
            snprintf(l->addr, sizeof l->addr, "%s", k->addr);
        }
        n++;
    }
    return n;
}

static void close_conn(struct zl_monitor *m, struct conn *c)
{
    if (c->rank >= 0)
        m->ranks[c->rank].conn = -1;
    close(c->fd);
    *c = (struct conn){.fd = -1, .rank = -1};
}

/* Rank r is lost: its connection (if any) is closed, and the ranks lost so
 * far are named once the host's others have had time to be noticed too. */
static void lose(struct zl_monitor *m, int r, enum lost_why why, int64_t now)
{
    struct rank *k = &m->ranks[r];
    if (k->state == RANK_LOST)
        return;
    int64_t settle = now + (why == WHY_CLOSED ? CLOSED_SETTLE_MS : SETTLE_MS);
    k->state = RANK_LOST;
    k->why = why;
    k->lost_at = unix_now();
    m->ending |= why == WHY_CLOSED;
    if (k->conn >= 0)
        close_conn(m, &m->conns[k->conn]);
    if (!m->settle_ms || settle < m->settle_ms)
        m->settle_ms = settle;
}

/* The connection ended (EOF, an error, or dropped): a rank still running
 * without having said how it ended is lost; one being stopped from outside
 * (it said "signal") was ended by mpirun. */
static void conn_closed(struct zl_monitor *m, struct conn *c)
{
    int r = c->rank;
    if (r >= 0 && m->ranks[r].state == RANK_LIVE) {
        lose(m, r, WHY_CLOSED, now_ms()); /* closes c */
        return;
    }
    if (r >= 0 && m->ranks[r].state == RANK_STOPPING)
        m->ranks[r].state = RANK_DONE;
    close_conn(m, c);
}

__attribute__((format(printf, 3, 4))) static int
drop(struct zl_monitor *m, struct conn *c, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (m->drops < DROPS_SAID) /* stops counting there */
        zl_say("monitor: dropped a connection from %s: %s%s", c->addr, why,
               ++m->drops == DROPS_SAID ? " (further drops are not said)" : "");
    conn_closed(m, c);
    return -1;
}

static bool token_equal(const char *a, const char *b)
{
    size_t n = strlen(b);
    unsigned char diff = strlen(a) != n;
    for (size_t i = 0; i < n && a[i]; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static bool printable_word(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)s[i]))
            return false;
    return n > 0 && n <= HOST_MAX;
}

/* "hello TOKEN RANK HOST PID": accepted once a rank, from a wrapper that
 * knows the token. */
static int hello(struct zl_monitor *m, struct conn *c, char *line)
{
    char *w[5];
    int rank, pid;
    if (split(line, w, 5) != 5 || strcmp(w[0], "hello") != 0)
        return drop(m, c, "its first line is not 'hello TOKEN RANK HOST PID'");
    if (!token_equal(w[1], m->token))
        return drop(m, c, "a wrong token");
    if (!parse_int(w[2], 0, m->nproc - 1, &rank) || !parse_int(w[4], 1, INT_MAX, &pid) ||
        !printable_word(w[3]))
        return drop(m, c, "a malformed hello (a rank from 0 to %d, a host, a pid)",
                    m->nproc - 1);
    struct rank *k = &m->ranks[rank];
    if (k->state == RANK_LOST && k->why == WHY_NEVER)
        return drop(m, c,
                    "a hello for rank %d after --start-timeout (%d s): it is named as "
                    "not connected",
                    rank, m->start_ms / 1000);
    if (k->state != RANK_WAITING)
        return drop(m, c, "a second hello for rank %d", rank);
    *k = (struct rank){.state = RANK_LIVE,
                       .conn = (int)(c - m->conns),
                       .pid = pid,
                       .heard_ms = now_ms()};
    snprintf(k->host, sizeof k->host, "%s", w[3]);
    memcpy(k->addr, c->addr, sizeof k->addr);
    c->rank = rank;
    send_line(c->fd, "ok\n");
    return 0;
}

/* One line from an accepted rank: "beat", "signal N" or "exit N". */
static int rank_line(struct zl_monitor *m, struct conn *c, char *line)
{
    struct rank *k = &m->ranks[c->rank];
    char *w[2];
    int n = split(line, w, 2), v;
    k->heard_ms = now_ms();
    if (n == 1 && strcmp(w[0], "beat") == 0) {
        send_line(c->fd, "beat\n");
        return 0;
    }
    if (n == 2 && strcmp(w[0], "signal") == 0 && parse_int(w[1], 1, 64, &v)) {
        k->state = k->state == RANK_LIVE ? RANK_STOPPING : k->state;
        m->ending = true;
        return 0;
    }
    if (n == 2 && strcmp(w[0], "exit") == 0 && parse_int(w[1], 0, 255, &v)) {
        k->state = RANK_DONE;
        m->ending |= v != 0;
        return 0;
    }
    return drop(m, c, "rank %d sent an unknown message", c->rank);
}

/* Handles every whole line in c->buf; -1 when the connection was dropped. */
static int take_lines(struct zl_monitor *m, struct conn *c)
{
    char *nl;
    while (c->fd >= 0 && (nl = memchr(c->buf, '\n', c->len))) {
        size_t n = (size_t)(nl - c->buf);
        *nl = '\0';
        int rc = memchr(c->buf, '\0', n) ? drop(m, c, "a NUL byte in a line")
                 : c->rank < 0           ? hello(m, c, c->buf)
                                         : rank_line(m, c, c->buf);
        if (rc != 0 || c->fd < 0)
            return -1;
        c->len -= n + 1;
        memmove(c->buf, nl + 1, c->len);
    }
    if (c->len == sizeof c->buf)
        return drop(m, c, "a line of more than %d bytes", ZL_LINE_MAX - 1);
    return 0;
}

static void read_conn(struct zl_monitor *m, struct conn *c)
{
    while (c->fd >= 0) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_closed(m, c);
            return;
        }
        c->len += (size_t)n;
        if (take_lines(m, c) != 0)
            return;
    }
}

/* A free slot; when there is none, the oldest connection that has said no
 * hello is dropped for it (idle connections cannot keep the wrappers out).
 * NULL only when every slot holds a rank's. */
static struct conn *free_slot(struct zl_monitor *m)
{
    struct conn *oldest = NULL;
    for (int i = 0; i < m->nconn; i++) {
        struct conn *c = &m->conns[i];
        if (c->fd < 0)
            return c;
        if (c->rank < 0 && (!oldest || c->opened_ms < oldest->opened_ms))
            oldest = c;
    }
    if (oldest)
        drop(m, oldest,
             "no hello yet, and all %d connections are open (the oldest makes "
             "room for a new one)",
             m->nconn);
    return oldest;
}

static void accept_all(struct zl_monitor *m)
{
    for (;;) {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        int fd =
            accept4(m->fd, (struct sockaddr *)&a, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            zl_say("monitor: accept: %s; accepting again in 1 s", strerror(errno));
            m->accept_ms = now_ms() + 1000; /* EMFILE would wake ppoll at once */
        }
        if (fd < 0)
            return;
        struct conn *c = free_slot(m);
        if (!c) {
            close(fd); /* every slot a rank's: cannot happen (SPARE_CONNS > 0) */
            continue;
        }
        *c = (struct conn){.fd = fd, .rank = -1, .opened_ms = now_ms()};
        inet_ntop(AF_INET, &a.sin_addr, c->addr, sizeof c->addr);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        read_conn(m, c); /* a wrapper's hello is there already, as a rule */
    }
}

/* Waits up to timeout_ms for connections and lines, and handles them: the
 * open connections' lines first, so that none is dropped to make room
 * before what it sent is read. Returns -1 when ppoll fails (errno). */
static int serve(struct zl_monitor *m, int timeout_ms, const sigset_t *unblocked)
{
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    m->pfds[0] =
        (struct pollfd){.fd = now_ms() >= m->accept_ms ? m->fd : -1, .events = POLLIN};
    for (int i = 0; i < m->nconn; i++)
        m->pfds[i + 1] = (struct pollfd){.fd = m->conns[i].fd, .events = POLLIN};
    int r = ppoll(m->pfds, (nfds_t)m->nconn + 1, &ts, unblocked);
    if (r < 0 && errno != EINTR)
        return -1;
    if (r <= 0)
        return 0; /* the timeout, or SIGCHLD (EINTR) */
    for (int i = 0; i < m->nconn; i++)
        if (m->pfds[i + 1].revents && m->conns[i].fd == m->pfds[i + 1].fd)
            read_conn(m, &m->conns[i]);
    if (m->pfds[0].revents)
        accept_all(m);
    return 0;
}

/* Ranks silent past the bound, ranks never connected within the start
 * bound, and connections that said no hello within the hello bound. */
static void find_lost(struct zl_monitor *m, int64_t now)
{
    for (int r = 0; r < m->nproc; r++) {
        struct rank *k = &m->ranks[r];
        if (k->state == RANK_WAITING && now - m->started_ms > m->start_ms)
            lose(m, r, WHY_NEVER, now);
        if ((k->state == RANK_LIVE || k->state == RANK_STOPPING) &&
            now - k->heard_ms > m->heartbeat_ms)
            lose(m, r, WHY_SILENT, now);
    }
    for (int i = 0; i < m->nconn; i++) {
        struct conn *c = &m->conns[i];
        if (c->fd >= 0 && c->rank < 0 && now - c->opened_ms > m->hello_ms)
            drop(m, c, "no hello within %d s", m->hello_ms / 1000);
    }
}

/* ---- naming the lost ranks --------------------------------------------- */

void zl_addf(struct zl_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->n = t->n + (size_t)n < sizeof t->s ? t->n + (size_t)n : sizeof t->s - 1;
}

/* The same host: the same name and address (two hosts may share a name). */
static bool same_host(const struct rank *a, const struct rank *b)
{
    return strcmp(a->host, b->host) == 0 && strcmp(a->addr, b->addr) == 0;
}

/* Rank r belongs to the group of rank first: lost, not named yet, and on the
 * same host (the ranks that never connected are one group). */
static bool same_group(const struct zl_monitor *m, int first, int r)
{
    const struct rank *a = &m->ranks[first], *b = &m->ranks[r];
    return b->state == RANK_LOST && !b->named &&
           (a->why == WHY_NEVER) == (b->why == WHY_NEVER) &&
           (a->why == WHY_NEVER || same_host(a, b));
}

/* "2" or "2, 3" in ranks, their wrappers' pids alike in pids; marks them
 * named; returns their lost_why bits. */
static int add_group(struct zl_monitor *m, int first, struct zl_text *ranks,
                     struct zl_text *pids, int *count)
{
    int why = 0, n = 0;
    for (int r = first; r < m->nproc; r++) {
        if (!same_group(m, first, r))
            continue;
        why |= m->ranks[r].why;
        m->ranks[r].named = true;
        if (n < SHOWN_RANKS) {
            zl_addf(ranks, "%s%d", n ? ", " : "", r);
            zl_addf(pids, "%s%d", n ? ", " : "", m->ranks[r].pid);
        }
        n++;
    }
    if (n > SHOWN_RANKS)
        zl_addf(ranks, " and %d more", n - SHOWN_RANKS);
    *count = n;
    return why;
}

/* The ranks that said hello from k's host. */
static int ranks_on(const struct zl_monitor *m, const struct rank *k)
{
    int n = 0;
    for (int r = 0; r < m->nproc; r++)
        n += m->ranks[r].pid != 0 && same_host(&m->ranks[r], k);
    return n;
}

/* One sentence for the group of rank first. */
static void name_group(struct zl_monitor *m, int first, const char *ending)
{
    const struct rank *k = &m->ranks[first];
    struct zl_text list = {.n = 0}, pids = {.n = 0}, t = {.n = 0};
    int n, why = add_group(m, first, &list, &pids, &n);
    const char *rs = n > 1 ? "ranks" : "rank";
    if (why == WHY_NEVER) {
        zl_say("%s %s did not connect to zero-launch (%s) within %d s of the start (not "
               "started, or their host cannot reach that address: see --net); %s",
               rs, list.s, m->where, m->start_ms / 1000, ending);
        return;
    }
    if (n == ranks_on(m, k))
        zl_addf(&t, "host %s (%s) lost: %s %s stopped answering (", k->host, k->addr, rs,
                list.s);
    else
        zl_addf(&t, "on host %s (%s), %s %s stopped answering (", k->host, k->addr, rs,
                list.s);
    if (why & WHY_CLOSED)
        zl_addf(&t, "%s closed without an exit status%s",
                n > 1 ? "their connections" : "its connection",
                why & WHY_SILENT ? "; " : "");
    if (why & WHY_SILENT)
        zl_addf(&t, "no heartbeat for %d s: the host or its link is down",
                m->heartbeat_ms / 1000);
    zl_say("%s); wrapper %s %s; %s", t.s, n > 1 ? "pids" : "pid", pids.s, ending);
}

/* Every lost rank not named yet, one sentence a host; returns how many. */
static int name_lost(struct zl_monitor *m, const char *ending)
{
    int groups = 0;
    for (int r = 0; r < m->nproc; r++)
        if (m->ranks[r].state == RANK_LOST && !m->ranks[r].named) {
            name_group(m, r, ending);
            groups++;
        }
    m->settle_ms = 0;
    return groups;
}

/* mpirun is told (SIGTERM) only when it cannot know: ranks that are merely
 * silent. When a rank failed or was stopped from outside, or a connection
 * closed (its wrapper is gone, and the wrapper's parent, mpirun or its
 * daemon, saw that), mpirun is ending the job already and waits at most for
 * a lost daemon: a SIGTERM then would add nothing but Open MPI 4's forced exit,
 * which can crash (PMIx_Finalize). Either way SIGKILL follows the grace. */
static void end_mpirun(const struct zl_monitor *m, pid_t child, int *status)
{
    if (end_child(child, !m->ending, ZL_MPIRUN_GRACE_MS, status))
        zl_say("mpirun did not end within %d s%s; killed it (SIGKILL)",
               ZL_MPIRUN_GRACE_MS / 1000,
               m->ending ? " (ending the job, it waits for the lost ranks' daemon)"
                         : " of SIGTERM");
}

int zl_monitor_wait(struct zl_monitor *m, pid_t child, int *status)
{
    struct sigchld_guard g;
    int rc, named = 0;
    bool broken = false; /* the monitor itself failed */
    catch_sigchld(&g);
    m->started_ms = now_ms();
    while ((rc = reaped(child, status)) == 0) {
        /* now first, then what queued up meanwhile: lines that wait because
         * we did not run (stopped, a paused VM) count before silence does */
        int64_t now = now_ms();
        if ((broken = serve(m, 0, &g.unblocked) != 0)) {
            zl_say("monitor: ppoll: %s; ending the job, whose ranks can no longer be "
                   "watched",
                   strerror(errno));
            end_mpirun(m, child, status);
            rc = 1;
            break;
        }
        find_lost(m, now);
        if (m->settle_ms && now >= m->settle_ms) {
            named = name_lost(m, "ending the job");
            end_mpirun(m, child, status);
            rc = 1;
            break;
        }
        serve(m, TICK_MS, &g.unblocked); /* a failure shows in the next serve */
    }
    bool failed = rc == 1 && !(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    if (!named && failed && !broken) {
        serve(m, 0, &g.unblocked); /* the connections that closed as mpirun ended */
        if (m->settle_ms)
            named = name_lost(m, "mpirun has ended the job");
    }
    release_sigchld(&g);
    return rc < 0 ? -1 : named > 0 || broken;
}

/* ---- a rank wrapper's side ---------------------------------------------- */

struct zl_link {
    int fd;
    int heartbeat_ms;
    const char *rank;
    char host[HOST_MAX + 1];
    char where[INET_ADDRSTRLEN + 8];
};

/* ADDR:PORT:TOKEN:SECONDS into the link (where, heartbeat_ms), *addr and
 * token. */
static int parse_value(const char *value, struct zl_link *l, struct sockaddr_in *addr,
                       char *token)
{
    char copy[128], *save = NULL, *f[4];
    int n = 0, port, seconds;
    if (strlen(value) >= sizeof copy)
        return -1;
    strcpy(copy, value);
    for (char *t = strtok_r(copy, ":", &save); t && n < 4; t = strtok_r(NULL, ":", &save))
        f[n++] = t;
    if (n != 4 || strtok_r(NULL, ":", &save) ||
        inet_pton(AF_INET, f[0], &addr->sin_addr) != 1 ||
        !parse_int(f[1], 1, 65535, &port) || strlen(f[2]) != 2 * TOKEN_BYTES ||
        strspn(f[2], "0123456789abcdef") != 2 * TOKEN_BYTES ||
        !parse_int(f[3], 1, 86400, &seconds))
        return -1;
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    strcpy(token, f[2]);
    l->heartbeat_ms = seconds * 1000;
    snprintf(l->where, sizeof l->where, "%s:%d", f[0], port);
    return 0;
}

/* Waits until fd is ready for events or deadline; 1 ready, 0 not, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r >= 0 || errno != EINTR)
            return r > 0 ? 1 : r;
    }
}

/* A connected socket to the top level, within the heartbeat bound; errno
 * says why not. */
static int connect_to(const struct sockaddr_in *addr, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
    socklen_t len = sizeof err;
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 &&
        errno != EINPROGRESS)
        err = errno;
    else if (wait_fd(fd, POLLOUT, now_ms() + timeout_ms) != 1)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends the hello and waits for "ok"; returns NULL or why not. */
static const char *say_hello(struct zl_link *l, const char *token)
{
    char line[ZL_LINE_MAX], reply[8];
    size_t got = 0;
    snprintf(line, sizeof line, "hello %s %s %s %d\n", token, l->rank, l->host,
             (int)getpid());
    send_line(l->fd, line);
    int64_t deadline = now_ms() + l->heartbeat_ms;
    while (got < 3 && wait_fd(l->fd, POLLIN, deadline) == 1) {
        ssize_t n = recv(l->fd, reply + got, 3 - got, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return "it closed the connection (its stderr says why: a wrong token, "
                   "another wrapper of this rank, this rank given up after "
                   "--start-timeout, or too many connections at once)";
        got += n > 0 ? (size_t)n : 0;
    }
    if (got < 3)
        return "no answer to the hello";
    return memcmp(reply, "ok\n", 3) == 0 ? NULL : "an answer that is not 'ok'";
}

/* The host name for the hello: printable ASCII, anything else '?'. */
static void hello_host(char *host, size_t size)
{
    if (gethostname(host, size - 1) != 0 || !host[0])
        snprintf(host, size, "?");
    host[size - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isgraph((unsigned char)*p))
            *p = '?';
}

int zl_link_open(const char *value, const char *rank, struct zl_link **out)
{
    struct zl_link *l = calloc(1, sizeof *l);
    struct sockaddr_in addr = {0};
    char token[2 * TOKEN_BYTES + 1];
    int rank_no;
    if (!l)
        return zl_say("rank %s: out of memory", rank);
    l->rank = rank;
    hello_host(l->host, sizeof l->host);
    if (!parse_int(rank, 0, MAX_RANKS - 1, &rank_no) ||
        parse_value(value, l, &addr, token) != 0) {
        zl_say("rank %s (host %s): %s (%zu bytes, not shown: it holds a token) is not "
               "ADDR:PORT:TOKEN:SECONDS (or OMPI_COMM_WORLD_RANK is not a rank); the "
               "program was not started",
               rank, l->host, ZL_MONITOR_ENV, strlen(value));
        free(l);
        return -1;
    }
    const char *why = NULL;
    if ((l->fd = connect_to(&addr, l->heartbeat_ms)) < 0)
        why = strerror(errno);
    else
        why = say_hello(l, token);
    if (why) {
        zl_say(
            "rank %s (host %s): cannot reach zero-launch at %s: %s; the program was not "
            "started",
            rank, l->host, l->where, why);
        zl_link_close(l, -1);
        return -1;
    }
    *out = l;
    return 0;
}

/* Reads and discards what the top level sent (any bytes mean it is there):
 * 1 something read, 0 nothing, -1 closed or failed. */
static int drain(int fd)
{
    char buf[512];
    int got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            got = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return got;
        return -1;
    }
}

enum link_state { LINK_UP, LINK_CLOSED, LINK_SILENT, LINK_STUCK };

/* One tick of the wrapper's loop: now, then the top level's lines that
 * queued up meanwhile (they count before silence does: this process may
 * have been stopped), a beat when one is due, then up to TICK_MS waiting
 * for more. */
static enum link_state link_tick(struct zl_link *l, int64_t *heard, int64_t *beat,
                                 const sigset_t *unblocked)
{
    int64_t now = now_ms();
    int r = drain(l->fd);
    if (r < 0)
        return LINK_CLOSED;
    if (r > 0)
        *heard = now;
    if (now - *heard > l->heartbeat_ms)
        return LINK_SILENT;
    if (now >= *beat) {
        if (send_line(l->fd, "beat\n") != 0)
            return LINK_STUCK;
        *beat = now + ZL_BEAT_MS;
    }
    int64_t wait = *beat - now < TICK_MS ? *beat - now : TICK_MS;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    struct timespec ts = {0, (long)(wait > 0 ? wait : 0) * 1000000L};
    ppoll(&p, 1, &ts, unblocked); /* lines, the timeout, or SIGCHLD: the next tick */
    return LINK_UP;
}

static enum link_state tell_signal(struct zl_link *l, int sig)
{
    char line[32];
    snprintf(line, sizeof line, "signal %d\n", sig);
    return send_line(l->fd, line) != 0 ? LINK_STUCK : LINK_UP;
}

int zl_link_wait(struct zl_link *l, pid_t child, const volatile sig_atomic_t *forwarded,
                 int *status)
{
    struct sigchld_guard g;
    int64_t heard = now_ms(), beat = heard + ZL_BEAT_MS;
    enum link_state st = LINK_UP;
    bool told = false;
    int rc = 0;
    catch_sigchld(&g);
    while (st == LINK_UP && (rc = reaped(child, status)) == 0) {
        if (*forwarded && !told) { /* mpirun (or a user) is stopping the rank */
            st = tell_signal(l, (int)*forwarded);
            told = true;
        }
        if (st == LINK_UP)
            st = link_tick(l, &heard, &beat, &g.unblocked);
    }
    if (st != LINK_UP) {
        char why[64];
        if (st == LINK_SILENT)
            snprintf(why, sizeof why, "did not answer for %d s", l->heartbeat_ms / 1000);
        else
            snprintf(why, sizeof why, "%s",
                     st == LINK_CLOSED ? "closed the connection"
                                       : "does not read what the rank sends (a line "
                                         "went only in part)");
        zl_say("rank %s (host %s, pid %d): zero-launch at %s %s; stopping the program "
               "(SIGTERM, SIGKILL after %d s) so that it does not run on alone",
               l->rank, l->host, (int)child, l->where, why, ZL_PROGRAM_GRACE_MS / 1000);
        end_child(child, true, ZL_PROGRAM_GRACE_MS, status);
    }
    release_sigchld(&g);
    return st != LINK_UP ? 1 : rc < 0 ? -1 : 0;
}

void zl_link_close(struct zl_link *l, int code)
{
    if (!l)
        return;
    if (l->fd >= 0 && code >= 0) {
        char line[32];
        snprintf(line, sizeof line, "exit %d\n", code & 255);
        send_line(l->fd, line);
        drain(l->fd); /* unread bytes at close would send a reset, not the line */
    }
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
