/* cmd_model.c -- AI.MODELSTORE / MODELSET / MODELGET / MODELDEL /
 * MODELEXECUTE / MODELRUN / _MODELSCAN and AI.INFO.
 *
 * Handlers parse and read keys on the main thread, then block the client and
 * queue a job; the reply callbacks (main thread again) write keys, replicate
 * and reply. No handler touches Python. */
#include "cmd_model.h"

#include <string.h>

#include "cmd_admin.h"
#include "config.h"
#include "log.h"
#include "parse.h"
#include "parse_model.h"
#include "run_queue.h"
#include "type_model.h"
#include "type_tensor.h"

#define ERR_IN_TRANSACTION "ERR Cannot run RedisAI command within a transaction or a LUA script"

static void FreeJob(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RAI_JobFree(privdata);
}

static void RecordBackendLoaded(const RAI_Job *job) {
    if (job->loaded_version && RAI_BackendVersion(job->model->backend) == NULL)
        RAI_BackendSetLoaded(job->model->backend, job->loaded_version);
}

/* ------------------------------------------------------------------ store */

/* Main thread, once the session exists: the key gets the new model in one
 * step, so clients see the old model until then and the new one after. */
static int ModelStore_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RAI_Job *job = RedisModule_GetBlockedClientPrivateData(ctx);
    if (job->error) return RedisModule_ReplyWithError(ctx, job->error);
    RecordBackendLoaded(job);
    RAI_ModelSetNames(job->model, job->nloaded_inputs, (const char **)job->loaded_inputs,
                      job->nloaded_outputs, (const char **)job->loaded_outputs);
    RedisModuleKey *key = RAI_OpenModelKeyToWrite(ctx, job->argv[1]);
    if (key == NULL) return REDISMODULE_OK;
    RedisModule_ModuleTypeSetValue(key, RAI_ModelType, RAI_ModelRetain(job->model));
    RedisModule_CloseKey(key);
    const char *cmd = RedisModule_StringPtrLen(job->argv[0], NULL);
    RedisModule_Replicate(ctx, cmd, "v", job->argv + 1, (size_t)(job->argc - 1));
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* The blob chunks after BLOB, concatenated into one buffer. */
static char *JoinChunks(RedisModuleString **chunks, int n, size_t *len) {
    *len = 0;
    for (int i = 0; i < n; i++) {
        size_t clen;
        RedisModule_StringPtrLen(chunks[i], &clen);
        *len += clen;
    }
    char *blob = RedisModule_Alloc(*len > 0 ? *len : 1);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        size_t clen;
        const char *c = RedisModule_StringPtrLen(chunks[i], &clen);
        memcpy(blob + pos, c, clen);
        pos += clen;
    }
    return blob;
}

/* Where no client can be blocked (MULTI, Lua, AOF loading, a command from
 * our primary) the model is stored at once and its session made in the
 * background; a replica never needs one unless promoted. */
