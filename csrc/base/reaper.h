/* reaper.h -- frees big allocations on a background thread of its own, so the
 * Redis main thread never pays for handing hundreds of MB back to the
 * allocator (a store's reply, a model overwritten or deleted, FLUSHALL). */
#ifndef RAI_REAPER_H
#define RAI_REAPER_H

#include <stddef.h>

/* Below this size a free costs less than the hand-off; above it jemalloc
 * returns the pages to the kernel at once, which takes milliseconds. */
#define RAI_REAP_MIN_BYTES ((size_t)1 << 20)

typedef void (*RAI_ReapFn)(void *arg);

/* Starts the reaper thread (main thread, at module load); 0 on success. */
int RAI_ReaperStart(void);

/* Runs fn(arg) on the reaper thread, or here if it is not running.
 *
 * With after_main_pass set, the reaper first waits until the main thread has
 * finished the pass of its event loop that is under way (it takes and drops
 * the Redis lock, which the main thread holds for a whole pass). A blocked
 * client's free callback runs in such a pass just before Redis drops the
 * client's own references to its argument strings; after the wait, the
 * references a job retained are the last ones, so the job may release them
 * off the main thread without racing Redis's non-atomic refcounts. */
void RAI_Reap(RAI_ReapFn fn, void *arg, int after_main_pass);

#endif
