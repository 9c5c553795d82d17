/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/sized.h — the public params structs that can grow.
 *
 * zrt_config, zrt_mem_model and zrt_ckpt_info start with `size_t
 * struct_size`: the size the caller compiled against, checked before a call
 * reads the struct. Each _init call zeroes the struct and stamps that size
 * before filling its defaults.
 */
#ifndef ZRT_RUNTIME_SIZED_H
#define ZRT_RUNTIME_SIZED_H

#include <string.h>

#include "zrt/zrt.h"

/* Zeroes the size bytes at s and sets the struct_size they start with to
 * size; ZRT_ERR_INVALID_ARG when s is NULL. */
static inline zrt_status zrt__sized_init(void *s, size_t size)
{
    if (s == NULL)
        return ZRT_ERR_INVALID_ARG;
    memset(s, 0, size);
    memcpy(s, &size, sizeof size); /* struct_size, the first member */
    return ZRT_OK;
}

#endif /* ZRT_RUNTIME_SIZED_H */
