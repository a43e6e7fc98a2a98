/* py_bridge.c -- `_redisai_shim`, the built-in module through which Python
 * sees the shim: registered with PyImport_AppendInittab before the
 * interpreter starts, so it needs no file on disk and no symbol games with
 * Redis's RTLD_LOCAL load.
 *
 * Three types carry C objects into Python without copying:
 *   Tensor -- a tensor reference exposing its buffer with its type and shape
 *             (numpy.asarray makes the array in one call).
 *   Model  -- a model reference exposing its blob, id and metadata.
 *   Script -- a script reference exposing its source and entry points.
 * Each holds a reference for as long as Python keeps the object, so a
 * framework that keeps a view past the run can never read freed memory.
 * get_model, get_script and get_tensor hand Python such views of stored
 * keys, looked up on the main thread (redis_call.h) with the caller's ACL
 * key rule. The module also exports DTYPES, the shim's tensor types, so
 * Python never keeps a table of its own. Its Python face is declared once, in
 * redisai_py/stubs/_redisai_shim.pyi (tests/test_python_boundary.py holds
 * the two together). */
#include "python/py_bridge.h"

#include "base/log.h"
#include "exec/redis_call.h"
#include "python/py_gil.h"

#include <string.h>

/* ------------------------------------------------------------------ Tensor */

/* Variable-size: room for the strides of its buffer, one per dim. */
typedef struct {
    PyObject_VAR_HEAD RAI_Tensor *tensor;
    Py_ssize_t strides[1];
} TensorObject;

/* Shapes are handed to Python as they are stored. */
_Static_assert(sizeof(Py_ssize_t) == sizeof(int64_t), "shape dims must be Py_ssize_t wide");

static void Tensor_dealloc(TensorObject *self) {
    RAI_TensorRelease(self->tensor);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Read-only, C-contiguous. Asked for its format, a numeric tensor gives its
 * element type and shape, so numpy.asarray(view) is the typed, shaped array
 * at once. Otherwise, and for STRING (NUL-terminated pieces, split in
 * Python), the buffer is plain bytes. */
static int Tensor_getbuffer(TensorObject *self, Py_buffer *view, int flags) {
    const RAI_Tensor *t = self->tensor;
    if (PyBuffer_FillInfo(view, (PyObject *)self, t->data, (Py_ssize_t)t->nbytes, 1, flags) != 0) return -1;
    const RAI_DTypeInfo *type = &RAI_DTYPES[t->dtype];
    if (type->format == NULL || !(flags & PyBUF_FORMAT)) return 0;
    view->itemsize = type->size;
    view->format = (char *)type->format;
    if ((flags & PyBUF_ND) == PyBUF_ND) {
        view->ndim = t->ndims;
        view->shape = t->ndims > 0 ? (Py_ssize_t *)t->shape : NULL;
    }
    if ((flags & PyBUF_STRIDES) == PyBUF_STRIDES) {
        Py_ssize_t stride = type->size;
        for (int d = t->ndims - 1; d >= 0; d--) {
            self->strides[d] = stride;
            stride *= (Py_ssize_t)t->shape[d];
        }
        view->strides = t->ndims > 0 ? self->strides : NULL;
    }
    return 0;
}

static PyBufferProcs TensorBufferProcs = {(getbufferproc)Tensor_getbuffer, NULL};

static PyObject *Tensor_dtype(TensorObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(RAI_DTYPES[self->tensor->dtype].name);
}

static PyObject *Tensor_shape(TensorObject *self, void *closure) {
    (void)closure;
    const RAI_Tensor *t = self->tensor;
    PyObject *shape = PyTuple_New(t->ndims);
    for (int i = 0; i < t->ndims; i++) PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(t->shape[i]));
    return shape;
}

