/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_comm_timeout.c — a lost peer ends the MPI communicator's
 * waits after comm_timeout_seconds instead of hanging them (runtime/
 * comm_mpi.c). Run by tests/scripts/comm_timeout.sh under `mpirun -np N`
 * (N >= 2), which checks what this program prints and that the job ended.
 *
 * The last rank is the lost one: it never starts the collectives (it sleeps
 * until the job is ended), except in the first case, where it starts the
 * all-reduce's exchange and then goes silent, so the others are left in the
 * all-reduce's point-to-point second phase and can name it. Every other rank
 * runs each case on a fresh communicator with timeout_seconds = T:
 * all-reduce (second phase), reduce-scatter (labelled layer 3), all-gather
 * (labelled layer 5), broadcast (from the lost rank), barrier, agree; each must fail with
 * ZRT_ERR_REMOTE after T to T + MARGIN seconds of waiting, with a sentence
 * naming the collective (and its bytes and layer where it has them), and the
 * failed communicator must then refuse the next call at once with the same
 * sentence, and a wait must not hold a core (under half a CPU second per
 * second waited). A survivor prints "PASS rank R" or "FAIL rank R: ..." lines, then
 * ends the job the way the examples do (abort_job -> MPI_Abort), which takes
 * the sleeping rank with it.
 *
 * A plain program (no Check): the verdict is in the output, since the job
 * ends by MPI_Abort.
 */
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/test_comm.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

enum { COUNT = 256 };              /* floats per rank block */
static const double TIMEOUT = 1.0; /* seconds */
static const double MARGIN = 1.5;  /* seconds a wait may overrun it */

enum { NCOMMS = 7 }; /* one per case, and one to end the job with */

static zrt__mem_account g_acct;
static zrt__errbuf g_err;
static zrt__backend *g_be;
static zrt__comm *g_comms[NCOMMS]; /* made by every rank up front: creating
                                      one is collective (MPI_Comm_dup) */
static int g_next_comm;
static int g_rank, g_size, g_fails;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL rank %d: ", g_rank);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    g_fails++;
}

/* CPU seconds this process has used. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double g_cpu_start; /* cpu_now() when the current wait began */

static zrt__comm *fresh_comm(void)
{
    return g_next_comm < NCOMMS ? g_comms[g_next_comm++] : NULL;
}

/* The call's status and time against the contract; `want` are pieces the
 * sentence must hold. */
static void expect_lost(zrt__comm *c, const char *name, zrt_status st, double took,
                        const char *const *want)
{
    if (st != ZRT_ERR_REMOTE) {
        fail("%s: status %s, not ZRT_ERR_REMOTE (%s)", name, zrt_status_str(st),
             g_err.text);
        return;
    }
    if (took < TIMEOUT || took > TIMEOUT + MARGIN)
        fail("%s: failed after %.2f s, outside [%.1f, %.1f] s", name, took, TIMEOUT,
             TIMEOUT + MARGIN);
    /* The poll naps: a wait must not hold a core (a spinning one uses ~took). */
    double cpu = cpu_now() - g_cpu_start;
    if (cpu > 0.5 * took)
        fail("%s: the wait used %.2f s of CPU in %.2f s", name, cpu, took);
    for (; *want; want++)
        if (!strstr(g_err.text, *want))
            fail("%s: the sentence lacks '%s': %s", name, *want, g_err.text);
    /* want[-1]: the last piece, which the next call's sentence repeats */
    printf("rank %d %s after %.2f s (%.3f s of CPU): %s\n", g_rank, name, took, cpu,
           g_err.text);
    double t0 = tc_now();
    zrt_status again = c->ops->barrier(c);
    if (again != ZRT_ERR_REMOTE || tc_now() - t0 > 0.5 ||
        !strstr(g_err.text, "the MPI communicator failed earlier") ||
        !strstr(g_err.text, want[-1]))
        fail("%s: the failed communicator's next call gave %s after %.2f s: %s", name,
             zrt_status_str(again), tc_now() - t0, g_err.text);
    c->ops->destroy(c); /* failed: neither frees the MPI communicator nor finalizes */
}

/* Starts a collective on a fresh communicator and waits for it. */
typedef zrt_status (*start_fn)(zrt__comm *c, float *send, float *recv,
                               zrt__comm_req **req);

static zrt_status start_rs(zrt__comm *c, float *send, float *recv, zrt__comm_req **req)
{
    zrt__comm_for_layer(c, 3);
    return zrt__comm_reduce_scatter_f32(c, send, recv, COUNT, ZRT_SUM, req);
}

static zrt_status start_ar(zrt__comm *c, float *send, float *recv, zrt__comm_req **req)
{
    (void)recv;
    return zrt__comm_all_reduce_f32(c, send, send, (size_t)g_size * COUNT, ZRT_SUM, req);
}

static zrt_status start_ag(zrt__comm *c, float *send, float *recv, zrt__comm_req **req)
{
    zrt__comm_for_layer(c, 5);
    return c->ops->all_gather(c, send, recv, COUNT, ZRT_F32, req);
}

