/* job_kinds.c -- the ops table of every kind of job.
 *
 * Runs go to Python (py_jobs.c) on the worker; hand-backs unblock the
 * client, whose reply callback then finishes on the main thread, or wake the
 * DAG the job belongs to (dag.c). The loaded-session budget's two kinds run
 * on the loader: a cold load (the session of an evicted model, for the runs
 * parked on it) and an eviction (victims' sessions released); after every
 * load the budget learns it and the parked runs go on (exec/session_budget.h). */
#include "python/job_kinds.h"

#include "exec/dag.h"
#include "base/log.h"
#include "python/py_functions.h"
#include "python/py_jobs.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "exec/sync_run.h"
#include "types/op_metrics.h"

static void AfterSessionLoad(RAI_Job *job, size_t rss_before, uint64_t start, int cold);

void RAI_JobLoadNow(RAI_Job *job) {
    uint64_t start = RedisModule_MonotonicMicroseconds();
    size_t rss_before = RAI_ProcessRssBytes();
    if (job->store) RAI_JobJoinBlob(job, job->store->argv, job->store->argc);
    RAI_PyLoadModel(job);
    RAI_OpMetricsCountLoad(job->model ? job->model->backend : RAI_BACKEND_TORCH, job->error != NULL,
                           RedisModule_MonotonicMicroseconds() - start);
    if (job->model) AfterSessionLoad(job, rss_before, start, 0);
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

/* ------------------------------------------------- cold runs, eviction */

/* Loader: lets go of the victims' sessions, unless a run loaded one again
 * since it was chosen (session_budget.c re-checks under its lock). */
static void RunEviction(RAI_Job **jobs, int n) {
    (void)n;
    RAI_Job *job = jobs[0];
    for (size_t i = 0; i < job->nvictims; i++) {
        if (RAI_SessionStillEvicted(job->victims[i])) RAI_PyReleaseSession(job->victims[i]);
    }
    RAI_SessionVictimsFree(job->victims, job->nvictims);
    job->victims = NULL;
    job->nvictims = 0;
}

static const RAI_JobOps EvictionJob = {"session eviction", 0, RunEviction, FreeWhenDone};

/* The parked runs of a model whose load ended: to their device queue, or
 * failed with the load's error. The first takes the names the load learned
 * (the reply callback records them on the model). */
static void DispatchParked(RAI_Job *parked, RAI_Job *load) {
    int gave_names = 0;
    while (parked != NULL) {
        RAI_Job *job = parked;
        parked = job->next;
        job->next = NULL;
        if (load->error) {
            RAI_JobSetError(job, load->error);
            job->ops->done(job);
            continue;
        }
        if (!gave_names && load->learned != NULL && job->learned == NULL) {
            job->learned = load->learned; /* handed over whole */
            load->learned = NULL;
            gave_names = 1;
        }
        RAI_RunQueuePush(job->target, job);
    }
}

/* After any load of a model's session (a store's, a replica's background
 * one, a cold run's): the budget learns it, the runs parked on the model go
 * on, and the least recently used sessions over the budget are released. */
static void AfterSessionLoad(RAI_Job *job, size_t rss_before, uint64_t start, int cold) {
    RAI_Model *m = job->model;
    RAI_Job *parked;
    if (job->error) {
        parked = RAI_SessionLoadFailed(m);
    } else {
        RAI_Model **victims;
        size_t nvictims;
        long long rss_delta = (long long)RAI_ProcessRssBytes() - (long long)rss_before;
        parked = RAI_SessionLoaded(m, RAI_SessionEstimate(m->backend, m->bloblen), rss_delta, cold,
                                   RedisModule_MonotonicMicroseconds() - start, &victims, &nvictims);
        RAI_QueueEviction(victims, nvictims);
    }
    DispatchParked(parked, job);
}

/* Loader: the session a parked run needs, made from the model's blob. */
static void RunColdLoad(RAI_Job **jobs, int n) {
    (void)n;
    RAI_Job *job = jobs[0];
    if (!RAI_SessionNeedsLoad(job->model)) return; /* another load (a replica's background one) won */
    uint64_t start = RedisModule_MonotonicMicroseconds();
    size_t rss_before = RAI_ProcessRssBytes();
    RAI_PyPrepareModel(job);
    RAI_OpMetricsCountLoad(job->model->backend, job->error != NULL, RedisModule_MonotonicMicroseconds() - start);
    AfterSessionLoad(job, rss_before, job->queued_us, 1); /* a cold load's time counts its wait on the loader */
}

static const RAI_JobOps ColdLoadJob = {"cold session load", 0, RunColdLoad, FreeWhenDone};

void RAI_JobKindsStart(void) {
    drop_queue = RAI_LoaderQueue();
    RAI_SetSessionDropWaker(WakeSessionDrop);
    RAI_SessionBudgetStart(&ColdLoadJob, &EvictionJob);
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
