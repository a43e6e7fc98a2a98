/* config.h -- load-time module arguments and the AI.CONFIG runtime settings. */
#ifndef RAI_CONFIG_H
#define RAI_CONFIG_H

#include <stdint.h>

#include "types/backends.h"
#include "rm_api.h"

typedef struct {
    long long threads_per_queue;       /* worker threads per device queue */
    long long intra_op_parallelism;    /* 0: the backend's default */
    long long inter_op_parallelism;    /* 0: the backend's default */
    long long model_chunk_size;        /* bytes per MODELGET/RDB/AOF chunk */
    long long model_execution_timeout; /* ms, ONNX runs only */
    long long backend_memory_limit;    /* MB, ONNX only; 0: unlimited */
    char *backends_path;
    char *backend_paths[RAI_BACKEND_COUNT]; /* asked for at load, or NULL */
    long long metrics_port;            /* the /metrics endpoint's TCP port; 0: none */
    char *metrics_bind;                /* the address it listens on */
    long long metrics_max_keys;        /* per-key metric series before keys fold into `other` */
    long long cache_memory;            /* inference cache budget in bytes; 0: cache off */
    long long function_threads;        /* workers of the AI.FCALL queue */
    long long function_timeout;        /* ms a call runs before AI.FUNCTION KILL may stop it */
    /* The loaded-session budget (exec/session_budget.h); 0: no limit. */
    long long model_sessions_memory;   /* bytes of loaded sessions (their estimates) */
    long long model_sessions_max;      /* loaded sessions */
    long long worker_spin_us;          /* an idle worker's poll before it sleeps (exec/run_queue.c) */
} RAI_Config;

extern RAI_Config RAI_Cfg;

/* WORKER_SPIN_US, read by any thread (AI.CONFIG may change it meanwhile). */
static inline uint64_t RAI_WorkerSpinUs(void) {
    return (uint64_t)__atomic_load_n(&RAI_Cfg.worker_spin_us, __ATOMIC_RELAXED);
}

/* Applies `KEY VALUE ...` module arguments: BACKENDSPATH first, the rest in
 * order. On a bad pair writes the log line into err and returns ERR. */
int RAI_ConfigFromArgs(RedisModuleString **argv, int argc, const char *module_dir, char *err,
                       size_t errlen);

/* AI.CONFIG setters; NULL on success, else the reply error. */
const char *RAI_ConfigSetBackendsPath(RedisModuleString *path);
const char *RAI_ConfigSetChunkSize(RedisModuleString *value);
const char *RAI_ConfigSetCacheMemory(RedisModuleString *value);
const char *RAI_ConfigSetWorkerSpin(RedisModuleString *value);

/* AI.CONFIG MODEL_SESSIONS_MEMORY <bytes> / MODEL_SESSIONS_MAX <count>:
 * 0 (no limit) up to 2^63-1; NULL on success, else the reply error. The
 * caller applies the new budget (session_budget.h). */
const char *RAI_ConfigSetSessionsMemory(RedisModuleString *value);
const char *RAI_ConfigSetSessionsMax(RedisModuleString *value);

#endif
