/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/ckpt_format.c — the checkpoint format (see checkpoint.h): reading and
 * checking meta.json and rank files, encoding their headers and tables, and
 * the durable-write helpers. It needs no context: zrt_load and zrt_save
 * (zero/checkpoint.c) and tools/zero-ckpt use it.
 *
 * The order of events of a save and of a load is described in
 * zero/checkpoint.c, which drives them.
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

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint files are little-endian and written with memcpy: port the codecs first"
#endif

enum {
    KIND_PARAM = ZRT__CKPT_PARAM,
    KIND_MASTER = ZRT__CKPT_MASTER,
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

zrt_status zrt__ckpt_io_fail(zrt__errbuf *err, const char *what, const char *path, int e)
{
    char why[128];
    return zrt__fail(err, ZRT_ERR_IO, "checkpoint: cannot %s '%s': %s", what, path,
                     errno_detail(e, why, sizeof why));
}

zrt_status zrt__ckpt_join(char *out, size_t size, const char *dir, const char *name,
                          zrt__errbuf *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "checkpoint: the path '%s/%s' is longer than %zu bytes", dir,
                         name, size - 1);
    return ZRT_OK;
}

zrt_status zrt__ckpt_pwrite(int fd, const void *buf, size_t bytes, uint64_t at,
                            const char *path, zrt__errbuf *err)
{
    const char *p = buf;
    while (bytes > 0) {
        ssize_t n = pwrite(fd, p, bytes, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        char why[128];
        if (n <= 0)
            return zrt__fail(
                err, ZRT_ERR_IO,
                "checkpoint: cannot write %zu bytes at offset %" PRIu64 " of '%s': %s",
                bytes, at, path,
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
                             " of '%s': %s",
                             bytes, at, path, strerror(errno));
        if (n == 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint file '%s' ends at byte %" PRIu64 ", before the "
                             "%zu bytes expected there (truncated)",
                             path, at, bytes);
        p += n;
        bytes -= (size_t)n;
        at += (uint64_t)n;
    }
    return ZRT_OK;
}

zrt_status zrt__ckpt_fsync_dir(const char *dir, zrt__errbuf *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return zrt__ckpt_io_fail(err, "open the directory", dir, errno);
    int rc = fsync(fd), e = errno;
    close(fd);
    return rc ? zrt__ckpt_io_fail(err, "fsync the directory", dir, e) : ZRT_OK;
}

/* Writes dir/name through dir/name.tmp: write, fsync, rename, fsync dir. */
zrt_status zrt__ckpt_write_atomic(const char *dir, const char *name, const void *data,
                                  size_t bytes, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH], tmp[ZRT__CKPT_PATH + 8];
    ZRT_CHECK(zrt__ckpt_join(path, sizeof path, dir, name, err));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ZRT_CHECK(zrt__check_file_size_limit(bytes, "the checkpoint file", tmp, err));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return zrt__ckpt_io_fail(err, "create", tmp, errno);
    zrt_status st = zrt__ckpt_pwrite(fd, data, bytes, 0, tmp, err);
    if (st == ZRT_OK && fsync(fd) != 0)
        st = zrt__ckpt_io_fail(err, "fsync", tmp, errno);
    if (close(fd) != 0 && st == ZRT_OK)
        st = zrt__ckpt_io_fail(err, "close", tmp, errno);
    if (st == ZRT_OK && rename(tmp, path) != 0)
        st = zrt__ckpt_io_fail(err, "rename into place", tmp, errno);
    if (st != ZRT_OK) {
        unlink(tmp);
        return st;
    }
    return zrt__ckpt_fsync_dir(dir, err);
}

/* Reads a whole small file (at most `limit` bytes) into a NUL-terminated
 * buffer the caller frees. */
