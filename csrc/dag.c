/* dag.c -- DAG slots, ops, and the worker side of their run. */
#include "dag.h"

#include <string.h>

#include "job.h"
#include "py_jobs.h"

RAI_Dag *RAI_DagNew(void) {
    RAI_Dag *dag = RedisModule_Calloc(1, sizeof(*dag));
    pthread_mutex_init(&dag->lock, NULL);
    pthread_cond_init(&dag->produced, NULL);
    return dag;
}

static void FreeStrings(int n, char **strings) {
    for (int i = 0; i < n; i++) RedisModule_Free(strings[i]);
    RedisModule_Free(strings);
}

void RAI_DagFree(RAI_Dag *dag) {
    for (int i = 0; i < dag->nslots; i++) RAI_TensorRelease(dag->slots[i]);
    RedisModule_Free(dag->slots);
    for (int i = 0; i < dag->nops; i++) {
        RAI_DagOp *op = &dag->ops[i];
        RAI_ModelRelease(op->model);
        RAI_ScriptRelease(op->script);
        RedisModule_Free(op->fn);
        FreeStrings(op->nkeys, op->keys);
        FreeStrings(op->nargs, op->args);
        RedisModule_Free(op->arglens);
        RedisModule_Free(op->inputs);
        RedisModule_Free(op->outputs);
        RedisModule_Free(op->error);
    }
    RedisModule_Free(dag->ops);
    for (int i = 0; i < dag->npersist; i++) RedisModule_FreeString(NULL, dag->persist_keys[i]);
    RedisModule_Free(dag->persist_keys);
    RedisModule_Free(dag->persist_slots);
    pthread_mutex_destroy(&dag->lock);
    pthread_cond_destroy(&dag->produced);
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
    return op;
}

static int InputsReady(const RAI_Dag *dag, const RAI_DagOp *op) {
    for (int i = 0; i < op->ninputs; i++) {
        if (dag->slots[op->inputs[i]] == NULL) return 0;
    }
    return 1;
}

/* Runs one model or script op through the same Python path as a standalone
 * command, with a job that borrows the op's model/script and input tensors. */
static void RunOp(RAI_Dag *dag, RAI_DagOp *op, RAI_Tensor **inputs) {
    RAI_Job job = {
        .kind = op->kind == RAI_DAG_MODEL ? RAI_JOB_MODEL_RUN : RAI_JOB_SCRIPT_RUN,
        .model = op->model, .script = op->script, .fn = op->fn,
        .nkeys = op->nkeys, .keys = op->keys, .nargs = op->nargs, .args = op->args,
        .arglens = op->arglens, .ninputs = op->ninputs, .inputs = inputs,
        .noutputs = op->noutputs,
    };
    job.outputs = RedisModule_Calloc(op->noutputs > 0 ? (size_t)op->noutputs : 1, sizeof(RAI_Tensor *));
    RAI_Job *batch = &job;
    if (op->kind == RAI_DAG_MODEL) RAI_PyRunModel(&batch, 1);
    else RAI_PyRunScript(&job);

    pthread_mutex_lock(&dag->lock);
    op->duration_us = job.duration_us;
    if (job.error) {
        op->state = RAI_OP_FAILED;
        op->error = job.error;
        dag->failed = 1;
        for (int i = 0; i < op->noutputs; i++) RAI_TensorRelease(job.outputs[i]);
    } else {
        op->state = RAI_OP_DONE;
        for (int i = 0; i < op->noutputs; i++) dag->slots[op->outputs[i]] = job.outputs[i];
    }
    pthread_cond_broadcast(&dag->produced);
    pthread_mutex_unlock(&dag->lock);
    RedisModule_Free(job.outputs);
}

/* Waits (without the GIL) for an op's inputs; 0 when the DAG stopped. */
static int WaitForInputs(RAI_Dag *dag, const RAI_DagOp *op, RAI_Tensor **inputs) {
    pthread_mutex_lock(&dag->lock);
    while (!dag->failed && !InputsReady(dag, op)) pthread_cond_wait(&dag->produced, &dag->lock);
    int go = !dag->failed;
    if (go && dag->deadline_us && RedisModule_MonotonicMicroseconds() > dag->deadline_us) {
        dag->failed = dag->timed_out = 1; /* TIMEOUT is checked as each op starts */
        pthread_cond_broadcast(&dag->produced);
        go = 0;
    }
    for (int i = 0; go && i < op->ninputs; i++) inputs[i] = dag->slots[op->inputs[i]];
    pthread_mutex_unlock(&dag->lock);
    return go;
}

int RAI_DagRunOps(RAI_Dag *dag, const int *ops, int nops) {
    for (int i = 0; i < nops; i++) {
        RAI_DagOp *op = &dag->ops[ops[i]];
        RAI_Tensor **inputs = RedisModule_Calloc(op->ninputs > 0 ? (size_t)op->ninputs : 1, sizeof(*inputs));
        int go = WaitForInputs(dag, op, inputs);
        if (go) RunOp(dag, op, inputs);
        RedisModule_Free(inputs);
        if (!go) break;
    }
    pthread_mutex_lock(&dag->lock);
    int last = --dag->pending == 0;
    pthread_mutex_unlock(&dag->lock);
    return last;
}
