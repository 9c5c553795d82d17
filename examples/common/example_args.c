/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/common/example_args.c — shared flags and chores of the examples.
 */
#include "example_args.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *example_common_usage(void)
{
    return "  --stage N          ZeRO stage 0, 1, 2 or 3 (default: config, else 0)\n"
           "  --steps K          training steps (default 20)\n"
           "  --seed S           seed for initialization and data (default 1234)\n"
           "  --config FILE      JSON config (DeepSpeed zero_optimization keys)\n"
           "  --device-mem SIZE  device memory budget per rank, e.g. 512K, 64M, 2G\n"
           "  --dump-params FILE rank 0 writes all parameters as raw f32\n"
           "  --mem-report FILE  each rank writes its memory report (%r = rank)\n"
           "  --offload-optimizer none|cpu|nvme  where Adam's moments live (stage >= 1)\n"
           "  --offload-param none|cpu|nvme      where parameter shards live (stage 3)\n"
           "  --nvme-path DIR    directory for swap files (with nvme)\n"
           "  --grad-accum K     micro-steps per optimizer step (gradient accumulation)\n"
           "  --clip X           clip the global gradient norm to X (0: off)\n"
           "  --save-dir DIR     write checkpoints under DIR (DIR/step-N, DIR/latest)\n"
           "  --save-every K     save after optimizer steps K, 2K, ... (default: after\n"
           "                     the last step only)\n"
           "  --resume DIR       continue from DIR's latest checkpoint (or a step dir);\n"
           "                     without it, a job that zero-launch --max-restarts\n"
           "                     restarted continues from --save-dir's latest\n"
           "  --async-save       checkpoints are written while training goes on\n"
           "  --backend cpu|cuda zrt's backend (default: config, else cpu); cuda needs\n"
           "                     a build with CUDA, and an example with CUDA kernels\n"
           "                     (train_gpt2; mlp computes on the host only)\n"
           "  --help             this text\n";
}

static int need_value(int argc, char **argv, int i, char *err, size_t size)
{
    if (i + 1 < argc)
        return 0;
    snprintf(err, size, "%s needs a value", argv[i]);
    return -1;
}

