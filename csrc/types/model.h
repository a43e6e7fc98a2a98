/* model.h -- a stored model: the original blob plus its metadata.
 *
 * The shim never holds a Python object for a model: the backend session
 * lives in Python's session cache under `id`, made on a worker thread from
 * the blob. When the last reference goes, the id is posted for the workers
 * to drop (a free may happen on the main thread, which must not take the
 * GIL). Refcounted: a job keeps the model it runs even if the key is
 * overwritten or deleted meanwhile. */
#ifndef RAI_MODEL_H
#define RAI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "types/backends.h"
#include "types/key_metrics.h"
#include "rm_api.h"
#include "types/stats.h"

struct RAI_RunQueue;

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
    RAI_RunStats stats;          /* main thread only */
    RAI_KeyLink metrics;         /* the key series its runs count to (main thread) */
    struct RAI_RunQueue *queue;  /* the queue of its device */
} RAI_Model;

/* The metadata a client gives at store time (names: TF only). */
typedef struct {
    RAI_Backend backend;
    const char *device;
    const char *tag;
    long long batchsize, minbatchsize, minbatchtimeout;
    int ninputs, noutputs; /* -1: not given */
    const char **inputs, **outputs;
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
 * its id goes on a list that the next worker to run drains. Thread-safe. */
void RAI_PostDroppedSession(uint64_t id);

/* Session ids whose model is gone, for the workers to drop from the cache.
 * Thread-safe. Returns how many ids were copied into out (at most max). */
size_t RAI_TakeDroppedSessions(uint64_t *out, size_t max);

#endif