static int StoreWithoutBlocking(RedisModuleCtx *ctx, RedisModuleString *keyname, RAI_Model *m) {
    RedisModuleKey *key = RAI_OpenModelKeyToWrite(ctx, keyname);
    if (key == NULL) {
        RAI_ModelRelease(m);
        return REDISMODULE_OK;
    }
    RedisModule_ModuleTypeSetValue(key, RAI_ModelType, m);
    RedisModule_CloseKey(key);
    RAI_RunQueuePush(RAI_LoaderQueue(), RAI_JobNew(RAI_JOB_MODEL_LOAD, m));
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

typedef const char *(*ModelArgsParser)(RedisModuleString **, int, RAI_ModelMeta *, const char **,
                                       const char **, int *);

static int ModelStore(RedisModuleCtx *ctx, RedisModuleString **argv, int argc,
                      ModelArgsParser parse) {
    RedisModuleKey *key = RAI_OpenModelKeyToWrite(ctx, argv[1]);
    if (key == NULL) return REDISMODULE_OK;
    RedisModule_CloseKey(key);

    RAI_ModelMeta meta;
    const char **inputs = RedisModule_Alloc(sizeof(char *) * argc);
    const char **outputs = RedisModule_Alloc(sizeof(char *) * argc);
    int blob_at;
    const char *err = parse(argv, argc, &meta, inputs, outputs, &blob_at);
    RAI_Model *m = NULL;
    if (err == NULL) {
        size_t bloblen;
        char *blob = JoinChunks(argv + blob_at, argc - blob_at, &bloblen);
        m = RAI_ModelNew(&meta, blob, bloblen);
        m->queue = RAI_RunQueueFor(meta.device);
        if (m->queue == NULL) err = "ERR Could not initialize queue on requested device";
    }
    RedisModule_Free(inputs);
    RedisModule_Free(outputs);
    if (err) {
        RAI_ModelRelease(m);
        return RedisModule_ReplyWithError(ctx, err);
    }
    if (RAI_ClientCannotBlock(ctx)) return StoreWithoutBlocking(ctx, argv[1], m);

    RAI_Job *job = RAI_JobNew(RAI_JOB_MODEL_LOAD, m);
    RAI_ModelRelease(m); /* the job holds it now */
    RAI_JobKeepArgv(job, argv, argc);
    job->bc = RedisModule_BlockClient(ctx, ModelStore_Reply, NULL, FreeJob, 0);
    RedisModule_BlockedClientMeasureTimeStart(job->bc);
    RAI_RunQueuePush(RAI_LoaderQueue(), job);
    return REDISMODULE_OK;
}

/* AI.MODELSTORE key backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m
 * [MINBATCHTIMEOUT t]]] [INPUTS n name... OUTPUTS n name...] BLOB chunk... */
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
    RedisModule_ReplyWithArray(ctx, with_blob ? 18 : 16);
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

/* Every output key must be empty or a tensor before any is written, so a
 * failed reply leaves the keyspace as it was. */
static int OutputKeysWritable(RedisModuleCtx *ctx, RAI_Job *job) {
    for (int i = 0; i < job->noutputs; i++) {
        if (!RAI_TensorKeyWritable(ctx, job->output_keys[i])) return 0;
    }
    return 1;
}

/* Stores each output and replicates it as AI.TENSORSET ... BLOB, so replicas
 * and the AOF never run the model. */
static void WriteOutputs(RedisModuleCtx *ctx, RAI_Job *job) {
    for (int i = 0; i < job->noutputs; i++) {
        RedisModuleKey *key = RedisModule_OpenKey(ctx, job->output_keys[i], REDISMODULE_WRITE);
        RedisModule_ModuleTypeSetValue(key, RAI_TensorType, RAI_TensorRetain(job->outputs[i]));
        RedisModule_CloseKey(key);
        size_t argc;
        RedisModuleString **args = RAI_TensorSetArgs(job->outputs[i], &argc);
        RedisModule_Replicate(ctx, "AI.TENSORSET", "sv", job->output_keys[i], args, argc);
        RAI_FreeArgs(args, argc);
    }
}

static int ModelRun_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RAI_Job *job = RedisModule_GetBlockedClientPrivateData(ctx);
    RAI_RunStats *stats = &job->model->stats;
    if (job->timed_out) return RedisModule_ReplyWithSimpleString(ctx, "TIMEDOUT");
    stats->calls++;
    if (job->error) {
        stats->errors++;
        return RedisModule_ReplyWithError(ctx, job->error);
    }
    if (!OutputKeysWritable(ctx, job)) return REDISMODULE_OK; /* WRONGTYPE replied */
    WriteOutputs(ctx, job);
    stats->duration_us += (long long)job->duration_us;
    const RAI_Tensor *first = job->outputs[0];
    stats->samples += first->ndims > 0 ? first->shape[0] : 1;
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* Takes a reference to every input tensor now, so the job is unaffected by
 * later writes to those keys. Replies and returns 0 on a missing/wrong key. */
static int CaptureInputs(RedisModuleCtx *ctx, RedisModuleString **keys, RAI_Job *job) {
    job->inputs = RedisModule_Calloc((size_t)job->ninputs, sizeof(RAI_Tensor *));
    for (int i = 0; i < job->ninputs; i++) {
        RAI_Tensor *t = RAI_ReadTensorKey(ctx, keys[i]);
        if (t == NULL) return 0;
        job->inputs[i] = RAI_TensorRetain(t);
    }
    return 1;
}

static void KeepOutputKeys(RedisModuleString **keys, RAI_Job *job) {
    job->output_keys = RedisModule_Alloc(sizeof(RedisModuleString *) * job->noutputs);
    job->outputs = RedisModule_Calloc((size_t)job->noutputs, sizeof(RAI_Tensor *));
    for (int i = 0; i < job->noutputs; i++) {
        RedisModule_RetainString(NULL, keys[i]);
        job->output_keys[i] = keys[i];
    }
}

typedef enum { EXECUTE_SYNTAX, RUN_SYNTAX } ExecuteSyntax;

static int ModelExecute(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, ExecuteSyntax syntax) {
    if (RAI_ClientCannotBlock(ctx)) return RedisModule_ReplyWithError(ctx, ERR_IN_TRANSACTION);
    RAI_Model *m = RAI_ReadModelKey(ctx, argv[1]);
    if (m == NULL) return REDISMODULE_OK;

    RAI_ExecuteArgs args;
    char buf[256];
    const char *err = syntax == EXECUTE_SYNTAX
                          ? RAI_ParseModelExecute(argv, argc, m, &args, buf, sizeof(buf))
                          : RAI_ParseModelRun(argv, argc, m, &args);
    if (err) return RedisModule_ReplyWithError(ctx, err);

    RAI_Job *job = RAI_JobNew(RAI_JOB_MODEL_RUN, m);
    job->ninputs = args.ninputs;
    job->noutputs = args.noutputs;
    KeepOutputKeys(argv + args.outputs_at, job);
    if (!CaptureInputs(ctx, argv + args.inputs_at, job) || !OutputKeysWritable(ctx, job)) {
        RAI_JobFree(job);
        return REDISMODULE_OK;
    }
    if (args.timeout > 0) job->deadline_us = job->queued_us + (uint64_t)args.timeout * 1000;
    job->bc = RedisModule_BlockClient(ctx, ModelRun_Reply, NULL, FreeJob, 0);
    RedisModule_BlockedClientMeasureTimeStart(job->bc);
    RAI_RunQueuePush(m->queue, job);
    return REDISMODULE_OK;
}

/* COMMAND GETKEYS / cluster routing: the model key, the n keys after
 * INPUTS n and the m keys after OUTPUTS m. */
static int ModelExecuteKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPos(ctx, 1);
    for (int pos = 2; pos + 1 < argc; pos++) {
        long long n;
        if (!RAI_ArgIs(argv[pos], "INPUTS") && !RAI_ArgIs(argv[pos], "OUTPUTS")) continue;
        if (RedisModule_StringToLongLong(argv[pos + 1], &n) != REDISMODULE_OK || n <= 0) break;
        for (long long i = 0; i < n && pos + 2 + i < argc; i++) RedisModule_KeyAtPos(ctx, (int)(pos + 2 + i));
        pos += 1 + (int)n;
    }
    return REDISMODULE_OK;
}

