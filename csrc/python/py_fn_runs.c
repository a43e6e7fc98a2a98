/* py_fn_runs.c -- model and script runs for in-server functions: what
 * redisAI's modelRunnerRun / scriptRunnerRun / DAG runners end in.
 *
 * A function runs on a function worker. Running the model there, inline,
 * would skip the model's device queue: no batching with other clients'
 * runs, no loaded-session budget, no AI.INFO counts, and as many concurrent
 * runs of a model as there are function threads. So a run here is an
 * ordinary run job of the model (or script), made from the function's
 * tensors and queued by the main thread like MODELEXECUTE's (RAI_QueueModelRun
 * pins the session, parks the run while an evicted session loads); the
 * function's thread waits on a condition variable without the GIL, takes
 * the outputs, and the main thread counts the run and frees the job.
 *
 * Why the queueing is on the main thread: a model's queue slot and its
 * session-budget state are main-thread data (exec/session_budget.h). The
 * function's thread never holds the GIL while it waits for either the main
 * thread or the job (invariant 2).
 *
 * An awaited run (modelRunnerRunAsync, a DAG runner's Run) is the same job,
 * but the function's thread does not wait for it: the job ends into the
 * thread's port, an eventfd its asyncio loop watches, so the loop goes on
 * with other awaited work meanwhile and resumes the awaiting coroutine with
 * one thread wake, as a synchronous run does. */
#include "python/py_fn_runs.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/spin.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "exec/sync_run.h"
#include "python/py_bridge.h"
#include "python/py_gil.h"
#include "python/py_jobs.h"
#include "types/config.h"

#define ERR_FN_SHUTDOWN "ERR the server is shutting down, the run was not queued"
#define ERR_FN_NO_QUEUE "ERR Could not initialize queue on requested device"

static RAI_FnRunCounter counter;

void RAI_FnRunsSetCounter(RAI_FnRunCounter count) { counter = count; }

/* ------------------------------------------------------------- the waiting */

/* On the function thread's stack while its job runs. */
typedef struct FnWait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} FnWait;

/* Device worker: the job is the function thread's again. The worker touches
 * nothing of it after the unlock. */
static void WakeFunction(RAI_Job *job) {
    FnWait *w = job->payload;
    pthread_mutex_lock(&w->lock);
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE); /* the function thread may be polling */
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void RunModels(RAI_Job **jobs, int n) { RAI_PyRunModel(jobs, n); }

static void RunScript(RAI_Job **jobs, int n) {
    (void)n;
    RAI_PyRunScript(jobs[0]);
}

/* ----------------------------------------------------------- awaited runs */

/* What a port keeps of an ended awaited run: its outputs (retained) or its
 * error. The job itself is counted and freed on the main thread at once, so
 * a run nobody takes (its call returned without awaiting it) holds no
 * session and lags no stats. */
typedef struct EndedRun {
    uint64_t token;
    int noutputs;
    RAI_Tensor **outputs;
    char *error;
    struct EndedRun *next;
} EndedRun;

/* A function thread's ended awaited runs. One per thread that awaited a run,
 * made then and kept for the thread's life (function threads live as long
 * as the server), so a run that ends after its call was killed still has
 * somewhere to go. */
typedef struct RunPort {
    int fd; /* eventfd: readable while runs wait in ended */
    pthread_mutex_t lock;
    EndedRun *ended; /* the newest first */
    uint64_t next_token; /* this thread's only */
    uint64_t in_flight;  /* this thread's only: started, not yet taken */
} RunPort;

/* The payload of an awaited run's job. */
typedef struct Awaited {
    RunPort *port;
    uint64_t token;
} Awaited;

static __thread RunPort *thread_port;

static RunPort *ThisThreadsPort(void) {
    if (thread_port) return thread_port;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return NULL;
    RunPort *port = RedisModule_Calloc(1, sizeof(*port));
    port->fd = fd;
    pthread_mutex_init(&port->lock, NULL);
    return thread_port = port;
}