static int parse_int(const char *flag, const char *text, long lo, long hi, long *out,
                     char *err, size_t size)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < lo || value > hi) {
        snprintf(err, size, "%s: '%s' is not an integer in %ld..%ld", flag, text, lo, hi);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_device(const char *text)
{
    static const char *const names[] = {"none", "cpu", "nvme"};
    for (int d = 0; d < 3; d++)
        if (!strcmp(text, names[d]))
            return d;
    return -1;
}

/* The flags of gradient accumulation, clipping and checkpoints: 1 if taken,
 * 0 if not one of them, -1 on a bad value. */
static int parse_checkpoint_flags(example_args *a, const char *flag, const char *text,
                                  char *err, size_t size)
{
    long value;
    if (!strcmp(flag, "--grad-accum") || !strcmp(flag, "--save-every")) {
        int accum = !strcmp(flag, "--grad-accum");
        if (parse_int(flag, text, accum ? 1 : 0, accum ? 65536 : 100000000, &value, err,
                      size))
            return -1;
        *(accum ? &a->grad_accum : &a->save_every) = (int)value;
        return 1;
    }
    if (!strcmp(flag, "--clip")) {
        char *end;
        float x = strtof(text, &end);
        if (end == text || *end || !(x >= 0.0f) || x > 1e30f) {
            snprintf(err, size, "--clip: '%s' is not a norm >= 0", text);
            return -1;
        }
        a->clip = x;
        return 1;
    }
    if (!strcmp(flag, "--save-dir") || !strcmp(flag, "--resume")) {
        *(!strcmp(flag, "--resume") ? &a->resume : &a->save_dir) = text;
        return 1;
    }
    return 0;
}

/* Returns 1 if argv[*i] was a common flag, 0 if not, -1 on error. */
static int parse_common(example_args *a, int argc, char **argv, int *i, char *err,
                        size_t size)
{
    const char *flag = argv[*i];
    long value;
    if (!strcmp(flag, "--async-save")) {
        a->async_save = 1;
        return 1;
    }
    int is_valued = !strcmp(flag, "--stage") || !strcmp(flag, "--steps") ||
                    !strcmp(flag, "--seed") || !strcmp(flag, "--config") ||
                    !strcmp(flag, "--device-mem") || !strcmp(flag, "--dump-params") ||
                    !strcmp(flag, "--mem-report") ||
                    !strcmp(flag, "--offload-optimizer") ||
                    !strcmp(flag, "--offload-param") || !strcmp(flag, "--nvme-path") ||
                    !strcmp(flag, "--grad-accum") || !strcmp(flag, "--clip") ||
                    !strcmp(flag, "--save-dir") || !strcmp(flag, "--save-every") ||
                    !strcmp(flag, "--resume") || !strcmp(flag, "--backend");
    if (!is_valued)
        return 0;
    if (need_value(argc, argv, *i, err, size))
        return -1;
    const char *text = argv[++*i];
    int more = parse_checkpoint_flags(a, flag, text, err, size);
    if (more != 0)
        return more;
    if (!strcmp(flag, "--stage")) {
        if (parse_int(flag, text, 0, 3, &value, err, size))
            return -1;
        a->stage = (int)value;
    } else if (!strcmp(flag, "--steps")) {
        if (parse_int(flag, text, 0, 100000000, &value, err, size))
            return -1;
        a->steps = (int)value;
    } else if (!strcmp(flag, "--seed")) {
        if (parse_int(flag, text, 0, 2147483647L, &value, err, size))
            return -1;
        a->seed = (uint64_t)value;
    } else if (!strcmp(flag, "--device-mem")) {
        if (zrt_parse_size(text, &a->device_mem) != ZRT_OK) {
            snprintf(err, size, "--device-mem: '%s' is not a size (e.g. 64M)", text);
            return -1;
        }
    } else if (!strcmp(flag, "--offload-optimizer") || !strcmp(flag, "--offload-param")) {
        int device = parse_device(text);
        if (device < 0) {
            snprintf(err, size, "%s: '%s' is not none, cpu or nvme", flag, text);
            return -1;
        }
        *(!strcmp(flag, "--offload-param") ? &a->offload_param : &a->offload_optimizer) =
            device;
    } else if (!strcmp(flag, "--nvme-path")) {
        a->nvme_path = text;
    } else if (!strcmp(flag, "--backend")) {
        if (strcmp(text, "cpu") != 0 && strcmp(text, "cuda") != 0) {
            snprintf(err, size, "--backend: '%s' is not cpu or cuda", text);
            return -1;
        }
        a->backend = text;
    } else if (!strcmp(flag, "--config")) {
        a->config_path = text;
    } else if (!strcmp(flag, "--dump-params")) {
        a->dump_params = text;
    } else {
        a->mem_report = text;
    }
    return 1;
}

int example_parse_args(int argc, char **argv, example_args *args,
                       example_flag_fn own_flags, void *user, char *err, size_t err_size)
{
    *args = (example_args){.stage = -1,
                           .steps = 20,
                           .seed = 1234,
                           .device_mem = -1,
                           .offload_optimizer = -1,
                           .offload_param = -1,
                           .grad_accum = -1,
                           .clip = -1.0f};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        int took = parse_common(args, argc, argv, &i, err, err_size);
        if (took == 0 && own_flags)
            took = own_flags(user, argc, argv, &i, err, err_size);
        if (took < 0)
            return -1;
        if (took == 0) {
            snprintf(err, err_size, "unknown option '%s' (see --help)", argv[i]);
            return -1;
        }
    }
    if (args->save_every > 0 && !args->save_dir) {
        snprintf(err, err_size, "--save-every needs --save-dir");
        return -1;
    }
    return 0;
}

