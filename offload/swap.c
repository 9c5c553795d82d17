/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload/swap.c — the NVMe swap file: O_DIRECT, io_uring, registered
 * staging buffers, a CRC32C per block.
 *
 * Data path of one call: the range [offset, offset + bytes) is cut into
 * blocks; each block goes through one staging buffer (slot). Up to
 * `max_inflight` blocks are in flight: prepare as many as there are free
 * slots, submit, reap at least one completion (and any others ready), refill.
 * A write copies src into the slot, checksums it and submits write_fixed; a
 * read submits read_fixed and, on completion, checksums the slot and copies
 * it out. The block table (per swap, in memory) holds { crc, len } per block;
 * len 0 means "invalid": never written, or touched by a write that failed.
 *
 * The I/O length of a block is its payload rounded up to the direct-I/O
 * alignment (<= block_size); the padding written is zeros and the padding
 * read is ignored. The file is reserved to whole blocks at open, so every
 * I/O lies inside it.
 *
 * The file has no name: it is made with O_TMPFILE in the rank directory (or,
 * where the file system refuses that, created exclusively and unlinked at
 * once), so it vanishes with the last descriptor, however the process ends.
 * The rank directory is opened once, without following a link, checked
 * (a directory, ours, mode 0700) and the file made relative to that
 * descriptor: nothing planted there can redirect or truncate another file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT, O_TMPFILE, statx, fallocate, asprintf */
#endif

#include "swap.h"

#include "../runtime/file_limit.h"
#include "crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SWAP_DEFAULT_BLOCK   ((size_t)1 << 20)
#define SWAP_DEFAULT_DEPTH   8
#define SWAP_DEFAULT_BUFFERS 4
#define SWAP_MAX_BLOCK       ((size_t)1 << 30) /* len is stored in 32 bits */
#define SWAP_FALLBACK_ALIGN  4096

typedef struct block_entry {
    uint32_t crc;
    uint32_t len; /* payload bytes; 0: invalid */
} block_entry;

/* One staging buffer and the block it carries while in flight. */
typedef struct slot {
    uint64_t block;  /* block number in the file */
    uint64_t offset; /* file offset (block * block_size) */
    size_t pos;      /* where the payload sits in the caller's buffer */
    uint32_t len;    /* payload bytes */
    uint32_t io_len; /* len rounded up to the alignment */
    uint32_t crc;    /* of the payload (writes) */
    int index;       /* registered buffer index */
} slot;

struct zrt__swap {
    int fd;
    char *path;      /* <dir>/zrt-rank<R>/<name>.swap, owned: the name messages
                        use; the file itself is unnamed */
    char *rank_dir;  /* <dir>/zrt-rank<R>, owned */
    int dir_checked; /* rank_dir passed open_rank_dir: close may remove it */
    uint64_t capacity;
    uint64_t nblocks;
    size_t block_size;
    size_t align;  /* direct-I/O offset alignment */
    size_t stride; /* bytes between staging buffers */
    int buffer_count;
    int max_inflight;       /* min(queue_depth, buffer_count) */
    unsigned char *staging; /* buffer_count * stride, owned */
    struct iovec *iov;      /* buffer_count, owned */
    slot *slots;            /* buffer_count, owned */
    int *free_slots;        /* stack of free slot indices, owned */
    block_entry *table;     /* nblocks, owned */
    struct io_uring ring;
    int ring_ready;
    int buffers_registered;
    int broken; /* an io_uring call failed with I/O possibly outstanding */
};

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

/* ---- open ---------------------------------------------------------------- */

/* mkdir -p with mode 0700 for every component it creates. These are the
 * parents of the rank directory (cfg->dir): a link among them is the
 * user's choice and is followed. */
