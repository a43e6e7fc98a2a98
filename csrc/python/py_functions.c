/* py_functions.c -- imports function libraries and runs functions, in
 * Python, on the thread of the job (see the header).
 *
 * A library is redisai_py._function_libraries' business once its source is
 * handed over: the import runs there, and what comes back is an opaque
 * handle (kept on the C library) and the names and flags of its functions.
 * A call hands the handle, the function's name and copies of keys and args
 * to call_function, whose result is already reduced to None, bool, int,
 * float, bytes, str, list and dict; it is converted here into a reply tree
 * the main thread replies from without Python. Calls inside Python are
 * listed, so that AI.FUNCTION KILL can stop them without the main thread
 * ever taking the GIL. */
#define PY_SSIZE_T_CLEAN
#include "python/py_functions.h"

#include <Python.h>
#include <pthread.h>
#include <string.h>

#include "base/log.h"
#include "python/py_bridge.h"
#include "python/py_gil.h"
#include "python/py_runtime.h"
#include "types/function_lib.h"

/* Deeper nesting than this is refused rather than recursed into. */
#define MAX_REPLY_DEPTH 64

/* str() of the pending exception as the job's error; Python already wrote
 * the text the client sees. */
static void FailWithException(RAI_Job *job) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    RAI_JobSetError(job, msg ? msg : "ERR the function failed and its error has no text");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* ------------------------------------------------------------------ loads */

/* ((name, flags), ...) into the library; 0 if the shape is not that. */
static int TakeFunctions(RAI_FunctionLib *lib, PyObject *functions) {
    if (!PyTuple_Check(functions)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(functions); i++) {
        const char *name;
        int flags;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(functions, i), "si", &name, &flags)) {
            PyErr_Clear();
            return 0;
        }
        RAI_FunctionLibAdd(lib, name, flags);
    }
    return 1;
}

/* ((name, event, prefix bytes, read-through), ...) into the library; 0 if the shape is not that. */
static int TakeTriggers(RAI_FunctionLib *lib, PyObject *triggers) {
    if (!PyTuple_Check(triggers)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(triggers); i++) {
        const char *name, *event, *prefix;
        Py_ssize_t prefixlen;
        int readthrough;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(triggers, i), "ssy#p", &name, &event, &prefix, &prefixlen,
                              &readthrough)) {
            PyErr_Clear();
            return 0;
        }
        RAI_FunctionLibAddTrigger(lib, name, event, prefix, (size_t)prefixlen, readthrough);
    }
    return 1;
}

void RAI_PyFunctionLoad(RAI_Job *job) {
    RAI_FunctionLoad *load = job->payload;
    RAI_FunctionLib *lib = load->lib;
    RAI_GilTake();
    PyObject *name = PyUnicode_FromString(lib->name);
    PyObject *code = PyUnicode_DecodeUTF8(lib->code, (Py_ssize_t)lib->codelen, "replace");
    PyObject *loaded = name && code ? PyObject_CallFunctionObjArgs(RAI_PyEntryPoint(RAI_PY_LOAD_LIBRARY), name,
                                                                   code, NULL)
                                    : NULL;
    if (loaded == NULL) {
        FailWithException(job);
    } else if (!PyTuple_Check(loaded) || PyTuple_GET_SIZE(loaded) != 3 ||
               !TakeFunctions(lib, PyTuple_GET_ITEM(loaded, 1)) || !TakeTriggers(lib, PyTuple_GET_ITEM(loaded, 2))) {
        RAI_JobSetError(job, "ERR the library loader returned a malformed result");
    } else {
        lib->py_handle = PyTuple_GET_ITEM(loaded, 0);
        Py_INCREF((PyObject *)lib->py_handle);
    }
    Py_XDECREF(loaded);
    Py_XDECREF(code);
    Py_XDECREF(name);
    RAI_GilDrop();
}

/* ------------------------------------------------------------------ calls */

