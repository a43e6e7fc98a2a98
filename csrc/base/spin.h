/* spin.h -- a thread that expects its wait to be short polls instead of
 * sleeping: waking a sleeping thread costs tens of microseconds on a VM,
 * and its caches come back cold, which costs a small model's run as much
 * again. */
#ifndef RAI_SPIN_H
#define RAI_SPIN_H

#include <stdint.h>

/* Polls ready(arg) until it returns nonzero or spin_us pass, yielding the
 * core on each turn so a thread that shares it (the main thread, a client)
 * runs first. Returns whether ready() said yes. The caller holds no lock
 * the thread it waits for needs. */
int RAI_SpinUntil(int (*ready)(const void *arg), const void *arg, uint64_t spin_us);

#endif
