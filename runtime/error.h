/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/error.h — the last-error sentence and the CHECK macros.
 *
 * Every failure path writes one sentence into a zrt__errbuf: "rank R: what
 * went wrong (sizes, budget, file) [source.c:line]". The context owns one;
 * objects below the context (backend, communicator) point at it, so the
 * sentence a user reads names the real cause, not the caller that passed it on.
 */
#ifndef ZRT_RUNTIME_ERROR_H
#define ZRT_RUNTIME_ERROR_H

#include "zrt/zrt.h"

/* Room for the longest sentence: stage auto's refusal names all 16 rungs. */
#define ZRT__ERRBUF_SIZE 4096

typedef struct zrt__errbuf {
    int rank; /* -1 until the communicator knows it */
    char text[ZRT__ERRBUF_SIZE];
} zrt__errbuf;

/* Writes the sentence and returns status, so callers can
 * `return zrt__fail(err, ZRT_ERR_X, "...")`. err may be NULL. */
zrt_status zrt__fail_at(zrt__errbuf *err, zrt_status status, const char *file, int line,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define zrt__fail(err, status, ...)                                                      \
    zrt__fail_at((err), (status), __FILE__, __LINE__, __VA_ARGS__)

/* Formats bytes for messages: "1.50 MiB (1572864 bytes)". */
const char *zrt__fmt_bytes(long long bytes, char *buf, size_t size);

/* Names an errno value for messages ("No such file or directory"), thread-
 * safely. The text may live in buf or in a static string of the C library;
 * use the returned pointer, not buf. */
const char *zrt__errno_text(int err, char *buf, size_t size);

/* Evaluates a zrt_status expression; returns it from the enclosing function
 * when it is not ZRT_OK. */
#define ZRT_CHECK(expr)                                                                  \
    do {                                                                                 \
        zrt_status zrt__st_ = (expr);                                                    \
        if (zrt__st_ != ZRT_OK)                                                          \
            return zrt__st_;                                                             \
    } while (0)

/* Same, but stores the status in `st` and jumps to `label` (cleanup path). */
#define ZRT_CHECK_GOTO(expr, st, label)                                                  \
    do {                                                                                 \
        (st) = (expr);                                                                   \
        if ((st) != ZRT_OK)                                                              \
            goto label;                                                                  \
    } while (0)

#endif /* ZRT_RUNTIME_ERROR_H */
