/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/checkpoint.c — zrt_save and zrt_load: a live context's state into a
 * checkpoint and back, through the format of zero/ckpt_format.c
 * (checkpoint.h).
 **
 * Saving. Every rank writes its shard of every layer, whatever the stage:
 * at stage 0 the state is replicated, so rank r writes shard r and the
 * files are the same shape at every stage. The order of events:
 *   1. rank 0 creates DIR/step-N.tmp/ (removing a leftover of a crashed
 *      save of the same step);
 *   2. every rank writes rank-R.zrtc.tmp, fsyncs it, renames it to
 *      rank-R.zrtc and fsyncs the directory;
 *   3. the ranks' file sizes and header checksums go to rank 0 (all-gather),
 *      and every rank learns whether every rank succeeded;
 *   4. rank 0 writes meta.json the same way, renames step-N.tmp to step-N
 *      (exchanging it with an older step-N, which is then removed), fsyncs
 *      DIR, and only then replaces DIR/latest (temporary name, fsync,
 *      rename, fsync DIR).
 * A crash anywhere before the rename of `latest` leaves `latest` naming the
 * previous step directory, which nothing in this sequence writes into; a
 * crash after it leaves the new one, complete and durable. The one exception
 * is replacing the very step `latest` names: the exchange swaps one complete
 * directory for another atomically, so `latest` names a complete one at
 * every moment.
 *
 * Loading. Every rank resolves the step directory and reads meta.json, maps
 * its registered parameters to the checkpoint's by name, then:
 *   pass 1 reads every section it will take elements from and checks its
 *          CRC32C; the ranks agree, and any failure returns before anything
 *          changed;
 *   pass 2 reads the elements of this rank's range of each layer (parameters
 *          and both moments, and with 16-bit parameters the master copy)
 *          from whichever old rank files hold them, into memory or, for
 *          state on NVMe, into the staging buffer and then the swap file's
 *          current slot, one layer at a time; a checkpoint of another
 *          precision is converted from its f32 values (load_layer);
 *   then stages 1-2 all-gather the parameters and stage 3 re-gathers its
 *   persistent layers. Pass 2 trusts that the files did not change since
 *   pass 1 (a checkpoint must not be written while it is loaded).
 *
 * 16-bit parameters (format version 2) add an f32 "master" section per
 * layer, hold "param" in their dtype, and put fp16's loss scaler in
 * meta.json; the scaler is restored with the step (restore_scaler).
 *
 * Hybrid sharding (hybrid_shard_size S < N): every shard group holds the
 * same state, so one copy is written: the ranks of group 0 (world ranks
 * 0 .. S-1, whose shard index is their rank) write rank-R.zrtc and meta.json
 * says world_size S, as if S ranks had saved it; the other groups only take
 * part in the agreements. Loading needs nothing special: every rank reads
 * its range of the plan over its shard group from those files, which is
 * what resharding between world sizes does already.
 *
 * Pipelines (pipeline_stages P > 1): each stage holds other parameters, so
 * each stage saves a checkpoint of its own into step-N/stage-S, as if its D
 * data-parallel ranks were the world (rank files named by the rank's place
 * in its stage, meta.json by the stage's first rank); rank 0 then writes
 * step-N/meta.json naming the P stages (checkpoint.h), publishes and moves
 * latest as above. Loading needs the same P: each stage loads its stage-S
 * like any checkpoint (resharding onto another data-parallel size included).
 *
 * Outcomes are agreed across ranks after every phase, and the failing rank's
 * sentence is broadcast, so every rank returns an error naming the cause and
 * nobody waits in a collective that another rank skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../offload/crc32c.h"
#include "../runtime/file_limit.h"
#include "../runtime/sized.h"
#include "checkpoint.h"
#include "ckpt_writer.h"
#include "ctx.h"

enum {
    KIND_PARAM = ZRT__CKPT_PARAM,
    KIND_EXP_AVG = ZRT__CKPT_EXP_AVG,
    KIND_EXP_AVG_SQ = ZRT__CKPT_EXP_AVG_SQ,
    KIND_MASTER = ZRT__CKPT_MASTER
};

/* ---- agreeing on outcomes ------------------------------------------------------------
 */

/* Every rank learns whether any failed; the lowest failing rank's sentence
 * is broadcast so that every rank's error names the real cause. */
static zrt_status agree_share(zrt_ctx *ctx, zrt_status local, const char *call,
                              const char *consequence)
{
    int first = -1;
    ZRT_CHECK(ctx->comm->ops->agree(ctx->comm, local, &first));
    if (first < 0)
        return ZRT_OK;
    char text[ZRT__ERRBUF_SIZE];
    memcpy(text, ctx->err.text, sizeof text);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(ctx->comm->ops->broadcast(ctx->comm, text, sizeof text, first, &req));
    ZRT_CHECK(zrt__comm_wait(ctx, req));
    if (local != ZRT_OK && !consequence)
        return local;
    text[sizeof text - 1] = '\0';
    const char *what = text;
    if (!strncmp(what, "rank ", 5) && strstr(what, ": ")) /* the text names its rank */
        what = strstr(what, ": ") + 2;
    return zrt__fail(&ctx->err, local != ZRT_OK ? local : ZRT_ERR_REMOTE,
                     "%s failed on rank %d: %s%s", call, first, what,
                     consequence ? consequence : "");
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- where a rank's state lives ---------------------------------------------------- */

/* One kind of state of one layer on this rank: this rank's range of the
 * flat buffer [range_lo, range_lo + range_len), in memory or in a swap
 * file's current slot. Parameters have the context's dtype (16-bit ones
 * are never on NVMe); the other kinds are f32. */
typedef struct state_place {
    zrt__mover *mover; /* NULL: in memory */
    uint64_t swap_offset;
    void *mem;           /* element range_lo of the layer */
    const zrt__buf *buf; /* the buffer mem points into */
    size_t esize;        /* bytes per element */
} state_place;

/* The kinds this context holds: param, exp_avg, exp_avg_sq, and master
 * with 16-bit parameters. */
static int ctx_nkinds(const zrt_ctx *ctx)
{
    return zrt__mixed(ctx) ? ZRT__CKPT_MAX_KINDS : ZRT__CKPT_NKINDS;
}

static void place_of(zrt_ctx *ctx, int kind, int l, state_place *out)
{
    zrt__layer_state *ls = &ctx->layers[l];
    int slot = ctx->nvme_slot;
    *out = (state_place){.esize = kind == KIND_PARAM ? ctx->esize : sizeof(float)};
    if (kind == KIND_MASTER) {
        out->buf = &ls->master;
        out->mem = ls->master.ptr;
    } else if (kind == KIND_PARAM && zrt__params_on_nvme(ctx)) {
        out->mover = ctx->param_nvme.mover;
        out->swap_offset = ls->swap_p[slot];
    } else if (kind == KIND_PARAM) {
        out->buf = ctx->cfg.stage < 3 ? &ls->param_full : &ls->param_shard;
        out->mem = zrt__owned_param(ctx, l);
    } else if (ctx->optim_nvme.mover) {
        out->mover = ctx->optim_nvme.mover;
        out->swap_offset = kind == KIND_EXP_AVG ? ls->swap_m[slot] : ls->swap_v[slot];
    } else {
        out->buf = kind == KIND_EXP_AVG ? &ls->m : &ls->v;
        out->mem = out->buf->ptr;
    }
}

static zrt_status require_reachable(zrt_ctx *ctx, const state_place *p, int kind, int l,
                                    const char *call)
{
    if (p->mover || p->buf->tier != ZRT_TIER_DEVICE || ctx->be->caps.device_is_host)
        return ZRT_OK;
    return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                     "%s: %s of layer %d lives in device memory the host cannot read on "
                     "backend '%s'; checkpoints through a staging copy are not "
                     "implemented yet",
                     call, zrt__ckpt_kind(kind), l, ctx->be->ops->name);
}

/* The NVMe staging buffer (zero/nvme.c): two (p, m, v) sets of the largest
 * range, idle between steps; one range fits at its start. */
static float *nvme_staging(zrt_ctx *ctx)
{
    return ctx->step_staging.ptr;
}

static zrt_status swap_io(zrt_ctx *ctx, const state_place *p, int64_t elems, void *buf,
                          int write)
{
    uint64_t ticket = 0;
    size_t bytes = (size_t)elems * p->esize;
    zrt_status st = write
                        ? zrt__mover_write(p->mover, p->swap_offset, buf, bytes, &ticket)
                        : zrt__mover_read(p->mover, p->swap_offset, buf, bytes, &ticket);
    if (st == ZRT_OK)
        st = zrt__mover_wait(p->mover, ticket, &ctx->err);
    if (st != ZRT_OK) /* a later step reads (and verifies) the slot again */
        zrt__mover_forget_failure(p->mover);
    return st;
}

/* Neither save nor load runs inside a step: no layer live, no backward
 * since the last optimizer step; collectives in flight are completed. */
static zrt_status require_between_steps(zrt_ctx *ctx, const char *call)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        if (ls->fwd_live || ls->bwd_live)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                             "%s: layer %d is live; call it "
                             "between steps",
                             call, l);
        if (ls->bwd_done || ctx->micro != 0)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                             "%s: backward ran since the last "
                             "optimizer step (micro-step %d of %d); call it after "
                             "zrt_step applies the optimizer",
                             call, ctx->micro + 1, ctx->cfg.gradient_accumulation_steps);
    }
    return zrt__engine_drain(ctx);
}