static void CountAndFreeOnMain(RedisModuleCtx *ctx, void *arg);

static EndedRun *EndedRunOf(RAI_Job *job, uint64_t token) {
    EndedRun *e = RedisModule_Calloc(1, sizeof(*e));
    e->token = token;
    if (job->error) {
        e->error = RedisModule_Strdup(job->error);
        return e;
    }
    e->noutputs = job->noutputs;
    e->outputs = RedisModule_Calloc(job->noutputs > 0 ? (size_t)job->noutputs : 1, sizeof(RAI_Tensor *));
    for (int i = 0; i < job->noutputs; i++) e->outputs[i] = job->outputs[i] ? RAI_TensorRetain(job->outputs[i]) : NULL;
    return e;
}

static void EndedRunFree(EndedRun *e) {
    for (int i = 0; i < e->noutputs; i++) RAI_TensorRelease(e->outputs[i]);
    RedisModule_Free(e->outputs);
    RedisModule_Free(e->error);
    RedisModule_Free(e);
}

/* Device worker (or the main thread, for a run that could not be queued):
 * the outcome to its thread's port, the loop woken, the job to the main
 * thread to be counted and freed (without waiting for that). */
static void FinishAwaited(RAI_Job *job) {
    Awaited *a = job->payload;
    RunPort *port = a->port;
    EndedRun *e = EndedRunOf(job, a->token);
    job->payload = NULL;
    RedisModule_Free(a);
    /* Posted before the loop wakes: the function's later Redis work, queued
     * behind it, and its reply (RAI_DoPostedWork) find the run counted. */
    RAI_PostToMainThread(CountAndFreeOnMain, job); /* at shutdown: left to the exiting process */
    pthread_mutex_lock(&port->lock);
    e->next = port->ended;
    port->ended = e;
    pthread_mutex_unlock(&port->lock);
    uint64_t one = 1;
    while (write(port->fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* Batchable with MODELEXECUTE's runs of the same model (run_queue.c batches
 * any batchable kinds of one model). */
static const RAI_JobOps FnModelRunJob = {"function's model run", 1, RunModels, WakeFunction};
static const RAI_JobOps FnScriptRunJob = {"function's script run", 0, RunScript, WakeFunction};
static const RAI_JobOps FnModelAwaitJob = {"function's model run", 1, RunModels, FinishAwaited};
static const RAI_JobOps FnScriptAwaitJob = {"function's script run", 0, RunScript, FinishAwaited};

/* Main thread: the job to its device queue, or failed at once. */
static void QueueOnMain(RedisModuleCtx *ctx, void *arg) {
    (void)ctx;
    RAI_Job *job = arg;
    RAI_RunQueue *queue = job->model ? RAI_RunQueueOf(&job->model->queue, job->model->device)
                                     : RAI_RunQueueOf(&job->script->queue, job->script->device);
    job->queued_us = RedisModule_MonotonicMicroseconds();
    if (queue == NULL) {
        RAI_JobSetError(job, ERR_FN_NO_QUEUE);
        job->ops->done(job);
    } else if (job->model) {
        RAI_QueueModelRun(job, queue);
    } else {
        RAI_RunQueuePush(queue, job);
    }
}

/* Main thread: counts the run (AI.INFO, AI.METRICS) and frees the job; a
 * session it kept over the budget may go now. */
static void CountAndFreeOnMain(RedisModuleCtx *ctx, void *arg) {
    (void)ctx;
    RAI_Job *job = arg;
    if (counter) counter(job, job->noutputs > 0 && job->outputs ? job->outputs[0] : NULL);
    RAI_JobFree(job);
    RAI_SessionSettle();
}

static int FnWaitDone(const void *arg) { return __atomic_load_n(&((const FnWait *)arg)->done, __ATOMIC_ACQUIRE); }

/* No GIL: queues the job, waits for it, and keeps its outputs (retained in
 * outs) or its error (copied into *err, to be freed). The job is gone after. */
static void RunAndWait(RAI_Job *job, RAI_Tensor **outs, char **err) {
    FnWait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    job->payload = &w;
    if (!RAI_OnMainThread(QueueOnMain, job)) {
        job->payload = NULL;
        *err = RedisModule_Strdup(ERR_FN_SHUTDOWN);
        RAI_JobFree(job);
        return;
    }
    /* The lock below also waits for the worker to let go of w after it set done. */
    RAI_SpinUntil(FnWaitDone, &w, RAI_WorkerSpinUs());
    pthread_mutex_lock(&w.lock);
    while (!w.done) pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    job->payload = NULL;
    if (job->error) *err = RedisModule_Strdup(job->error);
    for (int i = 0; !job->error && i < job->noutputs; i++) outs[i] = RAI_TensorRetain(job->outputs[i]);
    RAI_PostToMainThread(CountAndFreeOnMain, job); /* at shutdown: left to the exiting process */
}

/* ------------------------------------------------------------ from Python */

/* (type name, shape, buffer) as a new tensor (a copy: the job must not see
 * the function change its array while a worker reads it). */
static RAI_Tensor *TensorFromTriple(PyObject *item) {
    const char *type_name;
    PyObject *shape, *data;
    if (!PyArg_ParseTuple(item, "sO!O", &type_name, &PyTuple_Type, &shape, &data)) return NULL;
    RAI_DType dtype = RAI_DTYPE_COUNT;
    for (int i = 0; i < RAI_DTYPE_COUNT; i++) {
        if (strcmp(RAI_DTYPES[i].name, type_name) == 0 && RAI_DTYPES[i].format != NULL) dtype = (RAI_DType)i;
    }
    Py_ssize_t ndims = PyTuple_GET_SIZE(shape);
    if (dtype == RAI_DTYPE_COUNT || ndims > RAI_TENSOR_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "ERR unsupported tensor type %s or rank %zd", type_name, ndims);
        return NULL;
    }
    int64_t dims[RAI_TENSOR_MAX_DIMS];
    for (Py_ssize_t i = 0; i < ndims; i++) {
        dims[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i));
        if (dims[i] < 0 && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ERR invalid tensor dimension");
        if (PyErr_Occurred()) return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) != 0) return NULL;
    int overflow;
    size_t len = RAI_ShapeLength(dims, (int)ndims, &overflow);
    const char *bad = overflow ? "ERR tensor shape overflows" : RAI_TensorCheckBlob(dtype, len, view.buf, (size_t)view.len);
    RAI_Tensor *t = bad ? NULL : RAI_TensorFromBlob(dtype, (int)ndims, dims, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (bad) PyErr_SetString(PyExc_ValueError, bad);
    return t;
}

static int TakeInputs(RAI_Job *job, PyObject *inputs) {
    PyObject *seq = PySequence_Fast(inputs, "inputs must be a sequence of (type, shape, buffer)");
    if (seq == NULL) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    job->inputs = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(RAI_Tensor *));
    for (Py_ssize_t i = 0; i < n; i++) {
        RAI_Tensor *t = TensorFromTriple(PySequence_Fast_GET_ITEM(seq, i));
        if (t == NULL) break;
        job->inputs[job->ninputs++] = t;
    }
    Py_DECREF(seq);
    return !PyErr_Occurred();
}

