/* metrics_text.c -- renders the exposition, family by family: the per-key
 * series of models and scripts, the device queues and their batches, stores
 * and session loads, DAG commands, the inference cache, the loaded-session
 * budget, and the registry's own figures.
 *
 * Every family gets its # HELP and # TYPE lines even when it has no sample
 * yet, so dashboards and alerts see the same names on every server. Names
 * follow Prometheus's conventions: one `redisai_` prefix, base units
 * (seconds), counters ending in _total. */
#include "exec/metrics_text.h"

#include <stdio.h>
#include <string.h>

#include "base/histogram.h"
#include "exec/infer_cache.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "types/backends.h"
#include "types/config.h"
#include "types/key_metrics.h"
#include "types/op_metrics.h"

#define MAX_QUEUES 256

/* ------------------------------------------------------------ primitives */

static void Family(RAI_TextBuf *b, const char *name, const char *type, const char *help) {
    RAI_TextBufAppend(b, "# HELP ", 7);
    RAI_TextBufAppendStr(b, name);
    RAI_TextBufAppendChar(b, ' ');
    RAI_TextBufAppendStr(b, help);
    RAI_TextBufAppend(b, "\n# TYPE ", 8);
    RAI_TextBufAppendStr(b, name);
    RAI_TextBufAppendChar(b, ' ');
    RAI_TextBufAppendStr(b, type);
    RAI_TextBufAppendChar(b, '\n');
}

/* name{labels} (no braces when labels is empty), then a space. */
static void SampleStart(RAI_TextBuf *b, const char *name, const char *suffix, const char *labels,
                        size_t labels_len) {
    RAI_TextBufAppendStr(b, name);
    RAI_TextBufAppendStr(b, suffix);
    if (labels_len > 0) {
        RAI_TextBufAppendChar(b, '{');
        RAI_TextBufAppend(b, labels, labels_len);
        RAI_TextBufAppendChar(b, '}');
    }
    RAI_TextBufAppendChar(b, ' ');
}

static void Sample(RAI_TextBuf *b, const char *name, const char *labels, size_t labels_len, uint64_t value) {
    SampleStart(b, name, "", labels, labels_len);
    RAI_TextBufAppendU64(b, value);
    RAI_TextBufAppendChar(b, '\n');
}

static void SampleMicros(RAI_TextBuf *b, const char *name, const char *labels, size_t labels_len,
                         uint64_t us) {
    SampleStart(b, name, "", labels, labels_len);
    RAI_TextBufAppendMicros(b, us);
    RAI_TextBufAppendChar(b, '\n');
}

static void Bucket(RAI_TextBuf *b, const char *name, const char *labels, size_t labels_len, const char *le,
                   uint64_t count) {
    RAI_TextBufAppendStr(b, name);
    RAI_TextBufAppend(b, "_bucket{", 8);
    if (labels_len > 0) {
        RAI_TextBufAppend(b, labels, labels_len);
        RAI_TextBufAppendChar(b, ',');
    }
    RAI_TextBufAppend(b, "le=\"", 4);
    RAI_TextBufAppendStr(b, le);
    RAI_TextBufAppend(b, "\"} ", 3);
    RAI_TextBufAppendU64(b, count);
    RAI_TextBufAppendChar(b, '\n');
}

/* The buckets (cumulative), _sum and _count of one histogram; _count is the
 * +Inf bucket of the same read, so the two always agree. */
static void Histogram(RAI_TextBuf *b, const char *name, const char *labels, size_t labels_len,
                      const RAI_Histogram *h, const RAI_HistogramBounds *bounds) {
    uint64_t cumulative[RAI_HIST_MAX_BOUNDS + 1], sum;
    RAI_HistogramRead(h, bounds, cumulative, &sum);
    for (size_t i = 0; i < bounds->n; i++) Bucket(b, name, labels, labels_len, bounds->le[i], cumulative[i]);
    Bucket(b, name, labels, labels_len, "+Inf", cumulative[bounds->n]);
    SampleStart(b, name, "_sum", labels, labels_len);
    if (bounds->micros) RAI_TextBufAppendMicros(b, sum);
    else RAI_TextBufAppendU64(b, sum);
    RAI_TextBufAppendChar(b, '\n');
    SampleStart(b, name, "_count", labels, labels_len);
    RAI_TextBufAppendU64(b, cumulative[bounds->n]);
    RAI_TextBufAppendChar(b, '\n');
}

static uint64_t Load(const uint64_t *counter) { return __atomic_load_n(counter, __ATOMIC_RELAXED); }

/* ------------------------------------------------------- per-key series */

typedef enum { RUNS, ERRORS, SAMPLES, QUEUE_WAIT, EXECUTION } KeyFigure;

