/* SPDX-License-Identifier: Apache-2.0 */
/*
 * launch_victim — an MPI program that fails on purpose, for
 * tests/scripts/launch_failures.sh and launch_restart.sh.
 *
 *   launch_victim ok|exit3|abort|kill
 *   launch_victim --fail-unless-restarted K [STEPS]
 *
 * Every rank runs STEPS steps of one MPI_Allreduce each, sleeping 10 ms per
 * step, so a job where nothing fails takes about 10 s. At step FAIL_STEP:
 *   exit3  rank 1 returns 3 from main (no MPI_Finalize: the others are inside
 *          a collective and never would reach it);
 *   abort  rank 1 calls abort();
 *   kill   rank N-1 sends itself SIGKILL.
 * The other ranks keep calling MPI_Allreduce and would wait forever for the
 * missing rank unless the launcher and MPI end the job. "ok" finishes and
 * exits 0.
 *
 * --fail-unless-restarted K: every rank first prints "rank R restart X
 * elastic_world Y" (X, Y: ZRT_RESTART and ZRT_ELASTIC_WORLD, "unset" when
 * not set); while ZRT_RESTART (0 when unset) is below K, rank 1 returns 1 at
 * step FAIL_STEP like exit3; otherwise the job runs STEPS steps (default 20,
 * 0.2 s) and exits 0.
 */
#include <mpi.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { STEPS = 1000, FAIL_STEP = 5, STEP_US = 10000 };

/* Returns the value main should return at this step, or -1 to go on. */
static int fail_here(const char *mode, int rank, int size, int step)
{
    if (step != FAIL_STEP)
        return -1;
    if (strcmp(mode, "exit3") == 0 && rank == 1)
        return 3;
    if (strcmp(mode, "abort") == 0 && rank == 1)
        abort();
    if (strcmp(mode, "kill") == 0 && rank == size - 1)
        raise(SIGKILL);
    return -1;
}

/* --fail-unless-restarted K [STEPS]: says what the launcher passed; returns
 * the step at which rank 1 fails (-1: none), *steps the steps to run. */
static int restart_mode(int argc, char **argv, int rank, int *steps)
{
    const char *restart = getenv("ZRT_RESTART"), *world = getenv("ZRT_ELASTIC_WORLD");
    int k = atoi(argv[2]);
    *steps = argc > 3 ? atoi(argv[3]) : 20;
    printf("rank %d restart %s elastic_world %s\n", rank, restart ? restart : "unset",
           world ? world : "unset");
    fflush(stdout);
    return (restart ? atoi(restart) : 0) < k && rank == 1 ? FAIL_STEP : -1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    bool restart = strcmp(mode, "--fail-unless-restarted") == 0;
    if (restart ? argc < 3 || argc > 4
                : strcmp(mode, "ok") && strcmp(mode, "exit3") && strcmp(mode, "abort") &&
                      strcmp(mode, "kill")) {
        fprintf(stderr, "usage: launch_victim ok|exit3|abort|kill\n"
                        "       launch_victim --fail-unless-restarted K [STEPS]\n");
        return 2;
    }
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        fprintf(stderr, "launch_victim: needs at least 2 ranks\n");
        MPI_Finalize();
        return 2;
    }
    int steps = STEPS, fail_at = restart ? restart_mode(argc, argv, rank, &steps) : -1;
    double sum = 0;
    for (int step = 0; step < steps; step++) {
        int rc = step == fail_at ? 1 : fail_here(mode, rank, size, step);
        if (rc >= 0)
            return rc;
        double x = rank + step, y = 0;
        MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        sum += y;
        usleep(STEP_US);
    }
    if (rank == 0)
        printf("launch_victim: %d steps, sum %.0f\n", steps, sum);
    MPI_Finalize();
    return 0;
}
