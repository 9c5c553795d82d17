/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_config.c — the JSON config reader (runtime/config.c).
 *
 * The input is a config document. It is read as a string
 * (zrt_config_load_string) and as a file (zrt_config_load_file), over the
 * defaults; both must agree, a failure must leave the defaults untouched and
 * write a sentence, and a config read is then validated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "zrt/zrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);
    char path[FUZZ_PATH], err1[512] = "", err2[512] = "";
    zrt_config defaults, from_string, from_file;
    zrt_config_init(&defaults);
    from_string = defaults;
    from_file = defaults;
    fuzz_write("config.json", data, size, path);

    zrt_status s1 = zrt_config_load_string(&from_string, text, err1, sizeof err1);
    zrt_status s2 = zrt_config_load_file(&from_file, path, err2, sizeof err2);
    if (s1 != ZRT_OK && (memcmp(&from_string, &defaults, sizeof defaults) || !err1[0]))
        abort(); /* a failed load changed the config or said nothing */
    if (s2 != ZRT_OK && (memcmp(&from_file, &defaults, sizeof defaults) || !err2[0]))
        abort();
    /* jansson reads a string up to its first NUL, a file to its end */
    if (!memchr(data, 0, size) &&
        (s1 != s2 || memcmp(&from_string, &from_file, sizeof from_file) != 0)) {
        fprintf(stderr, "string: %s (%s)\nfile: %s (%s)\n", zrt_status_str(s1), err1,
                zrt_status_str(s2), err2);
        abort(); /* the two entry points read the same text differently */
    }
    if (s1 == ZRT_OK)
        zrt_config_validate(&from_string, err1, sizeof err1);
    free(text);
    return 0;
}
