/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/cuda/test_cuda_kernels.c — every kernel of kernels/cuda against the
 * kernels/cpu scalar references on random data.
 *
 * Lengths 0, 1, 7 and 1000003 (an odd count: the grid-stride tails and the
 * reductions' partial blocks). Elementwise results must equal the CPU's bit
 * for bit; the only latitude is NaN payloads where arithmetic meets a NaN
 * input (the GPU answers the canonical NaN; casts are compared strictly).
 * Squared norms are reductions in another order: within a relative 1e-6.
 *
 * Exit status: 0 all passed, 1 a check failed (or a CUDA call did), 77 no
 * CUDA device (cudaGetDeviceCount fails or reports none), which ctest shows
 * as skipped. Before that check the test prints the cuBLAS and NCCL versions
 * it was linked against, so a machine without a GPU still proves that both
 * libraries link and load.
 *
 * A plain program rather than a Check suite: Check forks each test, and a
 * CUDA context does not survive fork.
 */
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels_cuda.h"

#include <cuda_runtime_api.h>
#if ZRT_TEST_CUBLAS
#include <cublas_v2.h>
#endif
#if ZRT_TEST_NCCL
#include <nccl.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_common.h"

static cudaStream_t stream;
static test_rng rng = {0x9e3779b97f4a7c15ull};

/* ---- random data ---------------------------------------------------------- */

/* f32 values for the casts and the arithmetic: raw bit patterns (NaN, inf,
 * subnormals), exact 16-bit values, exact midpoints between 16-bit
 * neighbours (the ties), and values over the 16-bit formats' range. */
static void fill_mixed_f32(float *x, size_t n, zrt_half h)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t q = (uint16_t)test_rng_u32(&rng);

        switch (test_rng_u32(&rng) % 4) {
        case 0:
            x[i] = test_f32_of(test_rng_u32(&rng));
            break;
        case 1:
            x[i] = zrt_half_to_f32(q, h);
            break;
        case 2: /* half an ulp above a 16-bit value: an exact tie */
            x[i] = zrt_half_to_f32(q, h);
            if (h == ZRT_HALF_F16 && fabsf(x[i]) < 0x1p-14f) /* subnormal, zero */
                x[i] += copysignf(0x1p-25f, x[i]);
            else if (isfinite(x[i]))
                x[i] = test_f32_of(test_bits_of(x[i]) |
                                   (h == ZRT_HALF_BF16 ? 0x8000u : 0x1000u));
            break;
        default:
            x[i] = ldexpf(test_rng_unit(&rng), (int)(test_rng_u32(&rng) % 60) - 40);
            break;
        }
    }
}

/* finite values, |x| < 2^20 */
static void fill_finite_f32(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ldexpf(test_rng_unit(&rng), (int)(test_rng_u32(&rng) % 40) - 20);
}

/* random 16-bit patterns; finite ones only when finite != 0 */
static void fill_half(uint16_t *x, size_t n, zrt_half h, int finite)
{
    for (size_t i = 0; i < n; i++) {
        do
            x[i] = (uint16_t)test_rng_u32(&rng);
        while (finite && test_half_nonfinite(x[i], h == ZRT_HALF_BF16));
    }
}

/* ---- device buffers --------------------------------------------------------- */

static void *dev_alloc(size_t bytes)
{
    void *d;

    TEST_CUDA(cudaMalloc(&d, bytes ? bytes : 1));
    return d;
}

