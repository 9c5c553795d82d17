/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/test_shared_dir.h — a temporary directory that every rank of
 * an MPI Check suite sees (the checkpoint suites save into it), and its
 * removal. Collective: every rank calls both.
 */
#ifndef ZRT_TEST_SHARED_DIR_H
#define ZRT_TEST_SHARED_DIR_H

#include <check.h>
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

/* Rank 0 makes a directory from pattern (mkdtemp's "...XXXXXX"); every rank
 * learns its name. */
static inline void shared_dir(char *dir, size_t size, const char *pattern)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        snprintf(dir, size, "%s", pattern);
        ck_assert_ptr_nonnull(mkdtemp(dir));
    }
    MPI_Bcast(dir, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* Once every rank is done with it, rank 0 removes dir and all it holds. */
static inline void remove_tree(const char *dir)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        ck_assert_msg(test_remove_tree(dir) == 0, "removing %s: %s", dir,
                      strerror(errno));
    MPI_Barrier(MPI_COMM_WORLD);
}

#endif
