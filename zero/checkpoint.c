/*
 * zero/checkpoint.c — resumable, sharded checkpoints: the format (see
 * checkpoint.h), zrt_save and zrt_load.
 *
 * Saving. Every rank writes its shard of every layer, whatever the stage:
 * at stage 0 the state is replicated, so rank r writes shard r and the
 * files are the same shape at every stage. The order of events:
 *   1. rank 0 creates DIR/step-N.tmp/ (removing a leftover of a crashed
 *      save of the same step);
 *   2. every rank writes rank-R.zrtc.tmp, fsyncs it, renames it to
 *      rank-R.zrtc and fsyncs the directory;
 *   3. the ranks' file sizes and header checksums go to rank 0 (all-gather),
 *      and every rank learns whether every rank succeeded;
 *   4. rank 0 writes meta.json the same way, renames step-N.tmp to step-N
 *      (exchanging it with an older step-N, which is then removed), fsyncs
 *      DIR, and only then replaces DIR/latest (temporary name, fsync,
 *      rename, fsync DIR).
 * A crash anywhere before the rename of `latest` leaves `latest` naming the
 * previous step directory, which nothing in this sequence writes into; a
 * crash after it leaves the new one, complete and durable. The one exception
 * is replacing the very step `latest` names: the exchange swaps one complete
 * directory for another atomically, so `latest` names a complete one at
 * every moment.
 *
 * Loading. Every rank resolves the step directory and reads meta.json, maps
 * its registered parameters to the checkpoint's by name, then:
 *   pass 1 reads every section it will take elements from and checks its
 *          CRC32C; the ranks agree, and any failure returns before anything
 *          changed;
 *   pass 2 reads the elements of this rank's range of each layer (parameters
 *          and both moments, and with 16-bit parameters the master copy)
 *          from whichever old rank files hold them, into memory or, for
 *          state on NVMe, into the staging buffer and then the swap file's
 *          current slot, one layer at a time; a checkpoint of another
 *          precision is converted from its f32 values (load_layer);
 *   then stages 1-2 all-gather the parameters and stage 3 re-gathers its
 *   persistent layers. Pass 2 trusts that the files did not change since
 *   pass 1 (a checkpoint must not be written while it is loaded).
 *
 * 16-bit parameters (format version 2) add an f32 "master" section per
 * layer, hold "param" in their dtype, and put fp16's loss scaler in
 * meta.json; the scaler is restored with the step (restore_scaler).
 *
 * Outcomes are agreed across ranks after every phase, and the failing rank's
 * sentence is broadcast, so every rank returns an error naming the cause and
 * nobody waits in a collective that another rank skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../offload/crc32c.h"
#include "../runtime/file_limit.h"
#include "checkpoint.h"
#include "ctx.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint files are little-endian and written with memcpy: port the codecs first"
#endif

enum {
    KIND_PARAM = 0,
    KIND_EXP_AVG = 1,
    KIND_EXP_AVG_SQ = 2,
    KIND_MASTER = 3, /* 16-bit parameters: their f32 master copy */
    META_MAX_BYTES = 256 << 20, /* meta.json larger than this is refused */
    LATEST_MAX = 255
};

static const char *const kind_names[ZRT__CKPT_MAX_KINDS] = {"param", "exp_avg",
                                                             "exp_avg_sq", "master"};
static const char file_magic[8] = "ZRTCKPT";

const char *zrt__ckpt_kind(int kind)
{
    return kind >= 0 && kind < ZRT__CKPT_MAX_KINDS ? kind_names[kind] : "?";
}

zrt_dtype zrt__ckpt_kind_dtype(const zrt__ckpt_meta *m, const char *kind)
{
    return strcmp(kind, kind_names[KIND_PARAM]) == 0 ? m->dtype : ZRT_F32;
}

const char *zrt__ckpt_f32_kind(const zrt__ckpt_meta *m)
{
    return kind_names[m->dtype == ZRT_F32 ? KIND_PARAM : KIND_MASTER];
}

/* ---- small I/O helpers ------------------------------------------------------ */

/* "No space left on device (errno 28, ENOSPC)": the text for a reader, the
 * number and name for a search. */
static const char *errno_detail(int e, char *buf, size_t size)
{
    const char *name = strerrorname_np(e);
    snprintf(buf, size, "%s (errno %d%s%s)", strerror(e), e, name ? ", " : "",
             name ? name : "");
    return buf;
}

static zrt_status io_fail(zrt__errbuf *err, const char *what, const char *path, int e)
{
    char why[128];
    return zrt__fail(err, ZRT_ERR_IO, "checkpoint: cannot %s '%s': %s", what, path,
                     errno_detail(e, why, sizeof why));
}

static zrt_status join(char *out, size_t size, const char *dir, const char *name,
                       zrt__errbuf *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "checkpoint: the path '%s/%s' is longer than %zu bytes", dir,
                         name, size - 1);
    return ZRT_OK;
}

static zrt_status pwrite_all(int fd, const void *buf, size_t bytes, uint64_t at,
                             const char *path, zrt__errbuf *err)
{
    const char *p = buf;
    while (bytes > 0) {
        ssize_t n = pwrite(fd, p, bytes, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        char why[128];
        if (n <= 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: cannot write %zu bytes at offset %" PRIu64
                             " of '%s': %s", bytes, at, path,
                             n < 0 ? errno_detail(errno, why, sizeof why) : "no progress");
        p += n;
        bytes -= (size_t)n;
        at += (uint64_t)n;
    }
    return ZRT_OK;
}

static zrt_status pread_all(int fd, void *buf, size_t bytes, uint64_t at,
                            const char *path, zrt__errbuf *err)
{
    char *p = buf;
    while (bytes > 0) {
        ssize_t n = pread(fd, p, bytes, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: cannot read %zu bytes at offset %" PRIu64
                             " of '%s': %s", bytes, at, path, strerror(errno));
        if (n == 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint file '%s' ends at byte %" PRIu64 ", before the "
                             "%zu bytes expected there (truncated)", path, at, bytes);
        p += n;
        bytes -= (size_t)n;
        at += (uint64_t)n;
    }
    return ZRT_OK;
}

static zrt_status fsync_dir(const char *dir, zrt__errbuf *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "open the directory", dir, errno);
    int rc = fsync(fd), e = errno;
    close(fd);
    return rc ? io_fail(err, "fsync the directory", dir, e) : ZRT_OK;
}

/* Writes dir/name through dir/name.tmp: write, fsync, rename, fsync dir. */
static zrt_status write_file_atomic(const char *dir, const char *name, const void *data,
                                    size_t bytes, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH], tmp[ZRT__CKPT_PATH + 8];
    ZRT_CHECK(join(path, sizeof path, dir, name, err));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ZRT_CHECK(zrt__check_file_size_limit(bytes, "the checkpoint file", tmp, err));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_fail(err, "create", tmp, errno);
    zrt_status st = pwrite_all(fd, data, bytes, 0, tmp, err);
    if (st == ZRT_OK && fsync(fd) != 0)
        st = io_fail(err, "fsync", tmp, errno);
    if (close(fd) != 0 && st == ZRT_OK)
        st = io_fail(err, "close", tmp, errno);
    if (st == ZRT_OK && rename(tmp, path) != 0)
        st = io_fail(err, "rename into place", tmp, errno);
    if (st != ZRT_OK) {
        unlink(tmp);
        return st;
    }
    return fsync_dir(dir, err);
}

/* Reads a whole small file (at most `limit` bytes) into a NUL-terminated
 * buffer the caller frees. */
static zrt_status read_small_file(const char *path, size_t limit, char **out, size_t *len,
                                  zrt__errbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "open", path, errno);
    struct stat sb;
    zrt_status st = ZRT_OK;
    char *text = NULL;
    if (fstat(fd, &sb) != 0)
        st = io_fail(err, "stat", path, errno);
    else if ((uint64_t)sb.st_size > limit)
        st = zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' is %lld bytes, more than the "
                       "%zu a valid one can be", path, (long long)sb.st_size, limit);
    else if (!(text = malloc((size_t)sb.st_size + 1)))
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory to read '%s'",
                       path);
    if (st == ZRT_OK)
        st = pread_all(fd, text, (size_t)sb.st_size, 0, path, err);
    close(fd);
    if (st != ZRT_OK) {
        free(text);
        return st;
    }
    text[sb.st_size] = '\0';
    *out = text;
    *len = (size_t)sb.st_size;
    return ZRT_OK;
}

/* mkdir -p */
static zrt_status make_dirs(const char *dir, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG, "checkpoint: directory name too long");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return io_fail(err, "create the directory", path, errno);
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' is not a directory", dir);
    return ZRT_OK;
}

/* Removes a step directory that holds only files (a leftover or an old
 * copy); a missing directory is fine. */
static zrt_status remove_step_dir(const char *dir, zrt__errbuf *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? ZRT_OK : io_fail(err, "open the directory", dir, errno);
    zrt_status st = ZRT_OK;
    struct dirent *e;
    while (st == ZRT_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            st = zrt__fail(err, ZRT_ERR_IO, "checkpoint: cannot remove '%s/%s' from an "
                           "unfinished or replaced checkpoint: %s", dir, e->d_name,
                           strerror(errno));
    }
    closedir(d);
    if (st == ZRT_OK && rmdir(dir) != 0)
        st = io_fail(err, "remove the directory", dir, errno);
    return st;
}

/* ---- the rank file's header and section table ---------------------------------- */

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

typedef struct file_header {
    uint32_t version, rank, world, nsections;
    uint64_t step, data_offset, file_bytes;
    uint32_t table_crc, header_crc;
} file_header;

/* Fills out and sets h->header_crc. */
static void encode_header(file_header *h, unsigned char out[ZRT__CKPT_HEADER_BYTES])
{
    memset(out, 0, ZRT__CKPT_HEADER_BYTES);
    memcpy(out, file_magic, 8);
    put_u32(out + 8, h->version);
    put_u32(out + 12, ZRT__CKPT_HEADER_BYTES);
    put_u32(out + 16, h->rank);
    put_u32(out + 20, h->world);
    put_u32(out + 24, h->nsections);
    put_u64(out + 32, h->step);
    put_u64(out + 40, h->data_offset);
    put_u64(out + 48, h->file_bytes);
    put_u32(out + 56, h->table_crc);
    h->header_crc = zrt__crc32c(0, out, 60);
    put_u32(out + 60, h->header_crc);
}

