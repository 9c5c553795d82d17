/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero-launch — a thin, honest wrapper around Open MPI's mpirun.
 *
 *   zero-launch [options] [--] PROGRAM [ARGS...]
 *
 * It picks a rank count and a binding from the hwloc topology (or a hostfile),
 * builds one mpirun command line, and runs it without a shell: every argument
 * reaches the program exactly as given. --dry-run prints that command line,
 * shell-quoted so it can be pasted; --topology prints what hwloc sees.
 *
 * mpirun does not start PROGRAM directly: it starts this binary again in the
 * hidden mode `--rank-wrapper -- PROGRAM ARGS`, which forks the program, ties
 * its life to ours (PR_SET_PDEATHSIG), forwards termination signals and, when
 * the program fails, prints one line naming the rank, host, pid and the exit
 * status or signal. The top level waits for mpirun and never exits 0 when the
 * job failed.
 *
 * If zero-launch itself dies, mpirun gets SIGTERM and ends the job in order.
 *
 * Across hosts it adds what a cluster needs, each as the mpirun flags it
 * stands for: the remote launch agent (--launch-agent: plm_rsh_agent; ssh when
 * not given), the network for MPI and daemon traffic (--net: the TCP btl and
 * oob restricted to it, shared memory within a host, the ob1 pml so that
 * nothing bypasses the btls), rank placement by host
 * (--ranks-per-host: ppr:N:node) and any MCA parameter (--mca).
 *
 * A run across hosts (a hostfile of more than one host, or --launch-agent)
 * is also watched by zero-launch itself (monitor.h): every rank wrapper
 * connects back to a TCP socket of the top level (on its --net address; the
 * address, port and a random token reach the ranks as ZRT_LAUNCH_MONITOR,
 * in mpirun's environment and `-x ZRT_LAUNCH_MONITOR`), and the two hear from
 * each other every second. Ranks whose connections close without an exit
 * status, that fall silent for --heartbeat-timeout seconds (5), or that never
 * connect within --start-timeout seconds (60) are named, one sentence a host
 * ("zero-launch: host H (ADDR) lost: ranks 2, 3 stopped answering (...)"),
 * and zero-launch ends mpirun itself (SIGTERM, SIGKILL 3 s later) instead of
 * leaving it to wait for TCP to give up on a lost host (tcp_retries2: about
 * 15 minutes); a wrapper that stops hearing from the top level stops its
 * program. Such runs also get mpirun's daemons' TCP keepalive (oob_tcp_
 * keepalive_time 2, _intvl 2, _probes 3) unless --mca gives those keys. A run
 * on one host is unchanged: no monitor, the same command line.
 *
 * --max-restarts N runs the job again when it fails by itself (not when a
 * signal from outside stopped it), up to N times: each attempt is the run
 * above, its ranks given ZRT_RESTART (the attempt, 0 first: the runtime's
 * zrt_resume then loads the latest checkpoint) and ZRT_ELASTIC_WORLD (the
 * first attempt's rank count: the runtime scales gradient accumulation to
 * keep the global batch). Hosts whose ranks the monitor found lost are
 * dropped (zl_monitor_lost_ranks; a rank is tied to a hostfile line by its
 * connection's address, its hostname, or else its placement) and the next
 * attempt runs on a temporary hostfile of the lines left, its rank count
 * recomputed; fewer than --min-hosts hosts left, or N restarts made, and it
 * gives up with the failed attempt's status. Without the option nothing of
 * this happens, and stale ZRT_RESTART / ZRT_ELASTIC_WORLD are removed from
 * the environment mpirun passes on.
 *
 * Invariants: no shell anywhere (fork + execvp); no option is added implicitly
 * that changes who may run the job (--allow-run-as-root only when asked for);
 * the only mutable globals are the two that signal forwarding needs (the
 * monitor's state is in its own struct).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hwloc.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

#ifndef ZRT_VERSION_STRING
#define ZRT_VERSION_STRING "unknown"
#endif

enum bind { BIND_DEFAULT, BIND_NONE, BIND_CORE, BIND_NUMA, BIND_SOCKET };
static const char *const bind_names[] = {"default", "none", "core", "numa", "socket"};

struct options {
    int nproc;            /* 0: choose */
    const char *hostfile; /* NULL: this host only */
    enum bind bind;
    char *config;         /* absolute path, owned */
    const char *nvme_arg; /* --nvme-path as given (the last one), or NULL */
    char *nvme_path;      /* its absolute path, owned (resolve_nvme) */
    char **envs;          /* K=V strings from argv, not owned; array owned */
    int nenv;
    char *agent;      /* --launch-agent, absolute path, owned */
    const char *net;  /* --net IF|CIDR[,...] as given (checked), or NULL */
    const char **mca; /* --mca KEY VALUE pairs from argv: mca[2i], mca[2i+1] */
    int nmca;
    int ranks_per_host; /* 0: not given */
    int heartbeat_s;    /* --heartbeat-timeout: 0 not given (ZL_HEARTBEAT_S) */
    int start_s;        /* --start-timeout: 0 not given (ZL_START_S) */
    int max_restarts;   /* --max-restarts: 0, one attempt */
    int min_hosts;      /* --min-hosts: 0 not given (1) */
    bool allow_root, dry_run, topology;
    char **prog; /* PROGRAM ARGS..., NULL-terminated, points into argv */
};

struct topo {
    int packages, numa, cores, pus;
};

struct hostfile {
    int slots, hosts;
    int min_slots; /* the fewest slots any one host has */
};

/* What will be run: the choices made from the options, topology and hostfile. */
struct plan {
    int nproc, per_host, cores_per_rank;
    enum bind bind;
    bool oversubscribe;
    bool by_host; /* --ranks-per-host: map per_host ranks to each host (ppr) */
    bool across;  /* across hosts: a hostfile of several, or --launch-agent */
};

/* What an attempt of an elastic job (--max-restarts) tells its ranks. */
struct attempt {
    int index; /* ZRT_RESTART: 0 for the first */
    int world; /* ZRT_ELASTIC_WORLD: the first attempt's rank count */
};

#define RESTART_ENV       "ZRT_RESTART"
#define ELASTIC_WORLD_ENV "ZRT_ELASTIC_WORLD"

/* A growing argv; every string is owned. */
struct argv_buf {
    char **v;
    int n, cap;
};

/* Signal forwarding: a handler can reach only globals, so these two are the
 * only mutable global state. forward_pid is the child that signals go to (0
 * until it exists; the signals are blocked until then); forwarded_sig is the
 * last signal forwarded, so that the report can say the job was stopped from
 * outside rather than failing by itself. */
static volatile pid_t forward_pid;
static volatile sig_atomic_t forwarded_sig;

/* ---- small parsers ---------------------------------------------------- */

/* s is a decimal integer in [lo, INT_MAX - 1]. */
static bool parse_at_least(const char *s, long lo, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v >= INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_positive(const char *s, int *out)
{
    return parse_at_least(s, 1, out);
}

/* [A-Za-z_][A-Za-z0-9_]* (the C locale: we never call setlocale) */
static bool is_identifier(const char *s, size_t len)
{
    if (len == 0 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static int parse_bind(const char *s, enum bind *out)
{
    for (int b = BIND_NONE; b <= BIND_SOCKET; b++)
        if (strcmp(s, bind_names[b]) == 0) {
            *out = (enum bind)b;
            return 0;
        }
    return zl_say("--bind: '%s' is not one of none, core, numa, socket", s);
}

/* Resolves PATH to an absolute path that must exist and be a directory
 * (want_dir) or a readable non-directory; *out is replaced only on success. */
static int absolute_path(const char *opt, const char *path, bool want_dir, char **out)
{
    struct stat st;
    char *abs = realpath(path, NULL);
    if (!abs || stat(abs, &st) != 0)
        return free(abs), zl_say("%s: '%s': %s", opt, path, strerror(errno));
    if (want_dir && !S_ISDIR(st.st_mode))
        return free(abs), zl_say("%s: '%s' is not a directory", opt, path);
    if (!want_dir && (S_ISDIR(st.st_mode) || access(abs, R_OK) != 0))
        return free(abs), zl_say("%s: '%s' is not a readable file", opt, path);
    free(*out); /* the option given again replaces the earlier value */
    *out = abs;
    return 0;
}

/* Creates dir and its missing parents, each with mode 0700 (mkdir -p). */
static int make_dirs(const char *opt, const char *dir)
{
    char *path = strdup(dir);
    if (!path)
        return zl_say("out of memory");
    int rc = 0;
    for (char *p = path + 1; rc == 0; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char end = *p;
        *p = '\0';
        struct stat st;
        if (stat(path, &st) != 0 && mkdir(path, 0700) != 0 && errno != EEXIST)
            rc = zl_say("%s: cannot create '%s': %s", opt, path, strerror(errno));
        else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = zl_say("%s: '%s' is not a directory", opt, path);
        *p = end;
        if (end == '\0')
            break;
    }
    free(path);
    return rc;
}

/* --nvme-path DIR: a directory that exists, or one that is created (mode
 * 0700 with its missing parents) before the job starts; with --dry-run or
 * --topology nothing is created and the path is only made absolute. */
static int resolve_nvme(struct options *o)
{
    const char *opt = "--nvme-path", *dir = o->nvme_arg;
    struct stat st;
    if (*dir == '\0')
        return zl_say("%s: the directory is empty", opt);
    if (stat(dir, &st) == 0 || errno != ENOENT)
        return absolute_path(opt, dir, true, &o->nvme_path);
    if (!o->dry_run && !o->topology)
        return make_dirs(opt, dir) ? -1 : absolute_path(opt, dir, true, &o->nvme_path);
    char cwd[PATH_MAX] = "";
    if (dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        return zl_say("%s: '%s': cannot read the current directory: %s", opt, dir,
                      strerror(errno));
    if (asprintf(&o->nvme_path, "%s%s%s", cwd, cwd[0] ? "/" : "", dir) < 0)
        return o->nvme_path = NULL, zl_say("out of memory");
    fprintf(stderr,
            "zero-launch: %s: '%s' does not exist; the job would create it "
            "(mode 0700)\n",
            opt, dir);
    return 0;
}

/* ---- hostfile --------------------------------------------------------- */

enum { MAX_HOSTS = 4096, HOST_NAME_MAX_LEN = 255, SHOWN = 80 };

/* The distinct hosts of a hostfile, the line each was first named on and
 * its slots (a host named on several lines without slots= has one a line). */
struct host_list {
    char *name[MAX_HOSTS];
    int line[MAX_HOSTS];
    int slots[MAX_HOSTS];
    int n;
};

/* One line as read: the host and the counts it gives (0: not given). */
struct host_line {
    char *host; /* into the line; NULL for a blank or comment line */
    int slots, max_slots;
};

static int find_host(const struct host_list *h, const char *name)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->name[i], name) == 0)
            return i;
    return -1;
}

/* Drops the blanks around '=' so that "slots = 2" reads as "slots=2", as
 * Open MPI's hostfile lexer reads it. */
static void join_equals(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (*in == ' ' || *in == '\t') {
            char *next = in + strspn(in, " \t");
            if (*next == '=' || (out > s && out[-1] == '='))
                continue;
        }
        *out++ = *in;
    }
    *out = '\0';
}

/* The keys Open MPI 4's hostfile lexer (orte/util/hostfile) gives a host:
 * its slot count, the most slots it may be oversubscribed to, the user. */
static const char *const slot_keys[] = {"slots", "cpu", "count", NULL};
static const char *const max_keys[] = {
    "max_slots", "max-slots", "slots_max", "slots-max", "max_cpu",   "max-cpu", "cpu_max",
    "cpu-max",   "max_count", "max-count", "count_max", "count-max", NULL};
static const char *const user_keys[] = {"username", "user_name", "user-name", NULL};

static bool key_in(const char *key, size_t len, const char *const *names)
{
    for (; *names; names++)
        if (strlen(*names) == len && strncmp(key, *names, len) == 0)
            return true;
    return false;
}

/* s[0..len) is a letter or digit, then only those and `more`. */
static bool is_word(const char *s, size_t len, const char *more)
{
    size_t n = 0;
    while (n < len && s[n] && (isalnum((unsigned char)s[n]) || strchr(more, s[n])))
        n++;
    return len > 0 && n == len && isalnum((unsigned char)s[0]);
}

/* A host as Open MPI's lexer takes one: [user@]name, the name of letters,
 * digits and . _ - : (host names, IPv4 and IPv6 addresses). */
static bool is_host(const char *s)
{
    const char *at = strchr(s, '@'), *name = at ? at + 1 : s;
    size_t len = strlen(name);
    if (at && !is_word(s, (size_t)(at - s), "_-"))
        return false;
    return len <= HOST_NAME_MAX_LEN &&
           (is_word(name, len, "._-:") || /* "::1": IPv6 may start with a colon */
            (len > 0 && strspn(name, "0123456789abcdefABCDEF:.") == len &&
             strchr(name, ':')));
}

/* The line for a message: at most SHOWN bytes, control bytes as '?'. */
static const char *shown_line(const char *line, char *buf, size_t size)
{
    size_t len = strcspn(line, "\r\n"), n = 0;
    for (size_t i = 0; i < len && i < SHOWN && n + 1 < size; i++)
        buf[n++] = iscntrl((unsigned char)line[i]) && line[i] != '\t' ? '?' : line[i];
    buf[n] = '\0';
    if (len > SHOWN)
        snprintf(buf + n, size - n, "... (%zu bytes)", len);
    return buf;
}

/* "FILE:LINE: 'TEXT' is not a hostfile line (...): why"; returns -1. */
__attribute__((format(printf, 3, 4))) static int
bad_line(const char *where, const char *text, const char *fmt, ...)
{
    char why[512], shown[SHOWN + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return zl_say("%s: '%s' is not a hostfile line ('host [slots=N] [max_slots=N]', "
                  "'#' comments): %s",
                  where, shown_line(text, shown, sizeof shown), why);
}

/* One key=value token of a host line into *out. */
static int parse_key(char *tok, const char *where, const char *text,
                     struct host_line *out)
{
    char *eq = strchr(tok, '=');
    size_t klen = eq ? (size_t)(eq - tok) : strlen(tok);
    int *count = key_in(tok, klen, slot_keys)  ? &out->slots
                 : key_in(tok, klen, max_keys) ? &out->max_slots
                                               : NULL;
    const char *more = strlen(tok) > SHOWN ? "..." : "";
    if (!eq || (!count && !key_in(tok, klen, user_keys)))
        return bad_line(where, text,
                        "'%.*s%s' is not slots=N, max_slots=N or "
                        "username=NAME",
                        SHOWN, tok, more);
    if (!count)
        return is_word(eq + 1, strlen(eq + 1), "._-")
                   ? 0
                   : bad_line(where, text, "'%.*s%s' does not name a user", SHOWN, tok,
                              more);
    if (*count)
        return bad_line(where, text, "'%.*s%s' gives %s a second time", SHOWN, tok, more,
                        count == &out->slots ? "the slot count" : "max_slots");
    if (!parse_positive(eq + 1, count))
        return zl_say("%s: '%.*s%s': the slot count must be a positive integer", where,
                      SHOWN, tok, more);
    return 0;
}

/* Parses one line (any length): "host [slots=K] [max_slots=K] [username=U]",
 * '#' to the end of the line a comment. A blank line gives out->host NULL. */
static int parse_host_line(char *line, const char *where, struct host_line *out)
{
    char *text = strdup(line), *save, *tok;
    if (!text)
        return zl_say("out of memory");
    *out = (struct host_line){NULL, 0, 0};
    line[strcspn(line, "#")] = '\0';
    join_equals(line);
    int rc = 0;
    out->host = strtok_r(line, " \t\r\n\f\v", &save);
    if (out->host && !is_host(out->host))
        rc = bad_line(where, text, "'%.*s%s' is not a host name or address%s", SHOWN,
                      out->host, strlen(out->host) > SHOWN ? "..." : "",
                      strlen(out->host) > HOST_NAME_MAX_LEN ? " (over 255 bytes)" : "");
    while (!rc && out->host && (tok = strtok_r(NULL, " \t\r\n\f\v", &save)))
        rc = parse_key(tok, where, text, out);
    if (!rc && out->max_slots && out->slots > out->max_slots)
        rc = bad_line(where, text, "max_slots=%d is below slots=%d", out->max_slots,
                      out->slots);
    free(text);
    return rc;
}

/* Adds one parsed line to the totals, refusing what mpirun would refuse: a
 * slot count for a host named before. */
static int add_host(struct host_list *h, struct hostfile *hf, const char *where,
                    const struct host_line *l, int lineno)
{
    int i = find_host(h, l->host);
    if (i >= 0 && l->slots > 0)
        return zl_say("%s: host '%s' is already named on line %d; mpirun refuses a slot "
                      "count for it here (name it once, with slots=N)",
                      where, l->host, h->line[i]);
    if (i < 0 && h->n == MAX_HOSTS)
        return zl_say("%s: more than %d hosts", where, MAX_HOSTS);
    int add = l->slots > 0 ? l->slots : 1;
    if (hf->slots > INT_MAX - add)
        return zl_say("%s: the slots add up to more than %d", where, INT_MAX);
    if (i < 0) {
        if (!(h->name[h->n] = strdup(l->host)))
            return zl_say("out of memory");
        h->line[h->n] = lineno;
        h->slots[h->n] = 0;
        i = h->n++;
    }
    h->slots[i] += add; /* at most hf->slots: no overflow */
    hf->slots += add;
    return 0;
}

/* Every line, whatever its length (getline): a line is never split. */
static int read_hostfile(FILE *f, const char *path, struct host_list *h,
                         struct hostfile *hf)
{
    char *line = NULL, where[PATH_MAX + 32];
    size_t cap = 0;
    int lineno = 0, rc = 0;
    ssize_t len;
    struct host_line l;
    errno = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        snprintf(where, sizeof where, "%s:%d", path, ++lineno);
        rc = memchr(line, '\0', (size_t)len)
                 ? bad_line(where, line, "it holds a NUL byte")
                 : parse_host_line(line, where, &l);
        if (rc == 0 && l.host)
            rc = add_host(h, hf, where, &l, lineno);
    }
    int err = errno;
    free(line);
    if (rc != 0)
        return -1;
    if (ferror(f) || !feof(f)) /* a read error, or getline out of memory */
        return zl_say("--hostfile: '%s': cannot read line %d: %s", path, lineno + 1,
                      strerror(err ? err : EIO));
    return h->n ? 0 : zl_say("--hostfile: '%s' names no hosts", path);
}

/* Checks a hostfile and counts its slots and distinct hosts. */
static int load_hostfile(const char *path, struct hostfile *hf)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return zl_say("--hostfile: '%s': %s", path, strerror(errno));
    struct host_list *h = calloc(1, sizeof *h);
    *hf = (struct hostfile){0, 0, 0};
    int rc = h ? read_hostfile(f, path, h, hf) : zl_say("out of memory");
    fclose(f);
    if (h) {
        hf->hosts = h->n;
        hf->min_slots = h->n ? h->slots[0] : 0;
        for (int i = 0; i < h->n; i++) {
            if (h->slots[i] < hf->min_slots)
                hf->min_slots = h->slots[i];
            free(h->name[i]);
        }
    }
    free(h);
    return rc;
}

/* ---- topology --------------------------------------------------------- */

static int count_type(hwloc_topology_t t, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(t, type);
    return n > 0 ? n : 0;
}

static int load_topology(hwloc_topology_t *t, bool with_io)
{
    if (hwloc_topology_init(t) != 0)
        return zl_say("hwloc: cannot initialise the topology");
    if (with_io)
        hwloc_topology_set_io_types_filter(*t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(*t) != 0) {
        hwloc_topology_destroy(*t);
        return zl_say("hwloc: cannot load the topology");
    }
    return 0;
}

static struct topo topo_counts(hwloc_topology_t t)
{
    struct topo tp = {
        .packages = count_type(t, HWLOC_OBJ_PACKAGE),
        .numa = count_type(t, HWLOC_OBJ_NUMANODE),
        .cores = count_type(t, HWLOC_OBJ_CORE),
        .pus = count_type(t, HWLOC_OBJ_PU),
    };
    if (tp.pus < 1)
        tp.pus = 1;
    if (tp.cores < 1) /* some virtual machines report PUs only */
        tp.cores = tp.pus;
    if (tp.numa < 1)
        tp.numa = 1;
    return tp;
}

/* Prints the names of the OS devices of the given two types, or "none". */
static void print_osdevs(hwloc_topology_t t, const char *label, hwloc_obj_osdev_type_t a,
                         hwloc_obj_osdev_type_t b)
{
    int n = 0;
    printf("%-11s", label); /* the names follow after one space */
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(t, o));) {
        hwloc_obj_osdev_type_t type = o->attr->osdev.type;
        if (type == a || type == b)
            printf("%s%s", n++ ? ", " : " ", o->name ? o->name : "(unnamed)");
    }
    printf("%s\n", n ? "" : " none");
}

