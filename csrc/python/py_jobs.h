/* py_jobs.h -- the worker side of the bridge: runs a job's Python part, and
 * drops the Python sessions of released models and scripts. */
#ifndef RAI_PY_JOBS_H
#define RAI_PY_JOBS_H

#include "exec/job.h"

/* Runs one model over a batch of jobs of that model (n >= 1): sets each
 * job's outputs or error, and the batch's backend time. One call into
 * Python per batch: the model's prepared runner (made at load, or by the
 * first run of a model that has no session yet). */
void RAI_PyRunModel(RAI_Job **jobs, int n);

/* Makes the backend session of job->model, or compiles job->script; fills
 * the loaded names and version, or the error. */
void RAI_PyLoadModel(RAI_Job *job);

/* Runs job->call (a function of job->script); sets the outputs or the error. */
void RAI_PyRunScript(RAI_Job *job);

/* Drops every session posted by RAI_PostDroppedSession so far, taking the
 * GIL only when there is one. Runs off the main thread; meant for the
 * loader, which also makes sessions. */
void RAI_PyDropReleasedSessions(void);

/* Loader: makes job->model's session and runner for the runs parked on
 * it (a cold run), unless it has one; sets job's error on failure. */
void RAI_PyPrepareModel(RAI_Job *job);

/* Loader: lets go of an evicted model's runner and its session in Python's
 * cache. The model itself (key, blob, settings, stats) stays. */
void RAI_PyReleaseSession(RAI_Model *m);

#endif
