/* dag.h -- a parsed AI.DAGEXECUTE: its tensors, its ops, and their run.
 *
 * Tensors in a DAG live in numbered slots, never in the keyspace: LOAD and
 * TENSORSET ops fill slots while the command is parsed, MODELEXECUTE and
 * SCRIPTEXECUTE ops fill them on workers. The ops of each device form one
 * sub-job on that device's queue; a sub-job waits for slots that another
 * device produces, so ops on different devices run in parallel. The last
 * sub-job to end hands the DAG back to the main thread. */
#ifndef RAI_DAG_H
#define RAI_DAG_H

#include <pthread.h>
#include <stdint.h>

#include "model.h"
#include "rm_api.h"
#include "script.h"
#include "tensor.h"

struct RAI_RunQueue;

typedef enum { RAI_DAG_TENSORSET, RAI_DAG_TENSORGET, RAI_DAG_MODEL, RAI_DAG_SCRIPT } RAI_DagOpKind;

typedef enum { RAI_OP_PENDING, RAI_OP_DONE, RAI_OP_FAILED } RAI_DagOpState;

typedef struct {
    RAI_DagOpKind kind;
    RAI_Model *model;   /* retained */
    RAI_Script *script; /* retained */
    char *fn;
    int nkeys, nargs;
    char **keys, **args;
    size_t *arglens;
    int ninputs, noutputs;
    int *inputs, *outputs; /* slot numbers */
    int meta, blob, values; /* TENSORGET format */
    struct RAI_RunQueue *queue;
    RAI_DagOpState state; /* written by the worker running it, under the DAG lock */
    char *error;
    uint64_t duration_us;
} RAI_DagOp;

typedef struct RAI_Dag {
    pthread_mutex_t lock;
    pthread_cond_t produced; /* a slot was filled, or the DAG failed */
    int nslots, slots_cap;
    RAI_Tensor **slots;
    int nops;
    RAI_DagOp *ops;
    int npersist;
    RedisModuleString **persist_keys; /* retained */
    int *persist_slots;
    int failed, timed_out;
    uint64_t deadline_us; /* 0: no TIMEOUT */
    int pending;          /* sub-jobs not yet finished */
    RedisModuleBlockedClient *bc;
} RAI_Dag;

RAI_Dag *RAI_DagNew(void);
void RAI_DagFree(RAI_Dag *dag);

/* A new slot holding t (taken over), returned by number. */
int RAI_DagAddSlot(RAI_Dag *dag, RAI_Tensor *t);
RAI_DagOp *RAI_DagAddOp(RAI_Dag *dag, RAI_DagOpKind kind);

/* Worker side: runs the listed ops of one device in order (no GIL held
 * while waiting for slots). Returns 1 when this was the last sub-job. */
int RAI_DagRunOps(RAI_Dag *dag, const int *ops, int nops);

#endif