typedef struct {
    const char *suffix;
    const char *type;
    const char *help;
    KeyFigure figure;
    int models_only;
} KeyFamily;

static const KeyFamily KEY_FAMILIES[] = {
    {"runs_total", "counter", "Runs, failed ones included (AI.INFO CALLS).", RUNS, 0},
    {"errors_total", "counter", "Runs that ended in an error (AI.INFO ERRORS).", ERRORS, 0},
    {"samples_total", "counter", "Samples run: dim 0 of the first output, summed (AI.INFO SAMPLES).",
     SAMPLES, 1},
    {"queue_wait_seconds", "histogram", "Time from queueing a run to a worker taking it.", QUEUE_WAIT, 0},
    {"execution_seconds", "histogram",
     "Backend time of successful runs (a batched run: its batch's); the sum is AI.INFO DURATION.",
     EXECUTION, 0},
};

static void KeySample(RAI_TextBuf *b, const char *name, KeyFigure figure, const RAI_KeySeries *s) {
    switch (figure) {
    case RUNS: Sample(b, name, s->labels, s->labels_len, Load(&s->runs)); return;
    case ERRORS: Sample(b, name, s->labels, s->labels_len, Load(&s->errors)); return;
    case SAMPLES: Sample(b, name, s->labels, s->labels_len, Load(&s->samples)); return;
    case QUEUE_WAIT: Histogram(b, name, s->labels, s->labels_len, &s->queue_wait, &RAI_LatencyBounds); return;
    case EXECUTION: Histogram(b, name, s->labels, s->labels_len, &s->execution, &RAI_LatencyBounds); return;
    }
}

static void RenderKeySeries(RAI_TextBuf *b, const RAI_KeySeriesList *list) {
    static const char *const prefixes[RAI_SERIES_KINDS] = {"redisai_model_", "redisai_script_"};
    for (int kind = 0; kind < RAI_SERIES_KINDS; kind++) {
        for (size_t f = 0; f < sizeof(KEY_FAMILIES) / sizeof(KEY_FAMILIES[0]); f++) {
            const KeyFamily *family = &KEY_FAMILIES[f];
            if (family->models_only && kind != RAI_SERIES_MODEL) continue;
            char name[64];
            snprintf(name, sizeof(name), "%s%s", prefixes[kind], family->suffix);
            Family(b, name, family->type, family->help);
            for (size_t i = 0; i < list->n; i++) {
                if (list->series[i]->kind == (RAI_SeriesKind)kind) KeySample(b, name, family->figure, list->series[i]);
            }
        }
    }
}

static void RenderKeys(RAI_TextBuf *b) {
    RAI_KeySeriesList list;
    RAI_KeySeriesListTake(&list);
    RenderKeySeries(b, &list);
    RAI_KeySeriesListDrop(&list);
}

/* ---------------------------------------------------------- device queues */

typedef enum { LENGTH, WORKERS, RUNNING, BUSY, BATCHED_RUNS, BATCH_SIZE } QueueFigure;

static const struct {
    const char *name, *type, *help;
    QueueFigure figure;
} QUEUE_FAMILIES[] = {
    {"redisai_queue_length", "gauge", "Runs waiting in a device's queue for a worker.", LENGTH},
    {"redisai_queue_workers", "gauge", "Worker threads of a device's queue (THREADS_PER_QUEUE).", WORKERS},
    {"redisai_queue_busy_workers", "gauge", "Workers of a device's queue running a batch now.", RUNNING},
    {"redisai_queue_busy_seconds_total", "counter",
     "Time a device's workers spent running batches, summed over its workers.", BUSY},
    {"redisai_batched_runs_total", "counter", "Runs of models with BATCHSIZE that a device's workers took.",
     BATCHED_RUNS},
    {"redisai_batch_size", "histogram",
     "Batches formed for models with BATCHSIZE: samples (dim 0, summed) per batch.", BATCH_SIZE},
};

typedef struct {
    RAI_QueueFigures figures;
    char *labels; /* device="..." */
    size_t labels_len;
} QueueRow;

static void QueueSample(RAI_TextBuf *b, const char *name, QueueFigure figure, const QueueRow *q) {
    const RAI_QueueFigures *f = &q->figures;
    switch (figure) {
    case LENGTH: Sample(b, name, q->labels, q->labels_len, (uint64_t)f->length); return;
    case WORKERS: Sample(b, name, q->labels, q->labels_len, (uint64_t)f->workers); return;
    case RUNNING: Sample(b, name, q->labels, q->labels_len, (uint64_t)f->running); return;
    case BUSY: SampleMicros(b, name, q->labels, q->labels_len, f->busy_us); return;
    case BATCHED_RUNS: Sample(b, name, q->labels, q->labels_len, f->batched_runs); return;
    case BATCH_SIZE: Histogram(b, name, q->labels, q->labels_len, f->batch_size, &RAI_BatchSizeBounds); return;
    }
}

