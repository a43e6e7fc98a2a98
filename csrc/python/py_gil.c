/* py_gil.c -- per-thread GIL hand-over for the shim's worker threads. */
#define PY_SSIZE_T_CLEAN
#include "python/py_gil.h"

#include <Python.h>

static __thread PyThreadState *thread_state;

void RAI_GilTake(void) {
    if (thread_state == NULL) {
        /* First time on this thread: Ensure makes its thread state, and we
         * never call Release, so the state lives as long as the thread. */
        PyGILState_Ensure();
        thread_state = PyThreadState_Get();
        return;
    }
    PyEval_RestoreThread(thread_state);
}

void RAI_GilDrop(void) {
    thread_state = PyEval_SaveThread();
}
