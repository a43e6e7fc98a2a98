/* spin.c -- polling a condition for a bounded time (see spin.h). */
#include "base/spin.h"

#include <sched.h>

#include "rm_api.h"

int RAI_SpinUntil(int (*ready)(const void *arg), const void *arg, uint64_t spin_us) {
    if (ready(arg)) return 1;
    if (spin_us == 0) return 0;
    uint64_t until = RedisModule_MonotonicMicroseconds() + spin_us;
    for (;;) {
        sched_yield();
        if (ready(arg)) return 1;
        if (RedisModule_MonotonicMicroseconds() >= until) return 0;
    }
}
