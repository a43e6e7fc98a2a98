/* cmd_admin.c -- AI.CONFIG.
 *
 * LOADBACKEND imports a framework (seconds for TensorFlow), so it runs on a
 * short-lived thread while the client, not the server, waits. */
#include "cmd_admin.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backends.h"
#include "config.h"
#include "log.h"
#include "parse.h"
#include "py_runtime.h"

#define ERR_IN_TRANSACTION "ERR Cannot run RedisAI command within a transaction or a LUA script"
#define ERR_LOADING_BACKEND "ERR error loading backend"

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
    return RedisModule_ReplyWithNull(ctx);
}

/* AI.CONFIG BACKENDSPATH <path> | LOADBACKEND <backend> <path> |
 *           MODEL_CHUNK_SIZE <bytes> | GET <name> */
int RAI_Config_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    RedisModuleString *sub = argv[1];
    if (RAI_ArgIs(sub, "LOADBACKEND")) return ConfigLoadBackend(ctx, argv, argc);
    if (RAI_ArgIs(sub, "GET")) return ConfigGet(ctx, argv, argc);
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
    return RedisModule_ReplyWithError(ctx, "ERR unsupported subcommand");
}
