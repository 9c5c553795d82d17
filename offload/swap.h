/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload/swap.h — one NVMe swap file per (rank, name), read and written
 * block by block with O_DIRECT through io_uring registered buffers.
 *
 * A swap is scratch for one run: open makes an unnamed file in the rank
 * directory <dir>/zrt-rank<R> (O_TMPFILE; where the file system refuses it,
 * <name>.swap created with O_EXCL and unlinked at once), so the file
 * vanishes with the process however it ends (exit, SIGKILL, abort); close
 * frees it. Messages call it <dir>/zrt-rank<R>/<name>.swap. The rank
 * directory must be a directory (not a link) owned by the process's uid with
 * mode 0700; open creates it so, takes such a one left by an earlier run,
 * and refuses anything else. The file is cut into blocks of block_size
 * bytes; block K lives at offset K * block_size. Every block written
 * carries a CRC32C of its payload, kept in memory with the payload length;
 * a read verifies both, so a torn, flipped or never-written block is an
 * error, never silent data.
 *
 * Invariants:
 *   - offsets passed to read/write are multiples of block_size;
 *   - a read must match, block for block, the payload lengths that earlier
 *     successful writes stored (a write of N bytes at O is read back as N
 *     bytes at O; only the last block of a write may be partial);
 *   - a write that fails leaves every block it touched invalid.
 *
 * Not thread-safe: one thread drives one swap at a time (the tier mover).
 * Each call is synchronous: it returns when all its blocks are done, keeping
 * up to buffer_count blocks in flight meanwhile.
 */
#ifndef ZRT_OFFLOAD_SWAP_H
#define ZRT_OFFLOAD_SWAP_H

#include "../runtime/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct zrt__swap_config {
    const char *dir;   /* parent directory; created (mkdir -p, 0700) if missing */
    int rank;          /* >= 0; names the subdirectory zrt-rank<R> */
    size_t block_size; /* bytes per I/O block, a multiple of the file system's
                          direct-I/O alignment; 0: 1 MiB */
    int queue_depth;   /* io_uring entries; 0: 8 */
    int buffer_count;  /* registered staging buffers of block_size; 0: 4 */
    int named_file;    /* tests: skip O_TMPFILE and take the fallback, as on a
                          file system that refuses it; 0 in production */
} zrt__swap_config;

typedef struct zrt__swap zrt__swap;

/* Creates the rank directory and the swap file, reserves `capacity` bytes
 * (rounded up to whole blocks) with fallocate, sets up the ring and registers
 * the staging buffers. Fails with ZRT_ERR_INVALID_ARG (bad config or name),
 * ZRT_ERR_IO (directory refused or not creatable, file, space, or the
 * reserved size above RLIMIT_FSIZE: checked first, so no SIGXFSZ),
 * ZRT_ERR_UNSUPPORTED (no O_DIRECT, no io_uring) or ZRT_ERR_OUT_OF_MEMORY;
 * *out is untouched on failure and neither the file nor an empty rank
 * directory is left behind (parents of cfg->dir that mkdir -p created stay;
 * a directory refused is left as it was). */
zrt_status zrt__swap_open(const zrt__swap_config *cfg, const char *name,
                          uint64_t capacity, zrt__errbuf *err, zrt__swap **out);

/* Writes bytes from src at offset (a multiple of block_size; offset + bytes
 * <= capacity). bytes == 0 does nothing. */
zrt_status zrt__swap_write(zrt__swap *s, uint64_t offset, const void *src, size_t bytes,
                           zrt__errbuf *err);

/* Reads bytes at offset into dst, verifying each block's length and CRC32C.
 * ZRT_ERR_IO on a block never written (with that length), on a checksum
 * mismatch ("checksum mismatch in block K") or on a failed/short read; dst
 * may then hold part of the data. */
zrt_status zrt__swap_read(zrt__swap *s, uint64_t offset, void *dst, size_t bytes,
                          zrt__errbuf *err);

/* Unregisters the buffers, exits the ring, closes (and so frees) the file
 * and removes the rank directory if it is empty. NULL is a no-op. Returns ZRT_OK;
 * cleanup failures are not reported (the data is scratch either way). */
zrt_status zrt__swap_close(zrt__swap *s);

/* The capacity asked at open (not rounded). */
uint64_t zrt__swap_capacity(const zrt__swap *s);
/* The direct-I/O offset alignment in use (statx STATX_DIOALIGN, else 4096). */
size_t zrt__swap_alignment(const zrt__swap *s);
/* The file's descriptor, for tests that must reach the unnamed file
 * (/proc/self/fd/<fd>). The swap owns it: never close it. */
int zrt__swap_fd(const zrt__swap *s);

#endif /* ZRT_OFFLOAD_SWAP_H */