zrt_status example_build_config(const example_args *args, zrt_config *cfg, char *err,
                                size_t err_size)
{
    zrt_config c;
    zrt_config_init(&c);
    zrt_status from_env = zrt_config_load_env(&c, err, err_size);
    if (from_env != ZRT_OK)
        return from_env;
    if (args->config_path) {
        zrt_status st = zrt_config_load_file(&c, args->config_path, err, err_size);
        if (st != ZRT_OK)
            return st;
    }
    if (args->stage >= 0)
        c.stage = args->stage;
    if (args->device_mem >= 0)
        c.device_mem_limit = args->device_mem;
    if (args->offload_optimizer >= 0)
        c.offload_optimizer.device = args->offload_optimizer;
    if (args->offload_param >= 0)
        c.offload_param.device = args->offload_param;
    if (args->grad_accum > 0)
        c.gradient_accumulation_steps = args->grad_accum;
    if (args->clip >= 0.0f)
        c.gradient_clipping = args->clip;
    if (args->async_save)
        c.checkpoint_async = 1;
    if (args->backend)
        snprintf(c.backend, sizeof c.backend, "%s", args->backend);
    if (args->nvme_path) {
        snprintf(c.offload_optimizer.nvme_path, sizeof c.offload_optimizer.nvme_path,
                 "%s", args->nvme_path);
        snprintf(c.offload_param.nvme_path, sizeof c.offload_param.nvme_path, "%s",
                 args->nvme_path);
    }
    zrt_status st = zrt_config_validate(&c, err, err_size);
    if (st != ZRT_OK)
        return st;
    *cfg = c;
    return ZRT_OK;
}

/* The parameters' type: 16-bit ones are widened (exactly) to f32. */
static zrt_dtype params_dtype(const zrt_ctx *ctx)
{
    zrt_config c;
    zrt_get_config(ctx, &c);
    return c.bf16.enabled ? ZRT_BF16 : c.fp16.enabled ? ZRT_F16 : ZRT_F32;
}

/* Reads parameter p as f32 (numel floats at values). */
static zrt_status read_as_f32(zrt_ctx *ctx, zrt_param p, int64_t numel, float *values)
{
    zrt_dtype d = params_dtype(ctx);
    if (d == ZRT_F32)
        return zrt_param_read(ctx, p, values);
    uint16_t *half = malloc((size_t)numel * sizeof *half);
    if (!half)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = zrt_param_read(ctx, p, half);
    if (st == ZRT_OK)
        st = zrt_convert(values, ZRT_F32, half, d, (size_t)numel);
    free(half);
    return st;
}

static zrt_status write_all_params(zrt_ctx *ctx, FILE *f, int writer)
{
    int n;

    zrt_num_params(ctx, &n);
    for (zrt_param p = 0; p < n; p++) {
        int64_t numel;
        zrt_param_numel(ctx, p, &numel);
        float *values = malloc((size_t)numel * sizeof *values);
        if (!values)
            return ZRT_ERR_OUT_OF_MEMORY;
        zrt_status st = read_as_f32(ctx, p, numel, values);
        if (st == ZRT_OK && writer &&
            fwrite(values, sizeof *values, (size_t)numel, f) != (size_t)numel)
            st = ZRT_ERR_IO;
        free(values);
        if (st != ZRT_OK)
            return st;
    }
    return ZRT_OK;
}

zrt_status example_dump_params(zrt_ctx *ctx, const char *path)
{
    int rank;
    zrt_rank(ctx, &rank);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = NULL;
    if (rank == 0 && !(f = fopen(tmp, "wb"))) {
        fprintf(stderr, "[rank 0] cannot create '%s': %s\n", tmp, strerror(errno));
        return ZRT_ERR_IO;
    }
    zrt_status st = write_all_params(ctx, f, rank == 0);
    if (rank != 0)
        return st;
    if (st == ZRT_OK && (fflush(f) || fsync(fileno(f))))
        st = ZRT_ERR_IO;
    if (fclose(f) && st == ZRT_OK)
        st = ZRT_ERR_IO;
    if (st == ZRT_OK && rename(tmp, path))
        st = ZRT_ERR_IO;
    if (st != ZRT_OK) {
        fprintf(stderr, "[rank 0] cannot write parameters to '%s': %s\n", path,
                st == ZRT_ERR_IO ? strerror(errno) : zrt_last_error(ctx));
        unlink(tmp);
    }
    return st;
}

int example_fail(zrt_ctx *ctx, const char *what, zrt_status st)
{
    fprintf(stderr, "error: %s failed (%s)\n", what, zrt_status_str(st));
    fflush(stderr);
    if (ctx)
        zrt_abort_job(ctx, 1); /* prints the last error, with the rank */
    return 1;
}

int example_exit_agreed(zrt_ctx *ctx, const char *what, zrt_status st)
{
    int rank = 0;
    zrt_rank(ctx, &rank);
    if (rank == 0)
        fprintf(stderr, "error: %s failed (%s): %s\n", what, zrt_status_str(st),
                zrt_last_error(ctx));
    zrt_ctx_destroy(ctx);
    return 1;
}

