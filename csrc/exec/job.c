/* job.c -- allocation, payloads, deadlines and error recording for
 * background jobs. */
#include "exec/job.h"

#include <string.h>

#include "base/args.h"

uint64_t RAI_DeadlineAfterMs(uint64_t start_us, long long ms) {
    if (ms <= 0) return start_us;
    if ((uint64_t)ms > (UINT64_MAX - start_us) / 1000) return UINT64_MAX;
    return start_us + (uint64_t)ms * 1000;
}

RAI_Job *RAI_JobNew(const RAI_JobOps *ops, RAI_Model *model) {
    RAI_Job *job = RedisModule_Calloc(1, sizeof(*job));
    job->ops = ops;
    job->model = model ? RAI_ModelRetain(model) : NULL;
    job->queued_us = RedisModule_MonotonicMicroseconds();
    return job;
}

RAI_Job *RAI_ScriptJobNew(const RAI_JobOps *ops, RAI_Script *script) {
    RAI_Job *job = RAI_JobNew(ops, NULL);
    job->script = RAI_ScriptRetain(script);
    return job;
}

RAI_RunStats *RAI_JobStats(RAI_Job *job) {
    return job->model ? &job->model->stats : &job->script->stats;
}

void RAI_JobRecordBackendLoaded(const RAI_Job *job) {
    RAI_Backend backend = job->model ? job->model->backend : RAI_BACKEND_TORCH;
    if (job->store && job->store->version && RAI_BackendVersion(backend) == NULL)
        RAI_BackendSetLoaded(backend, job->store->version);
}

RAI_StoreCall *RAI_JobStore(RAI_Job *job) {
    if (job->store == NULL) job->store = RedisModule_Calloc(1, sizeof(*job->store));
    return job->store;
}

void RAI_JobKeepArgv(RAI_Job *job, RedisModuleString **argv, int argc) {
    RAI_StoreCall *store = RAI_JobStore(job);
    store->argv = RedisModule_Alloc(sizeof(*argv) * argc);
    for (int i = 0; i < argc; i++) {
        size_t len;
        RedisModule_StringPtrLen(argv[i], &len);
        store->argv_bytes += len;
        RedisModule_RetainString(NULL, argv[i]);
        store->argv[i] = argv[i];
    }
    store->argc = argc;
}

void RAI_JobJoinBlob(RAI_Job *job, RedisModuleString **argv, int argc) {
    if (job->model == NULL || job->store == NULL || job->store->blob_at == 0) return;
    RAI_ModelJoinBlob(job->model, argv + job->store->blob_at, argc - job->store->blob_at);
    job->store->blob_at = 0;
}

void RAI_JobSetScriptCall(RAI_Job *job, RedisModuleString *fn, RedisModuleString **keys, int nkeys,
                          RedisModuleString **args, int nargs) {
    RAI_ScriptCall *call = RedisModule_Calloc(1, sizeof(*call));
    call->fn = RedisModule_Strdup(RedisModule_StringPtrLen(fn, NULL));
    call->nkeys = nkeys;
    call->keys = RAI_CopyArgStrings(keys, nkeys, NULL);
    call->nargs = nargs;
    call->args = RAI_CopyArgStrings(args, nargs, &call->arglens);
    job->call = call;
}

void RAI_JobLearnNames(RAI_Job *job, int ninputs, char **inputs, int noutputs, char **outputs) {
    RAI_LearnedNames *names = RedisModule_Calloc(1, sizeof(*names));
    *names = (RAI_LearnedNames){ninputs, noutputs, inputs, outputs};
    job->learned = names;
}

void RAI_JobApplyLearnedNames(RAI_Job *job) {
    RAI_LearnedNames *names = job->learned;
    if (job->model == NULL || names == NULL || names->ninputs <= 0) return;
    RAI_ModelSetNames(job->model, names->ninputs, (const char **)names->inputs, names->noutputs,
                      (const char **)names->outputs);
}

void RAI_JobSetError(RAI_Job *job, const char *message) {
    if (job->error) return;
    job->error = RedisModule_Strdup(message);
    for (char *c = job->error; *c; c++) {
        if (*c == '\n' || *c == '\r') *c = ' ';
    }
}

static void FreeStrings(int n, char **strings) {
    for (int i = 0; i < n; i++) RedisModule_Free(strings[i]);
    RedisModule_Free(strings);
}

static void FreeScriptCall(RAI_ScriptCall *call) {
    if (call == NULL) return;
    RedisModule_Free(call->fn);
    RedisModule_Free(call->user);
    FreeStrings(call->nkeys, call->keys);
    FreeStrings(call->nargs, call->args);
    RedisModule_Free(call->arglens);
    RedisModule_Free(call);
}

static void FreeStoreCall(RAI_StoreCall *store) {
    if (store == NULL) return;
    for (int i = 0; i < store->argc; i++) RedisModule_FreeString(NULL, store->argv[i]);
    RedisModule_Free(store->argv);
    RedisModule_Free(store->version);
    RedisModule_Free(store);
}

static void FreeLearnedNames(RAI_LearnedNames *names) {
    if (names == NULL) return;
    FreeStrings(names->ninputs, names->inputs);
    FreeStrings(names->noutputs, names->outputs);
    RedisModule_Free(names);
}

void RAI_JobFree(RAI_Job *job) {
    /* A run's pin keeps its model's session from eviction until now. */
    if (job->pinned) __atomic_sub_fetch(&job->model->pins, 1, __ATOMIC_RELEASE);
    RAI_ModelRelease(job->model);
    RAI_ScriptRelease(job->script);
    for (int i = 0; i < job->ninputs; i++) RAI_TensorRelease(job->inputs[i]);
    RedisModule_Free(job->inputs);
    for (int i = 0; i < job->noutputs; i++) {
        if (job->output_keys) RedisModule_FreeString(NULL, job->output_keys[i]);
        if (job->outputs) RAI_TensorRelease(job->outputs[i]);
    }
    RedisModule_Free(job->output_keys);
    RedisModule_Free(job->outputs);
    FreeScriptCall(job->call);
    FreeStoreCall(job->store);
    FreeLearnedNames(job->learned);
    RedisModule_Free(job->error);
    if (job->payload) job->free_payload(job->payload);
    RedisModule_Free(job);
}
