/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/threads.h — the rank's helper threads, bound inside its cores.
 *
 * At context creation the pool asks hwloc which cores this process is bound
 * to (what mpirun or zero-launch gave the rank) and starts one worker per core
 * beyond the first, each bound to its own core; the calling thread is worker
 * 0 and is never rebound. A rank bound to one core gets no extra threads.
 * A rank that was not bound at all (it may use the whole host) while several
 * ranks share the host takes its share of the cores by local rank, so the
 * ranks' helper threads do not pile onto the same cores.
 * The cpu backend's optimizer kernels split their arrays across the workers;
 * later the offload I/O uses them too.
 */
#ifndef ZRT_RUNTIME_THREADS_H
#define ZRT_RUNTIME_THREADS_H

#include <hwloc.h>

#include "error.h"

typedef struct zrt__pool zrt__pool;

/* fn runs once on each worker; worker in [0, nworkers). */
typedef void (*zrt__task_fn)(void *arg, int worker, int nworkers);

/* max_workers 0: one per core of the process's binding. local_rank and
 * local_size place this rank among the ranks of its host. */
zrt_status zrt__pool_create(int max_workers, int local_rank, int local_size,
                            zrt__errbuf *err, zrt__pool **out);
/* Runs fn on every worker (the caller is worker 0) and returns when all are
 * done. Not reentrant: one run at a time. */
void zrt__pool_run(zrt__pool *pool, zrt__task_fn fn, void *arg);
int zrt__pool_size(const zrt__pool *pool);
/* The cores the process was bound to when the pool started. */
hwloc_const_cpuset_t zrt__pool_process_cpuset(const zrt__pool *pool);
/* Where worker i (i >= 1) is bound, as the worker itself read it back from
 * the OS after binding; worker 0's is the process cpuset. */
hwloc_const_cpuset_t zrt__pool_worker_cpuset(const zrt__pool *pool, int index);
void zrt__pool_destroy(zrt__pool *pool);

#endif /* ZRT_RUNTIME_THREADS_H */