static zrt_status read_small_file(const char *path, size_t limit, char **out, size_t *len,
                                  zrt__errbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return zrt__ckpt_io_fail(err, "open", path, errno);
    struct stat sb;
    zrt_status st = ZRT_OK;
    char *text = NULL;
    if (fstat(fd, &sb) != 0)
        st = zrt__ckpt_io_fail(err, "stat", path, errno);
    else if ((uint64_t)sb.st_size > limit)
        st = zrt__fail(err, ZRT_ERR_IO,
                       "checkpoint: '%s' is %lld bytes, more than the "
                       "%zu a valid one can be",
                       path, (long long)sb.st_size, limit);
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
zrt_status zrt__ckpt_make_dirs(const char *dir, zrt__errbuf *err)
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
            return zrt__ckpt_io_fail(err, "create the directory", path, errno);
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
zrt_status zrt__ckpt_remove_step_dir(const char *dir, zrt__errbuf *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? ZRT_OK
                               : zrt__ckpt_io_fail(err, "open the directory", dir, errno);
    zrt_status st = ZRT_OK;
    struct dirent *e;
    while (st == ZRT_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            st = zrt__fail(err, ZRT_ERR_IO,
                           "checkpoint: cannot remove '%s/%s' from an "
                           "unfinished or replaced checkpoint: %s",
                           dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (st == ZRT_OK && rmdir(dir) != 0)
        st = zrt__ckpt_io_fail(err, "remove the directory", dir, errno);
    return st;
}

/* ---- the rank file's header and section table ---------------------------------- */

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
    zrt__ckpt_put_u32(out + 8, h->version);
    zrt__ckpt_put_u32(out + 12, ZRT__CKPT_HEADER_BYTES);
    zrt__ckpt_put_u32(out + 16, h->rank);
    zrt__ckpt_put_u32(out + 20, h->world);
    zrt__ckpt_put_u32(out + 24, h->nsections);
    zrt__ckpt_put_u64(out + 32, h->step);
    zrt__ckpt_put_u64(out + 40, h->data_offset);
    zrt__ckpt_put_u64(out + 48, h->file_bytes);
    zrt__ckpt_put_u32(out + 56, h->table_crc);
    h->header_crc = zrt__crc32c(0, out, 60);
    zrt__ckpt_put_u32(out + 60, h->header_crc);
}

static zrt_status decode_header(const unsigned char in[ZRT__CKPT_HEADER_BYTES],
                                const char *path, file_header *h, zrt__errbuf *err)
{
    if (memcmp(in, file_magic, 8) != 0)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s' does not start with "
                         "the zrt checkpoint magic",
                         path);
    uint32_t stored = zrt__ckpt_get_u32(in + 60), computed = zrt__crc32c(0, in, 60);
    if (stored != computed)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s': header (bytes 0..63) "
                         "fails its CRC32C (stored %08x, computed %08x)",
                         path, stored, computed);
    uint32_t version = zrt__ckpt_get_u32(in + 8);
    if (version < 1 || version > ZRT__CKPT_VERSION ||
        zrt__ckpt_get_u32(in + 12) != ZRT__CKPT_HEADER_BYTES)
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                         "checkpoint file '%s' is format "
                         "version %u; this zrt reads versions 1 to %d",
                         path, version, ZRT__CKPT_VERSION);
    *h = (file_header){.version = version,
                       .rank = zrt__ckpt_get_u32(in + 16),
                       .world = zrt__ckpt_get_u32(in + 20),
                       .nsections = zrt__ckpt_get_u32(in + 24),
                       .step = zrt__ckpt_get_u64(in + 32),
                       .data_offset = zrt__ckpt_get_u64(in + 40),
                       .file_bytes = zrt__ckpt_get_u64(in + 48),
                       .table_crc = zrt__ckpt_get_u32(in + 56),
                       .header_crc = stored};
    return ZRT_OK;
}

static void encode_entry(const zrt__ckpt_section *s,
                         unsigned char out[ZRT__CKPT_ENTRY_BYTES])
{
    memset(out, 0, ZRT__CKPT_ENTRY_BYTES);
    memcpy(out, s->kind, strnlen(s->kind, ZRT__CKPT_KIND_BYTES));
    zrt__ckpt_put_u32(out + 16, (uint32_t)s->layer);
    zrt__ckpt_put_u32(out + 20, (uint32_t)s->dtype);
    zrt__ckpt_put_u64(out + 24, (uint64_t)s->first);
    zrt__ckpt_put_u64(out + 32, (uint64_t)s->numel);
    zrt__ckpt_put_u64(out + 40, s->offset);
    zrt__ckpt_put_u64(out + 48, s->bytes);
    zrt__ckpt_put_u32(out + 56, s->crc);
}

