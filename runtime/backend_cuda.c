/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/backend_cuda.c — the cuda backend: one CUDA device per rank.
 *
 * The rank's device is chosen at creation from its place on the host
 * (local_rank) and, for the host's only rank, the hwloc topology: a device
 * whose PCI locality meets the cores this process is bound to is preferred
 * (pick_device says why several ranks keep local_rank % count). Everything
 * the backend does is queued on one non-blocking stream of its own
 * (be->stream), which the training loop may use too (zrt_device_stream).
 *
 * Device memory: one arena per category. Once the memory plan is known
 * (acct->has_plan, filled at zrt_finalize_params before the engine
 * allocates), the first device allocation of a category with a planned peak
 * cudaMallocs one arena of that peak plus slack, and every later allocation
 * of the category is carved from it first-fit, 256-byte aligned, with freed
 * neighbours coalesced. Why: cudaMalloc and cudaFree are slow and
 * synchronise the whole device, and a ZeRO step allocates and frees the same
 * gathered layers, buckets and scratch over and over; with the arenas a
 * step's allocations are list operations on the host and never stall the
 * stream. What does not fit its arena (buffers allocated before the plan
 * exists, categories the plan did not foresee, fragmentation) is cudaMalloc'd
 * on its own and, when freed, kept in an exact-size cache as the cpu backend
 * does, so a repeating step still reaches cudaMalloc only in its first run.
 * New memory is zeroed by a cudaMemsetAsync on the stream: work on another
 * stream (NCCL's) must be ordered after the backend's stream before it
 * touches a fresh buffer, as it must be before touching any buffer the
 * backend's stream still writes.
 *
 * Host memory (tier host): page-aligned, a whole number of pages, cached on
 * free like the cpu backend's; `pin` registers it with cudaHostRegister (the
 * copies then run at full DMA speed) and free unregisters it.
 *
 * Copies: cudaMemcpyAsync on the stream. When either side is host memory the
 * call waits for the stream before it returns (the caller reads or reuses
 * the host side right after); device to device stays asynchronous. Host to
 * host is a memmove.
 *
 * Kernels and mixed pointers (backend.h): each pointer argument is
 * classified with cudaPointerGetAttributes (device memory is "device";
 * pageable, registered, pinned or managed host memory is "host"). All on the
 * device: the kernels of kernels/cuda on the stream, asynchronous. All on the
 * host: the cpu backend's kernels (an inner cpu backend, split across the
 * helper threads). A mix (ZeRO-Offload's optimizer state in host memory
 * beside device parameters): the CPU computes, and the device operands
 * stream through a pinned bounce buffer owned by the backend, chunk by
 * chunk: the device inputs of a chunk come down, the CPU kernel runs on the
 * chunk, the device outputs go back up. The kernels are elementwise, so the
 * bits are those of kernels/cpu whatever the chunking (kernels_cuda.h has
 * the two documented exceptions of the all-device path: NaN payloads, and
 * the squared norms' summation order).
 *
 * Threads: the ops are called from the thread that created the backend (or
 * one that has made the backend's device current with cudaSetDevice); the
 * helper threads run only the CPU kernels.
 *
 * Not supported: the nvme tier (allocations there are refused; the engine
 * refuses NVMe offload on this backend, its swap files go through host
 * memory).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <hwloc.h>
#include <hwloc/cudart.h>

#include "../kernels/cuda/kernels_cuda.h"
#include "backend.h"
#include "backend_cuda.h"
#include "block_cache.h"

enum {
    DEVICE_ALIGN = 256,          /* every device block (cudaMalloc gives 256 too) */
    ARENA_SLACK = 1 << 20,       /* fixed part of an arena's slack; see arena_open */
    ARENA_GRANULE = 2 << 20,     /* arenas are whole 2 MiB pages of device memory */
    MAX_OPERANDS = 5,            /* AdamW: p, p_out, g, m, v */
    BOUNCE_SLOT_BYTES = 4 << 20, /* one operand's chunk: 1 Mi f32 elements */
    CHUNK_ELEMENTS = BOUNCE_SLOT_BYTES / sizeof(float),
    MAX_NEAR_DEVICES = 64 /* devices the hwloc placement looks at */
};
_Static_assert((size_t)MAX_OPERANDS *BOUNCE_SLOT_BYTES == ZRT__CUDA_BOUNCE_BYTES,
               "the bounce buffer's size is the memory plan's");

/* ---- state ---------------------------------------------------------------- */

/* A piece of an arena; an arena's pieces cover it, in address order. */
typedef struct seg {
    size_t off, size;
    int used;
    struct seg *prev, *next;
} seg;

typedef struct arena {
    char *base; /* cudaMalloc'd; NULL until the plan sizes it */
    size_t size, used;
    seg *head;
    int refused; /* cudaMalloc refused the arena: the category falls back */
} arena;

typedef struct cuda_impl {
    int device;
    zrt__backend *cpu; /* the host kernels; owns no memory */
    arena arenas[ZRT_CAT_COUNT];
    zrt__block_cache cache; /* freed fallback device blocks and host blocks */
    size_t page_size;
    size_t pinned_bytes;
    double *d_norm;        /* ZRT_CUDA_SQNORM_SLOTS doubles of device scratch */
    unsigned char *bounce; /* pinned, MAX_OPERANDS slots, from creation on */
    size_t bounce_bytes;
    uint64_t arena_allocs, fallback_mallocs, fallback_reuses;
} cuda_impl;

static const zrt__backend_ops cuda_ops;

static cudaStream_t stream_of(const zrt__backend *be)
{
    return (cudaStream_t)be->stream;
}

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* ---- errors ---------------------------------------------------------------- */

static zrt_status status_of(cudaError_t rc)
{
    switch (rc) {
    case cudaErrorMemoryAllocation:
        return ZRT_ERR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
        return ZRT_ERR_UNSUPPORTED;
    default:
        return ZRT_ERR_INTERNAL;
    }
}

/* "backend 'cuda' (device 0): add_f32 of 1000 elements: cudaMemcpyAsync
 * failed: <CUDA's words>". Clears CUDA's last error, so that a later call
 * does not report this one again. */
static zrt_status cuda_error(const zrt__backend *be, cudaError_t rc, const char *file,
                             int line, const char *call, const char *op, size_t n,
                             const char *unit)
{
    const cuda_impl *impl = be->impl;
    (void)cudaGetLastError();
    return zrt__fail_at(be->err, status_of(rc), file, line,
                        "backend 'cuda' (device %d): %s of %zu %s: %s failed: %s",
                        impl->device, op, n, unit, call, cudaGetErrorString(rc));
}

/* Evaluates a CUDA call (or a kernels/cuda launch, which returns the
 * cudaError_t as an int); returns the mapped status on failure. */
#define CUDA_TRY(be, expr, call, op, n, unit)                                            \
    do {                                                                                 \
        cudaError_t rc_ = (cudaError_t)(expr);                                           \
        if (rc_ != cudaSuccess)                                                          \
            return cuda_error((be), rc_, __FILE__, __LINE__, (call), (op), (n), (unit)); \
    } while (0)

/* ---- device arenas -------------------------------------------------------- */

/* Opens the category's arena when the plan has a device peak for it. The
 * slack: blocks are rounded up to 256 bytes, under 256 bytes each, so 1 MiB
 * covers 4096 live blocks of rounding; first-fit fragments when blocks of
 * different sizes are freed out of order (stage 3 gathers layers of
 * different sizes), and 1/32 of the peak (3%) absorbs that in the usual
 * cases. What still does not fit falls back to its own cudaMalloc (once:
 * the cache keeps it), so the slack trades a little device memory for
 * fewer fallbacks, never for correctness. The slack is not charged to the
 * account, which counts the bytes asked for. */
static void arena_open(zrt__backend *be, zrt_category cat)
{
    cuda_impl *impl = be->impl;
    arena *a = &impl->arenas[cat];
    const zrt__mem_account *acct = be->acct;
    if (a->base || a->refused || !acct->has_plan)
        return;
    int64_t plan = acct->planned_peak[ZRT_TIER_DEVICE][cat];
    if (plan <= 0)
        return;
    size_t size = round_up((size_t)plan + (size_t)plan / 32 + ARENA_SLACK, ARENA_GRANULE);
    seg *whole = malloc(sizeof *whole);
    void *base = NULL;
    if (!whole || cudaMalloc(&base, size) != cudaSuccess) {
        (void)cudaGetLastError();
        free(whole);
        a->refused = 1;
        return;
    }
    *whole = (seg){.off = 0, .size = size};
    *a = (arena){.base = base, .size = size, .head = whole};
}

/* First fit; NULL when no free piece is big enough. */
static void *arena_take(arena *a, size_t rounded)
{
    for (seg *s = a->head; s; s = s->next) {
        if (s->used || s->size < rounded)
            continue;
        if (s->size > rounded) {
            seg *rest = malloc(sizeof *rest);
            if (!rest)
                return NULL;
            *rest = (seg){.off = s->off + rounded,
                          .size = s->size - rounded,
                          .prev = s,
                          .next = s->next};
            if (s->next)
                s->next->prev = rest;
            s->next = rest;
            s->size = rounded;
        }
        s->used = 1;
        a->used += s->size;
        return a->base + s->off;
    }
    return NULL;
}

static int arena_holds(const arena *a, const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr, base = (uintptr_t)a->base;
    return a->base && p >= base && p < base + a->size;
}

/* Returns ptr's piece to the arena, merged with free neighbours; 0 when ptr
 * is not in this arena. */
static int arena_give(arena *a, void *ptr)
{
    if (!arena_holds(a, ptr))
        return 0;
    size_t off = (size_t)((char *)ptr - a->base);
    seg *s = a->head;
    while (s && s->off != off)
        s = s->next;
    if (!s || !s->used)
        return 1; /* not a block start: a caller bug; leave the arena as it is */
    s->used = 0;
    a->used -= s->size;
    seg *n = s->next;
    if (n && !n->used) {
        s->size += n->size;
        s->next = n->next;
        if (n->next)
            n->next->prev = s;
        free(n);
    }
    seg *p = s->prev;
    if (p && !p->used) {
        p->size += s->size;
        p->next = s->next;
        if (s->next)
            s->next->prev = p;
        free(s);
    }
    return 1;
}

static void arena_close(arena *a)
{
    while (a->head) {
        seg *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    if (a->base)
        cudaFree(a->base);
    *a = (arena){0};
}

/* ---- the exact-size cache (fallback device blocks, host blocks) ------------ */

static void release_block(void *ptr, zrt_tier tier, void *arg)
{
    (void)arg;
    /* A failed cudaFree must not stay CUDA's last error: the next kernel
     * launch (kernels/cuda reads cudaGetLastError) would report it as its
     * own failure. */
    if (tier == ZRT_TIER_DEVICE && cudaFree(ptr) != cudaSuccess)
        (void)cudaGetLastError();
    else if (tier != ZRT_TIER_DEVICE)
        free(ptr);
}

/* Keeps a freed block for the next allocation of its size (block_cache.h). */
static void put_cached(zrt__backend *be, void *ptr, size_t bytes, zrt_tier tier)
{
    cuda_impl *impl = be->impl;
    zrt__block_cache_put(&impl->cache, ptr, bytes, tier);
    zrt__block_cache_fit(&impl->cache, &be->acct->stats, tier);
}

/* ---- alloc, free, pin ------------------------------------------------------ */

static size_t host_block_size(const cuda_impl *impl, size_t bytes)
{
    return round_up(bytes, impl->page_size);
}

static zrt_status device_oom(zrt__backend *be, cudaError_t rc, size_t bytes,
                             zrt_category cat, const char *what)
{
    const cuda_impl *impl = be->impl;
    size_t free_b = 0, total_b = 0;
    (void)cudaGetLastError();
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        (void)cudaGetLastError();
    char asked[64], left[64], total[64];
    return zrt__fail(
        be->err, rc == cudaErrorMemoryAllocation ? ZRT_ERR_OUT_OF_MEMORY : status_of(rc),
        "device allocation of %s for '%s'%s%s failed: cudaMalloc: %s "
        "(device %d has %s free of %s)",
        zrt__fmt_bytes((long long)bytes, asked, sizeof asked), zrt_category_str(cat),
        what ? " " : "", what ? what : "", cudaGetErrorString(rc), impl->device,
        zrt__fmt_bytes((long long)free_b, left, sizeof left),
        zrt__fmt_bytes((long long)total_b, total, sizeof total));
}

/* A zeroed device block: the category's arena, else the cache, else
 * cudaMalloc (after dropping the cached device blocks if it has to). */
static zrt_status device_block(zrt__backend *be, size_t bytes, zrt_category cat,
                               const char *what, void **out)
{
    cuda_impl *impl = be->impl;
    size_t rounded = round_up(bytes, DEVICE_ALIGN);
    arena_open(be, cat);
    void *ptr = arena_take(&impl->arenas[cat], rounded);
    if (ptr) {
        impl->arena_allocs++;
    } else if ((ptr = zrt__block_cache_take(&impl->cache, rounded, ZRT_TIER_DEVICE))) {
        impl->fallback_reuses++;
    } else {
        zrt__block_cache_fit(&impl->cache, &be->acct->stats, ZRT_TIER_DEVICE);
        cudaError_t rc = cudaMalloc(&ptr, rounded);
        if (rc == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            zrt__block_cache_evict(&impl->cache, ZRT_TIER_DEVICE, 0, 0);
            rc = cudaMalloc(&ptr, rounded);
        }
        if (rc != cudaSuccess)
            return device_oom(be, rc, bytes, cat, what);
        impl->fallback_mallocs++;
    }
    cudaError_t rc = cudaMemsetAsync(ptr, 0, rounded, stream_of(be));
    if (rc != cudaSuccess) {
        if (!arena_give(&impl->arenas[cat], ptr))
            put_cached(be, ptr, rounded, ZRT_TIER_DEVICE);
        return cuda_error(be, rc, __FILE__, __LINE__, "cudaMemsetAsync",
                          "zeroing a new buffer", bytes, "bytes");
    }
    *out = ptr;
    return ZRT_OK;
}

static zrt_status cuda_block(zrt__backend *be, size_t bytes, zrt_tier tier,
                             zrt_category cat, const char *what, void **out)
{
    cuda_impl *impl = be->impl;
    if (tier == ZRT_TIER_DEVICE)
        return device_block(be, bytes, cat, what, out);
    return zrt__host_block(be, &impl->cache, bytes, impl->page_size, tier, cat, what,
                           out);
}

static zrt_status cuda_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                             zrt_category cat, const char *what, zrt__buf *out)
{
    if (tier != ZRT_TIER_DEVICE && tier != ZRT_TIER_HOST)
        return zrt__fail(be->err, ZRT_ERR_INVALID_ARG,
                         "the cuda backend cannot allocate in the %s tier",
                         (unsigned)tier < ZRT_TIER_COUNT ? zrt_tier_str(tier)
                                                         : "unknown");
    return zrt__backend_alloc(be, bytes, tier, cat, what, cuda_block, out);
}

static void cuda_free(zrt__backend *be, zrt__buf *buf)
{
    if (!buf || (!buf->ptr && buf->bytes == 0))
        return;
    cuda_impl *impl = be->impl;
    zrt__mem_release(be->acct, buf->tier, buf->cat, (int64_t)buf->bytes);
    if (buf->ptr && buf->tier == ZRT_TIER_HOST) {
        if (buf->pinned) {
            if (cudaHostUnregister(buf->ptr) != cudaSuccess)
                (void)cudaGetLastError();
            impl->pinned_bytes -= buf->bytes;
        }
        put_cached(be, buf->ptr, host_block_size(impl, buf->bytes), ZRT_TIER_HOST);
    } else if (buf->ptr && !arena_give(&impl->arenas[buf->cat], buf->ptr)) {
        put_cached(be, buf->ptr, round_up(buf->bytes, DEVICE_ALIGN), ZRT_TIER_DEVICE);
    }
    memset(buf, 0, sizeof *buf); /* padding too: callers may memcmp */
}

static zrt_status cuda_pin(zrt__backend *be, zrt__buf *buf)
{
    ZRT_CHECK(zrt__pin_check(be, buf));
    if (buf->pinned || !buf->ptr)
        return ZRT_OK;
    cuda_impl *impl = be->impl;
    char size[64], held[64];
    cudaError_t rc = cudaHostRegister(buf->ptr, host_block_size(impl, buf->bytes),
                                      cudaHostRegisterDefault);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        return zrt__fail(
            be->err,
            rc == cudaErrorMemoryAllocation ? ZRT_ERR_OUT_OF_MEMORY : ZRT_ERR_INTERNAL,
            "cannot pin the host-tier '%s' buffer of %s: "
            "cudaHostRegister: %s (this backend already pins %s); "
            "set pin_memory to false",
            zrt_category_str(buf->cat),
            zrt__fmt_bytes((long long)buf->bytes, size, sizeof size),
            cudaGetErrorString(rc),
            zrt__fmt_bytes((long long)impl->pinned_bytes, held, sizeof held));
    }
    buf->pinned = 1;
    impl->pinned_bytes += buf->bytes;
    return ZRT_OK;
}

/* ---- pointers and copies ----------------------------------------------------- */

static int cuda_on_device(zrt__backend *be, const void *ptr)
{
    if (!ptr)
        return 0;
    const cuda_impl *impl = be->impl;
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        if (arena_holds(&impl->arenas[c], ptr))
            return 1;
    struct cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
        (void)cudaGetLastError(); /* older runtimes: an unregistered host pointer */
        return 0;
    }
    return attr.type == cudaMemoryTypeDevice;
}

