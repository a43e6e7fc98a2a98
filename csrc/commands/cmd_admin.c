/* cmd_admin.c -- AI.CONFIG, AI.INFO, AI._MODELSCAN and AI._SCRIPTSCAN.
 *
 * LOADBACKEND imports a framework (seconds for TensorFlow), so it runs on a
 * short-lived thread while the client, not the server, waits. The library
 * path it names is RedisAI's and is only logged.
 *
 * AI.CONFIG's setters are refused to users who may not run CONFIG SET: they
 * change settings of the whole node, as CONFIG SET does, and load no code
 * from a path (LOADBACKEND imports a framework installed in the module's
 * venv), so MODULE LOAD, which AI.FUNCTION LOAD asks for, would be too much. */
#include "commands/cmd_admin.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "types/backends.h"
#include "types/config.h"
#include "base/log.h"
#include "commands/parse.h"
#include "python/py_runtime.h"
#include "exec/infer_cache.h"
#include "exec/redis_call.h"
#include "exec/session_budget.h"
#include "exec/sync_run.h"
#include "types/type_model.h"
#include "types/type_script.h"

#define ERR_IN_TRANSACTION "ERR Cannot run RedisAI command within a transaction or a LUA script"
#define ERR_LOADING_BACKEND "ERR error loading backend"
#define ERR_NO_CONFIG_SET                                                                    \
    "NOPERM this user has no permissions to change AI.CONFIG settings (that needs the right " \
    "to run CONFIG SET)"

typedef struct {
    RedisModuleBlockedClient *bc;
    RAI_Backend backend;
    int ok;
    char version[128];
    char err[1024];
} BackendLoadJob;

int RAI_ClientCannotBlock(RedisModuleCtx *ctx) {
    int flags = RedisModule_GetContextFlags(ctx);
    return flags & (REDISMODULE_CTX_FLAGS_MULTI | REDISMODULE_CTX_FLAGS_LUA |
                    REDISMODULE_CTX_FLAGS_DENY_BLOCKING);
}

int RAI_RefuseIfCannotWait(RedisModuleCtx *ctx) {
    if (!RAI_ClientCannotBlock(ctx) || RAI_SyncRunAllowed()) return 0;
    RedisModule_ReplyWithError(ctx, ERR_IN_TRANSACTION);
    return 1;
}

static void *BackendLoadThread(void *arg) {
    BackendLoadJob *job = arg;
    job->ok = RAI_PyLoadBackend(job->backend, job->version, sizeof(job->version), job->err,
                                sizeof(job->err)) == 0;
    RedisModule_UnblockClient(job->bc, job);
    return NULL;
}

/* Main thread: record the backend as loaded, or report why it is not. */
static int BackendLoad_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    BackendLoadJob *job = RedisModule_GetBlockedClientPrivateData(ctx);
    if (!job->ok) {
        RAI_LOG_WARNING("%s", job->err);
        return RedisModule_ReplyWithError(ctx, ERR_LOADING_BACKEND);
    }
    if (RAI_BackendVersion(job->backend) != NULL) {
        return RedisModule_ReplyWithError(ctx, ERR_LOADING_BACKEND); /* a concurrent load won */
    }
    RAI_BackendSetLoaded(job->backend, job->version);
    RAI_LOG_NOTICE("backend %s loaded (version %s)", RAI_BackendName(job->backend), job->version);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static void BackendLoad_Free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RedisModule_Free(privdata);
}

/* AI.CONFIG LOADBACKEND <TF|TFLITE|TORCH|ONNX> <path> */
static int ConfigLoadBackend(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 4) return RAI_ReplyWrongArity(ctx, argv[0]);
    RAI_Backend backend;
    const char *err = RAI_ParseBackend(argv[2], &backend);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    if (RAI_BackendVersion(backend) != NULL) {
        RAI_LOG_VERBOSE("backend %s is already loaded", RAI_BackendName(backend));
        return RedisModule_ReplyWithError(ctx, ERR_LOADING_BACKEND);
    }
    if (RAI_ClientCannotBlock(ctx)) return RedisModule_ReplyWithError(ctx, ERR_IN_TRANSACTION);
    RAI_BackendLogIgnoredPath("AI.CONFIG LOADBACKEND", backend,
                              RedisModule_StringPtrLen(argv[3], NULL), RAI_Cfg.backends_path);

    BackendLoadJob *job = RedisModule_Calloc(1, sizeof(*job));
    job->backend = backend;
    job->bc = RedisModule_BlockClient(ctx, BackendLoad_Reply, NULL, BackendLoad_Free, 0);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, BackendLoadThread, job) != 0) {
        job->ok = 0;
        snprintf(job->err, sizeof(job->err), "cannot start a thread to load the backend");
        RedisModule_UnblockClient(job->bc, job);
    }
    pthread_attr_destroy(&attr);
    return REDISMODULE_OK;
}

