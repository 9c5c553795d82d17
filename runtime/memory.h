/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/memory.h — accounting of every byte the runtime holds.
 *
 * Each backend allocation is charged to a (tier, category) pair before it is
 * made and released when it is freed. The account keeps current and peak
 * bytes per pair and per tier, and enforces a per-tier limit: the cpu backend
 * plays a device of `device_mem_limit` bytes with it. When a charge would pass
 * the limit, the error sentence names the category, the bytes asked, the
 * budget left and the biggest holders, so "why did this not fit" answers
 * itself.
 */
#ifndef ZRT_RUNTIME_MEMORY_H
#define ZRT_RUNTIME_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "zrt/zrt.h"

/* What the runtime is doing when it allocates: the phases a memory report's
 * timeline and peaks are labelled with. */
typedef enum zrt__phase_kind {
    ZRT__PHASE_INIT = 0, /* zrt_finalize_params */
    ZRT__PHASE_LOOP,     /* between layer calls: the training loop's own work */
    ZRT__PHASE_FORWARD,  /* inside zrt_forward_begin/end of `layer` */
    ZRT__PHASE_BACKWARD, /* inside zrt_backward_begin/end of `layer` */
    ZRT__PHASE_REDUCE,   /* completing the gradient reduction of `layer` */
    ZRT__PHASE_STEP,     /* zrt_step */
    ZRT__PHASE_SWAP,     /* reading `layer`'s parameter shard from NVMe */
    ZRT__PHASE_COUNT
} zrt__phase_kind;

typedef struct zrt__phase {
    int kind;  /* zrt__phase_kind */
    int layer; /* -1 when the phase has none */
    long step; /* the step in progress, from 1 */
} zrt__phase;

/* "backward layer 3"; "step" */
const char *zrt__phase_kind_str(int kind);
void zrt__phase_format(const zrt__phase *phase, char *buf, size_t size);

/* One charge (+bytes) or release (-bytes), for the timeline. */
typedef struct zrt__mem_event {
    int64_t delta;
    int32_t step, layer;
    uint8_t kind, tier, cat;
} zrt__mem_event;

enum {
    ZRT__TIMELINE_STEPS = 2, /* steps recorded from the start */
    ZRT__TIMELINE_MAX_EVENTS = 1 << 16
};

typedef struct zrt__mem_account {
    zrt_mem_stats stats; /* the public view, kept up to date */
    zrt__phase phase;    /* set by the engine at each entry point */
    zrt__phase tier_peak_phase[ZRT_TIER_COUNT]; /* when each tier peak was reached */
    int64_t at_tier_peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT]; /* what it held then */
    /* the timeline: every event of the first ZRT__TIMELINE_STEPS steps (init
     * included), so a report can plot a cold step and a warm one */
    zrt__mem_event *events;
    int nevents, events_cap;
    int64_t events_dropped; /* past the cap, or when growing failed */
    int record_off;         /* a simulation that keeps no timeline */
    /* the memory plan, once computed: quoted by the over-budget error */
    int has_plan;
    int64_t planned_peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT];
    int64_t planned_tier_peak[ZRT_TIER_COUNT];
    char planned_peak_phase[ZRT_TIER_COUNT][48];
} zrt__mem_account;

void zrt__mem_account_init(zrt__mem_account *acct);
void zrt__mem_account_free(zrt__mem_account *acct); /* the timeline */
/* limit 0: none. */
void zrt__mem_set_limit(zrt__mem_account *acct, zrt_tier tier, int64_t limit);

/* Charges bytes; fails with ZRT_ERR_OUT_OF_MEMORY, charging nothing, when the
 * tier's limit would be passed. `what` names the buffer for the message
 * ("grad shard of layer 3"); may be NULL. */
zrt_status zrt__mem_charge(zrt__mem_account *acct, zrt__errbuf *err, zrt_tier tier,
                           zrt_category cat, int64_t bytes, const char *what);
void zrt__mem_release(zrt__mem_account *acct, zrt_tier tier, zrt_category cat,
                      int64_t bytes);

#endif /* ZRT_RUNTIME_MEMORY_H */