static zrt_status cuda_copy(zrt__backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0)
        return ZRT_OK;
    int dst_dev = cuda_on_device(be, dst), src_dev = cuda_on_device(be, src);
    if (!dst_dev && !src_dev) {
        memmove(dst, src, bytes);
        return ZRT_OK;
    }
    const char *op = !src_dev   ? "copy host to device"
                     : !dst_dev ? "copy device to host"
                                : "copy device to device";
    /* The contract is memmove's (the cpu backend's copy), but
     * cudaMemcpyAsync is undefined on overlapping ranges. Device to device,
     * the same range is a no-op, and an overlap moves in pieces no longer
     * than the distance, in the order memmove would (each piece is disjoint
     * from its source, and stream order keeps the pieces in sequence). */
    if (dst_dev && src_dev) {
        uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
        size_t gap = d > s ? (size_t)(d - s) : (size_t)(s - d);
        if (gap == 0)
            return ZRT_OK;
        if (gap < bytes) {
            for (size_t done = 0; done < bytes; done += gap) {
                size_t len = bytes - done < gap ? bytes - done : gap;
                size_t off = d < s ? done : bytes - done - len; /* backwards if d > s */
                CUDA_TRY(be,
                         cudaMemcpyAsync((char *)dst + off, (const char *)src + off, len,
                                         cudaMemcpyDeviceToDevice, stream_of(be)),
                         "cudaMemcpyAsync", op, bytes, "bytes");
            }
            return ZRT_OK;
        }
    }
    CUDA_TRY(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(be)),
             "cudaMemcpyAsync", op, bytes, "bytes");
    if (!dst_dev || !src_dev)
        CUDA_TRY(be, cudaStreamSynchronize(stream_of(be)), "cudaStreamSynchronize", op,
                 bytes, "bytes");
    return ZRT_OK;
}

