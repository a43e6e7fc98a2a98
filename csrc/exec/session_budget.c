/* session_budget.c -- the LRU list of loaded sessions, the budget's totals,
 * each model's session state and pins, and the runs parked on cold models.
 *
 * One mutex guards all of it. It is held only for list and counter updates:
 * never while taking the GIL, pushing to a queue or freeing a model. */
#include "exec/session_budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/job.h"
#include "exec/run_queue.h"

/* Cold-load times kept for INFO's percentiles: the most recent ones. */
#define COLD_SAMPLES 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static RAI_Model *mru, *lru; /* the list's two ends */
static uint64_t loaded, loaded_bytes;
static long long loaded_rss_delta;
static long long budget_bytes, max_sessions; /* 0: no limit */
static uint64_t loads, cold_loads, load_failures, evictions, parked_runs;
static int over_budget; /* left over by pins: settled when runs end (atomic reads) */
static uint64_t cold_us[COLD_SAMPLES];
static RAI_Histogram cold_histogram;
static size_t cold_next, cold_count;

/* ------------------------------------------------------------- the list */

static void Unlink(RAI_Model *m) {
    if (!m->in_lru) return;
    if (m->lru_prev) m->lru_prev->lru_next = m->lru_next;
    else mru = m->lru_next;
    if (m->lru_next) m->lru_next->lru_prev = m->lru_prev;
    else lru = m->lru_prev;
    m->lru_prev = m->lru_next = NULL;
    m->in_lru = 0;
    loaded--;
    loaded_bytes -= m->session_bytes;
    loaded_rss_delta -= m->session_rss_delta;
    __atomic_store_n(&m->session_bytes, 0, __ATOMIC_RELAXED);
}

static void PushFront(RAI_Model *m) {
    m->lru_prev = NULL;
    m->lru_next = mru;
    if (mru) mru->lru_prev = m;
    mru = m;
    if (lru == NULL) lru = m;
    m->in_lru = 1;
}

/* Most recently used, keeping its place in the totals. */
static void Touch(RAI_Model *m) {
    if (!m->in_lru || mru == m) return;
    if (m->lru_prev) m->lru_prev->lru_next = m->lru_next;
    if (m->lru_next) m->lru_next->lru_prev = m->lru_prev;
    else lru = m->lru_prev;
    PushFront(m);
}

/* ----------------------------------------------------------------- runs */

static void Park(RAI_Model *m, RAI_Job *job) {
    job->next = NULL;
    if (m->parked_tail) m->parked_tail->next = job;
    else m->parked = job;
    m->parked_tail = job;
    parked_runs++;
}

static RAI_Job *TakeParked(RAI_Model *m) {
    RAI_Job *jobs = m->parked;
    for (RAI_Job *j = jobs; j != NULL; j = j->next) parked_runs--;
    m->parked = m->parked_tail = NULL;
    return jobs;
}

RAI_Admission RAI_SessionAdmit(RAI_Model *m, RAI_Job *job) {
    pthread_mutex_lock(&lock);
    __atomic_add_fetch(&m->pins, 1, __ATOMIC_RELAXED);
    job->pinned = 1;
    RAI_Admission admission = RAI_ADMIT_READY;
    if (m->session_state == RAI_SESSION_READY) {
        Touch(m);
    } else {
        Park(m, job);
        admission = m->session_state == RAI_SESSION_LOADING ? RAI_ADMIT_PARKED : RAI_ADMIT_START_LOAD;
        m->session_state = RAI_SESSION_LOADING;
    }
    pthread_mutex_unlock(&lock);
    return admission;
}

/* ---------------------------------------------------------- the budget */

static int OverBudget(void) {
    return (budget_bytes > 0 && loaded_bytes > (uint64_t)budget_bytes) ||
           (max_sessions > 0 && loaded > (uint64_t)max_sessions);
}

/* A reference for the loader, unless the model is already on its way out
 * (its last reference went, and its release hook, Forget, waits for this lock). */
static int TryRetain(RAI_Model *m) {
    int n = __atomic_load_n(&m->refcount, __ATOMIC_RELAXED);
    while (n > 0) {
        if (__atomic_compare_exchange_n(&m->refcount, &n, n + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return 1;
    }
    return 0;
}

typedef struct {
    RAI_Model **models;
    size_t n, cap;
} VictimList;

static void AddVictim(VictimList *v, RAI_Model *m) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->models = RedisModule_Realloc(v->models, sizeof(*v->models) * v->cap);
    }
    v->models[v->n++] = m;
}