static void *dev_copy(const void *host, size_t bytes)
{
    void *d = dev_alloc(bytes);

    if (bytes)
        TEST_CUDA(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* waits for the stream (a kernel's fault shows here), then copies back */
static void to_host(void *host, const void *d, size_t bytes)
{
    TEST_CUDA(cudaStreamSynchronize(stream));
    if (bytes)
        TEST_CUDA(cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
}

/* ---- comparisons ------------------------------------------------------------ */

static void check_f32(const char *what, size_t n, const float *got, const float *want,
                      int nan_ok)
{
    size_t bad = 0, first = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t a = test_bits_of(got[i]), b = test_bits_of(want[i]);

        if (a != b && !(nan_ok && isnan(got[i]) && isnan(want[i])) && !bad++)
            first = i;
    }
    if (bad)
        TEST_FAIL("%s n=%zu: %zu differ, first [%zu] got 0x%08x want 0x%08x", what, n,
                  bad, first, test_bits_of(got[first]), test_bits_of(want[first]));
}

static void check_u16(const char *what, size_t n, const uint16_t *got,
                      const uint16_t *want, zrt_half h, int nan_ok)
{
    size_t bad = 0, first = 0;
    int bf16 = h == ZRT_HALF_BF16;

    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] &&
            !(nan_ok && test_half_nan(got[i], bf16) && test_half_nan(want[i], bf16)) &&
            !bad++)
            first = i;
    if (bad)
        TEST_FAIL("%s n=%zu: %zu differ, first [%zu] got 0x%04x want 0x%04x", what, n,
                  bad, first, got[first], want[first]);
}

static void check_norm(const char *what, size_t n, double got, double want)
{
    double err = fabs(got - want), tol = 1e-6 * fabs(want);

    if (!(err <= tol)) /* also catches NaN */
        TEST_FAIL("%s n=%zu: got %.17g want %.17g (rel %.3g)", what, n, got, want,
                  want != 0.0 ? err / fabs(want) : err);
}

static const char *hname(zrt_half h)
{
    return h == ZRT_HALF_BF16 ? "bf16" : "fp16";
}

/* ---- f32 kernels ------------------------------------------------------------- */

static void test_f32(size_t n)
{
    size_t b = n * sizeof(float);
    float *x = test_xmalloc(b), *y = test_xmalloc(b), *want = test_xmalloc(b),
          *got = test_xmalloc(b);
    const float *src[2];
    float *dx, *dy;
    double *dnorm, norm;
    int *dflag, flag;
    float value = test_rng_unit(&rng);

    dnorm = dev_alloc(ZRT_CUDA_SQNORM_SLOTS * sizeof(double));
    dflag = dev_alloc(sizeof(int));

    /* fill */
    dx = dev_alloc(b);
    zrt_fill_f32_scalar(want, n, value);
    TEST_CUDA(zrt_cuda_fill_f32(dx, n, value, stream));
    to_host(got, dx, b);
    check_f32("fill_f32", n, got, want, 0);
    TEST_CUDA(cudaFree(dx));

    /* scale: NaN/inf/subnormal inputs included */
    fill_mixed_f32(x, n, ZRT_HALF_F16);
    memcpy(want, x, b);
    zrt_scale_f32_scalar(want, n, 0.37f);
    dx = dev_copy(x, b);
    TEST_CUDA(zrt_cuda_scale_f32(dx, n, 0.37f, stream));
    to_host(got, dx, b);
    check_f32("scale_f32", n, got, want, 1);
    TEST_CUDA(cudaFree(dx));

    /* add, separate and aliased */
    fill_mixed_f32(x, n, ZRT_HALF_BF16);
    fill_mixed_f32(y, n, ZRT_HALF_F16);
    src[0] = x;
    src[1] = y;
    zrt_sum_ordered_f32_scalar(want, src, 2, n, 1.0f);
    dx = dev_copy(x, b);
    dy = dev_copy(y, b);
    TEST_CUDA(zrt_cuda_add_f32(dx, dy, n, stream));
    to_host(got, dx, b);
    check_f32("add_f32", n, got, want, 1);
    src[1] = x;
    zrt_sum_ordered_f32_scalar(want, src, 2, n, 1.0f);
    TEST_CUDA(cudaMemcpy(dx, x, b, cudaMemcpyHostToDevice));
    TEST_CUDA(zrt_cuda_add_f32(dx, dx, n, stream));
    to_host(got, dx, b);
    check_f32("add_f32 (dst == src)", n, got, want, 1);
    TEST_CUDA(cudaFree(dy));

    /* squared norm and all_finite on finite data */
    fill_finite_f32(x, n);
    TEST_CUDA(cudaMemcpy(dx, x, b, cudaMemcpyHostToDevice));
    TEST_CUDA(zrt_cuda_sqnorm_f32(dx, n, dnorm, stream));
    to_host(&norm, dnorm, sizeof norm);
    check_norm("sqnorm_f32", n, norm, zrt_sqnorm_f32_scalar(x, n));
    TEST_CUDA(zrt_cuda_all_finite_f32(dx, n, dflag, stream));
    to_host(&flag, dflag, sizeof flag);
    if (flag != 1)
        TEST_FAIL("all_finite_f32 n=%zu: finite data gives %d", n, flag);
    for (int k = 0; k < 3 && n > 0; k++) { /* first, middle, last */
        size_t at = k == 0 ? 0 : k == 1 ? n / 2 : n - 1;
        float bad = test_f32_of(k == 1 ? 0x7fc00001u : 0xff800000u); /* NaN, -inf */

        TEST_CUDA(cudaMemcpy(dx + at, &bad, sizeof bad, cudaMemcpyHostToDevice));
        TEST_CUDA(zrt_cuda_all_finite_f32(dx, n, dflag, stream));
        to_host(&flag, dflag, sizeof flag);
        if (flag != 0)
            TEST_FAIL("all_finite_f32 n=%zu: non-finite at %zu missed", n, at);
        TEST_CUDA(cudaMemcpy(dx + at, x + at, sizeof(float), cudaMemcpyHostToDevice));
    }
    TEST_CUDA(cudaFree(dx));

    /* AdamW, 3 steps in place, then 1 step into a separate p_out */
    {
        float *p = test_xmalloc(b), *g = test_xmalloc(b), *m = test_xmalloc(b),
              *v = test_xmalloc(b);
        float *dp, *dg, *dm, *dv, *dpo;

        for (size_t i = 0; i < n; i++) {
            p[i] = test_rng_unit(&rng);
            m[i] = 0.1f * test_rng_unit(&rng);
            v[i] = 0.01f * fabsf(test_rng_unit(&rng));
        }
        dp = dev_copy(p, b);
        dm = dev_copy(m, b);
        dv = dev_copy(v, b);
        dg = dev_alloc(b);
        for (long t = 1; t <= 4; t++) {
            zrt_adamw_scalars s =
                zrt_adamw_scalars_make(1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, t);

            fill_finite_f32(g, n);
            if (n > 2) {
                g[0] = 0.0f;
                g[1] = test_f32_of(0x00000301u); /* subnormal */
            }
            if (b)
                TEST_CUDA(cudaMemcpy(dg, g, b, cudaMemcpyHostToDevice));
            if (t < 4) {
                zrt_adamw_f32_scalar(p, g, m, v, n, &s);
                TEST_CUDA(zrt_cuda_adamw_f32(dp, dg, dm, dv, n, &s, stream));
                to_host(got, dp, b);
                check_f32("adamw_f32 p", n, got, p, 0);
            } else {
                zrt_adamw_f32_out_scalar(p, want, g, m, v, n, &s);
                dpo = dev_alloc(b);
                TEST_CUDA(zrt_cuda_adamw_f32_out(dp, dpo, dg, dm, dv, n, &s, stream));
                to_host(got, dpo, b);
                check_f32("adamw_f32_out p_out", n, got, want, 0);
                to_host(got, dp, b);
                check_f32("adamw_f32_out p unchanged", n, got, p, 0);
                TEST_CUDA(cudaFree(dpo));
            }
            to_host(got, dm, b);
            check_f32("adamw_f32 m", n, got, m, 0);
            to_host(got, dv, b);
            check_f32("adamw_f32 v", n, got, v, 0);
        }
        TEST_CUDA(cudaFree(dp));
        TEST_CUDA(cudaFree(dg));
        TEST_CUDA(cudaFree(dm));
        TEST_CUDA(cudaFree(dv));
        free(p);
        free(g);
        free(m);
        free(v);
    }

    TEST_CUDA(cudaFree(dnorm));
    TEST_CUDA(cudaFree(dflag));
    free(x);
    free(y);
    free(want);
    free(got);
}

/* ---- 16-bit kernels ---------------------------------------------------------- */

static void test_half_arith(size_t n, zrt_half h)
{
    size_t b16 = n * 2, b32 = n * 4;
    float *f = test_xmalloc(b32), *fgot = test_xmalloc(b32);
    uint16_t *x = test_xmalloc(b16), *y = test_xmalloc(b16), *want = test_xmalloc(b16),
             *got = test_xmalloc(b16);
    float *df;
    uint16_t *dx, *dy;
    double *dnorm, norm;
    int *dflag, flag;
    char what[64];

    dnorm = dev_alloc(ZRT_CUDA_SQNORM_SLOTS * sizeof(double));
    dflag = dev_alloc(sizeof(int));

    /* f32 -> 16 bits: strict, NaNs included */
    fill_mixed_f32(f, n, h);
    zrt_cast_f32_to_half_scalar(want, f, n, h);
    df = dev_copy(f, b32);
    dx = dev_alloc(b16);
    TEST_CUDA(zrt_cuda_cast_f32_to_half(dx, df, n, h, stream));
    to_host(got, dx, b16);
    snprintf(what, sizeof what, "cast_f32_to_half %s", hname(h));
    check_u16(what, n, got, want, h, 0);

    /* 16 bits -> f32: strict, every kind of pattern */
    fill_half(x, n, h, 0);
    zrt_cast_half_to_f32_scalar(f, x, n, h);
    if (b16)
        TEST_CUDA(cudaMemcpy(dx, x, b16, cudaMemcpyHostToDevice));
    TEST_CUDA(zrt_cuda_cast_half_to_f32(df, dx, n, h, stream));
    to_host(fgot, df, b32);
    snprintf(what, sizeof what, "cast_half_to_f32 %s", hname(h));
    check_f32(what, n, fgot, f, 0);

    /* add (separate, aliased) and scale */
    fill_half(y, n, h, 0);
    memcpy(want, x, b16);
    zrt_add_half_scalar(want, y, n, h);
    dy = dev_copy(y, b16);
    TEST_CUDA(zrt_cuda_add_half(dx, dy, n, h, stream));
    to_host(got, dx, b16);
    snprintf(what, sizeof what, "add_half %s", hname(h));
    check_u16(what, n, got, want, h, 1);
    memcpy(want, y, b16);
    zrt_add_half_scalar(want, want, n, h);
    TEST_CUDA(zrt_cuda_add_half(dy, dy, n, h, stream));
    to_host(got, dy, b16);
    snprintf(what, sizeof what, "add_half %s (dst == src)", hname(h));
    check_u16(what, n, got, want, h, 1);
    memcpy(want, x, b16);
    zrt_scale_half_scalar(want, n, 0.37f, h);
    if (b16)
        TEST_CUDA(cudaMemcpy(dx, x, b16, cudaMemcpyHostToDevice));
    TEST_CUDA(zrt_cuda_scale_half(dx, n, 0.37f, h, stream));
    to_host(got, dx, b16);
    snprintf(what, sizeof what, "scale_half %s", hname(h));
    check_u16(what, n, got, want, h, 1);

    /* squared norm and all_finite on finite patterns */
    fill_half(x, n, h, 1);
    if (b16)
        TEST_CUDA(cudaMemcpy(dx, x, b16, cudaMemcpyHostToDevice));
    TEST_CUDA(zrt_cuda_sqnorm_half(dx, n, h, dnorm, stream));
    to_host(&norm, dnorm, sizeof norm);
    snprintf(what, sizeof what, "sqnorm_half %s", hname(h));
    check_norm(what, n, norm, zrt_sqnorm_half_scalar(x, n, h));
    TEST_CUDA(zrt_cuda_all_finite_half(dx, n, h, dflag, stream));
    to_host(&flag, dflag, sizeof flag);
    if (flag != 1 || !zrt_all_finite_half_scalar(x, n, h))
        TEST_FAIL("all_finite_half %s n=%zu: finite data gives %d", hname(h), n, flag);
    for (int k = 0; k < 3 && n > 0; k++) {
        size_t at = k == 0 ? 0 : k == 1 ? n / 2 : n - 1;
        uint16_t bad = h == ZRT_HALF_BF16 ? (k == 1 ? 0x7fc1u : 0xff80u)
                                          : (k == 1 ? 0x7e01u : 0xfc00u);

        TEST_CUDA(cudaMemcpy(dx + at, &bad, 2, cudaMemcpyHostToDevice));
        TEST_CUDA(zrt_cuda_all_finite_half(dx, n, h, dflag, stream));
        to_host(&flag, dflag, sizeof flag);
        if (flag != 0)
            TEST_FAIL("all_finite_half %s n=%zu: non-finite at %zu missed", hname(h), n,
                      at);
        TEST_CUDA(cudaMemcpy(dx + at, x + at, 2, cudaMemcpyHostToDevice));
    }

    TEST_CUDA(cudaFree(df));
    TEST_CUDA(cudaFree(dx));
    TEST_CUDA(cudaFree(dy));
    TEST_CUDA(cudaFree(dnorm));
    TEST_CUDA(cudaFree(dflag));
    free(f);
    free(fgot);
    free(x);
    free(y);
    free(want);
    free(got);
}

/* Mixed AdamW: 2 steps per grad_scale, 16-bit gradients then f32 ones;
 * p_out separate on the first step and over g on the second. */
static void test_half_adamw(size_t n, zrt_half h)
{
    static const float scales[] = {1.0f, 0x1p-10f, 1.0f / 3.0f};
    size_t b16 = n * 2, b32 = n * 4;
    float *ms = test_xmalloc(b32), *m = test_xmalloc(b32), *v = test_xmalloc(b32),
          *g32 = test_xmalloc(b32), *fgot = test_xmalloc(b32);
    uint16_t *g = test_xmalloc(b16), *pout = test_xmalloc(b16), *got = test_xmalloc(b16);
    float *dms, *dm, *dv, *dg32;
    uint16_t *dg, *dpo;
    char what[96];
    long t = 0;

    for (size_t i = 0; i < n; i++) {
        ms[i] = test_rng_unit(&rng);
        m[i] = 0.1f * test_rng_unit(&rng);
        v[i] = 0.01f * fabsf(test_rng_unit(&rng));
    }
    dms = dev_copy(ms, b32);
    dm = dev_copy(m, b32);
    dv = dev_copy(v, b32);
    dg32 = dev_alloc(b32);
    dg = dev_alloc(b16);
    dpo = dev_alloc(b16);

    for (int f32grad = 0; f32grad < 2; f32grad++) {
        for (int si = 0; si < 3; si++) {
            for (int over_g = 0; over_g < 2 - f32grad; over_g++) {
                zrt_adamw_scalars s =
                    zrt_adamw_scalars_make(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, ++t);
                float gs = scales[si];
                uint16_t *dout = over_g ? dg : dpo;

                fill_finite_f32(g32, n);
                zrt_cast_f32_to_half_scalar(g, g32, n, h);
                if (f32grad) {
                    zrt_adamw_mixed_f32grad_scalar(ms, pout, g32, m, v, n, gs, &s, h);
                    if (b32)
                        TEST_CUDA(cudaMemcpy(dg32, g32, b32, cudaMemcpyHostToDevice));
                    TEST_CUDA(zrt_cuda_adamw_mixed_f32grad(dms, dout, dg32, dm, dv, n, gs,
                                                           &s, h, stream));
                } else {
                    zrt_adamw_mixed_scalar(ms, pout, g, m, v, n, gs, &s, h);
                    if (b16)
                        TEST_CUDA(cudaMemcpy(dg, g, b16, cudaMemcpyHostToDevice));
                    TEST_CUDA(zrt_cuda_adamw_mixed(dms, dout, dg, dm, dv, n, gs, &s, h,
                                                   stream));
                }
                snprintf(what, sizeof what, "adamw_mixed%s %s scale %g%s",
                         f32grad ? "_f32grad" : "", hname(h), (double)gs,
                         over_g ? " p_out == g" : "");
                to_host(got, dout, b16);
                check_u16(what, n, got, pout, h, 0);
                to_host(fgot, dms, b32);
                check_f32(what, n, fgot, ms, 0);
                to_host(fgot, dm, b32);
                check_f32(what, n, fgot, m, 0);
                to_host(fgot, dv, b32);
                check_f32(what, n, fgot, v, 0);
            }
        }
    }
    TEST_CUDA(cudaFree(dms));
    TEST_CUDA(cudaFree(dm));
    TEST_CUDA(cudaFree(dv));
    TEST_CUDA(cudaFree(dg32));
    TEST_CUDA(cudaFree(dg));
    TEST_CUDA(cudaFree(dpo));
    free(ms);
    free(m);
    free(v);
    free(g32);
    free(fgot);
    free(g);
    free(pout);
    free(got);
}

/* ---- main --------------------------------------------------------------------- */

static void print_linked(void)
{
#if ZRT_TEST_CUBLAS
    int major = 0, minor = 0, patch = 0;

    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    printf("cuBLAS %d.%d.%d linked\n", major, minor, patch);
#else
    printf("cuBLAS not linked (not found at configure time)\n");
#endif
#if ZRT_TEST_NCCL
    {
        int version = 0;

        ncclGetVersion(&version); /* major * 10000 + minor * 100 + patch */
        printf("NCCL %d.%d.%d linked\n", version / 10000, version / 100 % 100,
               version % 100);
    }
#else
    printf("NCCL not linked (not found at configure time)\n");
#endif
}

int main(void)
{
    static const size_t lengths[] = {0, 1, 7, 1000003};
    struct cudaDeviceProp prop;
    int count = 0, rc;

    print_linked();
    rc = (int)cudaGetDeviceCount(&count);
    if (rc != 0) {
        printf("no CUDA device: cudaGetDeviceCount failed: %s (%s, %d); "
               "the CUDA kernels were compiled, not run\n",
               cudaGetErrorName((cudaError_t)rc), cudaGetErrorString((cudaError_t)rc),
               rc);
        return ZRT_TEST_SKIP;
    }
    if (count == 0) {
        printf("no CUDA device: cudaGetDeviceCount reports 0 devices; "
               "the CUDA kernels were compiled, not run\n");
        return ZRT_TEST_SKIP;
    }
    TEST_CUDA(cudaSetDevice(0));
    TEST_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("device 0: %s (sm_%d%d), %d device(s)\n", prop.name, prop.major, prop.minor,
           count);
    TEST_CUDA(cudaStreamCreate(&stream));

    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        size_t n = lengths[k];
        int before = test_failures;

        test_f32(n);
        for (int hh = 0; hh < 2; hh++) {
            zrt_half h = hh ? ZRT_HALF_F16 : ZRT_HALF_BF16;

            test_half_arith(n, h);
            test_half_adamw(n, h);
        }
        printf("n=%zu: %s\n", n,
               test_failures == before ? "all kernels match the CPU" : "FAILED");
    }
    /* an invalid format is refused, not launched */
    if (zrt_cuda_scale_half(NULL, 1, 1.0f, (zrt_half)7, stream) !=
        (int)cudaErrorInvalidValue)
        TEST_FAIL("scale_half accepted an invalid zrt_half");

    TEST_CUDA(cudaStreamDestroy(stream));
    return test_exit_code("test_cuda_kernels");
}
