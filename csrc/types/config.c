/* config.c -- module arguments (`--loadmodule shim.so KEY VALUE ...`) and the
 * settings AI.CONFIG may change at run time. */
#include "types/config.h"

#include <stdio.h>
#include <string.h>

#include "base/args.h"

RAI_Config RAI_Cfg = {
    .threads_per_queue = 1,
    .intra_op_parallelism = 0,
    .inter_op_parallelism = 0,
    .model_chunk_size = 511LL * 1024 * 1024,
    .model_execution_timeout = 5000,
    .backend_memory_limit = 0,
    .backends_path = NULL,
    .backend_paths = {NULL},
    .metrics_port = 0,
    .metrics_bind = NULL, /* 127.0.0.1 unless METRICS_BIND says otherwise */
    .metrics_max_keys = 1000,
    .cache_memory = 64LL * 1024 * 1024,
    .function_threads = 1,
    .function_timeout = 5000, /* Redis's busy-reply-threshold */
    .model_sessions_memory = 0,
    .model_sessions_max = 0,
    .worker_spin_us = 1000,
};

/* An integer argument with a lower bound; 0 when it parses and fits. */
static int ParseBounded(RedisModuleString *value, long long min, long long *out) {
    long long v;
    if (RedisModule_StringToLongLong(value, &v) != REDISMODULE_OK || v < min) return 0;
    *out = v;
    return 1;
}

/* METRICS_PORT: a TCP port, 1 to 65535. */
static int ParsePort(RedisModuleString *value, long long *out) {
    long long port;
    if (!ParseBounded(value, 1, &port) || port > 65535) return 0;
    *out = port;
    return 1;
}

static void SetBackendsPath(const char *path, size_t len) {
    RedisModule_Free(RAI_Cfg.backends_path);
    RAI_Cfg.backends_path = RedisModule_Alloc(len + 1);
    memcpy(RAI_Cfg.backends_path, path, len);
    RAI_Cfg.backends_path[len] = '\0';
}

/* One KEY VALUE pair other than BACKENDSPATH; 0 if either is bad. */
static int ApplyPair(RedisModuleString *key, RedisModuleString *value) {
    RAI_Backend backend;
    if (RAI_ParseBackend(key, &backend) == NULL) {
        RedisModule_Free(RAI_Cfg.backend_paths[backend]); /* named twice: the last one counts */
        RAI_Cfg.backend_paths[backend] = RedisModule_Strdup(RedisModule_StringPtrLen(value, NULL));
        RAI_BackendLogIgnoredPath("module argument", backend, RAI_Cfg.backend_paths[backend],
                                  RAI_Cfg.backends_path);
        return 1;
    }
    if (RAI_ArgIs(key, "THREADS_PER_QUEUE"))
        return ParseBounded(value, 1, &RAI_Cfg.threads_per_queue);
    if (RAI_ArgIs(key, "INTRA_OP_PARALLELISM"))
        return ParseBounded(value, 1, &RAI_Cfg.intra_op_parallelism);
    if (RAI_ArgIs(key, "INTER_OP_PARALLELISM"))
        return ParseBounded(value, 1, &RAI_Cfg.inter_op_parallelism);
    if (RAI_ArgIs(key, "MODEL_CHUNK_SIZE")) return ParseBounded(value, 1, &RAI_Cfg.model_chunk_size);
    if (RAI_ArgIs(key, "MODEL_EXECUTION_TIMEOUT"))
        return ParseBounded(value, 1000, &RAI_Cfg.model_execution_timeout);
    if (RAI_ArgIs(key, "BACKEND_MEMORY_LIMIT"))
        return ParseBounded(value, 1, &RAI_Cfg.backend_memory_limit);
    if (RAI_ArgIs(key, "METRICS_PORT")) return ParsePort(value, &RAI_Cfg.metrics_port);
    if (RAI_ArgIs(key, "METRICS_MAX_KEYS")) return ParseBounded(value, 0, &RAI_Cfg.metrics_max_keys);
    if (RAI_ArgIs(key, "CACHE_MEMORY")) return ParseBounded(value, 0, &RAI_Cfg.cache_memory);
    /* Threads of their own for AI.FCALL callbacks, so a slow function never
     * holds up a model's queue; capped like device queues' count. */
    if (RAI_ArgIs(key, "FUNCTION_THREADS"))
        return ParseBounded(value, 1, &RAI_Cfg.function_threads) && RAI_Cfg.function_threads <= 64;
    if (RAI_ArgIs(key, "FUNCTION_TIMEOUT")) return ParseBounded(value, 0, &RAI_Cfg.function_timeout);
    if (RAI_ArgIs(key, "WORKER_SPIN_US")) return RAI_ConfigSetWorkerSpin(value) == NULL;
    if (RAI_ArgIs(key, "MODEL_SESSIONS_MEMORY"))
        return ParseBounded(value, 0, &RAI_Cfg.model_sessions_memory);
    if (RAI_ArgIs(key, "MODEL_SESSIONS_MAX")) return ParseBounded(value, 0, &RAI_Cfg.model_sessions_max);
    if (RAI_ArgIs(key, "METRICS_BIND")) {
        RedisModule_Free(RAI_Cfg.metrics_bind);
        RAI_Cfg.metrics_bind = RedisModule_Strdup(RedisModule_StringPtrLen(value, NULL));
        return 1;
    }
    return 0;
}

