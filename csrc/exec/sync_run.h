/* sync_run.h -- the Redis main thread as the one place worker threads' Redis
 * work is done, and running jobs to completion while it waits: inference
 * inside MULTI and Lua, where a client cannot be blocked.
 *
 * Workers never take the Redis lock. A script's redis.execute, a model lookup
 * for redisAI.model_execute, or the names a background load learned are
 * handed to the main thread, which does them in its event loop (a one-shot
 * event) or, when it is waiting for a job, inside that wait. So a main thread
 * that waits for a job (never taking the GIL: invariant 1) cannot deadlock
 * with a worker that needs Redis, whichever job that worker is running. */
#ifndef RAI_SYNC_RUN_H
#define RAI_SYNC_RUN_H

#include "rm_api.h"

/* Work that needs Redis: done with ctx on the main thread. */
typedef void (*RAI_RedisWork)(RedisModuleCtx *ctx, void *arg);

/* Worker (any thread but the main one): runs work(ctx, arg) on the main
 * thread and returns when it is done; 1 then. 0, without running it, when the
 * server began to shut down first (the main thread serves no more). */
int RAI_OnMainThread(RAI_RedisWork work, void *arg);

/* Worker: work(ctx, arg) on the main thread soon, without waiting for it
 * (counting a finished run, freeing what it held). 0, without queueing it,
 * once the server began to shut down: the caller leaves arg to the exiting
 * process. */
int RAI_PostToMainThread(RAI_RedisWork work, void *arg);

/* Main thread: does the posted work queued so far now, before a reply that
 * must follow it (a function's reply after its runs were counted: a client
 * that gets the reply and asks AI.INFO sees them). Work a worker waits for
 * stays queued. */
void RAI_DoPostedWork(RedisModuleCtx *ctx);

/* At module load: a context that stays valid (a detached one), for the
 * timers that do the work. */
void RAI_SyncRunStart(RedisModuleCtx *module_ctx);

/* A number the posting thread attaches to the work it hands over, which the
 * main thread can read while it does that work: function triggers tag their
 * execute() calls with their depth, so that the keyspace events those calls
 * cause are known as a trigger's (py_triggers.c). */
void RAI_SetWorkTag(int tag);     /* worker: for its work from now on; 0 clears */
int RAI_CurrentWorkTag(void);     /* main thread: the tag of the work now running; 0 outside */

typedef struct RAI_Waiter RAI_Waiter;

/* Whether a command that cannot block may run its jobs here and wait: not
 * for a worker (a script's redis.execute of AI.MODELEXECUTE, done on the main
 * thread for it, would wait for the queue that worker holds), and not while
 * the main thread already waits for a job. */
int RAI_SyncRunAllowed(void);

/* Main thread: a waiter for the jobs about to be queued. */
RAI_Waiter *RAI_WaiterNew(void);

/* Main thread: waits until RAI_WaiterWake, doing meanwhile the Redis work
 * that workers hand over, with ctx (the waiting command's: a write joins its
 * transaction). */
void RAI_WaiterWait(RAI_Waiter *w, RedisModuleCtx *ctx);

void RAI_WaiterFree(RAI_Waiter *w);

/* Worker: what the main thread waits for is done. The worker must not touch
 * what it waited for (job, DAG) afterwards: the main thread takes it over. */
void RAI_WaiterWake(RAI_Waiter *w);

#endif