/* ---- mixed host and device operands ------------------------------------------ */

enum { IN = 1, OUT = 2 };

typedef struct operand {
    void *ptr;    /* as passed: host or device memory */
    size_t esize; /* bytes per element */
    int use;      /* IN, OUT or both */
} operand;

/* Runs the CPU kernel on n elements; at[i] is operand i at the chunk's
 * first element, in host memory. */
typedef zrt_status (*host_kernel)(zrt__backend *cpu, void *const *at, size_t n,
                                  const void *args);

/* Bit i set: operand i is device memory. */
static unsigned placement(zrt__backend *be, const operand *o, int count)
{
    unsigned mask = 0;
    for (int i = 0; i < count; i++)
        if (cuda_on_device(be, o[i].ptr))
            mask |= 1u << i;
    return mask;
}

static zrt_status bounce_ready(zrt__backend *be, const char *op, size_t n)
{
    cuda_impl *impl = be->impl;
    if (impl->bounce)
        return ZRT_OK;
    size_t bytes = ZRT__CUDA_BOUNCE_BYTES;
    ZRT_CHECK(zrt__mem_charge(be->acct, be->err, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                              (int64_t)bytes, "the cuda backend's bounce buffer"));
    void *ptr = NULL;
    cudaError_t rc = cudaHostAlloc(&ptr, bytes, cudaHostAllocDefault);
    if (rc != cudaSuccess) {
        zrt__mem_release(be->acct, ZRT_TIER_HOST, ZRT_CAT_STAGING, (int64_t)bytes);
        return cuda_error(be, rc, __FILE__, __LINE__,
                          "cudaHostAlloc of the bounce buffer", op, n, "elements");
    }
    impl->bounce = ptr;
    impl->bounce_bytes = bytes;
    return ZRT_OK;
}