/* ---- across hosts ---------------------------------------------------- */

/* The first executable regular file named name in PATH's directories (an
 * empty entry is the current directory), as execvp finds it; NULL if none.
 * The result is malloc'd. */
static char *search_path(const char *name)
{
    const char *dir = getenv("PATH");
    while (dir) {
        size_t len = strcspn(dir, ":");
        char *cand = NULL;
        struct stat st;
        if (asprintf(&cand, "%.*s/%s", (int)len, len ? dir : ".", name) < 0)
            return NULL;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        dir = dir[len] ? dir + len + 1 : NULL;
    }
    return NULL;
}

/* --launch-agent PATH: an executable file, by path or, for a name without
 * '/', found in PATH. *out becomes its absolute path (symbolic links kept: a
 * multi-call binary reads its name). */
static int resolve_agent(const char *arg, char **out)
{
    const char *opt = "--launch-agent";
    char cwd[PATH_MAX] = "", *found = NULL, *abs = NULL;
    struct stat st;
    if (*arg == '\0')
        return zl_say("%s: the path is empty", opt);
    if (!strchr(arg, '/') && !(found = search_path(arg))) {
        const char *path = getenv("PATH");
        return zl_say("%s: no executable '%s' in PATH (%s)%s%s", opt, arg,
                      path ? path : "unset",
                      access(arg, F_OK) == 0 ? "; for the file here, give ./" : "",
                      access(arg, F_OK) == 0 ? arg : "");
    }
    if (found)
        arg = found;
    int rc = 0;
    if (arg[0] != '/' && !getcwd(cwd, sizeof cwd))
        rc = zl_say("%s: '%s': cannot read the current directory: %s", opt, arg,
                    strerror(errno));
    else if (asprintf(&abs, "%s%s%s", cwd, cwd[0] ? "/" : "",
                      strncmp(arg, "./", 2) == 0 && cwd[0] ? arg + 2 : arg) < 0)
        rc = zl_say("out of memory"), abs = NULL;
    else if (stat(abs, &st) != 0)
        rc = zl_say("%s: '%s': %s", opt, abs, strerror(errno));
    else if (!S_ISREG(st.st_mode) || access(abs, X_OK) != 0)
        rc = zl_say("%s: '%s' is not an executable file", opt, abs);
    free(found);
    if (rc != 0) {
        free(abs);
        return rc;
    }
    free(*out); /* the option given again replaces the earlier value */
    *out = abs;
    return 0;
}