/* AI.CONFIG GET <BACKENDSPATH|MODEL_CHUNK_SIZE> */
static int ConfigGet(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RAI_ArgIs(argv[2], "BACKENDSPATH"))
        return RedisModule_ReplyWithStringBuffer(ctx, RAI_Cfg.backends_path,
                                                 strlen(RAI_Cfg.backends_path));
    if (RAI_ArgIs(argv[2], "MODEL_CHUNK_SIZE"))
        return RedisModule_ReplyWithLongLong(ctx, RAI_Cfg.model_chunk_size);
    if (RAI_ArgIs(argv[2], "CACHE_MEMORY")) return RedisModule_ReplyWithLongLong(ctx, RAI_Cfg.cache_memory);
    if (RAI_ArgIs(argv[2], "MODEL_SESSIONS_MEMORY"))
        return RedisModule_ReplyWithLongLong(ctx, RAI_Cfg.model_sessions_memory);
    if (RAI_ArgIs(argv[2], "MODEL_SESSIONS_MAX"))
        return RedisModule_ReplyWithLongLong(ctx, RAI_Cfg.model_sessions_max);
    if (RAI_ArgIs(argv[2], "WORKER_SPIN_US"))
        return RedisModule_ReplyWithLongLong(ctx, (long long)RAI_WorkerSpinUs());
    return RedisModule_ReplyWithNull(ctx);
}

/* AI.CONFIG CACHE_MEMORY <bytes>: the inference cache's budget, applied at
 * once (entries past it are evicted; 0 empties and turns off the cache). */
