/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/trace.h — the order in which a step enters its layers.
 *
 * Stage 3 records the layers entered during the first step and prefetches
 * along that order afterwards. The engine (engine.c) and the memory plan's
 * simulation of it (memplan.c) follow the same trace, so they share this
 * code. A leaf: it calls nothing of zero/.
 */
#ifndef ZRT_ZERO_TRACE_H
#define ZRT_ZERO_TRACE_H

typedef struct zrt__trace {
    int *layers;
    int len, cap;   /* cap is fixed at finalize */
    int pos;        /* next expected entry */
    int valid;      /* a full step was recorded and is being followed */
    int recording;  /* recording this step */
    int overflowed; /* this step entered more layers than cap */
} zrt__trace;

/* Records `layer` (while recording) or checks it against the recorded order.
 * The trace has a fixed capacity: a loop that enters more layers than that
 * between steps (an evaluation loop, say) simply gets no prefetch. Every
 * rank makes the same calls, so every rank reaches the same decision, which
 * keeps the collectives in one order everywhere. */
void zrt__trace_enter(zrt__trace *tr, int layer);
/* At the end of a step: a recording becomes the order to follow; an order
 * the loop left is recorded again in the next step. */
void zrt__trace_step_end(zrt__trace *tr);

#endif /* ZRT_ZERO_TRACE_H */
