/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/file_limit.c — refusing a file that would outgrow RLIMIT_FSIZE.
 */
#include "file_limit.h"

#include <sys/resource.h>

zrt_status zrt__check_file_size_limit(uint64_t bytes, const char *what, const char *path,
                                      zrt__errbuf *err)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_FSIZE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY ||
        bytes <= (uint64_t)lim.rlim_cur)
        return ZRT_OK;
    char want[64], have[64];
    return zrt__fail(err, ZRT_ERR_IO,
                     "cannot write %s %s: it would be %s, above this process's file-size "
                     "limit (RLIMIT_FSIZE, ulimit -f) of %s",
                     what, path, zrt__fmt_bytes((long long)bytes, want, sizeof want),
                     zrt__fmt_bytes((long long)lim.rlim_cur, have, sizeof have));
}
