/* py_jobs.c -- runs jobs in Python on a worker thread.
 *
 * Called by workers without the GIL and without any queue lock; takes the
 * GIL for the Python call only. Inputs go in as zero-copy Tensor views;
 * outputs come back as (dtype, shape, buffer) and are copied once into new
 * C tensors, which the main thread later stores in keys. */
#define PY_SSIZE_T_CLEAN
#include "python/py_jobs.h"

#include <Python.h>
#include <stdio.h>
#include <string.h>

#include "python/py_bridge.h"
#include "python/py_gil.h"

static PyObject *run_model_fn, *load_model_fn, *run_script_fn, *load_script_fn, *drop_sessions_fn,
    *session_names_fn;

int RAI_PyJobsInit(PyObject *runtime) {
    run_model_fn = PyObject_GetAttrString(runtime, "run_model");
    load_model_fn = PyObject_GetAttrString(runtime, "load_model");
    run_script_fn = PyObject_GetAttrString(runtime, "run_script");
    load_script_fn = PyObject_GetAttrString(runtime, "load_script");
    drop_sessions_fn = PyObject_GetAttrString(runtime, "drop_sessions");
    session_names_fn = PyObject_GetAttrString(runtime, "session_names");
    return run_model_fn && load_model_fn && run_script_fn && load_script_fn && drop_sessions_fn &&
                   session_names_fn
               ? 0
               : -1;
}

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

/* Tells Python to drop the sessions of models released since the last call. */
static void DropReleasedSessions(void) {
    uint64_t ids[256];
    size_t n = RAI_TakeDroppedSessions(ids, 256);
    if (n == 0) return;
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) PyList_SET_ITEM(list, i, PyLong_FromUnsignedLongLong(ids[i]));
    PyObject *res = PyObject_CallOneArg(drop_sessions_fn, list);
    if (res == NULL) PyErr_Clear();
    Py_XDECREF(res);
    Py_DECREF(list);
}

