/* job_keys.c -- the main thread's ends of a job: a run job's inputs from
 * keys, its queueing (blocking the client, or waiting in MULTI/Lua), its
 * outputs to keys and its reply; and the completion of MODELSTORE and
 * SCRIPTSTORE (key swap, replication, reply) once the session is made.
 * Runs and stores are counted here too, for AI.INFO and AI.METRICS. A run
 * of a model stored with CACHE is looked up in the inference cache first
 * (a hit writes the cached outputs, no job) and kept there when it succeeds.
 *
 * Keys are touched only here and only on the main thread: inputs when the
 * command is parsed, outputs in the reply callback after the worker is done. */
#include "commands/job_keys.h"

#include "commands/cmd_admin.h"
#include "python/job_kinds.h"
#include "base/reaper.h"
#include "exec/infer_cache.h"
#include "exec/sync_run.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "types/op_metrics.h"
#include "types/type_model.h"
#include "types/type_script.h"
#include "types/type_tensor.h"

#define ERR_NO_QUEUE "ERR Could not initialize queue on requested device"

int RAI_JobCaptureInputs(RedisModuleCtx *ctx, RAI_Job *job, RedisModuleString **keys) {
    job->inputs = RedisModule_Calloc(job->ninputs > 0 ? (size_t)job->ninputs : 1, sizeof(RAI_Tensor *));
    for (int i = 0; i < job->ninputs; i++) {
        RAI_Tensor *t = RAI_ReadTensorKey(ctx, keys[i]);
        if (t == NULL) return 0;
        job->inputs[i] = RAI_TensorRetain(t);
    }
    return 1;
}

void RAI_JobKeepOutputKeys(RAI_Job *job, RedisModuleString **keys) {
    size_t n = job->noutputs > 0 ? (size_t)job->noutputs : 1;
    job->output_keys = RedisModule_Calloc(n, sizeof(RedisModuleString *));
    job->outputs = RedisModule_Calloc(n, sizeof(RAI_Tensor *));
    for (int i = 0; i < job->noutputs; i++) {
        RedisModule_RetainString(NULL, keys[i]);
        job->output_keys[i] = keys[i];
    }
}

/* Every output key must be empty or a tensor before any is written, so a
 * failed reply leaves the keyspace as it was. */
int RAI_JobOutputKeysWritable(RedisModuleCtx *ctx, RAI_Job *job) {
    for (int i = 0; i < job->noutputs; i++) {
        if (!RAI_TensorKeyWritable(ctx, job->output_keys[i])) return 0;
    }
    return 1;
}

/* Stores each output and replicates it as AI.TENSORSET ... BLOB, so replicas
 * and the AOF never run the model or script. */
void RAI_WriteTensorKey(RedisModuleCtx *ctx, RedisModuleString *keyname, RAI_Tensor *t) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, keyname, REDISMODULE_WRITE);
    RedisModule_ModuleTypeSetValue(key, RAI_TensorType, RAI_TensorRetain(t));
    RedisModule_CloseKey(key);
    size_t argc;
    RedisModuleString **args = RAI_TensorSetArgs(t, &argc);
    RedisModule_Replicate(ctx, "AI.TENSORSET", "sv", keyname, args, argc);
    RAI_FreeArgs(args, argc);
}

/* The metric series of the key the job's model or script is stored at. */
static RAI_KeySeries *KeySeriesOf(const RAI_Job *job) {
    return job->model ? job->model->metrics.series : job->script->metrics.series;
}

/* AI.INFO's statistics and the key's metric series (counters and histograms). */
void RAI_JobCount(RAI_Job *job, const RAI_Tensor *first_output) {
    RAI_RunStats *stats = RAI_JobStats(job);
    long long samples = 0;
    if (job->model && first_output && !job->error) samples = first_output->ndims > 0 ? first_output->shape[0] : 1;
    RAI_RunRecord run = {
        .failed = job->error != NULL,
        .started = job->started_us != 0,
        .queue_wait_us = job->started_us > job->queued_us ? job->started_us - job->queued_us : 0,
        .execution_us = job->duration_us,
        .samples = samples,
    };
    if (KeySeriesOf(job)) RAI_KeySeriesCountRun(KeySeriesOf(job), &run);
    stats->calls++;
    if (job->error) {
        stats->errors++;
        return;
    }
    stats->duration_us += (long long)job->duration_us;
    stats->samples += samples;
}