/* AI.MODELRUN's keys: the model, then every argument after INPUTS but the
 * OUTPUTS keyword. */
static int ModelRunKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPos(ctx, 1);
    int pos = 2;
    while (pos < argc && !RAI_ArgIs(argv[pos], "INPUTS")) pos++;
    for (pos++; pos < argc; pos++) {
        if (!RAI_ArgIs(argv[pos], "OUTPUTS")) RedisModule_KeyAtPos(ctx, pos);
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

/* ------------------------------------------------------------- scan, info */

typedef struct {
    RedisModuleString **keys;
    const RAI_Model **models;
    size_t n, cap;
} ModelList;

static void CollectModel(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleKey *key,
                         void *privdata) {
    (void)ctx;
    ModelList *list = privdata;
    if (key == NULL || RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_MODULE ||
        RedisModule_ModuleTypeGetType(key) != RAI_ModelType)
        return;
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 16;
        list->keys = RedisModule_Realloc(list->keys, sizeof(*list->keys) * list->cap);
        list->models = RedisModule_Realloc(list->models, sizeof(*list->models) * list->cap);
    }
    RedisModule_RetainString(NULL, keyname);
    list->keys[list->n] = keyname;
    list->models[list->n++] = RedisModule_ModuleTypeGetValue(key);
}