static int ConfigCacheMemory(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_ReplyWithError(ctx, "ERR CACHE_MEMORY: missing number of bytes");
    const char *err = RAI_ConfigSetCacheMemory(argv[2]);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    RAI_CacheBudgetChanged();
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* AI.CONFIG MODEL_SESSIONS_MEMORY <bytes> | MODEL_SESSIONS_MAX <count>: a
 * smaller budget releases the least recently used sessions at once (on the
 * loader); a larger one lets more stay loaded from the next load on. */
static int ConfigSessionBudget(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    int memory = RAI_ArgIs(argv[1], "MODEL_SESSIONS_MEMORY");
    if (argc != 3)
        return RedisModule_ReplyWithError(ctx, memory ? "ERR MODEL_SESSIONS_MEMORY: missing value"
                                                      : "ERR MODEL_SESSIONS_MAX: missing value");
    const char *err = memory ? RAI_ConfigSetSessionsMemory(argv[2]) : RAI_ConfigSetSessionsMax(argv[2]);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    RAI_SessionSetBudget(RAI_Cfg.model_sessions_memory, RAI_Cfg.model_sessions_max);
    RAI_SessionBudgetChanged();
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* AI.CONFIG BACKENDSPATH <path> | LOADBACKEND <backend> <path> |
 *           MODEL_CHUNK_SIZE <bytes> | CACHE_MEMORY <bytes> | CACHE_FLUSH |
 *           MODEL_SESSIONS_MEMORY <bytes> | MODEL_SESSIONS_MAX <count> |
 *           WORKER_SPIN_US <microseconds> | GET <name> */
int RAI_Config_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    RedisModuleString *sub = argv[1];
    if (RAI_ArgIs(sub, "GET")) return ConfigGet(ctx, argv, argc);
    /* Every other form changes the node for all its users, as CONFIG SET
     * does; Redis 7.0 cannot put AI.CONFIG in @admin, so we ask ourselves. */
    if (!RAI_CallerMayRun(ctx, "CONFIG", "SET")) return RedisModule_ReplyWithError(ctx, ERR_NO_CONFIG_SET);
    if (RAI_ArgIs(sub, "LOADBACKEND")) return ConfigLoadBackend(ctx, argv, argc);
    if (RAI_ArgIs(sub, "BACKENDSPATH")) {
        if (argc < 3) return RedisModule_ReplyWithError(ctx, "ERR BACKENDSPATH: missing path argument");
        RAI_ConfigSetBackendsPath(argv[2]);
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    if (RAI_ArgIs(sub, "MODEL_CHUNK_SIZE")) {
        if (argc < 3) return RedisModule_ReplyWithError(ctx, "ERR MODEL_CHUNK_SIZE: missing chunk size");
        const char *err = RAI_ConfigSetChunkSize(argv[2]);
        if (err) return RedisModule_ReplyWithError(ctx, err);
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    if (RAI_ArgIs(sub, "CACHE_MEMORY")) return ConfigCacheMemory(ctx, argv, argc);
    if (RAI_ArgIs(sub, "CACHE_FLUSH")) {
        RAI_CacheFlush();
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    if (RAI_ArgIs(sub, "MODEL_SESSIONS_MEMORY") || RAI_ArgIs(sub, "MODEL_SESSIONS_MAX"))
        return ConfigSessionBudget(ctx, argv, argc);
    if (RAI_ArgIs(sub, "WORKER_SPIN_US")) {
        if (argc != 3) return RedisModule_ReplyWithError(ctx, "ERR WORKER_SPIN_US: missing value");
        const char *err = RAI_ConfigSetWorkerSpin(argv[2]);
        if (err) return RedisModule_ReplyWithError(ctx, err);
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    return RedisModule_ReplyWithError(ctx, "ERR unsupported subcommand");
}

/* ------------------------------------------------------------- scan, info */

typedef struct {
    RedisModuleType *type;
    RedisModuleString **keys;
    const char **tags;
    size_t n, cap;
} KeyList;

static const char *TagOf(RedisModuleType *type, const void *value) {
    return type == RAI_ModelType ? ((const RAI_Model *)value)->tag : ((const RAI_Script *)value)->tag;
}

static void CollectKey(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleKey *key,
                       void *privdata) {
    (void)ctx;
    KeyList *list = privdata;
    if (key == NULL || RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_MODULE ||
        RedisModule_ModuleTypeGetType(key) != list->type)
        return;
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 16;
        list->keys = RedisModule_Realloc(list->keys, sizeof(*list->keys) * list->cap);
        list->tags = RedisModule_Realloc(list->tags, sizeof(*list->tags) * list->cap);
    }
    RedisModule_RetainString(NULL, keyname);
    list->keys[list->n] = keyname;
    list->tags[list->n++] = TagOf(list->type, RedisModule_ModuleTypeGetValue(key));
}

/* [[key, tag], ...] of every key of one type, found by scanning the keyspace. */
static int ReplyWithScan(RedisModuleCtx *ctx, RedisModuleType *type) {
    KeyList list = {.type = type};
    RedisModuleScanCursor *cursor = RedisModule_ScanCursorCreate();
    while (RedisModule_Scan(ctx, cursor, CollectKey, &list)) {
    }
    RedisModule_ScanCursorDestroy(cursor);
    RedisModule_ReplyWithArray(ctx, (long)list.n);
    for (size_t i = 0; i < list.n; i++) {
        RedisModule_ReplyWithArray(ctx, 2);
        RedisModule_ReplyWithString(ctx, list.keys[i]);
        RedisModule_ReplyWithStringBuffer(ctx, list.tags[i], strlen(list.tags[i]));
        RedisModule_FreeString(NULL, list.keys[i]);
    }
    RedisModule_Free(list.keys);
    RedisModule_Free(list.tags);
    return REDISMODULE_OK;
}

/* AI._MODELSCAN */
int RAI_ModelScan_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 1) return RAI_ReplyWrongArity(ctx, argv[0]);
    return ReplyWithScan(ctx, RAI_ModelType);
}

/* AI._SCRIPTSCAN */
int RAI_ScriptScan_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 1) return RAI_ReplyWrongArity(ctx, argv[0]);
    return ReplyWithScan(ctx, RAI_ScriptType);
}

/* `cached`: the key's model was stored with CACHE, and its cache counters
 * follow RedisAI's fields; `m`: AI.INFO key SESSION, and the model's loaded
 * session follows (other keys get RedisAI's reply unchanged). */
