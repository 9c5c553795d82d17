/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/file_limit.h — the process's file-size limit, checked before a write.
 *
 * A write past RLIMIT_FSIZE makes the kernel send SIGXFSZ, whose default
 * action kills the process with no message (exit 153). The library does not
 * change the process's signal handling behind the loop's back, so every file
 * it writes (swap files, checkpoint rank files, meta.json) checks its final
 * size against the limit first and fails with a sentence instead. When the
 * loop ignores SIGXFSZ itself, a write past the limit fails with EFBIG, which
 * the writers report like any other I/O error.
 */
#ifndef ZRT_RUNTIME_FILE_LIMIT_H
#define ZRT_RUNTIME_FILE_LIMIT_H

#include <stdint.h>

#include "error.h"

/* ZRT_OK when a file of `bytes` bytes may be written at `path`; otherwise
 * ZRT_ERR_IO with "cannot write <what> <path>: it would be <bytes>, above
 * this process's file-size limit (RLIMIT_FSIZE, ulimit -f) of <limit>". */
zrt_status zrt__check_file_size_limit(uint64_t bytes, const char *what, const char *path,
                                      zrt__errbuf *err);

#endif /* ZRT_RUNTIME_FILE_LIMIT_H */
