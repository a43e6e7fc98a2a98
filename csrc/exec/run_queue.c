/* run_queue.c -- device queues, worker threads and auto-batching.
 *
 * Workers are plain pthreads: they wait on the queue's condition variable
 * without the GIL, take a job (or a batch of jobs of one model), and only
 * then enter Python. The batch is chosen here in C from the tensors' shapes
 * so no Python runs while the queue mutex is held.
 *
 * A worker whose jobs keep arriving soon after it runs out polls the queue
 * for WORKER_SPIN_US before it sleeps: waking a sleeping thread costs tens
 * of microseconds on a VM, more than a small model's run. */
#include "exec/run_queue.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "types/config.h"
#include "base/histogram.h"
#include "base/spin.h"
#include "base/log.h"

#define RAI_QUEUE_NAME_MAX 32
#define RAI_MAX_DEVICE_QUEUES 64

struct RAI_RunQueue {
    char name[RAI_QUEUE_NAME_MAX];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    RAI_Job *head, *tail;
    int nthreads;
    pthread_t *threads;
    int running;  /* workers inside a batch (under lock) */
    int stopping; /* set at server shutdown: take no more jobs */
    int background; /* the loader: its workers always run niced, and never spin */
    int sleepers;   /* workers in WaitForWork (under lock) */
    int spinning;   /* a worker polls `pushes` outside the lock (set under lock) */
    uint64_t pushes; /* jobs ever pushed (written under lock, polled by the spinner) */
    RAI_RunQueue *next; /* the list of device queues (main thread only) */
    /* For AI.METRICS, read by any thread with relaxed atomics: */
    int length;             /* jobs waiting (written under lock) */
    uint64_t busy_us;       /* workers' time inside batches */
    uint64_t batched_runs;  /* runs of models with BATCHSIZE, ... */
    RAI_Histogram batch_size; /* ... and the summed dim 0 of each batch they ran in */
};

static RAI_RunQueue *device_queues;
static RAI_RunQueue *loader_queue;
static int stopping; /* the server is shutting down */
static __thread int on_worker_thread;

int RAI_OnWorkerThread(void) { return on_worker_thread; }

/* ---------------------------------------------------------------- batching */

/* dim 0 shared by all inputs of a run, or -1 when they disagree or a rank is 0. */
static long long CommonDim0(const RAI_Job *job) {
    long long dim0 = -1;
    for (int i = 0; i < job->ninputs; i++) {
        const RAI_Tensor *t = job->inputs[i];
        if (t->ndims == 0) return -1;
        if (dim0 != -1 && t->shape[0] != dim0) return -1;
        dim0 = t->shape[0];
    }
    return dim0;
}

/* Same model, and inputs that agree in count, dtype, rank and every dim past 0. */
static int CanBatchTogether(const RAI_Job *a, const RAI_Job *b) {
    if (!b->ops->batchable || a->model != b->model || a->ninputs != b->ninputs) return 0;
    for (int i = 0; i < a->ninputs; i++) {
        const RAI_Tensor *x = a->inputs[i], *y = b->inputs[i];
        if (x->dtype != y->dtype || x->ndims != y->ndims) return 0;
        for (int d = 1; d < x->ndims; d++) {
            if (x->shape[d] != y->shape[d]) return 0;
        }
    }
    return 1;
}

static void Unlink(RAI_RunQueue *q, RAI_Job *prev, RAI_Job *job) {
    if (prev) prev->next = job->next;
    else q->head = job->next;
    if (q->tail == job) q->tail = prev;
    job->next = NULL;
}

typedef struct {
    RAI_Job **jobs;
    int n, cap;
} Batch;

static void BatchAdd(Batch *b, RAI_Job *job) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->jobs = RedisModule_Realloc(b->jobs, sizeof(RAI_Job *) * b->cap);
    }
    b->jobs[b->n++] = job;
}

/* Gathers, after `first`, the queued runs it can share a batch with, while
 * the summed dim 0 is below BATCHSIZE. Returns the sum; fills b (first included). */
