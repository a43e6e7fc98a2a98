/* op_metrics.c -- the counters behind op_metrics.h. */
#include "types/op_metrics.h"

static RAI_OpCounter stores[RAI_STORED_KINDS];
static RAI_OpCounter loads[RAI_BACKEND_COUNT];
static RAI_OpCounter dags;

static void Count(RAI_OpCounter *c, int failed, uint64_t us, int timed) {
    __atomic_add_fetch(&c->total, 1, __ATOMIC_RELAXED);
    if (failed) __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
    else if (timed) RAI_HistogramObserve(&c->seconds, &RAI_LatencyBounds, us);
}

void RAI_OpMetricsCountStore(RAI_StoredKind kind, int failed, uint64_t us) {
    Count(&stores[kind], failed, us, 1);
}

void RAI_OpMetricsCountLoad(RAI_Backend backend, int failed, uint64_t us) {
    Count(&loads[backend], failed, us, 1);
}

void RAI_OpMetricsCountDag(int failed) { Count(&dags, failed, 0, 0); }

const RAI_OpCounter *RAI_OpMetricsStores(RAI_StoredKind kind) { return &stores[kind]; }
const RAI_OpCounter *RAI_OpMetricsLoads(RAI_Backend backend) { return &loads[backend]; }
const RAI_OpCounter *RAI_OpMetricsDags(void) { return &dags; }
