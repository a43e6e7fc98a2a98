/* cmd_model.c -- AI.MODELSTORE / MODELSET / MODELGET / MODELDEL /
 * MODELEXECUTE / MODELRUN (AI.INFO and AI._MODELSCAN are in cmd_admin.c).
 *
 * Handlers parse and read keys on the main thread, then answer a run of a
 * cached model from the inference cache when they can, or else queue a job and
 * block the client (or, in MULTI/Lua, wait for it: job_keys.c); the reply
 * (main thread again) writes keys, replicates and replies. No handler
 * touches Python. */
#include "commands/cmd_model.h"

#include <string.h>

#include "commands/cmd_admin.h"
#include "commands/job_keys.h"
#include "python/job_kinds.h"
#include "types/config.h"
#include "base/log.h"
#include "commands/parse.h"
#include "commands/parse_model.h"
#include "exec/infer_cache.h"
#include "exec/run_queue.h"
#include "types/type_model.h"
#include "types/type_tensor.h"

/* ------------------------------------------------------------------ store */

typedef const char *(*ModelArgsParser)(RedisModuleString **, int, RAI_ModelMeta *, const char **,
                                       const char **, int *);

static int ModelStore(RedisModuleCtx *ctx, RedisModuleString **argv, int argc,
                      ModelArgsParser parse) {
    RAI_ModelMeta meta;
    const char **inputs = RedisModule_Alloc(sizeof(char *) * argc);
    const char **outputs = RedisModule_Alloc(sizeof(char *) * argc);
    int blob_at;
    const char *err = parse(argv, argc, &meta, inputs, outputs, &blob_at);
    RAI_Model *m = NULL;
    if (err == NULL) {
        /* The blob is joined from its chunks later, on the loader thread:
         * copying hundreds of MB here would stall every client. */
        m = RAI_ModelNew(&meta, NULL, 0);
    }
    RedisModule_Free(inputs);
    RedisModule_Free(outputs);
    if (err) {
        RAI_ModelRelease(m);
        return RedisModule_ReplyWithError(ctx, err);
    }
    /* As in RedisAI, the backend reads the model before the key's type is
     * looked at, and the device queue is made only for a model that loads. */
    RAI_Job *job = RAI_JobNew(&RAI_LoadJob, m);
    RAI_ModelRelease(m); /* the job holds it now */
    RAI_JobStore(job)->blob_at = blob_at;
    return RAI_StoreWithSession(ctx, job, argv, argc);
}

/* AI.MODELSTORE key backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m
 * [MINBATCHTIMEOUT t]]] [CACHE [TTL ms]] [INPUTS n name... OUTPUTS n name...] BLOB chunk... */
int RAI_ModelStore_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 6) return RAI_ReplyWrongArity(ctx, argv[0]);
    return ModelStore(ctx, argv, argc, RAI_ParseModelStore);
}

/* AI.MODELSET (deprecated): the same with the older option rules. */
int RAI_ModelSet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 4) return RAI_ReplyWrongArity(ctx, argv[0]);
    return ModelStore(ctx, argv, argc, RAI_ParseModelSet);
}

/* -------------------------------------------------------------- get / del */

/* The blob as one bulk string, or as MODEL_CHUNK_SIZE chunks when it is that big. */
static void ReplyWithBlob(RedisModuleCtx *ctx, const RAI_Model *m) {
    size_t chunk = (size_t)RAI_Cfg.model_chunk_size;
    size_t nchunks = RAI_ModelChunkCount(m, chunk);
    if (nchunks == 1) {
        RedisModule_ReplyWithStringBuffer(ctx, m->blob, m->bloblen);
        return;
    }
    RedisModule_ReplyWithArray(ctx, (long)nchunks);
    for (size_t i = 0; i < nchunks; i++)
        RedisModule_ReplyWithStringBuffer(ctx, m->blob + i * chunk, RAI_ModelChunkLen(m, chunk, i));
}

static void ReplyWithNames(RedisModuleCtx *ctx, int n, char **names) {
    RedisModule_ReplyWithArray(ctx, n > 0 ? n : 0);
    for (int i = 0; i < n; i++) RedisModule_ReplyWithStringBuffer(ctx, names[i], strlen(names[i]));
}

static void ReplyWithModelMeta(RedisModuleCtx *ctx, const RAI_Model *m, int with_blob) {
    /* A model stored with CACHE shows it in two more pairs; others get
     * RedisAI's reply unchanged. */
    RedisModule_ReplyWithArray(ctx, (with_blob ? 18 : 16) + (m->cache ? 4 : 0));
    RedisModule_ReplyWithSimpleString(ctx, "backend");
    RedisModule_ReplyWithSimpleString(ctx, RAI_BackendName(m->backend));
    RedisModule_ReplyWithSimpleString(ctx, "device");
    RedisModule_ReplyWithStringBuffer(ctx, m->device, strlen(m->device));
    RedisModule_ReplyWithSimpleString(ctx, "tag");
    RedisModule_ReplyWithStringBuffer(ctx, m->tag, strlen(m->tag));
    RedisModule_ReplyWithSimpleString(ctx, "batchsize");
    RedisModule_ReplyWithLongLong(ctx, m->batchsize);
    RedisModule_ReplyWithSimpleString(ctx, "minbatchsize");
    RedisModule_ReplyWithLongLong(ctx, m->minbatchsize);
    RedisModule_ReplyWithSimpleString(ctx, "inputs");
    ReplyWithNames(ctx, m->ninputs, m->inputs);
    RedisModule_ReplyWithSimpleString(ctx, "outputs");
    ReplyWithNames(ctx, m->noutputs, m->outputs);
    RedisModule_ReplyWithSimpleString(ctx, "minbatchtimeout");
    RedisModule_ReplyWithLongLong(ctx, m->minbatchtimeout);
    if (m->cache) {
        RedisModule_ReplyWithSimpleString(ctx, "cache");
        RedisModule_ReplyWithLongLong(ctx, 1);
        RedisModule_ReplyWithSimpleString(ctx, "cache_ttl");
        RedisModule_ReplyWithLongLong(ctx, m->cache_ttl_ms);
    }
    if (!with_blob) return;
    RedisModule_ReplyWithSimpleString(ctx, "blob");
    ReplyWithBlob(ctx, m);
}