static zrt_status check_info(zrt_ctx *ctx, const zrt_ckpt_info *info, const char *call)
{
    if (!info)
        return ZRT_OK;
    if (info->struct_size != sizeof(zrt_ckpt_info))
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: info->struct_size is %zu, "
                         "expected %zu (call zrt_ckpt_info_init)",
                         call, info->struct_size, sizeof(zrt_ckpt_info));
    if (info->user_bytes > ZRT_CKPT_USER_MAX)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: info->user_bytes is %zu, "
                         "more than ZRT_CKPT_USER_MAX (%d)",
                         call, info->user_bytes, ZRT_CKPT_USER_MAX);
    return ZRT_OK;
}

zrt_status zrt_ckpt_info_init(zrt_ckpt_info *info)
{
    return zrt__sized_init(info, sizeof *info);
}

/* ---- meta.json: writing ----------------------------------------------------------- */

typedef struct rank_summary { /* all-gathered to rank 0: 16 bytes */
    uint64_t bytes;
    uint32_t header_crc;
    uint32_t ok;
} rank_summary;

static const char *device_name(int device)
{
    return device == ZRT_OFFLOAD_CPU    ? "cpu"
           : device == ZRT_OFFLOAD_NVME ? "nvme"
                                        : "none";
}

static json_t *layers_json(const zrt_ctx *ctx)
{
    json_t *a = json_array();
    for (int l = 0; a && l < ctx->plan.nlayers; l++) {
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        json_array_append_new(a, json_pack("{s:i, s:I, s:I, s:I}", "layer", l, "numel",
                                           (json_int_t)lp->numel, "flat_numel",
                                           (json_int_t)lp->flat_numel, "shard_numel",
                                           (json_int_t)lp->shard_numel));
    }
    return a;
}

static json_t *tensors_json(const zrt_ctx *ctx)
{
    json_t *a = json_array();
    for (int i = 0; a && i < ctx->nparams; i++) {
        const zrt__param_info *p = &ctx->params[i];
        json_t *shape = json_array();
        for (int d = 0; d < p->desc.ndim; d++)
            json_array_append_new(shape, json_integer(p->desc.shape[d]));
        json_array_append_new(
            a, json_pack("{s:s, s:i, s:I, s:I, s:o, s:i}", "name", p->name, "layer",
                         p->desc.layer, "offset", (json_int_t)ctx->plan.tensors[i].offset,
                         "numel", (json_int_t)p->numel, "shape", shape, "no_weight_decay",
                         p->desc.no_weight_decay ? 1 : 0));
    }
    return a;
}

static json_t *config_json(const zrt_ctx *ctx)
{
    const zrt_config *c = &ctx->cfg;
    return json_pack("{s:i, s:s, s:s, s:i, s:f, s:s}", "stage", c->stage,
                     "offload_optimizer", device_name(c->offload_optimizer.device),
                     "offload_param", device_name(c->offload_param.device),
                     "gradient_accumulation_steps", c->gradient_accumulation_steps,
                     "gradient_clipping", (double)c->gradient_clipping, "backend",
                     c->backend);
}

static json_t *files_json(const rank_summary *all, int world)
{
    json_t *a = json_array();
    for (int r = 0; a && r < world; r++) {
        char name[32], crc[16];
        snprintf(name, sizeof name, "rank-%05d.zrtc", r);
        snprintf(crc, sizeof crc, "%08x", all[r].header_crc);
        json_array_append_new(a, json_pack("{s:s, s:i, s:I, s:s}", "name", name, "rank",
                                           r, "bytes", (json_int_t)all[r].bytes,
                                           "header_crc32c", crc));
    }
    return a;
}

static json_t *user_json(const zrt_ckpt_info *info)
{
    size_t n = info ? info->user_bytes : 0;
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", info->user[i]);
    hex[2 * n] = '\0';
    json_t *o = json_pack("{s:I, s:s}", "bytes", (json_int_t)n, "hex", hex);
    free(hex);
    return o;
}

/* The format version a context's checkpoint is written as. */
static int ctx_version(const zrt_ctx *ctx)
{
    return zrt__mixed(ctx) ? ZRT__CKPT_VERSION : ZRT__CKPT_VERSION_F32;
}

/* fp16's loss scaler (bf16's is a fixed 1); scale and min_scale are
 * written with 17 digits, so they read back as the same floats. */
static json_t *scaler_json(const zrt_ctx *ctx)
{
    const zrt__loss_scaler *s = &ctx->scaler;
    return json_pack(
        "{s:i, s:f, s:f, s:i, s:i, s:i, s:I, s:I, s:I}", "dynamic", s->dynamic, "scale",
        (double)s->scale, "min_scale", (double)s->min_scale, "window", s->window,
        "hysteresis", s->hysteresis, "hysteresis_left", s->hysteresis_left, "iter",
        (json_int_t)s->iter, "last_overflow_iter", (json_int_t)s->last_overflow_iter,
        "skipped", (json_int_t)s->skipped);
}

static json_t *model_json(const zrt_ctx *ctx)
{
    json_t *o = json_object();
    for (int i = 0; o && i < ctx->nmodel_dims; i++)
        json_object_set_new(o, ctx->model_dims[i].name,
                            json_integer((json_int_t)ctx->model_dims[i].value));
    return o;
}

/* meta.json as of now, but for the rank files ("files", added by
 * meta_text once they are written): an asynchronous save takes it when
 * it starts, before later steps change the step count and the scaler. */
