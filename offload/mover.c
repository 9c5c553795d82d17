/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload/mover.c — the swap file's I/O thread (see mover.h): a FIFO ring of
 * jobs, a done counter, and the first error.
 */
#include "mover.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { QUEUE_SLOTS = 16 };

typedef struct job {
    int write;
    uint64_t offset;
    void *buf;
    size_t bytes;
} job;

struct zrt__mover {
    zrt__swap *swap; /* not owned */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t queued, finished;
    job ring[QUEUE_SLOTS];
    uint64_t next_ticket; /* tickets issued */
    uint64_t done;        /* tickets finished */
    int stopping;
    zrt_status failure;     /* first failure, sticky */
    uint64_t failed_ticket; /* the job that failed first */
    zrt__errbuf failure_text;
};

static zrt_status run_job(zrt__mover *mv, const job *j, zrt__errbuf *err)
{
    if (j->write)
        return zrt__swap_write(mv->swap, j->offset, j->buf, j->bytes, err);
    return zrt__swap_read(mv->swap, j->offset, j->buf, j->bytes, err);
}

static void *mover_main(void *p)
{
    zrt__mover *mv = p;
    zrt__errbuf err = {.rank = mv->failure_text.rank};
    pthread_mutex_lock(&mv->lock);
    for (;;) {
        while (mv->done == mv->next_ticket && !mv->stopping)
            pthread_cond_wait(&mv->queued, &mv->lock);
        if (mv->done == mv->next_ticket)
            break; /* stopping, nothing left */
        job j = mv->ring[mv->done % QUEUE_SLOTS];
        int skip = mv->failure != ZRT_OK;
        pthread_mutex_unlock(&mv->lock);
        zrt_status st = skip ? ZRT_OK : run_job(mv, &j, &err);
        pthread_mutex_lock(&mv->lock);
        if (st != ZRT_OK && mv->failure == ZRT_OK) {
            mv->failure = st;
            mv->failure_text = err;
            mv->failed_ticket = mv->done + 1;
        }
        mv->done++;
        pthread_cond_broadcast(&mv->finished);
    }
    pthread_mutex_unlock(&mv->lock);
    return NULL;
}

zrt_status zrt__mover_create(zrt__swap *swap, zrt__errbuf *err, zrt__mover **out)
{
    zrt__mover *mv = calloc(1, sizeof *mv);
    if (!mv)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate the I/O mover");
    mv->swap = swap;
    mv->failure_text.rank = err ? err->rank : -1;
    pthread_mutex_init(&mv->lock, NULL);
    pthread_cond_init(&mv->queued, NULL);
    pthread_cond_init(&mv->finished, NULL);
    if (pthread_create(&mv->thread, NULL, mover_main, mv)) {
        free(mv);
        return zrt__fail(err, ZRT_ERR_INTERNAL, "cannot start the swap I/O thread");
    }
    *out = mv;
    return ZRT_OK;
}

static zrt_status enqueue(zrt__mover *mv, const job *j, uint64_t *ticket)
{
    pthread_mutex_lock(&mv->lock);
    while (mv->next_ticket - mv->done >= QUEUE_SLOTS) /* ring full */
        pthread_cond_wait(&mv->finished, &mv->lock);
    mv->ring[mv->next_ticket % QUEUE_SLOTS] = *j;
    *ticket = ++mv->next_ticket;
    pthread_cond_signal(&mv->queued);
    pthread_mutex_unlock(&mv->lock);
    return ZRT_OK;
}

zrt_status zrt__mover_read(zrt__mover *mv, uint64_t offset, void *dst, size_t bytes,
                           uint64_t *ticket)
{
    job j = {.write = 0, .offset = offset, .buf = dst, .bytes = bytes};
    return enqueue(mv, &j, ticket);
}

zrt_status zrt__mover_write(zrt__mover *mv, uint64_t offset, const void *src,
                            size_t bytes, uint64_t *ticket)
{
    job j = {.write = 1, .offset = offset, .buf = (void *)src, .bytes = bytes};
    return enqueue(mv, &j, ticket);
}

zrt_status zrt__mover_wait(zrt__mover *mv, uint64_t ticket, zrt__errbuf *err)
{
    pthread_mutex_lock(&mv->lock);
    while (mv->done < ticket)
        pthread_cond_wait(&mv->finished, &mv->lock);
    /* Jobs before the failed one succeeded: waiting for them is not an
     * error, which makes where a failure surfaces independent of timing. */
    zrt_status st =
        mv->failure != ZRT_OK && ticket >= mv->failed_ticket ? mv->failure : ZRT_OK;
    if (st != ZRT_OK && err)
        memcpy(err->text, mv->failure_text.text, sizeof err->text);
    pthread_mutex_unlock(&mv->lock);
    return st;
}

void zrt__mover_forget_failure(zrt__mover *mv)
{
    pthread_mutex_lock(&mv->lock);
    while (mv->done < mv->next_ticket)
        pthread_cond_wait(&mv->finished, &mv->lock);
    mv->failure = ZRT_OK;
    mv->failed_ticket = 0;
    pthread_mutex_unlock(&mv->lock);
}

void zrt__mover_destroy(zrt__mover *mv)
{
    if (!mv)
        return;
    pthread_mutex_lock(&mv->lock);
    mv->stopping = 1;
    pthread_cond_signal(&mv->queued);
    pthread_mutex_unlock(&mv->lock);
    pthread_join(mv->thread, NULL);
    pthread_cond_destroy(&mv->queued);
    pthread_cond_destroy(&mv->finished);
    pthread_mutex_destroy(&mv->lock);
    free(mv);
}