static zrt_status decode_header(const unsigned char in[ZRT__CKPT_HEADER_BYTES],
                                const char *path, file_header *h, zrt__errbuf *err)
{
    if (memcmp(in, file_magic, 8) != 0)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s' does not start with "
                         "the zrt checkpoint magic", path);
    uint32_t stored = get_u32(in + 60), computed = zrt__crc32c(0, in, 60);
    if (stored != computed)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': header (bytes 0..63) "
                         "fails its CRC32C (stored %08x, computed %08x)", path, stored,
                         computed);
    uint32_t version = get_u32(in + 8);
    if (version < 1 || version > ZRT__CKPT_VERSION ||
        get_u32(in + 12) != ZRT__CKPT_HEADER_BYTES)
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED, "checkpoint file '%s' is format "
                         "version %u; this zrt reads versions 1 to %d", path, version,
                         ZRT__CKPT_VERSION);
    *h = (file_header){.version = version, .rank = get_u32(in + 16), .world = get_u32(in + 20),
                       .nsections = get_u32(in + 24), .step = get_u64(in + 32),
                       .data_offset = get_u64(in + 40), .file_bytes = get_u64(in + 48),
                       .table_crc = get_u32(in + 56), .header_crc = stored};
    return ZRT_OK;
}

static void encode_entry(const zrt__ckpt_section *s, unsigned char out[ZRT__CKPT_ENTRY_BYTES])
{
    memset(out, 0, ZRT__CKPT_ENTRY_BYTES);
    memcpy(out, s->kind, strnlen(s->kind, ZRT__CKPT_KIND_BYTES));
    put_u32(out + 16, (uint32_t)s->layer);
    put_u32(out + 20, (uint32_t)s->dtype);
    put_u64(out + 24, (uint64_t)s->first);
    put_u64(out + 32, (uint64_t)s->numel);
    put_u64(out + 40, s->offset);
    put_u64(out + 48, s->bytes);
    put_u32(out + 56, s->crc);
}

/* An unknown dtype reads as ZRT_DTYPE_COUNT (check_table refuses it). */
static void decode_entry(const unsigned char in[ZRT__CKPT_ENTRY_BYTES], zrt__ckpt_section *s)
{
    memset(s, 0, sizeof *s);
    memcpy(s->kind, in, ZRT__CKPT_KIND_BYTES);
    s->layer = (int)get_u32(in + 16);
    uint32_t dtype = get_u32(in + 20);
    s->dtype = dtype < ZRT_DTYPE_COUNT ? (zrt_dtype)dtype : ZRT_DTYPE_COUNT;
    s->first = (int64_t)get_u64(in + 24);
    s->numel = (int64_t)get_u64(in + 32);
    s->offset = get_u64(in + 40);
    s->bytes = get_u64(in + 48);
    s->crc = get_u32(in + 56);
}

/* ---- meta.json: reading ------------------------------------------------------------ */

static const char crc_key[] = "\"meta_crc32c\"";

/* meta.json's last member is "meta_crc32c": the CRC32C of every byte
 * before that key. Checked on the raw text, before parsing, so a damaged
 * byte anywhere reads as a checksum failure. */
static zrt_status check_meta_crc(const char *text, const char *path, zrt__errbuf *err)
{
    const char *key = NULL;
    for (const char *p = text; (p = strstr(p, crc_key)) != NULL; p++)
        key = p;
    unsigned stored = 0;
    int used = 0;
    if (!key || sscanf(key + strlen(crc_key), " : \"%8x\"%n", &stored, &used) != 1 ||
        used == 0)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' has no meta_crc32c "
                         "(damaged, or not written by zrt)", path);
    uint32_t computed = zrt__crc32c(0, text, (size_t)(key - text));
    if (computed != stored)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' fails its CRC32C (stored "
                         "%08x, computed %08x over bytes 0..%zu)", path, stored, computed,
                         (size_t)(key - text));
    return ZRT_OK;
}

/* An integer member in [lo, hi], or a sentence naming it. */
static zrt_status get_int(json_t *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, const char *path, const char *where,
                          zrt__errbuf *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': %s\"%s\" is missing or "
                         "outside %lld..%lld", path, where, key, (long long)lo,
                         (long long)hi);
    *out = json_integer_value(v);
    return ZRT_OK;
}

static zrt_status parse_hex(const char *hex, unsigned char *out, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned value;
        if (sscanf(hex + 2 * i, "%2x", &value) != 1)
            return ZRT_ERR_IO;
        out[i] = (unsigned char)value;
    }
    return ZRT_OK;
}

static zrt_status parse_user(json_t *root, zrt__ckpt_meta *m, const char *path,
                             zrt__errbuf *err)
{
    json_t *user = json_object_get(root, "user");
    int64_t bytes = 0;
    ZRT_CHECK(get_int(user, "bytes", 0, ZRT_CKPT_USER_MAX, &bytes, path, "user ", err));
    const char *hex = json_string_value(json_object_get(user, "hex"));
    if (!hex || strlen(hex) != 2 * (size_t)bytes)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': user.hex does not hold "
                         "%lld bytes", path, (long long)bytes);
    m->user = malloc((size_t)bytes + 1);
    m->user_bytes = (size_t)bytes;
    if (!m->user || parse_hex(hex, m->user, (size_t)bytes) != ZRT_OK)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': user.hex is not hex", path);
    return ZRT_OK;
}

static zrt_status parse_layers(json_t *root, zrt__ckpt_meta *m, const char *path,
                               zrt__errbuf *err)
{
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > (1u << 24))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' has no layer list", path);
    m->nlayers = (int)json_array_size(layers);
    m->layers = calloc((size_t)m->nlayers + 1, sizeof *m->layers);
    if (!m->layers)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for layers");
    for (int l = 0; l < m->nlayers; l++) {
        json_t *o = json_array_get(layers, (size_t)l);
        zrt__ckpt_layer *lp = &m->layers[l];
        char where[48];
        snprintf(where, sizeof where, "layers[%d].", l);
        ZRT_CHECK(get_int(o, "numel", 0, INT64_MAX / 8, &lp->numel, path, where, err));
        ZRT_CHECK(get_int(o, "shard_numel", 0, INT64_MAX / 8, &lp->shard_numel, path,
                          where, err));
        ZRT_CHECK(get_int(o, "flat_numel", 0, INT64_MAX / 8, &lp->flat_numel, path,
                          where, err));
        /* divided, not multiplied: a crafted shard_numel * world can overflow */
        if (lp->flat_numel % m->world != 0 || lp->flat_numel / m->world != lp->shard_numel ||
            lp->numel > lp->flat_numel ||
            (lp->numel > 0) != (lp->shard_numel > 0))
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': layer %d's sizes do not "
                             "agree (numel %lld, flat %lld, shard %lld, world %d)", path,
                             l, (long long)lp->numel, (long long)lp->flat_numel,
                             (long long)lp->shard_numel, m->world);
    }
    return ZRT_OK;
}

static zrt_status parse_shape(json_t *o, zrt__ckpt_tensor *t, const char *path,
                              zrt__errbuf *err)
{
    json_t *shape = json_object_get(o, "shape");
    size_t ndim = json_array_size(shape);
    int64_t product = 1;
    if (!json_is_array(shape) || ndim < 1 || ndim > 4)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': tensor '%s' has no valid "
                         "shape", path, t->name);
    t->ndim = (int)ndim;
    for (size_t d = 0; d < ndim; d++) {
        json_t *v = json_array_get(shape, d);
        t->shape[d] = json_is_integer(v) ? json_integer_value(v) : -1;
        if (t->shape[d] < 1 || product > INT64_MAX / t->shape[d])
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': tensor '%s' dimension "
                             "%zu is invalid", path, t->name, d);
        product *= t->shape[d];
    }
    if (product != t->numel)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': tensor '%s' has %lld "
                         "elements but its shape holds %lld", path, t->name,
                         (long long)t->numel, (long long)product);
    return ZRT_OK;
}

static zrt_status parse_tensor(json_t *o, int i, zrt__ckpt_meta *m, const char *path,
                               zrt__errbuf *err)
{
    zrt__ckpt_tensor *t = &m->tensors[i];
    const char *name = json_string_value(json_object_get(o, "name"));
    char where[48];
    snprintf(where, sizeof where, "tensors[%d].", i);
    if (!name || !*name || !(t->name = strdup(name)))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': %sname is missing", path,
                         where);
    int64_t layer = 0, nwd = 0;
    ZRT_CHECK(get_int(o, "layer", 0, m->nlayers - 1, &layer, path, where, err));
    ZRT_CHECK(get_int(o, "offset", 0, INT64_MAX / 8, &t->offset, path, where, err));
    ZRT_CHECK(get_int(o, "numel", 1, INT64_MAX / 8, &t->numel, path, where, err));
    if (json_object_get(o, "no_weight_decay"))
        ZRT_CHECK(get_int(o, "no_weight_decay", 0, 1, &nwd, path, where, err));
    t->layer = (int)layer;
    t->no_weight_decay = (int)nwd;
    if (t->offset + t->numel > m->layers[t->layer].flat_numel)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': tensor '%s' runs past the "
                         "end of layer %d", path, name, t->layer);
    return parse_shape(o, t, path, err);
}

static zrt_status parse_tensors(json_t *root, zrt__ckpt_meta *m, const char *path,
                                zrt__errbuf *err)
{
    json_t *tensors = json_object_get(root, "tensors");
    if (!json_is_array(tensors) || json_array_size(tensors) > (1u << 24))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' has no tensor list", path);
    m->ntensors = (int)json_array_size(tensors);
    m->tensors = calloc((size_t)m->ntensors + 1, sizeof *m->tensors);
    if (!m->tensors)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for tensors");
    for (int i = 0; i < m->ntensors; i++)
        ZRT_CHECK(parse_tensor(json_array_get(tensors, (size_t)i), i, m, path, err));
    return ZRT_OK;
}