enum { IFNAME_MAX = IF_NAMESIZE - 1 };

/* One item of --net: an IPv4 network "a.b.c.d/N" (*prefix 0 to 32, *net its
 * address) or an interface name (*prefix -1). */
static int parse_net_item(const char *item, struct in_addr *net, int *prefix)
{
    const char *slash = strchr(item, '/');
    char addr[INET_ADDRSTRLEN];
    size_t len = slash ? (size_t)(slash - item) : strlen(item);
    *prefix = -1;
    if (slash) {
        int bits = -1;
        if (len < sizeof addr) {
            memcpy(addr, item, len);
            addr[len] = '\0';
        }
        if (len >= sizeof addr || inet_pton(AF_INET, addr, net) != 1 || !slash[1] ||
            strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
            strlen(slash + 1) > 2 || (bits = atoi(slash + 1)) > 32)
            return zl_say("--net: '%s' is not an IPv4 network a.b.c.d/N (N from 0 to 32) "
                          "or an interface name",
                          item);
        *prefix = bits;
        return 0;
    }
    if (inet_pton(AF_INET, item, net) == 1)
        return zl_say("--net: '%s' is an address; give its network, a.b.c.d/N (for "
                      "example %s/24), or an interface name",
                      item, item);
    if (len > IFNAME_MAX || !is_word(item, len, "._-:"))
        return zl_say("--net: '%s' is not an interface name (at most %d letters, digits, "
                      "'.', '_', '-' or ':') or an IPv4 network a.b.c.d/N",
                      item, IFNAME_MAX);
    return 0;
}

/* The IPv4 address of an interface entry, or NULL. */
static const struct in_addr *if_ipv4(const struct ifaddrs *i)
{
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
        return NULL;
    return &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr;
}

/* The interface entry i is named item (prefix < 0), or has an IPv4 address
 * in net/prefix. */
static bool if_matches(const struct ifaddrs *i, const char *item, struct in_addr net,
                       int prefix)
{
    uint32_t mask = prefix <= 0 ? 0 : htonl(~(uint32_t)0 << (32 - prefix));
    const struct in_addr *a = if_ipv4(i);
    if (prefix < 0)
        return strcmp(i->ifa_name, item) == 0;
    return a && ((a->s_addr ^ net.s_addr) & mask) == 0;
}

/* An interface of this host is named item (prefix < 0), or has an IPv4
 * address in net/prefix. */
