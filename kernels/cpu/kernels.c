/*
 * kernels/cpu/kernels.c — the scalar reference kernels, the AdamW scalars,
 * and the run-time choice between the AVX-512, AVX2 and scalar paths.
 *
 * The scalar loops define each kernel's result. The AVX-512 and AVX2 paths
 * perform the same correctly rounded operations in the same order per
 * element, so the elementwise kernels give identical bits on every path.
 * That needs FMA contraction off: a fused multiply-add rounds once where the
 * vector path rounds twice. Build with -ffp-contract=off; the pragma below
 * keeps the promise even when a build forgets (gnu11 with -march=native
 * contracts).
 *
 * The widest path the CPU supports wins: AVX512F, else AVX2, else scalar.
 * The CPU is asked on every call (__builtin_cpu_supports reads a table that
 * libgcc fills at load time, OS support for the vector state included), so
 * there is no state here to initialise and nothing to override: the unit test
 * calls each path's zrt__*_avx2 / zrt__*_avx512 function directly.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels.h"
#include "kernels_avx2.h"
#include "kernels_avx512.h"

#include <math.h>

static int use_avx512(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static int use_avx2(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

const char *zrt_kernels_cpu_path(void)
{
    if (use_avx512())
        return "avx512";
    return use_avx2() ? "avx2" : "scalar";
}

zrt_adamw_scalars zrt_adamw_scalars_make(float lr, float beta1, float beta2,
                                         float eps, float weight_decay,
                                         long step)
{
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    zrt_adamw_scalars s;

    s.beta1 = beta1;
    s.one_minus_beta1 = (float)(1.0 - (double)beta1);
    s.beta2 = beta2;
    s.one_minus_beta2 = (float)(1.0 - (double)beta2);
    s.step_size = (float)((double)lr / bc1);
    s.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    s.eps = eps;
    s.decay_factor = (float)(1.0 - (double)lr * (double)weight_decay);
    return s;
}

/* The parenthesisation here is the contract: kernels_avx2.c and
 * kernels_avx512.c repeat it. */
void zrt_adamw_f32_out_scalar(const float *p, float *p_out, const float *g, float *m,
                              float *v, size_t n, const zrt_adamw_scalars *s)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * s->decay_factor;
        float mi = s->beta1 * m[i] + s->one_minus_beta1 * gi;
        float vi = s->beta2 * v[i] + (s->one_minus_beta2 * gi) * gi;
        float denom = sqrtf(vi) * s->inv_sqrt_bc2 + s->eps;

        p_out[i] = pi - (s->step_size * mi) / denom; /* after every read of i */
        m[i] = mi;
        v[i] = vi;
    }
}

void zrt_adamw_f32_scalar(float *p, const float *g, float *m, float *v,
                          size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p, g, m, v, n, s);
}

void zrt_fill_f32_scalar(float *x, size_t n, float value)
{
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

void zrt_scale_f32_scalar(float *x, size_t n, float alpha)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
}

double zrt_sqnorm_f32_scalar(const float *x, size_t n)
{
    double acc = 0.0;

    for (size_t i = 0; i < n; i++)
        acc += (double)x[i] * (double)x[i];
    return acc;
}

void zrt__sum_ordered_f32_range(float *out, const float *const *src, int nsrc,
                                size_t begin, size_t end, float divisor)
{
    for (size_t i = begin; i < end; i++) {
        float acc = src[0][i];

        for (int k = 1; k < nsrc; k++)
            acc += src[k][i];
        if (divisor != 1.0f)
            acc /= divisor;
        out[i] = acc;
    }
}

void zrt_sum_ordered_f32_scalar(float *out, const float *const *src, int nsrc,
                                size_t n, float divisor)
{
    zrt__sum_ordered_f32_range(out, src, nsrc, 0, n, divisor);
}

void zrt_adamw_f32_out(const float *p, float *p_out, const float *g, float *m,
                       float *v, size_t n, const zrt_adamw_scalars *s)
{
    if (use_avx512())
        zrt__adamw_f32_out_avx512(p, p_out, g, m, v, n, s);
    else if (use_avx2())
        zrt__adamw_f32_out_avx2(p, p_out, g, m, v, n, s);
    else
        zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt_adamw_f32(float *p, const float *g, float *m, float *v, size_t n,
                   const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out(p, p, g, m, v, n, s);
}

void zrt_fill_f32(float *x, size_t n, float value)
{
    if (use_avx512())
        zrt__fill_f32_avx512(x, n, value);
    else if (use_avx2())
        zrt__fill_f32_avx2(x, n, value);
    else
        zrt_fill_f32_scalar(x, n, value);
}

void zrt_scale_f32(float *x, size_t n, float alpha)
{
    if (use_avx512())
        zrt__scale_f32_avx512(x, n, alpha);
    else if (use_avx2())
        zrt__scale_f32_avx2(x, n, alpha);
    else
        zrt_scale_f32_scalar(x, n, alpha);
}

double zrt_sqnorm_f32(const float *x, size_t n)
{
    if (use_avx512())
        return zrt__sqnorm_f32_avx512(x, n);
    return use_avx2() ? zrt__sqnorm_f32_avx2(x, n)
                      : zrt_sqnorm_f32_scalar(x, n);
}

void zrt_sum_ordered_f32(float *out, const float *const *src, int nsrc,
                         size_t n, float divisor)
{
    if (use_avx512())
        zrt__sum_ordered_f32_avx512(out, src, nsrc, n, divisor);
    else if (use_avx2())
        zrt__sum_ordered_f32_avx2(out, src, nsrc, n, divisor);
    else
        zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}