/* The CPU computes; the device operands (those in `dev`) stream through the
 * bounce buffer chunk by chunk. Operands passed twice (p_out == p) share a
 * slot: read down if either reads, written back if either writes. */
static zrt_status run_mixed(zrt__backend *be, const char *op, const operand *o, int count,
                            unsigned dev, size_t n, host_kernel fn, const void *args)
{
    ZRT_CHECK(bounce_ready(be, op, n));
    cuda_impl *impl = be->impl;
    cudaStream_t st = stream_of(be);
    int slot_of[MAX_OPERANDS], slot_use[MAX_OPERANDS], nslots = 0;
    const operand *slot_op[MAX_OPERANDS];
    for (int i = 0; i < count; i++) {
        slot_of[i] = -1;
        if (!(dev & (1u << i)))
            continue;
        for (int j = 0; j < i && slot_of[i] < 0; j++)
            if (slot_of[j] >= 0 && o[j].ptr == o[i].ptr)
                slot_of[i] = slot_of[j];
        if (slot_of[i] < 0) {
            slot_of[i] = nslots;
            slot_op[nslots] = &o[i];
            slot_use[nslots++] = 0;
        }
        slot_use[slot_of[i]] |= o[i].use;
    }
    for (size_t lo = 0; lo < n; lo += CHUNK_ELEMENTS) {
        size_t len = n - lo < CHUNK_ELEMENTS ? n - lo : CHUNK_ELEMENTS;
        void *at[MAX_OPERANDS];
        for (int i = 0; i < count; i++)
            at[i] = slot_of[i] >= 0
                        ? (void *)(impl->bounce + (size_t)slot_of[i] * BOUNCE_SLOT_BYTES)
                        : (void *)((char *)o[i].ptr + lo * o[i].esize);
        for (int s = 0; s < nslots; s++)
            if (slot_use[s] & IN)
                CUDA_TRY(be,
                         cudaMemcpyAsync(impl->bounce + (size_t)s * BOUNCE_SLOT_BYTES,
                                         (char *)slot_op[s]->ptr + lo * slot_op[s]->esize,
                                         len * slot_op[s]->esize, cudaMemcpyDeviceToHost,
                                         st),
                         "cudaMemcpyAsync", op, n, "elements");
        /* also waits for the last chunk's uploads: the slots are free */
        CUDA_TRY(be, cudaStreamSynchronize(st), "cudaStreamSynchronize", op, n,
                 "elements");
        ZRT_CHECK(fn(impl->cpu, at, len, args));
        for (int s = 0; s < nslots; s++)
            if (slot_use[s] & OUT)
                CUDA_TRY(be,
                         cudaMemcpyAsync((char *)slot_op[s]->ptr + lo * slot_op[s]->esize,
                                         impl->bounce + (size_t)s * BOUNCE_SLOT_BYTES,
                                         len * slot_op[s]->esize, cudaMemcpyHostToDevice,
                                         st),
                         "cudaMemcpyAsync", op, n, "elements");
    }
    CUDA_TRY(be, cudaStreamSynchronize(st), "cudaStreamSynchronize", op, n, "elements");
    return ZRT_OK;
}