static void RenderQueues(RAI_TextBuf *b) {
    RAI_QueueFigures *figures = RedisModule_Alloc(sizeof(*figures) * MAX_QUEUES);
    QueueRow *rows = RedisModule_Alloc(sizeof(*rows) * MAX_QUEUES);
    size_t n = RAI_RunQueuesFigures(figures, MAX_QUEUES);
    for (size_t i = 0; i < n; i++) {
        RAI_TextBuf labels = {0};
        RAI_TextBufAppendLabel(&labels, "device", figures[i].name, strlen(figures[i].name));
        rows[i].figures = figures[i];
        rows[i].labels = RAI_TextBufTake(&labels, &rows[i].labels_len);
    }
    for (size_t f = 0; f < sizeof(QUEUE_FAMILIES) / sizeof(QUEUE_FAMILIES[0]); f++) {
        Family(b, QUEUE_FAMILIES[f].name, QUEUE_FAMILIES[f].type, QUEUE_FAMILIES[f].help);
        for (size_t i = 0; i < n; i++) QueueSample(b, QUEUE_FAMILIES[f].name, QUEUE_FAMILIES[f].figure, &rows[i]);
    }
    Family(b, "redisai_loader_queue_length", "gauge", "Stores waiting for the loader to make their session.");
    Sample(b, "redisai_loader_queue_length", "", 0, (uint64_t)RAI_LoaderQueueLength());
    for (size_t i = 0; i < n; i++) RedisModule_Free(rows[i].labels);
    RedisModule_Free(rows);
    RedisModule_Free(figures);
}

/* ------------------------------------------- stores, session loads, DAGs */

/* name_total, name_errors_total and name_seconds of one labelled counter. */
typedef struct {
    const char *total, *errors, *seconds;
    const char *help_total, *help_errors, *help_seconds;
} OpFamilies;

static const OpFamilies STORES = {
    "redisai_stores_total", "redisai_store_errors_total", "redisai_store_seconds",
    "AI.MODELSTORE/SCRIPTSTORE (and the deprecated SETs) that a client waited for.",
    "Stores that replied an error (the backend could not make the session, or the key changed type).",
    "Time from a store's command to its reply: blob join, wait for the loader, session load.",
};

static const OpFamilies LOADS = {
    "redisai_session_loads_total", "redisai_session_load_errors_total", "redisai_session_load_seconds",
    "Backend sessions made for stored models and scripts (stores, replicated and AOF stores, cold runs).",
    "Session loads that failed.",
    "Time to make a backend session (the blob joined and handed to the framework).",
};

typedef struct {
    const RAI_OpCounter *counter;
    const char *labels;
} OpRow;

static void RenderOps(RAI_TextBuf *b, const OpFamilies *names, const OpRow *rows, size_t n) {
    Family(b, names->total, "counter", names->help_total);
    for (size_t i = 0; i < n; i++) Sample(b, names->total, rows[i].labels, strlen(rows[i].labels), Load(&rows[i].counter->total));
    Family(b, names->errors, "counter", names->help_errors);
    for (size_t i = 0; i < n; i++) Sample(b, names->errors, rows[i].labels, strlen(rows[i].labels), Load(&rows[i].counter->errors));
    Family(b, names->seconds, "histogram", names->help_seconds);
    for (size_t i = 0; i < n; i++)
        Histogram(b, names->seconds, rows[i].labels, strlen(rows[i].labels), &rows[i].counter->seconds, &RAI_LatencyBounds);
}

static void RenderStoresAndLoads(RAI_TextBuf *b) {
    const OpRow stores[] = {
        {RAI_OpMetricsStores(RAI_STORED_MODEL), "type=\"model\""},
        {RAI_OpMetricsStores(RAI_STORED_SCRIPT), "type=\"script\""},
    };
    RenderOps(b, &STORES, stores, 2);
    char labels[RAI_BACKEND_COUNT][32];
    OpRow loads[RAI_BACKEND_COUNT];
    for (int i = 0; i < RAI_BACKEND_COUNT; i++) {
        snprintf(labels[i], sizeof(labels[i]), "backend=\"%s\"", RAI_BackendName((RAI_Backend)i));
        loads[i] = (OpRow){RAI_OpMetricsLoads((RAI_Backend)i), labels[i]};
    }
    RenderOps(b, &LOADS, loads, RAI_BACKEND_COUNT);
}

static void RenderDags(RAI_TextBuf *b) {
    const RAI_OpCounter *dags = RAI_OpMetricsDags();
    Family(b, "redisai_dag_runs_total", "counter", "AI.DAGEXECUTE/DAGEXECUTE_RO (and DAGRUN) commands answered.");
    Sample(b, "redisai_dag_runs_total", "", 0, Load(&dags->total));
    Family(b, "redisai_dag_errors_total", "counter", "DAG commands in which an op failed or that timed out.");
    Sample(b, "redisai_dag_errors_total", "", 0, Load(&dags->errors));
}

