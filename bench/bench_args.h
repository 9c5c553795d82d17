/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_args.h — the flags the synthetic-model benchmarks share:
 * --layers L --width W --steps K (positive integers) and, where a benchmark
 * takes one, --dir DIR; and the size syntax of the kernel and I/O benchmarks
 * (bench_parse_size: "64M", "1G").
 */
#ifndef ZRT_BENCH_ARGS_H
#define ZRT_BENCH_ARGS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_model_args {
    int layers, width, steps; /* set the defaults before parsing */
    const char *dir;          /* NULL: --dir is not accepted */
} bench_model_args;

/* Returns 0, or -1 for an unknown flag, a missing value or a value <= 0. */
static inline int bench_parse_model_args(int argc, char **argv, bench_model_args *a)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return -1;
        if (a->dir && !strcmp(argv[i], "--dir")) {
            a->dir = argv[i + 1];
            continue;
        }
        int v = atoi(argv[i + 1]);
        int *field = !strcmp(argv[i], "--layers")  ? &a->layers
                     : !strcmp(argv[i], "--width") ? &a->width
                     : !strcmp(argv[i], "--steps") ? &a->steps
                                                   : NULL;
        if (!field || v <= 0)
            return -1;
        *field = v;
    }
    return 0;
}

/* Parses a positive count with an optional binary suffix K, M or G
 * ("64M" = 64 * 2^20, "4096" = 4096). Returns 0, or -1 for an empty string,
 * trailing junk, zero or overflow; *out is untouched on failure. */
static inline int bench_parse_size(const char *s, unsigned long long *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (shift)
        end++;
    if (*end || errno || v == 0 || v > (~0ULL >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

/* A comma-separated list of sizes ("1M,16M,64M") into out[0..max), each at
 * most SIZE_MAX / 64 (room for a benchmark's arrays). Returns how many, or -1
 * for a bad entry, more than max, or none. */
static inline int bench_parse_size_list(const char *list, size_t *out, int max)
{
    char buf[256];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned long long v;
        if (n == max || bench_parse_size(tok, &v) || v > SIZE_MAX / 64)
            return -1;
        out[n++] = (size_t)v;
    }
    return n > 0 ? n : -1;
}

#endif
