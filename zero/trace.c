/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/trace.c — the order of layer entries a step follows (trace.h).
 */
#include "trace.h"

void zrt__trace_enter(zrt__trace *tr, int layer)
{
    if (tr->recording) {
        if (tr->len == tr->cap) {
            tr->recording = 0;
            tr->overflowed = 1;
            return;
        }
        tr->layers[tr->len++] = layer;
        return;
    }
    if (tr->valid && tr->pos < tr->len && tr->layers[tr->pos] == layer)
        tr->pos++;
    else
        tr->valid = 0; /* the loop changed its order: record it again */
}

void zrt__trace_step_end(zrt__trace *tr)
{
    if (tr->recording) {
        tr->valid = tr->len > 0;
        tr->recording = 0;
    } else if (!tr->valid) {
        tr->recording = 1;
        tr->len = 0;
    }
    tr->overflowed = 0;
    tr->pos = 0;
}
