/* job.h -- one unit of background work and its hand-over back to the main
 * thread.
 *
 * The main thread fills a job (model ref, input tensor refs, output key
 * names), blocks the client and queues it. A worker runs it (taking the GIL
 * only for the backend call) and sets outputs or an error. The main thread's
 * reply callback writes the outputs to keys, replicates, counts and replies.
 * A job is owned by exactly one thread at a time, so it needs no lock. */
#ifndef RAI_JOB_H
#define RAI_JOB_H

#include "types/model.h"
#include "types/script.h"
#include "rm_api.h"
#include "types/tensor.h"

struct RAI_Dag;
struct RAI_Waiter;
typedef struct RAI_Job RAI_Job;

/* What one kind of job does. Queues and workers call only these; they know
 * nothing else about kinds. */
typedef struct RAI_JobOps {
    const char *name;
    /* Runs of one model that the queue may hand to `run` together as a batch. */
    int batchable;
    /* Worker thread, no lock held: runs jobs[0..n) (n > 1 only if batchable). */
    void (*run)(RAI_Job **jobs, int n);
    /* Worker thread, after `run` (or instead of it, for a job past its
     * deadline): hands the job on -- unblocks its client, wakes its DAG, or
     * records a background load. The job may be freed by the time it returns. */
    void (*done)(RAI_Job *job);
} RAI_JobOps;

/* The payloads some kinds carry besides the run's model, inputs and outputs;
 * a job has each only if its kind needs it (NULL otherwise). */

/* A script run's call: the function and SCRIPTEXECUTE's KEYS and ARGS. */
typedef struct RAI_ScriptCall {
    char *fn;
    int nkeys, nargs;
    char **keys, **args;
    size_t *arglens;
    char *user; /* the caller's ACL user, which redis.execute() runs as; NULL: none */
} RAI_ScriptCall;

/* A store (session build): the command to replicate as given, and the
 * framework version the load reported. */
typedef struct RAI_StoreCall {
    RedisModuleString **argv; /* retained */
    int argc;
    size_t argv_bytes; /* their total length */
    int blob_at;       /* MODELSTORE: argv index of the first BLOB chunk; 0 once joined */
    char *version;     /* the framework's version, for INFO */
} RAI_StoreCall;

/* A model's input/output names, as its session reports them: learned by a
 * load, or by the first run of a model stored without names. */
typedef struct RAI_LearnedNames {
    int ninputs, noutputs;
    char **inputs, **outputs;
} RAI_LearnedNames;

struct RAI_Job {
    /* The header: how the job is run and handed back. */
    const RAI_JobOps *ops;
    RedisModuleBlockedClient *bc; /* the client waiting for it, or: */
    struct RAI_Waiter *waiter;    /* the main thread waiting for it (MULTI/Lua); or: */
    struct RAI_Dag *dag;          /* the DAG that owns it, as its op number dag_op; all NULL:
                                     nobody waits (a background session load) */
    int dag_op;
    RAI_Job *next;        /* run-queue link */
    uint64_t queued_us;   /* monotonic */
    uint64_t started_us;  /* when a worker took it (monotonic); 0: not taken */
    uint64_t deadline_us; /* 0: no TIMEOUT */
    uint64_t duration_us; /* backend time, the whole batch's */
    int timed_out;
    char *error; /* the reply error, RedisModule_Alloc'd */

    /* What it runs (runs, DAG ops and loads): a model or a script, retained. */
    RAI_Model *model;
    RAI_Script *script;
    int ninputs;
    RAI_Tensor **inputs; /* retained */
    int noutputs;
    RedisModuleString **output_keys; /* retained */
    RAI_Tensor **outputs;            /* set by the worker */

    /* Payloads, by kind. */
    RAI_ScriptCall *call;     /* script runs */
    RAI_StoreCall *store;     /* stores and session loads */
    RAI_LearnedNames *learned; /* set by a load or a first run that learned names */
    void *payload;                  /* a kind of a higher layer's own (function calls) */
    void (*free_payload)(void *payload); /* frees it with the job */

    /* The loaded-session budget (exec/session_budget.h): */
    int pinned;                  /* holds a pin on model's session; RAI_JobFree unpins */
    struct RAI_RunQueue *target; /* a parked run's device queue */
    RAI_Model **victims;         /* an eviction's models, retained */
    size_t nvictims;
};

/* start_us + ms milliseconds, saturating: a TIMEOUT or MINBATCHTIMEOUT of
 * 2^63-1 means "never", not a sum that wraps into the past. */
uint64_t RAI_DeadlineAfterMs(uint64_t start_us, long long ms);

RAI_Job *RAI_JobNew(const RAI_JobOps *ops, RAI_Model *model);
RAI_Job *RAI_ScriptJobNew(const RAI_JobOps *ops, RAI_Script *script);

/* The run statistics the job counts towards (its model's or script's). */
RAI_RunStats *RAI_JobStats(RAI_Job *job);
void RAI_JobFree(RAI_Job *job);

/* After a load job: the backend it needed now shows in INFO (main thread,
 * or a worker holding the Redis lock). */
void RAI_JobRecordBackendLoaded(const RAI_Job *job);

/* The job's store payload, made on first use (any thread). */
RAI_StoreCall *RAI_JobStore(RAI_Job *job);

/* Keeps the command's arguments (for replication from the reply callback). */
void RAI_JobKeepArgv(RAI_Job *job, RedisModuleString **argv, int argc);

/* A MODELSTORE job's model gets its blob from the command's chunks (argv,
 * or the store's argv once kept). Safe off the main thread on kept strings. */
void RAI_JobJoinBlob(RAI_Job *job, RedisModuleString **argv, int argc);

/* A script run's call: fn, and n_keys KEYS and n_args ARGS, copied. */
void RAI_JobSetScriptCall(RAI_Job *job, RedisModuleString *fn, RedisModuleString **keys, int nkeys,
                          RedisModuleString **args, int nargs);

/* Worker, GIL held or not: the names the session reported (taken over). */
void RAI_JobLearnNames(RAI_Job *job, int ninputs, char **inputs, int noutputs, char **outputs);

/* Main thread: gives the job's model the names its session reported, if any. */
void RAI_JobApplyLearnedNames(RAI_Job *job);

/* Records the first error only, with newlines flattened, RedisAI's way. */
void RAI_JobSetError(RAI_Job *job, const char *message);

#endif