static long long Gather(const RAI_Job *first, long long dim0, Batch *b) {
    long long sum = dim0, limit = first->model->batchsize;
    b->n = 0;
    BatchAdd(b, (RAI_Job *)first);
    for (RAI_Job *o = first->next; o != NULL && sum < limit; o = o->next) {
        long long d = CanBatchTogether(first, o) ? CommonDim0(o) : -1;
        if (d <= 0 || d >= limit) continue;
        BatchAdd(b, o);
        sum += d;
    }
    return sum;
}

/* Whether a gathered group below MINBATCHSIZE must keep waiting; if so,
 * *wait_us is lowered to when its MINBATCHTIMEOUT expires. */
static int MustWait(const Batch *b, long long sum, uint64_t now, uint64_t *wait_us) {
    const RAI_Job *first = b->jobs[0];
    const RAI_Model *m = first->model;
    if (m->minbatchsize <= 0 || sum >= m->minbatchsize) return 0;
    /* A main thread waiting for one of these (MULTI/Lua) serves no client
     * that could fill the batch: run what there is. */
    for (int i = 0; i < b->n; i++) {
        if (b->jobs[i]->waiter) return 0;
    }
    if (m->minbatchtimeout <= 0) return 1; /* waits for more requests, however long */
    uint64_t expiry = RAI_DeadlineAfterMs(first->queued_us, m->minbatchtimeout);
    if (now >= expiry) return 0;
    if (expiry - now < *wait_us) *wait_us = expiry - now;
    return 1;
}

static int SeenModel(RAI_Model **seen, int nseen, const RAI_Model *m) {
    for (int i = 0; i < nseen; i++) {
        if (seen[i] == m) return 1;
    }
    return 0;
}

/* Takes the next runnable job, or batch, out of the queue (lock held).
 * Returns 0 when everything queued is a group still waiting for MINBATCHSIZE. */
static int TakeRunnable(RAI_RunQueue *q, Batch *b, uint64_t *wait_us) {
    uint64_t now = RedisModule_MonotonicMicroseconds();
    RAI_Model *waiting[64];
    int nwaiting = 0;
    b->n = 0;
    for (RAI_Job *job = q->head; job != NULL; job = job->next) {
        int batchable = job->ops->batchable && job->model->batchsize > 0 &&
                        !(job->deadline_us && now > job->deadline_us);
        long long dim0 = batchable ? CommonDim0(job) : -1;
        if (!batchable || dim0 <= 0 || dim0 >= job->model->batchsize) {
            b->n = 0;
            BatchAdd(b, job);
            break;
        }
        if (SeenModel(waiting, nwaiting, job->model)) continue;
        long long sum = Gather(job, dim0, b);
        if (!MustWait(b, sum, now, wait_us)) break;
        if (nwaiting < 64) waiting[nwaiting++] = job->model;
        b->n = 0;
    }
    if (b->n == 0) return 0;
    for (int i = 0; i < b->n; i++) {
        RAI_Job *prev = NULL;
        for (RAI_Job *j = q->head; j != b->jobs[i]; j = j->next) prev = j;
        Unlink(q, prev, b->jobs[i]);
    }
    __atomic_store_n(&q->length, q->length - b->n, __ATOMIC_RELAXED);
    return 1;
}

/* ----------------------------------------------------------------- workers */

