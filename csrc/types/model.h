/* model.h -- a stored model: the original blob plus its metadata.
 *
 * The backend session lives in Python's session cache under `id`, made on a
 * worker or loader thread from the blob; the model keeps only an opaque
 * handle to the runner Python prepared for it. When the last reference
 * goes, the id and the handle are posted for the loader to drop (a free may
 * happen on the main thread, which must not take the GIL). Refcounted: a job
 * keeps the model it runs even if the key is overwritten or deleted
 * meanwhile. Under a loaded-session budget the session may be released
 * while the model stays (its state, pins and estimated bytes are below,
 * kept by exec/session_budget.c). */
#ifndef RAI_MODEL_H
#define RAI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "types/backends.h"
#include "types/key_metrics.h"
#include "rm_api.h"
#include "types/stats.h"

struct RAI_RunQueue;
struct RAI_Job;

/* Whether a model's backend session is loaded (session_budget.h). A model
 * read from an RDB, the AOF's replay aside, starts evicted: its first run loads it. */
typedef enum {
    RAI_SESSION_EVICTED = 0,
    RAI_SESSION_LOADING,
    RAI_SESSION_READY,
    RAI_SESSION_FAILED,
} RAI_SessionState;

typedef struct RAI_Model {
    int refcount;
    uint64_t id; /* key of the backend session in Python's cache */
    RAI_Backend backend;
    char *device; /* as the client gave it */
    char *tag;
    long long batchsize, minbatchsize, minbatchtimeout;
    int ninputs, noutputs; /* -1 until known (a model stored without a session yet) */
    int names_asked;       /* a worker already asked its session for unknown names */
    char **inputs, **outputs;
    char *blob;
    size_t bloblen;
    int cache;                   /* stored with CACHE: runs are answered from the inference cache */
    long long cache_ttl_ms;      /* CACHE TTL: how long an entry serves (ms); 0: until evicted */
    int unkeyed;                 /* no key holds it any more: its results are not cached (main thread) */
    RAI_RunStats stats;          /* main thread only */
    RAI_KeyLink metrics;         /* the key series its runs count to (main thread) */
    struct RAI_RunQueue *queue;  /* the queue of its device */
    /* What Python prepared to run this model (a PyObject *, owned): set
     * once and read by threads holding the GIL; posted with the id when
     * the model is released. NULL until the first load or run. */
    void *py_session;

    /* The loaded-session budget (session_budget.c), under its lock unless said. */
    RAI_SessionState session_state;
    int pins;                   /* queued or running jobs that need the session (atomic) */
    size_t session_bytes;       /* estimate while loaded, else 0 (atomic: MEMORY USAGE reads it) */
    long long session_rss_delta; /* RSS change measured around its last load */
    uint64_t session_loads;     /* times its session was made */
    int session_releasing;      /* the loader is releasing it as a victim */
    int in_lru;
    struct RAI_Model *lru_prev, *lru_next; /* prev: more recently used */
    struct RAI_Job *parked, *parked_tail;  /* runs waiting for its load */
    long long warmup;           /* WARMUP n: synthetic runs after each load */
} RAI_Model;

/* The metadata a client gives at store time (names: TF only). */
typedef struct {
    RAI_Backend backend;
    const char *device;
    const char *tag;
    long long batchsize, minbatchsize, minbatchtimeout;
    int ninputs, noutputs; /* -1: not given */
    const char **inputs, **outputs;
    int cache;             /* CACHE given */
    long long cache_ttl_ms; /* its TTL; 0: none */
    long long warmup; /* WARMUP n (0: none) */
} RAI_ModelMeta;

/* Takes ownership of blob (RedisModule_Alloc'd). Names are copied. */
RAI_Model *RAI_ModelNew(const RAI_ModelMeta *meta, char *blob, size_t bloblen);
/* Fills a model made without a blob from the BLOB chunks of its command
 * (retained strings: this may run on the loader thread). */
void RAI_ModelJoinBlob(RAI_Model *m, RedisModuleString **chunks, int n);

void RAI_ModelSetNames(RAI_Model *m, int ninputs, const char **inputs, int noutputs,
                       const char **outputs);
RAI_Model *RAI_ModelRetain(RAI_Model *m);
void RAI_ModelRelease(RAI_Model *m);
size_t RAI_ModelMemUsage(const RAI_Model *m);

/* Chunking of the blob for MODELGET, RDB and AOF, RedisAI's way: len/size+1
 * chunks, the last holding len%size bytes (so an exact multiple ends with an
 * empty chunk). */
size_t RAI_ModelChunkCount(const RAI_Model *m, size_t chunk_size);
size_t RAI_ModelChunkLen(const RAI_Model *m, size_t chunk_size, size_t i);

/* A fresh key for Python's session cache (models and scripts share them). */
uint64_t RAI_NextSessionId(void);

/* The Python session of a released model or script cannot be freed where the
 * release happens (maybe the main thread, which must not take the GIL), so
 * its id, with the model's Python handle if it has one (py_session), goes
 * on a list for the loader to drain. Thread-safe; wakes the drain when the
 * list was empty. */
void RAI_PostDroppedSession(uint64_t id);
void RAI_PostDroppedSessionHandle(uint64_t id, void *py_handle);

/* Ids (and handles, NULL where none) of sessions whose model or script is
 * gone, for the loader to drop. Thread-safe. Returns how many were copied
 * into ids and handles (at most max). */
size_t RAI_TakeDroppedSessions(uint64_t *ids, void **handles, size_t max);

/* Called (on whichever thread released the model, without any lock of this
 * file held) when the first session lands on an empty drop list: it must
 * only schedule the drain on the loader thread, never take the GIL or wait.
 * Registered once at start-up, before any model exists. */
typedef void (*RAI_SessionDropWaker)(void);
void RAI_SetSessionDropWaker(RAI_SessionDropWaker wake);

/* Called when a key lets go of its model (overwrite, DEL, FLUSHALL, a
 * failed RESTORE...), before the key's reference is released, so the layer
 * above can free what it keeps for that model (its inference cache
 * entries). It may run off the main thread (FLUSHALL ASYNC frees keys on a
 * background thread); the hook checks. Registered once at start-up. */
typedef void (*RAI_ModelUnkeyedHook)(RAI_Model *m);
void RAI_SetModelUnkeyedHook(RAI_ModelUnkeyedHook hook);
void RAI_ModelUnkeyed(RAI_Model *m);
/* ---- loaded-session budget (exec/session_budget.c) ---- */

/* Called from RAI_ModelRelease when a model's last reference went, before
 * it is freed (any thread, no lock of this file held). Registered once at
 * start-up. */
typedef void (*RAI_ModelForgetHook)(RAI_Model *m);
void RAI_SetModelForgetHook(RAI_ModelForgetHook hook);

#endif
