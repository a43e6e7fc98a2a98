/* job.c -- allocation, deadlines and error recording for background jobs. */
#include "exec/job.h"

#include <string.h>

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
    if (job->loaded_version && RAI_BackendVersion(backend) == NULL)
        RAI_BackendSetLoaded(backend, job->loaded_version);
}

void RAI_JobKeepArgv(RAI_Job *job, RedisModuleString **argv, int argc) {
    job->argv = RedisModule_Alloc(sizeof(*argv) * argc);
    for (int i = 0; i < argc; i++) {
        size_t len;
        RedisModule_StringPtrLen(argv[i], &len);
        job->argv_bytes += len;
        RedisModule_RetainString(NULL, argv[i]);
        job->argv[i] = argv[i];
    }
    job->argc = argc;
}

void RAI_JobJoinBlob(RAI_Job *job, RedisModuleString **argv, int argc) {
    if (job->model == NULL || job->blob_at == 0) return;
    RAI_ModelJoinBlob(job->model, argv + job->blob_at, argc - job->blob_at);
    job->blob_at = 0;
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

void RAI_JobFree(RAI_Job *job) {
    /* A run's pin keeps its model's session from eviction until now. */
    if (job->pinned) __atomic_sub_fetch(&job->model->pins, 1, __ATOMIC_RELEASE);
    RAI_ModelRelease(job->model);
    RAI_ScriptRelease(job->script);
    RedisModule_Free(job->fn);
    FreeStrings(job->nkeys, job->keys);
    FreeStrings(job->nargs, job->args);
    RedisModule_Free(job->arglens);
    for (int i = 0; i < job->ninputs; i++) RAI_TensorRelease(job->inputs[i]);
    RedisModule_Free(job->inputs);
    for (int i = 0; i < job->noutputs; i++) {
        if (job->output_keys) RedisModule_FreeString(NULL, job->output_keys[i]);
        if (job->outputs) RAI_TensorRelease(job->outputs[i]);
    }
    RedisModule_Free(job->output_keys);
    RedisModule_Free(job->outputs);
    FreeStrings(job->nloaded_inputs, job->loaded_inputs);
    FreeStrings(job->nloaded_outputs, job->loaded_outputs);
    RedisModule_Free(job->loaded_version);
    for (int i = 0; i < job->argc; i++) RedisModule_FreeString(NULL, job->argv[i]);
    RedisModule_Free(job->argv);
    RedisModule_Free(job->error);
    RedisModule_Free(job);
}