/* Counts the run, writes and replicates its outputs, replies. */
static int FinishRun(RedisModuleCtx *ctx, RAI_Job *job) {
    if (job->timed_out) return RedisModule_ReplyWithSimpleString(ctx, "TIMEDOUT");
    if (job->error) {
        RAI_JobCount(job, NULL);
        return RedisModule_ReplyWithError(ctx, job->error);
    }
    RAI_JobApplyLearnedNames(job);
    if (!RAI_JobOutputKeysWritable(ctx, job)) { /* WRONGTYPE replied; the run counts, not its time */
        RAI_JobStats(job)->calls++;
        if (KeySeriesOf(job)) RAI_KeySeriesCountCall(KeySeriesOf(job));
        return REDISMODULE_OK;
    }
    for (int i = 0; i < job->noutputs; i++) RAI_WriteTensorKey(ctx, job->output_keys[i], job->outputs[i]);
    RAI_JobCount(job, job->noutputs > 0 ? job->outputs[0] : NULL);
    if (job->model && RAI_CacheApplies(job->model))
        RAI_CacheInsert(job->model, job->ninputs, job->inputs, job->noutputs, job->outputs);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

int RAI_JobServeFromCache(RedisModuleCtx *ctx, RAI_Job *job) {
    if (!RAI_CacheLookup(job->model, job->ninputs, job->inputs, job->noutputs, job->outputs)) return 0;
    for (int i = 0; i < job->noutputs; i++) RAI_WriteTensorKey(ctx, job->output_keys[i], job->outputs[i]);
    RedisModule_ReplyWithSimpleString(ctx, "OK");
    return 1;
}

int RAI_RunJob_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return FinishRun(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
}

/* A model run waits for its session when it was evicted (session_budget.h). */
static void QueueRun(RAI_Job *job, RAI_RunQueue *queue) {
    if (job->model) RAI_QueueModelRun(job, queue);
    else RAI_RunQueuePush(queue, job);
}

static void Push(RAI_Job *job, RAI_RunQueue *queue) { RAI_RunQueuePush(queue, job); }

/* Main thread, where the client cannot be blocked (MULTI, Lua, AOF load):
 * queues job with `queue_it` and waits for it without the GIL, serving
 * meanwhile the Redis work that workers hand over (sync_run.h). */
static void QueueAndWait(RedisModuleCtx *ctx, RAI_Job *job, RAI_RunQueue *queue,
                         void (*queue_it)(RAI_Job *, RAI_RunQueue *)) {
    job->waiter = RAI_WaiterNew();
    queue_it(job, queue);
    RAI_WaiterWait(job->waiter, ctx);
    RAI_WaiterFree(job->waiter);
    job->waiter = NULL;
}

void RAI_PushAndWait(RedisModuleCtx *ctx, RAI_RunQueue *queue, RAI_Job *job) {
    QueueAndWait(ctx, job, queue, Push);
}

int RAI_RunJobAndWait(RedisModuleCtx *ctx, RAI_Job *job) {
    RAI_RunQueue *queue = job->model ? RAI_RunQueueOf(&job->model->queue, job->model->device)
                                     : RAI_RunQueueOf(&job->script->queue, job->script->device);
    if (queue == NULL) {
        RAI_JobFree(job);
        return RedisModule_ReplyWithError(ctx, ERR_NO_QUEUE);
    }
    if (!RAI_ClientCannotBlock(ctx)) {
        job->bc = RedisModule_BlockClient(ctx, RAI_RunJob_Reply, NULL, RAI_FreeJobCallback, 0);
        RedisModule_BlockedClientMeasureTimeStart(job->bc);
        QueueRun(job, queue);
        return REDISMODULE_OK;
    }
    /* MULTI or Lua: the client cannot be blocked, so this thread waits
     * (without the GIL) and replies itself; the outputs' replication joins
     * the transaction or the script's effects. */
    QueueAndWait(ctx, job, queue, QueueRun);
    FinishRun(ctx, job);
    RAI_JobFree(job);
    RAI_SessionSettle();
    return REDISMODULE_OK;
}

static void FreeJob(void *job) { RAI_JobFree(job); }

void RAI_FreeJobCallback(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RAI_Job *job = privdata;
    /* A big store's argument strings: Redis drops the client's references
     * right after this callback, so ours become the last and freeing them
     * would stall the main thread; the reaper drops them once this pass of
     * the event loop is over. */
    if (job->store && job->store->argv_bytes >= RAI_REAP_MIN_BYTES) RAI_Reap(FreeJob, job, 1);
    else RAI_JobFree(job);
    RAI_SessionSettle(); /* its pin is gone: a session it kept over the budget may go */
}

/* ------------------------------------------------------ MODELSTORE / SCRIPTSTORE */

/* The key gets the new model or script in one step: clients see the old one
 * until then and the new one after. Replies and returns 0 if the key holds
 * another type or the device's queue cannot start. */
static int SetStoredValue(RedisModuleCtx *ctx, RAI_Job *job, RedisModuleString *keyname) {
    RedisModuleKey *key = job->model ? RAI_OpenModelKeyToWrite(ctx, keyname)
                                     : RAI_OpenScriptKeyToWrite(ctx, keyname);
    if (key == NULL) return 0;
    RAI_RunQueue *queue = RAI_RunQueueFor(job->model ? job->model->device : job->script->device);
    if (queue == NULL) {
        RedisModule_CloseKey(key);
        RedisModule_ReplyWithError(ctx, ERR_NO_QUEUE);
        return 0;
    }
    if (job->model) {
        job->model->queue = queue;
        RAI_ModelLinkKey(job->model, keyname);
        RedisModule_ModuleTypeSetValue(key, RAI_ModelType, RAI_ModelRetain(job->model));
    } else {
        job->script->queue = queue;
        RAI_ScriptLinkKey(job->script, keyname);
        RedisModule_ModuleTypeSetValue(key, RAI_ScriptType, RAI_ScriptRetain(job->script));
    }
    RedisModule_CloseKey(key);
    return 1;
}

/* What a successful load learned: the backend's version, the model's names. */
static void RecordLoaded(RAI_Job *job) {
    RAI_JobRecordBackendLoaded(job);
    RAI_JobApplyLearnedNames(job);
}

/* A store's reply, for AI.METRICS: from its command to now. */
static void CountStore(const RAI_Job *job, int failed) {
    RAI_OpMetricsCountStore(job->model ? RAI_STORED_MODEL : RAI_STORED_SCRIPT, failed,
                            RedisModule_MonotonicMicroseconds() - job->queued_us);
}

/* Main thread, once the session was made: store, replicate as given, reply. */
static int FinishStore(RedisModuleCtx *ctx, RAI_Job *job) {
    if (job->error) {
        CountStore(job, 1);
        return RedisModule_ReplyWithError(ctx, job->error);
    }
    RecordLoaded(job);
    int stored = SetStoredValue(ctx, job, job->store->argv[1]);
    CountStore(job, !stored);
    if (!stored) return REDISMODULE_OK;
    const char *cmd = RedisModule_StringPtrLen(job->store->argv[0], NULL);
    RedisModule_Replicate(ctx, cmd, "v", job->store->argv + 1, (size_t)(job->store->argc - 1));
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static int Store_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return FinishStore(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
}

/* Makes the session where the caller cannot be blocked (MULTI, Lua, AOF
 * loading): on the loader thread while this thread waits without the GIL
 * (sync_run.h). A store from a worker's redis.execute, which holds the Redis
 * lock a background load's hand-back may need, loads in place instead. */
static void LoadAndWait(RedisModuleCtx *ctx, RAI_Job *job) {
    if (!RAI_SyncRunAllowed()) {
        RAI_JobLoadNow(job);
        return;
    }
    RAI_PushAndWait(ctx, RAI_LoaderQueue(), job);
}

int RAI_StoreWithSession(RedisModuleCtx *ctx, RAI_Job *job, RedisModuleString **argv, int argc) {
    int flags = RedisModule_GetContextFlags(ctx);
    if (flags & (REDISMODULE_CTX_FLAGS_LOADING | REDISMODULE_CTX_FLAGS_REPLICATED))
        RAI_JobJoinBlob(job, argv, argc); /* the model is in a key before any load */
    if (flags & REDISMODULE_CTX_FLAGS_LOADING) {
        /* Replaying the AOF: nobody is served yet, so the session is made
         * now and the model's names are known from the first request on.
         * A model whose backend fails here is kept (the AOF is the user's
         * data), its failure logged, and each run reports it. */
        LoadAndWait(ctx, job);
        if (job->error) RedisModule_Log(ctx, "warning", "stored model or script could not be loaded: %s", job->error);
        else RecordLoaded(job);
        int stored = SetStoredValue(ctx, job, argv[1]);
        RAI_JobFree(job);
        return stored ? RedisModule_ReplyWithSimpleString(ctx, "OK") : REDISMODULE_OK;
    }
    if (flags & REDISMODULE_CTX_FLAGS_REPLICATED) {
        /* From our primary, which validated it: store now and make the
         * session in the background (a replica needs none unless promoted);
         * until then the model's input/output names are not known. */
        if (!SetStoredValue(ctx, job, argv[1])) {
            RAI_JobFree(job);
            return REDISMODULE_OK;
        }
        RedisModule_ReplicateVerbatim(ctx);
        RAI_RunQueuePush(RAI_LoaderQueue(), job);
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    RAI_JobKeepArgv(job, argv, argc);
    if (RAI_ClientCannotBlock(ctx)) {
        /* MULTI or Lua: the client must get the backend's verdict in its
         * reply and cannot be blocked, so this thread waits for the load. */
        LoadAndWait(ctx, job);
        FinishStore(ctx, job);
        RAI_JobFree(job);
        return REDISMODULE_OK;
    }
    job->bc = RedisModule_BlockClient(ctx, Store_Reply, NULL, RAI_FreeJobCallback, 0);
    RedisModule_BlockedClientMeasureTimeStart(job->bc);
    RAI_RunQueuePush(RAI_LoaderQueue(), job);
    return REDISMODULE_OK;
}