static PyGetSetDef TensorGetSet[] = {
    {"dtype", (getter)Tensor_dtype, NULL, "FLOAT, DOUBLE, INT8, ..., STRING", NULL},
    {"shape", (getter)Tensor_shape, NULL, "dims as a tuple of ints", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TensorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_redisai_shim.Tensor",
    .tp_basicsize = offsetof(TensorObject, strides),
    .tp_itemsize = sizeof(Py_ssize_t),
    .tp_dealloc = (destructor)Tensor_dealloc,
    .tp_as_buffer = &TensorBufferProcs,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A read-only view of a tensor stored in Redis.",
    .tp_getset = TensorGetSet,
};

PyObject *RAI_PyTensorWrap(RAI_Tensor *t) {
    TensorObject *obj = PyObject_NewVar(TensorObject, &TensorType, t->ndims);
    if (obj == NULL) return NULL;
    obj->tensor = RAI_TensorRetain(t);
    return (PyObject *)obj;
}

/* ------------------------------------------------------------------- Model */

typedef struct {
    PyObject_HEAD RAI_Model *model;
} ModelObject;

static void Model_dealloc(ModelObject *self) {
    RAI_ModelRelease(self->model);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Model_getbuffer(ModelObject *self, Py_buffer *view, int flags) {
    const RAI_Model *m = self->model;
    return PyBuffer_FillInfo(view, (PyObject *)self, m->blob, (Py_ssize_t)m->bloblen, 1, flags);
}

static PyBufferProcs ModelBufferProcs = {(getbufferproc)Model_getbuffer, NULL};

/* A stored name or device as str. They are bytes a client sent (or an RDB
 * held) and need not be UTF-8: undecodable bytes become U+FFFD, so such a
 * name fails later as an unknown name, with the backend's message. */
static PyObject *Text(const char *s) {
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* A getter must return NULL with an exception or an object without one: a
 * tuple with a hole and a pending exception would surface at some later C
 * call, e.g. inside a lock's __enter__ after the lock was taken. */
static PyObject *NamesTuple(int n, char **names) {
    PyObject *tuple = PyTuple_New(n > 0 ? n : 0);
    if (tuple == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *name = Text(names[i]);
        if (name == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, name);
    }
    return tuple;
}

/* Read on a worker while the main thread may fill in names of a model stored
 * without a session; the names given at store time (TF) never change. */
static PyObject *Model_getattr(ModelObject *self, void *closure) {
    const RAI_Model *m = self->model;
    switch ((intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLongLong(m->id);
    case 1: return PyUnicode_FromString(RAI_BackendName(m->backend));
    case 2: return Text(m->device);
    case 3: return m->backend == RAI_BACKEND_TF ? NamesTuple(m->ninputs, m->inputs) : PyTuple_New(0);
    case 4: return m->backend == RAI_BACKEND_TF ? NamesTuple(m->noutputs, m->outputs) : PyTuple_New(0);
    case 5: return PyLong_FromLongLong(m->warmup);
    default: Py_RETURN_NONE;
    }
}

static PyGetSetDef ModelGetSet[] = {
    {"id", (getter)Model_getattr, NULL, "session cache key", (void *)0},
    {"backend", (getter)Model_getattr, NULL, "TF, TFLITE, TORCH or ONNX", (void *)1},
    {"device", (getter)Model_getattr, NULL, "device as stored", (void *)2},
    {"inputs", (getter)Model_getattr, NULL, "input names given at store time (TF)", (void *)3},
    {"outputs", (getter)Model_getattr, NULL, "output names given at store time (TF)", (void *)4},
    {"warmup", (getter)Model_getattr, NULL, "synthetic runs after each load (WARMUP n)", (void *)5},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_redisai_shim.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_as_buffer = &ModelBufferProcs,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A stored model: its blob (buffer protocol) and metadata.",
    .tp_getset = ModelGetSet,
};

PyObject *RAI_PyModelWrap(RAI_Model *m) {
    ModelObject *obj = PyObject_New(ModelObject, &ModelType);
    if (obj == NULL) return NULL;
    obj->model = RAI_ModelRetain(m);
    return (PyObject *)obj;
}

/* ------------------------------------------------------------------ Script */

typedef struct {
    PyObject_HEAD RAI_Script *script;
} ScriptObject;

static void Script_dealloc(ScriptObject *self) {
    RAI_ScriptRelease(self->script);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Script_getattr(ScriptObject *self, void *closure) {
    const RAI_Script *s = self->script;
    switch ((intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLongLong(s->id);
    case 1: return Text(s->device);
    case 2: return Text(s->source);
    case 3: return NamesTuple(s->nentry, s->entry_points);
    default: Py_RETURN_NONE;
    }
}

static PyGetSetDef ScriptGetSet[] = {
    {"id", (getter)Script_getattr, NULL, "session cache key", (void *)0},
    {"device", (getter)Script_getattr, NULL, "device as stored", (void *)1},
    {"source", (getter)Script_getattr, NULL, "TorchScript source", (void *)2},
    {"entry_points", (getter)Script_getattr, NULL, "declared entry points", (void *)3},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScriptType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_redisai_shim.Script",
    .tp_basicsize = sizeof(ScriptObject),
    .tp_dealloc = (destructor)Script_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A stored TorchScript script: its source and metadata.",
    .tp_getset = ScriptGetSet,
};

PyObject *RAI_PyScriptWrap(RAI_Script *s) {
    ScriptObject *obj = PyObject_New(ScriptObject, &ScriptType);
    if (obj == NULL) return NULL;
    obj->script = RAI_ScriptRetain(s);
    return (PyObject *)obj;
}

RAI_Model *RAI_PyModelOf(PyObject *obj) {
    return Py_IS_TYPE(obj, &ModelType) ? ((ModelObject *)obj)->model : NULL;
}

RAI_Script *RAI_PyScriptOf(PyObject *obj) {
    return Py_IS_TYPE(obj, &ScriptType) ? ((ScriptObject *)obj)->script : NULL;
}

/* ------------------------------------------------------- calls into Redis */

/* raw: bulk strings as bytes (a function's tensor reads), else as str. */
static PyObject *ReplyToPythonAs(const RAI_CallReply *r, int raw) {
    switch (r->type) {
    case RAI_REPLY_STRING:
        return raw ? PyBytes_FromStringAndSize(r->str, (Py_ssize_t)r->len)
                   : PyUnicode_DecodeUTF8(r->str, (Py_ssize_t)r->len, "replace");
    case RAI_REPLY_INTEGER: return PyLong_FromLongLong(r->integer);
    case RAI_REPLY_ARRAY: {
        /* A tuple: TorchScript's Any takes mixed element types in a tuple only. */
        PyObject *tuple = PyTuple_New((Py_ssize_t)r->n);
        for (size_t i = 0; i < r->n; i++) {
            PyObject *item = ReplyToPythonAs(&r->elements[i], raw);
            if (item == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, item);
        }
        return tuple;
    }
    case RAI_REPLY_ERROR:
        return PyErr_Format(PyExc_RuntimeError, "Redis command returned an error: %s", r->str);
    default: Py_RETURN_NONE;
    }
}

static PyObject *ReplyToPython(const RAI_CallReply *r) { return ReplyToPythonAs(r, 0); }

/* Who the script this worker runs was called by. TorchScript runs the ops
 * of a script on the thread that runs the script, except in tasks it forks
 * onto its own pool: there no user is set and redis.execute() is refused. */
static __thread const char *script_caller;

void RAI_PyScriptCallerSet(const char *user) { script_caller = user; }

/* call(command, args): runs a Redis command for a script's redis.execute(),
 * as the ACL user that ran the script (RAI_RedisCallAs, as a function's
 * execute(), keys of any slot: scripts are not routed).
 * The GIL is released before the Redis lock is taken: a thread holding the
 * GIL while it waits for the Redis lock could deadlock with another worker. */
static PyObject *ShimCall(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cmd, *list;
    if (!PyArg_ParseTuple(args, "UO", &cmd, &list)) return NULL;
    if (script_caller == NULL)
        return PyErr_Format(PyExc_RuntimeError, "Redis command returned an error: ERR redis.execute runs "
                                                "only on its script's own thread, as the user that ran it");
    PyObject *seq = PySequence_Fast(list, "args must be a sequence of str");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **argv = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    size_t *lens = PyMem_Calloc((size_t)n + 1, sizeof(size_t));
    if (argv == NULL || lens == NULL) {
        PyMem_Free(argv);
        PyMem_Free(lens);
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t len;
    argv[0] = PyUnicode_AsUTF8AndSize(cmd, &len);
    lens[0] = (size_t)len;
    for (Py_ssize_t i = 0; i < n && argv[0]; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        argv[i + 1] = PyBytes_Check(item) ? PyBytes_AS_STRING(item) : PyUnicode_AsUTF8AndSize(item, &len);
        if (argv[i + 1] == NULL) argv[0] = NULL;
        else lens[i + 1] = PyBytes_Check(item) ? (size_t)PyBytes_GET_SIZE(item) : (size_t)len;
    }
    PyObject *result = NULL;
    if (argv[0] != NULL) {
        RAI_CallAs as = {script_caller, 0, RAI_CALL_ANY_SLOT};
        void *gil = RAI_GilSuspend();
        RAI_CallReply *reply = RAI_RedisCallAs((int)n + 1, argv, lens, &as);
        RAI_GilResume(gil);
        result = ReplyToPython(reply);
        RAI_CallReplyFree(reply);
    }
    PyMem_Free(argv);
    PyMem_Free(lens);
    Py_DECREF(seq);
    return result;
}

/* function_execute(user, read_only, slot, argv[, raw]): a function's
 * execute(), run on the main thread as `user` (RAI_RedisCallAs). (True,
 * reply) with the reply converted as for scripts (raw: bulk strings as
 * bytes), or (False, error text) so that Python raises it with the server's
 * own wording. The GIL is dropped first, as for call(). */
static PyObject *ShimFunctionExecute(PyObject *self, PyObject *args) {
    (void)self;
    const char *user;
    int read_only, slot, raw = 0;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "ypiO|p", &user, &read_only, &slot, &list, &raw)) return NULL;
    PyObject *seq = PySequence_Fast(list, "the command must be a sequence of str or bytes");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **argv = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    size_t *lens = PyMem_Calloc((size_t)n + 1, sizeof(size_t));
    int ok = argv != NULL && lens != NULL;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t len = 0;
        if (PyBytes_Check(item)) {
            argv[i] = PyBytes_AS_STRING(item);
            len = PyBytes_GET_SIZE(item);
        } else if (PyUnicode_Check(item)) {
            argv[i] = PyUnicode_AsUTF8AndSize(item, &len);
        } else {
            PyErr_Format(PyExc_TypeError, "execute() takes str or bytes arguments, not %s", Py_TYPE(item)->tp_name);
        }
        ok = argv[i] != NULL;
        lens[i] = (size_t)len;
    }
    PyObject *result = NULL;
    if (ok) {
        RAI_CallAs as = {user, read_only, slot};
        void *gil = RAI_GilSuspend();
        RAI_CallReply *reply = RAI_RedisCallAs((int)n, argv, lens, &as);
        RAI_GilResume(gil);
        if (reply->type == RAI_REPLY_ERROR) {
            result = Py_BuildValue("(Os#)", Py_False, reply->str, (Py_ssize_t)reply->len);
        } else {
            PyObject *value = ReplyToPythonAs(reply, raw);
            result = value ? Py_BuildValue("(ON)", Py_True, value) : NULL;
        }
        RAI_CallReplyFree(reply);
    }
    PyMem_Free(argv);
    PyMem_Free(lens);
    Py_DECREF(seq);
    return result;
}

/* What a worker may look up by key for Python (redis_call.h's lookups). */
typedef enum { STORED_MODEL, STORED_SCRIPT, STORED_TENSOR } StoredKind;

/* The view of the model, script or tensor under key, looked up on the main
 * thread as `user` within `slot`; NULL with RuntimeError(the reply's text).
 * The GIL is dropped while the main thread looks. */
static PyObject *GetStored(StoredKind kind, const char *key, Py_ssize_t keylen, const char *user, int slot) {
    const char *err = NULL;
    void *found = NULL;
    void *gil = RAI_GilSuspend();
    switch (kind) {
    case STORED_MODEL: found = RAI_ModelFromWorker(key, (size_t)keylen, user, slot, &err); break;
    case STORED_SCRIPT: found = RAI_ScriptFromWorker(key, (size_t)keylen, user, slot, &err); break;
    case STORED_TENSOR: found = RAI_TensorFromWorker(key, (size_t)keylen, user, slot, &err); break;
    }
    RAI_GilResume(gil);
    if (found == NULL) return PyErr_Format(PyExc_RuntimeError, "%s", err);
    PyObject *obj = NULL;
    switch (kind) {
    case STORED_MODEL:
        obj = RAI_PyModelWrap(found);
        RAI_ModelRelease(found);
        break;
    case STORED_SCRIPT:
        obj = RAI_PyScriptWrap(found);
        RAI_ScriptRelease(found);
        break;
    case STORED_TENSOR: {
        RAI_Tensor *t = found;
        /* Gears' API has no STRING tensors: say so rather than hand over their bytes. */
        obj = RAI_DTYPES[t->dtype].format
                  ? RAI_PyTensorWrap(t)
                  : PyErr_Format(PyExc_RuntimeError, "ERR unsupported tensor type %s", RAI_DTYPES[t->dtype].name);
        RAI_TensorRelease(t);
        break;
    }
    }
    return obj;
}

/* get_model(key[, user[, slot]]): the model stored under key, for a
 * script's redisAI.model_execute() or a function's model runner, if the user
 * may read it (and, for a function in cluster mode, it is in the call's slot). */
static PyObject *ShimGetModel(PyObject *self, PyObject *args) {
    (void)self;
    const char *key, *user = NULL;
    Py_ssize_t keylen;
    int slot = RAI_CALL_ANY_SLOT;
    if (!PyArg_ParseTuple(args, "s#|yi", &key, &keylen, &user, &slot)) return NULL;
    /* A function names its caller; a script's call runs as the user that ran the script. */
    if (user == NULL) user = script_caller;
    if (user == NULL)
        return PyErr_Format(PyExc_RuntimeError, "ERR redisAI.model_execute runs only on its script's own "
                                                "thread, as the user that ran it");
    return GetStored(STORED_MODEL, key, keylen, user, slot);
}

/* get_script(key, user, slot) and get_tensor(key, user, slot): the script
 * (for createScriptRunner) or tensor (getTensorFromKey: a read-only view,
 * shared, not copied) under key, for a function, checked as get_model. */
static PyObject *GetForFunction(PyObject *args, StoredKind kind) {
    const char *key, *user;
    Py_ssize_t keylen;
    int slot;
    if (!PyArg_ParseTuple(args, "s#yi", &key, &keylen, &user, &slot)) return NULL;
    return GetStored(kind, key, keylen, user, slot);
}

static PyObject *ShimGetScript(PyObject *self, PyObject *args) {
    (void)self;
    return GetForFunction(args, STORED_SCRIPT);
}

static PyObject *ShimGetTensor(PyObject *self, PyObject *args) {
    (void)self;
    return GetForFunction(args, STORED_TENSOR);
}

/* ------------------------------------------------------------------ module */

/* log(level, message): Python's logging handler forwards here. The GIL is
 * dropped around the write: the log file may be slow and nothing here needs
 * Python. */
static PyObject *ShimLog(PyObject *self, PyObject *args) {
    (void)self;
    const char *level, *message;
    if (!PyArg_ParseTuple(args, "ss", &level, &message)) return NULL;
    void *gil = RAI_GilSuspend();
    RedisModule_Log(RAI_LogCtx, level, "%s", message);
    RAI_GilResume(gil);
    Py_RETURN_NONE;
}

static PyMethodDef ShimMethods[] = {
    {"log", ShimLog, METH_VARARGS, "Write a line to the Redis log at the given level."},
    {"call", ShimCall, METH_VARARGS, "Run a Redis command (replicated) and return its reply."},
    {"get_model", ShimGetModel, METH_VARARGS,
     "The model stored under a key, looked up as ACL user `user` (default: the running script's caller) "
     "within the call's cluster slot."},
    {"get_script", ShimGetScript, METH_VARARGS,
     "The script stored under a key, looked up as ACL user `user` within the call's cluster slot."},
    {"get_tensor", ShimGetTensor, METH_VARARGS,
     "The tensor stored under a key (a read-only view), looked up as ACL user `user` within the call's cluster slot."},
    {"function_execute", ShimFunctionExecute, METH_VARARGS,
     "Run a Redis command for a function, as its caller's ACL user: (ok, reply or error text)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ShimModule = {
    PyModuleDef_HEAD_INIT, "_redisai_shim", "Calls from Python into the redisai_py shim.", -1,
    ShimMethods, NULL, NULL, NULL, NULL,
};

/* DTYPES: ((name, format or None, bytes per element), ...) in RAI_DType
 * order, from the one table in tensor.c. */
static PyObject *DTypesTuple(void) {
    PyObject *dtypes = PyTuple_New(RAI_DTYPE_COUNT);
    for (int i = 0; dtypes != NULL && i < RAI_DTYPE_COUNT; i++) {
        const RAI_DTypeInfo *type = &RAI_DTYPES[i];
        PyObject *row = Py_BuildValue("(szi)", type->name, type->format, (int)type->size);
        if (row == NULL) Py_CLEAR(dtypes);
        else PyTuple_SET_ITEM(dtypes, i, row);
    }
    return dtypes;
}

/* A BaseException, so a function's `except Exception` cannot swallow it. */
static PyObject *FunctionKilled;

PyObject *RAI_PyFunctionKilledType(void) { return FunctionKilled; }

PyObject *RAI_PyInitShimModule(void) {
    if (PyType_Ready(&TensorType) < 0 || PyType_Ready(&ModelType) < 0 || PyType_Ready(&ScriptType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&ShimModule);
    PyObject *dtypes = module ? DTypesTuple() : NULL;
    if (dtypes == NULL || PyModule_AddObject(module, "DTYPES", dtypes) != 0) {
        Py_XDECREF(dtypes);
        Py_XDECREF(module);
        return NULL;
    }
    FunctionKilled = PyErr_NewException("_redisai_shim.FunctionKilled", PyExc_BaseException, NULL);
    if (FunctionKilled == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(FunctionKilled); /* one reference for the module, one kept here */
    PyModule_AddObject(module, "FunctionKilled", FunctionKilled);
    Py_INCREF(&TensorType);
    Py_INCREF(&ModelType);
    Py_INCREF(&ScriptType);
    PyModule_AddObject(module, "Tensor", (PyObject *)&TensorType);
    PyModule_AddObject(module, "Model", (PyObject *)&ModelType);
    PyModule_AddObject(module, "Script", (PyObject *)&ScriptType);
    return module;
}