static zrt_status parse_files(json_t *root, zrt__ckpt_meta *m, const char *path,
                              zrt__errbuf *err)
{
    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files) || json_array_size(files) != (size_t)m->world)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' does not list one file per "
                         "rank (%d)", path, m->world);
    m->files = calloc((size_t)m->world, sizeof *m->files);
    if (!m->files)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for files");
    for (int r = 0; r < m->world; r++) {
        json_t *o = json_array_get(files, (size_t)r);
        char where[48];
        snprintf(where, sizeof where, "files[%d].", r);
        int64_t rank;
        ZRT_CHECK(get_int(o, "rank", r, r, &rank, path, where, err));
        ZRT_CHECK(get_int(o, "bytes", ZRT__CKPT_HEADER_BYTES, INT64_MAX, &m->files[r].bytes,
                          path, where, err));
        const char *crc = json_string_value(json_object_get(o, "header_crc32c"));
        unsigned value;
        if (!crc || strlen(crc) != 8 || sscanf(crc, "%8x", &value) != 1)
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': %sheader_crc32c is not "
                             "8 hex digits", path, where);
        m->files[r].header_crc = value;
    }
    return ZRT_OK;
}

static void copy_device(json_t *config, const char *key, char *out, size_t size)
{
    const char *v = json_string_value(json_object_get(config, key));
    snprintf(out, size, "%s", v ? v : "?");
}

/* "dtype" and "kinds": version 1 holds f32 and the three kinds; version 2
 * may hold bf16/f16 with "master" added. */
static zrt_status parse_kinds(json_t *root, zrt__ckpt_meta *m, const char *path,
                              zrt__errbuf *err)
{
    const char *dtype = json_string_value(json_object_get(root, "dtype"));
    m->dtype = ZRT_DTYPE_COUNT;
    for (int d = 0; dtype && d < ZRT_DTYPE_COUNT; d++)
        if (!strcmp(dtype, zrt_dtype_str((zrt_dtype)d)))
            m->dtype = (zrt_dtype)d;
    if (m->dtype == ZRT_DTYPE_COUNT || (m->version == 1 && m->dtype != ZRT_F32))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': \"dtype\" is %s%s%s; format "
                         "version %d holds %s", path, dtype ? "\"" : "",
                         dtype ? dtype : "missing", dtype ? "\"" : "", m->version,
                         m->version == 1 ? "f32" : "f32, bf16 or f16");
    m->nkinds = m->dtype == ZRT_F32 ? ZRT__CKPT_NKINDS : ZRT__CKPT_MAX_KINDS;
    json_t *kinds = json_object_get(root, "kinds");
    int same = json_is_array(kinds) && json_array_size(kinds) == (size_t)m->nkinds;
    for (int k = 0; same && k < m->nkinds; k++) {
        const char *name = json_string_value(json_array_get(kinds, (size_t)k));
        same = name && !strcmp(name, kind_names[k]);
    }
    if (!same)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': \"kinds\" is not the list a "
                         "%s checkpoint holds (%d kinds from \"param\")", path,
                         zrt_dtype_str(m->dtype), m->nkinds);
    return ZRT_OK;
}

/* The loss scaler's state: 16-bit checkpoints carry it. */
static zrt_status parse_scaler(json_t *root, zrt__ckpt_meta *m, const char *path,
                               zrt__errbuf *err)
{
    json_t *o = json_object_get(root, "loss_scaler");
    if (m->dtype == ZRT_F32)
        return ZRT_OK;
    zrt__loss_scaler *sc = &m->scaler;
    json_t *scale = json_object_get(o, "scale"), *min = json_object_get(o, "min_scale");
    int64_t dyn = 0, window = 0, hyst = 0, left = 0, iter = 0, last = 0, skipped = 0;
    const char *w = "loss_scaler.";
    ZRT_CHECK(get_int(o, "dynamic", 0, 1, &dyn, path, w, err));
    ZRT_CHECK(get_int(o, "window", 1, INT32_MAX, &window, path, w, err));
    ZRT_CHECK(get_int(o, "hysteresis", 1, INT32_MAX, &hyst, path, w, err));
    ZRT_CHECK(get_int(o, "hysteresis_left", 0, INT32_MAX, &left, path, w, err));
    ZRT_CHECK(get_int(o, "iter", 0, INT64_MAX, &iter, path, w, err));
    ZRT_CHECK(get_int(o, "last_overflow_iter", -1, INT64_MAX, &last, path, w, err));
    ZRT_CHECK(get_int(o, "skipped", 0, INT64_MAX, &skipped, path, w, err));
    if (!json_is_number(scale) || !(json_number_value(scale) > 0.0) ||
        !json_is_number(min) || !(json_number_value(min) > 0.0))
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': loss_scaler.scale or "
                         "min_scale is missing or not positive", path);
    *sc = (zrt__loss_scaler){.dynamic = (int)dyn, .scale = (float)json_number_value(scale),
                             .min_scale = (float)json_number_value(min),
                             .window = (int)window, .hysteresis = (int)hyst,
                             .hysteresis_left = (int)left, .iter = (long)iter,
                             .last_overflow_iter = (long)last, .skipped = (long)skipped};
    m->has_scaler = 1;
    return ZRT_OK;
}

int zrt__valid_model_dim_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 31)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* "model": {"heads": 8, ...}, optional (checkpoints before it have none). */
static zrt_status parse_model(json_t *root, zrt__ckpt_meta *m, const char *path,
                              zrt__errbuf *err)
{
    json_t *model = json_object_get(root, "model");
    if (!model)
        return ZRT_OK;
    if (!json_is_object(model) || json_object_size(model) > ZRT_MODEL_DIMS_MAX)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': \"model\" is not an object "
                         "of at most %d names", path, ZRT_MODEL_DIMS_MAX);
    const char *name;
    json_t *v;
    json_object_foreach(model, name, v) {
        if (!zrt__valid_model_dim_name(name) || !json_is_integer(v) ||
            json_integer_value(v) < 0)
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s': model.\"%.40s\" is not a "
                             "name of [a-z0-9_] with an integer >= 0", path, name);
        zrt__model_dim *d = &m->model[m->nmodel++];
        snprintf(d->name, sizeof d->name, "%s", name);
        d->value = json_integer_value(v);
    }
    return ZRT_OK;
}

int zrt__ckpt_model_dim(const zrt__ckpt_meta *m, const char *name, int64_t *value)
{
    for (int i = 0; i < m->nmodel; i++)
        if (!strcmp(m->model[i].name, name)) {
            *value = m->model[i].value;
            return 1;
        }
    return 0;
}

static zrt_status parse_meta(json_t *root, zrt__ckpt_meta *m, const char *path,
                             zrt__errbuf *err)
{
    const char *format = json_string_value(json_object_get(root, "format"));
    int64_t version = 0, world = 0, stage = 0, alignment = 0;
    if (!format || strcmp(format, "zrt-checkpoint") != 0)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' is not a zrt checkpoint's "
                         "meta.json (no \"format\": \"zrt-checkpoint\")", path);
    ZRT_CHECK(get_int(root, "version", 1, 1 << 20, &version, path, "", err));
    if (version > ZRT__CKPT_VERSION)
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED, "checkpoint: '%s' is format version "
                         "%lld; this zrt reads versions 1 to %d", path, (long long)version,
                         ZRT__CKPT_VERSION);
    m->version = (int)version;
    ZRT_CHECK(parse_kinds(root, m, path, err));
    ZRT_CHECK(parse_scaler(root, m, path, err));
    ZRT_CHECK(get_int(root, "step", 0, INT64_MAX, &m->step, path, "", err));
    ZRT_CHECK(get_int(root, "world_size", 1, 1 << 24, &world, path, "", err));
    ZRT_CHECK(get_int(root, "stage", 0, 3, &stage, path, "", err));
    ZRT_CHECK(get_int(root, "alignment", 1, 1 << 20, &alignment, path, "", err));
    m->world = (int)world;
    m->stage = (int)stage;
    m->alignment = (int)alignment;
    json_t *config = json_object_get(root, "config");
    copy_device(config, "offload_optimizer", m->offload_optimizer, sizeof m->offload_optimizer);
    copy_device(config, "offload_param", m->offload_param, sizeof m->offload_param);
    ZRT_CHECK(parse_layers(root, m, path, err));
    ZRT_CHECK(parse_tensors(root, m, path, err));
    ZRT_CHECK(parse_files(root, m, path, err));
    ZRT_CHECK(parse_model(root, m, path, err));
    return parse_user(root, m, path, err);
}

static zrt_status read_meta(const char *step_dir, zrt__ckpt_meta *m, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH];
    ZRT_CHECK(join(path, sizeof path, step_dir, "meta.json", err));
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(read_small_file(path, META_MAX_BYTES, &text, &len, err));
    json_error_t jerr;
    json_t *root = NULL;
    zrt_status st = check_meta_crc(text, path, err);
    if (st == ZRT_OK && !(root = json_loadb(text, len, 0, &jerr)))
        st = zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' is not valid JSON (line %d, "
                       "column %d: %s)", path, jerr.line, jerr.column, jerr.text);
    if (st == ZRT_OK)
        st = parse_meta(root, m, path, err);
    json_decref(root);
    free(text);
    return st;
}

/* ---- opening a checkpoint ----------------------------------------------------------- */

/* `latest` may only name what zrt_save publishes: "step-" and digits. A
 * "step-N.tmp" is a save that never finished, whatever it holds. */
static int valid_step_name(const char *name)
{
    if (strncmp(name, "step-", 5) != 0 || !name[5])
        return 0;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

static int is_unfinished_dir(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return n >= 4 && !strncmp(dir + n - 4, ".tmp", 4);
}

zrt_status zrt__ckpt_resolve(const char *dir, char *step_dir, size_t size,
                             zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH];
    ZRT_CHECK(join(path, sizeof path, dir, "meta.json", err));
    if (access(path, F_OK) == 0) {
        if (is_unfinished_dir(dir))
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' is a save that never "
                             "finished (a .tmp directory); load its parent's latest or a "
                             "step-N directory", dir);
        if (snprintf(step_dir, size, "%s", dir) >= (int)size)
            return zrt__fail(err, ZRT_ERR_INVALID_ARG, "checkpoint: path too long");
        return ZRT_OK;
    }
    ZRT_CHECK(join(path, sizeof path, dir, "latest", err));
    if (access(path, F_OK) != 0)
        return zrt__fail(err, ZRT_ERR_IO, "no checkpoint in '%s': it holds neither "
                         "meta.json nor latest", dir);
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(read_small_file(path, LATEST_MAX, &text, &len, err));
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    zrt_status st = ZRT_OK;
    if (!valid_step_name(text))
        st = zrt__fail(err, ZRT_ERR_IO, "checkpoint: '%s' does not name a step "
                       "directory 'step-N' (it holds '%.64s')", path, text);
    if (st == ZRT_OK)
        st = join(step_dir, size, dir, text, err);
    free(text);
    return st;
}

