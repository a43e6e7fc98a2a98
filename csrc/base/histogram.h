/* histogram.h -- fixed-bucket histograms that any thread adds to without a
 * lock, read by the metrics exposition while they change.
 *
 * Each bucket counts the observations that fell into it (not cumulative):
 * one relaxed atomic add per observation, plus one for the sum. A reader
 * copies the buckets and cumulates them itself, so the `le` counts it shows
 * always rise and `_count` is always the last of them, even when an
 * observation lands in the middle of the copy. */
#ifndef RAI_HISTOGRAM_H
#define RAI_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define RAI_HIST_MAX_BOUNDS 20

typedef struct {
    size_t n;
    uint64_t bounds[RAI_HIST_MAX_BOUNDS]; /* inclusive upper bounds, ascending, in the observed unit */
    const char *le[RAI_HIST_MAX_BOUNDS];  /* each bound as the exposition writes it */
    int micros;                           /* observed in microseconds, shown in seconds */
} RAI_HistogramBounds;

/* Durations, 50 us to 10 s (observed in microseconds). */
extern const RAI_HistogramBounds RAI_LatencyBounds;
/* Batch sizes in samples, 1 to 4096. */
extern const RAI_HistogramBounds RAI_BatchSizeBounds;

typedef struct {
    uint64_t counts[RAI_HIST_MAX_BOUNDS + 1]; /* the last: above every bound */
    uint64_t sum;
} RAI_Histogram;

void RAI_HistogramObserve(RAI_Histogram *h, const RAI_HistogramBounds *b, uint64_t value);

/* cumulative[i]: observations <= bounds[i]; cumulative[n]: all of them. */
void RAI_HistogramRead(const RAI_Histogram *h, const RAI_HistogramBounds *b,
                       uint64_t cumulative[RAI_HIST_MAX_BOUNDS + 1], uint64_t *sum);

#endif