/* An unknown dtype reads as ZRT_DTYPE_COUNT (check_table refuses it). */
static void decode_entry(const unsigned char in[ZRT__CKPT_ENTRY_BYTES],
                         zrt__ckpt_section *s)
{
    memset(s, 0, sizeof *s);
    memcpy(s->kind, in, ZRT__CKPT_KIND_BYTES);
    s->layer = (int)zrt__ckpt_get_u32(in + 16);
    uint32_t dtype = zrt__ckpt_get_u32(in + 20);
    s->dtype = dtype < ZRT_DTYPE_COUNT ? (zrt_dtype)dtype : ZRT_DTYPE_COUNT;
    s->first = (int64_t)zrt__ckpt_get_u64(in + 24);
    s->numel = (int64_t)zrt__ckpt_get_u64(in + 32);
    s->offset = zrt__ckpt_get_u64(in + 40);
    s->bytes = zrt__ckpt_get_u64(in + 48);
    s->crc = zrt__ckpt_get_u32(in + 56);
}

zrt_status zrt__ckpt_write_header_and_table(int fd, const char *path,
                                            const zrt__ckpt_file_id *id,
                                            const zrt__ckpt_section *s, int n,
                                            uint32_t *header_crc, uint64_t *file_bytes,
                                            zrt__errbuf *err)
{
    size_t table_bytes = (size_t)n * ZRT__CKPT_ENTRY_BYTES;
    unsigned char *table = calloc(table_bytes + 1, 1);
    if (!table)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "checkpoint: no memory for the "
                         "section table of '%s'",
                         path);
    for (int i = 0; i < n; i++)
        encode_entry(&s[i], table + (size_t)i * ZRT__CKPT_ENTRY_BYTES);
    uint64_t data = ZRT__CKPT_HEADER_BYTES + table_bytes;
    file_header h = {.version = (uint32_t)id->version,
                     .rank = (uint32_t)id->rank,
                     .world = (uint32_t)id->world,
                     .nsections = (uint32_t)n,
                     .step = (uint64_t)id->step,
                     .data_offset = data,
                     .file_bytes = n ? s[n - 1].offset + s[n - 1].bytes : data,
                     .table_crc = zrt__crc32c(0, table, table_bytes)};
    unsigned char raw[ZRT__CKPT_HEADER_BYTES];
    encode_header(&h, raw);
    zrt_status st =
        zrt__ckpt_pwrite(fd, table, table_bytes, ZRT__CKPT_HEADER_BYTES, path, err);
    if (st == ZRT_OK)
        st = zrt__ckpt_pwrite(fd, raw, sizeof raw, 0, path, err);
    free(table);
    *file_bytes = h.file_bytes;
    *header_crc = h.header_crc;
    return st;
}

/* ---- meta.json: reading ------------------------------------------------------------ */

static const char crc_key[] = "\"meta_crc32c\"";

zrt_status zrt__ckpt_seal_meta(const char *body, char **out, size_t *len,
                               zrt__errbuf *err)
{
    const char *end = body ? strrchr(body, '}') : NULL;
    if (!end)
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "checkpoint: meta.json text is not "
                         "a JSON object");
    while (end > body && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t head = (size_t)(end - body);
    char *text = malloc(head + 64);
    if (!text)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "checkpoint: no memory for "
                         "meta.json");
    memcpy(text, body, head);
    memcpy(text + head, ",\n ", 3);
    uint32_t crc = zrt__crc32c(0, text, head + 3);
    int tail = snprintf(text + head + 3, 61, "%s: \"%08x\"\n}\n", crc_key, crc);
    *out = text;
    *len = head + 3 + (size_t)tail;
    return ZRT_OK;
}

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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s' has no meta_crc32c "
                         "(damaged, or not written by zrt)",
                         path);
    uint32_t computed = zrt__crc32c(0, text, (size_t)(key - text));
    if (computed != stored)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s' fails its CRC32C (stored "
                         "%08x, computed %08x over bytes 0..%zu)",
                         path, stored, computed, (size_t)(key - text));
    return ZRT_OK;
}

