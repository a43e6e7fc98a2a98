/* py_gil.c -- every GIL hand-over in the shim, and the check that the Redis
 * main thread stays out of Python once the server serves. */
#define PY_SSIZE_T_CLEAN
#include "python/py_gil.h"

#include <Python.h>
#include <pthread.h>

#include "base/log.h"

static __thread PyThreadState *thread_state;

static pthread_t main_thread;
static int armed; /* set on the main thread when OnLoad ends: the server serves */
static unsigned long long main_thread_takes;

/* The cost on every acquisition is one thread-id comparison. The log line
 * is rate-limited to powers of two, so a main thread stuck in the habit
 * cannot flood the log, yet the first occurrence is always there. */
static void CountIfMainThread(const char *caller) {
    if (!armed || !pthread_equal(pthread_self(), main_thread)) return;
    unsigned long long n = __atomic_add_fetch(&main_thread_takes, 1, __ATOMIC_RELAXED);
    if ((n & (n - 1)) == 0)
        RAI_LOG_WARNING("the Redis main thread took the GIL in %s (count since start-up: %llu): "
                        "clients waited for Python",
                        caller, n);
}

void RAI_GilStartOnMainThread(void) {
    main_thread = pthread_self();
}

void RAI_GilReleaseAfterStart(void) {
    thread_state = PyEval_SaveThread();
}

void RAI_GilCheckMainThreadFromNowOn(void) {
    armed = 1;
}

int RAI_GilOnMainThread(void) {
    return pthread_equal(pthread_self(), main_thread);
}

unsigned long long RAI_GilMainThreadTakes(void) {
    return __atomic_load_n(&main_thread_takes, __ATOMIC_RELAXED);
}

void RAI_GilTakeIn(const char *caller) {
    CountIfMainThread(caller);
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

int RAI_GilEnsureIn(const char *caller) {
    CountIfMainThread(caller);
    return (int)PyGILState_Ensure();
}

void RAI_GilRelease(int state) {
    PyGILState_Release((PyGILState_STATE)state);
}

void *RAI_GilSuspend(void) {
    return PyEval_SaveThread();
}

void RAI_GilResumeIn(void *saved, const char *caller) {
    CountIfMainThread(caller);
    PyEval_RestoreThread((PyThreadState *)saved);
}