static json_t *meta_json(const zrt_ctx *ctx, const zrt_ckpt_info *info)
{
    json_t *kinds = json_array();
    for (int k = 0; kinds && k < ctx_nkinds(ctx); k++)
        json_array_append_new(kinds, json_string(zrt__ckpt_kind(k)));
    json_t *root =
        json_pack("{s:s, s:i, s:s, s:I, s:i, s:i, s:i, s:s, s:o?, s:o?}", "format",
                  "zrt-checkpoint", "version", ctx_version(ctx), "zrt_version", "0.1.0",
                  "step", (json_int_t)ctx->step, "world_size", ctx->plan.world, "stage",
                  ctx->cfg.stage, "alignment", ctx->plan.alignment, "dtype",
                  zrt_dtype_str(ctx->pdtype), "kinds", kinds, "config", config_json(ctx));
    if (root && zrt__mixed(ctx))
        json_object_set_new(root, "loss_scaler", scaler_json(ctx));
    if (root)
        json_object_set_new(root, "layers", layers_json(ctx));
    if (root)
        json_object_set_new(root, "tensors", tensors_json(ctx));
    if (root && ctx->nmodel_dims)
        json_object_set_new(root, "model", model_json(ctx));
    if (root)
        json_object_set_new(root, "user", user_json(info));
    return root;
}

/* The JSON text of meta (meta_json's, taken at the save's start) with the
 * rank files added and its CRC32C appended as the last member. */
static zrt_status meta_text(zrt_ctx *ctx, json_t *meta, const rank_summary *all,
                            char **out, size_t *len)
{
    json_t *files = files_json(all, ctx->plan.world);
    char *body = NULL;
    if (files && json_object_set_new(meta, "files", files) == 0)
        body = json_dumps(meta, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!body)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_save: cannot build "
                         "meta.json");
    zrt_status st = zrt__ckpt_seal_meta(body, out, len, &ctx->err);
    free(body);
    return st;
}
/* ---- saving ---------------------------------------------------------------------- */

typedef struct save_job {
    char dir[ZRT__CKPT_PATH];
    char name[32];                   /* step-00000020 */
    char final[ZRT__CKPT_PATH];      /* dir/step-00000020 */
    char tmp[ZRT__CKPT_PATH + 8];    /* dir/step-00000020.tmp */
    char files[ZRT__CKPT_PATH + 32]; /* where this rank's files go: tmp, or
                                        tmp/stage-S in a pipeline */
    rank_summary *all;               /* the shard group's entries */
    int64_t step;                    /* the context's step when it started */
    json_t *meta;                    /* writes_meta ranks: meta.json but for
                                        the files, taken at the start */
    char call[64];                   /* how messages name this save */
    double t0;                       /* when it started */
} save_job;

static zrt_status save_prepare(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info,
                               save_job *job)
{
    if (!dir || !*dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_save: no directory given");
    ZRT_CHECK(check_info(ctx, info, "zrt_save"));
    ZRT_CHECK(require_between_steps(ctx, "zrt_save"));
    if (snprintf(job->dir, sizeof job->dir, "%s", dir) >= (int)sizeof job->dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_save: directory name too "
                         "long");
    job->step = ctx->step;
    snprintf(job->call, sizeof job->call,
             ctx->cfg.checkpoint_async ? "zrt_save of step %ld (asynchronous)"
                                       : "zrt_save",
             ctx->step);
    snprintf(job->name, sizeof job->name, "step-%08ld", ctx->step);
    ZRT_CHECK(zrt__ckpt_join(job->final, sizeof job->final, dir, job->name, &ctx->err));
    snprintf(job->tmp, sizeof job->tmp, "%s.tmp", job->final);
    snprintf(job->files, sizeof job->files, "%s", job->tmp);
    if (ctx->pipe_comm)
        snprintf(job->files, sizeof job->files, "%s/stage-%d", job->tmp,
                 ctx->pipe_comm->rank);
    job->all = calloc((size_t)ctx->shard_comm->size, sizeof *job->all);
    if (!job->all)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_save: no memory for %d "
                         "file summaries",
                         ctx->shard_comm->size);
    return ZRT_OK;
}

/* Rank 0: dir exists, step-N.tmp is new and empty. */
static zrt_status make_tmp_dir(const save_job *job, zrt__errbuf *err)
{
    ZRT_CHECK(zrt__ckpt_make_dirs(job->dir, err));
    ZRT_CHECK(zrt__ckpt_remove_step_dir(job->tmp, err)); /* a crashed save's leftover */
    if (mkdir(job->tmp, 0755) != 0)
        return zrt__ckpt_io_fail(err, "create the directory", job->tmp, errno);
    return zrt__ckpt_fsync_dir(job->dir, err);
}

/* This rank's sections: shard `rank` of every layer with parameters, each
 * kind, in table order, placed back to back after the table. */
static zrt__ckpt_section *plan_sections(zrt_ctx *ctx, int *count)
{
    int n = 0, nkinds = ctx_nkinds(ctx);
    for (int l = 0; l < ctx->plan.nlayers; l++)
        n += ctx->plan.layers[l].numel > 0 ? nkinds : 0;
    zrt__ckpt_section *s = calloc((size_t)n + 1, sizeof *s);
    if (!s)
        return NULL;
    uint64_t at = ZRT__CKPT_HEADER_BYTES + (uint64_t)n * ZRT__CKPT_ENTRY_BYTES;
    int i = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        for (int k = 0; lp->numel > 0 && k < nkinds; k++, i++) {
            snprintf(s[i].kind, sizeof s[i].kind, "%s", zrt__ckpt_kind(k));
            s[i].layer = l;
            s[i].dtype = k == KIND_PARAM ? ctx->pdtype : ZRT_F32;
            s[i].first = (int64_t)ctx->shard_comm->rank * lp->shard_numel;
            s[i].numel = lp->shard_numel;
            s[i].offset = at;
            s[i].bytes = (uint64_t)lp->shard_numel * zrt_dtype_size(s[i].dtype);
            at += s[i].bytes;
        }
    }
    *count = n;
    return s;
}

/* Where a section's data is: in memory, or read from the swap file into
 * the staging buffer (valid until the next section). */
static zrt_status section_source(zrt_ctx *ctx, int kind, const zrt__ckpt_section *s,
                                 const char **out)
{
    const zrt__layer_state *ls = &ctx->layers[s->layer];
    state_place p;
    place_of(ctx, kind, s->layer, &p);
    ZRT_CHECK(require_reachable(ctx, &p, kind, s->layer, "zrt_save"));
    const char *range = p.mem;
    if (p.mover) {
        ZRT_CHECK(swap_io(ctx, &p, ls->range_len, nvme_staging(ctx), 0));
        range = (const char *)nvme_staging(ctx);
    }
    *out = range + (size_t)(s->first - ls->range_lo) * p.esize;
    return ZRT_OK;
}

/* Writes one section's data and sets its CRC. */
static zrt_status write_section(zrt_ctx *ctx, int fd, const char *path, int kind,
                                zrt__ckpt_section *s)
{
    const char *src = NULL;
    ZRT_CHECK(section_source(ctx, kind, s, &src));
    s->crc = zrt__crc32c(0, src, s->bytes);
    return zrt__ckpt_pwrite(fd, src, s->bytes, s->offset, path, &ctx->err);
}

static zrt_status write_header_and_table(zrt_ctx *ctx, int fd, const char *path,
                                         const zrt__ckpt_section *s, int n,
                                         rank_summary *out)
{
    zrt__ckpt_file_id id = {.version = ctx_version(ctx),
                            .rank = ctx->shard_comm->rank,
                            .world = ctx->plan.world,
                            .step = ctx->step};
    return zrt__ckpt_write_header_and_table(fd, path, &id, s, n, &out->header_crc,
                                            &out->bytes, &ctx->err);
}