static bool net_here(const struct ifaddrs *ifs, const char *item, struct in_addr net,
                     int prefix)
{
    for (const struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (if_matches(i, item, net, prefix))
            return true;
    return false;
}

static bool is_loopback(struct in_addr a)
{
    return (ntohl(a.s_addr) >> 24) == 127;
}

/* The first IPv4 address of this host on --net (its items in order), for
 * the monitor, a loopback one (127/8) only when nothing else is on it (the
 * other hosts cannot reach that: --net 0.0.0.0/0 matches lo too); false when
 * there is none. */
static bool net_address(const char *net, struct in_addr *out)
{
    struct ifaddrs *ifs = NULL;
    char *list = strdup(net), *save = NULL;
    bool found = false, have = false; /* found: one not loopback; have: *out set */
    if (!list || getifaddrs(&ifs) != 0) {
        free(list);
        return false;
    }
    for (char *item = strtok_r(list, ",", &save); item && !found;
         item = strtok_r(NULL, ",", &save)) {
        struct in_addr addr = {0};
        int prefix;
        if (parse_net_item(item, &addr, &prefix) != 0) /* checked before: no */
            continue;
        for (const struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
            const struct in_addr *a = if_ipv4(i);
            if (!a || !(i->ifa_flags & IFF_UP) || !if_matches(i, item, addr, prefix) ||
                (have && is_loopback(*a)))
                continue;
            *out = *a;
            have = true;
            found = !is_loopback(*a);
        }
    }
    free(list);
    freeifaddrs(ifs);
    return have;
}

/* a is an address of an interface of this host that is up. */
static bool is_local(struct in_addr a)
{
    struct ifaddrs *ifs = NULL;
    bool found = false;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (const struct ifaddrs *i = ifs; i && !found; i = i->ifa_next)
        found = if_ipv4(i) && (i->ifa_flags & IFF_UP) && if_ipv4(i)->s_addr == a.s_addr;
    freeifaddrs(ifs);
    return found;
}

/* Without --net, the address the ranks reach the monitor at: what this
 * host's name resolves to, else its first non-loopback IPv4 address, else
 * 127.0.0.1. */
static struct in_addr default_address(void)
{
    struct in_addr out = {htonl(INADDR_LOOPBACK)};
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0 &&
        getaddrinfo(host, NULL, &hints, &res) == 0) {
        for (const struct addrinfo *r = res; r; r = r->ai_next) {
            struct in_addr a =
                ((const struct sockaddr_in *)(const void *)r->ai_addr)->sin_addr;
            if (!is_loopback(a)) {
                freeaddrinfo(res);
                return a;
            }
        }
        freeaddrinfo(res);
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return out;
    for (const struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (if_ipv4(i) && (i->ifa_flags & IFF_UP) && !is_loopback(*if_ipv4(i))) {
            out = *if_ipv4(i);
            break;
        }
    freeifaddrs(ifs);
    return out;
}

/* --net IF|CIDR[,...]: every item well formed. Hosts may differ, so an item
 * that nothing here matches is only said; but mpirun runs here, and Open MPI
 * ignores an oob_tcp_if_include that matches nothing (a warning), its daemons
 * then taking any network: a run where no item matches is refused. */
static int check_net(const struct options *o)
{
    const char *net = o->net;
    size_t len = strlen(net);
    if (len == 0 || net[0] == ',' || net[len - 1] == ',' || strstr(net, ",,"))
        return zl_say("--net: '%s' has an empty item (IF|CIDR[,...])", net);
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return zl_say("--net: cannot list this host's interfaces: %s", strerror(errno));
    char *list = strdup(net), *save = NULL, host[256] = "?";
    gethostname(host, sizeof host - 1);
    bool several = strchr(net, ',') != NULL; /* one item: said once, below */
    int rc = list ? 0 : zl_say("out of memory"), found = 0;
    for (char *item = list ? strtok_r(list, ",", &save) : NULL; rc == 0 && item;
         item = strtok_r(NULL, ",", &save)) {
        struct in_addr addr = {0};
        int prefix;
        rc = parse_net_item(item, &addr, &prefix);
        if (rc == 0 && net_here(ifs, item, addr, prefix))
            found++;
        else if (rc == 0 && several)
            fprintf(stderr,
                    "zero-launch: --net: no interface of this host (%s) %s '%s'\n", host,
                    prefix < 0 ? "is named" : "has an address in", item);
    }
    free(list);
    freeifaddrs(ifs);
    if (rc == 0 && found == 0 && !o->dry_run)
        rc = zl_say(
            "--net '%s': no interface of this host (%s) matches it, and mpirun "
            "runs here (Open MPI would ignore it for its daemons); run zero-launch "
            "on a host of that network",
            net, host);
    else if (rc == 0 && found == 0)
        fprintf(stderr,
                "zero-launch: --net '%s': no interface of this host (%s) matches "
                "it; a run here would be refused\n",
                net, host);
    return rc;
}

/* ---- the plan --------------------------------------------------------- */

static enum bind default_bind(const struct topo *tp, int per_host)
{
    if (tp->numa > 1 && per_host <= tp->numa)
        return BIND_NUMA;
    return per_host <= tp->cores ? BIND_CORE : BIND_NONE;
}

/* --ranks-per-host N: the rank count is hosts x N, the hosts the hostfile's
 * (or this one). Without a hostfile mpirun may find hosts of its own (a Slurm
 * allocation), so a given -n need only be a multiple of N. */
static int check_ranks_per_host(const struct options *o, const struct hostfile *hf)
{
    int n = o->ranks_per_host;
    if (n == 0)
        return 0;
    if (!o->hostfile)
        return o->nproc % n == 0
                   ? 0
                   : zl_say("-n %d disagrees with --ranks-per-host %d: without "
                            "--hostfile, -n must be the hosts times %d",
                            o->nproc, n, n);
    if (hf->hosts > INT_MAX / n)
        return zl_say("--ranks-per-host %d on the %d hosts of '%s': more than %d ranks",
                      n, hf->hosts, o->hostfile, INT_MAX);
    if (o->nproc && o->nproc != hf->hosts * n)
        return zl_say(
            "-n %d disagrees with --ranks-per-host %d: '%s' names %d host%s, so "
            "%d ranks; give one of them",
            o->nproc, n, o->hostfile, hf->hosts, hf->hosts > 1 ? "s" : "", hf->hosts * n);
    return 0;
}

static struct plan make_plan(const struct options *o, const struct topo *tp,
                             const struct hostfile *hf)
{
    struct plan p = {.nproc = o->nproc, .bind = o->bind};
    if (o->ranks_per_host) { /* checked by check_ranks_per_host */
        p.by_host = true;
        p.per_host = o->ranks_per_host;
        if (p.nproc == 0)
            p.nproc = (o->hostfile ? hf->hosts : 1) * p.per_host;
        p.oversubscribe = p.per_host > (o->hostfile ? hf->min_slots : tp->cores);
    } else {
        if (p.nproc == 0)
            p.nproc = o->hostfile ? hf->slots : tp->numa > 1 ? tp->numa : 2;
        p.per_host =
            o->hostfile ? (p.nproc - 1) / hf->hosts + 1 : p.nproc; /* rounded up */
        p.oversubscribe = p.nproc > (o->hostfile ? hf->slots : tp->cores);
    }
    if (p.bind == BIND_DEFAULT)
        p.bind = default_bind(tp, p.per_host);
    p.cores_per_rank = tp->cores / p.per_host > 1 ? tp->cores / p.per_host : 1;
    p.across = o->agent || (o->hostfile && hf->hosts > 1);
    return p;
}

/* ---- the mpirun command line ------------------------------------------ */

static void push(struct argv_buf *a, char *s) /* takes ownership of s */
{
    if (!s) {
        perror("zero-launch");
        exit(1);
    }
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = realloc(a->v, (size_t)a->cap * sizeof *a->v);
        if (!a->v) {
            perror("zero-launch");
            exit(1);
        }
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void push_str(struct argv_buf *a, const char *s)
{
    push(a, strdup(s));
}

static void push_pair(struct argv_buf *a, const char *flag, const char *value)
{
    push_str(a, flag);
    push_str(a, value);
}

__attribute__((format(printf, 2, 3))) static void pushf(struct argv_buf *a,
                                                        const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    push(a, s);
}

static void argv_free(struct argv_buf *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
}

/* --map-by BY[:PE=pe] (pe 0: none); with --ranks-per-host N, ppr:N:node in
 * place of BY, and nothing when there is neither (BY NULL, pe 0). */
static void push_map(struct argv_buf *a, const struct plan *p, const char *by, int pe)
{
    if (!p->by_host && !by)
        return;
    push_str(a, "--map-by");
    if (p->by_host && pe)
        pushf(a, "ppr:%d:node:PE=%d", p->per_host, pe);
    else if (p->by_host)
        pushf(a, "ppr:%d:node", p->per_host);
    else if (pe)
        pushf(a, "%s:PE=%d", by, pe);
    else if (by) /* always, here: the test spares GCC's -Wnonnull a false alarm */
        push_str(a, by);
}

static void push_binding(struct argv_buf *a, const struct plan *p)
{
    const char *name = bind_names[p->bind];
    switch (p->bind) {
    case BIND_CORE:
        if (p->oversubscribe) { /* mpirun cannot bind more ranks than cores to cores */
            zl_say("%d ranks%s oversubscribe the cores; binding to cores is off "
                   "(--bind-to none)",
                   p->by_host ? p->per_host : p->nproc, p->by_host ? " per host" : "");
            push_map(a, p, NULL, 0);
            push_pair(a, "--bind-to", "none");
            return;
        }
        push_map(a, p, "slot", p->cores_per_rank);
        push_pair(a, "--bind-to", "core");
        return;
    case BIND_NUMA:
    case BIND_SOCKET:
        push_map(a, p, name, 0);
        if (!p->oversubscribe) {
            push_pair(a, "--bind-to", name);
            return;
        }
        /* mpirun refuses to bind more ranks than cpus to one domain without this */
        zl_say("%d ranks%s oversubscribe the cores; binding to %s with overload-allowed",
               p->by_host ? p->per_host : p->nproc, p->by_host ? " per host" : "", name);
        push_str(a, "--bind-to");
        pushf(a, "%s:overload-allowed", name);
        return;
    default:
        push_map(a, p, NULL, 0);
        push_pair(a, "--bind-to", "none");
    }
}

/* The value --mca gave key, or NULL. */
static const char *mca_given(const struct options *o, const char *key)
{
    for (int i = 0; i < o->nmca; i++)
        if (strcmp(o->mca[2 * i], key) == 0)
            return o->mca[2 * i + 1];
    return NULL;
}

/* --mca KEY VALUE for --launch-agent, for --net (MPI over the btls, so that
 * no UCX or libfabric path bypasses them: shared memory within a host, TCP
 * restricted to the network between hosts, and the daemons' TCP too), for a
 * run across hosts (the daemons' connections probed when idle: 2 s, then
 * every 2 s, given up after 3 unanswered probes), then every --mca as given.
 * A --mca of a key one of those sets replaces that value in its place, and
 * says so. */
static void push_mca(struct argv_buf *a, const struct options *o, bool across)
{
    const char *implied[][3] = {
        {"plm_rsh_agent", o->agent, "--launch-agent"},
        {"pml", o->net ? "ob1" : NULL, "--net"},
        {"btl", o->net ? "self,vader,tcp" : NULL, "--net"},
        {"btl_tcp_if_include", o->net, "--net"},
        {"oob_tcp_if_include", o->net, "--net"},
        {"oob_tcp_keepalive_time", across ? "2" : NULL, "a run across hosts"},
        {"oob_tcp_keepalive_intvl", across ? "2" : NULL, "a run across hosts"},
        {"oob_tcp_keepalive_probes", across ? "3" : NULL, "a run across hosts"},
    };
    enum { N_IMPLIED = sizeof implied / sizeof implied[0] };
    for (int i = 0; i < N_IMPLIED; i++) {
        const char *key = implied[i][0], *value = implied[i][1], *given;
        if (!value)
            continue;
        if ((given = mca_given(o, key)) != NULL) {
            fprintf(stderr,
                    "zero-launch: --mca %s %s replaces the value %s gives it (%s)\n", key,
                    given, implied[i][2], value);
            value = given;
        }
        push_pair(a, "--mca", key);
        push_str(a, value);
    }
    for (int i = 0; i < o->nmca; i++) {
        bool done = false;
        for (int j = 0; j < N_IMPLIED; j++)
            done |= implied[j][1] && strcmp(implied[j][0], o->mca[2 * i]) == 0;
        if (!done) {
            push_pair(a, "--mca", o->mca[2 * i]);
            push_str(a, o->mca[2 * i + 1]);
        }
    }
}

/* at: NULL, or the attempt of an elastic job whose ranks get its variables. */
static int build_argv(const struct options *o, const struct plan *p,
                      const struct attempt *at, struct argv_buf *a)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0)
        return zl_say("cannot read /proc/self/exe: %s", strerror(errno));
    self[len] = '\0';
    push_pair(a, "mpirun", "-np");
    pushf(a, "%d", p->nproc);
    if (o->hostfile)
        push_pair(a, "--hostfile", o->hostfile);
    if (p->oversubscribe)
        push_str(a, "--oversubscribe");
    if (o->allow_root)
        push_str(a, "--allow-run-as-root");
    push_mca(a, o, p->across);
    push_binding(a, p);
    /* Open MPI tags each line [job,rank]<stream>:, so the runtime's own
     * "[zrt rank r/n]" prefix is switched off. */
    push_str(a, "--tag-output");
    push_pair(a, "-x", "ZRT_LOG_RANK_PREFIX=0");
    if (p->across) /* its value is in mpirun's environment (run_job) */
        push_pair(a, "-x", ZL_MONITOR_ENV);
    if (at) {
        push_str(a, "-x");
        pushf(a, "%s=%d", RESTART_ENV, at->index);
        push_str(a, "-x");
        pushf(a, "%s=%d", ELASTIC_WORLD_ENV, at->world);
    }
    if (o->config) {
        push_str(a, "-x");
        pushf(a, "ZRT_CONFIG=%s", o->config);
    }
    if (o->nvme_path) {
        push_str(a, "-x");
        pushf(a, "ZRT_NVME_PATH=%s", o->nvme_path);
    }
    for (int i = 0; i < o->nenv; i++)
        push_pair(a, "-x", o->envs[i]);
    push_str(a, self);
    push_pair(a, "--rank-wrapper", "--");
    for (char **s = o->prog; *s; s++)
        push_str(a, *s);
    return 0;
}

/* Prints s so that a POSIX shell reads it back as the same one argument. */
static void print_quoted(const char *s)
{
    const char *safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789_@%+=:,./-";
    if (*s && strspn(s, safe) == strlen(s)) {
        fputs(s, stdout);
        return;
    }
    putchar('\'');
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", stdout); /* close, escaped quote, reopen */
        else
            putchar(*s);
    }
    putchar('\'');
}

static void print_command(char **v)
{
    for (int i = 0; v[i]; i++) {
        if (i)
            putchar(' ');
        print_quoted(v[i]);
    }
    putchar('\n');
}

/* ---- running things --------------------------------------------------- */

static void forward_signal(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    forwarded_sig = sig;
    /* A terminal's ^C or hangup (si_code SI_KERNEL) went to the whole
     * foreground process group, the child included; sending it again would
     * make mpirun skip its orderly shutdown. */
    if (info->si_code != SI_KERNEL && forward_pid > 0)
        kill(forward_pid, sig);
}

/* Installs forward_signal for each of sigs (0-terminated): until forward_pid
 * is set, a signal is only recorded (forwarded_sig). */
