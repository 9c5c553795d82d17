/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_size.c — the size parser ("64M", "1.5GiB": zrt_parse_size
 * in runtime/config.c), which both config files and command-line flags use.
 *
 * A size it accepts must be a byte count in [0, INT64_MAX] that reads back
 * the same when written as a plain integer, and in K, M or G when it is a
 * whole multiple of them; *out must stay untouched on a refusal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "zrt/zrt.h"

/* text must parse to exactly want. */
static void expect(const char *text, int64_t want)
{
    int64_t got = -1;
    if (zrt_parse_size(text, &got) != ZRT_OK || got != want) {
        fprintf(stderr, "'%s' reads as %" PRId64 ", not %" PRId64 "\n", text, got, want);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256) /* longer strings only repeat digits or spaces */
        return 0;
    char *text = fuzz_string(data, size);
    int64_t value = -7;
    zrt_status st = zrt_parse_size(text, &value);
    free(text);
    if (st != ZRT_OK) {
        if (value != -7)
            abort(); /* *out written on failure */
        return 0;
    }
    if (value < 0)
        abort();
    char buf[64];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    expect(buf, value);
    static const char units[] = "KMG";
    for (int u = 0; u < 3; u++) {
        int64_t unit = (int64_t)1 << (10 * (u + 1));
        if (value % unit == 0) {
            snprintf(buf, sizeof buf, "%" PRId64 "%ciB", value / unit, units[u]);
            expect(buf, value);
        }
    }
    return 0;
}