static void WaitForWork(RAI_RunQueue *q, uint64_t wait_us) {
    if (wait_us == UINT64_MAX) {
        pthread_cond_wait(&q->cond, &q->lock);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_us * 1000;
    ts.tv_sec += (time_t)(ns / 1000000000ULL);
    ts.tv_nsec = (long)(ns % 1000000000ULL);
    pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

/* A job past its TIMEOUT when a worker reaches it is not run at all. */
static int SkipIfLate(RAI_Job *job) {
    if (job->deadline_us == 0 || RedisModule_MonotonicMicroseconds() <= job->deadline_us) return 0;
    job->timed_out = 1;
    return 1;
}

/* A batch of a model with BATCHSIZE: its runs, and their summed dim 0. */
static void CountBatch(RAI_RunQueue *q, const Batch *b) {
    const RAI_Job *first = b->jobs[0];
    if (!first->ops->batchable || first->model->batchsize <= 0) return;
    long long samples = 0;
    for (int i = 0; i < b->n; i++) {
        long long dim0 = CommonDim0(b->jobs[i]);
        samples += dim0 > 0 ? dim0 : 0;
    }
    __atomic_add_fetch(&q->batched_runs, (uint64_t)b->n, __ATOMIC_RELAXED);
    RAI_HistogramObserve(&q->batch_size, &RAI_BatchSizeBounds, (uint64_t)samples);
}

static void RunBatch(RAI_RunQueue *q, Batch *b) {
    RAI_Job *first = b->jobs[0];
    if (b->n == 1 && SkipIfLate(first)) return;
    uint64_t now = RedisModule_MonotonicMicroseconds();
    for (int i = 0; i < b->n; i++) b->jobs[i]->started_us = now;
    CountBatch(q, b);
    first->ops->run(b->jobs, b->n);
}

/* When the workers alone can keep every core busy, they run at a lower CPU
 * priority than Redis's main thread, so a saturated box still answers
 * clients promptly (PING p99 under load). With fewer workers than cores the
 * main thread has a core anyway, and niceness would only cost throughput
 * (measured: a third of MODELEXECUTE/s at THREADS_PER_QUEUE 1 on 2 cores).
 * Threads a framework starts from a worker inherit the setting. */
#define RAI_WORKER_NICE 10

static int device_workers; /* started so far, all queues but the loader */

static void LowerPriorityIfCoresAreFull(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && __atomic_load_n(&device_workers, __ATOMIC_RELAXED) >= cores)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RAI_WORKER_NICE);
}

/* The loader makes sessions (a big TorchScript load is a second of CPU):
 * nobody waits on it but the storing client, so it never delays the main
 * thread's wake-ups, whatever the core count. */
static void LowerPriority(void) { setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RAI_WORKER_NICE); }

/* ---------------------------------------------------------------- spinning */

typedef struct {
    const RAI_RunQueue *q;
    uint64_t seen; /* pushes when the worker found nothing runnable */
} PushWatch;

static int PushedOrStopping(const void *arg) {
    const PushWatch *w = arg;
    return __atomic_load_n(&w->q->pushes, __ATOMIC_ACQUIRE) != w->seen ||
           __atomic_load_n(&w->q->stopping, __ATOMIC_RELAXED);
}

/* Whether a worker that just found nothing runnable should poll rather than
 * sleep: only while jobs came within the spin time of running out last time
 * (`armed`), one spinner per queue, and not while a batch waits for
 * MINBATCHSIZE (that wait has its own timeout). */
static int ShouldSpin(const RAI_RunQueue *q, int armed, uint64_t wait_us) {
    return armed && !q->background && !q->spinning && wait_us == UINT64_MAX && RAI_WorkerSpinUs() > 0;
}

/* Lock held on entry and on return; released while polling. Returns whether
 * a job was pushed meanwhile. */
static int Spin(RAI_RunQueue *q) {
    q->spinning = 1;
    PushWatch watch = {q, q->pushes};
    pthread_mutex_unlock(&q->lock);
    int pushed = RAI_SpinUntil(PushedOrStopping, &watch, RAI_WorkerSpinUs());
    pthread_mutex_lock(&q->lock);
    q->spinning = 0;
    return pushed;
}

/* Lock held. Takes the next runnable job or batch, spinning or sleeping
 * until there is one; returns 0 when the queue stops instead. */
static int TakeNext(RAI_RunQueue *q, Batch *batch, int *armed) {
    uint64_t wait_us = UINT64_MAX;
    uint64_t idle_from = 0;
    while (!q->stopping && !TakeRunnable(q, batch, &wait_us)) {
        if (idle_from == 0) idle_from = RedisModule_MonotonicMicroseconds();
        if (ShouldSpin(q, *armed, wait_us)) {
            *armed = Spin(q);
            continue;
        }
        q->sleepers++;
        WaitForWork(q, wait_us);
        q->sleepers--;
        wait_us = UINT64_MAX;
    }
    /* Armed again when this job came within a spin of the queue running dry. */
    if (idle_from != 0) {
        uint64_t idle_us = RedisModule_MonotonicMicroseconds() - idle_from;
        *armed = idle_us <= RAI_WorkerSpinUs();
    }
    return !q->stopping;
}

