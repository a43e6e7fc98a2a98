/* py_gil.h -- the one place the shim takes and drops the GIL.
 *
 * Rules these helpers keep (each prevents a deadlock between the Redis main
 * thread, the GIL and the queue mutexes):
 *   - never called on the Redis main thread once the server serves;
 *   - never called while holding a run-queue mutex;
 *   - the GIL is dropped before any wait (for a job, or for the Redis lock).
 *
 * No other file calls PyEval_*, PyGILState_* or Py_BEGIN_ALLOW_THREADS
 * (tests/test_python_boundary.py checks the sources), so the first rule is
 * checked here for every acquisition: the thread that started Python is
 * Redis's main thread, and each time it takes the GIL after start-up a
 * counter goes up and the Redis log gets a warning (at the 1st, 2nd, 4th,
 * 8th, ... time) naming the function that did it. */
#ifndef RAI_PY_GIL_H
#define RAI_PY_GIL_H

/* Start-up, on the thread that loads the module (Redis's main thread),
 * right after the interpreter started on it: remembers the thread. */
void RAI_GilStartOnMainThread(void);

/* Start-up, main thread: drops the GIL the interpreter started with. */
void RAI_GilReleaseAfterStart(void);

/* The end of OnLoad (the server is about to serve): from here on the main
 * thread taking the GIL is counted and logged. (During OnLoad it may, e.g.
 * to start the metrics endpoint.) */
void RAI_GilCheckMainThreadFromNowOn(void);

/* Whether the calling thread is the one that started Python. */
int RAI_GilOnMainThread(void);

/* Long-lived threads (workers, the loader): one thread
 * state per thread for its whole life (PyGILState_Ensure/Release would
 * make and free one per call, which costs microseconds on every run). */
#define RAI_GilTake() RAI_GilTakeIn(__func__)
void RAI_GilTakeIn(const char *caller);
void RAI_GilDrop(void);

/* Short-lived threads (AI.CONFIG LOADBACKEND): a thread state made for the
 * call and freed after it. Returns what RAI_GilRelease needs. */
#define RAI_GilEnsure() RAI_GilEnsureIn(__func__)
int RAI_GilEnsureIn(const char *caller);
void RAI_GilRelease(int state);

/* GIL held, inside a call from Python: drops it around work that needs no
 * Python and may wait (the Redis lock, a log write), then takes it back. */
void *RAI_GilSuspend(void);
#define RAI_GilResume(saved) RAI_GilResumeIn((saved), __func__)
void RAI_GilResumeIn(void *saved, const char *caller);

/* How many times the main thread took the GIL after start-up (the rule is
 * none). Thread-safe. */
unsigned long long RAI_GilMainThreadTakes(void);

#endif
