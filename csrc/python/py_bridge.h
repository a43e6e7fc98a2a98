/* py_bridge.h -- the built-in extension module `_redisai_shim` through which
 * Python code sees tensors and models and calls back into the shim. All
 * functions here need the GIL. */
#ifndef RAI_PY_BRIDGE_H
#define RAI_PY_BRIDGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "types/model.h"
#include "types/script.h"
#include "types/tensor.h"

PyObject *RAI_PyInitShimModule(void);

/* _redisai_shim.FunctionKilled, the exception AI.FUNCTION KILL raises in a
 * running function (borrowed; after the module was made). */
PyObject *RAI_PyFunctionKilledType(void);

/* New references to Python objects that hold a reference to t / m. */
PyObject *RAI_PyTensorWrap(RAI_Tensor *t);
PyObject *RAI_PyModelWrap(RAI_Model *m);
PyObject *RAI_PyScriptWrap(RAI_Script *s);

/* The ACL user whose script this thread runs now (NULL when it ends): its
 * redis.execute() calls run as that user. The string must outlive the run. */
void RAI_PyScriptCallerSet(const char *user);

/* The model / script a Model / Script object holds (borrowed), or NULL
 * without an exception for any other object. */
RAI_Model *RAI_PyModelOf(PyObject *obj);
RAI_Script *RAI_PyScriptOf(PyObject *obj);

#endif
