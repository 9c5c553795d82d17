/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_quant.c — Check suite "quant" for the blockwise int8 and
 * int4 quantization kernels of kernels/cpu (kernels.h states the format and
 * the error bound).
 *
 * Every case runs through run_case, which quantizes with the scalar
 * reference and checks it against the specification written out here (the
 * scale of every block, every q, the count of non-finite blocks, the
 * dequantized values within the derived bound, dequantize_add as base + q *
 * scale), then runs the dispatching entry point and each vector path the CPU
 * has (zrt__*_avx2, zrt__*_avx512, called directly) and wants their q,
 * scales, dequantized and dequantize_add bits to equal the scalar ones byte
 * for byte. Every buffer sits between guard bytes, at an address aligned to
 * its element and no more (q at an odd one), so an overrun or an alignment
 * assumption shows up.
 *
 * The cases: random data of several distributions over lengths that are not
 * multiples of the block or of the vector widths and blocks 1 to 4096; then
 * the adversarial blocks (zero, one huge value, denormals, negative zero,
 * values at +-absmax, ties, FLT_MAX, the smallest blocks that are not
 * flushed, inf and NaN), the int4 packing by hand, zrt_quantized_bytes, and
 * the refusal of block 0 and of odd int4 blocks.
 */
#include "kernels/cpu/quant_paths.h"

#include "../common/test_check.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD                                                                            \
    12 /* bytes each side of every buffer: floats stay aligned to 4                      \
        * bytes, not to 16, 32 or 64 */
#define SENTINEL 0xa7

/* ck_assert_msg without its cost when the check passes (Check records the
 * location of every passing assertion, a write each): for the checks made
 * per element. */
#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond))                                                                     \
            ck_abort_msg(__VA_ARGS__);                                                   \
    } while (0)

/* ---- guarded buffers ------------------------------------------------------ */

/* bytes usable bytes between SENTINEL guards, odd (0 or 1) bytes further on. */
static void *guarded(size_t bytes, size_t odd)
{
    unsigned char *p = malloc(bytes + 2 * GUARD + odd);

    ck_assert_ptr_nonnull(p);
    memset(p, SENTINEL, bytes + 2 * GUARD + odd);
    return p + GUARD + odd;
}

static void guard_check(const void *buf, size_t bytes, const char *what)
{
    const unsigned char *p = (const unsigned char *)buf;

    for (int i = 1; i <= GUARD; i++) {
        EXPECT(p[-i] == SENTINEL, "%s: written %d bytes before", what, i);
        EXPECT(p[bytes + (size_t)i - 1] == SENTINEL, "%s: written past the end", what);
    }
}

/* odd: what guarded was given */
static void guarded_free(void *buf, size_t odd)
{
    if (buf)
        free((unsigned char *)buf - GUARD - odd);
}

static uint32_t bits_of(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    return u;
}

static float f32_of(uint32_t u)
{
    float f;

    memcpy(&f, &u, 4);
    return f;
}

/* ---- the specification, written out ------------------------------------- */

/* q of element i in the packed int4 array, sign-extended */
static int q4_at(const uint8_t *q, size_t i)
{
    int v = (q[i / 2] >> (4 * (i & 1))) & 0xf;

    return v >= 8 ? v - 16 : v;
}

/* One path's outputs for a case. */
typedef struct qout {
    void *q;    /* qbytes */
    float *s;   /* nblocks */
    float *d;   /* n: dequantized */
    float *a;   /* n: base + dequantized */
    size_t bad; /* what quantize returned */
} qout;

typedef struct qcase {
    const float *x;
    const float *base; /* dequantize_add's starting x */
    size_t n, block, nblocks, qbytes;
    int bits;
} qcase;

