/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/ckpt_writer.c — an asynchronous save's writer thread (ckpt_writer.h).
 *
 * The ring: `pushed` and `taken` count bytes since the start (never wrap);
 * pushed - taken bytes wait at ring[taken % size]. The training thread
 * advances `pushed`, the writer `taken`, both under the mutex; each waits on
 * the condition variable for the other. The writer copies nothing: it
 * writes from the ring to the file and only then releases the space.
 */
#include "ckpt_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../offload/crc32c.h"
#include "../runtime/file_limit.h"

struct zrt__ckpt_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t moved; /* pushed, taken, finished or cancelled changed */
    char *ring;
    uint64_t size, pushed, taken;
    int finished, cancelled;
    zrt_status status;
    zrt__errbuf err;
    char dir[ZRT__CKPT_PATH];
    char path[ZRT__CKPT_PATH + 64], tmp[ZRT__CKPT_PATH + 80];
    zrt__ckpt_file_id id;
    zrt__ckpt_section *sections;
    int n;
    uint32_t header_crc;
    uint64_t file_bytes;
};

/* The writer: waits for data at the ring's tail; returns how many bytes
 * (at most want, contiguous in the ring) are there, 0 when cancelled. */
static uint64_t wait_for_data(zrt__ckpt_writer *w, uint64_t want)
{
    pthread_mutex_lock(&w->lock);
    while (w->pushed == w->taken && !w->cancelled)
        pthread_cond_wait(&w->moved, &w->lock);
    uint64_t have = w->cancelled ? 0 : w->pushed - w->taken;
    pthread_mutex_unlock(&w->lock);
    uint64_t to_end = w->size - w->taken % w->size;
    have = have < to_end ? have : to_end;
    return have < want ? have : want;
}

static void release_space(zrt__ckpt_writer *w, uint64_t bytes)
{
    pthread_mutex_lock(&w->lock);
    w->taken += bytes;
    pthread_cond_broadcast(&w->moved);
    pthread_mutex_unlock(&w->lock);
}

/* One section's data from the ring into the file, checksummed. */
static zrt_status write_section(zrt__ckpt_writer *w, int fd, zrt__ckpt_section *s)
{
    uint64_t done = 0;
    uint32_t crc = 0;
    while (done < s->bytes) {
        uint64_t chunk = wait_for_data(w, s->bytes - done);
        if (chunk == 0)
            return zrt__fail(&w->err, ZRT_ERR_STATE,
                             "zrt_save: the asynchronous write of '%s' was cancelled",
                             w->tmp);
        const char *src = w->ring + w->taken % w->size;
        crc = zrt__crc32c(crc, src, chunk);
        ZRT_CHECK(zrt__ckpt_pwrite(fd, src, chunk, s->offset + done, w->tmp, &w->err));
        release_space(w, chunk);
        done += chunk;
    }
    s->crc = crc;
    return ZRT_OK;
}

/* The whole file through its temporary name; durable on ZRT_OK. */
static zrt_status write_file(zrt__ckpt_writer *w)
{
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return zrt__ckpt_io_fail(&w->err, "create", w->tmp, errno);
    zrt_status st = ZRT_OK;
    for (int i = 0; st == ZRT_OK && i < w->n; i++)
        st = write_section(w, fd, &w->sections[i]);
    if (st == ZRT_OK)
        st = zrt__ckpt_write_header_and_table(fd, w->tmp, &w->id, w->sections, w->n,
                                              &w->header_crc, &w->file_bytes, &w->err);
    if (st == ZRT_OK && fsync(fd) != 0)
        st = zrt__ckpt_io_fail(&w->err, "fsync", w->tmp, errno);
    if (close(fd) != 0 && st == ZRT_OK)
        st = zrt__ckpt_io_fail(&w->err, "close", w->tmp, errno);
    if (st == ZRT_OK && rename(w->tmp, w->path) != 0)
        st = zrt__ckpt_io_fail(&w->err, "rename into place", w->tmp, errno);
    if (st != ZRT_OK) {
        unlink(w->tmp);
        return st;
    }
    return zrt__ckpt_fsync_dir(w->dir, &w->err);
}

