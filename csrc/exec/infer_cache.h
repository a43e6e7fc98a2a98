/* infer_cache.h -- the inference result cache: outputs of earlier runs of a
 * model stored with CACHE, found again by the model and the exact inputs.
 *
 * Key: the model's id (a new RAI_Model, and so a new id, for every store,
 * RESTORE, COPY or load) and, for each input in order, its dtype, shape and
 * bytes, hashed with XXH3-128; a hash match is confirmed by comparing the
 * entry's own input tensors with the request's, so a collision is a miss,
 * never another request's answer. An entry holds its input and output
 * tensors by reference (they are immutable), so an insert and a hit copy no
 * tensor data. Entries live in RedisModule_Alloc memory (Redis counts it)
 * under one budget, CACHE_MEMORY, with LRU eviction; a model's TTL bounds
 * how long an entry serves.
 *
 * Main thread only, except RAI_CacheFigures (any thread: relaxed atomics,
 * for AI.METRICS). Derived state: never saved, never replicated. */
#ifndef RAI_INFER_CACHE_H
#define RAI_INFER_CACHE_H

#include <stdint.h>

#include "types/model.h"
#include "types/tensor.h"

typedef struct {
    uint64_t entries, bytes, budget;
    uint64_t hits, misses, inserts, evictions, expired;
} RAI_CacheFigureSet;

/* Registers the model hook that frees a model's entries when its key lets
 * go of it. Once, at start-up, on the main thread. */
void RAI_CacheStart(void);

/* Whether runs of m go through the cache (CACHE given and a budget set):
 * one branch, no hashing, for every other model. */
int RAI_CacheApplies(const RAI_Model *m);

/* The outputs cached for m on these inputs: returns 1 and fills outputs[0..noutputs)
 * with new references (the caller releases them), counting a hit; or 0,
 * counting a miss. An entry past its TTL is freed and misses. */
int RAI_CacheLookup(RAI_Model *m, int ninputs, RAI_Tensor *const *inputs, int noutputs,
                    RAI_Tensor **outputs);

/* Keeps a finished run's outputs (successful runs only; the caller checks).
 * Takes its own references. Nothing is kept for a model no key holds, for
 * an entry bigger than the budget, or when an equal entry exists already
 * (two identical misses ran at once: the first insert wins). */
void RAI_CacheInsert(RAI_Model *m, int ninputs, RAI_Tensor *const *inputs, int noutputs,
                     RAI_Tensor *const *outputs);

/* Frees every entry (FLUSHALL, FLUSHDB, AI.CONFIG CACHE_FLUSH). */
void RAI_CacheFlush(void);

/* Applies CACHE_MEMORY after AI.CONFIG changed it: evicts down to it (all
 * when 0). */
void RAI_CacheBudgetChanged(void);

void RAI_CacheFigures(RAI_CacheFigureSet *out);

#endif
