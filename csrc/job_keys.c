/* job_keys.c -- a run job's inputs from keys, outputs to keys, and its reply.
 *
 * Keys are touched only here and only on the main thread: inputs when the
 * command is parsed, outputs in the reply callback after the worker is done. */
#include "job_keys.h"

#include "type_tensor.h"

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

int RAI_RunJob_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RAI_Job *job = RedisModule_GetBlockedClientPrivateData(ctx);
    RAI_RunStats *stats = RAI_JobStats(job);
    if (job->timed_out) return RedisModule_ReplyWithSimpleString(ctx, "TIMEDOUT");
    stats->calls++;
    if (job->error) {
        stats->errors++;
        return RedisModule_ReplyWithError(ctx, job->error);
    }
    if (!RAI_JobOutputKeysWritable(ctx, job)) return REDISMODULE_OK; /* WRONGTYPE replied */
    WriteOutputs(ctx, job);
    stats->duration_us += (long long)job->duration_us;
    if (job->model && job->noutputs > 0) {
        const RAI_Tensor *first = job->outputs[0];
        stats->samples += first->ndims > 0 ? first->shape[0] : 1;
    }
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

void RAI_FreeJobCallback(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RAI_JobFree(privdata);
}
