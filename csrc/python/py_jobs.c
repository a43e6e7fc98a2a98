/* py_jobs.c -- runs jobs in Python on a worker thread, and drops released
 * and evicted sessions.
 *
 * Called by workers without the GIL and without any queue lock; takes the
 * GIL for the Python call only. A model run is one call: the runner that
 * _runtime prepared for the model once (kept on the model as py_session)
 * gets zero-copy Tensor views and returns numpy arrays, whose buffers are
 * copied once into new C tensors, which the main thread later stores in
 * keys. The element type of an output is read from its buffer format
 * against the one dtype table (tensor.c). */
#define PY_SSIZE_T_CLEAN
#include "python/py_jobs.h"

#include <Python.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "python/py_bridge.h"
#include "python/py_gil.h"
#include "python/py_runtime.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "output buffers are read as little-endian (the '<' buffer format)"
#endif

/* A runner is (run_one, run_batch): run_one(views) for one request whose
 * inputs are all numeric, run_batch([views, ...]) for the rest. */
enum { RUN_ONE = 0, RUN_BATCH = 1 };

/* str() of the pending exception: Python raises with the text the client sees. */
static void FailJobsWithException(RAI_Job **jobs, int n) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    for (int i = 0; i < n; i++) RAI_JobSetError(jobs[i], msg ? msg : "ERR internal error");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* Work nobody waits for logs its failure instead (the exception's str()). */
static void LogException(const char *what) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    RAI_LOG_WARNING("%s: %s", what, msg ? msg : "(no message)");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* ---------------------------------------------------------------- outputs */

/* The tensor type of a buffer format ("f", "<q", "?", ...) and item size,
 * matched against the one dtype table by kind and width; RAI_DTYPE_COUNT
 * when there is none (float16, uint32, big-endian, a struct, ...). */
static RAI_DType DTypeOfFormat(const char *format, Py_ssize_t itemsize) {
    if (format == NULL) format = "B";
    if (*format == '@' || *format == '=' || *format == '<') format++;
    if (format[0] == '\0' || format[1] != '\0') return RAI_DTYPE_COUNT;
    int code;
    if (strchr("fd", format[0])) code = RAI_DL_FLOAT;
    else if (strchr("bhilq", format[0])) code = RAI_DL_INT;
    else if (strchr("BHILQ", format[0])) code = RAI_DL_UINT;
    else if (format[0] == '?') code = RAI_DL_BOOL;
    else return RAI_DTYPE_COUNT;
    for (int i = 0; i < RAI_DTYPE_COUNT; i++) {
        const RAI_DTypeInfo *type = &RAI_DTYPES[i];
        if (type->format != NULL && type->code == code && type->size == itemsize) return (RAI_DType)i;
    }
    return RAI_DTYPE_COUNT;
}

/* Error path only: names the output's numpy dtype the way Python would. */
static void SetUnsupportedTypeError(RAI_Job *job, PyObject *out) {
    PyObject *dtype = PyObject_GetAttrString(out, "dtype");
    PyObject *text = dtype ? PyObject_Str(dtype) : NULL;
    const char *name = text ? PyUnicode_AsUTF8(text) : NULL;
    char err[128];
    snprintf(err, sizeof(err), "ERR unsupported output tensor type %s", name ? name : Py_TYPE(out)->tp_name);
    RAI_JobSetError(job, err);
    Py_XDECREF(text);
    Py_XDECREF(dtype);
    PyErr_Clear();
}

static RAI_Tensor *TensorFromBuffer(RAI_DType dtype, int ndims, const int64_t *dims, const Py_buffer *view,
                                    const char **err) {
    int overflow;
    size_t len = RAI_ShapeLength(dims, ndims, &overflow);
    *err = overflow ? "ERR backend output shape overflows"
                    : RAI_TensorCheckBlob(dtype, len, view->buf, (size_t)view->len);
    return *err ? NULL : RAI_TensorFromBlob(dtype, ndims, dims, view->buf, (size_t)view->len);
}

/* (dtype name, shape, buffer): how Python hands back STRING outputs. */
static RAI_Tensor *TensorFromTuple(PyObject *out, const char **err) {
    const char *dtype_name;
    PyObject *shape, *data;
    if (!PyArg_ParseTuple(out, "sO!O", &dtype_name, &PyTuple_Type, &shape, &data)) {
        PyErr_Clear();
        *err = "ERR backend returned a malformed output";
        return NULL;
    }
    RAI_DType dtype = RAI_DTYPE_COUNT;
    for (int i = 0; i < RAI_DTYPE_COUNT; i++) {
        if (strcmp(RAI_DTYPES[i].name, dtype_name) == 0) dtype = (RAI_DType)i;
    }
    Py_ssize_t ndims = PyTuple_GET_SIZE(shape);
    if (dtype == RAI_DTYPE_COUNT || ndims > RAI_TENSOR_MAX_DIMS) {
        *err = "ERR backend returned an output of an unsupported type";
        return NULL;
    }
    int64_t dims[RAI_TENSOR_MAX_DIMS];
    for (Py_ssize_t i = 0; i < ndims; i++) dims[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i));
    Py_buffer view;
    if (PyErr_Occurred() || PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) != 0) {
        PyErr_Clear();
        *err = "ERR backend returned an output without a contiguous buffer";
        return NULL;
    }
    RAI_Tensor *t = TensorFromBuffer(dtype, (int)ndims, dims, &view, err);
    PyBuffer_Release(&view);
    return t;
}

