/* job_keys.h -- what a run job reads from and writes to the keyspace, the
 * reply that ends it, and the end of a store. Main thread only. */
#ifndef RAI_JOB_KEYS_H
#define RAI_JOB_KEYS_H

#include "exec/job.h"
#include "exec/run_queue.h"
#include "rm_api.h"

/* Takes a reference to each input tensor now, so the job is unaffected by
 * later writes to those keys. Replies and returns 0 on a missing/wrong key. */
int RAI_JobCaptureInputs(RedisModuleCtx *ctx, RAI_Job *job, RedisModuleString **keys);

/* Keeps the names of the job->noutputs output keys. */
void RAI_JobKeepOutputKeys(RAI_Job *job, RedisModuleString **keys);

/* 1 if every output key is empty or a tensor; else replies WRONGTYPE. */
int RAI_JobOutputKeysWritable(RedisModuleCtx *ctx, RAI_Job *job);

/* Stores t under keyname and replicates it as AI.TENSORSET ... BLOB, so
 * replicas and the AOF never run the model or script (run outputs and DAG
 * PERSIST keys alike). */
void RAI_WriteTensorKey(RedisModuleCtx *ctx, RedisModuleString *keyname, RAI_Tensor *t);

/* Counts one finished run (standalone or a DAG op) in its model's or
 * script's stats: a call, an error or its time, and the samples of its first
 * output (dim 0); and in its key's metric series, with its queue wait and
 * execution time. */
void RAI_JobCount(RAI_Job *job, const RAI_Tensor *first_output);

/* A run job of a model stored with CACHE, inputs captured and output keys
 * checked: on a hit, writes and replicates the cached outputs as a run
 * would, replies OK and returns 1 (the caller frees the job, nothing is
 * queued); on a miss returns 0. */
int RAI_JobServeFromCache(RedisModuleCtx *ctx, RAI_Job *job);

/* Reply callback of MODELEXECUTE / SCRIPTEXECUTE: writes and replicates the
 * outputs, counts the run, replies OK / TIMEDOUT / the error. */
int RAI_RunJob_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* Queues a run job on its model's or script's device queue and ends it: blocks the client, whose reply callback is
 * RAI_RunJob_Reply; or, where the client cannot block (MULTI, Lua; the
 * caller checked RAI_SyncRunAllowed), waits here for the job and replies.
 * Takes ownership of job. */
int RAI_RunJobAndWait(RedisModuleCtx *ctx, RAI_Job *job);

/* Main thread, where the client cannot be blocked (MULTI, Lua, AOF load):
 * pushes job on queue and waits for it without the GIL, doing meanwhile the
 * Redis work workers hand over (exec/sync_run.h). The caller then owns the
 * finished job. */
void RAI_PushAndWait(RedisModuleCtx *ctx, RAI_RunQueue *queue, RAI_Job *job);

/* Ends AI.MODELSTORE / AI.SCRIPTSTORE for a load job (model or script set,
 * key type checked): the session is made on the loader thread while the
 * client waits, then the key is set, the command replicated and OK replied.
 * Takes ownership of job. */
int RAI_StoreWithSession(RedisModuleCtx *ctx, RAI_Job *job, RedisModuleString **argv, int argc);

/* BlockClient's free callback for any job. */
void RAI_FreeJobCallback(RedisModuleCtx *ctx, void *privdata);

#endif