static void run_path(const zrt_quant_path *p, const qcase *c, qout *o)
{
    o->q = guarded(c->qbytes, 1); /* an odd address */
    o->s = guarded(c->nblocks * 4, 0);
    o->d = guarded(c->n * 4, 0);
    o->a = guarded(c->n * 4, 0);
    memcpy(o->a, c->base, c->n * 4);
    if (c->bits == 8) {
        o->bad = p->quant8(c->x, c->n, c->block, o->q, o->s);
        p->deq8(o->q, o->s, c->n, c->block, o->d);
        p->deq_add8(o->q, o->s, c->n, c->block, o->a);
    } else {
        o->bad = p->quant4(c->x, c->n, c->block, o->q, o->s);
        p->deq4(o->q, o->s, c->n, c->block, o->d);
        p->deq_add4(o->q, o->s, c->n, c->block, o->a);
    }
    guard_check(o->q, c->qbytes, "q");
    guard_check(o->s, c->nblocks * 4, "scale");
    guard_check(o->d, c->n * 4, "dequantized");
    guard_check(o->a, c->n * 4, "dequantize_add");
}

static void qout_free(qout *o)
{
    guarded_free(o->q, 1);
    guarded_free(o->s, 0);
    guarded_free(o->d, 0);
    guarded_free(o->a, 0);
}

/* The largest value of max|x| that is flushed (Q / absmax overflows) is
 * below Q / FLT_MAX: the bound's absolute term. */
static double tiny_term(float qmax)
{
    return (double)qmax / (double)FLT_MAX;
}

/* Block b of the reference outputs against the specification. Returns 1 when
 * the block holds inf or NaN. */
static int check_block(const qcase *c, const qout *o, size_t b)
{
    const float qmax = c->bits == 8 ? 127.0f : 7.0f;
    const double eps = (4.0 * qmax + 1.0) * 0x1p-24;
    size_t i0 = b * c->block, m = c->n - i0 < c->block ? c->n - i0 : c->block;
    float a = 0.0f, s = o->s[b], inv;
    volatile float qv = qmax; /* divisions at run time, in f32 */
    int nonfinite = 0;

    for (size_t j = 0; j < m; j++) {
        float v = fabsf(c->x[i0 + j]);
        nonfinite |= !isfinite(v);
        a = v > a ? v : a;
    }
    inv = qv / a;
    for (size_t j = 0; j < m; j++) {
        size_t i = i0 + j;
        float x = c->x[i], d = o->d[i];
        int q = c->bits == 8 ? ((const int8_t *)o->q)[i] : q4_at(o->q, i);
        float expect_add = c->base[i] + (float)q * s;

        if (nonfinite || a == 0.0f || isinf(inv)) {
            EXPECT(q == 0, "block %zu: q[%zu] = %d, want 0", b, i, q);
            continue;
        }
        EXPECT(q == (int)fmaxf(-qmax, fminf(qmax, nearbyintf(x * inv))),
               "block %zu: q[%zu] = %d for x %a (inv %a)", b, i, q, x, inv);
        EXPECT(bits_of(d) == bits_of((float)q * s), "deq[%zu]", i);
        EXPECT(bits_of(o->a[i]) == bits_of(expect_add) ||
                   (isnan(o->a[i]) && isnan(expect_add)),
               "dequantize_add[%zu] = %a, want %a", i, o->a[i], expect_add);
        if (c->bits == 8 && a == FLT_MAX && (q == 127 || q == -127)) {
            /* the documented exception: 127 * (FLT_MAX / 127) = inf */
            EXPECT(isinf(d) && (d > 0) == (q > 0), "FLT_MAX block: deq %a", d);
            continue;
        }
        EXPECT(isfinite(d), "deq[%zu] = %a", i, d);
        EXPECT(fabs((double)x - (double)d) <= (double)s * (0.5 + eps) + tiny_term(qmax),
               "block %zu (absmax %a, scale %a): |%a - %a| = %a over the bound", b, a, s,
               x, d, fabs((double)x - (double)d));
    }
    if (nonfinite) {
        EXPECT(bits_of(s) == 0x7fc00000u, "block %zu: scale %a, want NaN", b, s);
        for (size_t j = 0; j < m; j++) {
            EXPECT(bits_of(o->d[i0 + j]) == 0x7fc00000u, "deq of a NaN block");
            EXPECT(bits_of(o->a[i0 + j]) == 0x7fc00000u, "deq_add of a NaN block");
        }
    } else if (a == 0.0f || isinf(inv)) {
        EXPECT(bits_of(s) == 0, "block %zu: scale %a, want +0", b, s);
        for (size_t j = 0; j < m; j++) {
            EXPECT(bits_of(o->d[i0 + j]) == 0, "deq of a zero block");
            EXPECT(fabsf(c->x[i0 + j]) < tiny_term(qmax), "flushed a value");
        }
    } else {
        EXPECT(bits_of(s) == bits_of(a / qv), "block %zu: scale %a, want %a", b, s,
               a / qv);
    }
    return nonfinite;
}