/* Runs an op on the CPU unless all its operands are device memory: directly
 * when all are host memory, through the bounce buffer when they are mixed;
 * returns 1 with the op's status in *st. Returns 0 when all are on the
 * device: the caller launches its kernel. */
static int run_on_host(zrt__backend *be, const char *op, const operand *o, int count,
                       size_t n, host_kernel fn, const void *args, zrt_status *st)
{
    unsigned dev = placement(be, o, count);
    if (dev == (1u << count) - 1)
        return 0;
    if (dev == 0) {
        void *at[MAX_OPERANDS];
        for (int i = 0; i < count; i++)
            at[i] = o[i].ptr;
        *st = fn(((cuda_impl *)be->impl)->cpu, at, n, args);
    } else {
        *st = run_mixed(be, op, o, count, dev, n, fn, args);
    }
    return 1;
}

#define KERNEL(be, launch, op, n)                                                        \
    do {                                                                                 \
        CUDA_TRY(be, launch, "the kernel launch", op, n, "elements");                    \
        return ZRT_OK;                                                                   \
    } while (0)

/* ---- the ops ------------------------------------------------------------------ */

static zrt_status cuda_fill_f32(zrt__backend *be, float *x, size_t n, float value)
{
    if (n == 0)
        return ZRT_OK;
    cuda_impl *impl = be->impl;
    if (cuda_on_device(be, x))
        KERNEL(be, zrt_cuda_fill_f32(x, n, value, stream_of(be)), "fill_f32", n);
    return impl->cpu->ops->fill_f32(impl->cpu, x, n, value);
}

