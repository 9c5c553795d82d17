/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/cuda/test_quant_cuda.c — kernels/cuda's blockwise int8/int4
 * quantization against kernels/cpu's scalar references, byte for byte.
 *
 * For every (n, block) below and every kind of data, the GPU's q bytes, scale
 * bytes and non-finite block count must equal zrt_quantize_{i8,i4}_scalar's;
 * the dequantized floats (plain and _add, onto an accumulator with NaN and
 * inf in it) must equal the CPU's bit for bit, NaN payloads included. The
 * GPU's round trip is also checked against the format's bound (kernels.h,
 * docs/compression.md), Q = qmax:
 *   |x - deq(q(x))| <= scale * (0.5 + (4Q + 1) * 2^-24) + Q / FLT_MAX
 * for every finite block but int8's with absmax FLT_MAX (q * scale overflows
 * to inf there, the documented exception).
 *
 * Data: random values at a random magnitude per block; all-zero blocks
 * (+0 and -0); one huge value (3e38) among small ones; inf, -inf and NaN;
 * exact ties (absmax 127 or 7 makes inv and scale exact, and half-integers
 * round to even); subnormals, and an absmax below Q / FLT_MAX, whose
 * reciprocal overflows (stored as zeros, scale 0); FLT_MAX. Odd n exercise the short last
 * block and the int4 padding nibble; blocks from 1 to 100000 cover the warp-per-block and
 * the thread-block-per-block launches (2048 elements and up).
 *
 * Every output sits between guard bytes, misaligned for anything wider than
 * its element (13 bytes before q, 12 before the floats), so an overrun or an
 * alignment assumption shows up.
 *
 * Before looking for a device it checks what needs none: block 0 and an odd
 * int4 block are refused with cudaErrorInvalidValue without a CUDA call.
 *
 * Exit status: 0 all passed, 1 a check failed (or a CUDA call did), 77 no
 * CUDA device, which ctest shows as skipped. A plain program, not a Check
 * suite: a CUDA context does not survive Check's fork.
 */
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels_cuda.h"

#include <cuda_runtime_api.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_common.h"

static cudaStream_t stream;
static test_rng rng = {0x51ed270b27f4a7c1ull};

/* ---- data ------------------------------------------------------------------- */

enum { DATA_RANDOM, DATA_ADVERSARIAL, DATA_KINDS };

/* One block's worth of adversarial values; qmax 127 or 7 (for the ties). */
static void fill_adversarial_block(float *x, size_t len, int qmax)
{
    unsigned kind = test_rng_u32(&rng) % 10;

    for (size_t j = 0; j < len; j++)
        x[j] = ldexpf(test_rng_unit(&rng), -3);
    switch (kind) {
    case 0: /* all zero, some -0 */
        for (size_t j = 0; j < len; j++)
            x[j] = (test_rng_u32(&rng) & 1) ? -0.0f : 0.0f;
        break;
    case 1: /* one huge value: the rest quantize to 0 */
        x[test_rng_below(&rng, len)] = (test_rng_u32(&rng) & 1) ? 3e38f : -3e38f;
        break;
    case 2:
        x[test_rng_below(&rng, len)] = INFINITY;
        break;
    case 3:
        x[test_rng_below(&rng, len)] = -INFINITY;
        break;
    case 4: /* a NaN, with a payload */
        x[test_rng_below(&rng, len)] =
            test_f32_of(0x7fc00000u | (test_rng_u32(&rng) & 0xffff));
        break;
    case 5: /* exact ties: absmax qmax makes inv = scale = 1 */
        for (size_t j = 0; j < len; j++)
            x[j] = (float)((int)test_rng_below(&rng, (uint64_t)(2 * qmax)) - qmax) + 0.5f;
        x[test_rng_below(&rng, len)] =
            (test_rng_u32(&rng) & 1) ? (float)qmax : -(float)qmax;
        break;
    case 6: /* subnormals only */
        for (size_t j = 0; j < len; j++)
            x[j] = test_f32_of((test_rng_u32(&rng) & 0x807fffffu));
        break;
    case 7: /* absmax below qmax / FLT_MAX: the reciprocal overflows to inf */
        for (size_t j = 0; j < len; j++)
            x[j] = ldexpf(test_rng_unit(&rng), -126);
        if (len > 1)
            x[0] = 0.0f; /* 0 * inf */
        break;
    case 8: /* FLT_MAX: q * scale may round past it */
        x[test_rng_below(&rng, len)] = (test_rng_u32(&rng) & 1) ? FLT_MAX : -FLT_MAX;
        break;
    default: /* plain small values */
        break;
    }
}