/* Quantize x[0..n) (bits 8 or 4) on every path; check the reference and
 * compare the other paths with it byte for byte. base: dequantize_add's
 * starting values (NULL: a fixed pattern). */
static void run_case(const float *x, const float *base, size_t n, size_t block, int bits)
{
    qcase c = {x,   base, n, block, (n + block - 1) / block, bits == 8 ? n : (n + 1) / 2,
               bits};
    float *own_base = NULL;
    qout ref;
    size_t bad = 0;

    if (!base) {
        own_base = malloc((n ? n : 1) * 4);
        for (size_t i = 0; i < n; i++)
            own_base[i] = (float)((int)(i % 17) - 8) * 0.375f;
        c.base = own_base;
    }
    ck_assert_uint_eq(zrt_quantized_bytes(n, block, bits), c.qbytes + c.nblocks * 4);
    run_path(&zrt_quant_paths[0], &c, &ref);
    for (size_t b = 0; b < c.nblocks; b++)
        bad += (size_t)check_block(&c, &ref, b);
    ck_assert_msg(ref.bad == bad, "quantize returned %zu, %zu blocks are not finite",
                  ref.bad, bad);
    for (int p = 1; p < (int)ZRT_QUANT_PATHS; p++) {
        qout o;

        if (!zrt_quant_paths[p].present())
            continue;
        run_path(&zrt_quant_paths[p], &c, &o);
        ck_assert_msg(o.bad == ref.bad, "%s: count %zu", zrt_quant_paths[p].name, o.bad);
        ck_assert_msg(memcmp(o.q, ref.q, c.qbytes) == 0,
                      "%s: q differs (n %zu block %zu int%d)", zrt_quant_paths[p].name, n,
                      block, bits);
        ck_assert_msg(memcmp(o.s, ref.s, c.nblocks * 4) == 0, "%s: scales differ",
                      zrt_quant_paths[p].name);
        ck_assert_msg(memcmp(o.d, ref.d, n * 4) == 0,
                      "%s: dequantized bits differ (n %zu block %zu int%d)",
                      zrt_quant_paths[p].name, n, block, bits);
        ck_assert_msg(memcmp(o.a, ref.a, n * 4) == 0, "%s: dequantize_add bits differ",
                      zrt_quant_paths[p].name);
        qout_free(&o);
    }
    qout_free(&ref);
    free(own_base);
}

/* Both formats, every block the format allows. */
static void run_both(const float *x, size_t n, size_t block)
{
    run_case(x, NULL, n, block, 8);
    if (block % 2 == 0)
        run_case(x, NULL, n, block, 4);
}

/* ---- random data ----------------------------------------------------------- */

static const size_t blocks[] = {1, 2, 7, 32, 64, 256, 4096};
#define NBLOCKS ((int)(sizeof blocks / sizeof blocks[0]))
static const size_t lengths[] = {0, 1, 2, 7, 15, 17, 33, 255, 1001, 4099, 65537};
#define NLENGTHS ((int)(sizeof lengths / sizeof lengths[0]))

/* Distribution k of four: uniform in [-1, 1); a bell (sum of four) at 1e-3;
 * gradient-like mixed magnitudes with exact zeros; log-uniform over
 * 1e-30..1e30 with random signs. */
