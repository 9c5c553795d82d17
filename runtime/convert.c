/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/convert.c — element conversions a training loop needs with 16-bit
 * parameters: its f32 math reads bf16/f16 values and adds f32 gradients
 * into 16-bit buffers. Round to nearest even, as the kernels do.
 */
#include <string.h>

#include "../kernels/cpu/kernels.h"
#include "zrt/zrt.h"

static int is_half(zrt_dtype d)
{
    return d == ZRT_BF16 || d == ZRT_F16;
}

static zrt_half half_of(zrt_dtype d)
{
    return d == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16;
}

zrt_status zrt_convert(void *dst, zrt_dtype dst_type, const void *src, zrt_dtype src_type,
                       size_t n)
{
    if ((!dst || !src) && n > 0)
        return ZRT_ERR_INVALID_ARG;
    if (zrt_dtype_size(dst_type) == 0 || zrt_dtype_size(src_type) == 0)
        return ZRT_ERR_INVALID_ARG;
    if (dst_type == src_type) {
        memmove(dst, src, n * zrt_dtype_size(dst_type));
        return ZRT_OK;
    }
    if (dst_type == ZRT_F32) {
        zrt_cast_half_to_f32(dst, src, n, half_of(src_type));
        return ZRT_OK;
    }
    if (src_type == ZRT_F32) {
        zrt_cast_f32_to_half(dst, src, n, half_of(dst_type));
        return ZRT_OK;
    }
    return ZRT_ERR_UNSUPPORTED; /* bf16 <-> f16: go through f32 */
}

zrt_status zrt_accumulate(void *dst, zrt_dtype dst_type, const float *src, size_t n)
{
    if ((!dst || !src) && n > 0)
        return ZRT_ERR_INVALID_ARG;
    if (dst_type == ZRT_F32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] += src[i];
        return ZRT_OK;
    }
    if (!is_half(dst_type))
        return ZRT_ERR_INVALID_ARG;
    uint16_t *d = dst;
    zrt_half h = half_of(dst_type);
    for (size_t i = 0; i < n; i++)
        d[i] = zrt_f32_to_half(zrt_half_to_f32(d[i], h) + src[i], h);
    return ZRT_OK;
}