static zrt_status write_rank_sections(zrt_ctx *ctx, int fd, const char *path,
                                      rank_summary *out)
{
    int n = 0;
    zrt__ckpt_section *s = plan_sections(ctx, &n);
    if (!s)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_save: no memory for the "
                         "section table");
    uint64_t file_bytes = n ? s[n - 1].offset + s[n - 1].bytes : ZRT__CKPT_HEADER_BYTES;
    zrt_status st =
        zrt__check_file_size_limit(file_bytes, "the checkpoint file", path, &ctx->err);
    for (int i = 0; st == ZRT_OK && i < n; i++)
        st = write_section(ctx, fd, path, i % ctx_nkinds(ctx), &s[i]);
    if (st == ZRT_OK)
        st = write_header_and_table(ctx, fd, path, s, n, out);
    free(s);
    return st;
}

/* rank-R.zrtc (R: this rank's place in its shard group) through a
 * temporary name, durable when this returns. */
static zrt_status write_rank_file(zrt_ctx *ctx, const save_job *job, rank_summary *out)
{
    char name[32], path[ZRT__CKPT_PATH + 64], tmp[ZRT__CKPT_PATH + 80];
    snprintf(name, sizeof name, "rank-%05d.zrtc", ctx->shard_comm->rank);
    ZRT_CHECK(zrt__ckpt_join(path, sizeof path, job->files, name, &ctx->err));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return zrt__ckpt_io_fail(&ctx->err, "create", tmp, errno);
    zrt_status st = write_rank_sections(ctx, fd, tmp, out);
    if (st == ZRT_OK && fsync(fd) != 0)
        st = zrt__ckpt_io_fail(&ctx->err, "fsync", tmp, errno);
    if (close(fd) != 0 && st == ZRT_OK)
        st = zrt__ckpt_io_fail(&ctx->err, "close", tmp, errno);
    if (st == ZRT_OK && rename(tmp, path) != 0)
        st = zrt__ckpt_io_fail(&ctx->err, "rename into place", tmp, errno);
    if (st != ZRT_OK) {
        unlink(tmp);
        return st;
    }
    out->ok = 1;
    return zrt__ckpt_fsync_dir(job->files, &ctx->err);
}

/* Whether this rank writes a file: one copy of the state, by shard group 0
 * (with no hybrid sharding, every rank; in a pipeline, every stage's). */
static int writes_files(const zrt_ctx *ctx)
{
    return ctx->pipe_comm || ctx->comm->rank < ctx->plan.world;
}

/* Whether this rank writes meta.json of its files: the first of shard group 0
 * (rank 0), or of each stage. */
static int writes_meta(const zrt_ctx *ctx)
{
    return ctx->pipe_comm ? ctx->shard_comm->rank == 0 : ctx->comm->rank == 0;
}

/* The shard group's sizes and header CRCs, on every member. */
static zrt_status gather_summaries(zrt_ctx *ctx, const rank_summary *mine,
                                   rank_summary *all)
{
    zrt__comm_req *req = NULL;
    zrt__comm *c = ctx->shard_comm;
    ZRT_CHECK(
        c->ops->all_gather(c, mine, all, sizeof *mine / sizeof(float), ZRT_F32, &req));
    return zrt__comm_wait_in(ctx, c, req);
}

/* A pipeline: each stage's first rank makes tmp/stage-S. */
static zrt_status make_stage_dir(zrt_ctx *ctx, const save_job *job)
{
    if (!ctx->pipe_comm || ctx->shard_comm->rank != 0)
        return ZRT_OK;
    if (mkdir(job->files, 0755) != 0)
        return zrt__ckpt_io_fail(&ctx->err, "create the directory", job->files, errno);
    return zrt__ckpt_fsync_dir(job->tmp, &ctx->err);
}

/* Rank 0: step-N.tmp becomes step-N (an older step-N is exchanged out and
 * removed). */
static zrt_status publish_dir(zrt_ctx *ctx, const save_job *job)
{
    if (access(job->final, F_OK) != 0) {
        if (rename(job->tmp, job->final) != 0)
            return zrt__ckpt_io_fail(&ctx->err, "rename into place", job->tmp, errno);
        return zrt__ckpt_fsync_dir(job->dir, &ctx->err);
    }
    if (renameat2(AT_FDCWD, job->tmp, AT_FDCWD, job->final, RENAME_EXCHANGE) != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_IO,
                         "zrt_save: cannot replace '%s' with '%s' "
                         "atomically (renameat2 RENAME_EXCHANGE): %s",
                         job->final, job->tmp, strerror(errno));
    ZRT_CHECK(zrt__ckpt_fsync_dir(job->dir, &ctx->err));
    if (zrt__ckpt_remove_step_dir(job->tmp, &ctx->err) !=
        ZRT_OK) /* the next save retries */
        zrt_log(ctx, 1, "zrt_save: %s", ctx->err.text);
    return ZRT_OK;
}

/* After every rank's file is durable: the meta.json describing them. */
static zrt_status write_files_meta(zrt_ctx *ctx, const save_job *job)
{
    if (!writes_meta(ctx))
        return ZRT_OK;
    for (int r = 0; r < ctx->plan.world; r++)
        if (!job->all[r].ok) /* every rank agreed it succeeded: a bug if this fails */
            return zrt__fail(&ctx->err, ZRT_ERR_INTERNAL,
                             "zrt_save: rank %d reported "
                             "success without a durable file in '%s'",
                             r, job->files);
    char *text = NULL;
    size_t len = 0;
    ZRT_CHECK(meta_text(ctx, job->meta, job->all, &text, &len));
    zrt_status st = zrt__ckpt_write_atomic(job->files, "meta.json", text, len, &ctx->err);
    free(text);
    return st;
}

/* A pipeline's step directory: meta.json naming its stages (checkpoint.h). */
static zrt_status write_pipeline_meta(zrt_ctx *ctx, const save_job *job)
{
    json_t *root =
        json_pack("{s:s, s:i, s:I, s:i}", "format", ZRT__CKPT_PIPELINE_FORMAT, "version",
                  1, "step", (json_int_t)job->step, "stages", ctx->pipe_comm->size);
    char *body = root ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!body)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_save: cannot build the pipeline's meta.json");
    char *text = NULL;
    size_t len = 0;
    zrt_status st = zrt__ckpt_seal_meta(body, &text, &len, &ctx->err);
    free(body);
    if (st == ZRT_OK)
        st = zrt__ckpt_write_atomic(job->tmp, "meta.json", text, len, &ctx->err);
    free(text);
    return st;
}

/* Rank 0, after every meta.json of the files is durable: the pipeline's
 * meta.json, the directory, then latest. */
static zrt_status finish_save(zrt_ctx *ctx, const save_job *job)
{
    zrt_status st = ctx->pipe_comm ? write_pipeline_meta(ctx, job) : ZRT_OK;
    if (st == ZRT_OK)
        st = publish_dir(ctx, job);
    char latest[48];
    int n = snprintf(latest, sizeof latest, "%s\n", job->name);
    if (st == ZRT_OK)
        st = zrt__ckpt_write_atomic(job->dir, "latest", latest, (size_t)n, &ctx->err);
    return st;
}

/* Appended to a failed save's error: what a user most wants to know next. */
#define KEPT_LATEST "; nothing was published: 'latest' is unchanged"

/* Rank 0, after every rank's failed or finished write: frees the space a
 * failed save took (a full disk is the usual cause). Best effort: the next
 * save removes a leftover step-N.tmp anyway. */
static void discard_tmp_dir(zrt_ctx *ctx, const save_job *job)
{
    if (ctx->comm->rank != 0)
        return;
    zrt__errbuf scratch = {.rank = ctx->err.rank};
    if (zrt__ckpt_remove_step_dir(job->tmp, &scratch) != ZRT_OK)
        zrt_log(ctx, 1, "zrt_save: %s", scratch.text);
}