static float sample(test_rng *r, int k)
{
    static const float mix[4] = {1.0f, 1e-2f, 1e-4f, 0.0f};

    switch (k) {
    case 0:
        return test_rng_unit(r);
    case 1:
        return (test_rng_unit(r) + test_rng_unit(r) + test_rng_unit(r) +
                test_rng_unit(r)) *
               1e-3f;
    case 2:
        return test_rng_unit(r) * mix[test_rng_next(r) >> 62];
    default:
        return copysignf(powf(10.0f, 30.0f * test_rng_unit(r)), test_rng_unit(r));
    }
}

START_TEST(test_random)
{
    int dist = _i / NBLOCKS;
    size_t block = blocks[_i % NBLOCKS];
    test_rng r = test_rng_seed(0x9a17u + (uint64_t)_i);

    for (int l = 0; l < NLENGTHS; l++) {
        size_t n = lengths[l];
        float *x = guarded(n * 4, 0);

        for (size_t i = 0; i < n; i++)
            x[i] = sample(&r, dist);
        run_both(x, n, block);
        guarded_free(x, 0);
    }
}
END_TEST

/* ---- adversarial blocks ---------------------------------------------------- */

#define ADV_N 48 /* six blocks of 8, then lengths that cut the last block */

/* x[0..n) = the block pattern v[0..nv) repeated, each block of 8 holding it
 * scaled by a different power of two. */
static void run_pattern(const float *v, int nv)
{
    float x[ADV_N];

    for (int i = 0; i < ADV_N; i++)
        x[i] = v[i % nv] * ldexpf(1.0f, (i / 8) % 3 == 2 ? -3 : (i / 8) % 3);
    for (size_t n = ADV_N - 3; n <= ADV_N; n++) {
        run_both(x, n, 8);
        run_both(x, n, 2);
        run_both(x, n, 7);
        run_both(x, n, 32);
    }
}

START_TEST(test_zero_blocks)
{
    static const float zeros[4] = {0.0f, 0.0f, -0.0f, 0.0f};
    float x[64] = {0}, base[64];
    int8_t q8[64];
    float s[8], d[64];

    run_pattern(zeros, 4);
    /* all -0 too; dequantize_add keeps the base (-0 + +0 = +0 aside) */
    for (int i = 0; i < 64; i++) {
        x[i] = -0.0f;
        base[i] = (float)i;
    }
    run_case(x, base, 64, 16, 8);
    run_case(x, base, 64, 16, 4);
    ck_assert_uint_eq(zrt_quantize_i8(x, 64, 8, q8, s), 0);
    zrt_dequantize_i8(q8, s, 64, 8, d);
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(q8[i], 0);
        ck_assert_uint_eq(bits_of(d[i]), 0);
    }
    for (int b = 0; b < 8; b++)
        ck_assert_uint_eq(bits_of(s[b]), 0);
}
END_TEST

START_TEST(test_huge_value)
{
    static const float v[8] = {1e30f, 1e-3f, -2e-5f, 3.0f, -1e20f, 0.0f, 7e27f, -1e-30f};
    int8_t q8[8];
    uint8_t q4[4];
    float s;

    run_pattern(v, 8);
    zrt_quantize_i8(v, 8, 8, q8, &s);
    ck_assert_int_eq(q8[0], 127);
    for (int i = 1; i < 6; i++)
        ck_assert_int_eq(q8[i], 0); /* tiny next to 1e30 */
    ck_assert_int_eq(q8[6], 1);     /* 7e27 * 127 / 1e30 = 0.889 */
    zrt_quantize_i4(v, 8, 8, q4, &s);
    ck_assert_int_eq(q4_at(q4, 0), 7);
    ck_assert_int_eq(q4_at(q4, 6), 0); /* 7e27 * 7 / 1e30 = 0.049 */
}
END_TEST

START_TEST(test_denormals)
{
    /* all denormal: flushed; denormals next to a normal absmax: quantized */
    static const float sub[4] = {0x1p-149f, -0x1.8p-140f, 0x1p-127f, 0.0f};
    static const float mixed[4] = {0x1p-120f, -0x1p-149f, 0x1p-130f, -0x1p-121f};
    static const float big[4] = {1.0f, 0x1p-149f, -0x1p-130f, 0.5f};

    run_pattern(sub, 4);
    run_pattern(mixed, 4);
    run_pattern(big, 4);
}
END_TEST

