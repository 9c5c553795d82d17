/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/layers.c — GPT-2 operations on the CPU (see layers.h).
 * Written after llm.c's train_gpt2.c: the same mathematics, plain loops for
 * everything but the matrix products, which go to CBLAS.
 */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe,
                     int B, int T, int C)
{
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *tok = wte + (size_t)inp[b * T + t] * C;
            const float *pos = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++)
                o[i] = tok[i] + pos[i];
        }
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                      int T, int C)
{
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dtok = dwte + (size_t)inp[b * T + t] * C;
            float *dpos = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                dtok[i] += d[i];
                dpos[i] += d[i];
            }
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C)
{
    const float eps = 1e-5f;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= (float)C;
        float var = 0.0f;
        for (int i = 0; i < C; i++)
            var += (x[i] - m) * (x[i] - m);
        var /= (float)C;
        float s = 1.0f / sqrtf(var + eps);
        float *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++)
            o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C;
        const float *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        /* the two reductions of the layernorm gradient */
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = w[i] * d[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = w[i] * d[i];
            db[i] += d[i];
            dw[i] += norm * d[i];
            dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C,
                0.0f, out, OC);
    if (!bias)
        return;
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++)
            o[j] += bias[j];
    }
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC)
{
    /* dinp (N,C) += dout (N,OC) W (OC,C) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                1.0f, dinp, C);
    /* dW (OC,C) += dout^T (OC,N) inp (N,C) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                1.0f, dw, C);
    if (!dbias)
        return;
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC;
        for (int j = 0; j < OC; j++)
            dbias[j] += d[j];
    }
}

/* One (b, t, h) query: scores over t2 <= t, softmax, weighted sum of v. */
static void attend_one(float *out, float *preatt, float *att, const float *inp, int b,
                       int t, int h, int T, int C, int NH)
{
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    const float *q = inp + ((size_t)b * T + t) * C3 + h * hs;
    float maxv = -INFINITY;
    for (int t2 = 0; t2 <= t; t2++) {
        const float *k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
        float dot = 0.0f;
        for (int i = 0; i < hs; i++)
            dot += q[i] * k[i];
        preatt[t2] = dot * scale;
        maxv = preatt[t2] > maxv ? preatt[t2] : maxv;
    }
    float sum = 0.0f;
    for (int t2 = 0; t2 <= t; t2++) {
        att[t2] = expf(preatt[t2] - maxv);
        sum += att[t2];
    }
    for (int t2 = 0; t2 < T; t2++)
        att[t2] = t2 <= t ? att[t2] / sum : 0.0f;
    float *o = out + ((size_t)b * T + t) * C + h * hs;
    memset(o, 0, (size_t)hs * sizeof *o);
    for (int t2 = 0; t2 <= t; t2++) {
        const float *v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
        for (int i = 0; i < hs; i++)
            o[i] += att[t2] * v[i];
    }
}

void attention_forward(float *out, float *preatt, float *att, const float *inp, int B,
                       int T, int C, int NH)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                size_t row = (((size_t)b * NH + h) * T + t) * T;
                attend_one(out, preatt + row, att + row, inp, b, t, h, T, C, NH);
            }
}

static void attend_one_backward(float *dinp, float *dpreatt, float *datt,
                                const float *dout, const float *inp, const float *att,
                                int b, int t, int h, int T, int C, int NH)
{
    int C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    const float *q = inp + ((size_t)b * T + t) * C3 + h * hs;
    float *dq = dinp + ((size_t)b * T + t) * C3 + h * hs;
    const float *d = dout + ((size_t)b * T + t) * C + h * hs;
    /* through the weighted sum of values */
    for (int t2 = 0; t2 <= t; t2++) {
        const float *v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
        float *dv = dinp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
        for (int i = 0; i < hs; i++) {
            datt[t2] += v[i] * d[i];
            dv[i] += att[t2] * d[i];
        }
    }
    /* through the softmax: dpre = att * (datt - sum(att * datt)) */
    float dot = 0.0f;
    for (int t2 = 0; t2 <= t; t2++)
        dot += att[t2] * datt[t2];
    for (int t2 = 0; t2 <= t; t2++)
        dpreatt[t2] += att[t2] * (datt[t2] - dot);
    /* through the scaled dot product */
    for (int t2 = 0; t2 <= t; t2++) {
        const float *k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
        float *dk = dinp + ((size_t)b * T + t2) * C3 + C + h * hs;
        for (int i = 0; i < hs; i++) {
            dq[i] += k[i] * dpreatt[t2] * scale;
            dk[i] += q[i] * dpreatt[t2] * scale;
        }
    }
}

void attention_backward(float *dinp, float *dpreatt, float *datt, const float *dout,
                        const float *inp, const float *att, int B, int T, int C, int NH)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                size_t row = (((size_t)b * NH + h) * T + t) * T;
                attend_one_backward(dinp, dpreatt + row, datt + row, dout, inp, att + row,
                                    b, t, h, T, C, NH);
            }
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

void gelu_forward(float *out, const float *inp, int n)
{
    for (int i = 0; i < n; i++) {
        float x = inp[i];
        float cube = 0.044715f * x * x * x;
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube)));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int n)
{
    for (int i = 0; i < n; i++) {
        float x = inp[i];
        float cube = 0.044715f * x * x * x;
        float arg = GELU_SCALE * (x + cube);
        float th = tanhf(arg);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) +
                     0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += grad * dout[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, int n)
{
    for (int i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void softmax_crossentropy_forward(float *probs, float *losses, const float *logits,
                                  const int *targets, int N, int V, int Vp)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * Vp;
        float *p = probs + (size_t)n * Vp;
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++)
            maxv = l[v] > maxv ? l[v] : maxv;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            p[v] = expf(l[v] - maxv);
            sum += p[v];
        }
        for (int v = 0; v < Vp; v++)
            p[v] = v < V ? p[v] / sum : 0.0f;
        losses[n] = -logf(p[targets[n]]);
    }
}

void softmax_crossentropy_backward(float *dlogits, const float *probs, const int *targets,
                                   float scale, int N, int V, int Vp)
{
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * Vp;
        float *d = dlogits + (size_t)n * Vp;
        for (int v = 0; v < Vp; v++) {
            float indicator = v == targets[n] ? 1.0f : 0.0f;
            d[v] = v < V ? (p[v] - indicator) * scale : 0.0f;
        }
    }
}
