/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_loss_scale.c — the fp16 loss scaler follows DeepSpeed's
 * DynamicLossScaler step by step: hysteresis before halving, doubling after
 * a window without overflow, the floor, and a fixed scale that never moves.
 */
#include "../common/test_check.h"
#include <stdlib.h>

#include "zero/loss_scale.h"

static zrt_fp16_config deepspeed_defaults(void)
{
    return (zrt_fp16_config){.enabled = 1,
                             .loss_scale = 0.0f,
                             .initial_scale_power = 16,
                             .loss_scale_window = 1000,
                             .hysteresis = 2,
                             .min_loss_scale = 1.0f};
}

START_TEST(starts_at_two_to_the_power)
{
    zrt_fp16_config c = deepspeed_defaults();
    zrt__loss_scaler s;
    zrt__loss_scaler_init(&s, &c);
    ck_assert_float_eq(s.scale, 65536.0f);
    c.enabled = 0;
    zrt__loss_scaler_init(&s, &c);
    ck_assert_float_eq(s.scale, 1.0f);
    ck_assert_int_eq(zrt__loss_scaler_update(&s, 1), 0);
    ck_assert_float_eq(s.scale, 1.0f);
}
END_TEST

/* With hysteresis 2 the first overflow only uses the hysteresis up; the
 * second halves; later overflows halve until the hysteresis refills. */
START_TEST(hysteresis_then_halving)
{
    zrt_fp16_config c = deepspeed_defaults();
    zrt__loss_scaler s;
    zrt__loss_scaler_init(&s, &c);
    zrt__loss_scaler_update(&s, 1);
    ck_assert_float_eq(s.scale, 65536.0f);
    zrt__loss_scaler_update(&s, 1);
    ck_assert_float_eq(s.scale, 32768.0f);
    zrt__loss_scaler_update(&s, 0);
    zrt__loss_scaler_update(&s, 1);
    ck_assert_float_eq(s.scale, 16384.0f); /* no refill without growth */
    ck_assert_int_eq(s.skipped, 3);
    c.hysteresis = 1;
    zrt__loss_scaler_init(&s, &c);
    zrt__loss_scaler_update(&s, 1);
    ck_assert_float_eq(s.scale, 32768.0f);
}
END_TEST

/* DeepSpeed doubles when (iter - last_overflow_iter) % window == 0: from
 * the start (last_overflow_iter = -1) the first growth is at iter 999,
 * after an overflow at iter k it is at iter k + window. */
START_TEST(doubles_after_a_clean_window)
{
    zrt_fp16_config c = deepspeed_defaults();
    c.loss_scale_window = 4;
    zrt__loss_scaler s;
    zrt__loss_scaler_init(&s, &c);
    float expect[] = {65536, 65536, 65536, 131072, 131072, 131072, 131072, 262144};
    for (int i = 0; i < 8; i++) {
        zrt__loss_scaler_update(&s, 0);
        ck_assert_float_eq(s.scale, expect[i]);
    }
    zrt__loss_scaler_update(&s, 1); /* iter 8: hysteresis 2 -> 1 */
    zrt__loss_scaler_update(&s, 1); /* iter 9: halves */
    ck_assert_float_eq(s.scale, 131072.0f);
    for (int i = 10; i < 13; i++)
        zrt__loss_scaler_update(&s, 0);
    ck_assert_float_eq(s.scale, 131072.0f);
    zrt__loss_scaler_update(&s, 0); /* iter 13 = 9 + 4 */
    ck_assert_float_eq(s.scale, 262144.0f);
    ck_assert_int_eq(s.hysteresis_left, 2);
}
END_TEST

START_TEST(floor_and_fixed_scale)
{
    zrt_fp16_config c = deepspeed_defaults();
    c.initial_scale_power = 1;
    c.hysteresis = 1;
    zrt__loss_scaler s;
    zrt__loss_scaler_init(&s, &c);
    ck_assert_int_eq(zrt__loss_scaler_update(&s, 1), 0);
    ck_assert_float_eq(s.scale, 1.0f);
    ck_assert_int_eq(zrt__loss_scaler_update(&s, 1), 1); /* at the floor */
    ck_assert_float_eq(s.scale, 1.0f);
    c.loss_scale = 128.0f;
    zrt__loss_scaler_init(&s, &c);
    for (int i = 0; i < 3000; i++)
        zrt__loss_scaler_update(&s, i % 7 == 0);
    ck_assert_float_eq(s.scale, 128.0f);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE(
        "loss_scale", 0, starts_at_two_to_the_power, hysteresis_then_halving,
        doubles_after_a_clean_window, floor_and_fixed_scale));
}
