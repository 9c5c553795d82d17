/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/backend.h — the device interface every backend implements.
 *
 * A backend is a table of function pointers plus an opaque implementation
 * pointer. The engine allocates through it (each buffer tagged with a tier and
 * a category, charged to the context's memory account), copies through it and
 * runs the optimizer kernels through it; it never touches a device API itself.
 *
 * Ownership: a zrt__buf is owned by whoever allocated it and must be freed
 * with the same backend. Freeing a zero buffer ({0}) is a no-op. A buffer is
 * pinned through the zrt__buf it will be freed with: the flag lives there.
 */
#ifndef ZRT_RUNTIME_BACKEND_H
#define ZRT_RUNTIME_BACKEND_H

#include <stddef.h>

#include "../kernels/cpu/kernels.h"
#include "block_cache.h"
#include "error.h"
#include "memory.h"
#include "threads.h"

typedef struct zrt__buf {
    void *ptr;
    size_t bytes;
    zrt_tier tier;
    zrt_category cat;
    int pinned; /* page-locked by ops->pin until freed */
} zrt__buf;

/* What a backend can do, declared rather than discovered. */
typedef struct zrt__backend_caps {
    int device_is_host; /* device pointers can be read by the CPU and passed
                           to MPI as they are */
    int device_ordinal; /* the GPU this backend drives; -1 for none */
    int device_count;   /* GPUs this process sees; 0 on a host-only backend */
} zrt__backend_caps;

/*
 * Pointers on a backend whose device is not the host (cuda): every kernel op
 * accepts any mix of device and host pointers. All on the device: the
 * device's kernel, queued on the backend's stream. All on the host: the CPU
 * kernel, split across the helper threads. A mix (the optimizer's state in
 * host memory beside device parameters, as ZeRO-Offload keeps it): the CPU
 * computes, and the device operands stream through a pinned bounce buffer
 * of the backend's own, chunk by chunk. The bits are those of kernels/cpu in
 * every case.
 */

typedef struct zrt__backend zrt__backend;

typedef struct zrt__backend_ops {
    const char *name;
    /* Allocates bytes in tier, charged to cat; the memory is zeroed.
     * `what` names the buffer in an out-of-memory message (may be NULL). */
    zrt_status (*alloc)(zrt__backend *be, size_t bytes, zrt_tier tier, zrt_category cat,
                        const char *what, zrt__buf *out);
    /* Unlocks the buffer if it was pinned, returns it and zeroes *buf. */
    void (*free)(zrt__backend *be, zrt__buf *buf);
    /* Page-locks a host-tier buffer for its lifetime: free unlocks it
     * (pin_memory in the offload sections). Pinning a pinned or an empty
     * buffer does nothing. Refuses any other tier with ZRT_ERR_INVALID_ARG;
     * fails with ZRT_ERR_OUT_OF_MEMORY, buf left unpinned, when the system
     * will not lock that much (RLIMIT_MEMLOCK). The cpu backend uses mlock,
     * the cuda backend cudaHostRegister. */
    zrt_status (*pin)(zrt__backend *be, zrt__buf *buf);
    /* Copies between any two tiers' pointers; complete when it returns on a
     * synchronous backend, ordered on the backend's stream otherwise. */
    zrt_status (*copy)(zrt__backend *be, void *dst, const void *src, size_t bytes);
    zrt_status (*fill_f32)(zrt__backend *be, float *x, size_t n, float value);
    zrt_status (*scale_f32)(zrt__backend *be, float *x, size_t n, float alpha);
    /* dst[i] = dst[i] + src[i] */
    zrt_status (*add_f32)(zrt__backend *be, float *dst, const float *src, size_t n);
    zrt_status (*sqnorm_f32)(zrt__backend *be, const float *x, size_t n, double *out);
    /* AdamW; the new parameters go to p_out, which may be p or g (see
     * zrt_adamw_f32_out). */
    zrt_status (*adamw_f32)(zrt__backend *be, const float *p, float *p_out,
                            const float *g, float *m, float *v, size_t n,
                            const zrt_adamw_scalars *s);
    /* 16-bit (bf16 or f16) arrays, computed in f32 and rounded once. */
    zrt_status (*add_half)(zrt__backend *be, uint16_t *dst, const uint16_t *src, size_t n,
                           zrt_half h);
    zrt_status (*sqnorm_half)(zrt__backend *be, const uint16_t *x, size_t n, zrt_half h,
                              double *out);
    zrt_status (*cast_f32_to_half)(zrt__backend *be, uint16_t *dst, const float *src,
                                   size_t n, zrt_half h);
    zrt_status (*cast_half_to_f32)(zrt__backend *be, float *dst, const uint16_t *src,
                                   size_t n, zrt_half h);
    /* AdamW on the f32 master copy with 16-bit gradients times grad_scale;
     * the new 16-bit parameters go to p_out (zrt_adamw_mixed). */
    zrt_status (*adamw_mixed)(zrt__backend *be, float *master, uint16_t *p_out,
                              const uint16_t *g, float *m, float *v, size_t n,
                              float grad_scale, const zrt_adamw_scalars *s, zrt_half h);
    /* OPTIONAL (NULL: not available; qwZ is refused). Blockwise int8 of n
     * f32 elements, blocks of `block` (zrt_quantize_i8): *nonfinite gets
     * the count of blocks that held a NaN or an infinity. */
    zrt_status (*quantize_i8)(zrt__backend *be, const float *x, size_t n, size_t block,
                              int8_t *q, float *scale, size_t *nonfinite);
    zrt_status (*dequantize_i8)(zrt__backend *be, const int8_t *q, const float *scale,
                                size_t n, size_t block, float *x);
    /* OPTIONAL (NULL: not available; top-k is refused). Top-k with error
     * feedback (zrt_topk_select_f32): selects the min(k, n) elements of a
     * with the largest |a| into idx and val, in index order, and sets them
     * to 0 in a (what stays is the residual); *taken gets the count. */
    zrt_status (*topk_take_f32)(zrt__backend *be, float *a, size_t n, size_t k,
                                uint32_t *idx, float *val, size_t *taken);
    /* out (n elements) = the sum of nlists lists of k (index, value) pairs,
     * list r at lists + 2k r ([k u32 indices | k values]), added into zeros
     * in list order (zrt_scatter_add_f32), then each element divided by
     * divisor (a correctly rounded f32 division, as the ordered sums of the
     * communicators divide for ZRT_AVG). */
    zrt_status (*topk_sum_f32)(zrt__backend *be, float *out, size_t n, const float *lists,
                               int nlists, size_t k, float divisor);
    /* OPTIONAL (NULL: everything is done when an op returns). Waits until
     * every queued copy and kernel is done. Call zrt__be_synchronize. */
    zrt_status (*synchronize)(zrt__backend *be);
    /* OPTIONAL (NULL: never). Whether the host cannot dereference ptr (device
     * memory of a backend whose device is not the host). Call
     * zrt__be_on_device. */
    int (*on_device)(zrt__backend *be, const void *ptr);
    void (*destroy)(zrt__backend *be);
} zrt__backend_ops;

struct zrt__backend {
    const zrt__backend_ops *ops;
    zrt__backend_caps caps;
    zrt__mem_account *acct; /* not owned: the context's */
    zrt__errbuf *err;       /* not owned: the context's */
    zrt__pool *pool;        /* not owned: the context's helper threads */
    /* The stream (cudaStream_t) the backend queues its copies and kernels on,
     * and the training loop its own: NULL on the cpu backend. */
    void *stream;
    void *impl;
};

/* The optional ops with their defaults (ggml-backend-impl.h's way). */
static inline zrt_status zrt__be_synchronize(zrt__backend *be)
{
    return be->ops->synchronize ? be->ops->synchronize(be) : ZRT_OK;
}

static inline int zrt__be_on_device(zrt__backend *be, const void *ptr)
{
    return be->ops->on_device ? be->ops->on_device(be, ptr) : 0;
}

/* ---- what the backends share (runtime/backend.c) ---- */

/* Allocates a backend with a zeroed impl of impl_bytes and sets its ops, acct,
 * err and pool; the caller fills caps, stream and the impl. On failure
 * (ZRT_ERR_OUT_OF_MEMORY) the sentence names ops->name. */
zrt_status zrt__backend_new(const zrt__backend_ops *ops, size_t impl_bytes,
                            zrt__mem_account *acct, zrt__errbuf *err, zrt__pool *pool,
                            zrt__backend **out);
/* Frees what zrt__backend_new allocated (the impl's own resources first are
 * the caller's). */
void zrt__backend_delete(zrt__backend *be);
/* The system's page size (4096 when it will not say). */
size_t zrt__page_size(void);
/* Where a backend's alloc gets a zeroed block of bytes > 0 in tier. */
typedef zrt_status (*zrt__block_fn)(zrt__backend *be, size_t bytes, zrt_tier tier,
                                    zrt_category cat, const char *what, void **out);
/* The frame of every alloc: charges bytes to the account (tier, cat), takes
 * the block from `block` (not called for 0 bytes: ptr NULL), gives the
 * charge back when that fails, and describes the buffer in *out. */
zrt_status zrt__backend_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                              zrt_category cat, const char *what, zrt__block_fn block,
                              zrt__buf *out);