START_TEST(test_at_absmax)
{
    static const float v[8] = {-3.0f, 3.0f, 1.0f, -3.0f, 0.0f, 3.0f, -1.5f, 2.0f};
    int8_t q8[8];
    uint8_t q4[4];
    float s;

    run_pattern(v, 8);
    zrt_quantize_i8(v, 8, 8, q8, &s);
    zrt_quantize_i4(v, 8, 8, q4, &s);
    for (int i = 0; i < 8; i++) {
        if (fabsf(v[i]) == 3.0f) {
            ck_assert_int_eq(q8[i], v[i] > 0 ? 127 : -127);
            ck_assert_int_eq(q4_at(q4, (size_t)i), v[i] > 0 ? 7 : -7);
        }
    }
}
END_TEST

/* absmax Q gives inv 1, so x * inv = x: the .5 cases round to even. */
START_TEST(test_ties_to_even)
{
    static const float v8[8] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -3.5f, 126.5f, -0.5f};
    static const int q8_want[8] = {127, 0, 2, 2, -2, -4, 126, 0};
    static const float v4[8] = {7.0f, 0.5f, 1.5f, 2.5f, -2.5f, -3.5f, 6.5f, -5.5f};
    static const int q4_want[8] = {7, 0, 2, 2, -2, -4, 6, -6};
    int8_t q8[8];
    uint8_t q4[4];
    float s;

    for (int p = 0; p < (int)ZRT_QUANT_PATHS; p++) {
        if (!zrt_quant_paths[p].present())
            continue;
        zrt_quant_paths[p].quant8(v8, 8, 8, q8, &s);
        zrt_quant_paths[p].quant4(v4, 8, 8, q4, &s);
        for (int i = 0; i < 8; i++) {
            ck_assert_msg(q8[i] == q8_want[i], "%s: int8 %g -> %d",
                          zrt_quant_paths[p].name, v8[i], q8[i]);
            ck_assert_msg(q4_at(q4, (size_t)i) == q4_want[i], "%s: int4 %g -> %d",
                          zrt_quant_paths[p].name, v4[i], q4_at(q4, (size_t)i));
        }
    }
    run_pattern(v8, 8);
    run_pattern(v4, 8);
}
END_TEST

START_TEST(test_flt_max)
{
    static const float v[8] = {FLT_MAX, -FLT_MAX, 1.0f,   -1e37f,
                               0.0f,    3e38f,    -2e38f, 1e-20f};
    static const float below[4] = {0x1.fffffcp+127f, -1.0f, 3e38f, -0x1.fffffcp+127f};
    int8_t q8[8];
    uint8_t q4[4];
    float s, d[8];

    run_pattern(v, 8);
    run_pattern(below, 4);
    /* dequantize_add onto inf, -inf and NaN: +inf + -inf gives the default
     * NaN, a NaN accumulator stays itself; the same bits on every path */
    for (int i = 0; i < 8; i++)
        d[i] = i % 4 == 0 ? -INFINITY : i % 4 == 1 ? INFINITY : i % 4 == 2 ? NAN : 1.0f;
    d[5] = f32_of(0xffc12345u);
    run_case(v, d, 8, 8, 8);
    run_case(v, d, 8, 2, 8);
    run_case(v, d, 8, 4, 4);
    /* int8: the documented exception, +-127 * (FLT_MAX / 127) = +-inf */
    zrt_quantize_i8(v, 8, 8, q8, &s);
    zrt_dequantize_i8(q8, &s, 8, 8, d);
    ck_assert(isinf(d[0]) && d[0] > 0 && isinf(d[1]) && d[1] < 0);
    /* int4: 7 * (FLT_MAX / 7) stays finite */
    zrt_quantize_i4(v, 8, 8, q4, &s);
    zrt_dequantize_i4(q4, &s, 8, 8, d);
    for (int i = 0; i < 8; i++)
        ck_assert(isfinite(d[i]));
    ck_assert_float_eq(d[0], FLT_MAX);
}
END_TEST