static zrt_status make_dirs(const char *path, zrt__errbuf *err)
{
    char *copy = strdup(path);
    if (!copy)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot create swap directory %s: out of memory", path);
    for (char *p = copy + 1;; p++) {
        int last = (*p == '\0');
        if (*p != '/' && !last)
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            zrt_status st =
                zrt__fail(err, ZRT_ERR_IO, "cannot create swap directory %s: %s: %s",
                          path, copy, strerror(e));
            free(copy);
            return st;
        }
        if (last)
            break;
        *p = '/';
    }
    free(copy);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return zrt__fail(err, ZRT_ERR_IO, "cannot create swap directory %s: %s", path,
                         strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return zrt__fail(err, ZRT_ERR_IO, "cannot create swap directory %s: %s", path,
                         strerror(ENOTDIR));
    return ZRT_OK;
}

/* Why open(O_NOFOLLOW | O_DIRECTORY) refused the rank directory. */
static zrt_status explain_rank_dir(const char *path, int e, zrt__errbuf *err)
{
    struct stat sb;
    const char *what = strerror(e);
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
        what = "it is a symbolic link, which is never followed";
    else if (e == ENOTDIR || e == ELOOP)
        what = "it is not a directory";
    return zrt__fail(err, ZRT_ERR_IO,
                     "refusing swap directory %s: %s (it must be a directory owned by "
                     "uid %u with mode 0700; remove it or choose another nvme_path)",
                     path, what, (unsigned)geteuid());
}

/* Only we may have put anything in the rank directory: it is ours, 0700. */
static zrt_status check_rank_dir(const char *path, const struct stat *sb,
                                 zrt__errbuf *err)
{
    uid_t us = geteuid();
    if (!S_ISDIR(sb->st_mode))
        return explain_rank_dir(path, ENOTDIR, err);
    if (sb->st_uid != us)
        return zrt__fail(err, ZRT_ERR_IO,
                         "refusing swap directory %s: it is owned by uid %u, not by "
                         "this process's uid %u (remove it or choose another "
                         "nvme_path)",
                         path, (unsigned)sb->st_uid, (unsigned)us);
    if ((sb->st_mode & 07777) != 0700)
        return zrt__fail(err, ZRT_ERR_IO,
                         "refusing swap directory %s: its mode is 0%03o, not 0700 "
                         "(others could plant or read files there; chmod 700 it or "
                         "remove it)",
                         path, (unsigned)(sb->st_mode & 07777));
    return ZRT_OK;
}

/* Creates <dir>/zrt-rank<R> (0700) or takes the one an earlier run left,
 * opens it without following a link and checks it. *dir_fd: the open
 * directory, for openat. */
static zrt_status open_rank_dir(const char *path, int *dir_fd, zrt__errbuf *err)
{
    int created = mkdir(path, 0700) == 0;
    if (!created && errno != EEXIST)
        return zrt__fail(err, ZRT_ERR_IO, "cannot create swap directory %s: %s", path,
                         strerror(errno));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return explain_rank_dir(path, errno, err);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return zrt__fail(err, ZRT_ERR_IO, "cannot stat swap directory %s: %s", path,
                         strerror(e));
    }
    /* A umask may have taken bits off the directory we just made. */
    if (created && sb.st_uid == geteuid() && (sb.st_mode & 07777) != 0700 &&
        fchmod(fd, 0700) == 0)
        sb.st_mode = (sb.st_mode & ~(mode_t)07777) | 0700;
    zrt_status st = check_rank_dir(path, &sb, err);
    if (st != ZRT_OK) {
        close(fd);
        return st;
    }
    *dir_fd = fd;
    return ZRT_OK;
}

