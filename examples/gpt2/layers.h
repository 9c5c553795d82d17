/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/layers.h — forward and backward of GPT-2's building blocks
 * on the CPU: one forward and one backward function per operation, shapes in
 * the comments (B batch, T time, C channels, NH heads, OC output channels,
 * V vocabulary, Vp padded vocabulary). Backward functions add (+=) into
 * their parameter gradients and input gradients, as a training loop that
 * accumulates expects. Matrix products go through CBLAS (OpenBLAS).
 */
#ifndef ZRT_EXAMPLES_GPT2_LAYERS_H
#define ZRT_EXAMPLES_GPT2_LAYERS_H

/* out (B,T,C) = wte[inp] + wpe[t] */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe,
                     int B, int T, int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                      int T, int C);

/* out (N,C) = (x - mean) * rstd * w + b, per row; mean, rstd (N) kept */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) W^T + bias; W (OC,C); bias (OC) or NULL */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC);
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC);

/* inp (B,T,3C) holds q, k, v; out (B,T,C); preatt, att (B,NH,T,T) kept */
void attention_forward(float *out, float *preatt, float *att, const float *inp, int B,
                       int T, int C, int NH);
void attention_backward(float *dinp, float *dpreatt, float *datt, const float *dout,
                        const float *inp, const float *att, int B, int T, int C, int NH);

/* tanh-approximated GELU, element-wise over n */
void gelu_forward(float *out, const float *inp, int n);
void gelu_backward(float *dinp, const float *inp, const float *dout, int n);

/* out = a + b, element-wise; backward adds dout into both */
void residual_forward(float *out, const float *a, const float *b, int n);
void residual_backward(float *da, float *db, const float *dout, int n);

/* probs (N,Vp) = softmax over the first V logits (padded ones get 0);
 * losses (N) = -log probs[target] */
void softmax_crossentropy_forward(float *probs, float *losses, const float *logits,
                                  const int *targets, int N, int V, int Vp);
/* dlogits (N,Vp) = (probs - onehot(target)) * scale; padded ones 0 */
void softmax_crossentropy_backward(float *dlogits, const float *probs, const int *targets,
                                   float scale, int N, int V, int Vp);

#endif