/* The job of a model or script view, NULL with a Python exception. */
static RAI_Job *JobFor(PyObject *target, PyObject *fn, PyObject *inputs, int noutputs, int awaited) {
    RAI_Model *m = RAI_PyModelOf(target);
    RAI_Script *s = m ? NULL : RAI_PyScriptOf(target);
    const char *fname = fn == Py_None ? NULL : PyUnicode_AsUTF8(fn);
    if (m == NULL && s == NULL) {
        PyErr_SetString(PyExc_TypeError, "run_job() needs a Model or a Script");
        return NULL;
    }
    if ((s != NULL) != (fname != NULL)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a script run needs a function name, a model run none");
        return NULL;
    }
    if (noutputs < 0 || noutputs > 4096) {
        PyErr_SetString(PyExc_ValueError, "ERR invalid number of outputs");
        return NULL;
    }
    RAI_Job *job = m ? RAI_JobNew(awaited ? &FnModelAwaitJob : &FnModelRunJob, m)
                     : RAI_ScriptJobNew(awaited ? &FnScriptAwaitJob : &FnScriptRunJob, s);
    job->noutputs = noutputs;
    job->outputs = RedisModule_Calloc(noutputs > 0 ? (size_t)noutputs : 1, sizeof(RAI_Tensor *));
    if (s) {
        job->call = RedisModule_Calloc(1, sizeof(*job->call));
        job->call->fn = RedisModule_Strdup(fname);
    }
    if (!TakeInputs(job, inputs)) {
        RAI_JobFree(job);
        return NULL;
    }
    return job;
}