/* A model's loaded session (exec/session_budget.h): 4 pairs after RedisAI's 9. */
static void ReplyWithSessionInfo(RedisModuleCtx *ctx, const RAI_Model *m) {
    size_t bytes = __atomic_load_n(&m->session_bytes, __ATOMIC_RELAXED);
    RedisModule_ReplyWithSimpleString(ctx, "session_state");
    RedisModule_ReplyWithSimpleString(ctx, RAI_SessionStateName(m));
    RedisModule_ReplyWithSimpleString(ctx, "session_loaded");
    RedisModule_ReplyWithLongLong(ctx, m->session_state == RAI_SESSION_READY);
    RedisModule_ReplyWithSimpleString(ctx, "session_loads");
    RedisModule_ReplyWithLongLong(ctx, (long long)m->session_loads);
    RedisModule_ReplyWithSimpleString(ctx, "session_bytes");
    RedisModule_ReplyWithLongLong(ctx, (long long)bytes);
}

static void ReplyWithRunInfo(RedisModuleCtx *ctx, RedisModuleString *keyname, const char *type,
                             const char *backend, const char *device, const char *tag,
                             const RAI_RunStats *stats, long long samples, int cached,
                             const RAI_Model *m) {
    RedisModule_ReplyWithArray(ctx, 18 + (cached ? 4 : 0) + (m ? 8 : 0));
    RedisModule_ReplyWithSimpleString(ctx, "key");
    RedisModule_ReplyWithString(ctx, keyname);
    RedisModule_ReplyWithSimpleString(ctx, "type");
    RedisModule_ReplyWithSimpleString(ctx, type);
    RedisModule_ReplyWithSimpleString(ctx, "backend");
    RedisModule_ReplyWithSimpleString(ctx, backend);
    RedisModule_ReplyWithSimpleString(ctx, "device");
    RedisModule_ReplyWithStringBuffer(ctx, device, strlen(device));
    RedisModule_ReplyWithSimpleString(ctx, "tag");
    RedisModule_ReplyWithStringBuffer(ctx, tag, strlen(tag));
    RedisModule_ReplyWithSimpleString(ctx, "duration");
    RedisModule_ReplyWithLongLong(ctx, stats->duration_us);
    RedisModule_ReplyWithSimpleString(ctx, "samples");
    RedisModule_ReplyWithLongLong(ctx, samples);
    RedisModule_ReplyWithSimpleString(ctx, "calls");
    RedisModule_ReplyWithLongLong(ctx, stats->calls);
    RedisModule_ReplyWithSimpleString(ctx, "errors");
    RedisModule_ReplyWithLongLong(ctx, stats->errors);
    if (cached) {
        RedisModule_ReplyWithSimpleString(ctx, "cache_hits");
        RedisModule_ReplyWithLongLong(ctx, stats->cache_hits);
        RedisModule_ReplyWithSimpleString(ctx, "cache_misses");
        RedisModule_ReplyWithLongLong(ctx, stats->cache_misses);
    }
    if (m) ReplyWithSessionInfo(ctx, m);
}

/* AI.INFO key [RESETSTAT | SESSION] */
int RAI_Info_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ);
    RedisModuleType *type = RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_MODULE
                                ? RedisModule_ModuleTypeGetType(key)
                                : NULL;
    void *value = type ? RedisModule_ModuleTypeGetValue(key) : NULL;
    RedisModule_CloseKey(key);
    if (type != RAI_ModelType && type != RAI_ScriptType)
        return RedisModule_ReplyWithError(ctx, "ERR cannot find run info for key");
    RAI_Model *m = type == RAI_ModelType ? value : NULL;
    RAI_Script *s = type == RAI_ScriptType ? value : NULL;
    RAI_RunStats *stats = m ? &m->stats : &s->stats;
    if (argc == 3 && RAI_ArgIs(argv[2], "RESETSTAT")) {
        memset(stats, 0, sizeof(*stats));
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    /* SESSION (ours) adds the loaded-session pairs; without it the reply is
     * RedisAI's 9 pairs exactly, which clients and tests count on. */
    int with_session = argc == 3 && RAI_ArgIs(argv[2], "SESSION");
    if (m)
        ReplyWithRunInfo(ctx, argv[1], "MODEL", RAI_BackendName(m->backend), m->device, m->tag, stats,
                         stats->samples, m->cache, with_session ? m : NULL);
    else /* scripts report no sample count */
        ReplyWithRunInfo(ctx, argv[1], "SCRIPT", "TORCH", s->device, s->tag, stats, -1, 0, NULL);
    return REDISMODULE_OK;
}