static void free_meta(zrt__ckpt_meta *m)
{
    for (int i = 0; m->tensors && i < m->ntensors; i++)
        free(m->tensors[i].name);
    free(m->tensors);
    free(m->layers);
    free(m->files);
    free(m->user);
    memset(m, 0, sizeof *m);
}

zrt_status zrt__ckpt_open(const char *dir, zrt__ckpt *out, zrt__errbuf *err)
{
    zrt__ckpt c;
    memset(&c, 0, sizeof c);
    zrt_status st = zrt__ckpt_resolve(dir, c.meta.dir, sizeof c.meta.dir, err);
    if (st == ZRT_OK)
        st = read_meta(c.meta.dir, &c.meta, err);
    if (st == ZRT_OK && !(c.files = calloc((size_t)c.meta.world, sizeof *c.files)))
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for %d files",
                       c.meta.world);
    for (int r = 0; st == ZRT_OK && r < c.meta.world; r++) {
        c.files[r].fd = -1;
        char name[32];
        snprintf(name, sizeof name, "rank-%05d.zrtc", r);
        st = join(c.files[r].path, sizeof c.files[r].path, c.meta.dir, name, err);
    }
    if (st != ZRT_OK) {
        zrt__ckpt_close(&c);
        return st;
    }
    *out = c;
    return ZRT_OK;
}

void zrt__ckpt_close(zrt__ckpt *c)
{
    for (int r = 0; c->files && r < c->meta.world; r++) {
        if (c->files[r].fd >= 0)
            close(c->files[r].fd);
        free(c->files[r].sections);
    }
    free(c->files);
    free_meta(&c->meta);
    c->files = NULL;
}

/* The table must tile the file: sections back to back from data_offset. */
static zrt_status check_table(const zrt__ckpt_meta *m, zrt__ckpt_rankfile *f,
                              const file_header *h, zrt__errbuf *err)
{
    uint64_t at = h->data_offset;
    for (int i = 0; i < f->nsections; i++) {
        const zrt__ckpt_section *s = &f->sections[i];
        int ok = s->layer >= 0 && s->layer < m->nlayers &&
                 s->dtype == zrt__ckpt_kind_dtype(m, s->kind) && s->offset == at &&
                 s->numel >= 0 && s->bytes == (uint64_t)s->numel * zrt_dtype_size(s->dtype);
        if (!ok)
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': section %d (%s of "
                             "layer %d) has an invalid place or size", f->path, i,
                             s->kind, s->layer);
        at += s->bytes;
    }
    if (at != h->file_bytes)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': its sections end at "
                         "byte %" PRIu64 " but its header says the file is %" PRIu64
                         " bytes", f->path, at, h->file_bytes);
    return ZRT_OK;
}

static zrt_status read_table(const zrt__ckpt_meta *m, zrt__ckpt_rankfile *f,
                             const file_header *h, zrt__errbuf *err)
{
    size_t bytes = (size_t)h->nsections * ZRT__CKPT_ENTRY_BYTES;
    unsigned char *table = malloc(bytes + 1);
    f->sections = calloc((size_t)h->nsections + 1, sizeof *f->sections);
    zrt_status st = ZRT_OK;
    if (!table || !f->sections)
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for the "
                       "section table of '%s'", f->path);
    if (st == ZRT_OK)
        st = pread_all(f->fd, table, bytes, ZRT__CKPT_HEADER_BYTES, f->path, err);
    uint32_t crc = st == ZRT_OK ? zrt__crc32c(0, table, bytes) : 0;
    if (st == ZRT_OK && crc != h->table_crc)
        st = zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': section table (bytes "
                       "64..%zu) fails its CRC32C (stored %08x, computed %08x)", f->path,
                       64 + bytes, h->table_crc, crc);
    for (uint32_t i = 0; st == ZRT_OK && i < h->nsections; i++)
        decode_entry(table + (size_t)i * ZRT__CKPT_ENTRY_BYTES, &f->sections[i]);
    f->nsections = (int)h->nsections;
    if (st == ZRT_OK)
        st = check_table(m, f, h, err);
    free(table);
    return st;
}

/* Header checks against meta.json: size, CRC, rank, world, step. */
static zrt_status check_header(const zrt__ckpt_meta *m, int rank, const char *path,
                               const file_header *h, zrt__errbuf *err)
{
    if (h->header_crc != m->files[rank].header_crc)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': header CRC32C %08x "
                         "differs from the %08x meta.json records (a file from another "
                         "save?)", path, h->header_crc, m->files[rank].header_crc);
    if (h->version != (uint32_t)m->version)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s' is format version %u; "
                         "meta.json says %d", path, h->version, m->version);
    if (h->rank != (uint32_t)rank || h->world != (uint32_t)m->world ||
        h->step != (uint64_t)m->step ||
        h->data_offset != ZRT__CKPT_HEADER_BYTES +
                              (uint64_t)h->nsections * ZRT__CKPT_ENTRY_BYTES ||
        h->nsections > (uint32_t)(m->nlayers + 1) * 16u)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': header says rank %u of "
                         "%u at step %" PRIu64 " with %u sections; meta.json says rank "
                         "%d of %d at step %lld", path, h->rank, h->world, h->step,
                         h->nsections, rank, m->world, (long long)m->step);
    return ZRT_OK;
}

static zrt_status open_rankfile(zrt__ckpt *c, int rank, zrt__errbuf *err)
{
    zrt__ckpt_rankfile *f = &c->files[rank];
    const zrt__ckpt_file *want = &c->meta.files[rank];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "open the checkpoint file", f->path, errno);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size != want->bytes) {
        close(fd);
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s' is %lld bytes but "
                         "meta.json records %lld (truncated or replaced)", f->path,
                         (long long)sb.st_size, (long long)want->bytes);
    }
    unsigned char raw[ZRT__CKPT_HEADER_BYTES];
    file_header h = {0};
    f->fd = fd;
    zrt_status st = pread_all(fd, raw, sizeof raw, 0, f->path, err);
    if (st == ZRT_OK)
        st = decode_header(raw, f->path, &h, err);
    if (st == ZRT_OK)
        st = check_header(&c->meta, rank, f->path, &h, err);
    if (st == ZRT_OK)
        st = read_table(&c->meta, f, &h, err);
    if (st != ZRT_OK) {
        close(fd);
        f->fd = -1;
        free(f->sections);
        f->sections = NULL;
        f->nsections = 0;
    }
    return st;
}

zrt_status zrt__ckpt_section_of(zrt__ckpt *c, int rank, const char *kind, int layer,
                                zrt__ckpt_section **out, zrt__errbuf *err)
{
    if (rank < 0 || rank >= c->meta.world || layer < 0 || layer >= c->meta.nlayers)
        return zrt__fail(err, ZRT_ERR_INTERNAL, "checkpoint: rank %d / layer %d outside "
                         "the plan", rank, layer);
    zrt__ckpt_rankfile *f = &c->files[rank];
    if (f->fd < 0)
        ZRT_CHECK(open_rankfile(c, rank, err));
    int64_t shard = c->meta.layers[layer].shard_numel;
    for (int i = 0; i < f->nsections; i++) {
        zrt__ckpt_section *s = &f->sections[i];
        if (s->layer != layer || strcmp(s->kind, kind) != 0)
            continue;
        if (s->first != (int64_t)rank * shard || s->numel != shard)
            return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': section %s of layer "
                             "%d holds elements [%lld, %lld); the plan in meta.json says "
                             "[%lld, %lld)", f->path, kind, layer, (long long)s->first,
                             (long long)(s->first + s->numel),
                             (long long)rank * shard, (long long)(rank + 1) * shard);
        *out = s;
        return ZRT_OK;
    }
    return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s' has no section %s for layer "
                     "%d", f->path, kind, layer);
}

zrt_status zrt__ckpt_verify_section(zrt__ckpt *c, int rank, zrt__ckpt_section *s,
                                    void *buf, size_t buf_bytes, zrt__errbuf *err)
{
    const zrt__ckpt_rankfile *f = &c->files[rank];
    if (!buf || buf_bytes == 0)
        return zrt__fail(err, ZRT_ERR_INTERNAL, "checkpoint file '%s': no buffer to "
                         "check section %s of layer %d through", f->path, s->kind,
                         s->layer);
    uint32_t crc = 0;
    for (uint64_t done = 0; done < s->bytes;) {
        size_t n = s->bytes - done < buf_bytes ? (size_t)(s->bytes - done) : buf_bytes;
        ZRT_CHECK(pread_all(f->fd, buf, n, s->offset + done, f->path, err));
        crc = zrt__crc32c(crc, buf, n);
        done += n;
    }
    if (crc != s->crc)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s': section %s of layer %d "
                         "(bytes %" PRIu64 "..%" PRIu64 ") fails its CRC32C (stored %08x, "
                         "computed %08x)", f->path, s->kind, s->layer, s->offset,
                         s->offset + s->bytes, s->crc, crc);
    s->verified = 1;
    return ZRT_OK;
}

zrt_status zrt__ckpt_verify_file(zrt__ckpt *c, int rank, void *buf, size_t buf_bytes,
                                 zrt__errbuf *err)
{
    int expected = 0;
    for (int l = 0; l < c->meta.nlayers; l++) {
        if (c->meta.layers[l].numel == 0)
            continue;
        for (int k = 0; k < c->meta.nkinds; k++) {
            zrt__ckpt_section *s = NULL;
            ZRT_CHECK(zrt__ckpt_section_of(c, rank, kind_names[k], l, &s, err));
            expected++;
        }
    }
    zrt__ckpt_rankfile *f = &c->files[rank];
    if (f->fd < 0) /* a model without parameters: check the header alone */
        ZRT_CHECK(open_rankfile(c, rank, err));
    if (f->nsections != expected)
        return zrt__fail(err, ZRT_ERR_IO, "checkpoint file '%s' holds %d sections; the "
                         "plan calls for %d", f->path, f->nsections, expected);
    for (int i = 0; i < f->nsections; i++)
        if (!f->sections[i].verified)
            ZRT_CHECK(zrt__ckpt_verify_section(c, rank, &f->sections[i], buf, buf_bytes,
                                               err));
    return ZRT_OK;
}

