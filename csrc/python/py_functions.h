/* py_functions.h -- the worker side of in-server Python functions: importing
 * a library (on the loader) and calling a function (on a function worker).
 * Called without the GIL and without any queue lock. */
#ifndef RAI_PY_FUNCTIONS_H
#define RAI_PY_FUNCTIONS_H

#include <stdint.h>

#include "exec/job.h"

/* Imports the library of a load job's RAI_FunctionLoad payload in a fresh
 * module namespace: fills its functions and Python handle, or the job's
 * error (the Python error as the client sees it). */
void RAI_PyFunctionLoad(RAI_Job *job);

/* Runs the function of a call job's RAI_FunctionCall payload with (keys,
 * args): fills the payload's reply, or the job's error. */
void RAI_PyFunctionCall(RAI_Job *job);

/* A callback inside Python now (a function call's or a trigger's), for
 * AI.FUNCTION KILL: it lives on its worker's stack between Enter and Leave,
 * both called with the GIL held around the callback. */
typedef struct RAI_RunningCall {
    unsigned long ident; /* the worker's Python thread id */
    uint64_t started_us;
    int kill; /* asked to stop, not yet raised */
    struct RAI_RunningCall *next;
} RAI_RunningCall;

void RAI_PyCallEnter(RAI_RunningCall *call);
void RAI_PyCallLeave(RAI_RunningCall *call);

/* AI.FUNCTION KILL (main thread, never takes the GIL): asks every call that
 * has run for at least min_ms to stop, by raising FunctionKilled in it from
 * a short-lived thread (a trigger's callback too: its run counts as failed).
 * Sets *running to the calls running now; returns how
 * many were asked. A call inside C code (a sleep, a framework op, waiting
 * for execute()) stops when it is back in Python. */
int RAI_PyFunctionKill(long long min_ms, int *running);

#endif
