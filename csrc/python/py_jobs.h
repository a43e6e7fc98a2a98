/* py_jobs.h -- the worker side of the bridge: runs a job's Python part. */
#ifndef RAI_PY_JOBS_H
#define RAI_PY_JOBS_H

#include "exec/job.h"

/* Looks up the functions of redisai_py._runtime the workers call (GIL held). */
#ifdef Py_PYTHON_H
int RAI_PyJobsInit(PyObject *runtime);
#endif

/* Runs one model over a batch of jobs of that model (n >= 1): sets each
 * job's outputs or error, and the batch's backend time. */
void RAI_PyRunModel(RAI_Job **jobs, int n);

/* Makes the backend session of job->model, or compiles job->script; fills
 * the loaded names and version, or the error. */
void RAI_PyLoadModel(RAI_Job *job);

/* Runs job->fn of job->script; sets the outputs or the error. */
void RAI_PyRunScript(RAI_Job *job);

#endif