zrt_status zrt__ckpt_for_pieces(const zrt__ckpt_meta *m, int tensor, int64_t from,
                                int64_t count, zrt__ckpt_piece_fn fn, void *arg)
{
    const zrt__ckpt_tensor *t = &m->tensors[tensor];
    int64_t shard = m->layers[t->layer].shard_numel;
    int64_t at = t->offset + from, end = at + count;
    while (at < end) {
        int64_t q = at / shard;
        int64_t stop = (q + 1) * shard < end ? (q + 1) * shard : end;
        zrt__ckpt_piece p = {.rank = (int)q, .layer = t->layer,
                             .section_elem = at - q * shard, .count = stop - at,
                             .dst_elem = at - (t->offset + from)};
        ZRT_CHECK(fn(arg, &p));
        at = stop;
    }
    return ZRT_OK;
}

zrt_status zrt__ckpt_read_piece(zrt__ckpt *c, const char *kind,
                                const zrt__ckpt_piece *piece, void *dst,
                                zrt__errbuf *err)
{
    zrt__ckpt_section *s = NULL;
    ZRT_CHECK(zrt__ckpt_section_of(c, piece->rank, kind, piece->layer, &s, err));
    size_t esize = zrt_dtype_size(s->dtype);
    return pread_all(c->files[piece->rank].fd, (char *)dst + (size_t)piece->dst_elem * esize,
                     (size_t)piece->count * esize,
                     s->offset + (uint64_t)piece->section_elem * esize,
                     c->files[piece->rank].path, err);
}

int zrt__ckpt_find_tensor(const zrt__ckpt_meta *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- agreeing on outcomes ------------------------------------------------------------ */

/* Every rank learns whether any failed; the lowest failing rank's sentence
 * is broadcast so that every rank's error names the real cause. */
static zrt_status agree_share(zrt_ctx *ctx, zrt_status local, const char *call,
                              const char *consequence)
{
    int first = -1;
    ZRT_CHECK(ctx->comm->ops->agree(ctx->comm, local, &first));
    if (first < 0)
        return ZRT_OK;
    char text[ZRT__ERRBUF_SIZE];
    memcpy(text, ctx->err.text, sizeof text);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(ctx->comm->ops->broadcast(ctx->comm, text, sizeof text, first, &req));
    ZRT_CHECK(zrt__comm_wait(ctx, req));
    if (local != ZRT_OK && !consequence)
        return local;
    text[sizeof text - 1] = '\0';
    const char *what = text;
    if (!strncmp(what, "rank ", 5) && strstr(what, ": ")) /* the text names its rank */
        what = strstr(what, ": ") + 2;
    return zrt__fail(&ctx->err, local != ZRT_OK ? local : ZRT_ERR_REMOTE,
                     "%s failed on rank %d: %s%s", call, first, what,
                     consequence ? consequence : "");
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- where a rank's state lives ---------------------------------------------------- */

/* One kind of state of one layer on this rank: this rank's range of the
 * flat buffer [range_lo, range_lo + range_len), in memory or in a swap
 * file's current slot. Parameters have the context's dtype (16-bit ones
 * are never on NVMe); the other kinds are f32. */
typedef struct state_place {
    zrt__mover *mover; /* NULL: in memory */
    uint64_t swap_offset;
    void *mem;           /* element range_lo of the layer */
    const zrt__buf *buf; /* the buffer mem points into */
    size_t esize;        /* bytes per element */
} state_place;

/* The kinds this context holds: param, exp_avg, exp_avg_sq, and master
 * with 16-bit parameters. */
static int ctx_nkinds(const zrt_ctx *ctx)
{
    return zrt__mixed(ctx) ? ZRT__CKPT_MAX_KINDS : ZRT__CKPT_NKINDS;
}

static void place_of(zrt_ctx *ctx, int kind, int l, state_place *out)
{
    zrt__layer_state *ls = &ctx->layers[l];
    int slot = ctx->nvme_slot;
    *out = (state_place){.esize = kind == KIND_PARAM ? ctx->esize : sizeof(float)};
    if (kind == KIND_MASTER) {
        out->buf = &ls->master;
        out->mem = ls->master.ptr;
    } else if (kind == KIND_PARAM && zrt__params_on_nvme(ctx)) {
        out->mover = ctx->param_nvme.mover;
        out->swap_offset = ls->swap_p[slot];
    } else if (kind == KIND_PARAM) {
        out->buf = ctx->cfg.stage < 3 ? &ls->param_full : &ls->param_shard;
        out->mem = zrt__owned_param(ctx, l);
    } else if (ctx->optim_nvme.mover) {
        out->mover = ctx->optim_nvme.mover;
        out->swap_offset = kind == KIND_EXP_AVG ? ls->swap_m[slot] : ls->swap_v[slot];
    } else {
        out->buf = kind == KIND_EXP_AVG ? &ls->m : &ls->v;
        out->mem = out->buf->ptr;
    }
}

static zrt_status require_reachable(zrt_ctx *ctx, const state_place *p, int kind, int l,
                                    const char *call)
{
    if (p->mover || p->buf->tier != ZRT_TIER_DEVICE || ctx->be->caps.device_is_host)
        return ZRT_OK;
    return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                     "%s: %s of layer %d lives in device memory the host cannot read on "
                     "backend '%s'; checkpoints through a staging copy are not "
                     "implemented yet", call, kind_names[kind], l, ctx->be->ops->name);
}

/* The NVMe staging buffer (zero/nvme.c): two (p, m, v) sets of the largest
 * range, idle between steps; one range fits at its start. */
static float *nvme_staging(zrt_ctx *ctx)
{
    return ctx->step_staging.ptr;
}

static zrt_status swap_io(zrt_ctx *ctx, const state_place *p, int64_t elems, void *buf,
                          int write)
{
    uint64_t ticket = 0;
    size_t bytes = (size_t)elems * p->esize;
    zrt_status st = write ? zrt__mover_write(p->mover, p->swap_offset, buf, bytes, &ticket)
                          : zrt__mover_read(p->mover, p->swap_offset, buf, bytes, &ticket);
    if (st == ZRT_OK)
        st = zrt__mover_wait(p->mover, ticket, &ctx->err);
    if (st != ZRT_OK) /* a later step reads (and verifies) the slot again */
        zrt__mover_forget_failure(p->mover);
    return st;
}

/* Neither save nor load runs inside a step: no layer live, no backward
 * since the last optimizer step; collectives in flight are completed. */
static zrt_status require_between_steps(zrt_ctx *ctx, const char *call)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        if (ls->fwd_live || ls->bwd_live)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE, "%s: layer %d is live; call it "
                             "between steps", call, l);
        if (ls->bwd_done || ctx->micro != 0)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE, "%s: backward ran since the last "
                             "optimizer step (micro-step %d of %d); call it after "
                             "zrt_step applies the optimizer", call, ctx->micro + 1,
                             ctx->cfg.gradient_accumulation_steps);
    }
    return zrt__engine_drain(ctx);
}

static zrt_status check_info(zrt_ctx *ctx, const zrt_ckpt_info *info, const char *call)
{
    if (!info)
        return ZRT_OK;
    if (info->struct_size != sizeof(zrt_ckpt_info))
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "%s: info->struct_size is %zu, "
                         "expected %zu (call zrt_ckpt_info_init)", call,
                         info->struct_size, sizeof(zrt_ckpt_info));
    if (info->user_bytes > ZRT_CKPT_USER_MAX)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "%s: info->user_bytes is %zu, "
                         "more than ZRT_CKPT_USER_MAX (%d)", call, info->user_bytes,
                         ZRT_CKPT_USER_MAX);
    return ZRT_OK;
}

zrt_status zrt_ckpt_info_init(zrt_ckpt_info *info)
{
    if (!info)
        return ZRT_ERR_INVALID_ARG;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    return ZRT_OK;
}

/* ---- meta.json: writing ----------------------------------------------------------- */

typedef struct rank_summary { /* all-gathered to rank 0: 16 bytes */
    uint64_t bytes;
    uint32_t header_crc;
    uint32_t ok;
} rank_summary;

static const char *device_name(int device)
{
    return device == ZRT_OFFLOAD_CPU ? "cpu" : device == ZRT_OFFLOAD_NVME ? "nvme" : "none";
}

static json_t *layers_json(const zrt_ctx *ctx)
{
    json_t *a = json_array();
    for (int l = 0; a && l < ctx->plan.nlayers; l++) {
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        json_array_append_new(a, json_pack("{s:i, s:I, s:I, s:I}", "layer", l, "numel",
                                           (json_int_t)lp->numel, "flat_numel",
                                           (json_int_t)lp->flat_numel, "shard_numel",
                                           (json_int_t)lp->shard_numel));
    }
    return a;
}

static json_t *tensors_json(const zrt_ctx *ctx)
{
    json_t *a = json_array();
    for (int i = 0; a && i < ctx->nparams; i++) {
        const zrt__param_info *p = &ctx->params[i];
        json_t *shape = json_array();
        for (int d = 0; d < p->desc.ndim; d++)
            json_array_append_new(shape, json_integer(p->desc.shape[d]));
        json_array_append_new(
            a, json_pack("{s:s, s:i, s:I, s:I, s:o, s:i}", "name", p->name, "layer",
                         p->desc.layer, "offset", (json_int_t)ctx->plan.tensors[i].offset,
                         "numel", (json_int_t)p->numel, "shape", shape, "no_weight_decay",
                         p->desc.no_weight_decay ? 1 : 0));
    }
    return a;
}

static json_t *config_json(const zrt_ctx *ctx)
{
    const zrt_config *c = &ctx->cfg;
    return json_pack("{s:i, s:s, s:s, s:i, s:f, s:s}", "stage", c->stage,
                     "offload_optimizer", device_name(c->offload_optimizer.device),
                     "offload_param", device_name(c->offload_param.device),
                     "gradient_accumulation_steps", c->gradient_accumulation_steps,
                     "gradient_clipping", (double)c->gradient_clipping, "backend",
                     c->backend);
}

static json_t *files_json(const rank_summary *all, int world)
{
    json_t *a = json_array();
    for (int r = 0; a && r < world; r++) {
        char name[32], crc[16];
        snprintf(name, sizeof name, "rank-%05d.zrtc", r);
        snprintf(crc, sizeof crc, "%08x", all[r].header_crc);
        json_array_append_new(a, json_pack("{s:s, s:i, s:I, s:s}", "name", name, "rank",
                                           r, "bytes", (json_int_t)all[r].bytes,
                                           "header_crc32c", crc));
    }
    return a;
}

