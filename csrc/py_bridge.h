/* py_bridge.h -- the built-in extension module `_redisai_shim` through which
 * Python code calls back into the shim. */
#ifndef RAI_PY_BRIDGE_H
#define RAI_PY_BRIDGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyObject *RAI_PyInitShimModule(void);

#endif