static void install_forwarding(const int *sigs)
{
    struct sigaction sa = {.sa_sigaction = forward_signal,
                           .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (; *sigs; sigs++)
        sigaction(*sigs, &sa, NULL);
}

/* install_forwarding, and blocks sigs; *old receives the previous mask, which
 * the caller restores once forward_pid is set. */
static void setup_forwarding(const int *sigs, sigset_t *old)
{
    sigset_t block;
    install_forwarding(sigs);
    sigemptyset(&block);
    for (; *sigs; sigs++)
        sigaddset(&block, *sigs);
    sigprocmask(SIG_BLOCK, &block, old);
}

/* In the forked child: die with the parent (deathsig), restore the signal
 * mask, exec (with envp as its environment, or ours when NULL). On failure,
 * errno goes to err_fd (close-on-exec, so the parent reads nothing when exec
 * succeeds). */
static void exec_child(char **v, char **envp, int deathsig, const sigset_t *mask,
                       pid_t parent, int err_fd)
{
    prctl(PR_SET_PDEATHSIG, deathsig);
    if (getppid() != parent) /* the parent died before prctl took effect */
        _exit(128 + deathsig);
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (envp)
        execvpe(v[0], v, envp);
    else
        execvp(v[0], v);
    int err = errno;
    ssize_t ignored = write(err_fd, &err, sizeof err); /* nothing to do if this fails */
    (void)ignored;
    _exit(127);
}

/* Reads the exec-failure pipe: 0 when exec succeeded, else the errno. */
static int exec_errno(int fd)
{
    int err = 0;
    ssize_t n;
    while ((n = read(fd, &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(fd);
    return n == (ssize_t)sizeof err ? err : 0;
}

static int wait_child(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return zl_say("waitpid: %s", strerror(errno));
    return 0;
}

/* Starts v (PATH search, no shell; envp as in exec_child) with signals in
 * sigs forwarded to it, and deathsig sent to it should we die first. Returns
 * the errno of fork/pipe/exec (0 on success: *pid runs), or EINTR, starting
 * nothing, when one of sigs was recorded before (install_forwarding). */
static int start_child(char **v, char **envp, const int *sigs, int deathsig, pid_t *pid)
{
    int fds[2], err, status;
    sigset_t old;
    if (pipe2(fds, O_CLOEXEC) != 0)
        return errno;
    pid_t parent = getpid();
    setup_forwarding(sigs, &old);
    if (forwarded_sig) { /* checked with sigs blocked: a later one is forwarded */
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(fds[0]);
        close(fds[1]);
        return EINTR;
    }
    *pid = fork();
    if (*pid == 0)
        exec_child(v, envp, deathsig, &old, parent, fds[1]);
    err = *pid < 0 ? errno : 0;
    forward_pid = *pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (err == 0)
        err = exec_errno(fds[0]);
    else
        close(fds[0]);
    if (err != 0 && *pid > 0) /* the child whose exec failed */
        wait_child(*pid, &status);
    return err;
}

/* start_child with our environment, then waits: its wait status in *status. */
static int run_child(char **v, const int *sigs, int deathsig, int *status, pid_t *pid)
{
    int err = start_child(v, NULL, sigs, deathsig, pid);
    if (err == 0 && wait_child(*pid, status) != 0)
        err = ECHILD;
    return err;
}

/* "ABRT" for SIGABRT; printed as "SIG%s". */
static const char *signal_abbrev(int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    return abbrev ? abbrev : "?";
}

/* Our environment with entry ("K=V") in place of any K there; the strings
 * are not owned. NULL when out of memory. */
static char **environ_with(const char *entry)
{
    size_t n = 0, klen = strcspn(entry, "=") + 1, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], entry, klen) != 0)
            env[k++] = environ[i];
    env[k] = (char *)entry;
    return env;
}

/* Starts mpirun (with the monitor's variable in its environment when m) and
 * waits for it, m serving the ranks meanwhile. Returns 0, or the errno of
 * starting it; *lost: m named lost ranks and ended the job. */
static int start_and_wait(char **v, struct zl_monitor *m, int *status, bool *lost)
{
    static const int sigs[] = {SIGINT, SIGTERM, 0};
    pid_t pid;
    if (!m)
        return run_child(v, sigs, SIGTERM, status, &pid);
    char **env = environ_with(zl_monitor_env(m));
    if (!env)
        return ENOMEM;
    int err = start_child(v, env, sigs, SIGTERM, &pid), rc = 0;
    free(env);
    if (err == 0 && (rc = zl_monitor_wait(m, pid, status)) < 0)
        err = ECHILD;
    *lost = rc > 0;
    return err;
}

/* Runs mpirun, forwarding SIGINT/SIGTERM to it (and SIGTERM should we die:
 * mpirun then ends the job in order); returns our exit status, *ran false
 * when mpirun could not be started. With m, ranks it finds lost end the job:
 * mpirun's status when it gave one, else 1. */
static int run_mpirun(char **v, struct zl_monitor *m, bool *ran)
{
    int status = 0;
    bool lost = false;
    int err = start_and_wait(v, m, &status, &lost);
    forward_pid = 0; /* ended: a signal from now on is only recorded */
    *ran = err == 0;
    if (err != 0)
        return zl_say("cannot run '%s': %s", v[0], strerror(err)), 127;
    if (lost)
        return WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && forwarded_sig) {
        zl_say("the job was stopped by signal %d (SIG%s) (mpirun exit status %d)",
               forwarded_sig, signal_abbrev(forwarded_sig), WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    if (WIFEXITED(status)) {
        zl_say(
            "the job failed (mpirun exit status %d); the failing rank's message is above",
            WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    zl_say("the job failed: mpirun was killed by signal %d (SIG%s)", WTERMSIG(status),
           signal_abbrev(WTERMSIG(status)));
    return 128 + WTERMSIG(status);
}

/* Reports how the rank's program ended and returns the wrapper's exit status. */
static int report_rank(int status, const char *rank, pid_t pid)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status)) {
        fprintf(stderr, "zero-launch: rank %s (host %s, pid %d) exited with status %d\n",
                rank, host, (int)pid, WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    int sig = WTERMSIG(status);
    fprintf(stderr,
            "zero-launch: rank %s (host %s, pid %d) was killed by signal %d (SIG%s)%s\n",
            rank, host, (int)pid, sig, signal_abbrev(sig),
            sig == forwarded_sig
                ? " from outside the rank (mpirun ending the job, or a user)"
                : "");
    return 128 + sig;
}

/* The signals a rank wrapper forwards to its program. */
static const int rank_sigs[] = {SIGTERM, SIGINT, SIGHUP, 0};

/* A rank of a run across hosts: connected to the top level's monitor before
 * the program starts (which then does not see the variable), beating while
 * it runs, saying how it ended; stopped when the top level is lost. */
static int monitored_rank(char **prog, const char *rank, const char *value)
{
    struct zl_link *l = NULL;
    char *copy = strdup(value);
    int status = 0, lost;
    pid_t pid;
    unsetenv(ZL_MONITOR_ENV); /* the token is not the program's */
    if (!copy)
        return zl_say("out of memory"), 1;
    /* a signal while connecting (mpirun ending the job) is recorded: dying
     * of it would look like a lost host to the top level */
    install_forwarding(rank_sigs);
    int rc = zl_link_open(copy, rank, &l);
    free(copy);
    if (rc != 0)
        return forwarded_sig ? 128 + forwarded_sig : 1;
    int err = start_child(prog, NULL, rank_sigs, SIGKILL, &pid);
    if (err == EINTR && forwarded_sig) {
        int sig = forwarded_sig;
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        zl_say("rank %s (host %s): signal %d (SIG%s) from outside the rank (mpirun "
               "ending the job, or a user) before its program started; not starting it",
               rank, host, sig, signal_abbrev(sig));
        zl_link_close(l, 128 + sig);
        return 128 + sig;
    }
    if (err != 0) {
        zl_say("rank %s: cannot run '%s': %s", rank, prog[0], strerror(err));
        zl_link_close(l, 127);
        return 127;
    }
    lost = zl_link_wait(l, pid, &forwarded_sig, &status);
    int code = lost != 0 ? 1 : report_rank(status, rank, pid);
    zl_link_close(l, code);
    return code;
}

/* Hidden mode, what mpirun starts on each rank: argv is
 * "--rank-wrapper -- PROGRAM ARGS...". The program dies with us (SIGKILL). */
static int rank_wrapper(int argc, char **argv)
{
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    const char *monitor = getenv(ZL_MONITOR_ENV);
    int first = (argc > 2 && strcmp(argv[2], "--") == 0) ? 3 : 2;
    int status;
    pid_t pid;
    if (!rank)
        rank = "?";
    if (first >= argc)
        return zl_say("rank %s: --rank-wrapper needs a PROGRAM", rank), 127;
    if (monitor)
        return monitored_rank(argv + first, rank, monitor);
    int err = run_child(argv + first, rank_sigs, SIGKILL, &status, &pid);
    if (err != 0)
        return zl_say("rank %s: cannot run '%s': %s", rank, argv[first], strerror(err)),
               127;
    return report_rank(status, rank, pid);
}

/* ---- options ---------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "usage: zero-launch [options] [--] PROGRAM [ARGS...]\n"
        "Runs PROGRAM on N ranks through Open MPI's mpirun (no shell; arguments\n"
        "reach PROGRAM unchanged). A rank that fails is named with its host, pid\n"
        "and exit status or signal; the job's exit status is never 0 then.\n"
        "\n"
        "  -n, --nproc N          ranks (default: the hostfile's slots; else one per\n"
        "                         NUMA node when there are several; else 2)\n"
        "      --hostfile FILE    Open MPI hostfile (\"host slots=K\" lines)\n"
        "      --bind none|core|numa|socket\n"
        "                         (default: numa when there are several NUMA nodes and\n"
        "                         at least one per rank; else core when there is a core\n"
        "                         per rank; else none)\n"
        "      --config FILE      ranks get ZRT_CONFIG=<absolute path of FILE>\n"
        "      --env K=V          pass K=V to every rank (repeatable)\n"
        "      --nvme-path DIR    ranks get ZRT_NVME_PATH=<absolute path of DIR>;\n"
        "                         a missing DIR is created (mode 0700, as mkdir -p)\n"
        "      --ranks-per-host N\n"
        "                         N ranks on each host (mpirun --map-by ppr:N:node);\n"
        "                         the rank count is then the hostfile's hosts times N\n"
        "                         (a -n that differs is refused)\n"
        "      --launch-agent PATH\n"
        "                         how mpirun starts its daemon on the other hosts, in\n"
        "                         place of ssh (--mca plm_rsh_agent <absolute PATH>)\n"
        "      --net IF|CIDR[,...]\n"
        "                         the network between hosts: MPI and mpirun's daemons\n"
        "                         use TCP on it, ranks of one host shared memory\n"
        "                         (--mca pml ob1, btl self,vader,tcp,\n"
        "                         btl_tcp_if_include and oob_tcp_if_include)\n"
        "      --mca KEY VALUE    an Open MPI MCA parameter (repeatable); one that an\n"
        "                         option above sets replaces that option's value\n"
        "      --heartbeat-timeout SECONDS\n"
        "                         across hosts (a hostfile of several hosts, or\n"
        "                         --launch-agent), zero-launch hears from every rank\n"
        "                         each second; ranks silent this long (default 5, at\n"
        "                         least 2), or whose connection closes without an exit\n"
        "                         status, are named with their host and the job is\n"
        "                         ended (mpirun: SIGTERM, SIGKILL 3 s later)\n"
        "      --start-timeout SECONDS\n"
        "                         across hosts, ranks not connected this long after\n"
        "                         mpirun starts are named and the job ended (default\n"
        "                         60)\n"
        "      --max-restarts N   when the job fails (a rank's exit status, or hosts\n"
        "                         lost), run it again up to N times (default 0),\n"
        "                         without the hosts whose ranks were lost; the ranks\n"
        "                         get ZRT_RESTART (the attempt, 0 first) and\n"
        "                         ZRT_ELASTIC_WORLD (the first attempt's rank count)\n"
        "                         to resume from their latest checkpoint; not with -n\n"
        "                         and a hostfile (the rank count is recomputed)\n"
        "      --min-hosts K      with --max-restarts: give up when fewer than K hosts\n"
        "                         are left (default 1)\n"
        "      --allow-run-as-root\n"
        "                         pass --allow-run-as-root to mpirun; mpirun refuses to\n"
        "                         run as root without it, so CI jobs and containers "
        "that\n"
        "                         run as root need it (it is never added implicitly)\n"
        "      --dry-run          print the mpirun command line and exit (and on stderr\n"
        "                         the OMPI_MCA_* variables mpirun would also read)\n"
        "      --topology         print what hwloc sees and the choices it leads to\n"
        "      --version          print the version and exit\n"
        "  -h, --help             print this help and exit\n"
        "\n"
        "Across hosts, mpirun also gets --mca oob_tcp_keepalive_time 2,\n"
        "oob_tcp_keepalive_intvl 2 and oob_tcp_keepalive_probes 3 (each unless --mca\n"
        "gives it) and -x ZRT_LAUNCH_MONITOR (ADDR:PORT:TOKEN:SECONDS, set in its\n"
        "environment); a rank wrapper that stops hearing from zero-launch for the\n"
        "heartbeat bound stops its program. On one host nothing of this is added.\n",
        f);
}

enum {
    OPT_HOSTFILE = 256,
    OPT_BIND,
    OPT_CONFIG,
    OPT_ENV,
    OPT_NVME,
    OPT_ROOT,
    OPT_DRY,
    OPT_TOPO,
    OPT_VERSION,
    OPT_RPH,
    OPT_AGENT,
    OPT_NET,
    OPT_MCA,
    OPT_HEARTBEAT,
    OPT_START,
    OPT_RESTARTS,
    OPT_MIN_HOSTS
};

static const struct option long_opts[] = {
    {"nproc", required_argument, NULL, 'n'},
    {"hostfile", required_argument, NULL, OPT_HOSTFILE},
    {"bind", required_argument, NULL, OPT_BIND},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"env", required_argument, NULL, OPT_ENV},
    {"nvme-path", required_argument, NULL, OPT_NVME},
    {"allow-run-as-root", no_argument, NULL, OPT_ROOT},
    {"dry-run", no_argument, NULL, OPT_DRY},
    {"topology", no_argument, NULL, OPT_TOPO},
    {"version", no_argument, NULL, OPT_VERSION},
    {"ranks-per-host", required_argument, NULL, OPT_RPH},
    {"launch-agent", required_argument, NULL, OPT_AGENT},
    {"net", required_argument, NULL, OPT_NET},
    {"mca", required_argument, NULL, OPT_MCA},
    {"heartbeat-timeout", required_argument, NULL, OPT_HEARTBEAT},
    {"start-timeout", required_argument, NULL, OPT_START},
    {"max-restarts", required_argument, NULL, OPT_RESTARTS},
    {"min-hosts", required_argument, NULL, OPT_MIN_HOSTS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int add_env(struct options *o, char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return zl_say("--env: '%s' is not K=V", kv);
    if (!is_identifier(kv, (size_t)(eq - kv)))
        return zl_say("--env: '%.*s' is not a valid variable name", (int)(eq - kv), kv);
    o->envs[o->nenv++] = kv;
    return 0;
}

/* --mca KEY VALUE: KEY an identifier, given once; value the next argument
 * (NULL when there is none). */
static int add_mca(struct options *o, const char *key, const char *value)
{
    if (!value || strcmp(value, "--") == 0)
        return zl_say("--mca %s needs a VALUE (--mca KEY VALUE)", key);
    if (!is_identifier(key, strlen(key)))
        return zl_say("--mca: '%s' is not an MCA parameter name (letters, digits, '_')",
                      key);
    const char *earlier = mca_given(o, key);
    if (earlier)
        return zl_say("--mca %s is given twice ('%s' and '%s'); give it once", key,
                      earlier, value);
    o->mca[2 * o->nmca] = key;
    o->mca[2 * o->nmca + 1] = value;
    o->nmca++;
    return 0;
}

/* SECONDS of --heartbeat-timeout or --start-timeout: an integer in [lo, 86400]. */
static int parse_seconds(const char *opt, const char *arg, int lo, int *out)
{
    int v;
    if (!parse_positive(arg, &v) || v < lo || v > 86400)
        return zl_say("%s: '%s' is not a whole number of seconds from %d to 86400", opt,
                      arg, lo);
    *out = v;
    return 0;
}

/* Handles one option; returns 0, -1 on error, or 1 when the program should
 * exit 0 (help, version). */
static int handle_option(int c, char *arg, struct options *o)
{
    switch (c) {
    case 'n':
        return parse_positive(arg, &o->nproc)
                   ? 0
                   : zl_say("--nproc: '%s' is not a positive integer", arg);
    case OPT_HOSTFILE:
        o->hostfile = arg;
        return 0;
    case OPT_BIND:
        return parse_bind(arg, &o->bind);
    case OPT_CONFIG:
        return absolute_path("--config", arg, false, &o->config);
    case OPT_NVME:
        o->nvme_arg = arg; /* resolved (and created) once every option is read */
        return 0;
    case OPT_ENV:
        return add_env(o, arg);
    case OPT_RPH:
        return parse_positive(arg, &o->ranks_per_host)
                   ? 0
                   : zl_say("--ranks-per-host: '%s' is not a positive integer", arg);
    case OPT_AGENT:
        return resolve_agent(arg, &o->agent);
    case OPT_NET:
        o->net = arg; /* checked once every option is read (--dry-run) */
        return 0;
    case OPT_HEARTBEAT: /* above the 1 s between beats */
        return parse_seconds("--heartbeat-timeout", arg, 2, &o->heartbeat_s);
    case OPT_START:
        return parse_seconds("--start-timeout", arg, 1, &o->start_s);
    case OPT_RESTARTS:
        return parse_at_least(arg, 0, &o->max_restarts)
                   ? 0
                   : zl_say("--max-restarts: '%s' is not an integer of 0 or more", arg);
    case OPT_MIN_HOSTS:
        return parse_positive(arg, &o->min_hosts)
                   ? 0
                   : zl_say("--min-hosts: '%s' is not a positive integer", arg);
    case OPT_ROOT:
        o->allow_root = true;
        return 0;
    case OPT_DRY:
        o->dry_run = true;
        return 0;
    case OPT_TOPO:
        o->topology = true;
        return 0;
    case OPT_VERSION:
        printf("zero-launch %s\n", ZRT_VERSION_STRING);
        return 1;
    case 'h':
        usage(stdout);
        return 1;
    default:
        return -1;
    }
}

/* getopt's own messages are off: this names the option in one line. */
static int option_error(int c, char **argv)
{
    const char *what = argv[optind - 1];
    char short_opt[3] = {'-', (char)optopt, '\0'};
    if (optopt)
        what = short_opt;
    if (c == ':')
        return zl_say("option '%s' needs a value; see 'zero-launch --help'", what);
    return zl_say("unknown option '%s'; see 'zero-launch --help'", what);
}

/* --min-hosts needs restarts to mean anything; -n fixes the world size,
 * which a restart that drops hosts changes. */
static int check_elastic(const struct options *o)
{
    if (o->min_hosts && o->max_restarts == 0)
        return zl_say("--min-hosts %d: it says how many hosts a restart needs, and "
                      "there are no restarts; give --max-restarts N (N of 1 or more)",
                      o->min_hosts);
    if (o->nproc && o->max_restarts && o->hostfile)
        return zl_say("-n/--nproc %d with --max-restarts %d and --hostfile: -n fixes the "
                      "world size, and an elastic restart changes it (it drops lost "
                      "hosts); give --ranks-per-host or the hostfile's slots instead",
                      o->nproc, o->max_restarts);
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    o->envs = calloc((size_t)argc, sizeof *o->envs);
    o->mca = calloc((size_t)argc, sizeof *o->mca);
    if (!o->envs || !o->mca)
        return zl_say("out of memory");
    int c, rc = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "+:n:h", long_opts, NULL)) != -1) {
        if (c == OPT_MCA) /* two arguments: KEY is optarg, VALUE the next one */
            rc = add_mca(o, optarg, optind < argc ? argv[optind++] : NULL);
        else
            rc = (c == '?' || c == ':') ? option_error(c, argv)
                                        : handle_option(c, optarg, o);
    }
    if (rc != 0 || (rc = check_elastic(o)) != 0)
        return rc;
    o->prog = argv + optind;
    if (!o->topology && !*o->prog)
        return zl_say("no PROGRAM given; see 'zero-launch --help'");
    if (o->net && !o->topology && check_net(o) != 0)
        return -1;
    return o->nvme_arg ? resolve_nvme(o) : 0;
}