static json_t *user_json(const zrt_ckpt_info *info)
{
    size_t n = info ? info->user_bytes : 0;
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", info->user[i]);
    hex[2 * n] = '\0';
    json_t *o = json_pack("{s:I, s:s}", "bytes", (json_int_t)n, "hex", hex);
    free(hex);
    return o;
}

/* The format version a context's checkpoint is written as. */
static int ctx_version(const zrt_ctx *ctx)
{
    return zrt__mixed(ctx) ? ZRT__CKPT_VERSION : ZRT__CKPT_VERSION_F32;
}

/* fp16's loss scaler (bf16's is a fixed 1); scale and min_scale are
 * written with 17 digits, so they read back as the same floats. */
static json_t *scaler_json(const zrt_ctx *ctx)
{
    const zrt__loss_scaler *s = &ctx->scaler;
    return json_pack("{s:i, s:f, s:f, s:i, s:i, s:i, s:I, s:I, s:I}", "dynamic", s->dynamic,
                     "scale", (double)s->scale, "min_scale", (double)s->min_scale,
                     "window", s->window, "hysteresis", s->hysteresis, "hysteresis_left",
                     s->hysteresis_left, "iter", (json_int_t)s->iter, "last_overflow_iter",
                     (json_int_t)s->last_overflow_iter, "skipped", (json_int_t)s->skipped);
}

static json_t *model_json(const zrt_ctx *ctx)
{
    json_t *o = json_object();
    for (int i = 0; o && i < ctx->nmodel_dims; i++)
        json_object_set_new(o, ctx->model_dims[i].name,
                            json_integer((json_int_t)ctx->model_dims[i].value));
    return o;
}

static json_t *meta_json(const zrt_ctx *ctx, const zrt_ckpt_info *info,
                         const rank_summary *all)
{
    json_t *kinds = json_array();
    for (int k = 0; kinds && k < ctx_nkinds(ctx); k++)
        json_array_append_new(kinds, json_string(kind_names[k]));
    json_t *root = json_pack(
        "{s:s, s:i, s:s, s:I, s:i, s:i, s:i, s:s, s:o?, s:o?}", "format", "zrt-checkpoint",
        "version", ctx_version(ctx), "zrt_version", "0.1.0", "step", (json_int_t)ctx->step,
        "world_size", ctx->comm->size, "stage", ctx->cfg.stage, "alignment",
        ctx->plan.alignment, "dtype", zrt_dtype_str(ctx->pdtype), "kinds", kinds, "config",
        config_json(ctx));
    if (root && zrt__mixed(ctx))
        json_object_set_new(root, "loss_scaler", scaler_json(ctx));
    if (root)
        json_object_set_new(root, "layers", layers_json(ctx));
    if (root)
        json_object_set_new(root, "tensors", tensors_json(ctx));
    if (root && ctx->nmodel_dims)
        json_object_set_new(root, "model", model_json(ctx));
    if (root)
        json_object_set_new(root, "user", user_json(info));
    if (root)
        json_object_set_new(root, "files", files_json(all, ctx->comm->size));
    return root;
}

/* The JSON text with its CRC32C appended as the last member. */
static zrt_status meta_text(zrt_ctx *ctx, const zrt_ckpt_info *info,
                            const rank_summary *all, char **out, size_t *len)
{
    json_t *root = meta_json(ctx, info, all);
    char *body = root ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    char *end = body ? strrchr(body, '}') : NULL;
    if (!end)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: cannot build "
                         "meta.json");
    while (end > body && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t head = (size_t)(end - body);
    char *text = malloc(head + 64);
    if (!text) {
        free(body);
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory for "
                         "meta.json");
    }
    memcpy(text, body, head);
    free(body);
    memcpy(text + head, ",\n ", 3);
    uint32_t crc = zrt__crc32c(0, text, head + 3);
    int tail = snprintf(text + head + 3, 61, "%s: \"%08x\"\n}\n", crc_key, crc);
    *out = text;
    *len = head + 3 + (size_t)tail;
    return ZRT_OK;
}

/* ---- saving ---------------------------------------------------------------------- */

typedef struct save_job {
    char dir[ZRT__CKPT_PATH];
    char name[32];                 /* step-00000020 */
    char final[ZRT__CKPT_PATH];    /* dir/step-00000020 */
    char tmp[ZRT__CKPT_PATH + 8];  /* dir/step-00000020.tmp */
    rank_summary *all;             /* world entries */
} save_job;

static zrt_status save_prepare(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info,
                               save_job *job)
{
    if (!dir || !*dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_save: no directory given");
    ZRT_CHECK(check_info(ctx, info, "zrt_save"));
    ZRT_CHECK(require_between_steps(ctx, "zrt_save"));
    if (snprintf(job->dir, sizeof job->dir, "%s", dir) >= (int)sizeof job->dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_save: directory name too "
                         "long");
    snprintf(job->name, sizeof job->name, "step-%08ld", ctx->step);
    ZRT_CHECK(join(job->final, sizeof job->final, dir, job->name, &ctx->err));
    snprintf(job->tmp, sizeof job->tmp, "%s.tmp", job->final);
    job->all = calloc((size_t)ctx->comm->size, sizeof *job->all);
    if (!job->all)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory for %d "
                         "file summaries", ctx->comm->size);
    return ZRT_OK;
}

/* Rank 0: dir exists, step-N.tmp is new and empty. */
static zrt_status make_tmp_dir(const save_job *job, zrt__errbuf *err)
{
    ZRT_CHECK(make_dirs(job->dir, err));
    ZRT_CHECK(remove_step_dir(job->tmp, err)); /* a crashed save's leftover */
    if (mkdir(job->tmp, 0755) != 0)
        return io_fail(err, "create the directory", job->tmp, errno);
    return fsync_dir(job->dir, err);
}

/* This rank's sections: shard `rank` of every layer with parameters, each
 * kind, in table order, placed back to back after the table. */
static zrt__ckpt_section *plan_sections(zrt_ctx *ctx, int *count)
{
    int n = 0, nkinds = ctx_nkinds(ctx);
    for (int l = 0; l < ctx->plan.nlayers; l++)
        n += ctx->plan.layers[l].numel > 0 ? nkinds : 0;
    zrt__ckpt_section *s = calloc((size_t)n + 1, sizeof *s);
    if (!s)
        return NULL;
    uint64_t at = ZRT__CKPT_HEADER_BYTES + (uint64_t)n * ZRT__CKPT_ENTRY_BYTES;
    int i = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        for (int k = 0; lp->numel > 0 && k < nkinds; k++, i++) {
            snprintf(s[i].kind, sizeof s[i].kind, "%s", kind_names[k]);
            s[i].layer = l;
            s[i].dtype = k == KIND_PARAM ? ctx->pdtype : ZRT_F32;
            s[i].first = (int64_t)ctx->comm->rank * lp->shard_numel;
            s[i].numel = lp->shard_numel;
            s[i].offset = at;
            s[i].bytes = (uint64_t)lp->shard_numel * zrt_dtype_size(s[i].dtype);
            at += s[i].bytes;
        }
    }
    *count = n;
    return s;
}

/* Writes one section's data, read from memory or through the staging
 * buffer from the swap file, and sets its CRC. */
static zrt_status write_section(zrt_ctx *ctx, int fd, const char *path, int kind,
                                zrt__ckpt_section *s)
{
    const zrt__layer_state *ls = &ctx->layers[s->layer];
    state_place p;
    place_of(ctx, kind, s->layer, &p);
    ZRT_CHECK(require_reachable(ctx, &p, kind, s->layer, "zrt_save"));
    const char *range = p.mem;
    if (p.mover) {
        ZRT_CHECK(swap_io(ctx, &p, ls->range_len, nvme_staging(ctx), 0));
        range = (const char *)nvme_staging(ctx);
    }
    const char *src = range + (size_t)(s->first - ls->range_lo) * p.esize;
    s->crc = zrt__crc32c(0, src, s->bytes);
    return pwrite_all(fd, src, s->bytes, s->offset, path, &ctx->err);
}

static zrt_status write_header_and_table(zrt_ctx *ctx, int fd, const char *path,
                                         const zrt__ckpt_section *s, int n,
                                         rank_summary *out)
{
    size_t table_bytes = (size_t)n * ZRT__CKPT_ENTRY_BYTES;
    unsigned char *table = calloc(table_bytes + 1, 1);
    if (!table)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory for the "
                         "section table");
    for (int i = 0; i < n; i++)
        encode_entry(&s[i], table + (size_t)i * ZRT__CKPT_ENTRY_BYTES);
    uint64_t data = ZRT__CKPT_HEADER_BYTES + table_bytes;
    file_header h = {.version = (uint32_t)ctx_version(ctx),
                     .rank = (uint32_t)ctx->comm->rank, .world = (uint32_t)ctx->comm->size,
                     .nsections = (uint32_t)n, .step = (uint64_t)ctx->step,
                     .data_offset = data,
                     .file_bytes = n ? s[n - 1].offset + s[n - 1].bytes : data,
                     .table_crc = zrt__crc32c(0, table, table_bytes)};
    unsigned char raw[ZRT__CKPT_HEADER_BYTES];
    encode_header(&h, raw);
    zrt_status st = pwrite_all(fd, table, table_bytes, ZRT__CKPT_HEADER_BYTES, path,
                               &ctx->err);
    if (st == ZRT_OK)
        st = pwrite_all(fd, raw, sizeof raw, 0, path, &ctx->err);
    free(table);
    out->bytes = h.file_bytes;
    out->header_crc = h.header_crc;
    return st;
}

static zrt_status write_rank_sections(zrt_ctx *ctx, int fd, const char *path,
                                      rank_summary *out)
{
    int n = 0;
    zrt__ckpt_section *s = plan_sections(ctx, &n);
    if (!s)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory for the "
                         "section table");
    uint64_t file_bytes = n ? s[n - 1].offset + s[n - 1].bytes
                            : ZRT__CKPT_HEADER_BYTES;
    zrt_status st = zrt__check_file_size_limit(file_bytes, "the checkpoint file", path,
                                               &ctx->err);
    for (int i = 0; st == ZRT_OK && i < n; i++)
        st = write_section(ctx, fd, path, i % ctx_nkinds(ctx), &s[i]);
    if (st == ZRT_OK)
        st = write_header_and_table(ctx, fd, path, s, n, out);
    free(s);
    return st;
}

