/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_binding.c — a rank's cores and its helper threads.
 *
 * Run under zero-launch --bind core: the launcher gives each rank
 * max(1, cores / ranks-per-host) cores. This program checks, on every rank,
 * that the CPU set the OS reports for the process is what hwloc reports, that
 * it holds that many cores, and that each zrt helper thread is bound to one
 * core inside it, no two to the same core. It prints what it saw.
 */
#include <hwloc.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "../common/test_common.h"
#include "runtime/threads.h"
#include "zero/ctx.h"

/* The process's affinity as the OS reports it, as an hwloc bitmap. */
static hwloc_bitmap_t os_affinity(void)
{
    cpu_set_t mask;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    sched_getaffinity(0, sizeof mask, &mask);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &mask))
            hwloc_bitmap_set(set, (unsigned)cpu);
    return set;
}

static int expected_cores(hwloc_topology_t topo)
{
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int ranks = local ? atoi(local) : 1;
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int per_rank = ranks > 0 ? cores / ranks : 1;
    return per_rank > 0 ? per_rank : 1;
}

static void check_pool(hwloc_topology_t topo, const zrt__pool *pool, int rank)
{
    hwloc_const_cpuset_t process = zrt__pool_process_cpuset(pool);
    hwloc_bitmap_t os = os_affinity(), used = hwloc_bitmap_alloc();
    char text[256];
    hwloc_bitmap_list_snprintf(text, sizeof text, process);
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, process, HWLOC_OBJ_CORE);
    printf("rank %d: bound to PUs %s (%d cores); %d helper worker(s)\n", rank, text,
           cores, zrt__pool_size(pool));
    TEST_CHECK(hwloc_bitmap_isequal(os, process),
               "hwloc and the OS disagree on the binding");
    TEST_CHECK(cores == expected_cores(topo), "%d cores, expected %d", cores,
               expected_cores(topo));
    TEST_CHECK(zrt__pool_size(pool) == cores, "%d workers for %d cores",
               zrt__pool_size(pool), cores);
    for (int i = 1; i < zrt__pool_size(pool); i++) {
        hwloc_const_cpuset_t w = zrt__pool_worker_cpuset(pool, i);
        hwloc_bitmap_list_snprintf(text, sizeof text, w);
        printf("rank %d: helper thread %d on PUs %s\n", rank, i, text);
        TEST_CHECK(hwloc_bitmap_isincluded(w, process),
                   "thread %d outside the rank's cores", i);
        TEST_CHECK(!hwloc_bitmap_intersects(w, used), "thread %d shares a core", i);
        TEST_CHECK(hwloc_get_nbobjs_inside_cpuset_by_type(topo, w, HWLOC_OBJ_CORE) == 1,
                   "thread %d is not bound to exactly one core", i);
        hwloc_bitmap_or(used, used, w);
    }
    hwloc_bitmap_free(os);
    hwloc_bitmap_free(used);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.log_level = 0;
    zrt_ctx *ctx;
    int rank = 0, total = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    test_rank = rank;
    hwloc_topology_t topo;
    hwloc_topology_init(&topo);
    hwloc_topology_load(topo);
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK) {
        TEST_FAIL("zrt_ctx_create failed");
    } else {
        check_pool(topo, ctx->pool, rank);
        zrt_ctx_destroy(ctx);
    }
    hwloc_topology_destroy(topo);
    MPI_Allreduce(&test_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d passed, %d failed\n", total == 0 ? 1 : 0, total == 0 ? 0 : 1);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