/* A run's outputs as a list of Tensor views (each retains its tensor); NULL
 * with a Python error, also when the run left an output unset. */
static PyObject *TensorList(RAI_Tensor **tensors, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *t = tensors[i] ? RAI_PyTensorWrap(tensors[i])
                                 : PyErr_Format(PyExc_RuntimeError, "ERR the run made no output %d", i);
        if (t == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, t);
    }
    return list;
}

/* run_job(model_or_script, fn, inputs, noutputs): (True, [Tensor, ...]) or
 * (False, error text). fn: a script's function, None for a model. */
static PyObject *ShimRunJob(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *target, *fn, *inputs;
    int noutputs;
    if (!PyArg_ParseTuple(args, "OOOi", &target, &fn, &inputs, &noutputs)) return NULL;
    RAI_Job *job = JobFor(target, fn, inputs, noutputs, 0);
    if (job == NULL) return NULL;
    RAI_Tensor **outs = RedisModule_Calloc(noutputs > 0 ? (size_t)noutputs : 1, sizeof(RAI_Tensor *));
    char *err = NULL;
    void *gil = RAI_GilSuspend();
    RunAndWait(job, outs, &err);
    RAI_GilResume(gil);
    PyObject *result;
    if (err) {
        result = Py_BuildValue("(Os)", Py_False, err);
    } else {
        PyObject *list = TensorList(outs, noutputs);
        result = list ? Py_BuildValue("(ON)", Py_True, list) : NULL;
    }
    for (int i = 0; i < noutputs; i++) RAI_TensorRelease(outs[i]);
    RedisModule_Free(outs);
    RedisModule_Free(err);
    return result;
}

/* run_job_start(model_or_script, fn, inputs, noutputs): queues the run for
 * this thread's port and returns its token; the loop learns it ended from
 * run_port_fd() and takes it with run_port_take(). */
static PyObject *ShimRunJobStart(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *target, *fn, *inputs;
    int noutputs;
    if (!PyArg_ParseTuple(args, "OOOi", &target, &fn, &inputs, &noutputs)) return NULL;
    RunPort *port = ThisThreadsPort();
    if (port == NULL) return PyErr_SetFromErrno(PyExc_OSError);
    RAI_Job *job = JobFor(target, fn, inputs, noutputs, 1);
    if (job == NULL) return NULL;
    uint64_t token = ++port->next_token;
    Awaited *a = RedisModule_Alloc(sizeof(*a));
    *a = (Awaited){port, token};
    job->payload = a; /* FinishAwaited frees it: maybe before the hand-off below returns */
    void *gil = RAI_GilSuspend();
    int queued = RAI_OnMainThread(QueueOnMain, job);
    RAI_GilResume(gil);
    if (!queued) {
        job->payload = NULL;
        RedisModule_Free(a);
        RAI_JobFree(job);
        return PyErr_Format(PyExc_RuntimeError, ERR_FN_SHUTDOWN);
    }
    port->in_flight++;
    return PyLong_FromUnsignedLongLong(token);
}