/* Blocks around the flush threshold: absmax with Q / absmax just finite or
 * just overflowing. */
START_TEST(test_flush_threshold)
{
    const float qs[2] = {127.0f, 7.0f};

    for (int k = 0; k < 2; k++) {
        volatile float qv = qs[k];
        float t = qv / FLT_MAX, v[4];

        for (int step = -3; step <= 3; step++) {
            uint32_t u = bits_of(t) + (uint32_t)step;
            float a = f32_of(u);

            v[0] = a;
            v[1] = -a * 0.5f;
            v[2] = a * 0.25f;
            v[3] = -a;
            run_pattern(v, 4);
        }
    }
}
END_TEST

START_TEST(test_nonfinite)
{
    float x[70];
    const size_t n = 70, block = 8;
    int8_t q8[70], q8b[8];
    float s[9], sb, d[70], base[70];

    for (int i = 0; i < 70; i++)
        x[i] = (float)(i - 35) * 0.1f;
    x[9] = INFINITY;             /* block 1 */
    x[30] = -INFINITY;           /* block 3 */
    x[33] = NAN;                 /* block 4 */
    x[69] = -NAN;                /* block 8, the short last one */
    x[40] = f32_of(0x7f800001u); /* block 5: a signalling NaN */
    run_case(x, NULL, n, block, 8);
    run_case(x, NULL, n, block, 4);
    run_case(x, NULL, n, 2, 4);
    run_case(x, NULL, n, 7, 8);
    /* dequantize_add onto NaNs of other payloads: a non-finite block still
     * gives 0x7fc00000, a finite one keeps the accumulator's NaN */
    for (int i = 0; i < 70; i++)
        base[i] = i % 3 == 0 ? f32_of(0xffc12345u) : (float)i;
    run_case(x, base, n, block, 8);
    run_case(x, base, n, block, 4);
    ck_assert_uint_eq(zrt_quantize_i8(x, n, block, q8, s), 5);
    zrt_dequantize_i8(q8, s, n, block, d);
    /* the finite blocks are what they are alone */
    for (size_t b = 0; b < 9; b++) {
        size_t m = n - b * block < block ? n - b * block : block;

        if (isnan(s[b]))
            continue;
        zrt_quantize_i8(x + b * block, m, block, q8b, &sb);
        ck_assert_uint_eq(bits_of(sb), bits_of(s[b]));
        ck_assert_mem_eq(q8b, q8 + b * block, m);
    }
    for (int i = 0; i < 8; i++)
        ck_assert(isnan(d[8 + i]) && isfinite(d[i]) && isfinite(d[16 + i]));
}
END_TEST

/* ---- layout and sizes -------------------------------------------------------- */

START_TEST(test_int4_layout)
{
    /* block 4: {7, -7, 1, -1} has absmax 7, inv 1; {3} alone gives q 7 */
    static const float x[5] = {7.0f, -7.0f, 1.0f, -1.0f, 3.0f};
    uint8_t q[3 + GUARD];
    float s[2];

    for (int p = 0; p < (int)ZRT_QUANT_PATHS; p++) {
        if (!zrt_quant_paths[p].present())
            continue;
        memset(q, SENTINEL, sizeof q);
        ck_assert_uint_eq(zrt_quant_paths[p].quant4(x, 5, 4, q, s), 0);
        ck_assert_uint_eq(q[0], 0x97); /* 7 low, -7 = 0x9 high */
        ck_assert_uint_eq(q[1], 0xf1); /* 1 low, -1 = 0xf high */
        ck_assert_uint_eq(q[2], 0x07); /* 7 low, padding 0 high */
        ck_assert_uint_eq(q[3], SENTINEL);
        ck_assert_float_eq(s[0], 7.0f / 7.0f);
        ck_assert_float_eq(s[1], 3.0f / 7.0f);
    }
}
END_TEST

