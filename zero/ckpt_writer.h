/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/ckpt_writer.h — the thread of an asynchronous save: it writes one
 * rank file of a checkpoint (checkpoint.h's layout) from the bytes the
 * training thread pushes through a ring buffer, so that training goes on
 * while the disk works.
 *
 * The training thread pushes the sections' data in table order (push);
 * the writer takes it from the ring as it comes, writes each piece at its
 * place in DIR/NAME.tmp, checksums each section on the way, then writes the
 * section table and header, fsyncs, renames the file to DIR/NAME and fsyncs
 * DIR: the file is durable when the writer reports it finished. A push
 * waits only while the ring is full, so with a ring as large as the file
 * the training thread never waits for the disk.
 *
 * On a failure (a full disk, say) the writer stops, removes its temporary
 * file and keeps its sentence for join; later pushes return at once. No
 * state outside the writer's own struct; the ring belongs to the caller and
 * must outlive join.
 */
#ifndef ZRT_ZERO_CKPT_WRITER_H
#define ZRT_ZERO_CKPT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/error.h"
#include "checkpoint.h"

typedef struct zrt__ckpt_writer zrt__ckpt_writer;

/* Starts the thread for the file DIR/NAME of these n sections (offsets
 * and sizes set; their CRCs are the writer's to fill), writing through
 * ring[0 .. ring_bytes). On failure (no thread, no memory, a file over the
 * size limit) writes a sentence into err and leaves *out untouched. */
zrt_status zrt__ckpt_writer_start(const char *dir, const char *name,
                                  const zrt__ckpt_file_id *id,
                                  const zrt__ckpt_section *sections, int n, void *ring,
                                  size_t ring_bytes, zrt__errbuf *err,
                                  zrt__ckpt_writer **out);

/* Appends bytes of the sections' data (in table order) to the ring,
 * waiting while it is full. ZRT_ERR_IO at once when the writer has failed
 * (join says why). */
zrt_status zrt__ckpt_writer_push(zrt__ckpt_writer *w, const void *src, size_t bytes);

/* Whether the writer has ended: the file durable, or failed. */
int zrt__ckpt_writer_finished(zrt__ckpt_writer *w);

/* Tells a writer whose data will not all come to stop (removing its
 * temporary file); join follows. */
void zrt__ckpt_writer_cancel(zrt__ckpt_writer *w);

/* Waits for the writer, frees it and returns how it ended: ZRT_OK with
 * the header's CRC and the file's size, or its failure, whose sentence is
 * copied into err. */
zrt_status zrt__ckpt_writer_join(zrt__ckpt_writer *w, uint32_t *header_crc,
                                 uint64_t *file_bytes, zrt__errbuf *err);

#endif /* ZRT_ZERO_CKPT_WRITER_H */
