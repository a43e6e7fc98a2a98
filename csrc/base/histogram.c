/* histogram.c -- the bucket layouts and the lock-free add and read. */
#include "base/histogram.h"

const RAI_HistogramBounds RAI_LatencyBounds = {
    .n = 17,
    .bounds = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
               1000000, 2500000, 5000000, 10000000},
    .le = {"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
           "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"},
    .micros = 1,
};

const RAI_HistogramBounds RAI_BatchSizeBounds = {
    .n = 13,
    .bounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096},
    .le = {"1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096"},
    .micros = 0,
};

void RAI_HistogramObserve(RAI_Histogram *h, const RAI_HistogramBounds *b, uint64_t value) {
    size_t i = 0;
    while (i < b->n && value > b->bounds[i]) i++;
    __atomic_add_fetch(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&h->sum, value, __ATOMIC_RELAXED);
}

void RAI_HistogramRead(const RAI_Histogram *h, const RAI_HistogramBounds *b,
                       uint64_t cumulative[RAI_HIST_MAX_BOUNDS + 1], uint64_t *sum) {
    uint64_t total = 0;
    for (size_t i = 0; i <= b->n; i++) {
        total += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        cumulative[i] = total;
    }
    *sum = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
}
