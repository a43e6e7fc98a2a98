/* py_gil.h -- the one place worker threads take and drop the GIL.
 *
 * Rules these helpers keep (each prevents a deadlock between the Redis main
 * thread, the GIL and the queue mutexes):
 *   - never called on the Redis main thread once the server serves;
 *   - never called while holding a run-queue mutex;
 *   - the GIL is dropped before any wait (for a job, or for the Redis lock). */
#ifndef RAI_PY_GIL_H
#define RAI_PY_GIL_H

/* Takes the GIL on this thread, keeping one thread state per thread for its
 * whole life (PyGILState_Ensure/Release would make and free one per call,
 * which costs microseconds on every run). */
void RAI_GilTake(void);
void RAI_GilDrop(void);

#endif
