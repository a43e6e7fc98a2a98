/* py_runtime.h -- the embedded interpreter: start-up, and the one list of
 * redisai_py._runtime functions the shim calls. Only the py_*.c files use
 * the CPython API. */
#ifndef RAI_PY_RUNTIME_H
#define RAI_PY_RUNTIME_H

#include <stddef.h>

#include "types/backends.h"

/* The functions of redisai_py._runtime the shim calls. Their names are in
 * one table in py_runtime.c; start-up refuses a _runtime whose
 * ENTRY_POINTS list differs (tests/test_python_boundary.py checks both
 * sources too), so a rename on either side fails loudly at load. */
typedef enum {
    RAI_PY_START,
    RAI_PY_LOAD_BACKEND,
    RAI_PY_LOAD_MODEL,
    RAI_PY_PREPARE_MODEL,
    RAI_PY_LOAD_SCRIPT,
    RAI_PY_RUN_SCRIPT,
    RAI_PY_DROP_SESSIONS,
    RAI_PY_LOAD_LIBRARY,
    RAI_PY_CALL_FUNCTION,
    RAI_PY_FIRE_TRIGGER,
    RAI_PY_ENTRY_COUNT
} RAI_PyEntry;

#ifdef Py_PYTHON_H
/* The function, a borrowed reference (GIL held; after RAI_PyStart). */
PyObject *RAI_PyEntryPoint(RAI_PyEntry entry);
#endif

/* Promotes libpython to RTLD_GLOBAL, finds the venv next to the module file,
 * starts an isolated interpreter, imports redisai_py._runtime and releases
 * the GIL. On failure writes one line into err and returns -1. */
int RAI_PyStart(const char *module_path, char *err, size_t errlen);

/* Imports a backend's framework. Fills version or err. Called on the main
 * thread (at module load), it waits for a helper thread to do the import,
 * so the main thread never takes the GIL after start-up. */
int RAI_PyLoadBackend(RAI_Backend b, char *version, size_t vlen, char *err, size_t errlen);

/* Before RAI_PyStart: a function that adds to `_redisai_shim` when it is
 * made (GIL held; returns 0, or -1 with a Python exception). */
struct _object; /* PyObject, for files that do not include Python.h */
typedef int (*RAI_PyShimExtension)(struct _object *module);
void RAI_PySetShimExtension(RAI_PyShimExtension extend);

#endif
