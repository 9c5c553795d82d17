/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz.h — what the libFuzzer harnesses share: a temporary
 * directory per process (made on first use, removed at exit) and writing the
 * input into a file there, for readers that take only a path.
 *
 * Each harness defines LLVMFuzzerTestOneInput, calls one reader on the input,
 * checks what it can about the result, and frees everything before it
 * returns: libFuzzer's leak check is on.
 */
#ifndef ZRT_TESTS_FUZZ_H
#define ZRT_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The directory ($TMPDIR or /tmp, zrt-fuzz.XXXXXX); aborts if it cannot be
 * made, since no input could be read then. */
const char *fuzz_dir(void);

/* Writes size bytes to fuzz_dir()/name and puts that path in path (at least
 * FUZZ_PATH bytes). Aborts on a write error: a full disk is not a finding. */
enum { FUZZ_PATH = 512 };
void fuzz_write(const char *name, const void *data, size_t size, char *path);

/* data as a NUL-terminated string the caller frees (NUL bytes inside stay). */
char *fuzz_string(const uint8_t *data, size_t size);

#endif /* ZRT_TESTS_FUZZ_H */
