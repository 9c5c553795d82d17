/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload/mover.h — moves blocks between a swap file and host buffers on a
 * thread of its own, so the disk works while the optimizer computes.
 *
 * Jobs (read or write of one contiguous range) run one at a time in the
 * order they were queued; each job's completion can be awaited. FIFO order is
 * the pipeline's safety rule: a write queued before a read that reuses its
 * buffer has finished before that read starts. The optimizer step queues
 *   read 0, read 1, [update 0], write 0, read 2, [update 1], write 1, ...
 * so reading layer i+1 and writing layer i-1 overlap updating layer i.
 *
 * The thread inherits the creating thread's CPU binding (the rank's cores).
 */
#ifndef ZRT_OFFLOAD_MOVER_H
#define ZRT_OFFLOAD_MOVER_H

#include <stdint.h>

#include "swap.h"

typedef struct zrt__mover zrt__mover;

zrt_status zrt__mover_create(zrt__swap *swap, zrt__errbuf *err, zrt__mover **out);
/* Queues a job and returns its ticket (tickets count up from 1). */
zrt_status zrt__mover_read(zrt__mover *mv, uint64_t offset, void *dst, size_t bytes,
                           uint64_t *ticket);
zrt_status zrt__mover_write(zrt__mover *mv, uint64_t offset, const void *src,
                            size_t bytes, uint64_t *ticket);
/* Waits until job `ticket` (and every job before it) is done. Returns the
 * first failure when that job or an earlier one failed, with its sentence
 * copied into err; every job after a failure is skipped and fails with it:
 * after an I/O error the swap's content is not trusted. Waiting for jobs
 * that finished before the failure succeeds, so where a failure surfaces
 * depends on the queue order only, not on timing. */
zrt_status zrt__mover_wait(zrt__mover *mv, uint64_t ticket, zrt__errbuf *err);
/* Waits for every queued job, then accepts jobs again after a failure. For
 * a caller that knows what the failure touched (the step's unused slot)
 * and will not trust it; every read still verifies its checksums. */
void zrt__mover_forget_failure(zrt__mover *mv);
/* Waits for every queued job, stops the thread. NULL is a no-op. */
void zrt__mover_destroy(zrt__mover *mv);

#endif /* ZRT_OFFLOAD_MOVER_H */
