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

#include "error.h"
#include "zrt/zrt.h"

typedef struct zrt__mem_account {
    zrt_mem_stats stats; /* the public view, kept up to date */
} zrt__mem_account;

void zrt__mem_account_init(zrt__mem_account *acct);
/* limit 0: none. */
void zrt__mem_set_limit(zrt__mem_account *acct, zrt_tier tier, int64_t limit);

/* Charges bytes; fails with ZRT_ERR_OUT_OF_MEMORY, charging nothing, when the
 * tier's limit would be passed. `what` names the buffer for the message
 * ("grad shard of layer 3"); may be NULL. */
zrt_status zrt__mem_charge(zrt__mem_account *acct, zrt__errbuf *err,
                           zrt_tier tier, zrt_category cat, int64_t bytes,
                           const char *what);
void zrt__mem_release(zrt__mem_account *acct, zrt_tier tier, zrt_category cat,
                      int64_t bytes);

#endif /* ZRT_RUNTIME_MEMORY_H */