static zrt_status check_config(const zrt__swap_config *cfg, const char *name,
                               uint64_t capacity, zrt__swap_config *eff, zrt__errbuf *err)
{
    if (!cfg || !cfg->dir || !cfg->dir[0])
        return zrt__fail(err, ZRT_ERR_INVALID_ARG, "swap open: no directory given");
    if (!name || !name[0] || strchr(name, '/'))
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "swap open: name '%s' must be non-empty without '/'",
                         name ? name : "(null)");
    if (cfg->rank < 0 || cfg->queue_depth < 0 || cfg->buffer_count < 0)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "swap open of %s: rank %d, queue_depth %d and "
                         "buffer_count %d must not be negative",
                         name, cfg->rank, cfg->queue_depth, cfg->buffer_count);
    if (capacity == 0)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "swap open of %s: capacity must be > 0", name);
    *eff = *cfg;
    if (!eff->block_size)
        eff->block_size = SWAP_DEFAULT_BLOCK;
    if (!eff->queue_depth)
        eff->queue_depth = SWAP_DEFAULT_DEPTH;
    if (!eff->buffer_count)
        eff->buffer_count = SWAP_DEFAULT_BUFFERS;
    if (eff->block_size > SWAP_MAX_BLOCK)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "swap open of %s: block_size %zu is above the %zu "
                         "maximum",
                         name, eff->block_size, SWAP_MAX_BLOCK);
    uint64_t nblocks = capacity / eff->block_size + (capacity % eff->block_size != 0);
    if (nblocks > (uint64_t)INT64_MAX / eff->block_size ||
        nblocks > SIZE_MAX / sizeof(block_entry))
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "swap open of %s: capacity %llu is too large", name,
                         (unsigned long long)capacity);
    return ZRT_OK;
}

/* Direct-I/O alignment of the open file: statx when it knows, else 4096.
 * mem_align receives the buffer alignment. */
static zrt_status find_alignment(zrt__swap *s, size_t *mem_align, zrt__errbuf *err)
{
    s->align = SWAP_FALLBACK_ALIGN;
    *mem_align = SWAP_FALLBACK_ALIGN;
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (statx(s->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        if (sx.stx_dio_offset_align == 0)
            return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                             "%s: the file system refuses O_DIRECT", s->path);
        s->align = sx.stx_dio_offset_align;
        if (sx.stx_dio_mem_align > *mem_align)
            *mem_align = sx.stx_dio_mem_align;
    }
#endif
    if (s->block_size % s->align != 0)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "%s: block_size %zu is not a multiple of the "
                         "file system's direct-I/O alignment %zu",
                         s->path, s->block_size, s->align);
    return ZRT_OK;
}

static zrt_status refuse_direct(zrt__swap *s, zrt__errbuf *err)
{
    return zrt__fail(err, ZRT_ERR_UNSUPPORTED, "%s: the file system refuses O_DIRECT",
                     s->path);
}

/* The fallback where O_TMPFILE is refused: <name>.swap, created exclusively
 * (never through a link, never over a file) and unlinked at once, so it
 * has a name only for the two calls in between. A <name>.swap already
 * there is a leftover of such a window (the directory is ours and 0700):
 * its name is removed (unlinkat never follows a link) and the create
 * tried once more. */
static zrt_status create_named(zrt__swap *s, int dir_fd, const char *leaf,
                               zrt__errbuf *err)
{
    int flags = O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_DIRECT | O_CLOEXEC;
    s->fd = openat(dir_fd, leaf, flags, 0600);
    if (s->fd < 0 && errno == EEXIST && unlinkat(dir_fd, leaf, 0) == 0)
        s->fd = openat(dir_fd, leaf, flags, 0600);
    if (s->fd < 0) {
        int e = errno;
        if (e != EINVAL)
            return zrt__fail(err, ZRT_ERR_IO, "cannot create swap file %s: %s", s->path,
                             strerror(e));
        unlinkat(dir_fd, leaf, 0); /* some kernels create the file before refusing */
        return refuse_direct(s, err);
    }
    /* ENOENT: a run sharing the directory removed it as a leftover. */
    if (unlinkat(dir_fd, leaf, 0) != 0 && errno != ENOENT)
        return zrt__fail(err, ZRT_ERR_IO,
                         "cannot unlink swap file %s right after creating it: %s",
                         s->path, strerror(errno));
    return ZRT_OK;
}