static zrt_status cuda_scale_f32(zrt__backend *be, float *x, size_t n, float alpha)
{
    if (n == 0)
        return ZRT_OK;
    cuda_impl *impl = be->impl;
    if (cuda_on_device(be, x))
        KERNEL(be, zrt_cuda_scale_f32(x, n, alpha, stream_of(be)), "scale_f32", n);
    return impl->cpu->ops->scale_f32(impl->cpu, x, n, alpha);
}

static zrt_status add_f32_host(zrt__backend *cpu, void *const *at, size_t n,
                               const void *args)
{
    (void)args;
    return cpu->ops->add_f32(cpu, at[0], at[1], n);
}

static zrt_status cuda_add_f32(zrt__backend *be, float *dst, const float *src, size_t n)
{
    operand o[] = {{dst, sizeof *dst, IN | OUT}, {(void *)src, sizeof *src, IN}};
    zrt_status st = ZRT_OK;
    if (n == 0 || run_on_host(be, "add_f32", o, 2, n, add_f32_host, NULL, &st))
        return st;
    KERNEL(be, zrt_cuda_add_f32(dst, src, n, stream_of(be)), "add_f32", n);
}

/* The squared norm of device memory: the kernel into the scratch, the sum
 * back to the host. */
static zrt_status device_sqnorm(zrt__backend *be, int launched, const char *op, size_t n,
                                double *out)
{
    cuda_impl *impl = be->impl;
    double sum = 0.0;
    CUDA_TRY(be, launched, "the kernel launch", op, n, "elements");
    CUDA_TRY(be,
             cudaMemcpyAsync(&sum, impl->d_norm, sizeof sum, cudaMemcpyDeviceToHost,
                             stream_of(be)),
             "cudaMemcpyAsync", op, n, "elements");
    CUDA_TRY(be, cudaStreamSynchronize(stream_of(be)), "cudaStreamSynchronize", op, n,
             "elements");
    *out = sum;
    return ZRT_OK;
}

static zrt_status cuda_sqnorm_f32(zrt__backend *be, const float *x, size_t n, double *out)
{
    cuda_impl *impl = be->impl;
    if (n == 0) {
        *out = 0.0;
        return ZRT_OK;
    }
    if (cuda_on_device(be, x))
        return device_sqnorm(be, zrt_cuda_sqnorm_f32(x, n, impl->d_norm, stream_of(be)),
                             "sqnorm_f32", n, out);
    return impl->cpu->ops->sqnorm_f32(impl->cpu, x, n, out);
}

static zrt_status adamw_f32_host(zrt__backend *cpu, void *const *at, size_t n,
                                 const void *args)
{
    return cpu->ops->adamw_f32(cpu, at[0], at[1], at[2], at[3], at[4], n, args);
}

static zrt_status cuda_adamw_f32(zrt__backend *be, const float *p, float *p_out,
                                 const float *g, float *m, float *v, size_t n,
                                 const zrt_adamw_scalars *s)
{
    operand o[] = {{(void *)p, sizeof *p, IN},
                   {p_out, sizeof *p_out, OUT},
                   {(void *)g, sizeof *g, IN},
                   {m, sizeof *m, IN | OUT},
                   {v, sizeof *v, IN | OUT}};
    zrt_status st = ZRT_OK;
    if (n == 0 || run_on_host(be, "adamw_f32", o, 5, n, adamw_f32_host, s, &st))
        return st;
    KERNEL(be, zrt_cuda_adamw_f32_out(p, p_out, g, m, v, n, s, stream_of(be)),
           "adamw_f32", n);
}

static zrt_status add_half_host(zrt__backend *cpu, void *const *at, size_t n,
                                const void *args)
{
    return cpu->ops->add_half(cpu, at[0], at[1], n, *(const zrt_half *)args);
}

static zrt_status cuda_add_half(zrt__backend *be, uint16_t *dst, const uint16_t *src,
                                size_t n, zrt_half h)
{
    operand o[] = {{dst, sizeof *dst, IN | OUT}, {(void *)src, sizeof *src, IN}};
    zrt_status st = ZRT_OK;
    if (n == 0 || run_on_host(be, "add_half", o, 2, n, add_half_host, &h, &st))
        return st;
    KERNEL(be, zrt_cuda_add_half(dst, src, n, h, stream_of(be)), "add_half", n);
}

static zrt_status cuda_sqnorm_half(zrt__backend *be, const uint16_t *x, size_t n,
                                   zrt_half h, double *out)
{
    cuda_impl *impl = be->impl;
    if (n == 0) {
        *out = 0.0;
        return ZRT_OK;
    }
    if (cuda_on_device(be, x))
        return device_sqnorm(be,
                             zrt_cuda_sqnorm_half(x, n, h, impl->d_norm, stream_of(be)),
                             "sqnorm_half", n, out);
    return impl->cpu->ops->sqnorm_half(impl->cpu, x, n, h, out);
}

static zrt_status cast_f32_to_half_host(zrt__backend *cpu, void *const *at, size_t n,
                                        const void *args)
{
    return cpu->ops->cast_f32_to_half(cpu, at[0], at[1], n, *(const zrt_half *)args);
}

