/* session_budget.h -- which models have a loaded backend session, in
 * least-recently-used order, under MODEL_SESSIONS_MEMORY / MODEL_SESSIONS_MAX.
 *
 * The blob stays in the key; the session (Python's, under the model's id)
 * is a cache of it. This file keeps only the C bookkeeping, under one mutex
 * that no thread holds while it takes the GIL or pushes to a queue:
 *
 *   - each model's state (loading, ready, evicted, failed), its pin count
 *     (queued or running jobs that need its session), its session's
 *     estimated bytes and how often it was loaded;
 *   - the LRU list of ready models and the totals the budget is checked on;
 *   - the runs parked while their model's session loads (single flight:
 *     the first cold run starts the load, later ones wait for it);
 *   - the server-wide counters INFO shows (loads, evictions, cold-load times).
 *
 * The pin count lives here, in C, because the main thread decides whether a
 * run may go straight to its device queue and must not take the GIL to ask
 * Python; the loader picks victims under the same lock, so a model pinned
 * by a queued run is never chosen. Releasing a victim's session (Python)
 * is the loader's job (python/job_kinds.c). */
#ifndef RAI_SESSION_BUDGET_H
#define RAI_SESSION_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"
#include "exec/job.h"
#include "types/model.h"

struct RAI_Job;
struct RAI_RunQueue;

/* What a main thread's run does next (RAI_SessionAdmit). */
typedef enum {
    RAI_ADMIT_READY,      /* the session is loaded: queue the run on its device */
    RAI_ADMIT_PARKED,     /* parked until the load that is under way ends */
    RAI_ADMIT_START_LOAD, /* parked, and the caller queues the load on the loader */
} RAI_Admission;

/* Main thread: pins m for `job` (job->pinned; RAI_JobFree unpins) and,
 * when its session is not loaded, parks the job on m. */
RAI_Admission RAI_SessionAdmit(RAI_Model *m, struct RAI_Job *job);

/* Loader (or whichever thread made the session): m's session exists now and
 * is estimated at `bytes`. Marks it ready and most recently used, counts the
 * load (cold: a run was waiting for it; load_us: how long it took), hands
 * back the parked runs (linked by job->next) and the models that must give
 * up their session to keep the budget (*victims, retained, marked evicted;
 * RAI_SessionVictimsFree after their sessions are released). */
struct RAI_Job *RAI_SessionLoaded(RAI_Model *m, size_t bytes, long long rss_delta, int cold,
                                  uint64_t load_us, RAI_Model ***victims, size_t *nvictims);

/* The load of m failed: the parked runs, to be failed with its error. */
struct RAI_Job *RAI_SessionLoadFailed(RAI_Model *m);

/* Loader, about to release a victim's session: whether it still must go (it
 * may have been loaded again, or chosen by two shrinks, since). Marks it so
 * that it is released once. */
int RAI_SessionStillEvicted(RAI_Model *m);

void RAI_SessionVictimsFree(RAI_Model **victims, size_t n);

/* At start-up (main thread, once the loader queue exists): the kinds of
 * job that load a parked run's session and release victims' sessions
 * (python/job_kinds.c); and a model whose last reference goes leaves the
 * LRU list and the totals (model.c's release hook). */
void RAI_SessionBudgetStart(const RAI_JobOps *cold_load, const RAI_JobOps *eviction);

/* Main thread: queues a model run (MODELEXECUTE, a DAG's model op) on
 * `queue` if its model's session is loaded; else parks it on the model and,
 * for the first such run, queues the session's load on the loader (device
 * workers keep running loaded models meanwhile; the loader's one thread
 * makes each load single-flight). Either way the run pins the session until
 * the job is freed. */
void RAI_QueueModelRun(struct RAI_Job *job, struct RAI_RunQueue *queue);

/* Any thread: releases the victims' sessions on the loader, after the loads
 * queued there already and before any queued later, so a run that comes
 * for a victim meanwhile finds it released and loads it afresh. */
void RAI_QueueEviction(RAI_Model **victims, size_t n);

/* Main thread, when a run ended: if pinned sessions kept the loaded set over
 * the budget at the last load, the ones no longer pinned go now. Cheap when
 * the set fits (one relaxed read). */
void RAI_SessionSettle(void);

/* Main thread, after AI.CONFIG changed MODEL_SESSIONS_MEMORY or _MAX. */
void RAI_SessionBudgetChanged(void);

/* Loader: whether m's session still has to be made (a cold load may find
 * that a replica's background load made it first). */
int RAI_SessionNeedsLoad(RAI_Model *m);

/* The process's resident set, from /proc/self/statm (0 if unreadable). */
size_t RAI_ProcessRssBytes(void);

/* The session's estimated bytes, counted against the budget: the blob
 * times a per-backend factor plus a fixed per-session overhead (see
 * docs/model_sessions.md for how they were measured against RSS). */
size_t RAI_SessionEstimate(RAI_Backend backend, size_t bloblen);

/* Budget settings (main thread: module arguments and AI.CONFIG). 0: no limit. */
void RAI_SessionSetBudget(long long bytes, long long max_sessions);

typedef struct {
    uint64_t loaded, loaded_bytes, budget_bytes, max_sessions;
    uint64_t loads, cold_loads, load_failures, evictions, parked_runs;
    long long loaded_rss_delta;     /* summed measured RSS change of the loaded sessions' loads */
    uint64_t cold_p50_us, cold_p99_us; /* over the last cold loads kept (0 when none) */
} RAI_SessionFigures;

/* Any thread (the lock is taken briefly; INFO and AI.METRICS). */
void RAI_SessionReadFigures(RAI_SessionFigures *f);

/* Cold-load times (the wait on the loader included) as a histogram, for
 * AI.METRICS; any thread reads it without a lock (base/histogram.h). */
const RAI_Histogram *RAI_SessionColdLoadHistogram(void);

/* A model's state as AI.INFO names it. */
const char *RAI_SessionStateName(const RAI_Model *m);

#endif
