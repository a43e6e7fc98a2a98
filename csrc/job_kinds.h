/* job_kinds.h -- the kinds of job, each an ops table (job.h): what it runs on
 * a worker and how it is handed back. Commands and DAGs pick one when they
 * make a job; queues and workers see only the table. */
#ifndef RAI_JOB_KINDS_H
#define RAI_JOB_KINDS_H

#include "job.h"

/* AI.MODELEXECUTE / MODELRUN: batches with other runs of its model; unblocks its client. */
extern const RAI_JobOps RAI_ModelRunJob;
/* AI.SCRIPTEXECUTE / SCRIPTRUN. */
extern const RAI_JobOps RAI_ScriptRunJob;
/* MODELSTORE / SCRIPTSTORE (and replicated stores): makes the session. */
extern const RAI_JobOps RAI_LoadJob;
/* A DAG's model and script ops: run like the above, then wake their DAG. */
extern const RAI_JobOps RAI_DagModelJob;
extern const RAI_JobOps RAI_DagScriptJob;

/* Runs a load job on the calling thread (a worker, or the main thread for
 * MULTI/Lua and AOF loading). */
void RAI_JobLoadNow(RAI_Job *job);

#endif