float example_rand_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* ---- checkpoints --------------------------------------------------------------- */

/* The blob: "zrtexmp1", then next_step, seed, global_batch, steps as
 * little-endian 64-bit integers. */
enum { PROGRESS_BYTES = 8 + 4 * 8 };
static const char progress_magic[8] = "zrtexmp";

static void encode_progress(const example_progress *p, zrt_ckpt_info *info)
{
    uint64_t fields[4] = {(uint64_t)p->next_step, p->seed, (uint64_t)p->global_batch,
                          (uint64_t)p->steps};
    memcpy(info->user, progress_magic, 8);
    memcpy(info->user + 8, fields, sizeof fields);
    info->user_bytes = PROGRESS_BYTES;
}

static int decode_progress(const zrt_ckpt_info *info, example_progress *p)
{
    uint64_t fields[4];
    if (info->user_bytes != PROGRESS_BYTES || memcmp(info->user, progress_magic, 8) != 0)
        return -1;
    memcpy(fields, info->user + 8, sizeof fields);
    *p = (example_progress){.next_step = (int64_t)fields[0],
                            .seed = fields[1],
                            .global_batch = (int64_t)fields[2],
                            .steps = (int64_t)fields[3]};
    return 0;
}

int example_accumulation_steps(zrt_ctx *ctx)
{
    zrt_config cfg;
    if (zrt_get_config(ctx, &cfg) != ZRT_OK || cfg.gradient_accumulation_steps < 1)
        return 1;
    return cfg.gradient_accumulation_steps;
}

static void print_resumed(const char *from, const zrt_ckpt_info *info,
                          const example_progress *saved, const example_progress *now)
{
    printf("resumed from %s at step %lld (saved by %d ranks at stage %d)\n", from,
           (long long)saved->next_step, info->world_size, info->stage);
    if (saved->global_batch != now->global_batch)
        printf("note: the checkpoint was trained with %lld samples per step, this run "
               "takes %lld: the data continues at step %lld of the new size\n",
               (long long)saved->global_batch, (long long)now->global_batch,
               (long long)saved->next_step);
    if (saved->seed != now->seed)
        printf("note: continuing with the checkpoint's seed %llu, not --seed %llu\n",
               (unsigned long long)saved->seed, (unsigned long long)now->seed);
    fflush(stdout);
}

/* --resume DIR loads DIR; otherwise zrt_resume loads --save-dir's latest
 * when zero-launch restarted the job, and nothing on a first start. */
static zrt_status load_for_resume(zrt_ctx *ctx, const example_args *args,
                                  zrt_ckpt_info *info, const char **from)
{
    *from = args->resume;
    if (args->resume)
        return zrt_load(ctx, args->resume, info);
    *from = args->save_dir;
    return args->save_dir ? zrt_resume(ctx, args->save_dir, info) : ZRT_OK;
}

zrt_status example_resume(zrt_ctx *ctx, const example_args *args, example_progress *p)
{
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    const char *from = NULL;
    zrt_status st = load_for_resume(ctx, args, &info, &from);
    if (st != ZRT_OK) /* every rank failed alike: zrt_load agrees on outcomes */
        return st;
    if (info.world_size == 0) /* nothing was loaded */
        return ZRT_OK;
    example_progress saved;
    int rank = 0;
    zrt_rank(ctx, &rank);
    if (decode_progress(&info, &saved) != 0) {
        if (rank == 0)
            fprintf(stderr,
                    "error: %s was not saved by a zrt example (no progress "
                    "record in its blob)\n",
                    from);
        return ZRT_ERR_INVALID_ARG;
    }
    if (rank == 0)
        print_resumed(from, &info, &saved, p);
    p->next_step = saved.next_step;
    p->seed = saved.seed;
    return ZRT_OK;
}

zrt_status example_maybe_save(zrt_ctx *ctx, const example_args *args,
                              const example_progress *p)
{
    int due = args->save_every > 0 ? p->next_step % args->save_every == 0
                                   : p->next_step == p->steps; /* the last step */
    if (!args->save_dir || !due)
        return ZRT_OK;
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    encode_progress(p, &info);
    return zrt_save(ctx, args->save_dir, &info);
}