/* (dtype, shape, buffer) -> a new tensor; NULL with *err set when malformed. */
static RAI_Tensor *TensorFromPython(PyObject *out, const char **err) {
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
    int overflow;
    size_t len = RAI_ShapeLength(dims, (int)ndims, &overflow);
    *err = overflow ? "ERR backend output shape overflows"
                    : RAI_TensorCheckBlob(dtype, len, view.buf, (size_t)view.len);
    RAI_Tensor *t = *err ? NULL : RAI_TensorFromBlob(dtype, (int)ndims, dims, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return t;
}

static void StoreOutputs(RAI_Job *job, PyObject *outs) {
    if (!PyList_Check(outs) || PyList_GET_SIZE(outs) != job->noutputs) {
        RAI_JobSetError(job, "ERR Model did not generate the expected number of outputs");
        return;
    }
    for (int i = 0; i < job->noutputs; i++) {
        const char *err = NULL;
        job->outputs[i] = TensorFromPython(PyList_GET_ITEM(outs, i), &err);
        if (err) {
            RAI_JobSetError(job, err);
            return;
        }
    }
}

static PyObject *InputViews(const RAI_Job *job) {
    PyObject *views = PyTuple_New(job->ninputs);
    for (int i = 0; i < job->ninputs; i++) PyTuple_SET_ITEM(views, i, RAI_PyTensorWrap(job->inputs[i]));
    return views;
}

static int NamesFromPython(PyObject *tuple, char ***out);

/* A model stored without a session (from a primary, the AOF, or copied
 * before its names were known) learns its input/output names from the
 * session its first run made; the reply callback records them. Asked once. */
static void AskSessionNames(RAI_Job *job, PyObject *model) {
    RAI_Model *m = job->model;
    if ((m->ninputs > 0 && m->noutputs > 0) || __atomic_exchange_n(&m->names_asked, 1, __ATOMIC_RELAXED))
        return;
    PyObject *names = PyObject_CallOneArg(session_names_fn, model);
    if (names && PyTuple_Check(names) && PyTuple_GET_SIZE(names) == 2) {
        job->nloaded_inputs = NamesFromPython(PyTuple_GET_ITEM(names, 0), &job->loaded_inputs);
        job->nloaded_outputs = NamesFromPython(PyTuple_GET_ITEM(names, 1), &job->loaded_outputs);
    }
    if (names == NULL) PyErr_Clear();
    Py_XDECREF(names);
}

void RAI_PyRunModel(RAI_Job **jobs, int n) {
    RAI_GilTake();
    DropReleasedSessions();
    PyObject *model = RAI_PyModelWrap(jobs[0]->model);
    PyObject *batch = PyList_New(n);
    for (int i = 0; i < n; i++) PyList_SET_ITEM(batch, i, InputViews(jobs[i]));

    uint64_t start = RedisModule_MonotonicMicroseconds();
    PyObject *results = PyObject_CallFunctionObjArgs(run_model_fn, model, batch, NULL);
    uint64_t duration = RedisModule_MonotonicMicroseconds() - start;

    if (results == NULL) {
        FailJobsWithException(jobs, n);
    } else if (!PyList_Check(results) || PyList_GET_SIZE(results) != n) {
        for (int i = 0; i < n; i++) RAI_JobSetError(jobs[i], "ERR backend returned a malformed batch");
    } else {
        for (int i = 0; i < n; i++) StoreOutputs(jobs[i], PyList_GET_ITEM(results, i));
        AskSessionNames(jobs[0], model);
    }
    for (int i = 0; i < n; i++) jobs[i]->duration_us = duration;
    Py_XDECREF(results);
    Py_DECREF(batch);
    Py_DECREF(model);
    RAI_GilDrop();
}

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

/* (input names, output names, framework version) from a load function. */
static void StoreLoadResult(RAI_Job *job, PyObject *names) {
    if (names == NULL) {
        FailJobsWithException(&job, 1);
    } else if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != 3 ||
               !PyUnicode_Check(PyTuple_GET_ITEM(names, 2))) {
        RAI_JobSetError(job, "ERR backend returned malformed model names");
    } else {
        job->nloaded_inputs = NamesFromPython(PyTuple_GET_ITEM(names, 0), &job->loaded_inputs);
        job->nloaded_outputs = NamesFromPython(PyTuple_GET_ITEM(names, 1), &job->loaded_outputs);
        job->loaded_version = RedisModule_Strdup(PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, 2)));
    }
}

void RAI_PyLoadModel(RAI_Job *job) {
    RAI_GilTake();
    DropReleasedSessions();
    PyObject *target = job->model ? RAI_PyModelWrap(job->model) : RAI_PyScriptWrap(job->script);
    PyObject *names = PyObject_CallOneArg(job->model ? load_model_fn : load_script_fn, target);
    StoreLoadResult(job, names);
    Py_XDECREF(names);
    Py_DECREF(target);
    RAI_GilDrop();
}

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
    DropReleasedSessions();
    PyObject *script = RAI_PyScriptWrap(job->script);
    PyObject *inputs = InputViews(job);
    PyObject *keys = StringList(job->nkeys, job->keys, NULL);
    PyObject *args = StringList(job->nargs, job->args, job->arglens);
    PyObject *noutputs = PyLong_FromLong(job->noutputs);
    /* The function name is a client's bytes: not UTF-8 is an unknown name, not an error here. */
    PyObject *fn = PyUnicode_DecodeUTF8(job->fn, (Py_ssize_t)strlen(job->fn), "replace");

    PyObject *outs = NULL;
    if (script && inputs && keys && args && noutputs && fn) {
        uint64_t start = RedisModule_MonotonicMicroseconds();
        outs = PyObject_CallFunctionObjArgs(run_script_fn, script, fn, inputs, keys, args, noutputs, NULL);
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