/* AI._MODELSCAN: [[key, tag], ...] of every model in the database. */
int RAI_ModelScan_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RAI_ReplyWrongArity(ctx, argv[0]);
    ModelList list = {0};
    RedisModuleScanCursor *cursor = RedisModule_ScanCursorCreate();
    while (RedisModule_Scan(ctx, cursor, CollectModel, &list)) {
    }
    RedisModule_ScanCursorDestroy(cursor);
    RedisModule_ReplyWithArray(ctx, (long)list.n);
    for (size_t i = 0; i < list.n; i++) {
        RedisModule_ReplyWithArray(ctx, 2);
        RedisModule_ReplyWithString(ctx, list.keys[i]);
        RedisModule_ReplyWithStringBuffer(ctx, list.models[i]->tag, strlen(list.models[i]->tag));
        RedisModule_FreeString(NULL, list.keys[i]);
    }
    RedisModule_Free(list.keys);
    RedisModule_Free(list.models);
    return REDISMODULE_OK;
}

static void ReplyWithRunInfo(RedisModuleCtx *ctx, RedisModuleString *keyname, const char *type,
                             const char *backend, const char *device, const char *tag,
                             const RAI_RunStats *stats) {
    RedisModule_ReplyWithArray(ctx, 18);
    RedisModule_ReplyWithSimpleString(ctx, "key");
    RedisModule_ReplyWithString(ctx, keyname);
    RedisModule_ReplyWithSimpleString(ctx, "type");
    RedisModule_ReplyWithSimpleString(ctx, type);
    RedisModule_ReplyWithSimpleString(ctx, "backend");
    RedisModule_ReplyWithSimpleString(ctx, backend);
    RedisModule_ReplyWithSimpleString(ctx, "device");
    RedisModule_ReplyWithStringBuffer(ctx, device, strlen(device));
    RedisModule_ReplyWithSimpleString(ctx, "tag");
    RedisModule_ReplyWithStringBuffer(ctx, tag, strlen(tag));
    RedisModule_ReplyWithSimpleString(ctx, "duration");
    RedisModule_ReplyWithLongLong(ctx, stats->duration_us);
    RedisModule_ReplyWithSimpleString(ctx, "samples");
    RedisModule_ReplyWithLongLong(ctx, stats->samples);
    RedisModule_ReplyWithSimpleString(ctx, "calls");
    RedisModule_ReplyWithLongLong(ctx, stats->calls);
    RedisModule_ReplyWithSimpleString(ctx, "errors");
    RedisModule_ReplyWithLongLong(ctx, stats->errors);
}

/* AI.INFO key [RESETSTAT] */
int RAI_Info_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ);
    if (RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_MODULE ||
        RedisModule_ModuleTypeGetType(key) != RAI_ModelType) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, "ERR cannot find run info for key");
    }
    RAI_Model *m = RedisModule_ModuleTypeGetValue(key);
    RedisModule_CloseKey(key);
    if (argc == 3 && RAI_ArgIs(argv[2], "RESETSTAT")) {
        memset(&m->stats, 0, sizeof(m->stats));
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    ReplyWithRunInfo(ctx, argv[1], "MODEL", RAI_BackendName(m->backend), m->device, m->tag, &m->stats);
    return REDISMODULE_OK;
}
