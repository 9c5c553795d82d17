/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/registry.c — the tables of built-in backends and communicators.
 * The build flags that say which exist (ZRT_HAVE_CUDA, ZRT_HAVE_NCCL) are
 * read here only.
 */
#include "registry.h"

#include <stdio.h>
#include <string.h>

/* One built-in backend or communicator: its name and the create call of its
 * kind (the other is NULL). */
typedef struct entry {
    const char *name;
    zrt_status (*create_backend)(const zrt__backend_params *p, zrt__backend **out);
    zrt_status (*create_comm)(const zrt__comm_params *p, zrt__comm **out);
} entry;

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

static const entry backends[] = {
    {"cpu", .create_backend = create_cpu},
#ifdef ZRT_HAVE_CUDA
    {"cuda", .create_backend = create_cuda},
#endif
};

static const entry comms[] = {
    {"mpi", .create_comm = create_mpi},
#ifdef ZRT_HAVE_NCCL
    {"nccl", .create_comm = create_nccl},
#endif
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The entry called name among count, or NULL after writing the refusal:
 * "backend 'x' is not built into this zrt (available: cpu, cuda)". */
static const entry *find(const char *kind, const char *name, const entry *table,
                         size_t count, zrt__errbuf *err)
{
    for (size_t i = 0; name && i < count; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    char available[64] = "";
    for (size_t i = 0, at = 0; i < count && at < sizeof available; i++)
        at += (size_t)snprintf(available + at, sizeof available - at, "%s%s",
                               i ? ", " : "", table[i].name);
    zrt__fail(err, ZRT_ERR_UNSUPPORTED,
              "%s '%s' is not built into this zrt (available: %s)", kind,
              name ? name : "(null)", available);
    return NULL;
}

zrt_status zrt__backend_create_by_name(const char *name, const zrt__backend_params *p,
                                       zrt__backend **out)
{
    const entry *e = find("backend", name, backends, COUNT(backends), p->err);
    return e ? e->create_backend(p, out) : ZRT_ERR_UNSUPPORTED;
}

zrt_status zrt__comm_create_by_name(const char *name, const zrt__comm_params *p,
                                    zrt__comm **out)
{
    const entry *e = find("communicator", name, comms, COUNT(comms), p->err);
    return e ? e->create_comm(p, out) : ZRT_ERR_UNSUPPORTED;
}
