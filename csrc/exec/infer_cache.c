/* infer_cache.c -- the inference result cache (see infer_cache.h): a hash
 * table of entries chained per bucket, a doubly linked LRU list through the
 * same entries, and the counters INFO, AI.INFO and AI.METRICS report.
 *
 * Everything here runs on the main thread (lookups from command handlers,
 * inserts from reply callbacks), so the table needs no lock; the counters
 * are written with relaxed atomics only because AI.METRICS reads them from
 * another thread. */
#include "exec/infer_cache.h"

#include <pthread.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "rm_api.h"
#include "types/config.h"

typedef struct CacheEntry {
    XXH128_hash_t hash;
    uint64_t model_id;
    uint64_t expires_ms; /* monotonic; 0: no TTL */
    size_t bytes;        /* what it counts against CACHE_MEMORY */
    int ninputs, noutputs;
    RAI_Tensor **tensors; /* inputs, then outputs: references */
    struct CacheEntry *bucket_next;
    struct CacheEntry *lru_prev, *lru_next; /* lru_head: most recently used */
} CacheEntry;

static CacheEntry **buckets;
static size_t nbuckets; /* a power of two, or 0 before the first insert */
static CacheEntry *lru_head, *lru_tail;
static RAI_CacheFigureSet figures;
static pthread_t main_thread;

#define COUNT(field, n) __atomic_add_fetch(&figures.field, (n), __ATOMIC_RELAXED)
#define UNCOUNT(field, n) __atomic_sub_fetch(&figures.field, (n), __ATOMIC_RELAXED)

/* ------------------------------------------------------------ the key */

static uint64_t NowMs(void) {
    return RedisModule_MonotonicMicroseconds() / 1000;
}

/* XXH3-128 over the model id and each input's dtype, shape and bytes: the
 * lengths go in too, so no two different requests hash the same stream. */
static XXH128_hash_t HashRequest(uint64_t model_id, int ninputs, RAI_Tensor *const *inputs) {
    XXH3_state_t state;
    XXH3_128bits_reset(&state);
    XXH3_128bits_update(&state, &model_id, sizeof(model_id));
    XXH3_128bits_update(&state, &ninputs, sizeof(ninputs));
    for (int i = 0; i < ninputs; i++) {
        const RAI_Tensor *t = inputs[i];
        uint64_t head[3] = {(uint64_t)t->dtype, (uint64_t)t->ndims, (uint64_t)t->nbytes};
        XXH3_128bits_update(&state, head, sizeof(head));
        XXH3_128bits_update(&state, t->shape, sizeof(int64_t) * (size_t)t->ndims);
        XXH3_128bits_update(&state, t->data, t->nbytes);
    }
    return XXH3_128bits_digest(&state);
}

static int SameTensor(const RAI_Tensor *a, const RAI_Tensor *b) {
    if (a == b) return 1; /* immutable: the same tensor is the same bytes */
    return a->dtype == b->dtype && a->ndims == b->ndims && a->nbytes == b->nbytes &&
           memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndims) == 0 &&
           memcmp(a->data, b->data, a->nbytes) == 0;
}

/* The hash matched: the entry answers only if its inputs are these. */
static int SameRequest(const CacheEntry *e, uint64_t model_id, int ninputs, RAI_Tensor *const *inputs,
                       int noutputs) {
    if (e->model_id != model_id || e->ninputs != ninputs || e->noutputs != noutputs) return 0;
    for (int i = 0; i < ninputs; i++) {
        if (!SameTensor(e->tensors[i], inputs[i])) return 0;
    }
    return 1;
}

static CacheEntry **BucketOf(XXH128_hash_t hash) {
    return &buckets[hash.low64 & (nbuckets - 1)];
}

