/* key_metrics.h -- the per-key metric series of models and scripts, which
 * AI.METRICS and the /metrics endpoint show.
 *
 * A series holds one key's run counters and its queue-wait and execution
 * histograms. Each stored model or script links to the series of the key
 * it is stored at (when stored, loaded from RDB, copied, or first read
 * under a new name after a RENAME), and a series lives while something
 * links to it or a scrape reads it: a deleted key's series goes with its
 * last model, as AI.INFO's statistics do. A series is found by its kind and
 * its label text, so two live objects with the same labels (an overwritten
 * model still running, and its successor) share one, and no scrape shows a
 * label set twice. Past METRICS_MAX_KEYS series a new key links to its
 * kind's `other` series instead, and the fold is counted.
 *
 * Threads: links change on the main thread (commands, RDB load, COPY), and
 * are dropped wherever the last reference to a model goes; the registry is
 * behind one mutex held only to find, add, retain or drop. Counters are
 * added to on the main thread (reply callbacks) and read by any thread,
 * all with relaxed atomics. */
#ifndef RAI_KEY_METRICS_H
#define RAI_KEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"

typedef enum { RAI_SERIES_MODEL, RAI_SERIES_SCRIPT, RAI_SERIES_KINDS } RAI_SeriesKind;

typedef struct RAI_KeySeries {
    RAI_SeriesKind kind;
    char *labels; /* key="...",backend="...",device="...",tag="..." as the text format writes them */
    size_t labels_len;
    uint64_t hash;
    int refs;   /* links and scrapes holding it (under the registry lock) */
    int folded; /* its kind's `other` series: never freed */
    uint64_t runs, errors, samples;
    RAI_Histogram queue_wait;  /* queued -> a worker took it, microseconds */
    RAI_Histogram execution;   /* the backend's time, successful runs only */
    struct RAI_KeySeries *next; /* hash chain */
} RAI_KeySeries;

/* What a model or script holds: its series and the raw key it was linked
 * under (a RENAME shows as a read under another name). */
typedef struct {
    RAI_KeySeries *series;
    char *key;
    size_t keylen;
} RAI_KeyLink;

/* Links to the series of `key` with these labels, unless already linked
 * under that key. Main thread (or a type callback Redis runs there). */
void RAI_KeyLinkTo(RAI_KeyLink *link, RAI_SeriesKind kind, const char *key, size_t keylen,
                   const char *backend, const char *device, const char *tag);
/* When the model or script is freed (any thread). */
void RAI_KeyLinkDrop(RAI_KeyLink *link);

/* One run as AI.INFO counts it. */
typedef struct {
    int failed;
    int started;            /* a worker took it: the two durations mean something */
    uint64_t queue_wait_us; /* queued -> started */
    uint64_t execution_us;  /* backend time (the whole batch's) */
    long long samples;      /* dim 0 of the first output (models) */
} RAI_RunRecord;

void RAI_KeySeriesCountRun(RAI_KeySeries *s, const RAI_RunRecord *run);
/* A run that counts as a call only (AI.INFO's CALLS, nothing else). */
void RAI_KeySeriesCountCall(RAI_KeySeries *s);

/* Every series, each retained so it outlives a concurrent DEL while a
 * scrape formats it (any thread). */
typedef struct {
    RAI_KeySeries **series;
    size_t n;
} RAI_KeySeriesList;

void RAI_KeySeriesListTake(RAI_KeySeriesList *list);
void RAI_KeySeriesListDrop(RAI_KeySeriesList *list);

/* Per-key series in use (the `other` series not counted) and keys folded so far. */
void RAI_KeyMetricsFigures(size_t *keys, uint64_t *folded);

#endif
