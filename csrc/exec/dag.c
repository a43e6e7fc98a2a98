/* dag.c -- DAG slots and ops, the scheduling of their jobs, and the answers
 * the inference cache gives their model ops. */
#include "exec/dag.h"

#include <string.h>

#include "exec/infer_cache.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "exec/sync_run.h"

RAI_Dag *RAI_DagNew(void) {
    RAI_Dag *dag = RedisModule_Calloc(1, sizeof(*dag));
    pthread_mutex_init(&dag->lock, NULL);
    return dag;
}

void RAI_DagFree(RAI_Dag *dag) {
    for (int i = 0; i < dag->nslots; i++) RAI_TensorRelease(dag->slots[i]);
    RedisModule_Free(dag->slots);
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (op->job) RAI_JobFree(op->job);
        RedisModule_Free(op->inputs);
        RedisModule_Free(op->outputs);
    }
    RedisModule_Free(dag->ops);
    for (int i = 0; i < dag->npersist; i++) RedisModule_FreeString(NULL, dag->persist_keys[i]);
    RedisModule_Free(dag->persist_keys);
    RedisModule_Free(dag->persist_slots);
    pthread_mutex_destroy(&dag->lock);
    RedisModule_Free(dag);
}

int RAI_DagAddSlot(RAI_Dag *dag, RAI_Tensor *t) {
    if (dag->nslots == dag->slots_cap) {
        dag->slots_cap = dag->slots_cap ? dag->slots_cap * 2 : 8;
        dag->slots = RedisModule_Realloc(dag->slots, sizeof(*dag->slots) * dag->slots_cap);
    }
    dag->slots[dag->nslots] = t;
    return dag->nslots++;
}

RAI_DagOp *RAI_DagAddOp(RAI_Dag *dag, RAI_DagOpKind kind) {
    dag->ops = RedisModule_Realloc(dag->ops, sizeof(*dag->ops) * (dag->nops + 1));
    RAI_DagOp *op = &dag->ops[dag->nops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->next_on_device = -1;
    return op;
}

static int Runs(const RAI_DagOp *op) {
    return (op->kind == RAI_DAG_MODEL || op->kind == RAI_DAG_SCRIPT) && !op->cached;
}

int RAI_DagOpRuns(const RAI_DagOp *op) { return Runs(op); }

/* One model op: its inputs (all present) into its job, then the lookup; a
 * hit's outputs go to the op's slots. */
static int ServeOpFromCache(RAI_Dag *dag, RAI_DagOp *op) {
    RAI_Job *job = op->job;
    for (int i = 0; i < op->ninputs; i++) {
        if (dag->slots[op->inputs[i]] == NULL) return 0;
    }
    for (int i = 0; i < op->ninputs; i++) {
        RAI_TensorRelease(job->inputs[i]);
        job->inputs[i] = RAI_TensorRetain(dag->slots[op->inputs[i]]);
    }
    if (!RAI_CacheLookup(job->model, op->ninputs, job->inputs, op->noutputs, job->outputs)) return 0;
    for (int i = 0; i < op->noutputs; i++) {
        dag->slots[op->outputs[i]] = job->outputs[i]; /* the slot takes the reference */
        job->outputs[i] = NULL;
    }
    op->cached = 1;
    op->state = RAI_OP_DONE;
    return 1;
}

int RAI_DagServeFromCache(RAI_Dag *dag) {
    int served = 0;
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (op->kind == RAI_DAG_MODEL && RAI_CacheApplies(op->job->model))
            served += ServeOpFromCache(dag, op);
    }
    return served;
}

void RAI_DagCacheResults(RAI_Dag *dag) {
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (op->kind != RAI_DAG_MODEL || op->cached || op->state != RAI_OP_DONE) continue;
        if (!RAI_CacheApplies(op->job->model)) continue;
        RAI_Tensor **outputs = op->job->outputs; /* emptied into the slots when the op ended */
        for (int k = 0; k < op->noutputs; k++) outputs[k] = dag->slots[op->outputs[k]];
        RAI_CacheInsert(op->job->model, op->ninputs, op->job->inputs, op->noutputs, outputs);
        for (int k = 0; k < op->noutputs; k++) outputs[k] = NULL; /* the slots keep the references */
    }
}