static CacheEntry *Find(XXH128_hash_t hash, uint64_t model_id, int ninputs, RAI_Tensor *const *inputs,
                        int noutputs) {
    if (nbuckets == 0) return NULL;
    for (CacheEntry *e = *BucketOf(hash); e; e = e->bucket_next) {
        if (XXH128_isEqual(e->hash, hash) && SameRequest(e, model_id, ninputs, inputs, noutputs)) return e;
    }
    return NULL;
}

/* ---------------------------------------------------------- the lists */

static void LruUnlink(CacheEntry *e) {
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
    else lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
    else lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void LruPushFront(CacheEntry *e) {
    e->lru_next = lru_head;
    if (lru_head) lru_head->lru_prev = e;
    lru_head = e;
    if (lru_tail == NULL) lru_tail = e;
}

static void BucketUnlink(CacheEntry *e) {
    CacheEntry **link = BucketOf(e->hash);
    while (*link != e) link = &(*link)->bucket_next;
    *link = e->bucket_next;
}

/* Doubles the table once it holds more entries than buckets. */
static void Grow(void) {
    size_t size = nbuckets ? nbuckets * 2 : 256;
    CacheEntry **old = buckets;
    size_t oldn = nbuckets;
    buckets = RedisModule_Calloc(size, sizeof(*buckets));
    nbuckets = size;
    for (size_t i = 0; i < oldn; i++) {
        CacheEntry *e = old[i];
        while (e) {
            CacheEntry *next = e->bucket_next;
            CacheEntry **head = BucketOf(e->hash);
            e->bucket_next = *head;
            *head = e;
            e = next;
        }
    }
    RedisModule_Free(old);
}

static void FreeEntry(CacheEntry *e) {
    BucketUnlink(e);
    LruUnlink(e);
    UNCOUNT(entries, 1);
    UNCOUNT(bytes, e->bytes);
    for (int i = 0; i < e->ninputs + e->noutputs; i++) RAI_TensorRelease(e->tensors[i]);
    RedisModule_Free(e->tensors);
    RedisModule_Free(e);
}

/* Frees least recently used entries until `incoming` more bytes fit. */
static void EvictFor(size_t incoming) {
    uint64_t budget = (uint64_t)RAI_Cfg.cache_memory;
    while (lru_tail && __atomic_load_n(&figures.bytes, __ATOMIC_RELAXED) + incoming > budget) {
        FreeEntry(lru_tail);
        COUNT(evictions, 1);
    }
}

/* ------------------------------------------------------------- the API */

int RAI_CacheApplies(const RAI_Model *m) {
    return m->cache && RAI_Cfg.cache_memory > 0;
}

int RAI_CacheLookup(RAI_Model *m, int ninputs, RAI_Tensor *const *inputs, int noutputs,
                    RAI_Tensor **outputs) {
    CacheEntry *e = NULL;
    if (figures.entries > 0) /* an empty cache needs no hash to miss */
        e = Find(HashRequest(m->id, ninputs, inputs), m->id, ninputs, inputs, noutputs);
    if (e && e->expires_ms != 0 && NowMs() >= e->expires_ms) {
        FreeEntry(e);
        COUNT(expired, 1);
        e = NULL;
    }
    if (e == NULL) {
        m->stats.cache_misses++;
        COUNT(misses, 1);
        return 0;
    }
    LruUnlink(e);
    LruPushFront(e);
    for (int i = 0; i < noutputs; i++) outputs[i] = RAI_TensorRetain(e->tensors[ninputs + i]);
    m->stats.cache_hits++;
    COUNT(hits, 1);
    return 1;
}

static size_t EntryBytes(int ninputs, RAI_Tensor *const *inputs, int noutputs, RAI_Tensor *const *outputs) {
    size_t bytes = sizeof(CacheEntry) + sizeof(RAI_Tensor *) * (size_t)(ninputs + noutputs);
    for (int i = 0; i < ninputs; i++) bytes += RAI_TensorMemUsage(inputs[i]);
    for (int i = 0; i < noutputs; i++) bytes += RAI_TensorMemUsage(outputs[i]);
    return bytes;
}

/* TTL from now, saturating (a TTL of 2^63-1 ms never ends). */
static uint64_t ExpiryOf(const RAI_Model *m) {
    if (m->cache_ttl_ms <= 0) return 0;
    uint64_t now = NowMs();
    uint64_t ttl = (uint64_t)m->cache_ttl_ms;
    return ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;
}

void RAI_CacheInsert(RAI_Model *m, int ninputs, RAI_Tensor *const *inputs, int noutputs,
                     RAI_Tensor *const *outputs) {
    if (!RAI_CacheApplies(m) || m->unkeyed || noutputs <= 0) return;
    for (int i = 0; i < noutputs; i++) {
        if (outputs[i] == NULL) return;
    }
    size_t bytes = EntryBytes(ninputs, inputs, noutputs, outputs);
    if (bytes > (uint64_t)RAI_Cfg.cache_memory) return;
    XXH128_hash_t hash = HashRequest(m->id, ninputs, inputs);
    CacheEntry *same = Find(hash, m->id, ninputs, inputs, noutputs);
    if (same) { /* an identical miss ran at the same time and inserted first */
        same->expires_ms = ExpiryOf(m);
        return;
    }
    EvictFor(bytes);
    if (__atomic_load_n(&figures.entries, __ATOMIC_RELAXED) >= nbuckets) Grow();
    CacheEntry *e = RedisModule_Calloc(1, sizeof(*e));
    e->hash = hash;
    e->model_id = m->id;
    e->expires_ms = ExpiryOf(m);
    e->bytes = bytes;
    e->ninputs = ninputs;
    e->noutputs = noutputs;
    e->tensors = RedisModule_Alloc(sizeof(RAI_Tensor *) * (size_t)(ninputs + noutputs));
    for (int i = 0; i < ninputs; i++) e->tensors[i] = RAI_TensorRetain(inputs[i]);
    for (int i = 0; i < noutputs; i++) e->tensors[ninputs + i] = RAI_TensorRetain(outputs[i]);
    CacheEntry **head = BucketOf(hash);
    e->bucket_next = *head;
    *head = e;
    LruPushFront(e);
    COUNT(entries, 1);
    COUNT(bytes, bytes);
    COUNT(inserts, 1);
}

void RAI_CacheFlush(void) {
    while (lru_head) FreeEntry(lru_head);
}

void RAI_CacheBudgetChanged(void) {
    EvictFor(0);
}

/* A key let go of m: no request can name it again, so its entries go now
 * (a walk over all entries, done only for a model stored with CACHE). Off
 * the main thread (FLUSHALL ASYNC's background free) nothing is touched:
 * the flush event already emptied the cache on the main thread. */
static void DropModel(RAI_Model *m) {
    if (!m->cache || !pthread_equal(pthread_self(), main_thread)) return;
    m->unkeyed = 1;
    CacheEntry *e = lru_head;
    while (e) {
        CacheEntry *next = e->lru_next;
        if (e->model_id == m->id) FreeEntry(e);
        e = next;
    }
}

void RAI_CacheStart(void) {
    main_thread = pthread_self();
    RAI_SetModelUnkeyedHook(DropModel);
}

void RAI_CacheFigures(RAI_CacheFigureSet *out) {
    out->entries = __atomic_load_n(&figures.entries, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&figures.bytes, __ATOMIC_RELAXED);
    out->budget = (uint64_t)RAI_Cfg.cache_memory;
    out->hits = __atomic_load_n(&figures.hits, __ATOMIC_RELAXED);
    out->misses = __atomic_load_n(&figures.misses, __ATOMIC_RELAXED);
    out->inserts = __atomic_load_n(&figures.inserts, __ATOMIC_RELAXED);
    out->evictions = __atomic_load_n(&figures.evictions, __ATOMIC_RELAXED);
    out->expired = __atomic_load_n(&figures.expired, __ATOMIC_RELAXED);
}