int RAI_ConfigFromArgs(RedisModuleString **argv, int argc, const char *module_dir, char *err,
                       size_t errlen) {
    if (argc % 2 != 0) {
        snprintf(err, errlen,
                 "Even number of arguments provided to module. Please provide arguments as "
                 "KEY VAL pairs");
        return REDISMODULE_ERR;
    }
    char default_path[4096];
    int n = snprintf(default_path, sizeof(default_path), "%s/backends", module_dir);
    SetBackendsPath(default_path, (size_t)n);
    for (int i = 0; i < argc; i += 2) {
        if (!RAI_ArgIs(argv[i], "BACKENDSPATH")) continue;
        size_t len;
        const char *path = RedisModule_StringPtrLen(argv[i + 1], &len);
        SetBackendsPath(path, len);
    }
    for (int i = 0; i < argc; i += 2) {
        if (RAI_ArgIs(argv[i], "BACKENDSPATH") || ApplyPair(argv[i], argv[i + 1])) continue;
        snprintf(err, errlen, "ERR error processing argument: %s %s",
                 RedisModule_StringPtrLen(argv[i], NULL), RedisModule_StringPtrLen(argv[i + 1], NULL));
        return REDISMODULE_ERR;
    }
    return REDISMODULE_OK;
}

const char *RAI_ConfigSetBackendsPath(RedisModuleString *path) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(path, &len);
    SetBackendsPath(s, len);
    return NULL;
}

const char *RAI_ConfigSetChunkSize(RedisModuleString *value) {
    if (!ParseBounded(value, 1, &RAI_Cfg.model_chunk_size))
        return "ERR MODEL_CHUNK_SIZE: invalid chunk size";
    return NULL;
}

/* WORKER_SPIN_US: how long an idle worker polls its queue before it sleeps,
 * 0 (never) to a second. Workers read it on every idle turn. */
const char *RAI_ConfigSetWorkerSpin(RedisModuleString *value) {
    long long us;
    if (!ParseBounded(value, 0, &us) || us > 1000000)
        return "ERR WORKER_SPIN_US: microseconds, 0 to 1000000";
    __atomic_store_n(&RAI_Cfg.worker_spin_us, us, __ATOMIC_RELAXED);
    return NULL;
}

/* CACHE_MEMORY: bytes, 0 (off) or more; the caller evicts down to it. */
const char *RAI_ConfigSetCacheMemory(RedisModuleString *value) {
    if (!ParseBounded(value, 0, &RAI_Cfg.cache_memory))
        return "ERR CACHE_MEMORY: a number of bytes, 0 or more";
    return NULL;
}

/* ------------------------------------------------- loaded-session budget */

const char *RAI_ConfigSetSessionsMemory(RedisModuleString *value) {
    if (!ParseBounded(value, 0, &RAI_Cfg.model_sessions_memory))
        return "ERR MODEL_SESSIONS_MEMORY: expected a number of bytes, 0 (no limit) or more";
    return NULL;
}

const char *RAI_ConfigSetSessionsMax(RedisModuleString *value) {
    if (!ParseBounded(value, 0, &RAI_Cfg.model_sessions_max))
        return "ERR MODEL_SESSIONS_MAX: expected a number of sessions, 0 (no limit) or more";
    return NULL;
}
