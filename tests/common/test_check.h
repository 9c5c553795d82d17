/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/test_check.h — a Check suite's registration and main, once.
 *
 * ZRT_CHECK_SUITE(name, timeout, tests...): a suite of one test case.
 * zrt_check_main(suite): runs it (each test forked, as Check does by
 * default) and gives main's exit status, 0 or 1.
 * For a suite in an MPI program (include <mpi.h> before this header):
 * zrt_check_mpi_init starts MPI; zrt_check_main_mpi(suite, name) runs the
 * suite without fork (a forked child cannot use MPI), every rank the same
 * tests in the same order, only rank 0 printing, and gives 1 on every rank
 * if any rank failed. The caller calls MPI_Finalize.
 */
#ifndef ZRT_TEST_CHECK_H
#define ZRT_TEST_CHECK_H

#include "test_common.h"

#include <check.h>

/* A suite of one test case ("core") that runs the tests in the order
 * given, each within timeout seconds (0: Check's default, 4 s unless
 * CK_DEFAULT_TIMEOUT says otherwise):
 *   return zrt_check_main(ZRT_CHECK_SUITE("plan", 60, test_a, test_b));
 * A suite with fixtures or loop tests builds its TCase by hand. */
#define ZRT_CHECK_SUITE(name, timeout, ...)                                              \
    zrt__check_suite((name), (timeout), (const TTest *const[]){__VA_ARGS__, NULL})

static inline Suite *zrt__check_suite(const char *name, double timeout,
                                      const TTest *const *tests)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create("core");
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    for (; *tests; tests++)
        tcase_add_test(tc, *tests);
    suite_add_tcase(s, tc);
    return s;
}

static inline int zrt_check_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#ifdef MPI_VERSION
/* MPI_Init, then this rank and the world's size. */
static inline void zrt_check_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

static inline int zrt_check_main_mpi(Suite *s, const char *name)
{
    int rank, failed, any_failed = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, rank == 0 ? CK_NORMAL : CK_SILENT);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (failed)
        fprintf(stderr, "rank %d: %d %s tests failed\n", rank, failed, name);
    return any_failed ? 1 : 0;
}
#endif

#endif