static void *writer_main(void *arg)
{
    zrt__ckpt_writer *w = arg;
    zrt_status st = write_file(w);
    pthread_mutex_lock(&w->lock);
    w->status = st;
    w->finished = 1;
    pthread_cond_broadcast(&w->moved);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void free_writer(zrt__ckpt_writer *w)
{
    pthread_cond_destroy(&w->moved);
    pthread_mutex_destroy(&w->lock);
    free(w->sections);
    free(w);
}

static zrt_status set_paths(zrt__ckpt_writer *w, const char *dir, const char *name,
                            zrt__errbuf *err)
{
    if (snprintf(w->dir, sizeof w->dir, "%s", dir) >= (int)sizeof w->dir)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG, "zrt_save: directory name too long");
    ZRT_CHECK(zrt__ckpt_join(w->path, sizeof w->path, dir, name, err));
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path);
    return ZRT_OK;
}

static uint64_t file_size(const zrt__ckpt_section *s, int n)
{
    return n ? s[n - 1].offset + s[n - 1].bytes : ZRT__CKPT_HEADER_BYTES;
}

zrt_status zrt__ckpt_writer_start(const char *dir, const char *name,
                                  const zrt__ckpt_file_id *id,
                                  const zrt__ckpt_section *sections, int n, void *ring,
                                  size_t ring_bytes, zrt__errbuf *err,
                                  zrt__ckpt_writer **out)
{
    zrt__ckpt_writer *w = calloc(1, sizeof *w);
    if (!w)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory for a writer");
    w->sections = malloc(((size_t)n + 1) * sizeof *sections);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->moved, NULL);
    zrt_status st = w->sections ? set_paths(w, dir, name, err)
                                : zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                                            "zrt_save: no memory for %d sections", n);
    if (st == ZRT_OK)
        st = zrt__check_file_size_limit(file_size(sections, n), "the checkpoint file",
                                        w->tmp, err);
    if (st == ZRT_OK && ring_bytes == 0 &&
        file_size(sections, n) > ZRT__CKPT_HEADER_BYTES)
        st = zrt__fail(err, ZRT_ERR_INTERNAL, "zrt_save: no asynchronous buffer");
    if (st != ZRT_OK) {
        free_writer(w);
        return st;
    }
    memcpy(w->sections, sections, (size_t)n * sizeof *sections);
    w->n = n;
    w->id = *id;
    w->ring = ring;
    w->size = ring_bytes ? ring_bytes : 1;
    w->err.rank = err->rank;
    int e = pthread_create(&w->thread, NULL, writer_main, w);
    if (e != 0) {
        free_writer(w);
        char why[128];
        return zrt__fail(err, ZRT_ERR_INTERNAL,
                         "zrt_save: cannot start the checkpoint writer thread: %s",
                         zrt__errno_text(e, why, sizeof why));
    }
    *out = w;
    return ZRT_OK;
}

zrt_status zrt__ckpt_writer_push(zrt__ckpt_writer *w, const void *src, size_t bytes)
{
    const char *from = src;
    while (bytes > 0) {
        pthread_mutex_lock(&w->lock);
        while (w->pushed - w->taken == w->size && !w->finished)
            pthread_cond_wait(&w->moved, &w->lock);
        int failed = w->finished; /* before all its data came: it failed */
        uint64_t room = w->size - (w->pushed - w->taken);
        pthread_mutex_unlock(&w->lock);
        if (failed)
            return ZRT_ERR_IO;
        uint64_t at = w->pushed % w->size, to_end = w->size - at;
        uint64_t chunk = room < to_end ? room : to_end;
        chunk = chunk < bytes ? chunk : bytes;
        memcpy(w->ring + at, from, chunk); /* space the writer has released */
        pthread_mutex_lock(&w->lock);
        w->pushed += chunk;
        pthread_cond_broadcast(&w->moved);
        pthread_mutex_unlock(&w->lock);
        from += chunk;
        bytes -= chunk;
    }
    return ZRT_OK;
}

int zrt__ckpt_writer_finished(zrt__ckpt_writer *w)
{
    pthread_mutex_lock(&w->lock);
    int finished = w->finished;
    pthread_mutex_unlock(&w->lock);
    return finished;
}

void zrt__ckpt_writer_cancel(zrt__ckpt_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->cancelled = 1;
    pthread_cond_broadcast(&w->moved);
    pthread_mutex_unlock(&w->lock);
}

zrt_status zrt__ckpt_writer_join(zrt__ckpt_writer *w, uint32_t *header_crc,
                                 uint64_t *file_bytes, zrt__errbuf *err)
{
    pthread_join(w->thread, NULL);
    zrt_status st = w->status;
    if (st == ZRT_OK) {
        *header_crc = w->header_crc;
        *file_bytes = w->file_bytes;
    } else {
        memcpy(err->text, w->err.text, sizeof err->text);
    }
    free_writer(w);
    return st;
}