static int64_t total_bytes(const rank_summary *all, int world)
{
    int64_t sum = 0;
    for (int r = 0; r < world; r++)
        sum += (int64_t)all[r].bytes;
    return sum;
}

static void free_job(save_job *job)
{
    if (!job)
        return;
    json_decref(job->meta);
    free(job->all);
    free(job);
}

/* Every rank: the job prepared, step-N.tmp (and a pipeline's stage
 * directories) made, meta.json taken on the ranks that write it; agreed
 * after each phase. */
static zrt_status save_begin(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info,
                             save_job *job)
{
    job->t0 = now_seconds();
    zrt_status st = save_prepare(ctx, dir, info, job);
    if (st == ZRT_OK && writes_meta(ctx) && !(job->meta = meta_json(ctx, info)))
        st = zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                       "zrt_save: cannot build meta.json");
    ZRT_CHECK(agree_share(ctx, st, "zrt_save", NULL));
    st = ctx->comm->rank == 0 ? make_tmp_dir(job, &ctx->err) : ZRT_OK;
    ZRT_CHECK(agree_share(ctx, st, "zrt_save", NULL));
    return agree_share(ctx, make_stage_dir(ctx, job), "zrt_save", KEPT_LATEST);
}

/* Every rank, once its own file is durable (written: ZRT_OK) or failed:
 * the files' summaries to the meta.json writers, meta.json, then rank 0
 * publishes the directory and moves `latest`; agreed after each phase. */
static zrt_status complete_save(zrt_ctx *ctx, save_job *job, zrt_status written,
                                const rank_summary *mine)
{
    zrt_status st = gather_summaries(ctx, mine, job->all);
    if (st != ZRT_OK) /* the communicator failed: nothing left to agree with */
        return st;
    st = agree_share(ctx, written, job->call, KEPT_LATEST);
    if (st == ZRT_OK)
        st = agree_share(ctx, write_files_meta(ctx, job), job->call, KEPT_LATEST);
    if (st != ZRT_OK) {
        discard_tmp_dir(ctx, job);
        return st;
    }
    st = ctx->comm->rank == 0 ? finish_save(ctx, job) : ZRT_OK;
    ZRT_CHECK(agree_share(ctx, st, job->call, KEPT_LATEST));
    if (ctx->comm->rank == 0) {
        char size[64];
        zrt_log(ctx, 2, "%s: wrote %s (%d rank files%s, %s) in %.3f s", job->call,
                job->final, ctx->plan.world, ctx->pipe_comm ? " a stage" : "",
                zrt__fmt_bytes(total_bytes(job->all, ctx->plan.world), size, sizeof size),
                now_seconds() - job->t0);
    }
    return ZRT_OK;
}

/* ---- asynchronous saves ---------------------------------------------------------
 *
 * zrt_save starts like a synchronous save (save_begin), then copies this
 * rank's sections, in file order, into ctx->ckpt_buffer, where a writer
 * thread (ckpt_writer.h) takes them to disk; with NVMe state a section is
 * read into the NVMe staging first, as a synchronous save does. The ranks
 * agree that every copy succeeded and zrt_save returns: everything it
 * copied is the state of this step, whatever later steps change.
 * complete_save, the same as a synchronous save's, then runs on the
 * training thread at the first zrt_step whose poll finds every rank's
 * writer finished (one agreement per step while a save is pending), or in
 * zrt_save_wait (which waits for this rank's writer). Until then `latest`
 * names the previous checkpoint, so a crash at any moment leaves a complete
 * one, as with synchronous saves. */

struct zrt__ckpt_pending {
    save_job *job;
    zrt__ckpt_writer *writer; /* NULL on a rank that writes no file */
};

/* One section's data, from memory or through the NVMe staging, into the
 * writer's ring. */
static zrt_status push_section(zrt_ctx *ctx, zrt__ckpt_writer *w, int kind,
                               const zrt__ckpt_section *s)
{
    const char *src = NULL;
    ZRT_CHECK(section_source(ctx, kind, s, &src));
    zrt_status st = zrt__ckpt_writer_push(w, src, s->bytes);
    if (st != ZRT_OK) /* the writer failed (a full disk): join says why */
        return zrt__fail(&ctx->err, st, "zrt_save: the checkpoint writer stopped");
    return ZRT_OK;
}

/* After a failed copy: a writer that failed (the copy's cause) is joined
 * into ctx->err, for its sentence (a full disk); one still waiting for
 * data is cancelled, keeping the copy's own sentence. */
static void stop_writer(zrt_ctx *ctx, zrt__ckpt_writer **w)
{
    uint32_t crc;
    uint64_t bytes;
    zrt__errbuf scratch = {.rank = ctx->err.rank};
    int failed = zrt__ckpt_writer_finished(*w);
    if (!failed)
        zrt__ckpt_writer_cancel(*w);
    zrt__ckpt_writer_join(*w, &crc, &bytes, failed ? &ctx->err : &scratch);
    *w = NULL;
}

/* Starts this rank's writer and copies every section into its ring. */
static zrt_status stage_rank_file(zrt_ctx *ctx, const save_job *job,
                                  zrt__ckpt_writer **out)
{
    int n = 0;
    zrt__ckpt_section *s = plan_sections(ctx, &n);
    if (!s)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_save: no memory for the section table");
    char name[32];
    snprintf(name, sizeof name, "rank-%05d.zrtc", ctx->shard_comm->rank);
    zrt__ckpt_file_id id = {.version = ctx_version(ctx),
                            .rank = ctx->shard_comm->rank,
                            .world = ctx->plan.world,
                            .step = ctx->step};
    zrt_status st =
        zrt__ckpt_writer_start(job->files, name, &id, s, n, ctx->ckpt_buffer.ptr,
                               ctx->ckpt_buffer.bytes, &ctx->err, out);
    for (int i = 0; st == ZRT_OK && i < n; i++)
        st = push_section(ctx, *out, i % ctx_nkinds(ctx), &s[i]);
    free(s);
    if (st != ZRT_OK && *out)
        stop_writer(ctx, out);
    return st;
}

/* Ends this rank's writer and records its file; the outcome of the write. */
static zrt_status join_writer(zrt_ctx *ctx, zrt__ckpt_writer *w, rank_summary *mine)
{
    if (!w)
        return ZRT_OK;
    zrt_status st = zrt__ckpt_writer_join(w, &mine->header_crc, &mine->bytes, &ctx->err);
    mine->ok = st == ZRT_OK;
    return st;
}

static zrt_status poll_pending(zrt_ctx *ctx);
static void release_pending(zrt_ctx *ctx);

static zrt_status start_async(zrt_ctx *ctx, save_job *job)
{
    zrt__ckpt_writer *w = NULL;
    zrt_status st = writes_files(ctx) ? stage_rank_file(ctx, job, &w) : ZRT_OK;
    struct zrt__ckpt_pending *p = st == ZRT_OK ? calloc(1, sizeof *p) : NULL;
    if (st == ZRT_OK && !p)
        st = zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory");
    st = agree_share(ctx, st, job->call, KEPT_LATEST);
    if (st != ZRT_OK) { /* here or on another rank */
        if (w)
            stop_writer(ctx, &w);
        discard_tmp_dir(ctx, job);
        free(p);
        free_job(job);
        return st;
    }
    *p = (struct zrt__ckpt_pending){.job = job, .writer = w};
    ctx->ckpt_pending = p;
    ctx->ckpt_poll = poll_pending;
    ctx->ckpt_release = release_pending;
    return ZRT_OK;
}

/* Waits for this rank's writer, then publishes as a synchronous save
 * does (collective). */