static void *WorkerMain(void *arg) {
    RAI_RunQueue *q = arg;
    on_worker_thread = 1;
    if (q->background) LowerPriority();
    else LowerPriorityIfCoresAreFull();
    Batch batch = {0};
    int armed = 1;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (!TakeNext(q, &batch, &armed)) break;
        q->running++;
        pthread_mutex_unlock(&q->lock);

        uint64_t busy_from = RedisModule_MonotonicMicroseconds();
        RunBatch(q, &batch);
        for (int i = 0; i < batch.n; i++) batch.jobs[i]->ops->done(batch.jobs[i]);
        __atomic_add_fetch(&q->busy_us, RedisModule_MonotonicMicroseconds() - busy_from, __ATOMIC_RELAXED);

        pthread_mutex_lock(&q->lock);
        q->running--;
        pthread_cond_broadcast(&q->cond); /* a shutdown may be waiting for this */
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ------------------------------------------------------------------ queues */

static RAI_RunQueue *QueueNew(const char *name, int nthreads, int background) {
    RAI_RunQueue *q = RedisModule_Calloc(1, sizeof(*q));
    q->background = background;
    snprintf(q->name, sizeof(q->name), "%s", name);
    for (char *c = q->name; *c; c++) *c = (char)toupper((unsigned char)*c);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->threads = RedisModule_Calloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&q->threads[i], NULL, WorkerMain, q) != 0) {
            RAI_LOG_WARNING("could not start worker %d of queue %s", i + 1, q->name);
            return q->nthreads > 0 ? q : NULL; /* a queue with no worker would hang clients */
        }
        q->nthreads++;
        /* For top -H, perf and /proc: which queue a busy thread serves. */
        char thread_name[RAI_QUEUE_NAME_MAX + 16];
        snprintf(thread_name, sizeof(thread_name), "ai:%s.%d", q->name, i + 1);
        thread_name[15] = '\0'; /* the kernel's limit, NUL included */
        pthread_setname_np(q->threads[i], thread_name);
    }
    return q;
}

/* Counted before the threads start, so each sees the final number. */
static void CountDeviceWorkers(int n) {
    __atomic_add_fetch(&device_workers, n, __ATOMIC_RELAXED);
}

RAI_RunQueue *RAI_RunQueueFor(const char *device) {
    char name[RAI_QUEUE_NAME_MAX];
    snprintf(name, sizeof(name), "%s", device);
    for (char *c = name; *c; c++) *c = (char)toupper((unsigned char)*c);
    int nqueues = 0;
    for (RAI_RunQueue *q = device_queues; q != NULL; q = q->next, nqueues++) {
        if (strcmp(q->name, name) == 0) return q;
    }
    /* Each device name gets threads of its own: a client naming CPU:1,
     * CPU:2, ... must not be able to make threads without end. */
    if (nqueues >= RAI_MAX_DEVICE_QUEUES) {
        RAI_LOG_WARNING("no queue for device %s: %d device queues exist already", name, nqueues);
        return NULL;
    }
    CountDeviceWorkers((int)RAI_Cfg.threads_per_queue);
    RAI_RunQueue *q = QueueNew(name, (int)RAI_Cfg.threads_per_queue, 0);
    if (q == NULL) return NULL;
    q->next = device_queues;
    __atomic_store_n(&device_queues, q, __ATOMIC_RELEASE); /* a scrape may be walking the list */
    return q;
}

RAI_RunQueue *RAI_RunQueueOf(RAI_RunQueue **slot, const char *device) {
    if (*slot == NULL) *slot = RAI_RunQueueFor(device);
    return *slot;
}

RAI_RunQueue *RAI_LoaderQueue(void) {
    if (loader_queue == NULL) __atomic_store_n(&loader_queue, QueueNew("loader", 1, 1), __ATOMIC_RELEASE);
    return loader_queue;
}

static RAI_RunQueue *function_queue;

RAI_RunQueue *RAI_FunctionQueue(void) {
    if (function_queue == NULL)
        __atomic_store_n(&function_queue, QueueNew("functions", (int)RAI_Cfg.function_threads, 0), __ATOMIC_RELEASE);
    return function_queue;
}

