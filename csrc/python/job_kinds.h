/* job_kinds.h -- the kinds of job, each an ops table (job.h): what it runs on
 * a worker and how it is handed back. Commands and DAGs pick one when they
 * make a job; queues and workers see only the table. */
#ifndef RAI_JOB_KINDS_H
#define RAI_JOB_KINDS_H

#include "exec/job.h"

/* AI.MODELEXECUTE / MODELRUN: batches with other runs of its model; unblocks its client. */
extern const RAI_JobOps RAI_ModelRunJob;
/* AI.SCRIPTEXECUTE / SCRIPTRUN. */
extern const RAI_JobOps RAI_ScriptRunJob;
/* MODELSTORE / SCRIPTSTORE (and replicated stores): makes the session. */
extern const RAI_JobOps RAI_LoadJob;
/* A DAG's model and script ops: run like the above, then wake their DAG. */
extern const RAI_JobOps RAI_DagModelJob;
extern const RAI_JobOps RAI_DagScriptJob;

/* AI.FUNCTION LOAD: imports a library on the loader (its client blocked, or
 * the main thread waiting: replicated, AOF or RDB loading, MULTI/Lua). */
extern const RAI_JobOps RAI_FunctionLoadJob;
/* AI.FCALL / AI.FCALL_RO: runs a function on the function queue. */
extern const RAI_JobOps RAI_FunctionCallJob;

/* Released models and scripts have their sessions dropped by a job on the
 * loader queue, which is made when the first lands on an empty drop list
 * (model.c calls this waker from any thread; it only queues). Main thread,
 * once the loader queue exists. */
void RAI_JobKindsStart(void);

/* Runs a load job on the calling thread (a worker, or the main thread for
 * MULTI/Lua and AOF loading). */
void RAI_JobLoadNow(RAI_Job *job);

#endif