static zrt_status publish_pending(zrt_ctx *ctx)
{
    struct zrt__ckpt_pending *p = ctx->ckpt_pending;
    ctx->ckpt_pending = NULL;
    rank_summary mine = {0};
    zrt_status written = join_writer(ctx, p->writer, &mine);
    zrt_status st = complete_save(ctx, p->job, written, &mine);
    free_job(p->job);
    free(p);
    return st;
}

/* A failed asynchronous save: logged now, returned by zrt_save_wait. */
static void keep_failure(zrt_ctx *ctx, zrt_status st)
{
    if (st == ZRT_OK || ctx->ckpt_failed != ZRT_OK)
        return;
    ctx->ckpt_failed = st;
    memcpy(ctx->ckpt_failed_text, ctx->err.text, sizeof ctx->ckpt_failed_text);
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 1, "%s", ctx->err.text);
}

static zrt_status poll_pending(zrt_ctx *ctx)
{
    if (!ctx->ckpt_pending)
        return ZRT_OK;
    zrt__ckpt_writer *w = ctx->ckpt_pending->writer;
    int first = -1;
    zrt_status mine = !w || zrt__ckpt_writer_finished(w) ? ZRT_OK : ZRT_ERR_STATE;
    ZRT_CHECK(ctx->comm->ops->agree(ctx->comm, mine, &first));
    if (first >= 0) /* a rank is still writing */
        return ZRT_OK;
    keep_failure(ctx, publish_pending(ctx));
    return ZRT_OK;
}

/* Publishes a pending save (waiting for this rank's writer), keeping its
 * failure for zrt_save_wait. */
static void settle_pending(zrt_ctx *ctx)
{
    if (ctx->ckpt_pending)
        keep_failure(ctx, publish_pending(ctx));
}

zrt_status zrt_save_wait(zrt_ctx *ctx)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    settle_pending(ctx);
    zrt_status st = ctx->ckpt_failed;
    if (st == ZRT_OK)
        return ZRT_OK;
    ctx->ckpt_failed = ZRT_OK;
    memcpy(ctx->err.text, ctx->ckpt_failed_text, sizeof ctx->err.text); /* as it was */
    return st;
}

static void release_pending(zrt_ctx *ctx)
{
    struct zrt__ckpt_pending *p = ctx->ckpt_pending;
    if (ctx->ckpt_failed != ZRT_OK && ctx->comm->rank == 0)
        zrt_log(ctx, 1,
                "zrt_ctx_destroy: an asynchronous save failed and nobody asked "
                "(zrt_save_wait): %s",
                ctx->ckpt_failed_text);
    if (!p)
        return;
    ctx->ckpt_pending = NULL;
    if (p->writer) { /* its sentence, if it failed, is not wanted: nothing waits */
        zrt__errbuf keep = ctx->err;
        stop_writer(ctx, &p->writer);
        ctx->err = keep;
    }
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 1,
                "zrt_ctx_destroy: the asynchronous save of step %ld was never published "
                "(call zrt_save_wait before zrt_ctx_destroy); 'latest' still names the "
                "checkpoint before it",
                (long)p->job->step);
    discard_tmp_dir(ctx, p->job);
    free_job(p->job);
    free(p);
}

zrt_status zrt_save(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_save"));
    ZRT_CHECK(zrt_save_wait(ctx)); /* the next save waits for the previous one */
    save_job *job = calloc(1, sizeof *job);
    if (!job)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY, "zrt_save: no memory");
    zrt_status st = save_begin(ctx, dir, info, job);
    if (st == ZRT_OK && ctx->cfg.checkpoint_async)
        return start_async(ctx, job); /* it owns the job now */
    rank_summary mine = {0};
    if (st == ZRT_OK) {
        zrt_status written =
            writes_files(ctx) ? write_rank_file(ctx, job, &mine) : ZRT_OK;
        st = complete_save(ctx, job, written, &mine);
    }
    free_job(job);
    return st;
}

/* ---- loading ----------------------------------------------------------------------- */

typedef struct load_job {
    zrt_ctx *ctx;
    zrt__ckpt ck;
    int opened;
    int *map;  /* registered parameter -> checkpoint tensor */
    void *buf; /* for checking CRCs */
    size_t buf_bytes;
    void *dst;        /* pass 2: where the current segment goes */
    const char *kind; /* pass 2: the checkpoint's kind being read */
} load_job;

static void format_shape(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "(",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

static zrt_status match_one(zrt_ctx *ctx, load_job *job, int i)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    const zrt__param_info *p = &ctx->params[i];
    int t = i < m->ntensors && !strcmp(m->tensors[i].name, p->name)
                ? i
                : zrt__ckpt_find_tensor(m, p->name);
    if (t < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_load: checkpoint '%s' has no "
                         "parameter '%s'",
                         m->dir, p->name);
    const zrt__ckpt_tensor *ct = &m->tensors[t];
    int same = ct->ndim == p->desc.ndim;
    for (int d = 0; same && d < ct->ndim; d++)
        same = ct->shape[d] == p->desc.shape[d];
    if (!same) {
        char have[96], want[96];
        format_shape(ct->ndim, ct->shape, have, sizeof have);
        format_shape(p->desc.ndim, p->desc.shape, want, sizeof want);
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_load: parameter '%s' is %s "
                         "in checkpoint '%s' but %s here",
                         p->name, have, m->dir, want);
    }
    job->map[i] = t;
    return ZRT_OK;
}

static zrt_status match_tensors(zrt_ctx *ctx, load_job *job)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    job->map = calloc((size_t)ctx->nparams + 1, sizeof *job->map);
    char *used = calloc((size_t)m->ntensors + 1, 1);
    zrt_status st = job->map && used ? ZRT_OK
                                     : zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                                                 "zrt_load: no memory for the name map");
    for (int i = 0; st == ZRT_OK && i < ctx->nparams; i++) {
        st = match_one(ctx, job, i);
        if (st == ZRT_OK)
            used[job->map[i]] = 1;
    }
    for (int t = 0; st == ZRT_OK && t < m->ntensors; t++)
        if (!used[t])
            st = zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                           "zrt_load: checkpoint '%s' holds "
                           "parameter '%s', which is not registered here",
                           m->dir, m->tensors[t].name);
    free(used);
    return st;
}

/* The window to check CRCs through, allocated at finalize so the memory
 * plan covers loading: the NVMe step staging when there is one, else the
 * checkpoint window (ctx.h zrt__ckpt_staging_bytes). A rank without
 * parameters has neither and reads no section. */
static void get_check_buffer(zrt_ctx *ctx, load_job *job)
{
    const zrt__buf *window =
        ctx->step_staging.ptr ? &ctx->step_staging : &ctx->ckpt_staging;
    job->buf = window->ptr;
    job->buf_bytes = window->bytes;
}

static zrt_status verify_piece(void *arg, const zrt__ckpt_piece *piece)
{
    load_job *job = arg;
    for (int k = 0; k < job->ck.meta.nkinds; k++) {
        zrt__ckpt_section *s = NULL;
        ZRT_CHECK(zrt__ckpt_section_of(&job->ck, piece->rank, zrt__ckpt_kind(k),
                                       piece->layer, &s, &job->ctx->err));
        if (!s->verified)
            ZRT_CHECK(zrt__ckpt_verify_section(&job->ck, piece->rank, s, job->buf,
                                               job->buf_bytes, &job->ctx->err));
    }
    return ZRT_OK;
}