void RAI_RunQueuePush(RAI_RunQueue *q, RAI_Job *job) {
    job->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail) q->tail->next = job;
    else q->head = job;
    q->tail = job;
    __atomic_store_n(&q->length, q->length + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&q->pushes, q->pushes + 1, __ATOMIC_RELEASE);
    /* A spinner takes the lock and looks again once it sees the push, so a
     * sleeper is woken only for a job the spinner will not be taking. */
    if (q->sleepers > 0 && (!q->spinning || q->length > 1)) pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static void StopTakingJobs(RAI_RunQueue *q) {
    pthread_mutex_lock(&q->lock);
    __atomic_store_n(&q->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Waits, up to the deadline, for the batch a queue has in flight to end. */
static void WaitIdle(RAI_RunQueue *q, uint64_t deadline_us) {
    pthread_mutex_lock(&q->lock);
    while (q->running > 0 && RedisModule_MonotonicMicroseconds() < deadline_us) WaitForWork(q, 10000);
    pthread_mutex_unlock(&q->lock);
}

int RAI_RunQueuesStopping(void) { return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE); }

void RAI_RunQueuesShutdown(uint64_t timeout_ms) {
    uint64_t deadline = RedisModule_MonotonicMicroseconds() + timeout_ms * 1000;
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    for (RAI_RunQueue *q = device_queues; q != NULL; q = q->next) StopTakingJobs(q);
    if (loader_queue) StopTakingJobs(loader_queue);
    if (function_queue) StopTakingJobs(function_queue);
    for (RAI_RunQueue *q = device_queues; q != NULL; q = q->next) WaitIdle(q, deadline);
    if (loader_queue) WaitIdle(loader_queue, deadline);
    if (function_queue) WaitIdle(function_queue, deadline);
}

static void AddThreadCpu(RedisModuleInfoCtx *ctx, const RAI_RunQueue *q, int i) {
    clockid_t clock;
    struct timespec ts = {0};
    if (pthread_getcpuclockid(q->threads[i], &clock) == 0) clock_gettime(clock, &ts);
    char field[96], value[64];
    snprintf(field, sizeof(field), "queue_%s_bthread_n%d_used_cpu_total", q->name, i + 1);
    snprintf(value, sizeof(value), "%ld.%06ld", (long)ts.tv_sec, ts.tv_nsec / 1000);
    RedisModule_InfoAddFieldCString(ctx, field, value);
}

void RAI_RunQueuesInfo(RedisModuleInfoCtx *ctx) {
    for (const RAI_RunQueue *q = device_queues; q != NULL; q = q->next) {
        for (int i = 0; i < q->nthreads; i++) AddThreadCpu(ctx, q, i);
    }
}

int RAI_RunQueuesWorkerCount(void) {
    int n = 0;
    for (const RAI_RunQueue *q = device_queues; q != NULL; q = q->next) n += q->nthreads;
    return n;
}

/* ----------------------------------------------------------------- metrics */

/* Queues are never freed and join the list at its head, published with a
 * release store, so any thread may walk it. */
static void ReadFigures(const RAI_RunQueue *q, RAI_QueueFigures *f) {
    f->name = q->name;
    f->workers = q->nthreads;
    f->length = __atomic_load_n(&q->length, __ATOMIC_RELAXED);
    f->running = __atomic_load_n(&q->running, __ATOMIC_RELAXED);
    f->busy_us = __atomic_load_n(&q->busy_us, __ATOMIC_RELAXED);
    f->batched_runs = __atomic_load_n(&q->batched_runs, __ATOMIC_RELAXED);
    f->batch_size = &q->batch_size;
}

size_t RAI_RunQueuesFigures(RAI_QueueFigures *out, size_t max) {
    size_t n = 0;
    for (const RAI_RunQueue *q = __atomic_load_n(&device_queues, __ATOMIC_ACQUIRE); q != NULL && n < max;
         q = q->next)
        ReadFigures(q, &out[n++]);
    return n;
}

int RAI_LoaderQueueLength(void) {
    const RAI_RunQueue *q = __atomic_load_n(&loader_queue, __ATOMIC_ACQUIRE);
    return q ? __atomic_load_n(&q->length, __ATOMIC_RELAXED) : 0;
}