static zrt_status cuda_cast_f32_to_half(zrt__backend *be, uint16_t *dst, const float *src,
                                        size_t n, zrt_half h)
{
    operand o[] = {{dst, sizeof *dst, OUT}, {(void *)src, sizeof *src, IN}};
    zrt_status st = ZRT_OK;
    if (n == 0 ||
        run_on_host(be, "cast_f32_to_half", o, 2, n, cast_f32_to_half_host, &h, &st))
        return st;
    KERNEL(be, zrt_cuda_cast_f32_to_half(dst, src, n, h, stream_of(be)),
           "cast_f32_to_half", n);
}

static zrt_status cast_half_to_f32_host(zrt__backend *cpu, void *const *at, size_t n,
                                        const void *args)
{
    return cpu->ops->cast_half_to_f32(cpu, at[0], at[1], n, *(const zrt_half *)args);
}

static zrt_status cuda_cast_half_to_f32(zrt__backend *be, float *dst, const uint16_t *src,
                                        size_t n, zrt_half h)
{
    operand o[] = {{dst, sizeof *dst, OUT}, {(void *)src, sizeof *src, IN}};
    zrt_status st = ZRT_OK;
    if (n == 0 ||
        run_on_host(be, "cast_half_to_f32", o, 2, n, cast_half_to_f32_host, &h, &st))
        return st;
    KERNEL(be, zrt_cuda_cast_half_to_f32(dst, src, n, h, stream_of(be)),
           "cast_half_to_f32", n);
}

typedef struct mixed_args {
    float grad_scale;
    const zrt_adamw_scalars *s;
    zrt_half h;
} mixed_args;

static zrt_status adamw_mixed_host(zrt__backend *cpu, void *const *at, size_t n,
                                   const void *args)
{
    const mixed_args *a = args;
    return cpu->ops->adamw_mixed(cpu, at[0], at[1], at[2], at[3], at[4], n, a->grad_scale,
                                 a->s, a->h);
}

static zrt_status cuda_adamw_mixed(zrt__backend *be, float *master, uint16_t *p_out,
                                   const uint16_t *g, float *m, float *v, size_t n,
                                   float grad_scale, const zrt_adamw_scalars *s,
                                   zrt_half h)
{
    mixed_args args = {.grad_scale = grad_scale, .s = s, .h = h};
    operand o[] = {{master, sizeof *master, IN | OUT},
                   {p_out, sizeof *p_out, OUT},
                   {(void *)g, sizeof *g, IN},
                   {m, sizeof *m, IN | OUT},
                   {v, sizeof *v, IN | OUT}};
    zrt_status st = ZRT_OK;
    if (n == 0 || run_on_host(be, "adamw_mixed", o, 5, n, adamw_mixed_host, &args, &st))
        return st;
    KERNEL(
        be,
        zrt_cuda_adamw_mixed(master, p_out, g, m, v, n, grad_scale, s, h, stream_of(be)),
        "adamw_mixed", n);
}

static zrt_status cuda_synchronize(zrt__backend *be)
{
    CUDA_TRY(be, cudaStreamSynchronize(stream_of(be)), "cudaStreamSynchronize",
             "synchronize", (size_t)0, "elements");
    return ZRT_OK;
}

/* ---- lifetime ------------------------------------------------------------------ */

static void cuda_destroy(zrt__backend *be)
{
    if (!be)
        return;
    cuda_impl *impl = be->impl;
    if (be->stream && cudaStreamSynchronize(stream_of(be)) != cudaSuccess)
        (void)cudaGetLastError(); /* a fault already reported; free what we can */
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        arena_close(&impl->arenas[c]);
    zrt__block_cache_drop(&impl->cache);
    if (impl->bounce) {
        cudaFreeHost(impl->bounce);
        zrt__mem_release(be->acct, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                         (int64_t)impl->bounce_bytes);
    }
    if (impl->d_norm)
        cudaFree(impl->d_norm);
    if (be->stream)
        cudaStreamDestroy(stream_of(be));
    if (impl->cpu)
        impl->cpu->ops->destroy(impl->cpu);
    zrt__backend_delete(be);
}

static const zrt__backend_ops cuda_ops = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .pin = cuda_pin,
    .copy = cuda_copy,
    .fill_f32 = cuda_fill_f32,
    .scale_f32 = cuda_scale_f32,
    .add_f32 = cuda_add_f32,
    .sqnorm_f32 = cuda_sqnorm_f32,
    .adamw_f32 = cuda_adamw_f32,
    .add_half = cuda_add_half,
    .sqnorm_half = cuda_sqnorm_half,
    .cast_f32_to_half = cuda_cast_f32_to_half,
    .cast_half_to_f32 = cuda_cast_half_to_f32,
    .adamw_mixed = cuda_adamw_mixed,
    .synchronize = cuda_synchronize,
    .on_device = cuda_on_device,
    .destroy = cuda_destroy,
};

/* The rank's device: local_rank modulo the count (ranks of one host spread
 * over its GPUs), unless hwloc shows that device far from the cores this
 * process is bound to while others are near: then local_rank modulo the near
 * ones. Block binding (ranks 0-3 on socket 0 with GPUs 0-3) keeps the plain
 * rule. hwloc failing, or an unbound process (near every device), keeps the
 * plain rule.
 *
 * The move is made only when this is the host's one rank. With
 * several ranks it is not collision-free, because a rank cannot see the
 * others' bindings: Open MPI's default for more than 2 ranks maps by socket
 * round-robin (rank 0 on socket 0, rank 1 on socket 1, ...), so on a 2-socket
 * host with GPUs 0-3 near socket 0 and 4-7 near socket 1, rank 1 moved to
 * near[1 % 4] = GPU 5, which rank 5 (plain 5, already near) also takes, and
 * rank 4 moved to GPU 0 beside rank 0. Two ranks on one GPU make NCCL refuse
 * (or "mpi" share a GPU that was meant to be one per rank). The plain rule
 * gives every local rank its own device whenever local_size <= count. */