START_TEST(test_quantized_bytes)
{
    ck_assert_uint_eq(zrt_quantized_bytes(0, 64, 8), 0);
    ck_assert_uint_eq(zrt_quantized_bytes(5, 4, 4), 3 + 2 * 4);
    ck_assert_uint_eq(zrt_quantized_bytes(5, 4, 8), 5 + 2 * 4);
    ck_assert_uint_eq(zrt_quantized_bytes(4096, 256, 8), 4096 + 16 * 4);
    ck_assert_uint_eq(zrt_quantized_bytes(4097, 256, 4), 2049 + 17 * 4);
    ck_assert_uint_eq(zrt_quantized_bytes(1, 1, 8), 1 + 4);
    ck_assert_uint_eq(zrt_quantized_bytes(100, 0, 8), 0);
    ck_assert_uint_eq(zrt_quantized_bytes(100, 4, 3), 0);
    ck_assert_uint_eq(zrt_quantized_bytes(100, 4, 16), 0);
}
END_TEST

/* block 0, and odd int4 blocks: nothing written, 0 returned. */
START_TEST(test_refused)
{
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, NAN};
    unsigned char q[16], sc[16], d[64];

    for (int p = 0; p < (int)ZRT_QUANT_PATHS; p++) {
        if (!zrt_quant_paths[p].present())
            continue;
        memset(q, SENTINEL, sizeof q);
        memset(sc, SENTINEL, sizeof sc);
        memset(d, SENTINEL, sizeof d);
        ck_assert_uint_eq(zrt_quant_paths[p].quant8(x, 9, 0, (int8_t *)q, (float *)sc),
                          0);
        ck_assert_uint_eq(zrt_quant_paths[p].quant4(x, 9, 0, q, (float *)sc), 0);
        ck_assert_uint_eq(zrt_quant_paths[p].quant4(x, 9, 3, q, (float *)sc), 0);
        zrt_quant_paths[p].deq8((int8_t *)q, (float *)sc, 9, 0, (float *)d);
        zrt_quant_paths[p].deq_add8((int8_t *)q, (float *)sc, 9, 0, (float *)d);
        zrt_quant_paths[p].deq4(q, (float *)sc, 9, 0, (float *)d);
        zrt_quant_paths[p].deq4(q, (float *)sc, 9, 3, (float *)d);
        zrt_quant_paths[p].deq_add4(q, (float *)sc, 9, 3, (float *)d);
        for (int i = 0; i < 16; i++)
            ck_assert(q[i] == SENTINEL && sc[i] == SENTINEL);
        for (int i = 0; i < 64; i++)
            ck_assert(d[i] == SENTINEL);
    }
}
END_TEST

/* ---- suite ------------------------------------------------------------------- */

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tr = tcase_create("random");
    TCase *ta = tcase_create("adversarial");

    tcase_set_timeout(tr, 120); /* under valgrind */
    tcase_add_loop_test(tr, test_random, 0, 4 * NBLOCKS);
    suite_add_tcase(s, tr);
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, test_zero_blocks);
    tcase_add_test(ta, test_huge_value);
    tcase_add_test(ta, test_denormals);
    tcase_add_test(ta, test_at_absmax);
    tcase_add_test(ta, test_ties_to_even);
    tcase_add_test(ta, test_flt_max);
    tcase_add_test(ta, test_flush_threshold);
    tcase_add_test(ta, test_nonfinite);
    tcase_add_test(ta, test_int4_layout);
    tcase_add_test(ta, test_quantized_bytes);
    tcase_add_test(ta, test_refused);
    suite_add_tcase(s, ta);
    return s;
}

int main(void)
{
    printf("quant: dispatch uses the %s path\n", zrt_kernels_cpu_path());
    for (int p = 2; p < (int)ZRT_QUANT_PATHS; p++)
        printf("%s path %s\n", zrt_quant_paths[p].name,
               zrt_quant_paths[p].present() ? "tested against the scalar reference"
                                            : "not tested: this CPU lacks it");
    return zrt_check_main(quant_suite());
}