/* run_port_fd(): the eventfd this thread's awaited runs signal. */
static PyObject *ShimRunPortFd(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    RunPort *port = ThisThreadsPort();
    return port ? PyLong_FromLong(port->fd) : PyErr_SetFromErrno(PyExc_OSError);
}

static int PortHasEnded(const void *arg) {
    return __atomic_load_n(&((const RunPort *)arg)->ended, __ATOMIC_ACQUIRE) != NULL;
}

/* run_port_poll(): called by the loop before it sleeps. While this thread
 * awaits runs, polls its port without the GIL for up to WORKER_SPIN_US, so
 * a run that ends meanwhile costs no wake-up of a sleeping thread. Whether
 * one has ended. */
static PyObject *ShimRunPortPoll(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    RunPort *port = thread_port;
    if (port == NULL || port->in_flight == 0) Py_RETURN_FALSE;
    void *gil = RAI_GilSuspend();
    int ended = RAI_SpinUntil(PortHasEnded, port, RAI_WorkerSpinUs());
    RAI_GilResume(gil);
    return PyBool_FromLong(ended);
}

/* (token, True, [Tensor, ...]) or (token, False, error text). */
static PyObject *EndedRunTuple(const EndedRun *e) {
    PyObject *token = PyLong_FromUnsignedLongLong(e->token);
    if (e->error) return Py_BuildValue("(NOs)", token, Py_False, e->error);
    PyObject *list = TensorList(e->outputs, e->noutputs);
    if (list == NULL) {
        Py_DECREF(token);
        return NULL;
    }
    return Py_BuildValue("(NON)", token, Py_True, list);
}

/* run_port_take(): this thread's runs that ended since the last call, in the
 * order they ended. */
static PyObject *ShimRunPortTake(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    RunPort *port = thread_port;
    if (port == NULL) return PyList_New(0);
    uint64_t count;
    while (read(port->fd, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&port->lock);
    EndedRun *newest = port->ended, *oldest = NULL, *next;
    port->ended = NULL;
    pthread_mutex_unlock(&port->lock);
    for (EndedRun *e = newest; e; e = next) { /* reversed: the oldest first */
        next = e->next;
        e->next = oldest;
        oldest = e;
    }
    PyObject *result = PyList_New(0);
    for (EndedRun *e = oldest; e; e = next) {
        next = e->next;
        PyObject *item = result ? EndedRunTuple(e) : NULL;
        if (item == NULL || PyList_Append(result, item) != 0) Py_CLEAR(result);
        Py_XDECREF(item);
        EndedRunFree(e);
        port->in_flight--;
    }
    return result;
}

static PyMethodDef FnRunMethods[] = {
    {"run_job", ShimRunJob, METH_VARARGS,
     "Run a model or a script function on its device queue for a function: (True, outputs) or (False, error)."},
    {"run_job_start", ShimRunJobStart, METH_VARARGS,
     "Queue a model or script run for an awaiting function: its token (see run_port_take)."},
    {"run_port_fd", ShimRunPortFd, METH_NOARGS, "The eventfd this thread's awaited runs signal when they end."},
    {"run_port_poll", ShimRunPortPoll, METH_NOARGS,
     "Before the loop sleeps: poll this thread's port for a while without the GIL; whether a run ended."},
    {"run_port_take", ShimRunPortTake, METH_NOARGS,
     "This thread's ended awaited runs: [(token, True, outputs) or (token, False, error), ...]."},
    {NULL, NULL, 0, NULL},
};

int RAI_PyFnRunsAddMethods(PyObject *module) { return PyModule_AddFunctions(module, FnRunMethods); }
