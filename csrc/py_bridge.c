/* py_bridge.c -- `_redisai_shim`, registered with PyImport_AppendInittab
 * before the interpreter starts, so it needs no file on disk and no symbol
 * games with Redis's RTLD_LOCAL load. */
#include "py_bridge.h"

#include "log.h"

/* log(level, message): Python's logging handler forwards here. The GIL is
 * dropped around the write: the log file may be slow and nothing here needs
 * Python. */
static PyObject *ShimLog(PyObject *self, PyObject *args) {
    (void)self;
    const char *level, *message;
    if (!PyArg_ParseTuple(args, "ss", &level, &message)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    RedisModule_Log(RAI_LogCtx, level, "%s", message);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef ShimMethods[] = {
    {"log", ShimLog, METH_VARARGS, "Write a line to the Redis log at the given level."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ShimModule = {
    PyModuleDef_HEAD_INIT, "_redisai_shim", "Calls from Python into the redisai_py shim.", -1,
    ShimMethods, NULL, NULL, NULL, NULL,
};

PyObject *RAI_PyInitShimModule(void) {
    return PyModule_Create(&ShimModule);
}