static void free_options(struct options *o)
{
    free(o->config);
    free(o->nvme_path);
    free(o->envs);
    free(o->agent);
    free(o->mca);
}

/* ---- main ------------------------------------------------------------- */

static int print_topology(const struct plan *p)
{
    hwloc_topology_t t;
    if (load_topology(&t, true) != 0)
        return 1;
    struct topo tp = topo_counts(t);
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    printf("host:       %s\n", host);
    printf("packages:   %d\nNUMA nodes: %d\ncores:      %d\nPUs:        %d\n",
           tp.packages, tp.numa, tp.cores, tp.pus);
    print_osdevs(t, "GPUs:", HWLOC_OBJ_OSDEV_GPU, HWLOC_OBJ_OSDEV_COPROC);
    print_osdevs(t, "NICs:", HWLOC_OBJ_OSDEV_NETWORK, HWLOC_OBJ_OSDEV_OPENFABRICS);
    printf("ranks:      %d (%d per host)%s\n", p->nproc, p->per_host,
           p->oversubscribe ? ", oversubscribed" : "");
    if (p->bind == BIND_CORE && !p->oversubscribe)
        printf("binding:    core (%d core%s per rank)\n", p->cores_per_rank,
               p->cores_per_rank > 1 ? "s" : "");
    else if (p->bind == BIND_CORE)
        printf("binding:    none (core binding is off: oversubscribed)\n");
    else
        printf("binding:    %s%s\n", bind_names[p->bind],
               p->oversubscribe && p->bind != BIND_NONE ? " (overload-allowed)" : "");
    hwloc_topology_destroy(t);
    return 0;
}