/* An unnamed file in the rank directory: O_TMPFILE, else create_named. */
static zrt_status create_file(zrt__swap *s, int dir_fd, const char *leaf, int named,
                              zrt__errbuf *err)
{
    if (!named) {
        s->fd = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
        if (s->fd >= 0)
            return ZRT_OK;
        /* EINVAL may also be O_DIRECT refused: create_named tells them apart. */
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            return zrt__fail(err, ZRT_ERR_IO, "cannot create swap file %s: %s", s->path,
                             strerror(errno));
    }
    return create_named(s, dir_fd, leaf, err);
}

/* The rank directory and the file in it; the directory's descriptor is
 * needed only until the file is made. */
static zrt_status make_file(zrt__swap *s, const char *name, int named, zrt__errbuf *err)
{
    int dir_fd = -1;
    ZRT_CHECK(open_rank_dir(s->rank_dir, &dir_fd, err));
    s->dir_checked = 1;
    char leaf[NAME_MAX + 1];
    zrt_status st;
    if ((size_t)snprintf(leaf, sizeof leaf, "%s.swap", name) >= sizeof leaf)
        st = zrt__fail(err, ZRT_ERR_INVALID_ARG, "swap file %s: name too long", s->path);
    else
        st = create_file(s, dir_fd, leaf, named, err);
    close(dir_fd);
    return st;
}

static zrt_status reserve_space(zrt__swap *s, zrt__errbuf *err)
{
    off_t size = (off_t)(s->nblocks * s->block_size);
    /* Past RLIMIT_FSIZE, fallocate would kill us with SIGXFSZ: refuse first. */
    ZRT_CHECK(zrt__check_file_size_limit((uint64_t)size, "swap file", s->path, err));
    int rc;
    do {
        rc = fallocate(s->fd, 0, 0, size);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno == EOPNOTSUPP)
        rc = ftruncate(s->fd, size); /* no reservation, but still usable */
    if (rc == 0)
        return ZRT_OK;
    int e = errno;
    char buf[64];
    return zrt__fail(err, ZRT_ERR_IO,
                     "cannot reserve %s for swap file %s (capacity %llu "
                     "rounded up to %llu blocks of %zu bytes): %s",
                     zrt__fmt_bytes((long long)size, buf, sizeof buf), s->path,
                     (unsigned long long)s->capacity, (unsigned long long)s->nblocks,
                     s->block_size, strerror(e));
}

static zrt_status setup_ring(zrt__swap *s, int depth, size_t mem_align, zrt__errbuf *err)
{
    int n = s->buffer_count;
    s->stride = round_up(s->block_size, mem_align);
    void *mem = NULL;
    if (posix_memalign(&mem, mem_align, s->stride * (size_t)n) != 0)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "%s: cannot allocate %d staging buffers of %zu bytes", s->path,
                         n, s->block_size);
    s->staging = mem;
    memset(s->staging, 0, s->stride * (size_t)n); /* padding stays zero */
    s->iov = calloc((size_t)n, sizeof *s->iov);
    s->slots = calloc((size_t)n, sizeof *s->slots);
    s->free_slots = calloc((size_t)n, sizeof *s->free_slots);
    if (!s->iov || !s->slots || !s->free_slots)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "%s: out of memory for the slot tables", s->path);
    for (int i = 0; i < n; i++) {
        s->iov[i].iov_base = s->staging + (size_t)i * s->stride;
        s->iov[i].iov_len = s->block_size;
        s->slots[i].index = i;
    }
    int rc = io_uring_queue_init((unsigned)depth, &s->ring, 0);
    if (rc < 0)
        return zrt__fail(err, rc == -ENOMEM ? ZRT_ERR_OUT_OF_MEMORY : ZRT_ERR_UNSUPPORTED,
                         "%s: cannot set up io_uring with %d entries: %s", s->path, depth,
                         strerror(-rc));
    s->ring_ready = 1;
    rc = io_uring_register_buffers(&s->ring, s->iov, (unsigned)n);
    if (rc < 0)
        return zrt__fail(err, rc == -ENOMEM ? ZRT_ERR_OUT_OF_MEMORY : ZRT_ERR_UNSUPPORTED,
                         "%s: cannot register %d staging buffers of %zu bytes "
                         "with io_uring: %s%s",
                         s->path, n, s->block_size, strerror(-rc),
                         rc == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
    s->buffers_registered = 1;
    return ZRT_OK;
}

