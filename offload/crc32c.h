/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload/crc32c.h — CRC32C (Castagnoli) checksums for swapped blocks.
 *
 * The standard CRC32C: polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial
 * value and final xor 0xFFFFFFFF. zrt__crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * Calls chain: zrt__crc32c(zrt__crc32c(0, a, na), b, nb) is the checksum of
 * a followed by b. No global state; safe from any thread.
 */
#ifndef ZRT_OFFLOAD_CRC32C_H
#define ZRT_OFFLOAD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Uses the SSE4.2 crc32 instruction when the CPU has it, else zrt__crc32c_sw.
 * `crc` is the result of the previous call (0 to start). */
uint32_t zrt__crc32c(uint32_t crc, const void *data, size_t n);

/* The table-driven software path, always available; same results. Exposed so
 * tests can check both paths on a machine that has SSE4.2. */
uint32_t zrt__crc32c_sw(uint32_t crc, const void *data, size_t n);

#endif /* ZRT_OFFLOAD_CRC32C_H */