/* --dry-run: the OMPI_MCA_* variables of the environment, which mpirun reads
 * though the command line does not show them (a --mca of the same name in
 * the command line wins). */
static void print_env_mca(char **v)
{
    const char *prefix = "OMPI_MCA_";
    size_t plen = strlen(prefix);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, prefix, plen) != 0)
            continue;
        const char *key = *e + plen;
        size_t klen = strcspn(key, "=");
        bool shown = false;
        for (int i = 0; v[i] && v[i + 1]; i++)
            shown |= strcmp(v[i], "--mca") == 0 && strlen(v[i + 1]) == klen &&
                     strncmp(v[i + 1], key, klen) == 0;
        fprintf(stderr, "zero-launch: the environment sets %s: mpirun reads it too%s\n",
                *e,
                shown ? ", but the command's --mca of that name wins"
                      : " (it is not in the command)");
    }
}

/* --dry-run --max-restarts: what changes from one attempt to the next. */
static void print_restart_note(const struct options *o, const struct plan *p)
{
    fprintf(stderr,
            "zero-launch: with --max-restarts %d, this is the first attempt; each "
            "attempt's ranks get %s=<attempt, 0 for the first> and %s=%d (the first "
            "attempt's rank count); after a failure the job runs again, up to %d "
            "time%s, %s\n",
            o->max_restarts, RESTART_ENV, ELASTIC_WORLD_ENV, p->nproc, o->max_restarts,
            o->max_restarts == 1 ? "" : "s",
            o->hostfile ? "with a hostfile rebuilt from the hosts left (those whose "
                          "ranks were lost are dropped; mpirun's --hostfile then names "
                          "a temporary file) and its rank count recomputed"
                        : "with the same command on the same host");
}

/* The monitor of a run across hosts: listening on this host's --net
 * address, else on the default one (on every address when that is not this
 * host's own, as a name that resolves elsewhere would give). */
static int open_monitor(const struct options *o, const struct plan *p,
                        struct zl_monitor **m)
{
    struct zl_monitor_params mp = {
        .nproc = p->nproc,
        .heartbeat_s = o->heartbeat_s ? o->heartbeat_s : ZL_HEARTBEAT_S,
        .start_s = o->start_s ? o->start_s : ZL_START_S,
    };
    if (o->net && !net_address(o->net, &mp.bind))
        return zl_say("--net '%s': no IPv4 address of this host is on it, for "
                      "zero-launch's monitor to listen on",
                      o->net);
    if (o->net)
        mp.advertise = mp.bind;
    else {
        mp.advertise = default_address();
        mp.bind.s_addr = is_local(mp.advertise) ? mp.advertise.s_addr : htonl(INADDR_ANY);
    }
    return zl_monitor_open(&mp, m);
}

/* mpirun passes our environment on: a stale value (from a rank of another
 * job, say) would send the ranks of a run without a monitor to one, or make
 * those of a job without restarts resume */
static void drop_stale_env(void)
{
    unsetenv(ZL_MONITOR_ENV);
    unsetenv(RESTART_ENV);
    unsetenv(ELASTIC_WORLD_ENV);
}

/* Runs the job; across hosts, watched by the monitor. */
static int run_job(const struct options *o, const struct plan *p, char **v)
{
    struct zl_monitor *m = NULL;
    bool ran;
    drop_stale_env();
    if (p->across && open_monitor(o, p, &m) != 0)
        return 1;
    int rc = run_mpirun(v, m, &ran);
    zl_monitor_close(m);
    return rc;
}

/* ---- restarts (--max-restarts) ---------------------------------------- */

/* The wall clock, unix seconds. */
static double unix_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* One host line of the hostfile. */
struct host_entry {
    char *text;   /* the line as read, without its newline; owned */
    char *key;    /* its host as written ([user@]name); owned */
    int slots;    /* the slots it gives (1 when it gives none) */
    bool dropped; /* its host was lost */
};

/* An elastic job: the hostfile's host lines (each kept or dropped), the
 * hostfile of the hosts left, and what the last attempt lost. */
struct elastic {
    struct attempt at;
    struct host_entry *line; /* nlines, in hostfile order; owned */
    int nlines, cap;
    char tmp[PATH_MAX];        /* the hostfile of the hosts left, "" none yet */
    struct zl_lost_rank *lost; /* the last attempt's lost ranks, owned */
    int nlost;
    double failed_at; /* when the last attempt's failure was seen, unix s */
};

static const char *bare_host(const char *key) /* "node1" for "user@node1" */
{
    const char *at = strchr(key, '@');
    return at ? at + 1 : key;
}

/* Adds one host line (text as read, host as parsed) to e. */
static int keep_line(struct elastic *e, const char *text, const struct host_line *l)
{
    if (e->nlines == e->cap) {
        int cap = e->cap ? 2 * e->cap : 16;
        struct host_entry *more = realloc(e->line, (size_t)cap * sizeof *more);
        if (!more)
            return zl_say("out of memory");
        e->line = more;
        e->cap = cap;
    }
    struct host_entry *h = &e->line[e->nlines];
    *h = (struct host_entry){.text = strndup(text, strcspn(text, "\r\n")),
                             .key = strdup(l->host),
                             .slots = l->slots ? l->slots : 1};
    if (!h->text || !h->key)
        return free(h->text), free(h->key), zl_say("out of memory");
    e->nlines++;
    return 0;
}

/* Reads the host lines of a hostfile that load_hostfile accepted. */
static int read_host_lines(const char *path, struct elastic *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return zl_say("--hostfile: '%s': %s", path, strerror(errno));
    char *line = NULL, *copy = NULL, where[PATH_MAX + 32];
    size_t cap = 0;
    int rc = 0, lineno = 0;
    struct host_line l;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        snprintf(where, sizeof where, "%s:%d", path, ++lineno);
        free(copy);
        rc = (copy = strdup(line)) ? parse_host_line(copy, where, &l)
                                   : zl_say("out of memory");
        if (rc == 0 && l.host)
            rc = keep_line(e, line, &l);
    }
    free(copy);
    free(line);
    fclose(f);
    return rc;
}

static void free_elastic(struct elastic *e)
{
    for (int i = 0; i < e->nlines; i++) {
        free(e->line[i].text);
        free(e->line[i].key);
    }
    free(e->line);
    free(e->lost);
    if (e->tmp[0])
        unlink(e->tmp);
}

/* The hosts left, in hostfile order. */
struct hosts_left {
    int n;
    int *first; /* the entry (e->line) each is first named on */
    int *slots; /* its slots, over all its lines */
};

static void free_hosts_left(struct hosts_left *h)
{
    free(h->first);
    free(h->slots);
}

/* Fills h (free_hosts_left frees it); h->n 0 when out of memory. */
static void hosts_left(const struct elastic *e, struct hosts_left *h)
{
    h->n = 0;
    h->first = calloc((size_t)e->nlines + 1, sizeof *h->first);
    h->slots = calloc((size_t)e->nlines + 1, sizeof *h->slots);
    for (int i = 0; h->first && h->slots && i < e->nlines; i++) {
        int k = 0;
        while (k < h->n && strcmp(e->line[h->first[k]].key, e->line[i].key) != 0)
            k++;
        if (e->line[i].dropped)
            continue;
        if (k == h->n) {
            h->first[k] = i;
            h->slots[h->n++] = 0;
        }
        h->slots[k] += e->line[i].slots;
    }
}

static const char *host_name(const struct elastic *e, const struct hosts_left *h, int k)
{
    return bare_host(e->line[h->first[k]].key);
}

/* The host (an index into h) a lost rank was on: by the address its
 * connection came from, else by the hostname it said, else (it never
 * connected) by where mpirun placed it: ppr:R:node fills the hosts in order,
 * R each; without it, their slots in order. -1 when none fits. */
static int host_of(const struct elastic *e, const struct hosts_left *h,
                   const struct plan *p, const struct zl_lost_rank *r)
{
    for (int k = 0; k < h->n && r->addr[0]; k++)
        if (strcmp(host_name(e, h, k), r->addr) == 0)
            return k;
    for (int k = 0; k < h->n && r->host[0]; k++)
        if (strcmp(host_name(e, h, k), r->host) == 0)
            return k;
    if (p->by_host)
        return r->rank / p->per_host < h->n ? r->rank / p->per_host : -1;
    for (int k = 0, sum = 0; k < h->n; k++)
        if (r->rank < (sum += h->slots[k]))
            return k;
    return -1;
}

/* Host k's lost ranks, as "zrt-h2 (10.213.17.2: its ranks 2, 3 were lost)"
 * (the hostname its ranks said, then the hostfile's name). */
