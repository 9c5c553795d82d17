/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/error.c — writing the last-error sentence.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* strerror_r */
#endif

#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Drops the directories of a source path: "runtime/backend_cpu.c" is enough
 * for a developer and stays stable across build trees. */
static const char *short_source(const char *file)
{
    const char *marks[] = {"runtime/", "zero/", "offload/", "kernels/"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *hit = strstr(file, marks[i]);
        if (hit)
            return hit;
    }
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

zrt_status zrt__fail_at(zrt__errbuf *err, zrt_status status, const char *file, int line,
                        const char *fmt, ...)
{
    if (!err)
        return status;
    char what[ZRT__ERRBUF_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err->rank >= 0)
        snprintf(err->text, sizeof err->text, "rank %d: %s [%s:%d]", err->rank, what,
                 short_source(file), line);
    else
        snprintf(err->text, sizeof err->text, "%s [%s:%d]", what, short_source(file),
                 line);
    return status;
}

const char *zrt__fmt_bytes(long long bytes, char *buf, size_t size)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes;
    int unit = 0;
    while ((value >= 1024.0 || value <= -1024.0) && unit < 4) {
        value /= 1024.0;
        unit++;
    }
    if (unit == 0)
        snprintf(buf, size, "%lld bytes", bytes);
    else
        snprintf(buf, size, "%.2f %s (%lld bytes)", value, units[unit], bytes);
    return buf;
}

const char *zrt__errno_text(int err, char *buf, size_t size)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(err, buf, size); /* GNU variant: may not use buf */
#else
    if (strerror_r(err, buf, size) != 0)
        snprintf(buf, size, "error %d", err);
    return buf;
#endif
}