static void fill_data(float *x, size_t n, size_t block, int kind, int qmax)
{
    for (size_t base = 0; base < n; base += block) {
        size_t len = n - base < block ? n - base : block;

        if (kind == DATA_ADVERSARIAL) {
            fill_adversarial_block(x + base, len, qmax);
        } else {
            int e = (int)(test_rng_u32(&rng) % 60) - 30;

            for (size_t j = 0; j < len; j++)
                x[base + j] = ldexpf(test_rng_unit(&rng), e);
        }
    }
}

/* the accumulator for dequantize_add: random, a few NaN and inf */
static void fill_acc(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = test_rng_u32(&rng) % 1000;

        x[i] = r == 0   ? NAN
               : r == 1 ? INFINITY
               : r == 2 ? -INFINITY
                        : test_rng_unit(&rng);
    }
}

/* ---- device buffers ----------------------------------------------------------- */

static void *dev_alloc(size_t bytes)
{
    void *d;

    TEST_CUDA(cudaMalloc(&d, bytes ? bytes : 1));
    return d;
}

static void to_host(void *host, const void *d, size_t bytes)
{
    TEST_CUDA(cudaStreamSynchronize(stream));
    if (bytes)
        TEST_CUDA(cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
}

/* An output buffer between guard bytes: `lead` bytes before it (13 for
 * bytes, 12 for floats: misaligned for anything wider than the element) and
 * GUARD_TAIL after, all SENTINEL, so a kernel that writes outside its
 * output or assumes an alignment shows up. */
#define GUARD_TAIL 16
#define SENTINEL   0xa7

typedef struct guarded {
    uint8_t *raw;
    size_t bytes, lead;
} guarded;

static void *guarded_alloc(guarded *g, size_t bytes, size_t lead)
{
    g->bytes = bytes;
    g->lead = lead;
    g->raw = dev_alloc(lead + bytes + GUARD_TAIL);
    TEST_CUDA(cudaMemset(g->raw, SENTINEL, lead + bytes + GUARD_TAIL));
    return g->raw + lead;
}

static void guarded_check(const guarded *g, const char *what, const char *ctx)
{
    size_t total = g->lead + g->bytes + GUARD_TAIL, bad = 0;
    uint8_t *h = test_xmalloc(total);

    to_host(h, g->raw, total);
    for (size_t i = 0; i < g->lead; i++)
        bad += h[i] != SENTINEL;
    for (size_t i = g->lead + g->bytes; i < total; i++)
        bad += h[i] != SENTINEL;
    TEST_CHECK(!bad, "%s %s: %zu guard bytes around the output overwritten", what, ctx,
               bad);
    free(h);
}

/* ---- comparisons ---------------------------------------------------------------- */

static void check_bytes(const char *what, const char *ctx, const void *got,
                        const void *want, size_t bytes)
{
    const uint8_t *a = got, *b = want;
    size_t bad = 0, first = 0;

    for (size_t i = 0; i < bytes; i++)
        if (a[i] != b[i] && !bad++)
            first = i;
    TEST_CHECK(!bad, "%s %s: %zu of %zu bytes differ, first [%zu] got 0x%02x want 0x%02x",
               what, ctx, bad, bytes, first, bad ? a[first] : 0, bad ? b[first] : 0);
}

/* bit for bit, NaN payloads included */
static void check_f32(const char *what, const char *ctx, const float *got,
                      const float *want, size_t n)
{
    size_t bad = 0, first = 0;

    for (size_t i = 0; i < n; i++)
        if (test_bits_of(got[i]) != test_bits_of(want[i]) && !bad++)
            first = i;
    TEST_CHECK(!bad, "%s %s: %zu of %zu differ, first [%zu] got 0x%08x want 0x%08x", what,
               ctx, bad, n, first, bad ? test_bits_of(got[first]) : 0,
               bad ? test_bits_of(want[first]) : 0);
}

/* The round-trip bound on the GPU's own result (docs/compression.md). */
static void check_bound(const char *ctx, const float *x, const float *deq,
                        const float *scale, size_t n, size_t block, int qmax)
{
    const double slack = 0.5 + (4.0 * qmax + 1.0) * 0x1p-24;
    const double absolute = qmax / (double)FLT_MAX;
    size_t bad = 0, first = 0;

    for (size_t b = 0, base = 0; base < n; b++, base += block) {
        size_t len = n - base < block ? n - base : block;
        double absmax = 0.0;

        for (size_t j = 0; j < len; j++)
            absmax = fmax(absmax, fabs((double)x[base + j]));
        if (!isfinite(absmax) || (qmax == 127 && absmax == (double)FLT_MAX))
            continue;
        for (size_t j = 0; j < len; j++) {
            double err = fabs((double)x[base + j] - (double)deq[base + j]);

            if (!(err <= (double)scale[b] * slack + absolute) && !bad++)
                first = base + j;
        }
    }
    TEST_CHECK(!bad,
               "round-trip bound %s: %zu elements over it, first [%zu] x %.9g deq %.9g",
               ctx, bad, first, bad ? x[first] : 0.0, bad ? deq[first] : 0.0);
}

/* ---- one case ---------------------------------------------------------------------- */

static size_t cpu_quantize(int bits, const float *x, size_t n, size_t block, void *q,
                           float *scale)
{
    return bits == 8 ? zrt_quantize_i8_scalar(x, n, block, q, scale)
                     : zrt_quantize_i4_scalar(x, n, block, q, scale);
}

static void cpu_dequantize(int bits, int add, const void *q, const float *scale, size_t n,
                           size_t block, float *x)
{
    if (bits == 8 && !add)
        zrt_dequantize_i8_scalar(q, scale, n, block, x);
    else if (bits == 8)
        zrt_dequantize_add_i8_scalar(q, scale, n, block, x);
    else if (!add)
        zrt_dequantize_i4_scalar(q, scale, n, block, x);
    else
        zrt_dequantize_add_i4_scalar(q, scale, n, block, x);
}

static int gpu_quantize(int bits, const float *dx, size_t n, size_t block, void *dq,
                        float *dscale, size_t *dcount)
{
    return bits == 8 ? zrt_cuda_quantize_i8(dx, n, block, dq, dscale, dcount, stream)
                     : zrt_cuda_quantize_i4(dx, n, block, dq, dscale, dcount, stream);
}

static int gpu_dequantize(int bits, int add, const void *dq, const float *dscale,
                          size_t n, size_t block, float *dx)
{
    if (bits == 8 && !add)
        return zrt_cuda_dequantize_i8(dq, dscale, n, block, dx, stream);
    if (bits == 8)
        return zrt_cuda_dequantize_add_i8(dq, dscale, n, block, dx, stream);
    if (!add)
        return zrt_cuda_dequantize_i4(dq, dscale, n, block, dx, stream);
    return zrt_cuda_dequantize_add_i4(dq, dscale, n, block, dx, stream);
}

static void test_case(int bits, size_t n, size_t block, int kind)
{
    const int qmax = bits == 8 ? 127 : 7;
    size_t nblocks = (n + block - 1) / block;
    size_t qbytes = bits == 8 ? n : (n + 1) / 2, fbytes = n * sizeof(float);
    size_t sbytes = nblocks * sizeof(float);
    float *x = test_xmalloc(fbytes), *acc = test_xmalloc(fbytes);
    float *want_x = test_xmalloc(fbytes), *got_x = test_xmalloc(fbytes);
    float *want_s = test_xmalloc(sbytes), *got_s = test_xmalloc(sbytes);
    uint8_t *want_q = test_xmalloc(qbytes), *got_q = test_xmalloc(qbytes);
    size_t want_nf, got_nf = (size_t)-1;
    float *dx, *dscale, *dout;
    void *dq;
    size_t *dcount;
    guarded gx, gq, gscale, gout;
    char ctx[96];

    snprintf(ctx, sizeof ctx, "int%d n=%zu block=%zu %s", bits, n, block,
             kind == DATA_RANDOM ? "random" : "adversarial");
    fill_data(x, n, block, kind, qmax);
    fill_acc(acc, n);

    /* quantize: q, scales and the count, byte for byte */
    memset(want_q, 0xa5, qbytes); /* a pad nibble left unwritten would show */
    want_nf = cpu_quantize(bits, x, n, block, want_q, want_s);
    dx = guarded_alloc(&gx, fbytes, 12); /* the input misaligned too */
    if (n)
        TEST_CUDA(cudaMemcpy(dx, x, fbytes, cudaMemcpyHostToDevice));
    dq = guarded_alloc(&gq, qbytes, 13);
    dscale = guarded_alloc(&gscale, sbytes, 12);
    dcount = dev_alloc(sizeof *dcount);
    TEST_CUDA(gpu_quantize(bits, dx, n, block, dq, dscale, dcount));
    to_host(got_q, dq, qbytes);
    to_host(got_s, dscale, sbytes);
    to_host(&got_nf, dcount, sizeof got_nf);
    check_bytes("quantize q", ctx, got_q, want_q, qbytes);
    check_bytes("quantize scale", ctx, got_s, want_s, sbytes);
    guarded_check(&gq, "quantize q", ctx);
    guarded_check(&gscale, "quantize scale", ctx);
    TEST_CHECK(got_nf == want_nf, "quantize non-finite blocks %s: got %zu want %zu", ctx,
               got_nf, want_nf);

    /* dequantize the same q on both (the CPU's q: a q difference above stays there) */
    dout = guarded_alloc(&gout, fbytes, 12);
    TEST_CUDA(cudaMemcpy(dq, want_q, qbytes, cudaMemcpyHostToDevice));
    TEST_CUDA(cudaMemcpy(dscale, want_s, sbytes, cudaMemcpyHostToDevice));
    cpu_dequantize(bits, 0, want_q, want_s, n, block, want_x);
    TEST_CUDA(gpu_dequantize(bits, 0, dq, dscale, n, block, dout));
    to_host(got_x, dout, fbytes);
    check_f32("dequantize", ctx, got_x, want_x, n);
    guarded_check(&gout, "dequantize", ctx);
    check_bound(ctx, x, got_x, want_s, n, block, qmax);

    /* dequantize_add onto an accumulator */
    memcpy(want_x, acc, fbytes);
    cpu_dequantize(bits, 1, want_q, want_s, n, block, want_x);
    if (n)
        TEST_CUDA(cudaMemcpy(dout, acc, fbytes, cudaMemcpyHostToDevice));
    TEST_CUDA(gpu_dequantize(bits, 1, dq, dscale, n, block, dout));
    to_host(got_x, dout, fbytes);
    check_f32("dequantize_add", ctx, got_x, want_x, n);
    guarded_check(&gout, "dequantize_add", ctx);

    TEST_CUDA(cudaFree(gx.raw));
    TEST_CUDA(cudaFree(gq.raw));
    TEST_CUDA(cudaFree(gscale.raw));
    TEST_CUDA(cudaFree(dcount));
    TEST_CUDA(cudaFree(gout.raw));
    free(x), free(acc), free(want_x), free(got_x), free(want_s), free(got_s);
    free(want_q), free(got_q);
}

/* ---- what needs no device ---------------------------------------------------------- */

static void test_refusals(void)
{
    const int inval = (int)cudaErrorInvalidValue;

    TEST_CHECK(zrt_cuda_quantize_i8(NULL, 8, 0, NULL, NULL, NULL, NULL) == inval,
               "quantize_i8 accepted block 0");
    TEST_CHECK(zrt_cuda_dequantize_i8(NULL, NULL, 8, 0, NULL, NULL) == inval,
               "dequantize_i8 accepted block 0");
    TEST_CHECK(zrt_cuda_dequantize_add_i8(NULL, NULL, 8, 0, NULL, NULL) == inval,
               "dequantize_add_i8 accepted block 0");
    TEST_CHECK(zrt_cuda_quantize_i4(NULL, 8, 0, NULL, NULL, NULL, NULL) == inval,
               "quantize_i4 accepted block 0");
    TEST_CHECK(zrt_cuda_quantize_i4(NULL, 8, 3, NULL, NULL, NULL, NULL) == inval,
               "quantize_i4 accepted an odd block");
    TEST_CHECK(zrt_cuda_dequantize_i4(NULL, NULL, 8, 3, NULL, NULL) == inval,
               "dequantize_i4 accepted an odd block");
    TEST_CHECK(zrt_cuda_dequantize_add_i4(NULL, NULL, 8, 5, NULL, NULL) == inval,
               "dequantize_add_i4 accepted an odd block");
}

/* ---- main ----------------------------------------------------------------------------
 */

int main(void)
{
    static const size_t lengths[] = {0, 1, 7, 64, 1001, 65537, 1000003};
    static const size_t blocks[] = {1, 2, 6, 31, 32, 64, 256, 2048, 4096, 100000};
    struct cudaDeviceProp prop;
    int count = 0, rc;

    test_refusals();
    if (test_failures)
        return test_exit_code("test_quant_cuda");
    rc = (int)cudaGetDeviceCount(&count);
    if (rc != 0 || count == 0) {
        printf("no CUDA device (%s); the argument checks passed, the quantization "
               "kernels were compiled, not run\n",
               rc ? cudaGetErrorName((cudaError_t)rc) : "0 devices");
        return ZRT_TEST_SKIP;
    }
    TEST_CUDA(cudaSetDevice(0));
    TEST_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    TEST_CUDA(cudaStreamCreate(&stream));

    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int before = test_failures;

        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            for (int kind = 0; kind < DATA_KINDS; kind++)
                for (int bits = 8; bits >= 4; bits -= 4)
                    if (bits == 8 || blocks[b] % 2 == 0)
                        test_case(bits, lengths[k], blocks[b], kind);
        printf("n=%zu: %s\n", lengths[k],
               test_failures == before ? "the CPU's bytes and bits" : "FAILED");
    }
    TEST_CUDA(cudaStreamDestroy(stream));
    return test_exit_code("test_quant_cuda");
}