zrt_status zrt__swap_open(const zrt__swap_config *cfg, const char *name,
                          uint64_t capacity, zrt__errbuf *err, zrt__swap **out)
{
    zrt__swap_config c = {0};
    ZRT_CHECK(check_config(cfg, name, capacity, &c, err));
    zrt__swap *s = calloc(1, sizeof *s);
    if (!s)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "swap open of %s: out of memory",
                         name);
    s->fd = -1;
    s->capacity = capacity;
    s->block_size = c.block_size;
    s->nblocks = capacity / c.block_size + (capacity % c.block_size != 0);
    s->buffer_count = c.buffer_count;
    s->max_inflight = c.queue_depth < c.buffer_count ? c.queue_depth : c.buffer_count;
    zrt_status st;
    if (asprintf(&s->rank_dir, "%s/zrt-rank%d", c.dir, c.rank) < 0) {
        s->rank_dir = NULL;
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if (asprintf(&s->path, "%s/%s.swap", s->rank_dir, name) < 0) {
        s->path = NULL;
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    s->table = calloc((size_t)s->nblocks, sizeof *s->table);
    if (!s->table) {
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                       "%s: out of memory for a table of %llu blocks", s->path,
                       (unsigned long long)s->nblocks);
        goto fail;
    }
    size_t mem_align;
    ZRT_CHECK_GOTO(make_dirs(c.dir, err), st, fail);
    ZRT_CHECK_GOTO(make_file(s, name, c.named_file, err), st, fail);
    ZRT_CHECK_GOTO(find_alignment(s, &mem_align, err), st, fail);
    ZRT_CHECK_GOTO(reserve_space(s, err), st, fail);
    ZRT_CHECK_GOTO(setup_ring(s, c.queue_depth, mem_align, err), st, fail);
    *out = s;
    return ZRT_OK;
fail:
    zrt__swap_close(s);
    return st;
}

/* ---- close --------------------------------------------------------------- */

zrt_status zrt__swap_close(zrt__swap *s)
{
    if (!s)
        return ZRT_OK;
    if (s->buffers_registered)
        io_uring_unregister_buffers(&s->ring);
    if (s->ring_ready)
        io_uring_queue_exit(&s->ring);
    if (s->fd >= 0)
        close(s->fd); /* the file has no name: this frees it */
    if (s->dir_checked)
        rmdir(s->rank_dir); /* fails, harmlessly, unless empty */
    free(s->staging);
    free(s->iov);
    free(s->slots);
    free(s->free_slots);
    free(s->table);
    free(s->path);
    free(s->rank_dir);
    free(s);
    return ZRT_OK;
}

uint64_t zrt__swap_capacity(const zrt__swap *s)
{
    return s->capacity;
}

size_t zrt__swap_alignment(const zrt__swap *s)
{
    return s->align;
}

int zrt__swap_fd(const zrt__swap *s)
{
    return s->fd;
}

/* ---- the block pipeline -------------------------------------------------- */

typedef struct job {
    zrt__swap *s;
    int writing;
    uint64_t offset; /* of the first block */
    size_t bytes;
    const unsigned char *src; /* writes */
    unsigned char *dst;       /* reads */
    uint64_t nblk;
    uint64_t next; /* next block (relative to the first) to prepare */
    int prepared;  /* SQEs queued, not yet submitted */
    int inflight;  /* submitted, not yet reaped */
    int nfree;     /* entries of s->free_slots in use */
    zrt_status status;
    zrt__errbuf *err;
} job;

static unsigned char *slot_buf(const zrt__swap *s, const slot *sl)
{
    return s->staging + (size_t)sl->index * s->stride;
}

