/*
 * runtime/registry.c — the tables of built-in backends and communicators.
 * The build flags that say which exist (ZRT_HAVE_CUDA, ZRT_HAVE_NCCL) are
 * read here only.
 */
#include "registry.h"

#include <stdio.h>
#include <string.h>

typedef struct backend_entry {
    const char *name;
    zrt_status (*create)(const zrt__backend_params *p, zrt__backend **out);
} backend_entry;

typedef struct comm_entry {
    const char *name;
    zrt_status (*create)(const zrt__comm_params *p, zrt__comm **out);
} comm_entry;

static zrt_status create_cpu(const zrt__backend_params *p, zrt__backend **out)
{
    return zrt__backend_cpu_create(p->acct, p->err, p->pool, out);
}

static zrt_status create_mpi(const zrt__comm_params *p, zrt__comm **out)
{
    return zrt__comm_mpi_create(p->be, p->err, out);
}

#ifdef ZRT_HAVE_CUDA
static zrt_status create_cuda(const zrt__backend_params *p, zrt__backend **out)
{
    return zrt__backend_cuda_create(p->acct, p->err, p->pool, p->local_rank,
                                    p->local_size, out);
}
#endif

#ifdef ZRT_HAVE_NCCL
static zrt_status create_nccl(const zrt__comm_params *p, zrt__comm **out)
{
    return zrt__comm_nccl_create(p->be, p->err, p->timeout_seconds, out);
}
#endif

static const backend_entry backends[] = {
    {"cpu", create_cpu},
#ifdef ZRT_HAVE_CUDA
    {"cuda", create_cuda},
#endif
};

static const comm_entry comms[] = {
    {"mpi", create_mpi},
#ifdef ZRT_HAVE_NCCL
    {"nccl", create_nccl},
#endif
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* "cpu, cuda": the names of a table, for a refusal. */
#define LIST_NAMES(table, buf)                                                 \
    do {                                                                       \
        size_t at_ = 0;                                                        \
        (buf)[0] = '\0';                                                       \
        for (size_t i_ = 0; i_ < COUNT(table) && at_ < sizeof(buf); i_++)      \
            at_ += (size_t)snprintf((buf) + at_, sizeof(buf) - at_, "%s%s",    \
                                    i_ ? ", " : "", (table)[i_].name);         \
    } while (0)

zrt_status zrt__backend_create_by_name(const char *name, const zrt__backend_params *p,
                                       zrt__backend **out)
{
    for (size_t i = 0; name && i < COUNT(backends); i++)
        if (!strcmp(backends[i].name, name))
            return backends[i].create(p, out);
    char available[64];
    LIST_NAMES(backends, available);
    return zrt__fail(p->err, ZRT_ERR_UNSUPPORTED,
                     "backend '%s' is not built into this zrt (available: %s)",
                     name ? name : "(null)", available);
}

zrt_status zrt__comm_create_by_name(const char *name, const zrt__comm_params *p,
                                    zrt__comm **out)
{
    for (size_t i = 0; name && i < COUNT(comms); i++)
        if (!strcmp(comms[i].name, name))
            return comms[i].create(p, out);
    char available[64];
    LIST_NAMES(comms, available);
    return zrt__fail(p->err, ZRT_ERR_UNSUPPORTED,
                     "communicator '%s' is not built into this zrt (available: %s)",
                     name ? name : "(null)", available);
}
