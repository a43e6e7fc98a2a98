/* run_queue.h -- per-device FIFO queues and their worker threads.
 *
 * One queue per device name, upper-cased ("CPU", "CPU:1", "GPU:0"), each
 * with THREADS_PER_QUEUE workers, plus one loader queue that makes backend
 * sessions for MODELSTORE so a large model never holds up inference. The
 * queue mutex is never held while taking the GIL (the deadlock of RedisAI
 * PR #778). */
#ifndef RAI_RUN_QUEUE_H
#define RAI_RUN_QUEUE_H

#include "base/histogram.h"
#include "exec/job.h"
#include "rm_api.h"

typedef struct RAI_RunQueue RAI_RunQueue;

/* The queue of `device`, created with its workers on first use (main thread).
 * NULL if its threads could not start. */
RAI_RunQueue *RAI_RunQueueFor(const char *device);

/* The queue of a stored model's or script's device, looked up (and made) on
 * first use and cached in *slot (main thread): a model loaded from RDB gets
 * its queue when it first runs. NULL if its workers cannot start. */
RAI_RunQueue *RAI_RunQueueOf(RAI_RunQueue **slot, const char *device);

/* The queue that makes backend sessions. */
RAI_RunQueue *RAI_LoaderQueue(void);

/* The queue of AI.FCALL callbacks (FUNCTION_THREADS workers), made on first
 * use (main thread). NULL if its threads could not start. */
RAI_RunQueue *RAI_FunctionQueue(void);

void RAI_RunQueuePush(RAI_RunQueue *q, RAI_Job *job);


/* ai_queue_<DEVICE>_bthread_n<i>_used_cpu_total for every worker. */
void RAI_RunQueuesInfo(RedisModuleInfoCtx *ctx);

/* At server shutdown (main thread): no queue takes another job, and runs in
 * flight get up to timeout_ms to end, so the process does not exit (and run
 * the frameworks' destructors) under a worker still inside a backend. */
void RAI_RunQueuesShutdown(uint64_t timeout_ms);

/* Whether the calling thread is one of the queues' workers. */
int RAI_OnWorkerThread(void);

/* Whether the shutdown above has begun (any thread). */
int RAI_RunQueuesStopping(void);

/* Number of device queues x threads: how many runs can be in flight. */
int RAI_RunQueuesWorkerCount(void);

/* A device queue as AI.METRICS shows it (any thread, no lock: each figure
 * is read on its own, so they may be a moment apart). */
typedef struct {
    const char *name;     /* the upper-cased device; lives as long as the process */
    int workers;
    int length;           /* jobs waiting for a worker */
    int running;          /* workers inside a batch */
    uint64_t busy_us;     /* workers' summed time inside batches */
    uint64_t batched_runs; /* runs of models with BATCHSIZE */
    const RAI_Histogram *batch_size; /* samples per batch of such models */
} RAI_QueueFigures;

/* Fills up to max device queues' figures (the loader's not among them). */
size_t RAI_RunQueuesFigures(RAI_QueueFigures *out, size_t max);

/* Stores waiting for the loader. */
int RAI_LoaderQueueLength(void);

#endif
