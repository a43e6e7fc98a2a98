/* sync_run.h -- running jobs to completion while the main thread waits:
 * inference inside MULTI and Lua, where a client cannot be blocked.
 *
 * The main thread queues the jobs as usual and waits on a condition
 * variable, never taking the GIL (invariant 1). A worker that must touch
 * Redis meanwhile (a script's redis.execute, redisAI.model_execute's key
 * lookup) cannot take the Redis lock, which the waiting main thread holds:
 * it hands that work to the main thread, which does it inside its wait, in
 * the waiting command's context (so a write joins the transaction), and hands
 * the result back. */
#ifndef RAI_SYNC_RUN_H
#define RAI_SYNC_RUN_H

#include "rm_api.h"

typedef struct RAI_Waiter RAI_Waiter;

/* Whether a command that cannot block may run its jobs here and wait: not on
 * a worker (a script's redis.execute of AI.MODELEXECUTE would wait for its
 * own queue), and not while the main thread already waits for a job. */
int RAI_SyncRunAllowed(void);

/* Main thread: a waiter for the jobs about to be queued. */
RAI_Waiter *RAI_WaiterNew(void);

/* Main thread: waits until RAI_WaiterWake, doing meanwhile the Redis work
 * that workers hand over, with ctx. */
void RAI_WaiterWait(RAI_Waiter *w, RedisModuleCtx *ctx);

void RAI_WaiterFree(RAI_Waiter *w);

/* Worker: what the main thread waits for is done. The worker must not touch
 * what it waited for (job, DAG) afterwards: the main thread takes it over. */
void RAI_WaiterWake(RAI_Waiter *w);

/* Worker, around a run for w: this thread's Redis work goes to w's waiting
 * main thread instead of the Redis lock (NULL: back to the lock). */
void RAI_WaiterServeRedisWork(RAI_Waiter *w);

#endif
