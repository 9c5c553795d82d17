/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/common/example_args.h — the command-line flags every zrt example
 * shares, and the few chores every example does the same way: building the
 * config (defaults, then --config FILE, then explicit flags), dumping the
 * parameters, writing the memory report, and failing with a message.
 */
#ifndef ZRT_EXAMPLES_COMMON_EXAMPLE_ARGS_H
#define ZRT_EXAMPLES_COMMON_EXAMPLE_ARGS_H

#include <stdint.h>

#include "zrt/zrt.h"

/* Returns the status from the enclosing function when it is not ZRT_OK. */
#define EXAMPLE_CHECK(expr)                                                              \
    do {                                                                                 \
        zrt_status example_st_ = (expr);                                                 \
        if (example_st_ != ZRT_OK)                                                       \
            return example_st_;                                                          \
    } while (0)

typedef struct example_args {
    int stage; /* -1: from the config */
    int steps;
    uint64_t seed;
    const char *config_path; /* NULL: none */
    int64_t device_mem;      /* -1: from the config */
    const char *dump_params; /* NULL: none */
    const char *mem_report;  /* NULL: none */
    int offload_optimizer;   /* -1: from the config; else zrt_offload_device */
    int offload_param;
    const char *nvme_path; /* NULL: from the config */
    int grad_accum;        /* -1: from the config; else micro-steps per step */
    float clip;            /* < 0: from the config; else gradient_clipping */
    const char *save_dir;  /* NULL: no checkpoints */
    int save_every;        /* save after optimizer steps K, 2K, ...; 0: never */
    const char *resume;    /* NULL: start fresh (or, on a restart by zero-launch,
                              from --save-dir's latest); else a checkpoint
                              directory */
    int async_save;        /* --async-save: "checkpoint": {"async_save": true} */
    const char *backend;   /* NULL: from the config (default cpu); else "cpu"
                              or "cuda" */
} example_args;

/* An example's own flags: returns 1 if it took argv[*i] (and advanced *i
 * past any value it consumed), 0 if the flag is not its own, -1 on a bad
 * value (with a message in err). */
typedef int (*example_flag_fn)(void *user, int argc, char **argv, int *i, char *err,
                               size_t err_size);

/* Parses argv. Returns 0, or 1 after printing usage (--help), or -1 with a
 * message in err. */
int example_parse_args(int argc, char **argv, example_args *args,
                       example_flag_fn own_flags, void *user, char *err, size_t err_size);
/* The flags shared by every example, for --help texts. */
const char *example_common_usage(void);

/* Defaults, then the file in $ZRT_CONFIG (zero-launch --config), then the
 * --config file, then --stage, --device-mem, --backend and the offload
 * flags. */
zrt_status example_build_config(const example_args *args, zrt_config *cfg, char *err,
                                size_t err_size);

/* Collective. Rank 0 writes every parameter, gathered, as raw little-endian
 * f32 in registration order (temporary name, fsync, rename). */
zrt_status example_dump_params(zrt_ctx *ctx, const char *path);

/* Prints the context's last error and ends the job on every rank. Use after
 * a failure that other ranks may not share (they would wait forever). */
int example_fail(zrt_ctx *ctx, const char *what, zrt_status st);

/* Where a training loop is, kept in a checkpoint's user blob so that a
 * resumed run continues exactly: the examples' data and RNG are functions
 * of (seed, step index), so these numbers are their whole state. */
typedef struct example_progress {
    int64_t next_step;    /* optimizer steps done: the loop's next step index */
    uint64_t seed;        /* initialization and data seed */
    int64_t global_batch; /* samples per optimizer step over all ranks */
    int64_t steps;        /* the run's planned steps (the lr schedule uses it) */
} example_progress;

/* Collective. With --resume DIR: loads DIR (its `latest`, or a step
 * directory) into the context, sets p->next_step and p->seed from the
 * checkpoint, and rank 0 prints where the run continues (and a note when
 * the global batch differs). Without --resume: nothing. */
zrt_status example_resume(zrt_ctx *ctx, const example_args *args, example_progress *p);

/* Collective. With --save-dir: saves a checkpoint after optimizer step
 * p->next_step when it is a multiple of --save-every K, or, without K,
 * when it is the run's last (p->steps). */
zrt_status example_maybe_save(zrt_ctx *ctx, const example_args *args,
                              const example_progress *p);
/* Micro-steps per optimizer step of the context's config (1 without
 * accumulation). */
int example_accumulation_steps(zrt_ctx *ctx);

/* After a failure every rank shares (a collective call that agrees on its
 * outcome, such as zrt_load): rank 0 prints the error, the context is
 * destroyed and 1 returned, without ending the job abruptly. */
int example_exit_agreed(zrt_ctx *ctx, const char *what, zrt_status st);

/* Uniform random float in [-1, 1) from a 64-bit state (splitmix64). */
float example_rand_uniform(uint64_t *state);

#endif