/* A numeric output: any C-contiguous buffer with a format (a numpy array). */
static RAI_Tensor *TensorFromPython(RAI_Job *job, PyObject *out) {
    const char *err = NULL;
    if (PyTuple_Check(out)) {
        RAI_Tensor *t = TensorFromTuple(out, &err);
        if (err) RAI_JobSetError(job, err);
        return t;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        PyErr_Clear();
        SetUnsupportedTypeError(job, out);
        return NULL;
    }
    RAI_DType dtype = DTypeOfFormat(view.format, view.itemsize);
    RAI_Tensor *t = NULL;
    if (dtype == RAI_DTYPE_COUNT || view.ndim > RAI_TENSOR_MAX_DIMS) {
        SetUnsupportedTypeError(job, out);
    } else {
        int64_t dims[RAI_TENSOR_MAX_DIMS];
        for (int i = 0; i < view.ndim; i++) dims[i] = view.shape[i];
        t = TensorFromBuffer(dtype, view.ndim, dims, &view, &err);
        if (err) RAI_JobSetError(job, err);
    }
    PyBuffer_Release(&view);
    return t;
}

static void StoreOutputs(RAI_Job *job, PyObject *outs) {
    PyObject *seq = PySequence_Fast(outs, "outputs");
    if (seq == NULL || PySequence_Fast_GET_SIZE(seq) != job->noutputs) {
        PyErr_Clear();
        Py_XDECREF(seq);
        RAI_JobSetError(job, "ERR Model did not generate the expected number of outputs");
        return;
    }
    for (int i = 0; i < job->noutputs && !job->error; i++)
        job->outputs[i] = TensorFromPython(job, PySequence_Fast_GET_ITEM(seq, i));
    Py_DECREF(seq);
}

/* ----------------------------------------------------------------- inputs */

static PyObject *InputViews(const RAI_Job *job) {
    PyObject *views = PyTuple_New(job->ninputs);
    for (int i = 0; views && i < job->ninputs; i++) {
        PyObject *view = RAI_PyTensorWrap(job->inputs[i]);
        if (view == NULL) Py_CLEAR(views);
        else PyTuple_SET_ITEM(views, i, view);
    }
    return views;
}

static PyObject *BatchViews(RAI_Job **jobs, int n) {
    PyObject *batch = PyList_New(n);
    for (int i = 0; batch && i < n; i++) {
        PyObject *views = InputViews(jobs[i]);
        if (views == NULL) Py_CLEAR(batch);
        else PyList_SET_ITEM(batch, i, views);
    }
    return batch;
}

