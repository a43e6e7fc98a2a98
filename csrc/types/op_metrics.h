/* op_metrics.h -- module-wide counters of whole operations, for AI.METRICS:
 * MODELSTORE/SCRIPTSTORE as clients see them, backend session loads, and
 * DAG commands. Added to by any thread, read by any thread, lock-free. */
#ifndef RAI_OP_METRICS_H
#define RAI_OP_METRICS_H

#include <stdint.h>

#include "base/histogram.h"
#include "types/backends.h"

typedef struct {
    uint64_t total, errors;
    RAI_Histogram seconds; /* successful ones, microseconds */
} RAI_OpCounter;

typedef enum { RAI_STORED_MODEL, RAI_STORED_SCRIPT, RAI_STORED_KINDS } RAI_StoredKind;

/* A store's reply: from the command to the key swap (blob join, wait for the
 * loader, session load). */
void RAI_OpMetricsCountStore(RAI_StoredKind kind, int failed, uint64_t us);
/* A backend session made for a stored model or script (scripts: TORCH). */
void RAI_OpMetricsCountLoad(RAI_Backend backend, int failed, uint64_t us);
/* A DAG command's reply; failed: an op failed or the DAG timed out. */
void RAI_OpMetricsCountDag(int failed);

const RAI_OpCounter *RAI_OpMetricsStores(RAI_StoredKind kind);
const RAI_OpCounter *RAI_OpMetricsLoads(RAI_Backend backend);
const RAI_OpCounter *RAI_OpMetricsDags(void);

#endif
