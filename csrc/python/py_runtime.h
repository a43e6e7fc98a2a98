/* py_runtime.h -- the embedded interpreter: start-up and the few calls the
 * shim makes into Python. This file and py_bridge.c are the only ones that
 * use the CPython API. */
#ifndef RAI_PY_RUNTIME_H
#define RAI_PY_RUNTIME_H

#include <stddef.h>

#include "types/backends.h"

/* Promotes libpython to RTLD_GLOBAL, finds the venv next to the module file,
 * starts an isolated interpreter, imports redisai_py._runtime and releases
 * the GIL. On failure writes one line into err and returns -1. */
int RAI_PyStart(const char *module_path, char *err, size_t errlen);

/* Imports a backend's framework (GIL taken and dropped inside; never call it
 * on the main thread once the server serves). Fills version or err. */
int RAI_PyLoadBackend(RAI_Backend b, char *version, size_t vlen, char *err, size_t errlen);

#endif