/* An integer member in [lo, hi], or a sentence naming it. */
static zrt_status get_int(json_t *obj, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, const char *path, const char *where,
                          zrt__errbuf *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': %s\"%s\" is missing or "
                         "outside %lld..%lld",
                         path, where, key, (long long)lo, (long long)hi);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': user.hex does not hold "
                         "%lld bytes",
                         path, (long long)bytes);
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
        ZRT_CHECK(get_int(o, "flat_numel", 0, INT64_MAX / 8, &lp->flat_numel, path, where,
                          err));
        /* divided, not multiplied: a crafted shard_numel * world can overflow */
        if (lp->flat_numel % m->world != 0 ||
            lp->flat_numel / m->world != lp->shard_numel || lp->numel > lp->flat_numel ||
            (lp->numel > 0) != (lp->shard_numel > 0))
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: '%s': layer %d's sizes do not "
                             "agree (numel %lld, flat %lld, shard %lld, world %d)",
                             path, l, (long long)lp->numel, (long long)lp->flat_numel,
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': tensor '%s' has no valid "
                         "shape",
                         path, t->name);
    t->ndim = (int)ndim;
    for (size_t d = 0; d < ndim; d++) {
        json_t *v = json_array_get(shape, d);
        t->shape[d] = json_is_integer(v) ? json_integer_value(v) : -1;
        if (t->shape[d] < 1 || product > INT64_MAX / t->shape[d])
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: '%s': tensor '%s' dimension "
                             "%zu is invalid",
                             path, t->name, d);
        product *= t->shape[d];
    }
    if (product != t->numel)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': tensor '%s' has %lld "
                         "elements but its shape holds %lld",
                         path, t->name, (long long)t->numel, (long long)product);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': tensor '%s' runs past the "
                         "end of layer %d",
                         path, name, t->layer);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s' does not list one file per "
                         "rank (%d)",
                         path, m->world);
    m->files = calloc((size_t)m->world, sizeof *m->files);
    if (!m->files)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "checkpoint: no memory for files");
    for (int r = 0; r < m->world; r++) {
        json_t *o = json_array_get(files, (size_t)r);
        char where[48];
        snprintf(where, sizeof where, "files[%d].", r);
        int64_t rank;
        ZRT_CHECK(get_int(o, "rank", r, r, &rank, path, where, err));
        ZRT_CHECK(get_int(o, "bytes", ZRT__CKPT_HEADER_BYTES, INT64_MAX,
                          &m->files[r].bytes, path, where, err));
        const char *crc = json_string_value(json_object_get(o, "header_crc32c"));
        unsigned value;
        if (!crc || strlen(crc) != 8 || sscanf(crc, "%8x", &value) != 1)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: '%s': %sheader_crc32c is not "
                             "8 hex digits",
                             path, where);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': \"dtype\" is %s%s%s; format "
                         "version %d holds %s",
                         path, dtype ? "\"" : "", dtype ? dtype : "missing",
                         dtype ? "\"" : "", m->version,
                         m->version == 1 ? "f32" : "f32, bf16 or f16");
    m->nkinds = m->dtype == ZRT_F32 ? ZRT__CKPT_NKINDS : ZRT__CKPT_MAX_KINDS;
    json_t *kinds = json_object_get(root, "kinds");
    int same = json_is_array(kinds) && json_array_size(kinds) == (size_t)m->nkinds;
    for (int k = 0; same && k < m->nkinds; k++) {
        const char *name = json_string_value(json_array_get(kinds, (size_t)k));
        same = name && !strcmp(name, kind_names[k]);
    }
    if (!same)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': \"kinds\" is not the list a "
                         "%s checkpoint holds (%d kinds from \"param\")",
                         path, zrt_dtype_str(m->dtype), m->nkinds);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': loss_scaler.scale or "
                         "min_scale is missing or not positive",
                         path);
    *sc = (zrt__loss_scaler){.dynamic = (int)dyn,
                             .scale = (float)json_number_value(scale),
                             .min_scale = (float)json_number_value(min),
                             .window = (int)window,
                             .hysteresis = (int)hyst,
                             .hysteresis_left = (int)left,
                             .iter = (long)iter,
                             .last_overflow_iter = (long)last,
                             .skipped = (long)skipped};
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s': \"model\" is not an object "
                         "of at most %d names",
                         path, ZRT_MODEL_DIMS_MAX);
    const char *name;
    json_t *v;
    json_object_foreach(model, name, v)
    {
        if (!zrt__valid_model_dim_name(name) || !json_is_integer(v) ||
            json_integer_value(v) < 0)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: '%s': model.\"%.40s\" is not a "
                             "name of [a-z0-9_] with an integer >= 0",
                             path, name);
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
    if (format && !strcmp(format, ZRT__CKPT_PIPELINE_FORMAT))
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                         "checkpoint: '%s' is a pipeline's: %lld stages, each a "
                         "checkpoint of its own in stage-S beside it; load it with "
                         "\"pipeline_stages\": %lld (or open one stage-S directory)",
                         path,
                         (long long)json_integer_value(json_object_get(root, "stages")),
                         (long long)json_integer_value(json_object_get(root, "stages")));
    if (!format || strcmp(format, "zrt-checkpoint") != 0)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint: '%s' is not a zrt checkpoint's "
                         "meta.json (no \"format\": \"zrt-checkpoint\")",
                         path);
    ZRT_CHECK(get_int(root, "version", 1, 1 << 20, &version, path, "", err));
    if (version > ZRT__CKPT_VERSION)
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                         "checkpoint: '%s' is format version "
                         "%lld; this zrt reads versions 1 to %d",
                         path, (long long)version, ZRT__CKPT_VERSION);
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
    copy_device(config, "offload_optimizer", m->offload_optimizer,
                sizeof m->offload_optimizer);
    copy_device(config, "offload_param", m->offload_param, sizeof m->offload_param);
    ZRT_CHECK(parse_layers(root, m, path, err));
    ZRT_CHECK(parse_tensors(root, m, path, err));
    ZRT_CHECK(parse_files(root, m, path, err));
    ZRT_CHECK(parse_model(root, m, path, err));
    return parse_user(root, m, path, err);
}

