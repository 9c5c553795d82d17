/* SPDX-License-Identifier: Apache-2.0 */
/* tests/consumer/main.c — a program outside the zrt tree, built against an
 * installed zrt through find_package(zrt) and through pkg-config. */
#include <stdio.h>
#include <zrt/zrt.h>

int main(void)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.stage = 3;
    zrt_ctx *ctx;
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK)
        return 1;
    zrt_param p;
    zrt_param_desc d = {.name = "w", .ndim = 1, .shape = {10}, .dtype = ZRT_F32};
    zrt_status st = zrt_param_register(ctx, &d, &p);
    if (st == ZRT_OK)
        st = zrt_finalize_params(ctx);
    int rank = -1;
    zrt_rank(ctx, &rank);
    printf("consumer rank %d: %s\n", rank, zrt_status_str(st));
    return zrt_ctx_destroy(ctx) == ZRT_OK && st == ZRT_OK ? 0 : 1;
}
