/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/loss_scale.h — fp16's loss scale: fixed, or DeepSpeed's dynamic
 * scaler (DynamicLossScaler with delayed_shift = hysteresis and
 * consecutive_hysteresis off: the hysteresis refills only when the scale
 * grows).
 *
 * Dynamic: start at 2^initial_scale_power. An overflow skips the step; it
 * halves the scale (never below min_loss_scale) once `hysteresis` overflows
 * have used up the hysteresis, else it only uses one up. After
 * loss_scale_window steps without an overflow since the last one, the scale
 * doubles and the hysteresis refills. Every rank calls update with the same
 * agreed overflow flag, so every rank holds the same scale.
 */
#ifndef ZRT_ZERO_LOSS_SCALE_H
#define ZRT_ZERO_LOSS_SCALE_H

#include "zrt/zrt.h"

typedef struct zrt__loss_scaler {
    int dynamic;
    float scale, min_scale;
    int window, hysteresis, hysteresis_left;
    long iter, last_overflow_iter;
    long skipped; /* steps skipped for an overflow */
} zrt__loss_scaler;

/* From the fp16 section; a scale of 1 that never changes when fp16 is off. */
void zrt__loss_scaler_init(zrt__loss_scaler *s, const zrt_fp16_config *fp16);
/* After each optimizer step's overflow check. Returns 1 when the scale
 * could not go lower: an overflow at min_loss_scale. */
int zrt__loss_scaler_update(zrt__loss_scaler *s, int overflow);

#endif /* ZRT_ZERO_LOSS_SCALE_H */