static PyObject *BytesList(int n, char **strings, const size_t *lens) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *item = PyBytes_FromStringAndSize(strings[i], (Py_ssize_t)lens[i]);
        if (item == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static int ToReply(PyObject *value, RAI_FnReply *out, int depth, const char **err);

static int ToSequence(PyObject *list, RAI_FnReply *out, int depth, const char **err) {
    out->type = RAI_FN_ARRAY;
    out->len = (size_t)PyList_GET_SIZE(list);
    out->elements = RedisModule_Calloc(out->len ? out->len : 1, sizeof(RAI_FnReply));
    for (size_t i = 0; i < out->len; i++) {
        if (!ToReply(PyList_GET_ITEM(list, (Py_ssize_t)i), &out->elements[i], depth + 1, err)) return 0;
    }
    return 1;
}

static int ToMap(PyObject *dict, RAI_FnReply *out, int depth, const char **err) {
    out->type = RAI_FN_MAP;
    out->len = (size_t)PyDict_GET_SIZE(dict);
    out->elements = RedisModule_Calloc(out->len ? out->len * 2 : 1, sizeof(RAI_FnReply));
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    for (size_t i = 0; PyDict_Next(dict, &pos, &key, &value) && i < out->len; i++) {
        if (!ToReply(key, &out->elements[2 * i], depth + 1, err) ||
            !ToReply(value, &out->elements[2 * i + 1], depth + 1, err))
            return 0;
    }
    return 1;
}

static int ToString(const char *s, Py_ssize_t len, RAI_FnReply *out) {
    out->type = RAI_FN_STRING;
    out->len = (size_t)len;
    out->str = RedisModule_Alloc((size_t)len + 1);
    memcpy(out->str, s, (size_t)len);
    out->str[len] = '\0';
    return 1;
}

/* One value of what call_function returned (see the file's comment). */
static int ToReply(PyObject *value, RAI_FnReply *out, int depth, const char **err) {
    if (depth > MAX_REPLY_DEPTH) {
        *err = "ERR the function's return value is nested too deeply";
        return 0;
    }
    if (value == Py_None) {
        out->type = RAI_FN_NIL;
        return 1;
    }
    if (PyBool_Check(value)) {
        out->type = RAI_FN_BOOL;
        out->integer = value == Py_True;
        return 1;
    }
    if (PyLong_Check(value)) {
        out->type = RAI_FN_INT;
        out->integer = PyLong_AsLongLong(value);
        if (!PyErr_Occurred()) return 1;
        PyErr_Clear();
        *err = "ERR the function returned an integer beyond 64 bits";
        return 0;
    }
    if (PyFloat_Check(value)) {
        out->type = RAI_FN_DOUBLE;
        out->dbl = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (PyBytes_Check(value)) return ToString(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), out);
    if (PyUnicode_Check(value)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(value, &len);
        if (s != NULL) return ToString(s, len, out);
        PyErr_Clear();
        *err = "ERR the function returned a str that is not valid Unicode";
        return 0;
    }
    if (PyList_Check(value)) return ToSequence(value, out, depth, err);
    if (PyDict_Check(value)) return ToMap(value, out, depth, err);
    *err = "ERR the function returned a value that has no reply form";
    return 0;
}

static PyObject *CallArgs(const RAI_FunctionCall *call) {
    PyObject *user = call->user ? PyBytes_FromString(call->user) : Py_NewRef(Py_None);
    PyObject *keys = BytesList(call->nkeys, call->keys, call->keylens);
    PyObject *args = BytesList(call->nargs, call->args, call->arglens);
    PyObject *packed = NULL;
    if (user && keys && args)
        packed = Py_BuildValue("(OsOOOOi)", (PyObject *)call->lib->py_handle, call->fname, keys, args, user,
                               call->read_only ? Py_True : Py_False, call->slot);
    Py_XDECREF(user);
    Py_XDECREF(keys);
    Py_XDECREF(args);
    return packed;
}

/* ---------------------------------------------------------- running calls */

/* The calls inside Python now, for AI.FUNCTION KILL. Lock order: the GIL
 * (if held), then this mutex; nobody takes the GIL while holding it. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static RAI_RunningCall *running;

void RAI_PyCallEnter(RAI_RunningCall *r) {
    r->ident = PyThread_get_thread_ident();
    r->started_us = RedisModule_MonotonicMicroseconds();
    r->kill = 0;
    pthread_mutex_lock(&running_lock);
    r->next = running;
    running = r;
    pthread_mutex_unlock(&running_lock);
}

/* GIL held, as at RAI_PyCallEnter: a kill delivered from here on cannot find the
 * entry, and one delivered before but not yet raised is withdrawn, so it
 * never reaches the worker's next call. */
void RAI_PyCallLeave(RAI_RunningCall *r) {
    pthread_mutex_lock(&running_lock);
    for (RAI_RunningCall **p = &running; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&running_lock);
    PyThreadState_SetAsyncExc(r->ident, NULL);
}

/* The short-lived thread that raises FunctionKilled in the calls asked to
 * stop: it holds the GIL and the mutex together, so each call it finds is
 * still inside Python on its thread. */
static void *Killer(void *unused) {
    (void)unused;
    int gil = RAI_GilEnsure();
    pthread_mutex_lock(&running_lock);
    for (RAI_RunningCall *r = running; r; r = r->next) {
        if (!r->kill) continue;
        PyThreadState_SetAsyncExc(r->ident, RAI_PyFunctionKilledType());
        r->kill = 0;
    }
    pthread_mutex_unlock(&running_lock);
    RAI_GilRelease(gil);
    return NULL;
}

int RAI_PyFunctionKill(long long min_ms, int *nrunning) {
    uint64_t now = RedisModule_MonotonicMicroseconds();
    int asked = 0;
    *nrunning = 0;
    pthread_mutex_lock(&running_lock);
    for (RAI_RunningCall *r = running; r; r = r->next) {
        (*nrunning)++;
        if (now >= RAI_DeadlineAfterMs(r->started_us, min_ms)) {
            r->kill = 1;
            asked++;
        }
    }
    pthread_mutex_unlock(&running_lock);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (asked > 0 && pthread_create(&thread, &attr, Killer, NULL) != 0) {
        RAI_LOG_WARNING("AI.FUNCTION KILL could not start its thread");
        asked = 0;
    }
    pthread_attr_destroy(&attr);
    return asked;
}

void RAI_PyFunctionCall(RAI_Job *job) {
    RAI_FunctionCall *call = job->payload;
    RAI_GilTake();
    PyObject *packed = CallArgs(call);
    RAI_RunningCall self;
    RAI_PyCallEnter(&self);
    PyObject *result = packed ? PyObject_Call(RAI_PyEntryPoint(RAI_PY_CALL_FUNCTION), packed, NULL) : NULL;
    RAI_PyCallLeave(&self);
    job->duration_us = RedisModule_MonotonicMicroseconds() - self.started_us;
    if (result == NULL && PyErr_ExceptionMatches(RAI_PyFunctionKilledType())) {
        PyErr_Clear(); /* raised after the callback, where Python could not word it */
        RAI_JobSetError(job, "ERR the function was killed by AI.FUNCTION KILL");
    } else if (result == NULL) {
        FailWithException(job);
    } else {
        const char *err = NULL;
        call->reply = RedisModule_Calloc(1, sizeof(RAI_FnReply));
        if (!ToReply(result, call->reply, 0, &err)) {
            RAI_FnReplyFree(call->reply);
            call->reply = NULL;
            RAI_JobSetError(job, err);
        }
    }
    Py_XDECREF(result);
    Py_XDECREF(packed);
    RAI_GilDrop();
}