/* The op's inputs, taken from their slots into its job (lock held or before
 * any job runs), and the job queued. Its deadline is the DAG's: a job still
 * queued when the DAG's TIMEOUT passes is not run. */
static void Queue(RAI_Dag *dag, RAI_DagOp *op) {
    RAI_Job *job = op->job;
    for (int i = 0; i < op->ninputs; i++) {
        RAI_TensorRelease(job->inputs[i]); /* a cache lookup may have filled it */
        job->inputs[i] = RAI_TensorRetain(dag->slots[op->inputs[i]]);
    }
    job->deadline_us = dag->deadline_us;
    job->waiter = dag->waiter;
    job->queued_us = RedisModule_MonotonicMicroseconds();
    dag->in_flight++;
    if (op->kind == RAI_DAG_MODEL) RAI_QueueModelRun(job, op->queue); /* may wait for its session */
    else RAI_RunQueuePush(op->queue, job);
}

int RAI_DagStart(RAI_Dag *dag) {
    int last_on_queue[64], nqueues = 0;
    struct RAI_RunQueue *queues[64];
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (!Runs(op)) continue;
        for (int k = 0; k < op->ninputs; k++) op->waits += dag->slots[op->inputs[k]] == NULL;
        int q = 0;
        while (q < nqueues && queues[q] != op->queue) q++;
        if (q < nqueues) {
            dag->ops[last_on_queue[q]].next_on_device = i;
            op->waits++;
        } else if (nqueues < 64) {
            queues[nqueues++] = op->queue;
        } else {
            q = -1; /* past 64 devices in one DAG, order across them is by data only */
        }
        if (q >= 0) last_on_queue[q] = i;
    }
    int queued = 0;
    pthread_mutex_lock(&dag->lock);
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (Runs(op) && op->waits == 0) {
            Queue(dag, op);
            queued++;
        }
    }
    pthread_mutex_unlock(&dag->lock);
    return queued;
}

/* One wait of ops[i] is over; queues it if that was its last (lock held). */
static void Release(RAI_Dag *dag, int i, int count) {
    RAI_DagOp *op = &dag->ops[i];
    op->waits -= count;
    if (op->waits == 0 && !dag->failed) Queue(dag, op);
}

/* The ops after `done` that read one of its output slots, each once per use. */
static void ReleaseReaders(RAI_Dag *dag, int done) {
    const RAI_DagOp *producer = &dag->ops[done];
    for (int i = done + 1; i < dag->nops && !dag->failed; i++) {
        RAI_DagOp *op = &dag->ops[i];
        if (!Runs(op)) continue;
        int uses = 0;
        for (int k = 0; k < op->ninputs; k++) {
            for (int o = 0; o < producer->noutputs; o++) uses += op->inputs[k] == producer->outputs[o];
        }
        if (uses > 0) Release(dag, i, uses);
    }
}

void RAI_DagOpDone(RAI_Job *job) {
    RAI_Dag *dag = job->dag;
    RAI_DagOp *op = &dag->ops[job->dag_op];
    pthread_mutex_lock(&dag->lock);
    if (job->timed_out) {
        dag->failed = dag->timed_out = 1; /* TIMEOUT is checked as each op starts */
    } else if (job->error) {
        op->state = RAI_OP_FAILED;
        dag->failed = 1;
    } else {
        op->state = RAI_OP_DONE;
        for (int i = 0; i < op->noutputs; i++) {
            dag->slots[op->outputs[i]] = job->outputs[i]; /* the slot takes the reference */
            job->outputs[i] = NULL;
        }
        ReleaseReaders(dag, job->dag_op);
        if (op->next_on_device >= 0 && !dag->failed) Release(dag, op->next_on_device, 1);
    }
    int last = --dag->in_flight == 0;
    pthread_mutex_unlock(&dag->lock);
    if (!last) return;
    if (dag->waiter) {
        RAI_WaiterWake(dag->waiter);
        return;
    }
    RedisModule_BlockedClientMeasureTimeEnd(dag->bc);
    RedisModule_UnblockClient(dag->bc, dag);
}