static void ring_failure(job *j, const char *what, int rc)
{
    j->s->broken = 1;
    if (j->status == ZRT_OK)
        j->status = zrt__fail(j->err, ZRT_ERR_IO,
                              "%s: %s failed: %s; the swap can no longer be "
                              "used",
                              j->s->path, what, strerror(-rc));
}

/* Takes a free slot, fills it with block j->next and queues its SQE. */
static void prepare_one(job *j)
{
    zrt__swap *s = j->s;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        j->status = zrt__fail(j->err, ZRT_ERR_INTERNAL,
                              "%s: io_uring submission queue full", s->path);
        return;
    }
    slot *sl = &s->slots[s->free_slots[--j->nfree]];
    size_t pos = (size_t)j->next * s->block_size;
    size_t len = j->bytes - pos < s->block_size ? j->bytes - pos : s->block_size;
    sl->block = j->offset / s->block_size + j->next;
    sl->offset = j->offset + pos;
    sl->pos = pos;
    sl->len = (uint32_t)len;
    sl->io_len = (uint32_t)round_up(len, s->align);
    unsigned char *buf = slot_buf(s, sl);
    if (j->writing) {
        memcpy(buf, j->src + pos, len);
        memset(buf + len, 0, sl->io_len - len);
        sl->crc = zrt__crc32c(0, buf, len);
        io_uring_prep_write_fixed(sqe, s->fd, buf, sl->io_len, sl->offset, sl->index);
    } else {
        io_uring_prep_read_fixed(sqe, s->fd, buf, sl->io_len, sl->offset, sl->index);
    }
    io_uring_sqe_set_data(sqe, sl);
    j->next++;
    j->prepared++;
}

static void submit_prepared(job *j)
{
    while (j->prepared > 0) {
        int rc = io_uring_submit(&j->s->ring);
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc <= 0) {
            ring_failure(j, "io_uring_submit", rc < 0 ? rc : -EIO);
            return;
        }
        j->prepared -= rc;
        j->inflight += rc;
    }
}

/* Checks one completion; on a read also verifies and copies out. */
static zrt_status finish_one(job *j, slot *sl, int res)
{
    zrt__swap *s = j->s;
    const char *op = j->writing ? "write" : "read";
    if (res < 0)
        return zrt__fail(j->err, ZRT_ERR_IO,
                         "%s: %s of block %llu at offset %llu failed: %s", s->path, op,
                         (unsigned long long)sl->block, (unsigned long long)sl->offset,
                         strerror(-res));
    if ((uint32_t)res != sl->io_len)
        return zrt__fail(j->err, ZRT_ERR_IO,
                         "%s: short %s of block %llu at offset %llu: %d of %u "
                         "bytes",
                         s->path, op, (unsigned long long)sl->block,
                         (unsigned long long)sl->offset, res, sl->io_len);
    block_entry *e = &s->table[sl->block];
    if (j->writing) {
        e->crc = sl->crc;
        e->len = sl->len;
        return ZRT_OK;
    }
    const unsigned char *buf = slot_buf(s, sl);
    if (zrt__crc32c(0, buf, sl->len) != e->crc)
        return zrt__fail(j->err, ZRT_ERR_IO,
                         "%s: checksum mismatch in block %llu (offset %llu): "
                         "the swap data is corrupt",
                         s->path, (unsigned long long)sl->block,
                         (unsigned long long)sl->offset);
    memcpy(j->dst + sl->pos, buf, sl->len);
    return ZRT_OK;
}

static void reap_one(job *j, struct io_uring_cqe *cqe)
{
    slot *sl = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&j->s->ring, cqe);
    j->inflight--;
    j->s->free_slots[j->nfree++] = sl->index;
    /* After a failure, keep reaping (the slots must come back) but do not
     * overwrite the first error. */
    zrt_status st = finish_one(j, sl, res);
    if (j->status == ZRT_OK)
        j->status = st;
}

