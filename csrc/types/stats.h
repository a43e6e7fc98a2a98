/* stats.h -- per-key run statistics reported by AI.INFO. Main thread only:
 * updated in reply callbacks, read by AI.INFO. */
#ifndef RAI_STATS_H
#define RAI_STATS_H

typedef struct {
    long long duration_us; /* cumulative time of successful runs */
    long long samples;     /* dim 0 of the first output, summed */
    long long calls;
    long long errors;
    long long cache_hits;   /* requests answered from the inference cache (no run) */
    long long cache_misses; /* requests of a cached model that had to run */
} RAI_RunStats;

#endif
