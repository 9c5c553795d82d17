/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz.c — the helpers of fuzz.h: one temporary directory per
 * process, input written to files in it, and NUL-terminated copies.
 */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[FUZZ_PATH - 64];

/* Removes the directory's files, then the directory (atexit). */
static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[FUZZ_PATH];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

const char *fuzz_dir(void)
{
    if (dir[0])
        return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/zrt-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir;
}

void fuzz_write(const char *name, const void *data, size_t size, char *path)
{
    snprintf(path, FUZZ_PATH, "%s/%s", fuzz_dir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *p = data;
    while (fd >= 0 && size > 0) {
        ssize_t n = write(fd, p, size);
        if (n <= 0)
            break;
        p += n;
        size -= (size_t)n;
    }
    if (fd < 0 || size > 0 || close(fd) != 0) {
        perror(path);
        abort();
    }
}

char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