/* STRING inputs are split into Python bytes by run_batch. */
static int AllNumeric(const RAI_Job *job) {
    for (int i = 0; i < job->ninputs; i++) {
        if (RAI_DTYPES[job->inputs[i]->dtype].format == NULL) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ the runner */

/* A tuple of str -> an Alloc'd array of C strings; -1 when it is not one. */
static int NamesFromPython(PyObject *tuple, char ***out) {
    if (!PyTuple_Check(tuple)) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    *out = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s = PyUnicode_AsUTF8(PyTuple_GET_ITEM(tuple, i));
        (*out)[i] = RedisModule_Strdup(s ? s : "");
    }
    PyErr_Clear();
    return (int)n;
}

/* The (inputs, outputs) name tuples a session reported, kept on the job. */
static void LearnNames(RAI_Job *job, PyObject *inputs, PyObject *outputs) {
    char **in = NULL, **out = NULL;
    int nin = NamesFromPython(inputs, &in);
    int nout = NamesFromPython(outputs, &out);
    RAI_JobLearnNames(job, nin, in, nout, out);
}

static int IsRunner(PyObject *runner) {
    return PyTuple_Check(runner) && PyTuple_GET_SIZE(runner) == 2 &&
           PyCallable_Check(PyTuple_GET_ITEM(runner, RUN_ONE)) && PyCallable_Check(PyTuple_GET_ITEM(runner, RUN_BATCH));
}

/* Keeps runner on the model unless another thread did first (preparing may
 * drop the GIL, e.g. inside torch.jit.load). Steals runner; returns the kept one. */
static PyObject *KeepRunner(RAI_Model *m, PyObject *runner) {
    if (m->py_session != NULL) {
        Py_DECREF(runner);
        return m->py_session;
    }
    m->py_session = runner;
    return runner;
}

/* A model stored without a session (from a primary, the AOF, or an RDB)
 * learns its input/output names from the session its first run made; the
 * reply callback records them. Asked once. */
static void TakeSessionNames(RAI_Job *job, PyObject *inputs, PyObject *outputs) {
    RAI_Model *m = job->model;
    if ((m->ninputs > 0 && m->noutputs > 0) || __atomic_exchange_n(&m->names_asked, 1, __ATOMIC_RELAXED))
        return;
    LearnNames(job, inputs, outputs);
}

/* The model's runner, borrowed (GIL held): prepared by its load, or now by
 * _runtime.prepare_model -> (input names, output names, runner). NULL with
 * the job's error set when the session cannot be made. */
static PyObject *Runner(RAI_Job *job) {
    RAI_Model *m = job->model;
    if (m->py_session != NULL) return m->py_session;
    PyObject *model = RAI_PyModelWrap(m);
    PyObject *prepared = model ? PyObject_CallOneArg(RAI_PyEntryPoint(RAI_PY_PREPARE_MODEL), model) : NULL;
    Py_XDECREF(model);
    if (prepared == NULL) {
        FailJobsWithException(&job, 1);
        return NULL;
    }
    PyObject *runner = NULL;
    if (PyTuple_Check(prepared) && PyTuple_GET_SIZE(prepared) == 3 && IsRunner(PyTuple_GET_ITEM(prepared, 2))) {
        TakeSessionNames(job, PyTuple_GET_ITEM(prepared, 0), PyTuple_GET_ITEM(prepared, 1));
        runner = PyTuple_GET_ITEM(prepared, 2);
        Py_INCREF(runner);
        runner = KeepRunner(m, runner);
    } else {
        RAI_JobSetError(job, "ERR backend returned a malformed model runner");
    }
    Py_DECREF(prepared);
    return runner;
}

static void StoreBatchOutputs(RAI_Job **jobs, int n, PyObject *results) {
    if (!PyList_Check(results) || PyList_GET_SIZE(results) != n) {
        for (int i = 0; i < n; i++) RAI_JobSetError(jobs[i], "ERR backend returned a malformed batch");
        return;
    }
    for (int i = 0; i < n; i++) StoreOutputs(jobs[i], PyList_GET_ITEM(results, i));
}

void RAI_PyRunModel(RAI_Job **jobs, int n) {
    RAI_GilTake();
    PyObject *runner = Runner(jobs[0]);
    if (runner == NULL) {
        for (int i = 1; i < n; i++) RAI_JobSetError(jobs[i], jobs[0]->error);
        RAI_GilDrop();
        return;
    }
    int one = n == 1 && AllNumeric(jobs[0]);
    PyObject *arg = one ? InputViews(jobs[0]) : BatchViews(jobs, n);
    uint64_t start = RedisModule_MonotonicMicroseconds();
    PyObject *results = arg ? PyObject_CallOneArg(PyTuple_GET_ITEM(runner, one ? RUN_ONE : RUN_BATCH), arg) : NULL;
    uint64_t duration = RedisModule_MonotonicMicroseconds() - start;

    if (results == NULL) FailJobsWithException(jobs, n);
    else if (one) StoreOutputs(jobs[0], results);
    else StoreBatchOutputs(jobs, n, results);
    for (int i = 0; i < n; i++) jobs[i]->duration_us = duration;
    Py_XDECREF(results);
    Py_XDECREF(arg);
    RAI_GilDrop();
}

/* ------------------------------------------------------------------ loads */

/* (input names, output names, framework version[, runner]) from a load
 * function; a model's runner is kept on the model for its runs. */
static void StoreLoadResult(RAI_Job *job, PyObject *loaded) {
    Py_ssize_t size = job->model ? 4 : 3;
    if (loaded == NULL) {
        FailJobsWithException(&job, 1);
    } else if (!PyTuple_Check(loaded) || PyTuple_GET_SIZE(loaded) != size ||
               !PyUnicode_Check(PyTuple_GET_ITEM(loaded, 2)) ||
               (job->model && !IsRunner(PyTuple_GET_ITEM(loaded, 3)))) {
        RAI_JobSetError(job, "ERR backend returned malformed model names");
    } else {
        LearnNames(job, PyTuple_GET_ITEM(loaded, 0), PyTuple_GET_ITEM(loaded, 1));
        /* A version string that is not UTF-8 (lone surrogates) reads as "unknown". */
        const char *version = PyUnicode_AsUTF8(PyTuple_GET_ITEM(loaded, 2));
        if (version == NULL) PyErr_Clear();
        RAI_JobStore(job)->version = RedisModule_Strdup(version ? version : "unknown");
        if (job->model) {
            PyObject *runner = PyTuple_GET_ITEM(loaded, 3);
            Py_INCREF(runner);
            KeepRunner(job->model, runner);
        }
    }
}

void RAI_PyLoadModel(RAI_Job *job) {
    RAI_GilTake();
    PyObject *target = job->model ? RAI_PyModelWrap(job->model) : RAI_PyScriptWrap(job->script);
    RAI_PyEntry load = job->model ? RAI_PY_LOAD_MODEL : RAI_PY_LOAD_SCRIPT;
    PyObject *loaded = target ? PyObject_CallOneArg(RAI_PyEntryPoint(load), target) : NULL;
    StoreLoadResult(job, loaded);
    Py_XDECREF(loaded);
    Py_XDECREF(target);
    RAI_GilDrop();
}

/* ---------------------------------------------------------------- scripts */

static PyObject *StringList(int n, char **strings, const size_t *lens) {
    PyObject *list = PyList_New(n);
    for (int i = 0; i < n; i++) {
        Py_ssize_t len = lens ? (Py_ssize_t)lens[i] : (Py_ssize_t)strlen(strings[i]);
        PyList_SET_ITEM(list, i, PyUnicode_DecodeUTF8(strings[i], len, "replace"));
    }
    return list;
}

void RAI_PyRunScript(RAI_Job *job) {
    RAI_GilTake();
    PyObject *script = RAI_PyScriptWrap(job->script);
    PyObject *inputs = InputViews(job);
    const RAI_ScriptCall *call = job->call;
    PyObject *keys = StringList(call->nkeys, call->keys, NULL);
    PyObject *args = StringList(call->nargs, call->args, call->arglens);
    PyObject *noutputs = PyLong_FromLong(job->noutputs);
    /* The function name is a client's bytes: not UTF-8 is an unknown name, not an error here. */
    PyObject *fn = PyUnicode_DecodeUTF8(call->fn, (Py_ssize_t)strlen(call->fn), "replace");

    PyObject *outs = NULL;
    if (script && inputs && keys && args && noutputs && fn) {
        uint64_t start = RedisModule_MonotonicMicroseconds();
        RAI_PyScriptCallerSet(call->user);
        outs = PyObject_CallFunctionObjArgs(RAI_PyEntryPoint(RAI_PY_RUN_SCRIPT), script, fn, inputs, keys,
                                            args, noutputs, NULL);
        RAI_PyScriptCallerSet(NULL);
        job->duration_us = RedisModule_MonotonicMicroseconds() - start;
    }
    if (outs == NULL) FailJobsWithException(&job, 1);
    else StoreOutputs(job, outs);

    Py_XDECREF(outs);
    Py_XDECREF(fn);
    Py_XDECREF(noutputs);
    Py_XDECREF(args);
    Py_XDECREF(keys);
    Py_XDECREF(inputs);
    Py_XDECREF(script);
    RAI_GilDrop();
}

/* ------------------------------------------------------- dropped sessions */

#define DROP_CHUNK 256

/* Hands one chunk of ids to _runtime.drop_sessions and lets go of the
 * models' runners (GIL held). */
static void DropChunk(const uint64_t *ids, void **handles, size_t n) {
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) PyList_SET_ITEM(list, i, PyLong_FromUnsignedLongLong(ids[i]));
    for (size_t i = 0; i < n; i++) Py_XDECREF((PyObject *)handles[i]);
    PyObject *res = list ? PyObject_CallOneArg(RAI_PyEntryPoint(RAI_PY_DROP_SESSIONS), list) : NULL;
    if (res == NULL) LogException("dropping released sessions failed");
    Py_XDECREF(res);
    Py_XDECREF(list);
}

void RAI_PyDropReleasedSessions(void) {
    uint64_t ids[DROP_CHUNK];
    void *handles[DROP_CHUNK];
    size_t n = RAI_TakeDroppedSessions(ids, handles, DROP_CHUNK), total = 0;
    if (n == 0) return;
    RAI_GilTake();
    for (; n > 0; n = RAI_TakeDroppedSessions(ids, handles, DROP_CHUNK)) {
        DropChunk(ids, handles, n);
        total += n;
    }
    RAI_GilDrop();
    RAI_LOG_VERBOSE("dropped the sessions of %zu released models or scripts", total);
}

/* ------------------------------------------------ loaded-session budget */

void RAI_PyPrepareModel(RAI_Job *job) {
    RAI_GilTake();
    Runner(job);
    RAI_GilDrop();
}

void RAI_PyReleaseSession(RAI_Model *m) {
    RAI_GilTake();
    void *handle = m->py_session;
    m->py_session = NULL;
    DropChunk(&m->id, &handle, 1);
    RAI_GilDrop();
}
