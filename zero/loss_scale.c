/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/loss_scale.c — fp16's loss scale (see loss_scale.h for the rules).
 */
#include "loss_scale.h"

#include <math.h>

void zrt__loss_scaler_init(zrt__loss_scaler *s, const zrt_fp16_config *fp16)
{
    *s = (zrt__loss_scaler){.dynamic = 0,
                            .scale = 1.0f,
                            .min_scale = 1.0f,
                            .window = 1,
                            .hysteresis = 1,
                            .hysteresis_left = 1,
                            .last_overflow_iter = -1};
    if (!fp16->enabled)
        return;
    if (fp16->loss_scale > 0.0f) {
        s->scale = fp16->loss_scale;
        return;
    }
    s->dynamic = 1;
    s->scale = ldexpf(1.0f, fp16->initial_scale_power);
    s->min_scale = fp16->min_loss_scale;
    s->window = fp16->loss_scale_window;
    s->hysteresis = s->hysteresis_left = fp16->hysteresis;
}

int zrt__loss_scaler_update(zrt__loss_scaler *s, int overflow)
{
    int at_floor = 0;
    if (overflow)
        s->skipped++;
    if (!s->dynamic) {
        s->iter++;
        return 0;
    }
    if (overflow) {
        if (s->hysteresis == 1 || s->hysteresis_left == 1) {
            at_floor = s->scale <= s->min_scale;
            s->scale = fmaxf(s->scale * 0.5f, s->min_scale);
        } else {
            s->hysteresis_left--;
        }
        s->last_overflow_iter = s->iter;
    } else if ((s->iter - s->last_overflow_iter) % s->window == 0) {
        s->hysteresis_left = s->hysteresis;
        s->scale *= 2.0f;
    }
    s->iter++;
    return at_floor;
}