/* From the least recently used end, the unpinned models (never `keep`)
 * whose sessions go until the loaded set fits again (lock held). A set that
 * cannot fit (everything pinned, or one session over the whole budget)
 * stays over: runs are never refused for memory. */
static void ChooseVictims(const RAI_Model *keep, VictimList *v) {
    RAI_Model *m = lru;
    while (m != NULL && OverBudget()) {
        RAI_Model *prev = m->lru_prev;
        if (m != keep && __atomic_load_n(&m->pins, __ATOMIC_ACQUIRE) == 0 && TryRetain(m)) {
            Unlink(m);
            m->session_state = RAI_SESSION_EVICTED;
            m->session_releasing = 0;
            evictions++;
            AddVictim(v, m);
        }
        m = prev;
    }
    __atomic_store_n(&over_budget, OverBudget(), __ATOMIC_RELAXED);
}

RAI_Job *RAI_SessionLoaded(RAI_Model *m, size_t bytes, long long rss_delta, int cold, uint64_t load_us,
                           RAI_Model ***victims, size_t *nvictims) {
    VictimList v = {0};
    pthread_mutex_lock(&lock);
    Unlink(m); /* a reload of a model that was still listed replaces its figures */
    m->session_state = RAI_SESSION_READY;
    m->session_loads++;
    m->session_rss_delta = rss_delta;
    __atomic_store_n(&m->session_bytes, bytes, __ATOMIC_RELAXED);
    PushFront(m);
    loaded++;
    loaded_bytes += bytes;
    loaded_rss_delta += rss_delta;
    loads++;
    if (cold) {
        cold_loads++;
        cold_us[cold_next] = load_us;
        cold_next = (cold_next + 1) % COLD_SAMPLES;
        if (cold_count < COLD_SAMPLES) cold_count++;
        RAI_HistogramObserve(&cold_histogram, &RAI_LatencyBounds, load_us);
    }
    RAI_Job *parked = TakeParked(m);
    ChooseVictims(m, &v);
    pthread_mutex_unlock(&lock);
    *victims = v.models;
    *nvictims = v.n;
    return parked;
}

RAI_Job *RAI_SessionLoadFailed(RAI_Model *m) {
    pthread_mutex_lock(&lock);
    Unlink(m);
    m->session_state = RAI_SESSION_FAILED;
    load_failures++;
    RAI_Job *parked = TakeParked(m);
    pthread_mutex_unlock(&lock);
    return parked;
}

int RAI_SessionNeedsLoad(RAI_Model *m) {
    pthread_mutex_lock(&lock);
    int needs = m->session_state != RAI_SESSION_READY;
    pthread_mutex_unlock(&lock);
    return needs;
}

/* ----------------------------------------------------------- the jobs */

static const RAI_JobOps *cold_load_ops, *eviction_ops;

void RAI_SessionSettle(void) {
    if (!__atomic_load_n(&over_budget, __ATOMIC_RELAXED)) return;
    RAI_SessionBudgetChanged();
}

void RAI_QueueModelRun(RAI_Job *job, RAI_RunQueue *queue) {
    RAI_SessionSettle();
    job->target = queue;
    RAI_Admission admission = RAI_SessionAdmit(job->model, job);
    if (admission == RAI_ADMIT_READY) RAI_RunQueuePush(queue, job);
    else if (admission == RAI_ADMIT_START_LOAD)
        RAI_RunQueuePush(RAI_LoaderQueue(), RAI_JobNew(cold_load_ops, job->model));
}

void RAI_QueueEviction(RAI_Model **victims, size_t n) {
    if (n == 0) {
        RedisModule_Free(victims);
        return;
    }
    RAI_Job *job = RAI_JobNew(eviction_ops, NULL);
    job->victims = victims;
    job->nvictims = n;
    RAI_RunQueuePush(RAI_LoaderQueue(), job);
}

void RAI_SessionBudgetChanged(void) {
    VictimList v = {0};
    pthread_mutex_lock(&lock);
    ChooseVictims(NULL, &v);
    pthread_mutex_unlock(&lock);
    RAI_QueueEviction(v.models, v.n);
}