/* step_dir/meta.json, its CRC checked, parsed: *root (json_decref it) and
 * its path. */
static zrt_status load_meta_json(const char *step_dir, char *path, size_t size,
                                 json_t **root, zrt__errbuf *err)
{
    ZRT_CHECK(zrt__ckpt_join(path, size, step_dir, "meta.json", err));
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(read_small_file(path, META_MAX_BYTES, &text, &len, err));
    json_error_t jerr;
    *root = NULL;
    zrt_status st = check_meta_crc(text, path, err);
    if (st == ZRT_OK && !(*root = json_loadb(text, len, 0, &jerr)))
        st = zrt__fail(err, ZRT_ERR_IO,
                       "checkpoint: '%s' is not valid JSON (line %d, "
                       "column %d: %s)",
                       path, jerr.line, jerr.column, jerr.text);
    free(text);
    return st;
}

static zrt_status read_meta(const char *step_dir, zrt__ckpt_meta *m, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH];
    json_t *root = NULL;
    zrt_status st = load_meta_json(step_dir, path, sizeof path, &root, err);
    if (st == ZRT_OK)
        st = parse_meta(root, m, path, err);
    json_decref(root);
    return st;
}

zrt_status zrt__ckpt_pipeline_stages(const char *step_dir, int *stages, zrt__errbuf *err)
{
    char path[ZRT__CKPT_PATH];
    json_t *root = NULL;
    *stages = 0;
    zrt_status st = load_meta_json(step_dir, path, sizeof path, &root, err);
    const char *format = root ? json_string_value(json_object_get(root, "format")) : NULL;
    json_int_t n = root ? json_integer_value(json_object_get(root, "stages")) : 0;
    if (st == ZRT_OK && format && !strcmp(format, ZRT__CKPT_PIPELINE_FORMAT)) {
        if (n >= 2 && n <= 1 << 20)
            *stages = (int)n;
        else
            st = zrt__fail(err, ZRT_ERR_IO,
                           "checkpoint: '%s' names %lld pipeline stages, not 2 or more",
                           path, (long long)n);
    }
    json_decref(root);
    return st;
}

