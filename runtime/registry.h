/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/registry.h — backends and communicators by name.
 *
 * The context asks for "cpu" or "cuda", "mpi" or "nccl"; which of them this
 * build holds is known here and nowhere above (ggml's backend registry,
 * ggml_backend_init_by_name, is the model). A name not built in is refused
 * with a sentence listing what is.
 */
#ifndef ZRT_RUNTIME_REGISTRY_H
#define ZRT_RUNTIME_REGISTRY_H

#include "backend.h"
#include "comm.h"

/* What every backend's create takes; the ones a backend does not need it
 * ignores (local_rank/local_size pick the cuda backend's device). */
typedef struct zrt__backend_params {
    zrt__mem_account *acct; /* not owned: the context's */
    zrt__errbuf *err;       /* not owned */
    zrt__pool *pool;        /* not owned; may be NULL */
    int local_rank, local_size;
} zrt__backend_params;

/* Creates the backend called `name`, or fails with ZRT_ERR_UNSUPPORTED
 * naming the backends this build holds. */
zrt_status zrt__backend_create_by_name(const char *name, const zrt__backend_params *p,
                                       zrt__backend **out);

typedef struct zrt__comm_params {
    zrt__backend *be;       /* not owned: scratch and staging come from it */
    zrt__errbuf *err;       /* not owned */
    double timeout_seconds; /* a collective that takes longer fails (nccl) */
} zrt__comm_params;

/* Creates the communicator called `name` ("mpi", "nccl"), or fails with
 * ZRT_ERR_UNSUPPORTED naming the ones this build holds. */
zrt_status zrt__comm_create_by_name(const char *name, const zrt__comm_params *p,
                                    zrt__comm **out);

#endif /* ZRT_RUNTIME_REGISTRY_H */