/* ---------------------------------------------------------- the cache */

static void RenderCache(RAI_TextBuf *b) {
    RAI_CacheFigureSet f;
    RAI_CacheFigures(&f);
    Family(b, "redisai_cache_hits_total", "counter",
           "Model runs answered from the inference cache (no backend run).");
    Sample(b, "redisai_cache_hits_total", "", 0, f.hits);
    Family(b, "redisai_cache_misses_total", "counter",
           "Runs of models stored with CACHE that found no cached result.");
    Sample(b, "redisai_cache_misses_total", "", 0, f.misses);
    Family(b, "redisai_cache_evictions_total", "counter",
           "Cache entries evicted to stay within CACHE_MEMORY.");
    Sample(b, "redisai_cache_evictions_total", "", 0, f.evictions);
    Family(b, "redisai_cache_bytes", "gauge", "Bytes the inference cache's entries count against CACHE_MEMORY.");
    Sample(b, "redisai_cache_bytes", "", 0, f.bytes);
    Family(b, "redisai_cache_entries", "gauge", "Entries in the inference cache.");
    Sample(b, "redisai_cache_entries", "", 0, f.entries);
}

/* ------------------------------------------------ loaded-session budget */

static void OneSample(RAI_TextBuf *b, const char *name, const char *type, const char *help, uint64_t value) {
    Family(b, name, type, help);
    Sample(b, name, "", 0, value);
}

/* docs/model_sessions.md; evictions rising with cold loads is thrashing. */
static void RenderSessions(RAI_TextBuf *b) {
    RAI_SessionFigures f;
    RAI_SessionReadFigures(&f);
    OneSample(b, "redisai_sessions_loaded", "gauge", "Model sessions loaded now.", f.loaded);
    OneSample(b, "redisai_sessions_loaded_bytes", "gauge", "Loaded sessions' estimated bytes (what the budget counts).",
          f.loaded_bytes);
    OneSample(b, "redisai_sessions_budget_bytes", "gauge", "MODEL_SESSIONS_MEMORY (0: no limit).", f.budget_bytes);
    OneSample(b, "redisai_sessions_budget_sessions", "gauge", "MODEL_SESSIONS_MAX (0: no limit).", f.max_sessions);
    OneSample(b, "redisai_sessions_runs_waiting", "gauge", "Runs parked until their model's session loads.",
          f.parked_runs);
    OneSample(b, "redisai_session_cold_loads_total", "counter", "Sessions loaded again for a run of an evicted model.",
          f.cold_loads);
    OneSample(b, "redisai_session_evictions_total", "counter", "Sessions released to keep the budget.", f.evictions);
    Family(b, "redisai_session_cold_load_seconds", "histogram",
           "Time from a cold run's arrival to its session being loaded (the wait on the loader included).");
    Histogram(b, "redisai_session_cold_load_seconds", "", 0, RAI_SessionColdLoadHistogram(), &RAI_LatencyBounds);
}

/* ------------------------------------------------------------- registry */

static void RenderRegistry(RAI_TextBuf *b) {
    size_t keys;
    uint64_t folded;
    RAI_KeyMetricsFigures(&keys, &folded);
    Family(b, "redisai_metrics_keys", "gauge", "Keys with a metric series of their own.");
    Sample(b, "redisai_metrics_keys", "", 0, keys);
    Family(b, "redisai_metrics_keys_limit", "gauge",
           "METRICS_MAX_KEYS: past it, new keys count to the key=\"other\" series.");
    Sample(b, "redisai_metrics_keys_limit", "", 0, (uint64_t)RAI_Cfg.metrics_max_keys);
    Family(b, "redisai_metrics_folded_keys_total", "counter",
           "Keys whose runs went to the key=\"other\" series because METRICS_MAX_KEYS was reached.");
    Sample(b, "redisai_metrics_folded_keys_total", "", 0, folded);
}

/* ----------------------------------------------------------------- render */

/* The sections, in exposition order. The loaded-session budget (issue 11)
 * adds its own between the cache and the registry: sessions loaded, their
 * bytes, evictions and the budget. */
static void (*const SECTIONS[])(RAI_TextBuf *b) = {
    RenderKeys, RenderQueues, RenderStoresAndLoads, RenderDags, RenderCache, RenderSessions,
    RenderRegistry,
};

void RAI_MetricsRender(RAI_TextBuf *buf) {
    for (size_t i = 0; i < sizeof(SECTIONS) / sizeof(SECTIONS[0]); i++) SECTIONS[i](buf);
}