/* ---- opening a checkpoint -----------------------------------------------------------
 */

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
    ZRT_CHECK(zrt__ckpt_join(path, sizeof path, dir, "meta.json", err));
    if (access(path, F_OK) == 0) {
        if (is_unfinished_dir(dir))
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint: '%s' is a save that never "
                             "finished (a .tmp directory); load its parent's latest or a "
                             "step-N directory",
                             dir);
        if (snprintf(step_dir, size, "%s", dir) >= (int)size)
            return zrt__fail(err, ZRT_ERR_INVALID_ARG, "checkpoint: path too long");
        return ZRT_OK;
    }
    ZRT_CHECK(zrt__ckpt_join(path, sizeof path, dir, "latest", err));
    if (access(path, F_OK) != 0)
        return zrt__fail(err, ZRT_ERR_IO,
                         "no checkpoint in '%s': it holds neither "
                         "meta.json nor latest",
                         dir);
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(read_small_file(path, LATEST_MAX, &text, &len, err));
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    zrt_status st = ZRT_OK;
    if (!valid_step_name(text))
        st = zrt__fail(err, ZRT_ERR_IO,
                       "checkpoint: '%s' does not name a step "
                       "directory 'step-N' (it holds '%.64s')",
                       path, text);
    if (st == ZRT_OK)
        st = zrt__ckpt_join(step_dir, size, dir, text, err);
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
        st = zrt__ckpt_join(c.files[r].path, sizeof c.files[r].path, c.meta.dir, name,
                            err);
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
                 s->numel >= 0 &&
                 s->bytes == (uint64_t)s->numel * zrt_dtype_size(s->dtype);
        if (!ok)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint file '%s': section %d (%s of "
                             "layer %d) has an invalid place or size",
                             f->path, i, s->kind, s->layer);
        at += s->bytes;
    }
    if (at != h->file_bytes)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s': its sections end at "
                         "byte %" PRIu64 " but its header says the file is %" PRIu64
                         " bytes",
                         f->path, at, h->file_bytes);
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
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                       "checkpoint: no memory for the "
                       "section table of '%s'",
                       f->path);
    if (st == ZRT_OK)
        st = pread_all(f->fd, table, bytes, ZRT__CKPT_HEADER_BYTES, f->path, err);
    uint32_t crc = st == ZRT_OK ? zrt__crc32c(0, table, bytes) : 0;
    if (st == ZRT_OK && crc != h->table_crc)
        st = zrt__fail(err, ZRT_ERR_IO,
                       "checkpoint file '%s': section table (bytes "
                       "64..%zu) fails its CRC32C (stored %08x, computed %08x)",
                       f->path, 64 + bytes, h->table_crc, crc);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s': header CRC32C %08x "
                         "differs from the %08x meta.json records (a file from another "
                         "save?)",
                         path, h->header_crc, m->files[rank].header_crc);
    if (h->version != (uint32_t)m->version)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s' is format version %u; "
                         "meta.json says %d",
                         path, h->version, m->version);
    if (h->rank != (uint32_t)rank || h->world != (uint32_t)m->world ||
        h->step != (uint64_t)m->step ||
        h->data_offset !=
            ZRT__CKPT_HEADER_BYTES + (uint64_t)h->nsections * ZRT__CKPT_ENTRY_BYTES ||
        h->nsections > (uint32_t)(m->nlayers + 1) * 16u)
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s': header says rank %u of "
                         "%u at step %" PRIu64 " with %u sections; meta.json says rank "
                         "%d of %d at step %lld",
                         path, h->rank, h->world, h->step, h->nsections, rank, m->world,
                         (long long)m->step);
    return ZRT_OK;
}

