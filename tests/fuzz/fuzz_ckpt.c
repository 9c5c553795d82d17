/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_ckpt.c — the checkpoint readers (zero/ckpt_format.c):
 * meta.json (zrt__ckpt_open) and a rank file (zrt__ckpt_section_of,
 * zrt__ckpt_verify_file, zrt__ckpt_read_piece).
 *
 * The input is meta.json's text, a NUL byte, then rank-00000.zrtc's bytes;
 * both are written into a step directory. Checksums would stop nearly every
 * mutation at the first check, so the harness recomputes them before writing
 * (the checks themselves are unit-tested): each section's CRC32C whose bytes
 * lie in the file, the table's and the header's, then meta.json's
 * "header_crc32c" (its first one) and its trailing "meta_crc32c", where they
 * are spelled as zrt writes them. What a checkpoint that opens then says is
 * read back: every section of rank 0, and the first elements of every tensor.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "offload/crc32c.h"
#include "zero/checkpoint.h"

enum { HEADER = 64, ENTRY = 64, PIECE_ELEMS = 16 };

/* Recomputes the rank file's section, table and header CRCs in place;
 * returns the header's, or 0 when the file is shorter than a header. */
static uint32_t fix_rank_file(unsigned char *f, size_t size)
{
    if (size < HEADER)
        return 0;
    uint64_t nsections = zrt__ckpt_get_u32(f + 24);
    if (nsections <= (size - HEADER) / ENTRY) {
        unsigned char *table = f + HEADER;
        for (uint64_t i = 0; i < nsections; i++) {
            unsigned char *e = table + i * ENTRY;
            uint64_t at = zrt__ckpt_get_u64(e + 40), bytes = zrt__ckpt_get_u64(e + 48);
            if (at <= size && bytes <= size - at) {
                uint32_t crc = zrt__crc32c(0, f + at, (size_t)bytes);
                memcpy(e + 56, &crc, 4);
            }
        }
        uint32_t crc = zrt__crc32c(0, table, (size_t)nsections * ENTRY);
        memcpy(f + 56, &crc, 4);
    }
    uint32_t crc = zrt__crc32c(0, f, 60);
    memcpy(f + 60, &crc, 4);
    return crc;
}

/* Writes 8 hex digits of v over the 8 characters after key[0..keylen), if
 * there are 8 there. */
static void put_hex(char *key, size_t keylen, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    char *at = key + keylen;
    if (strlen(at) < 8)
        return;
    for (int i = 0; i < 8; i++)
        at[i] = hex[(v >> (28 - 4 * i)) & 15];
}

/* Fixes meta.json's recorded header CRC and its own CRC. */
static void fix_meta(char *text, uint32_t header_crc)
{
    static const char hkey[] = "\"header_crc32c\": \"", mkey[] = "\"meta_crc32c\": \"";
    char *h = strstr(text, hkey), *m = NULL;
    if (h)
        put_hex(h, strlen(hkey), header_crc);
    for (char *p = text; (p = strstr(p, mkey)) != NULL; p++)
        m = p;
    if (m)
        put_hex(m, strlen(mkey), zrt__crc32c(0, text, (size_t)(m - text)));
}

static zrt__ckpt *piece_ckpt;

static zrt_status read_piece(void *arg, const zrt__ckpt_piece *piece)
{
    zrt__errbuf err = {.rank = -1};
    if (piece->dst_elem < 0 || piece->count < 1 ||
        piece->dst_elem + piece->count > PIECE_ELEMS)
        abort(); /* a piece outside what was asked for */
    return zrt__ckpt_read_piece(piece_ckpt, zrt__ckpt_f32_kind(&piece_ckpt->meta), piece,
                                arg, &err);
}

/* Reads back what an opened checkpoint says it holds. */
static void read_back(zrt__ckpt *c)
{
    zrt__errbuf err = {.rank = -1};
    static unsigned char buf[4096];
    float elems[PIECE_ELEMS];
    zrt__ckpt_verify_file(c, 0, buf, sizeof buf, &err);
    piece_ckpt = c;
    for (int t = 0; t < c->meta.ntensors; t++) {
        const zrt__ckpt_tensor *tp = &c->meta.tensors[t];
        int found = zrt__ckpt_find_tensor(&c->meta, tp->name);
        if (found < 0 || found > t)
            abort(); /* a tensor's own name finds another, or none */
        int64_t n = tp->numel < PIECE_ELEMS ? tp->numel : PIECE_ELEMS;
        if (zrt__ckpt_for_pieces(&c->meta, t, 0, n, read_piece, elems) != ZRT_OK)
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t meta_len = nul ? (size_t)(nul - data) : size;
    size_t rank_len = nul ? size - meta_len - 1 : 0;
    char *meta = fuzz_string(data, meta_len);
    unsigned char *rank = malloc(rank_len + 1);
    if (!rank)
        abort();
    memcpy(rank, data + meta_len + (nul != NULL), rank_len);
    fix_meta(meta, fix_rank_file(rank, rank_len));

    char path[FUZZ_PATH];
    fuzz_write("rank-00000.zrtc", rank, rank_len, path);
    fuzz_write("meta.json", meta, meta_len, path);
    free(meta);
    free(rank);

    zrt__ckpt c;
    zrt__errbuf err = {.rank = -1};
    if (zrt__ckpt_open(fuzz_dir(), &c, &err) == ZRT_OK) {
        read_back(&c);
        zrt__ckpt_close(&c);
    } else if (!err.text[0]) {
        abort(); /* refused without a sentence */
    }
    return 0;
}
