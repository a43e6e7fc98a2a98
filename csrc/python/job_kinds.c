/* job_kinds.c -- the ops table of every kind of job.
 *
 * Runs go to Python (py_jobs.c) on the worker; hand-backs unblock the
 * client, whose reply callback then finishes on the main thread, or wake the
 * DAG the job belongs to (dag.c). */
#include "python/job_kinds.h"

#include "exec/dag.h"
#include "base/log.h"
#include "python/py_functions.h"
#include "python/py_jobs.h"
#include "exec/run_queue.h"
#include "exec/sync_run.h"
#include "types/op_metrics.h"

void RAI_JobLoadNow(RAI_Job *job) {
    uint64_t start = RedisModule_MonotonicMicroseconds();
    if (job->store) RAI_JobJoinBlob(job, job->store->argv, job->store->argc);
    RAI_PyLoadModel(job);
    RAI_OpMetricsCountLoad(job->model ? job->model->backend : RAI_BACKEND_TORCH, job->error != NULL,
                           RedisModule_MonotonicMicroseconds() - start);
}

static void RunModels(RAI_Job **jobs, int n) { RAI_PyRunModel(jobs, n); }

static void RunScript(RAI_Job **jobs, int n) {
    (void)n;
    RAI_PyRunScript(jobs[0]);
}

static void RunLoad(RAI_Job **jobs, int n) {
    (void)n;
    RAI_JobLoadNow(jobs[0]);
}

/* To the reply callback of its blocked client, or to the main thread that waits for it. */
static void HandBack(RAI_Job *job) {
    if (job->waiter) {
        RAI_WaiterWake(job->waiter);
        return;
    }
    RedisModule_BlockedClientMeasureTimeEnd(job->bc);
    RedisModule_UnblockClient(job->bc, job);
}

/* A background session load (replicated store) has no client: the main
 * thread records its names (sync_run.h). */
static void RecordLoadOnMainThread(RedisModuleCtx *ctx, void *arg) {
    (void)ctx;
    RAI_Job *job = arg;
    if (job->error) {
        RAI_LOG_WARNING("session of a stored %s could not be made: %s", job->model ? "model" : "script",
                        job->error);
    } else {
        RAI_JobApplyLearnedNames(job);
        RAI_JobRecordBackendLoaded(job);
    }
    RAI_JobFree(job);
}

static void RecordBackgroundLoad(RAI_Job *job) {
    /* At shutdown the main thread serves no more: the job is left to the
     * exiting process. */
    RAI_OnMainThread(RecordLoadOnMainThread, job);
}

static void LoadDone(RAI_Job *job) {
    if (job->bc || job->waiter) HandBack(job);
    else RecordBackgroundLoad(job);
}

static void RunDrop(RAI_Job **jobs, int n) {
    (void)jobs;
    (void)n;
    RAI_PyDropReleasedSessions();
}

static void FreeWhenDone(RAI_Job *job) { RAI_JobFree(job); }

/* Nobody waits for it; niced with the loader, so a big session's free never
 * competes with Redis's main thread. */
static const RAI_JobOps DropSessionsJob = {"session drop", 0, RunDrop, FreeWhenDone};

static RAI_RunQueue *drop_queue;

static void WakeSessionDrop(void) { RAI_RunQueuePush(drop_queue, RAI_JobNew(&DropSessionsJob, NULL)); }

void RAI_JobKindsStart(void) {
    drop_queue = RAI_LoaderQueue();
    RAI_SetSessionDropWaker(WakeSessionDrop);
}

const RAI_JobOps RAI_ModelRunJob = {"model run", 1, RunModels, HandBack};
const RAI_JobOps RAI_ScriptRunJob = {"script run", 0, RunScript, HandBack};
const RAI_JobOps RAI_LoadJob = {"session load", 0, RunLoad, LoadDone};
const RAI_JobOps RAI_DagModelJob = {"DAG model op", 1, RunModels, RAI_DagOpDone};
const RAI_JobOps RAI_DagScriptJob = {"DAG script op", 0, RunScript, RAI_DagOpDone};

static void RunFunctionLoad(RAI_Job **jobs, int n) {
    (void)n;
    RAI_PyFunctionLoad(jobs[0]);
}

static void RunFunctionCall(RAI_Job **jobs, int n) {
    (void)n;
    RAI_PyFunctionCall(jobs[0]);
}

const RAI_JobOps RAI_FunctionLoadJob = {"function library load", 0, RunFunctionLoad, HandBack};
const RAI_JobOps RAI_FunctionCallJob = {"function call", 0, RunFunctionCall, HandBack};
