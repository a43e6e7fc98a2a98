/* py_fn_runs.h -- model and script runs that in-server functions ask for
 * (the redisAI runners): ordinary jobs on the model's or script's device
 * queue, while the function's thread waits for them without the GIL. */
#ifndef RAI_PY_FN_RUNS_H
#define RAI_PY_FN_RUNS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "exec/job.h"
#include "types/tensor.h"

/* Main thread, once a run ended: counts it where AI.INFO and AI.METRICS read
 * (commands/job_keys.c's RAI_JobCount; set at start-up, as the layers keep
 * this file below the commands). */
typedef void (*RAI_FnRunCounter)(RAI_Job *job, const RAI_Tensor *first_output);
void RAI_FnRunsSetCounter(RAI_FnRunCounter count);

/* Adds get_script() and run_job() to `_redisai_shim` (GIL held, at its
 * creation). Returns 0, or -1 with a Python exception. */
int RAI_PyFnRunsAddMethods(PyObject *module);

#endif