/* A zeroed host-memory block for bytes > 0, rounded up to align (a power of
 * two): a cached block of that size and tier, else aligned_alloc after the
 * cache is fitted to its rule (zrt__block_cache_fit). Fails with
 * ZRT_ERR_OUT_OF_MEMORY naming the buffer (cat, what); charging the account
 * is the caller's. */
zrt_status zrt__host_block(zrt__backend *be, zrt__block_cache *cache, size_t bytes,
                           size_t align, zrt_tier tier, zrt_category cat,
                           const char *what, void **out);
/* What every pin refuses: a NULL buf (ZRT_ERR_INVALID_ARG) and a buffer
 * outside the host tier (ZRT_ERR_INVALID_ARG, naming it). */
zrt_status zrt__pin_check(zrt__backend *be, const zrt__buf *buf);

/* The cpu backend: host memory plays the device; the account's device limit
 * is its capacity; long optimizer updates are split across the pool. */
zrt_status zrt__backend_cpu_create(zrt__mem_account *acct, zrt__errbuf *err,
                                   zrt__pool *pool, zrt__backend **out);

/* The cuda backend's pinned bounce buffer (the mixed-pointer path above):
 * allocated with the backend and charged to host/staging, so the memory plan
 * counts it on that backend (zero/memplan.c). */
#define ZRT__CUDA_BOUNCE_BYTES ((size_t)5 * (4u << 20))

#ifdef ZRT_HAVE_CUDA
/* The cuda backend (runtime/backend_cuda.c): picks the device from the
 * rank's place on its host (local_rank of local_size) and the hwloc
 * topology, creates its stream, and sizes one device arena per category from
 * the memory plan in acct once there is one (see the file's comment). */
zrt_status zrt__backend_cuda_create(zrt__mem_account *acct, zrt__errbuf *err,
                                    zrt__pool *pool, int local_rank, int local_size,
                                    zrt__backend **out);
/* The CUDA device ordinal the backend uses; -1 for any other backend. */
int zrt__backend_cuda_device(const zrt__backend *be);
/* The CUDA devices this process sees; 0 for any other backend. */
int zrt__backend_cuda_device_count(const zrt__backend *be);
#endif

/* Bytes of the cpu backend's buffers pinned now, as asked (each locks whole
 * pages: up to a page more). 0 for any other backend. */
size_t zrt__backend_cpu_pinned_bytes(const zrt__backend *be);

#endif /* ZRT_RUNTIME_BACKEND_H */
