/* dag.h -- a parsed AI.DAGEXECUTE: its tensors, its ops, and their run.
 *
 * Tensors in a DAG live in numbered slots, never in the keyspace: LOAD and
 * TENSORSET ops fill slots while the command is parsed. Each MODELEXECUTE or
 * SCRIPTEXECUTE op is an ordinary job (job_kinds.h), queued on its device
 * only once its inputs exist: every op counts down what it still waits for
 * (each input a model or script op produces, and the previous op of the
 * same device, which keeps a device's ops in DAG order), and the job that
 * ends queues the ops it was the last wait of. No worker ever waits for
 * another job, a DAG's model op batches with other runs of its model, and
 * ops on different devices run in parallel. The last job to end hands the
 * DAG back to the main thread. */
#ifndef RAI_DAG_H
#define RAI_DAG_H

#include <pthread.h>
#include <stdint.h>

#include "exec/job.h"
#include "rm_api.h"
#include "types/tensor.h"

struct RAI_RunQueue;

typedef enum { RAI_DAG_TENSORSET, RAI_DAG_TENSORGET, RAI_DAG_MODEL, RAI_DAG_SCRIPT } RAI_DagOpKind;

typedef enum { RAI_OP_PENDING, RAI_OP_DONE, RAI_OP_FAILED } RAI_DagOpState;

typedef struct {
    RAI_DagOpKind kind;
    RAI_Job *job; /* MODEL / SCRIPT: owned; its model or script, inputs, error, time
                     (and the DAG's waiter, for a script's redis.execute) */
    struct RAI_RunQueue *queue;
    int ninputs, noutputs;
    int *inputs, *outputs;  /* slot numbers */
    int meta, blob, values; /* TENSORGET format */
    int waits;              /* inputs not produced yet, + 1 for an earlier op of its device */
    int next_on_device;     /* the next model/script op of the same queue, or -1 */
    RAI_DagOpState state;   /* written under the DAG lock */
    int cached;             /* MODEL: answered from the inference cache, its job never runs */
} RAI_DagOp;

typedef struct RAI_Dag {
    pthread_mutex_t lock; /* slots, op states, waits, in_flight, failed */
    int nslots, slots_cap;
    RAI_Tensor **slots;
    int nops;
    RAI_DagOp *ops;
    int npersist;
    RedisModuleString **persist_keys; /* retained */
    int *persist_slots;
    int failed, timed_out;
    uint64_t deadline_us; /* 0: no TIMEOUT */
    int in_flight;        /* op jobs queued or running */
    RedisModuleBlockedClient *bc;
    struct RAI_Waiter *waiter; /* instead of bc: the main thread waits (MULTI/Lua) */
} RAI_Dag;

RAI_Dag *RAI_DagNew(void);
void RAI_DagFree(RAI_Dag *dag);

/* A new slot holding t (taken over), returned by number. */
int RAI_DagAddSlot(RAI_Dag *dag, RAI_Tensor *t);
RAI_DagOp *RAI_DagAddOp(RAI_Dag *dag, RAI_DagOpKind kind);

/* Main thread, once parsed: answers from the inference cache each model op
 * of a cached model whose inputs are known already (LOAD, TENSORSET, or an
 * earlier op answered this way), in DAG order; those ops are DONE and never
 * queued. Returns how many were answered. */
int RAI_DagServeFromCache(RAI_Dag *dag);

/* Main thread, once the DAG is over: keeps the outputs of each model op of
 * a cached model that ran and succeeded. */
void RAI_DagCacheResults(RAI_Dag *dag);

/* Whether the op still needs a job to run (a model or script op not
 * answered from the cache). */
int RAI_DagOpRuns(const RAI_DagOp *op);

/* Main thread, once parsed and the client blocked (or a waiter set): counts what each model or
 * script op waits for and queues those that wait for nothing. Returns the
 * number queued; 0 means the DAG has no such op (nothing to wait for). */
int RAI_DagStart(RAI_Dag *dag);

/* The `done` of a DAG op's job (worker thread): its outputs go to their
 * slots, the ops it was the last wait of are queued, and the DAG's client is
 * unblocked when nothing is left in flight. */
void RAI_DagOpDone(RAI_Job *job);

#endif