static void say_host(const struct elastic *e, const struct hosts_left *h,
                     const struct plan *p, int k, struct zl_text *t)
{
    const char *name = host_name(e, h, k), *said = NULL;
    struct zl_text ranks = {.n = 0};
    int count = 0;
    bool connected = false;
    for (int i = 0; i < e->nlost; i++) {
        const struct zl_lost_rank *r = &e->lost[i];
        if (host_of(e, h, p, r) != k)
            continue;
        zl_addf(&ranks, "%s%d", count++ ? ", " : "", r->rank);
        connected |= r->connected;
        said = r->host[0] && strcmp(r->host, name) != 0 ? r->host : said;
    }
    if (said)
        zl_addf(t, "%s (%s: ", said, name);
    else
        zl_addf(t, "%s (", name);
    zl_addf(t, "its rank%s %s %s)", count > 1 ? "s" : "", ranks.s,
            !connected  ? "never connected"
            : count > 1 ? "were lost"
                        : "was lost");
}

/* Marks the hosts of the last attempt's lost ranks dropped, naming them in
 * t ("zrt-h2 (...), zrt-h3 (...)"); returns how many. */
static int drop_lost_hosts(struct elastic *e, const struct plan *p, struct zl_text *t)
{
    struct hosts_left h;
    hosts_left(e, &h);
    bool *lost = calloc((size_t)h.n + 1, sizeof *lost);
    int dropped = 0;
    for (int i = 0; lost && i < e->nlost; i++) {
        int k = host_of(e, &h, p, &e->lost[i]);
        dropped += k >= 0 && !lost[k];
        if (k >= 0)
            lost[k] = true;
    }
    for (int k = 0, said = 0; lost && k < h.n; k++) {
        if (!lost[k])
            continue;
        zl_addf(t, "%s", said++ ? ", " : "");
        say_host(e, &h, p, k, t);
    }
    for (int i = 0; lost && i < e->nlines; i++) /* every line of a lost host */
        for (int k = 0; k < h.n; k++)
            e->line[i].dropped |=
                lost[k] && strcmp(e->line[i].key, e->line[h.first[k]].key) == 0;
    free(lost);
    free_hosts_left(&h);
    return dropped;
}

/* "2 hosts left (a, b)" into t; returns how many. */
static int say_hosts_left(const struct elastic *e, struct zl_text *t)
{
    struct hosts_left h;
    hosts_left(e, &h);
    int n = h.n;
    zl_addf(t, "%d host%s left", n, n == 1 ? "" : "s");
    for (int k = 0; k < n && k < 8; k++)
        zl_addf(t, "%s%s", k ? ", " : " (", host_name(e, &h, k));
    zl_addf(t, "%s", n > 8 ? ", ...)" : n ? ")" : "");
    free_hosts_left(&h);
    return n;
}

/* Writes the lines of the hosts left, as they were written, to a new file
 * (mkstemp in $TMPDIR or /tmp), which replaces the previous one. */
static int write_hosts_left(struct elastic *e)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/zero-launch-hosts.XXXXXX",
             dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int err = errno;
        if (fd >= 0)
            close(fd), unlink(path);
        return zl_say("cannot write the hostfile of the hosts left ('%s'): %s", path,
                      strerror(err));
    }
    for (int i = 0; i < e->nlines; i++)
        if (!e->line[i].dropped)
            fprintf(f, "%s\n", e->line[i].text);
    if (fclose(f) != 0) {
        int err = errno;
        unlink(path);
        return zl_say("cannot write '%s': %s", path, strerror(err));
    }
    if (e->tmp[0])
        unlink(e->tmp);
    snprintf(e->tmp, sizeof e->tmp, "%s", path);
    return 0;
}

/* The plan for the hosts left: o's hostfile becomes theirs. */
static int replan(struct elastic *e, struct options *o, const struct topo *tp,
                  struct plan *p)
{
    struct hostfile hf = {0, 0, 0};
    if (write_hosts_left(e) != 0)
        return -1;
    o->hostfile = e->tmp;
    if (load_hostfile(o->hostfile, &hf) != 0 || check_ranks_per_host(o, &hf) != 0)
        return -1;
    *p = make_plan(o, tp, &hf);
    return 0;
}

/* After attempt e->at.index failed with status code: gives up (saying why,
 * returning -1) when the restarts are spent or fewer than --min-hosts hosts
 * are left; else drops the lost hosts, replans and says so. */
static int next_attempt(struct elastic *e, struct options *o, const struct topo *tp,
                        struct plan *p, int code)
{
    struct zl_text lost = {.n = 0}, left = {.n = 0}, what = {.n = 0};
    int was = p->nproc, restart = e->at.index + 1, min = o->min_hosts ? o->min_hosts : 1;
    if (e->at.index >= o->max_restarts)
        return zl_say("giving up after %d restart%s: the job failed again (exit status "
                      "%d)",
                      o->max_restarts, o->max_restarts == 1 ? "" : "s", code);
    int dropped = o->hostfile ? drop_lost_hosts(e, p, &lost) : 0;
    int hosts = o->hostfile ? say_hosts_left(e, &left) : 1;
    const char *hs = dropped > 1 ? "hosts" : "host";
    if (hosts < min)
        return zl_say("giving up: lost %s %s; %s, fewer than --min-hosts %d", hs, lost.s,
                      left.s, min);
    if (dropped && replan(e, o, tp, p) != 0)
        return -1;
    if (dropped)
        zl_addf(&what, "dropped %s %s", hs, lost.s);
    else
        zl_addf(&what, "no host was lost (exit status %d): the same %s", code,
                o->hostfile ? "hosts" : "command");
    if (o->hostfile)
        zl_addf(&what, "; %d host%s", hosts, hosts == 1 ? "" : "s");
    zl_say("restart %d of %d: %s, %d rank%s (was %d); the ranks resume from their "
           "latest checkpoint and keep the global batch by gradient accumulation "
           "(%s=%d); the failure was seen at %.3f (unix seconds)",
           restart, o->max_restarts, what.s, p->nproc, p->nproc == 1 ? "" : "s", was,
           ELASTIC_WORLD_ENV, e->at.world, e->failed_at);
    e->at.index = restart;
    return 0;
}

/* The lost ranks of the attempt m watched, and when its failure was seen. */
static void collect_lost(struct elastic *e, const struct zl_monitor *m)
{
    free(e->lost);
    e->lost = NULL;
    e->nlost = m ? zl_monitor_lost_ranks(m, NULL, 0) : 0;
    e->failed_at = unix_now();
    if (e->nlost && !(e->lost = calloc((size_t)e->nlost, sizeof *e->lost)))
        e->nlost = 0; /* out of memory: restart on the same hosts */
    if (e->nlost)
        zl_monitor_lost_ranks(m, e->lost, e->nlost);
    for (int i = 0; i < e->nlost; i++)
        if (e->lost[i].at < e->failed_at)
            e->failed_at = e->lost[i].at;
}

/* One attempt: its command line, its monitor across hosts, mpirun. Returns
 * its exit status; *ran false when mpirun did not run. */
static int run_attempt(const struct options *o, const struct plan *p, struct elastic *e,
                       bool *ran)
{
    struct argv_buf a = {0};
    struct zl_monitor *m = NULL;
    *ran = false;
    if (e->at.index > 0 && forwarded_sig)
        return zl_say("the job was stopped by signal %d (SIG%s) before attempt %d",
                      forwarded_sig, signal_abbrev(forwarded_sig), e->at.index + 1),
               128 + forwarded_sig;
    if (build_argv(o, p, &e->at, &a) != 0 || (p->across && open_monitor(o, p, &m) != 0)) {
        argv_free(&a);
        return 1;
    }
    double now = unix_now();
    if (e->at.index == 0)
        zl_say("attempt 1 started at %.3f (unix seconds)", now);
    else
        zl_say("attempt %d started at %.3f (unix seconds), %.1f s after the failure",
               e->at.index + 1, now, now - e->failed_at);
    int code = run_mpirun(a.v, m, ran);
    collect_lost(e, m);
    zl_monitor_close(m);
    argv_free(&a);
    return code;
}

/* --max-restarts N: attempts until one succeeds, a signal from outside
 * stops one, or next_attempt gives up; returns the last one's status. */
static int elastic_job(const struct options *o, const struct topo *tp, struct plan p)
{
    struct elastic e = {.at = {0, p.nproc}};
    struct options oa = *o; /* its hostfile becomes that of the hosts left */
    int code = 1;
    bool ran;
    drop_stale_env();
    if (o->hostfile && read_host_lines(o->hostfile, &e) != 0) {
        free_elastic(&e);
        return 1;
    }
    while ((code = run_attempt(&oa, &p, &e, &ran)) != 0 && ran && !forwarded_sig &&
           next_attempt(&e, &oa, tp, &p, code) == 0)
        ;
    free_elastic(&e);
    return code;
}

static int launch(const struct options *o)
{
    hwloc_topology_t t;
    struct hostfile hf = {0, 0, 0};
    if (o->hostfile && load_hostfile(o->hostfile, &hf) != 0)
        return 1;
    if (check_ranks_per_host(o, &hf) != 0)
        return 2;
    if (o->min_hosts > (o->hostfile ? hf.hosts : 1))
        return zl_say("--min-hosts %d: the job starts on %d host%s (%s)", o->min_hosts,
                      o->hostfile ? hf.hosts : 1, o->hostfile && hf.hosts > 1 ? "s" : "",
                      o->hostfile ? o->hostfile : "no --hostfile: this one"),
               2;
    if (load_topology(&t, false) != 0)
        return 1;
    struct topo tp = topo_counts(t);
    hwloc_topology_destroy(t);
    struct plan p = make_plan(o, &tp, &hf);
    if (o->topology)
        return print_topology(&p);
    if (o->max_restarts && !o->dry_run)
        return elastic_job(o, &tp, p);
    struct argv_buf a = {0};
    struct attempt first = {0, p.nproc};
    int rc = build_argv(o, &p, o->max_restarts ? &first : NULL, &a) != 0 ? 1 : 0;
    if (rc == 0 && o->dry_run) {
        print_command(a.v);
        print_env_mca(a.v);
        if (p.across)
            fprintf(stderr,
                    "zero-launch: across hosts, mpirun's environment also gets "
                    "%s=ADDR:PORT:TOKEN:SECONDS (zero-launch's monitor, drawn "
                    "when the job starts; without it the ranks run unwatched)\n",
                    ZL_MONITOR_ENV);
        if (o->max_restarts)
            print_restart_note(o, &p);
    } else if (rc == 0)
        rc = run_job(o, &p, a.v);
    argv_free(&a);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--rank-wrapper") == 0)
        return rank_wrapper(argc, argv);
    struct options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc == 0)
        rc = launch(&o);
    else
        rc = rc > 0 ? 0 : 2;
    free_options(&o);
    return rc;
}