/* Waits for one completion, then takes any others already there. */
static void reap(job *j)
{
    struct io_uring_cqe *cqe = NULL;
    int rc;
    do {
        rc = io_uring_wait_cqe(&j->s->ring, &cqe);
    } while (rc == -EINTR || rc == -EAGAIN);
    if (rc < 0) {
        ring_failure(j, "io_uring_wait_cqe", rc);
        return;
    }
    reap_one(j, cqe);
    while (j->inflight > 0 && io_uring_peek_cqe(&j->s->ring, &cqe) == 0)
        reap_one(j, cqe);
}

static void run_job(job *j)
{
    zrt__swap *s = j->s;
    j->nfree = s->buffer_count;
    for (int i = 0; i < s->buffer_count; i++)
        s->free_slots[i] = i;
    for (;;) {
        while (j->status == ZRT_OK && j->next < j->nblk &&
               j->inflight + j->prepared < s->max_inflight)
            prepare_one(j);
        if (!s->broken)
            submit_prepared(j);
        if (s->broken || j->inflight == 0)
            break;
        reap(j);
    }
}

static zrt_status check_range(zrt__swap *s, const char *op, uint64_t offset, size_t bytes,
                              zrt__errbuf *err)
{
    if (s->broken)
        return zrt__fail(err, ZRT_ERR_STATE,
                         "%s: %s refused: an earlier io_uring failure left the "
                         "swap unusable",
                         s->path, op);
    if (offset % s->block_size != 0)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "%s: %s at offset %llu: not a multiple of the block "
                         "size %zu",
                         s->path, op, (unsigned long long)offset, s->block_size);
    if (offset > s->capacity || bytes > s->capacity - offset)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "%s: %s of %zu bytes at offset %llu passes the "
                         "capacity %llu",
                         s->path, op, bytes, (unsigned long long)offset,
                         (unsigned long long)s->capacity);
    return ZRT_OK;
}

static void init_job(job *j, zrt__swap *s, int writing, uint64_t offset, size_t bytes,
                     zrt__errbuf *err)
{
    memset(j, 0, sizeof *j);
    j->s = s;
    j->writing = writing;
    j->offset = offset;
    j->bytes = bytes;
    j->nblk = bytes / s->block_size + (bytes % s->block_size != 0);
    j->status = ZRT_OK;
    j->err = err;
}

static void invalidate(zrt__swap *s, uint64_t first, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        s->table[first + k].len = 0;
}

zrt_status zrt__swap_write(zrt__swap *s, uint64_t offset, const void *src, size_t bytes,
                           zrt__errbuf *err)
{
    ZRT_CHECK(check_range(s, "write", offset, bytes, err));
    job j;
    init_job(&j, s, 1, offset, bytes, err);
    j.src = src;
    /* Invalid until each block's write completes; all of them again if
     * any fails, so nothing half-written reads back as valid. */
    invalidate(s, offset / s->block_size, j.nblk);
    run_job(&j);
    if (j.status != ZRT_OK)
        invalidate(s, offset / s->block_size, j.nblk);
    return j.status;
}

zrt_status zrt__swap_read(zrt__swap *s, uint64_t offset, void *dst, size_t bytes,
                          zrt__errbuf *err)
{
    ZRT_CHECK(check_range(s, "read", offset, bytes, err));
    job j;
    init_job(&j, s, 0, offset, bytes, err);
    j.dst = dst;
    uint64_t first = offset / s->block_size;
    for (uint64_t k = 0; k < j.nblk; k++) {
        size_t pos = (size_t)k * s->block_size;
        size_t len = bytes - pos < s->block_size ? bytes - pos : s->block_size;
        const block_entry *e = &s->table[first + k];
        if (e->len == 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "%s: block %llu (offset %llu) was never written", s->path,
                             (unsigned long long)(first + k),
                             (unsigned long long)(offset + pos));
        if (e->len != len)
            return zrt__fail(err, ZRT_ERR_IO,
                             "%s: block %llu (offset %llu) was never written "
                             "with %zu bytes (it holds %u)",
                             s->path, (unsigned long long)(first + k),
                             (unsigned long long)(offset + pos), len, e->len);
    }
    run_job(&j);
    return j.status;
}
