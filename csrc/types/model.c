/* model.c -- creating, sharing and releasing stored models. */
#include "types/model.h"

#include <pthread.h>
#include <string.h>

#include "base/reaper.h"
#include "rm_api.h"

static uint64_t next_model_id = 1;

typedef struct {
    uint64_t id;
    void *py_handle;
} DroppedSession;

static pthread_mutex_t dropped_lock = PTHREAD_MUTEX_INITIALIZER;
static DroppedSession *dropped;
static size_t dropped_len, dropped_cap;
static RAI_SessionDropWaker drop_waker;
static RAI_ModelUnkeyedHook unkeyed_hook;
static RAI_ModelForgetHook forget_hook; /* session_budget.c's, set at start-up */

static char **CopyNames(int n, const char **names) {
    if (n <= 0) return NULL;
    char **copy = RedisModule_Alloc(sizeof(char *) * n);
    for (int i = 0; i < n; i++) copy[i] = RedisModule_Strdup(names[i]);
    return copy;
}

static void FreeNames(int n, char **names) {
    for (int i = 0; i < n; i++) RedisModule_Free(names[i]);
    RedisModule_Free(names);
}

RAI_Model *RAI_ModelNew(const RAI_ModelMeta *meta, char *blob, size_t bloblen) {
    RAI_Model *m = RedisModule_Calloc(1, sizeof(*m));
    m->refcount = 1;
    m->id = RAI_NextSessionId();
    m->backend = meta->backend;
    m->device = RedisModule_Strdup(meta->device);
    m->tag = RedisModule_Strdup(meta->tag ? meta->tag : "");
    m->batchsize = meta->batchsize;
    m->minbatchsize = meta->minbatchsize;
    m->minbatchtimeout = meta->minbatchtimeout;
    m->cache = meta->cache;
    m->cache_ttl_ms = meta->cache ? meta->cache_ttl_ms : 0;
    m->warmup = meta->warmup;
    m->ninputs = m->noutputs = -1;
    RAI_ModelSetNames(m, meta->ninputs, meta->inputs, meta->noutputs, meta->outputs);
    m->blob = blob;
    m->bloblen = bloblen;
    return m;
}

void RAI_ModelSetNames(RAI_Model *m, int ninputs, const char **inputs, int noutputs,
                       const char **outputs) {
    /* No model has zero inputs or outputs: zero means the backend cannot
     * tell (a TorchScript forward() returning a list built at run time). */
    if (ninputs > 0) {
        FreeNames(m->ninputs, m->inputs);
        m->inputs = CopyNames(ninputs, inputs);
        m->ninputs = ninputs;
    }
    if (noutputs > 0) {
        FreeNames(m->noutputs, m->outputs);
        m->outputs = CopyNames(noutputs, outputs);
        m->noutputs = noutputs;
    }
}

RAI_Model *RAI_ModelRetain(RAI_Model *m) {
    __atomic_add_fetch(&m->refcount, 1, __ATOMIC_RELAXED);
    return m;
}

uint64_t RAI_NextSessionId(void) {
    return __atomic_fetch_add(&next_model_id, 1, __ATOMIC_RELAXED);
}

void RAI_SetSessionDropWaker(RAI_SessionDropWaker wake) {
    drop_waker = wake;
}

void RAI_SetModelUnkeyedHook(RAI_ModelUnkeyedHook hook) {
    unkeyed_hook = hook;
}

void RAI_ModelUnkeyed(RAI_Model *m) {
    if (unkeyed_hook) unkeyed_hook(m);
}

void RAI_PostDroppedSession(uint64_t id) {
    RAI_PostDroppedSessionHandle(id, NULL);
}

void RAI_PostDroppedSessionHandle(uint64_t id, void *py_handle) {
    pthread_mutex_lock(&dropped_lock);
    if (dropped_len == dropped_cap) {
        dropped_cap = dropped_cap ? dropped_cap * 2 : 16;
        dropped = RedisModule_Realloc(dropped, sizeof(*dropped) * dropped_cap);
    }
    dropped[dropped_len++] = (DroppedSession){id, py_handle};
    int was_empty = dropped_len == 1;
    pthread_mutex_unlock(&dropped_lock);
    /* One wake per batch of releases: the drain takes everything queued by
     * the time it runs, and a post after that finds the list empty again. */
    if (was_empty && drop_waker) drop_waker();
}

size_t RAI_TakeDroppedSessions(uint64_t *ids, void **handles, size_t max) {
    pthread_mutex_lock(&dropped_lock);
    size_t n = dropped_len < max ? dropped_len : max;
    for (size_t i = 0; i < n; i++) {
        ids[i] = dropped[dropped_len - n + i].id;
        handles[i] = dropped[dropped_len - n + i].py_handle;
    }
    dropped_len -= n;
    pthread_mutex_unlock(&dropped_lock);
    return n;
}

void RAI_ModelRelease(RAI_Model *m) {
    if (m == NULL) return;
    if (__atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (forget_hook) forget_hook(m);
    RAI_PostDroppedSessionHandle(m->id, m->py_session);
    RAI_KeyLinkDrop(&m->metrics);
    RedisModule_Free(m->device);
    RedisModule_Free(m->tag);
    FreeNames(m->ninputs, m->inputs);
    FreeNames(m->noutputs, m->outputs);
    /* The last reference often drops on the main thread (overwrite, DEL,
     * FLUSHALL): a big blob is freed by the reaper instead. */
    if (m->bloblen >= RAI_REAP_MIN_BYTES) RAI_Reap(RedisModule_Free, m->blob, 0);
    else RedisModule_Free(m->blob);
    RedisModule_Free(m);
}

size_t RAI_ModelMemUsage(const RAI_Model *m) {
    size_t usage = sizeof(*m) + m->bloblen + strlen(m->device) + strlen(m->tag) + 2;
    /* A loaded session counts too (its estimate, kept in C: no GIL here). */
    usage += __atomic_load_n(&m->session_bytes, __ATOMIC_RELAXED);
    for (int i = 0; i < m->ninputs; i++) usage += sizeof(char *) + strlen(m->inputs[i]) + 1;
    for (int i = 0; i < m->noutputs; i++) usage += sizeof(char *) + strlen(m->outputs[i]) + 1;
    return usage;
}

size_t RAI_ModelChunkCount(const RAI_Model *m, size_t chunk_size) {
    return m->bloblen / chunk_size + 1;
}

size_t RAI_ModelChunkLen(const RAI_Model *m, size_t chunk_size, size_t i) {
    return i + 1 < RAI_ModelChunkCount(m, chunk_size) ? chunk_size : m->bloblen % chunk_size;
}

void RAI_ModelJoinBlob(RAI_Model *m, RedisModuleString **chunks, int n) {
    size_t len = 0, pos = 0;
    for (int i = 0; i < n; i++) {
        size_t clen;
        RedisModule_StringPtrLen(chunks[i], &clen);
        len += clen;
    }
    m->blob = RedisModule_Alloc(len > 0 ? len : 1);
    m->bloblen = len;
    for (int i = 0; i < n; i++) {
        size_t clen;
        const char *c = RedisModule_StringPtrLen(chunks[i], &clen);
        memcpy(m->blob + pos, c, clen);
        pos += clen;
    }
}

/* ---------------------------------------------------- loaded-session budget */

void RAI_SetModelForgetHook(RAI_ModelForgetHook hook) { forget_hook = hook; }