/* AI.MODELGET key [META] [BLOB] */
int RAI_ModelGet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 4) return RAI_ReplyWrongArity(ctx, argv[0]);
    const RAI_Model *m = RAI_ReadModelKey(ctx, argv[1]);
    if (m == NULL) return REDISMODULE_OK;
    int meta = 0, blob = 0;
    for (int i = 2; i < argc; i++) {
        if (RAI_ArgIs(argv[i], "META")) meta = 1;
        else if (RAI_ArgIs(argv[i], "BLOB")) blob = 1;
    }
    if (!meta && !blob) meta = blob = 1;
    if (meta) ReplyWithModelMeta(ctx, m, blob);
    else ReplyWithBlob(ctx, m);
    return REDISMODULE_OK;
}

/* AI.MODELDEL key */
int RAI_ModelDel_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RAI_ReadModelKey(ctx, argv[1]) == NULL) return REDISMODULE_OK;
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_WRITE);
    RedisModule_DeleteKey(key);
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ---------------------------------------------------------------- execute */

typedef enum { EXECUTE_SYNTAX, RUN_SYNTAX } ExecuteSyntax;

static int ModelExecute(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, ExecuteSyntax syntax) {
    if (RAI_RefuseIfCannotWait(ctx)) return REDISMODULE_OK;
    RAI_Model *m = RAI_ReadModelKey(ctx, argv[1]);
    if (m == NULL) return REDISMODULE_OK;

    RAI_ExecuteArgs args;
    char buf[256];
    const char *err = syntax == EXECUTE_SYNTAX
                          ? RAI_ParseModelExecute(argv, argc, m, &args, buf, sizeof(buf))
                          : RAI_ParseModelRun(argv, argc, m, &args);
    if (err) return RedisModule_ReplyWithError(ctx, err);

    RAI_Job *job = RAI_JobNew(&RAI_ModelRunJob, m);
    job->ninputs = args.ninputs;
    job->noutputs = args.noutputs;
    RAI_JobKeepOutputKeys(job, argv + args.outputs_at);
    if (!RAI_JobCaptureInputs(ctx, job, argv + args.inputs_at) || !RAI_JobOutputKeysWritable(ctx, job) ||
        (RAI_CacheApplies(m) && RAI_JobServeFromCache(ctx, job))) {
        RAI_JobFree(job);
        return REDISMODULE_OK;
    }
    if (args.timeout > 0) job->deadline_us = RAI_DeadlineAfterMs(job->queued_us, args.timeout);
    return RAI_RunJobAndWait(ctx, job);
}

/* COMMAND GETKEYS / cluster routing: the model key, the n keys after
 * INPUTS n and the m keys after OUTPUTS m. */
static int ModelExecuteKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPosWithFlags(ctx, 1, RAI_KEY_READ);
    for (int pos = 2; pos + 1 < argc; pos++) {
        long long n;
        int outputs = RAI_ArgIs(argv[pos], "OUTPUTS");
        if (!outputs && !RAI_ArgIs(argv[pos], "INPUTS")) continue;
        if (RAI_ReadCount(argv[pos + 1], 1, RAI_ArgsAfter(argc, pos + 1), &n) != RAI_COUNT_OK) break;
        for (int i = 0; i < (int)n; i++)
            RedisModule_KeyAtPosWithFlags(ctx, pos + 2 + i, outputs ? RAI_KEY_WRITE : RAI_KEY_READ);
        pos += 1 + (int)n;
    }
    return REDISMODULE_OK;
}

/* AI.MODELRUN's keys: the model, then every argument after INPUTS but the
 * OUTPUTS keyword. */
static int ModelRunKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPosWithFlags(ctx, 1, RAI_KEY_READ);
    int pos = 2, outputs = 0;
    while (pos < argc && !RAI_ArgIs(argv[pos], "INPUTS")) pos++;
    for (pos++; pos < argc; pos++) {
        if (RAI_ArgIs(argv[pos], "OUTPUTS")) outputs = 1;
        else RedisModule_KeyAtPosWithFlags(ctx, pos, outputs ? RAI_KEY_WRITE : RAI_KEY_READ);
    }
    return REDISMODULE_OK;
}

/* AI.MODELEXECUTE key INPUTS n in... OUTPUTS n out... [TIMEOUT ms] */
int RAI_ModelExecute_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return ModelExecuteKeys(ctx, argv, argc);
    if (argc < 8)
        return RedisModule_ReplyWithError(ctx, "ERR wrong number of arguments for 'AI.MODELEXECUTE' command");
    return ModelExecute(ctx, argv, argc, EXECUTE_SYNTAX);
}

/* AI.MODELRUN key [TIMEOUT t] INPUTS in... OUTPUTS out... (deprecated) */
int RAI_ModelRun_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return ModelRunKeys(ctx, argv, argc);
    if (argc < 6)
        return RedisModule_ReplyWithError(ctx, "ERR wrong number of arguments for 'AI.MODELRUN' command");
    return ModelExecute(ctx, argv, argc, RUN_SYNTAX);
}