/* Pass 1: every section this rank will read from passes its CRC. */
static zrt_status verify_needed(zrt_ctx *ctx, load_job *job)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        for (int k = 0; ls->range_len > 0 && k < ctx_nkinds(ctx); k++) {
            state_place p;
            place_of(ctx, k, l, &p);
            ZRT_CHECK(require_reachable(ctx, &p, k, l, "zrt_load"));
        }
        for (int i = 0; i < ls->nsegs; i++) {
            const zrt__segment *sg = &ls->segs[i];
            ZRT_CHECK(zrt__ckpt_for_pieces(&job->ck.meta, job->map[sg->tensor],
                                           sg->tensor_offset, sg->count, verify_piece,
                                           job));
        }
    }
    return ZRT_OK;
}

/* Every declared dimension the checkpoint stores with another value, in one
 * sentence. */
static zrt_status match_model(zrt_ctx *ctx, const zrt__ckpt_meta *m)
{
    char diff[768] = "";
    size_t at = 0;
    int ndiff = 0;
    for (int i = 0; i < ctx->nmodel_dims; i++) {
        const zrt__model_dim *d = &ctx->model_dims[i];
        int64_t saved;
        if (!zrt__ckpt_model_dim(m, d->name, &saved) || saved == d->value)
            continue;
        int n =
            snprintf(diff + at, sizeof diff - at, "%s%s %lld (this run: %lld)",
                     ndiff ? ", " : "", d->name, (long long)saved, (long long)d->value);
        at = n > 0 && at + (size_t)n < sizeof diff ? at + (size_t)n : sizeof diff - 1;
        ndiff++;
    }
    if (!ndiff)
        return ZRT_OK;
    return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                     "zrt_load: '%s' holds another model: "
                     "it was saved with %s",
                     m->dir, diff);
}

zrt_status zrt_declare_model_dim(zrt_ctx *ctx, const char *name, int64_t value)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!zrt__valid_model_dim_name(name) || value < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_declare_model_dim: '%.40s' = "
                         "%lld: the name must be 1 to 31 characters of [a-z0-9_] and the "
                         "value >= 0",
                         name ? name : "(null)", (long long)value);
    for (int i = 0; i < ctx->nmodel_dims; i++)
        if (!strcmp(ctx->model_dims[i].name, name)) {
            ctx->model_dims[i].value = value;
            return ZRT_OK;
        }
    if (ctx->nmodel_dims == ZRT_MODEL_DIMS_MAX)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_declare_model_dim: '%s': "
                         "already %d names declared",
                         name, ZRT_MODEL_DIMS_MAX);
    zrt__model_dim *d = &ctx->model_dims[ctx->nmodel_dims++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->value = value;
    return ZRT_OK;
}

/* The checkpoint this rank loads: dir's, or in a pipeline its stage's
 * (step-N/stage-S), which needs a checkpoint of as many stages. */
static zrt_status open_checkpoint(zrt_ctx *ctx, const char *dir, zrt__ckpt *out)
{
    if (!ctx->pipe_comm)
        return zrt__ckpt_open(dir, out, &ctx->err);
    char step_dir[ZRT__CKPT_PATH], stage_dir[ZRT__CKPT_PATH + 32];
    int stages = 0, P = ctx->pipe_comm->size;
    ZRT_CHECK(zrt__ckpt_resolve(dir, step_dir, sizeof step_dir, &ctx->err));
    ZRT_CHECK(zrt__ckpt_pipeline_stages(step_dir, &stages, &ctx->err));
    char saved[48] = "without a pipeline";
    if (stages)
        snprintf(saved, sizeof saved, "by a pipeline of %d stages", stages);
    if (stages != P)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "zrt_load: '%s' was saved %s; this run has pipeline_stages %d "
                         "(moving layers between stages is not built)",
                         step_dir, saved, P);
    snprintf(stage_dir, sizeof stage_dir, "%s/stage-%d", step_dir, ctx->pipe_comm->rank);
    return zrt__ckpt_open(stage_dir, out, &ctx->err);
}

static zrt_status load_prepare(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info,
                               load_job *job)
{
    if (!dir || !*dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_load: no directory given");
    ZRT_CHECK(check_info(ctx, info, "zrt_load"));
    ZRT_CHECK(require_between_steps(ctx, "zrt_load"));
    ZRT_CHECK(open_checkpoint(ctx, dir, &job->ck));
    job->opened = 1;
    ZRT_CHECK(match_model(ctx, &job->ck.meta));
    ZRT_CHECK(match_tensors(ctx, job));
    get_check_buffer(ctx, job);
    return verify_needed(ctx, job);
}

static zrt_status read_piece_into(void *arg, const zrt__ckpt_piece *piece)
{
    load_job *job = arg;
    return zrt__ckpt_read_piece(&job->ck, job->kind, piece, job->dst, &job->ctx->err);
}

/* Pass 2, one layer: this rank's range of the context's kind `kind`,
 * element by element from the checkpoint's kind `from` (of the same element
 * size) in the old files; padding stays zero. */
static zrt_status load_layer_kind(zrt_ctx *ctx, load_job *job, int l, int kind,
                                  const char *from)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    state_place p;
    place_of(ctx, kind, l, &p);
    if (zrt_dtype_size(zrt__ckpt_kind_dtype(&job->ck.meta, from)) != p.esize)
        return zrt__fail(&ctx->err, ZRT_ERR_INTERNAL,
                         "zrt_load: %s of layer %d read "
                         "from %s of another element size",
                         zrt__ckpt_kind(kind), l, from);
    char *range = p.mover ? (char *)nvme_staging(ctx) : p.mem;
    if (p.mover)
        memset(range, 0, (size_t)ls->range_len * p.esize);
    job->kind = from;
    for (int i = 0; i < ls->nsegs; i++) {
        const zrt__segment *sg = &ls->segs[i];
        job->dst = range + (size_t)sg->range_offset * p.esize;
        ZRT_CHECK(zrt__ckpt_for_pieces(&job->ck.meta, job->map[sg->tensor],
                                       sg->tensor_offset, sg->count, read_piece_into,
                                       job));
    }
    return p.mover ? swap_io(ctx, &p, ls->range_len, range, 1) : ZRT_OK;
}

/* 16-bit parameters from a checkpoint of another dtype: the master copy
 * just loaded, rounded to nearest even, segment by segment. */
static zrt_status round_master_into_params(zrt_ctx *ctx, int l)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    state_place p;
    place_of(ctx, KIND_PARAM, l, &p);
    const float *master = ls->master.ptr;
    void *range = p.mover ? nvme_staging(ctx) : p.mem;
    if (p.mover)
        memset(range, 0, (size_t)ls->range_len * p.esize);
    for (int i = 0; i < ls->nsegs; i++) {
        const zrt__segment *sg = &ls->segs[i];
        ZRT_CHECK(zrt_convert(zrt__elem(ctx, range, sg->range_offset), ctx->pdtype,
                              master + sg->range_offset, ZRT_F32, (size_t)sg->count));
    }
    return p.mover ? swap_io(ctx, &p, ls->range_len, range, 1) : ZRT_OK;
}

/* One layer's state. Same dtype: every kind from its own. Otherwise the f32
 * values (the checkpoint's f32 params, or its master) become the f32 params,
 * or the master copy and, rounded, the 16-bit params. */
static zrt_status load_layer(zrt_ctx *ctx, load_job *job, int l)
{
    const zrt__ckpt_meta *m = &job->ck.meta;
    const char *f32 = zrt__ckpt_f32_kind(m);
    ZRT_CHECK(load_layer_kind(ctx, job, l, KIND_EXP_AVG, zrt__ckpt_kind(KIND_EXP_AVG)));
    ZRT_CHECK(
        load_layer_kind(ctx, job, l, KIND_EXP_AVG_SQ, zrt__ckpt_kind(KIND_EXP_AVG_SQ)));
    if (!zrt__mixed(ctx))
        return load_layer_kind(ctx, job, l, KIND_PARAM, f32);
    ZRT_CHECK(load_layer_kind(ctx, job, l, KIND_MASTER, f32));
    if (m->dtype == ctx->pdtype)
        return load_layer_kind(ctx, job, l, KIND_PARAM, zrt__ckpt_kind(KIND_PARAM));
    return round_master_into_params(ctx, l);
}