static zrt_status start_bc(zrt__comm *c, float *send, float *recv, zrt__comm_req **req)
{
    (void)recv; /* from the lost rank: a tree from another root may complete
                   on ranks that need nothing from the lost one */
    return c->ops->broadcast(c, send, COUNT * sizeof(float), g_size - 1, req);
}

static void case_collective(const char *name, start_fn start, const char *const *want)
{
    static float send[4096], recv[4096];
    zrt__comm *c = fresh_comm();
    if (!c)
        return;
    zrt__comm_req *req = NULL;
    zrt_status st = start(c, send, recv, &req);
    if (st != ZRT_OK) {
        fail("%s: start failed: %s", name, g_err.text);
        return;
    }
    double t0 = tc_now();
    g_cpu_start = cpu_now();
    st = c->ops->wait(c, req);
    expect_lost(c, name, st, tc_now() - t0, want);
}

/* A blocking call on a fresh communicator; first_failed (agree's) starts at
 * -2 and must stay so. */
typedef zrt_status (*call_fn)(zrt__comm *c, int *first_failed);

static zrt_status call_barrier(zrt__comm *c, int *first_failed)
{
    (void)first_failed;
    return c->ops->barrier(c);
}

static zrt_status call_agree(zrt__comm *c, int *first_failed)
{
    return c->ops->agree(c, ZRT_OK, first_failed);
}

static void case_blocking(const char *name, call_fn call, const char *const *want)
{
    zrt__comm *c = fresh_comm();
    if (!c)
        return;
    int first = -2;
    double t0 = tc_now();
    g_cpu_start = cpu_now();
    zrt_status st = call(c, &first);
    expect_lost(c, name, st, tc_now() - t0, want);
    if (first != -2)
        fail("%s: *first_failed was written (%d) although it failed", name, first);
}

/* The lost rank: in the all-reduce it sends its blocks (phase 1: MPI moves
 * them inside any MPI call, here MPI_Iprobe, without zrt advancing the
 * request) and goes silent before phase 2; then it sleeps until the job is
 * ended. */
static void be_lost(void)
{
    static float send[4096];
    zrt__comm *c = fresh_comm();
    zrt__comm_req *req = NULL;
    if (c && start_ar(c, send, NULL, &req) != ZRT_OK)
        fail("lost rank: cannot start the all-reduce: %s", g_err.text);
    for (double t0 = tc_now(); tc_now() - t0 < 0.5;) {
        int flag = 0;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        usleep(1000);
    }
    for (;;)
        sleep(1);
}

int main(void)
{
    tc_mpi_start(&g_rank, &g_size);
    g_err.rank = g_rank;
    if (g_size < 2) {
        printf("SKIP: test_comm_timeout needs 2 ranks or more\n");
        MPI_Finalize();
        return 77;
    }
    zrt__mem_account_init(&g_acct);
    if (zrt__backend_cpu_create(&g_acct, &g_err, NULL, &g_be) != ZRT_OK) {
        fail("zrt__backend_cpu_create: %s", g_err.text);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int i = 0; i < NCOMMS; i++) {
        if (zrt__comm_mpi_create(g_be, &g_err, &g_comms[i]) != ZRT_OK) {
            fail("zrt__comm_mpi_create: %s", g_err.text);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        g_comms[i]->timeout_seconds = TIMEOUT;
    }
    MPI_Comm survivors; /* to let every survivor print before the job ends */
    MPI_Comm_split(MPI_COMM_WORLD, g_rank == g_size - 1, g_rank, &survivors);
    if (g_rank == g_size - 1)
        be_lost();
    char lost[32], bytes[64];
    snprintf(lost, sizeof lost, "no answer from rank %d", g_size - 1);
    snprintf(bytes, sizeof bytes, "(%zu bytes", (size_t)g_size * COUNT * sizeof(float));
    const char *ar[] = {"all-reduce of", bytes, lost, "within 1.0 s", NULL};
    const char *rs[] = {"reduce-scatter of",    bytes, "per rank", "for layer 3",
                        "comm_timeout_seconds", NULL};
    const char *ag[] = {"all-gather of", bytes, "for layer 5", "no answer from the other",
                        NULL};
    const char *bc[] = {"broadcast of 1.00 KiB (1024 bytes)", NULL};
    case_collective("all-reduce", start_ar, ar);
    case_collective("reduce-scatter", start_rs, rs);
    case_collective("all-gather", start_ag, ag);
    case_collective("broadcast", start_bc, bc);
    const char *barrier[] = {"barrier", "within 1.0 s", "comm_timeout_seconds", NULL};
    const char *agree[] = {"agree", "comm_timeout_seconds", NULL};
    case_blocking("barrier", call_barrier, barrier);
    case_blocking("agree", call_agree, agree);
    if (g_fails == 0)
        printf("PASS rank %d\n", g_rank);
    fflush(stdout);
    MPI_Barrier(survivors);
    /* The examples' way out: abort_job ends every rank, the lost one too. */
    zrt__comm *c = g_comms[NCOMMS - 1];
    c->ops->abort_job(c, g_fails ? 1 : 3);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}