/* tmp/rank-R.zrtc through a temporary name, durable when this returns. */
static zrt_status write_rank_file(zrt_ctx *ctx, const save_job *job, rank_summary *out)
{
    char name[32], path[ZRT__CKPT_PATH + 16], tmp[ZRT__CKPT_PATH + 32];
    snprintf(name, sizeof name, "rank-%05d.zrtc", ctx->comm->rank);
    ZRT_CHECK(join(path, sizeof path, job->tmp, name, &ctx->err));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_fail(&ctx->err, "create", tmp, errno);
    zrt_status st = write_rank_sections(ctx, fd, tmp, out);
    if (st == ZRT_OK && fsync(fd) != 0)
        st = io_fail(&ctx->err, "fsync", tmp, errno);
    if (close(fd) != 0 && st == ZRT_OK)
        st = io_fail(&ctx->err, "close", tmp, errno);
    if (st == ZRT_OK && rename(tmp, path) != 0)
        st = io_fail(&ctx->err, "rename into place", tmp, errno);
    if (st != ZRT_OK) {
        unlink(tmp);
        return st;
    }
    out->ok = 1;
    return fsync_dir(job->tmp, &ctx->err);
}

/* Every rank's size and header CRC, to rank 0 (and everyone). */
static zrt_status gather_summaries(zrt_ctx *ctx, const rank_summary *mine,
                                   rank_summary *all)
{
    zrt__comm_req *req = NULL;
    ZRT_CHECK(ctx->comm->ops->all_gather(ctx->comm, mine, all,
                                         sizeof *mine / sizeof(float), ZRT_F32, &req));
    return zrt__comm_wait(ctx, req);
}

/* Rank 0: step-N.tmp becomes step-N (an older step-N is exchanged out and
 * removed). */
static zrt_status publish_dir(zrt_ctx *ctx, const save_job *job)
{
    if (access(job->final, F_OK) != 0) {
        if (rename(job->tmp, job->final) != 0)
            return io_fail(&ctx->err, "rename into place", job->tmp, errno);
        return fsync_dir(job->dir, &ctx->err);
    }
    if (renameat2(AT_FDCWD, job->tmp, AT_FDCWD, job->final, RENAME_EXCHANGE) != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_IO, "zrt_save: cannot replace '%s' with '%s' "
                         "atomically (renameat2 RENAME_EXCHANGE): %s", job->final,
                         job->tmp, strerror(errno));
    ZRT_CHECK(fsync_dir(job->dir, &ctx->err));
    if (remove_step_dir(job->tmp, &ctx->err) != ZRT_OK) /* the next save retries */
        zrt_log(ctx, 1, "zrt_save: %s", ctx->err.text);
    return ZRT_OK;
}

/* Rank 0, after every rank's file is durable: meta.json, the directory,
 * then latest. */
static zrt_status finish_save(zrt_ctx *ctx, const save_job *job, const zrt_ckpt_info *info)
{
    for (int r = 0; r < ctx->comm->size; r++)
        if (!job->all[r].ok) /* every rank agreed it succeeded: a bug if this fails */
            return zrt__fail(&ctx->err, ZRT_ERR_INTERNAL, "zrt_save: rank %d reported "
                             "success without a durable file in '%s'", r, job->tmp);
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(meta_text(ctx, info, job->all, &text, &len));
    zrt_status st = write_file_atomic(job->tmp, "meta.json", text, len, &ctx->err);
    free(text);
    if (st == ZRT_OK)
        st = publish_dir(ctx, job);
    char latest[48];
    int n = snprintf(latest, sizeof latest, "%s\n", job->name);
    if (st == ZRT_OK)
        st = write_file_atomic(job->dir, "latest", latest, (size_t)n, &ctx->err);
    return st;
}

/* Appended to a failed save's error: what a user most wants to know next. */
#define KEPT_LATEST "; nothing was published: 'latest' is unchanged"

/* Rank 0, after every rank's failed or finished write: frees the space a
 * failed save took (a full disk is the usual cause). Best effort: the next
 * save removes a leftover step-N.tmp anyway. */
static void discard_tmp_dir(zrt_ctx *ctx, const save_job *job)
{
    if (ctx->comm->rank != 0)
        return;
    zrt__errbuf scratch = {.rank = ctx->err.rank};
    if (remove_step_dir(job->tmp, &scratch) != ZRT_OK)
        zrt_log(ctx, 1, "zrt_save: %s", scratch.text);
}

static int64_t total_bytes(const rank_summary *all, int world)
{
    int64_t sum = 0;
    for (int r = 0; r < world; r++)
        sum += (int64_t)all[r].bytes;
    return sum;
}

zrt_status zrt_save(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_save"));
    double t0 = now_seconds();
    save_job job;
    memset(&job, 0, sizeof job);
    rank_summary mine = {0};
    zrt_status st = save_prepare(ctx, dir, info, &job);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_save", NULL), st, done);
    st = ctx->comm->rank == 0 ? make_tmp_dir(&job, &ctx->err) : ZRT_OK;
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_save", NULL), st, done);
    st = write_rank_file(ctx, &job, &mine);
    zrt_status gathered = gather_summaries(ctx, &mine, job.all);
    if (gathered != ZRT_OK) { /* the communicator failed: nothing left to agree with */
        st = gathered;
        goto done;
    }
    st = agree_share(ctx, st, "zrt_save", KEPT_LATEST);
    if (st != ZRT_OK) {
        discard_tmp_dir(ctx, &job);
        goto done;
    }
    st = ctx->comm->rank == 0 ? finish_save(ctx, &job, info) : ZRT_OK;
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_save", KEPT_LATEST), st, done);
    if (ctx->comm->rank == 0) {
        char size[64];
        zrt_log(ctx, 2, "zrt_save: wrote %s (%d rank files, %s) in %.3f s", job.final,
                ctx->comm->size,
                zrt__fmt_bytes(total_bytes(job.all, ctx->comm->size), size, sizeof size),
                now_seconds() - t0);
    }
done:
    free(job.all);
    return st;
}

/* ---- loading ----------------------------------------------------------------------- */

typedef struct load_job {
    zrt_ctx *ctx;
    zrt__ckpt ck;
    int opened;
    int *map;           /* registered parameter -> checkpoint tensor */
    void *buf;          /* for checking CRCs */
    size_t buf_bytes;
    void *dst;          /* pass 2: where the current segment goes */
    const char *kind;   /* pass 2: the checkpoint's kind being read */
} load_job;

static void format_shape(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "(",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

static zrt_status match_one(zrt_ctx *ctx, load_job *job, int i)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    const zrt__param_info *p = &ctx->params[i];
    int t = i < m->ntensors && !strcmp(m->tensors[i].name, p->name)
                ? i
                : zrt__ckpt_find_tensor(m, p->name);
    if (t < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: checkpoint '%s' has no "
                         "parameter '%s'", m->dir, p->name);
    const zrt__ckpt_tensor *ct = &m->tensors[t];
    int same = ct->ndim == p->desc.ndim;
    for (int d = 0; same && d < ct->ndim; d++)
        same = ct->shape[d] == p->desc.shape[d];
    if (!same) {
        char have[96], want[96];
        format_shape(ct->ndim, ct->shape, have, sizeof have);
        format_shape(p->desc.ndim, p->desc.shape, want, sizeof want);
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: parameter '%s' is %s "
                         "in checkpoint '%s' but %s here", p->name, have, m->dir, want);
    }
    job->map[i] = t;
    return ZRT_OK;
}

static zrt_status match_tensors(zrt_ctx *ctx, load_job *job)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    job->map = calloc((size_t)ctx->nparams + 1, sizeof *job->map);
    char *used = calloc((size_t)m->ntensors + 1, 1);
    zrt_status st = job->map && used ? ZRT_OK
                                     : zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                                                 "zrt_load: no memory for the name map");
    for (int i = 0; st == ZRT_OK && i < ctx->nparams; i++) {
        st = match_one(ctx, job, i);
        if (st == ZRT_OK)
            used[job->map[i]] = 1;
    }
    for (int t = 0; st == ZRT_OK && t < m->ntensors; t++)
        if (!used[t])
            st = zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: checkpoint '%s' holds "
                           "parameter '%s', which is not registered here", m->dir,
                           m->tensors[t].name);
    free(used);
    return st;
}

/* The window to check CRCs through, allocated at finalize so the memory
 * plan covers loading: the NVMe step staging when there is one, else the
 * checkpoint window (ctx.h zrt__ckpt_staging_bytes). A rank without
 * parameters has neither and reads no section. */
static void get_check_buffer(zrt_ctx *ctx, load_job *job)
{
    const zrt__buf *window = ctx->step_staging.ptr ? &ctx->step_staging
                                                   : &ctx->ckpt_staging;
    job->buf = window->ptr;
    job->buf_bytes = window->bytes;
}

static zrt_status verify_piece(void *arg, const zrt__ckpt_piece *piece)
{
    load_job *job = arg;
    for (int k = 0; k < job->ck.meta.nkinds; k++) {
        zrt__ckpt_section *s = NULL;
        ZRT_CHECK(zrt__ckpt_section_of(&job->ck, piece->rank, kind_names[k], piece->layer,
                                       &s, &job->ctx->err));
        if (!s->verified)
            ZRT_CHECK(zrt__ckpt_verify_section(&job->ck, piece->rank, s, job->buf,
                                               job->buf_bytes, &job->ctx->err));
    }
    return ZRT_OK;
}

/* Pass 1: every section this rank will read from passes its CRC. */
static zrt_status verify_needed(zrt_ctx *ctx, load_job *job)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        for (int k = 0; ls->range_len > 0 && k < ctx_nkinds(ctx); k++) {
            state_place p;
            place_of(ctx, k, l, &p);
            ZRT_CHECK(require_reachable(ctx, &p, k, l, "zrt_load"));
        }
        for (int i = 0; i < ls->nsegs; i++) {
            const zrt__segment *sg = &ls->segs[i];
            ZRT_CHECK(zrt__ckpt_for_pieces(&job->ck.meta, job->map[sg->tensor],
                                           sg->tensor_offset, sg->count, verify_piece, job));
        }
    }
    return ZRT_OK;
}

/* Every declared dimension the checkpoint stores with another value, in one
 * sentence. */