int RAI_SessionStillEvicted(RAI_Model *m) {
    pthread_mutex_lock(&lock);
    /* Loading: a run came after it was chosen, and its load is queued
     * behind this release on the one loader thread: release, then reload. */
    int release = (m->session_state == RAI_SESSION_EVICTED || m->session_state == RAI_SESSION_LOADING) &&
                  !m->session_releasing;
    if (release) m->session_releasing = 1;
    pthread_mutex_unlock(&lock);
    return release;
}

void RAI_SessionVictimsFree(RAI_Model **victims, size_t n) {
    for (size_t i = 0; i < n; i++) RAI_ModelRelease(victims[i]);
    RedisModule_Free(victims);
}

static void Forget(RAI_Model *m) {
    pthread_mutex_lock(&lock);
    Unlink(m);
    pthread_mutex_unlock(&lock);
}

void RAI_SessionBudgetStart(const RAI_JobOps *cold_load, const RAI_JobOps *eviction) {
    cold_load_ops = cold_load;
    eviction_ops = eviction;
    RAI_SetModelForgetHook(Forget);
}

size_t RAI_ProcessRssBytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    int ok = f && fscanf(f, "%llu %llu", &size, &resident) == 2;
    if (f) fclose(f);
    return ok ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

void RAI_SessionSetBudget(long long bytes, long long max) {
    pthread_mutex_lock(&lock);
    budget_bytes = bytes;
    max_sessions = max;
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------- figures */

/* What one more loaded session adds to RSS, as blob multiples plus a fixed
 * part: fitted by least squares to benchmarks/session_memory.py's measures
 * (the fraud MLP at 3 blob sizes, 18 KiB to 2.3 MiB, per backend; run of
 * 2026-11-30, results/session_memory.md). Rounded to lean a little high, never
 * low, since the budget must hold: the factor up to a tenth, the fixed part
 * up until every measured point is covered, plus 5 % of the smallest model's
 * session. A framework's first session (the library itself) is not in it. */
static const struct {
    unsigned factor_x10;
    size_t overhead;
} ESTIMATES[RAI_BACKEND_COUNT] = {
    [RAI_BACKEND_TF] = {49, 332 * 1024},
    [RAI_BACKEND_TFLITE] = {21, 112 * 1024},
    [RAI_BACKEND_TORCH] = {11, 56 * 1024},
    [RAI_BACKEND_ONNX] = {21, 108 * 1024},
};

size_t RAI_SessionEstimate(RAI_Backend backend, size_t bloblen) {
    if ((int)backend < 0 || backend >= RAI_BACKEND_COUNT) return bloblen;
    return bloblen / 10 * ESTIMATES[backend].factor_x10 + ESTIMATES[backend].overhead;
}

static int CompareU64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t Percentile(const uint64_t *sorted, size_t n, unsigned pct) {
    if (n == 0) return 0;
    size_t rank = (n * pct + 99) / 100; /* nearest rank */
    return sorted[rank > 0 ? rank - 1 : 0];
}

const RAI_Histogram *RAI_SessionColdLoadHistogram(void) { return &cold_histogram; }

void RAI_SessionReadFigures(RAI_SessionFigures *f) {
    /* On the heap: INFO (main thread) and AI.METRICS (its own thread) may read at once. */
    uint64_t *samples = RedisModule_Alloc(sizeof(uint64_t) * COLD_SAMPLES);
    pthread_mutex_lock(&lock);
    f->loaded = loaded;
    f->loaded_bytes = loaded_bytes;
    f->loaded_rss_delta = loaded_rss_delta;
    f->budget_bytes = (uint64_t)budget_bytes;
    f->max_sessions = (uint64_t)max_sessions;
    f->loads = loads;
    f->cold_loads = cold_loads;
    f->load_failures = load_failures;
    f->evictions = evictions;
    f->parked_runs = parked_runs;
    size_t n = cold_count;
    memcpy(samples, cold_us, sizeof(uint64_t) * n);
    pthread_mutex_unlock(&lock);
    qsort(samples, n, sizeof(uint64_t), CompareU64);
    f->cold_p50_us = Percentile(samples, n, 50);
    f->cold_p99_us = Percentile(samples, n, 99);
    RedisModule_Free(samples);
}

const char *RAI_SessionStateName(const RAI_Model *m) {
    switch (m->session_state) {
    case RAI_SESSION_LOADING: return "loading";
    case RAI_SESSION_READY: return "ready";
    case RAI_SESSION_FAILED: return "failed";
    default: return "evicted";
    }
}