static zrt_status open_rankfile(zrt__ckpt *c, int rank, zrt__errbuf *err)
{
    zrt__ckpt_rankfile *f = &c->files[rank];
    const zrt__ckpt_file *want = &c->meta.files[rank];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return zrt__ckpt_io_fail(err, "open the checkpoint file", f->path, errno);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size != want->bytes) {
        close(fd);
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s' is %lld bytes but "
                         "meta.json records %lld (truncated or replaced)",
                         f->path, (long long)sb.st_size, (long long)want->bytes);
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
        return zrt__fail(err, ZRT_ERR_INTERNAL,
                         "checkpoint: rank %d / layer %d outside "
                         "the plan",
                         rank, layer);
    zrt__ckpt_rankfile *f = &c->files[rank];
    if (f->fd < 0)
        ZRT_CHECK(open_rankfile(c, rank, err));
    int64_t shard = c->meta.layers[layer].shard_numel;
    for (int i = 0; i < f->nsections; i++) {
        zrt__ckpt_section *s = &f->sections[i];
        if (s->layer != layer || strcmp(s->kind, kind) != 0)
            continue;
        if (s->first != (int64_t)rank * shard || s->numel != shard)
            return zrt__fail(err, ZRT_ERR_IO,
                             "checkpoint file '%s': section %s of layer "
                             "%d holds elements [%lld, %lld); the plan in meta.json says "
                             "[%lld, %lld)",
                             f->path, kind, layer, (long long)s->first,
                             (long long)(s->first + s->numel), (long long)rank * shard,
                             (long long)(rank + 1) * shard);
        *out = s;
        return ZRT_OK;
    }
    return zrt__fail(err, ZRT_ERR_IO,
                     "checkpoint file '%s' has no section %s for layer "
                     "%d",
                     f->path, kind, layer);
}

zrt_status zrt__ckpt_verify_section(zrt__ckpt *c, int rank, zrt__ckpt_section *s,
                                    void *buf, size_t buf_bytes, zrt__errbuf *err)
{
    const zrt__ckpt_rankfile *f = &c->files[rank];
    if (!buf || buf_bytes == 0)
        return zrt__fail(err, ZRT_ERR_INTERNAL,
                         "checkpoint file '%s': no buffer to "
                         "check section %s of layer %d through",
                         f->path, s->kind, s->layer);
    uint32_t crc = 0;
    for (uint64_t done = 0; done < s->bytes;) {
        size_t n = s->bytes - done < buf_bytes ? (size_t)(s->bytes - done) : buf_bytes;
        ZRT_CHECK(pread_all(f->fd, buf, n, s->offset + done, f->path, err));
        crc = zrt__crc32c(crc, buf, n);
        done += n;
    }
    if (crc != s->crc)
        return zrt__fail(
            err, ZRT_ERR_IO,
            "checkpoint file '%s': section %s of layer %d "
            "(bytes %" PRIu64 "..%" PRIu64 ") fails its CRC32C (stored %08x, "
            "computed %08x)",
            f->path, s->kind, s->layer, s->offset, s->offset + s->bytes, s->crc, crc);
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
        return zrt__fail(err, ZRT_ERR_IO,
                         "checkpoint file '%s' holds %d sections; the "
                         "plan calls for %d",
                         f->path, f->nsections, expected);
    for (int i = 0; i < f->nsections; i++)
        if (!f->sections[i].verified)
            ZRT_CHECK(
                zrt__ckpt_verify_section(c, rank, &f->sections[i], buf, buf_bytes, err));
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
        zrt__ckpt_piece p = {.rank = (int)q,
                             .layer = t->layer,
                             .section_elem = at - q * shard,
                             .count = stop - at,
                             .dst_elem = at - (t->offset + from)};
        ZRT_CHECK(fn(arg, &p));
        at = stop;
    }
    return ZRT_OK;
}

zrt_status zrt__ckpt_read_piece(zrt__ckpt *c, const char *kind,
                                const zrt__ckpt_piece *piece, void *dst, zrt__errbuf *err)
{
    zrt__ckpt_section *s = NULL;
    ZRT_CHECK(zrt__ckpt_section_of(c, piece->rank, kind, piece->layer, &s, err));
    size_t esize = zrt_dtype_size(s->dtype);
    return pread_all(
        c->files[piece->rank].fd, (char *)dst + (size_t)piece->dst_elem * esize,
        (size_t)piece->count * esize, s->offset + (uint64_t)piece->section_elem * esize,
        c->files[piece->rank].path, err);
}

int zrt__ckpt_find_tensor(const zrt__ckpt_meta *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}