/* Top-k's residual is not in checkpoints: a loaded state starts from a
 * zero residual, as a fresh context does, whatever this one held. */
static zrt_status reset_topk_residual(zrt_ctx *ctx, int l)
{
    zrt__buf *e = &ctx->layers[l].topk_residual;
    return e->ptr
               ? ctx->be->ops->fill_f32(ctx->be, e->ptr, e->bytes / sizeof(float), 0.0f)
               : ZRT_OK;
}

static zrt_status load_state(zrt_ctx *ctx, load_job *job)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        ZRT_CHECK(reset_topk_residual(ctx, l));
        if (zrt__params_on_nvme(ctx))
            zrt__nvme_drop_fetch(ctx, l); /* it read the slot about to change */
        if (ctx->layers[l].range_len > 0)
            ZRT_CHECK(load_layer(ctx, job, l));
    }
    return ZRT_OK;
}

/* fp16 from an fp16 checkpoint: the scaler continues where it was. The
 * config decides the rules (dynamic or fixed, window, hysteresis, minimum);
 * the state follows the checkpoint: a dynamic scale only into a dynamic
 * scaler, the counters always. Other pairs keep the context's fresh scaler. */
static void restore_scaler(zrt_ctx *ctx, const zrt__ckpt_meta *m)
{
    zrt__loss_scaler *s = &ctx->scaler;
    const zrt__loss_scaler *saved = &m->scaler;
    if (!m->has_scaler || m->dtype != ZRT_F16 || ctx->pdtype != ZRT_F16)
        return;
    if (s->dynamic && saved->dynamic) {
        s->scale = saved->scale > s->min_scale ? saved->scale : s->min_scale;
        s->hysteresis_left = saved->hysteresis_left < s->hysteresis
                                 ? saved->hysteresis_left
                                 : s->hysteresis;
    }
    s->iter = saved->iter;
    s->last_overflow_iter = saved->last_overflow_iter;
    s->skipped = saved->skipped;
}

/* Collective: every rank holds its range; make the copies other ranks read
 * current (stages 1-2: all-gather; stage 3: re-gather what stays gathered). */
static zrt_status refresh_params(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        if (lp->numel == 0 || ctx->cfg.stage == 0)
            continue;
        if (ctx->cfg.stage < 3) {
            void *full = ls->param_full.ptr;
            zrt__comm_req *req = NULL;
            zrt__comm *c = ctx->shard_comm;
            ZRT_CHECK(c->ops->all_gather(c, zrt__elem(ctx, full, ls->range_lo), full,
                                         (size_t)lp->shard_numel, ctx->pdtype, &req));
            ZRT_CHECK(zrt__comm_wait_in(ctx, c, req));
            continue;
        }
        ls->gathered = 0;  /* any gathered copy is stale */
        ls->hpz_valid = 0; /* and hpZ's secondary shard */
        ZRT_CHECK(ls->persistent ? zrt__ensure_gathered(ctx, l)
                                 : zrt__release_if_idle(ctx, l));
    }
    return ZRT_OK;
}

static void fill_info(const zrt__ckpt_meta *m, zrt_ckpt_info *info)
{
    if (!info)
        return;
    info->step = m->step;
    info->world_size = m->world;
    info->stage = m->stage;
    info->user_bytes = m->user_bytes;
    memset(info->user, 0, sizeof info->user);
    if (m->user_bytes)
        memcpy(info->user, m->user, m->user_bytes);
}

static void free_load_job(load_job *job)
{
    if (job->opened)
        zrt__ckpt_close(&job->ck);
    free(job->map);
}

zrt_status zrt_load(zrt_ctx *ctx, const char *dir, zrt_ckpt_info *info)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_load"));
    settle_pending(ctx); /* it may be the very checkpoint asked for */
    double t0 = now_seconds();
    load_job job;
    memset(&job, 0, sizeof job);
    job.ctx = ctx;
    zrt_status st = load_prepare(ctx, dir, info, &job);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load", NULL), st, done);
    st = load_state(ctx, &job);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load",
                               "; parameters and optimizer state may be partly loaded "
                               "on some ranks: load again before training"),
                   st, done);
    st = refresh_params(ctx);
    ZRT_CHECK_GOTO(agree_share(ctx, st, "zrt_load", NULL), st, done);
    ctx->step = (long)job.ck.meta.step;
    restore_scaler(ctx, &job.ck.meta);
    fill_info(&job.ck.meta, info);
    if (ctx->comm->rank == 0 && job.ck.meta.dtype != ctx->pdtype)
        zrt_log(ctx, 1,
                "zrt_load: %s holds %s parameters; loaded as %s from its f32 %s "
                "values%s",
                job.ck.meta.dir, zrt_dtype_str(job.ck.meta.dtype),
                zrt_dtype_str(ctx->pdtype), zrt__ckpt_f32_kind(&job.ck.meta),
                ctx->pdtype == ZRT_F16 ? " (the loss scaler starts afresh)" : "");
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 2,
                "zrt_load: %s (step %lld, saved by %d ranks at stage %d) in %.3f s",
                job.ck.meta.dir, (long long)job.ck.meta.step, job.ck.meta.world,
                job.ck.meta.stage, now_seconds() - t0);
done:
    free_load_job(&job);
    return st;
}

/* ---- resuming after a restart ------------------------------------------------------ */

/* Whether dir/latest exists: the same answer on every rank, or a refusal
 * (the directory must be one every rank sees). */
static zrt_status latest_exists(zrt_ctx *ctx, const char *dir, int *out)
{
    char path[ZRT__CKPT_PATH + 16];
    zrt_status st = zrt__ckpt_join(path, sizeof path, dir, "latest", &ctx->err);
    ZRT_CHECK(agree_share(ctx, st, "zrt_resume", NULL));
    float seen = access(path, F_OK) == 0 ? 1.0f : 0.0f;
    ZRT_CHECK(zrt_allreduce_f32(ctx, &seen, 1, ZRT_SUM));
    if (seen != 0.0f && seen != (float)ctx->comm->size)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_resume: %.0f of %d ranks see '%s'; checkpoints need a "
                         "directory that every rank sees (a shared file system)",
                         (double)seen, ctx->comm->size, path);
    *out = seen > 0.0f;
    return ZRT_OK;
}

zrt_status zrt_resume(zrt_ctx *ctx, const char *dir, zrt_ckpt_info *info)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_resume"));
    ZRT_CHECK(check_info(ctx, info, "zrt_resume"));
    if (!dir || !*dir)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_resume: no directory given");
    if (info) {
        info->step = 0;
        info->world_size = 0;
        info->stage = 0;
        info->user_bytes = 0;
    }
    if (ctx->restart == 0)
        return ZRT_OK;
    int have = 0;
    ZRT_CHECK(latest_exists(ctx, dir, &have));
    if (!have) {
        if (ctx->comm->rank == 0)
            zrt_log(ctx, 1, "restart %d: no checkpoint in '%s' yet: starting from step 0",
                    ctx->restart, dir);
        return ZRT_OK;
    }
    ZRT_CHECK(zrt_load(ctx, dir, info));
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 1, "restart %d: resumed from '%s' at step %ld on %d ranks",
                ctx->restart, dir, ctx->step, ctx->comm->size);
    return ZRT_OK;
}

zrt_status zrt_restart_count(const zrt_ctx *ctx, int *out)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->restart;
    return ZRT_OK;
}