static zrt_status match_model(zrt_ctx *ctx, const zrt__ckpt_meta *m)
{
    char diff[768] = "";
    size_t at = 0;
    int ndiff = 0;
    for (int i = 0; i < ctx->nmodel_dims; i++) {
        const zrt__model_dim *d = &ctx->model_dims[i];
        int64_t saved;
        if (!zrt__ckpt_model_dim(m, d->name, &saved) || saved == d->value)
            continue;
        int n = snprintf(diff + at, sizeof diff - at, "%s%s %lld (this run: %lld)",
                         ndiff ? ", " : "", d->name, (long long)saved, (long long)d->value);
        at = n > 0 && at + (size_t)n < sizeof diff ? at + (size_t)n : sizeof diff - 1;
        ndiff++;
    }
    if (!ndiff)
        return ZRT_OK;
    return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: '%s' holds another model: "
                     "it was saved with %s", m->dir, diff);
}

zrt_status zrt_declare_model_dim(zrt_ctx *ctx, const char *name, int64_t value)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!zrt__valid_model_dim_name(name) || value < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_declare_model_dim: '%.40s' = "
                         "%lld: the name must be 1 to 31 characters of [a-z0-9_] and the "
                         "value >= 0", name ? name : "(null)", (long long)value);
    for (int i = 0; i < ctx->nmodel_dims; i++)
        if (!strcmp(ctx->model_dims[i].name, name)) {
            ctx->model_dims[i].value = value;
            return ZRT_OK;
        }
    if (ctx->nmodel_dims == ZRT_MODEL_DIMS_MAX)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_declare_model_dim: '%s': "
                         "already %d names declared", name, ZRT_MODEL_DIMS_MAX);
    zrt__model_dim *d = &ctx->model_dims[ctx->nmodel_dims++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->value = value;
    return ZRT_OK;
}

static zrt_status load_prepare(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info,
                               load_job *job)
{
    if (!dir || !*dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: no directory given");
    ZRT_CHECK(check_info(ctx, info, "zrt_load"));
    ZRT_CHECK(require_between_steps(ctx, "zrt_load"));
    ZRT_CHECK(zrt__ckpt_open(dir, &job->ck, &ctx->err));
    job->opened = 1;
    ZRT_CHECK(match_model(ctx, &job->ck.meta));
    ZRT_CHECK(match_tensors(ctx, job));
    get_check_buffer(ctx, job);
    return verify_needed(ctx, job);
}

static zrt_status read_piece_into(void *arg, const zrt__ckpt_piece *piece)
{
    load_job *job = arg;
    return zrt__ckpt_read_piece(&job->ck, job->kind, piece, job->dst, &job->ctx->err);
}

/* Pass 2, one layer: this rank's range of the context's kind `kind`,
 * element by element from the checkpoint's kind `from` (of the same element
 * size) in the old files; padding stays zero. */
static zrt_status load_layer_kind(zrt_ctx *ctx, load_job *job, int l, int kind,
                                  const char *from)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    state_place p;
    place_of(ctx, kind, l, &p);
    if (zrt_dtype_size(zrt__ckpt_kind_dtype(&job->ck.meta, from)) != p.esize)
        return zrt__fail(&ctx->err, ZRT_ERR_INTERNAL, "zrt_load: %s of layer %d read "
                         "from %s of another element size", kind_names[kind], l, from);
    char *range = p.mover ? (char *)nvme_staging(ctx) : p.mem;
    if (p.mover)
        memset(range, 0, (size_t)ls->range_len * p.esize);
    job->kind = from;
    for (int i = 0; i < ls->nsegs; i++) {
        const zrt__segment *sg = &ls->segs[i];
        job->dst = range + (size_t)sg->range_offset * p.esize;
        ZRT_CHECK(zrt__ckpt_for_pieces(&job->ck.meta, job->map[sg->tensor],
                                       sg->tensor_offset, sg->count, read_piece_into, job));
    }
    return p.mover ? swap_io(ctx, &p, ls->range_len, range, 1) : ZRT_OK;
}

/* 16-bit parameters from a checkpoint of another dtype: the master copy
 * just loaded, rounded to nearest even, segment by segment. */
static zrt_status round_master_into_params(zrt_ctx *ctx, int l)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    state_place p;
    place_of(ctx, KIND_PARAM, l, &p);
    const float *master = ls->master.ptr;
    void *range = p.mover ? nvme_staging(ctx) : p.mem;
    if (p.mover)
        memset(range, 0, (size_t)ls->range_len * p.esize);
    for (int i = 0; i < ls->nsegs; i++) {
        const zrt__segment *sg = &ls->segs[i];
        ZRT_CHECK(zrt_convert(zrt__elem(ctx, range, sg->range_offset), ctx->pdtype,
                              master + sg->range_offset, ZRT_F32, (size_t)sg->count));
    }
    return p.mover ? swap_io(ctx, &p, ls->range_len, range, 1) : ZRT_OK;
}

/* One layer's state. Same dtype: every kind from its own. Otherwise the f32
 * values (the checkpoint's f32 params, or its master) become the f32 params,
 * or the master copy and, rounded, the 16-bit params. */
static zrt_status load_layer(zrt_ctx *ctx, load_job *job, int l)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    const char *f32 = zrt__ckpt_f32_kind(m);
    ZRT_CHECK(load_layer_kind(ctx, job, l, KIND_EXP_AVG, kind_names[KIND_EXP_AVG]));
    ZRT_CHECK(load_layer_kind(ctx, job, l, KIND_EXP_AVG_SQ, kind_names[KIND_EXP_AVG_SQ]));
    if (!zrt__mixed(ctx))
        return load_layer_kind(ctx, job, l, KIND_PARAM, f32);
    ZRT_CHECK(load_layer_kind(ctx, job, l, KIND_MASTER, f32));
    if (m->dtype == ctx->pdtype)
        return load_layer_kind(ctx, job, l, KIND_PARAM, kind_names[KIND_PARAM]);
    return round_master_into_params(ctx, l);
}

static zrt_status load_state(zrt_ctx *ctx, load_job *job)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        if (zrt__params_on_nvme(ctx))
            zrt__nvme_drop_fetch(ctx, l); /* it read the slot about to change */
        if (ctx->layers[l].range_len > 0)
            ZRT_CHECK(load_layer(ctx, job, l));
    }
    return ZRT_OK;
}

/* fp16 from an fp16 checkpoint: the scaler continues where it was. The
 * config decides the rules (dynamic or fixed, window, hysteresis, minimum);
 * the state follows the checkpoint: a dynamic scale only into a dynamic
 * scaler, the counters always. Other pairs keep the context's fresh scaler. */
static void restore_scaler(zrt_ctx *ctx, const zrt__ckpt_meta *m)
{
    zrt__loss_scaler *s = &ctx->scaler;
    const zrt__loss_scaler *saved = &m->scaler;
    if (!m->has_scaler || m->dtype != ZRT_F16 || ctx->pdtype != ZRT_F16)
        return;
    if (s->dynamic && saved->dynamic) {
        s->scale = saved->scale > s->min_scale ? saved->scale : s->min_scale;
        s->hysteresis_left = saved->hysteresis_left < s->hysteresis
                                 ? saved->hysteresis_left
                                 : s->hysteresis;
    }
    s->iter = saved->iter;
    s->last_overflow_iter = saved->last_overflow_iter;
    s->skipped = saved->skipped;
}

/* Collective: every rank holds its range; make the copies other ranks read
 * current (stages 1-2: all-gather; stage 3: re-gather what stays gathered). */
static zrt_status refresh_params(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        if (lp->numel == 0 || ctx->cfg.stage == 0)
            continue;
        if (ctx->cfg.stage < 3) {
            void *full = ls->param_full.ptr;
            zrt__comm_req *req = NULL;
            ZRT_CHECK(ctx->comm->ops->all_gather(ctx->comm, zrt__elem(ctx, full, ls->range_lo),
                                                 full, (size_t)lp->shard_numel, ctx->pdtype,
                                                 &req));
            ZRT_CHECK(zrt__comm_wait(ctx, req));
            continue;
        }
        ls->gathered = 0; /* any gathered copy is stale */
        ZRT_CHECK(ls->persistent ? zrt__ensure_gathered(ctx, l)
                                 : zrt__release_if_idle(ctx, l));
    }
    return ZRT_OK;
}

static void fill_info(const zrt__ckpt_meta *m, zrt_ckpt_info *info)
{
    if (!info)
        return;
    info->step = m->step;
    info->world_size = m->world;
    info->stage = m->stage;
    info->user_bytes = m->user_bytes;
    memset(info->user, 0, sizeof info->user);
    if (m->user_bytes)
        memcpy(info->user, m->user, m->user_bytes);
}

static void free_load_job(load_job *job)
{
    if (job->opened)
        zrt__ckpt_close(&job->ck);
    free(job->map);
}

zrt_status zrt_load(zrt_ctx *ctx, const char *dir, zrt_ckpt_info *info)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_load"));
    double t0 = now_seconds();
    load_job job;
    memset(&job, 0, sizeof job);
    job.ctx = ctx;
    zrt_status st = load_prepare(ctx, dir, info, &job);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load", NULL), st, done);
    st = load_state(ctx, &job);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load",
                               "; parameters and optimizer state may be partly loaded "
                               "on some ranks: load again before training"),
                   st, done);
    st = refresh_params(ctx);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load", NULL), st, done);
    ctx->step = (long)job.ck.meta.step;
    restore_scaler(ctx, &job.ck.meta);
    fill_info(&job.ck.meta, info);
    if (ctx->comm->rank == 0 && job.ck.meta.dtype != ctx->pdtype)
        zrt_log(ctx, 1, "zrt_load: %s holds %s parameters; loaded as %s from its f32 %s "
                "values%s", job.ck.meta.dir, zrt_dtype_str(job.ck.meta.dtype),
                zrt_dtype_str(ctx->pdtype), zrt__ckpt_f32_kind(&job.ck.meta),
                ctx->pdtype == ZRT_F16 ? " (the loss scaler starts afresh)" : "");
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 2, "zrt_load: %s (step %lld, saved by %d ranks at stage %d) in %.3f s",
                job.ck.meta.dir, (long long)job.ck.meta.step, job.ck.meta.world,
                job.ck.meta.stage, now_seconds() - t0);
done:
    free_load_job(&job);
    return st;
}
