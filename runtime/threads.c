/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/threads.c — a small fixed pool of helper threads, each bound to one
 * core of the process's binding (see threads.h). Work is handed out by
 * generation: the caller bumps the generation, every worker runs the task
 * once, the last one to finish wakes the caller.
 */
#include "threads.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct worker {
    zrt__pool *pool;
    int index;
    pthread_t thread;
    hwloc_bitmap_t bound; /* read back after binding */
} worker;

struct zrt__pool {
    hwloc_topology_t topo;
    hwloc_bitmap_t process_set;
    int size;        /* workers including the caller */
    int started;     /* threads running: workers [1, started] */
    worker *workers; /* [1, size) are threads */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    unsigned long generation;
    int pending; /* threads still running this generation */
    int ready;   /* threads that have bound themselves */
    int stopping;
    zrt__task_fn fn;
    void *arg;
};

static void bind_to_core(worker *w, hwloc_obj_t core)
{
    hwloc_bitmap_t set = hwloc_bitmap_dup(core->cpuset);
    hwloc_set_cpubind(w->pool->topo, set, HWLOC_CPUBIND_THREAD);
    hwloc_get_cpubind(w->pool->topo, w->bound, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(set);
}

static void *worker_main(void *p)
{
    worker *w = p;
    zrt__pool *pool = w->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->generation == seen && !pool->stopping)
            pthread_cond_wait(&pool->start, &pool->lock);
        if (pool->stopping)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        pool->fn(pool->arg, w->index, pool->size);
        pthread_mutex_lock(&pool->lock);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Worker threads bind themselves before their first task. */
typedef struct start_args {
    worker *w;
    hwloc_obj_t core;
} start_args;

static void *worker_start(void *p)
{
    start_args a = *(start_args *)p;
    free(p);
    bind_to_core(a.w, a.core);
    zrt__pool *pool = a.w->pool;
    pthread_mutex_lock(&pool->lock);
    pool->ready++;
    pthread_cond_signal(&pool->done);
    pthread_mutex_unlock(&pool->lock);
    return worker_main(a.w);
}

/* Returns once every started worker is bound, so a pool that exists is a
 * pool whose threads are where they should be. */
static void wait_until_bound(zrt__pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (pool->ready < pool->started)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

static zrt_status load_topology(zrt__pool *pool, zrt__errbuf *err)
{
    if (hwloc_topology_init(&pool->topo) || hwloc_topology_load(pool->topo))
        return zrt__fail(err, ZRT_ERR_INTERNAL, "hwloc could not read the topology");
    pool->process_set = hwloc_bitmap_alloc();
    if (hwloc_get_cpubind(pool->topo, pool->process_set, HWLOC_CPUBIND_PROCESS))
        hwloc_bitmap_copy(pool->process_set,
                          hwloc_topology_get_allowed_cpuset(pool->topo));
    return ZRT_OK;
}

/* An unbound rank among several on the host: its share of the cores,
 * cores [local_rank * k, (local_rank + 1) * k) with k = cores / local_size
 * (at least the one core the rank's own thread will use). */
static void take_share_if_unbound(zrt__pool *pool, int local_rank, int local_size)
{
    hwloc_const_cpuset_t all = hwloc_topology_get_allowed_cpuset(pool->topo);
    if (local_size <= 1 || !hwloc_bitmap_isequal(pool->process_set, all))
        return;
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(pool->topo, all, HWLOC_OBJ_CORE);
    int share = cores / local_size > 0 ? cores / local_size : 1;
    int first = (local_rank * share) % (cores > 0 ? cores : 1);
    hwloc_bitmap_zero(pool->process_set);
    for (int i = first; i < first + share && i < cores; i++) {
        hwloc_obj_t core =
            hwloc_get_obj_inside_cpuset_by_type(pool->topo, all, HWLOC_OBJ_CORE, i);
        hwloc_bitmap_or(pool->process_set, pool->process_set, core->cpuset);
    }
}

static zrt_status start_workers(zrt__pool *pool, zrt__errbuf *err)
{
    for (int i = 1; i < pool->size; i++) {
        worker *w = &pool->workers[i];
        start_args *a = malloc(sizeof *a);
        hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(
            pool->topo, pool->process_set, HWLOC_OBJ_CORE, i);
        if (!a || !core ||
            (*a = (start_args){.w = w, .core = core},
             pthread_create(&w->thread, NULL, worker_start, a))) {
            free(a);
            return zrt__fail(err, ZRT_ERR_INTERNAL, "cannot start helper thread %d of %d",
                             i, pool->size - 1);
        }
        pool->started = i;
    }
    return ZRT_OK;
}

zrt_status zrt__pool_create(int max_workers, int local_rank, int local_size,
                            zrt__errbuf *err, zrt__pool **out)
{
    zrt__pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate the thread pool");
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    zrt_status st = load_topology(pool, err);
    if (st == ZRT_OK)
        take_share_if_unbound(pool, local_rank, local_size);
    if (st == ZRT_OK) {
        int cores = hwloc_get_nbobjs_inside_cpuset_by_type(pool->topo, pool->process_set,
                                                           HWLOC_OBJ_CORE);
        pool->size = cores < 1 ? 1 : cores;
        if (max_workers > 0 && pool->size > max_workers)
            pool->size = max_workers;
        pool->workers = calloc((size_t)pool->size, sizeof *pool->workers);
        if (!pool->workers)
            st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate %d workers",
                           pool->size);
    }
    for (int i = 0; st == ZRT_OK && i < pool->size; i++)
        pool->workers[i] =
            (worker){.pool = pool, .index = i, .bound = hwloc_bitmap_alloc()};
    if (st == ZRT_OK)
        st = start_workers(pool, err);
    wait_until_bound(pool);
    if (st != ZRT_OK) {
        zrt__pool_destroy(pool);
        return st;
    }
    *out = pool;
    return ZRT_OK;
}

void zrt__pool_run(zrt__pool *pool, zrt__task_fn fn, void *arg)
{
    if (pool->size == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->pending = pool->size - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    fn(arg, 0, pool->size);
    pthread_mutex_lock(&pool->lock);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

int zrt__pool_size(const zrt__pool *pool)
{
    return pool->size;
}

hwloc_const_cpuset_t zrt__pool_process_cpuset(const zrt__pool *pool)
{
    return pool->process_set;
}

hwloc_const_cpuset_t zrt__pool_worker_cpuset(const zrt__pool *pool, int index)
{
    return index == 0 ? pool->process_set : pool->workers[index].bound;
}

void zrt__pool_destroy(zrt__pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i <= pool->started; i++)
        pthread_join(pool->workers[i].thread, NULL);
    for (int i = 0; pool->workers && i < pool->size; i++)
        hwloc_bitmap_free(pool->workers[i].bound);
    free(pool->workers);
    hwloc_bitmap_free(pool->process_set);
    if (pool->topo)
        hwloc_topology_destroy(pool->topo);
    pthread_cond_destroy(&pool->start);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