static int pick_device(zrt__pool *pool, int local_rank, int local_size, int count)
{
    int rank = local_rank > 0 ? local_rank : 0, plain = rank % count;
    if (local_size > 1)
        return plain;
    int near[MAX_NEAR_DEVICES], nnear = 0, plain_near = 0;
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return plain;
    hwloc_bitmap_t bind = hwloc_bitmap_alloc(), set = hwloc_bitmap_alloc();
    int ok = bind && set && hwloc_topology_load(topo) == 0;
    if (ok && pool)
        ok = hwloc_bitmap_copy(bind, zrt__pool_process_cpuset(pool)) == 0;
    else if (ok)
        ok = hwloc_get_cpubind(topo, bind, HWLOC_CPUBIND_PROCESS) == 0;
    for (int d = 0; ok && d < count && d < MAX_NEAR_DEVICES; d++) {
        if (hwloc_cudart_get_device_cpuset(topo, d, set) != 0 ||
            !hwloc_bitmap_intersects(set, bind))
            continue;
        near[nnear++] = d;
        plain_near |= d == plain;
    }
    (void)cudaGetLastError(); /* from a device hwloc could not query */
    hwloc_bitmap_free(bind);
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
    return nnear == 0 || plain_near ? plain : near[rank % nnear];
}

/* Device, stream, sqnorm scratch and the inner cpu backend. */
static zrt_status cuda_open(zrt__backend *be, zrt__pool *pool, int local_rank,
                            int local_size, int count)
{
    cuda_impl *impl = be->impl;
    impl->device = pick_device(pool, local_rank, local_size, count);
    cudaStream_t stream = NULL;
    CUDA_TRY(be, cudaSetDevice(impl->device), "cudaSetDevice", "creating the backend",
             (size_t)0, "bytes");
    CUDA_TRY(be, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
             "cudaStreamCreateWithFlags", "creating the backend", (size_t)0, "bytes");
    be->stream = stream;
    CUDA_TRY(be,
             cudaMalloc((void **)&impl->d_norm, ZRT_CUDA_SQNORM_SLOTS * sizeof(double)),
             "cudaMalloc", "the squared-norm scratch",
             (size_t)ZRT_CUDA_SQNORM_SLOTS * sizeof(double), "bytes");
    ZRT_CHECK(zrt__backend_cpu_create(be->acct, be->err, pool, &impl->cpu));
    /* Now rather than at the first mixed op: charged at creation, the bounce
     * buffer is a fixed line in the memory plan (zero/memplan.c). */
    return bounce_ready(be, "creating the backend", 0);
}

zrt_status zrt__backend_cuda_create(zrt__mem_account *acct, zrt__errbuf *err,
                                    zrt__pool *pool, int local_rank, int local_size,
                                    zrt__backend **out)
{
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                         "backend 'cuda': no CUDA device (cudaGetDeviceCount: %s)",
                         cudaGetErrorString(rc));
    }
    if (count <= 0)
        return zrt__fail(
            err, ZRT_ERR_UNSUPPORTED,
            "backend 'cuda': no CUDA device (cudaGetDeviceCount: 0 devices)");
    zrt__backend *be;
    ZRT_CHECK(zrt__backend_new(&cuda_ops, sizeof(cuda_impl), acct, err, pool, &be));
    cuda_impl *impl = be->impl;
    impl->page_size = zrt__page_size();
    zrt__block_cache_init(&impl->cache, release_block, NULL);
    be->caps.device_is_host = 0;
    zrt_status st = cuda_open(be, pool, local_rank, local_size, count);
    if (st != ZRT_OK) {
        cuda_destroy(be);
        return st;
    }
    be->caps.device_ordinal = impl->device;
    be->caps.device_count = count;
    *out = be;
    return ZRT_OK;
}

int zrt__backend_cuda_device(const zrt__backend *be)
{
    if (!be || be->ops != &cuda_ops)
        return -1;
    const cuda_impl *impl = be->impl;
    return impl->device;
}

int zrt__backend_cuda_device_count(const zrt__backend *be)
{
    if (!be || be->ops != &cuda_ops)
        return 0;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

int zrt__backend_cuda_stats(const zrt__backend *be, zrt__cuda_stats *out)
{
    if (!be || be->ops != &cuda_ops || !out)
        return -1;
    const cuda_impl *impl = be->impl;
    zrt__cuda_stats s = {.arena_allocs = impl->arena_allocs,
                         .fallback_mallocs = impl->fallback_mallocs,
                         .fallback_reuses = impl->fallback_reuses,
                         .bounce_bytes = impl->bounce_bytes};
    for (int c = 0; c < ZRT_CAT_COUNT; c++) {
        s.arena_bytes += impl->arenas[c].size;
        s.arena_used_bytes += impl->arenas[c].used;
    }
    *out = s;
    return 0;
}
