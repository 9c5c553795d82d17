/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/status.c — names and meanings of status codes, dtypes, memory
 * categories and tiers. Everything here is a constant table.
 */
#include "zrt/zrt.h"

const char *zrt_status_str(zrt_status status)
{
    switch (status) {
#define ZRT_STATUS_NAME(name, value, text)                                               \
    case name:                                                                           \
        return #name;
        ZRT_STATUS_LIST(ZRT_STATUS_NAME)
#undef ZRT_STATUS_NAME
    }
    return "ZRT_ERR_UNKNOWN";
}

const char *zrt_status_text(zrt_status status)
{
    switch (status) {
#define ZRT_STATUS_TEXT(name, value, text)                                               \
    case name:                                                                           \
        return text;
        ZRT_STATUS_LIST(ZRT_STATUS_TEXT)
#undef ZRT_STATUS_TEXT
    }
    return "unknown status code";
}

const char *zrt_dtype_str(zrt_dtype dtype)
{
    switch (dtype) {
    case ZRT_F32:
        return "f32";
    case ZRT_BF16:
        return "bf16";
    case ZRT_F16:
        return "f16";
    case ZRT_DTYPE_COUNT:
        break;
    }
    return "unknown";
}

size_t zrt_dtype_size(zrt_dtype dtype)
{
    switch (dtype) {
    case ZRT_F32:
        return 4;
    case ZRT_BF16:
        return 2;
    case ZRT_F16:
        return 2;
    case ZRT_DTYPE_COUNT:
        break;
    }
    return 0;
}

const char *zrt_category_str(zrt_category category)
{
    static const char *const names[] = {
#define ZRT_CATEGORY_NAME(name, text) text,
        ZRT_CATEGORY_LIST(ZRT_CATEGORY_NAME)
#undef ZRT_CATEGORY_NAME
    };
    if ((unsigned)category >= ZRT_CAT_COUNT)
        return "unknown";
    return names[category];
}

const char *zrt_tier_str(zrt_tier tier)
{
    switch (tier) {
    case ZRT_TIER_DEVICE:
        return "device";
    case ZRT_TIER_HOST:
        return "host";
    case ZRT_TIER_NVME:
        return "nvme";
    case ZRT_TIER_COUNT:
        break;
    }
    return "unknown";
}
