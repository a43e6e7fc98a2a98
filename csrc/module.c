/* module.c -- RedisModule_OnLoad: the ordered start-up of the "ai" module.
 *
 * API pointers, then arguments, then Python, then data types, commands,
 * INFO and, if asked for, the /metrics endpoint. Any failure logs one line saying what failed and fails the load;
 * nothing here may crash the server. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "types/backends.h"
#include "commands/cmd_admin.h"
#include "commands/cmd_dag.h"
#include "commands/cmd_function.h"
#include "commands/cmd_readthrough.h"
#include "commands/cmd_metrics.h"
#include "commands/cmd_model.h"
#include "commands/cmd_script.h"
#include "commands/cmd_tensor.h"
#include "commands/command_docs.h"
#include "types/config.h"
#include "commands/info.h"
#include "base/log.h"
#include "python/job_kinds.h"
#include "python/py_fn_runs.h"
#include "python/py_triggers.h"
#include "commands/job_keys.h"
#include "python/py_metrics.h"
#include "python/py_gil.h"
#include "python/py_runtime.h"
#include "exec/infer_cache.h"
#include "exec/sync_run.h"
#include "base/reaper.h"
#include "rm_api.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "types/type_model.h"
#include "types/type_script.h"
#include "types/type_tensor.h"

#define RAI_MIN_REDIS_VERSION 0x00070000 /* key specs need 7.0 */

RedisModuleCtx *RAI_LogCtx = NULL;

static const RedisModuleCommandInfoVersion COMMAND_INFO_VERSION = {
    .version = 1,
    .sizeof_historyentry = sizeof(RedisModuleCommandHistoryEntry),
    .sizeof_keyspec = sizeof(RedisModuleCommandKeySpec),
    .sizeof_arg = sizeof(RedisModuleCommandArg),
};

typedef struct {
    const char *name;
    RedisModuleCmdFunc handler;
    const char *flags;
    int firstkey, lastkey, keystep;
    const RedisModuleCommandKeySpec *key_specs; /* zero-terminated; NULL: none declared */
    const char *acl_categories;                 /* Redis >= 7.2 only */
} CommandSpec;

#define KEY_AT(at, key_flags)                                                               \
    {.flags = (key_flags), .begin_search_type = REDISMODULE_KSPEC_BS_INDEX, .bs.index.pos = (at),  \
     .find_keys_type = REDISMODULE_KSPEC_FK_RANGE, .fk.range = {0, 1, 0}}
#define READS (REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS)
#define OVERWRITES (REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE)
#define DELETES (REDISMODULE_CMD_KEY_RM | REDISMODULE_CMD_KEY_DELETE)

static const RedisModuleCommandKeySpec READ_KEY[] = {KEY_AT(1, READS), {0}};
static const RedisModuleCommandKeySpec WRITE_KEY[] = {KEY_AT(1, OVERWRITES), {0}};
static const RedisModuleCommandKeySpec DELETE_KEY[] = {KEY_AT(1, DELETES), {0}};
/* AI.FCALL fn numkeys key ...: Redis FCALL's key spec (a count at 2, then that many keys). */
#define KEYS_COUNTED_AT(at, key_flags)                                                      \
    {.flags = (key_flags), .begin_search_type = REDISMODULE_KSPEC_BS_INDEX, .bs.index.pos = (at), \
     .find_keys_type = REDISMODULE_KSPEC_FK_KEYNUM, .fk.keynum = {0, 1, 1}}
static const RedisModuleCommandKeySpec FCALL_KEYS[] = {
    KEYS_COUNTED_AT(2, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE), {0}};
static const RedisModuleCommandKeySpec FCALL_RO_KEYS[] = {KEYS_COUNTED_AT(2, READS), {0}};
/* Commands marked getkeys-api declare no key spec of their own: their keys
 * follow keywords a key spec cannot pin down (a keyword search would also
 * match an ARGS value, or a key named OUTPUTS). Redis then asks the command
 * itself, which walks the arguments as its parser does and reports each
 * key's access (RO inputs, OW outputs), which ACL checks. */
static const CommandSpec COMMANDS[] = {
    {"ai.tensorset", RAI_TensorSet_RedisCommand, "write deny-oom", 1, 1, 1, WRITE_KEY, "write"},
    {"ai.tensorget", RAI_TensorGet_RedisCommand, "readonly", 1, 1, 1, READ_KEY, "read"},
    {"ai.modelstore", RAI_ModelStore_RedisCommand, "write deny-oom", 1, 1, 1, WRITE_KEY, "write"},
    {"ai.modelset", RAI_ModelSet_RedisCommand, "write deny-oom", 1, 1, 1, WRITE_KEY, "write"},
    {"ai.modelget", RAI_ModelGet_RedisCommand, "readonly", 1, 1, 1, READ_KEY, "read"},
    {"ai.modeldel", RAI_ModelDel_RedisCommand, "write", 1, 1, 1, DELETE_KEY, "write"},
    {"ai.modelexecute", RAI_ModelExecute_RedisCommand, "write deny-oom getkeys-api", 4, 4, 1,
     NULL, "write"},
    {"ai.modelrun", RAI_ModelRun_RedisCommand, "write deny-oom getkeys-api", 3, 3, 1, NULL, "write"},
    {"ai._modelscan", RAI_ModelScan_RedisCommand, "readonly", 0, 0, 0, NULL, "read"},
    {"ai.scriptstore", RAI_ScriptStore_RedisCommand, "write deny-oom", 1, 1, 1, WRITE_KEY, "write"},
    {"ai.scriptset", RAI_ScriptSet_RedisCommand, "write deny-oom", 1, 1, 1, WRITE_KEY, "write"},
    {"ai.scriptget", RAI_ScriptGet_RedisCommand, "readonly", 1, 1, 1, READ_KEY, "read"},
    {"ai.scriptdel", RAI_ScriptDel_RedisCommand, "write", 1, 1, 1, DELETE_KEY, "write"},
    {"ai.scriptexecute", RAI_ScriptExecute_RedisCommand, "write deny-oom getkeys-api", 5, 5, 1,
     NULL, "write"},
    {"ai.scriptrun", RAI_ScriptRun_RedisCommand, "write deny-oom getkeys-api", 4, 4, 1, NULL, "write"},
    {"ai._scriptscan", RAI_ScriptScan_RedisCommand, "readonly", 0, 0, 0, NULL, "read"},
    {"ai.dagexecute", RAI_DagExecute_RedisCommand, "write deny-oom getkeys-api", 3, 3, 1, NULL, "write"},
    {"ai.dagexecute_ro", RAI_DagExecuteRO_RedisCommand, "readonly getkeys-api", 3, 3, 1, NULL, "read"},
    {"ai.dagrun", RAI_DagRun_RedisCommand, "write deny-oom getkeys-api", 3, 3, 1, NULL, "write"},
    {"ai.dagrun_ro", RAI_DagRunRO_RedisCommand, "readonly getkeys-api", 3, 3, 1, NULL, "read"},
    {"ai.info", RAI_Info_RedisCommand, "readonly", 1, 1, 1, READ_KEY, "read"},
    {"ai.config", RAI_Config_RedisCommand, "write", 0, 0, 0, NULL, "admin"},
    /* Lists every model's and script's key: with INFO in @dangerous, not @read. */
    {"ai.metrics", RAI_Metrics_RedisCommand, "readonly", 0, 0, 0, NULL, "dangerous"},
    /* In-server functions. AI.FUNCTION changes code the server runs: on 7.2+
     * @admin as well as the module's own MODULE LOAD check (cmd_function.c).
     * AI.FCALL is refused under OOM per function (allow-oom, no-writes), not
     * by deny-oom; neither runs from Lua (its main thread would wait). Their
     * key spec is Redis FCALL's (for COMMAND INFO and ACL key patterns);
     * getkeys-api as well, because Redis 7.0's cluster routing finds a module
     * command's keys only through it or first/last/step. */
    {"ai.function", RAI_Function_RedisCommand, "may-replicate deny-script", 0, 0, 0, NULL,
     "admin dangerous scripting"},
    {"ai.fcall", RAI_FCall_RedisCommand, "write deny-script no-mandatory-keys getkeys-api", 0, 0, 0, FCALL_KEYS,
     "write scripting"},
    {"ai.fcall_ro", RAI_FCallRO_RedisCommand, "readonly deny-script no-mandatory-keys getkeys-api", 0, 0, 0,
     FCALL_RO_KEYS, "read scripting"},
    /* A GET of a key a read-through trigger watches, rewritten by a command
     * filter (cmd_readthrough.c): in @read, as GET is (7.2+). */
    {"ai._readthrough", RAI_ReadThrough_RedisCommand, "readonly", 1, 1, 1, READ_KEY, "read"},
};

/* Declares, in the one SetCommandInfo call a command may get, where its keys
 * are (so cluster routing, ACL key patterns and COMMAND GETKEYS see them with
 * the right access flags) and its COMMAND DOCS. An arity only where a key
 * spec needs one (AI.FCALL): with one, Redis answers a wrong count itself,
 * before the handlers' RedisAI-worded errors.
 *
 * FCALL's arity (-3) for the commands with its key spec, which needs it:
 * Redis 7.0 reads the count at index 2 having checked only that index 0 is
 * within argv, so a shorter AI.FCALL from a user with key patterns read past
 * argv and crashed the server. Redis then answers a wrong count itself, in
 * FCALL's words. */
static int ArityOf(const CommandSpec *spec) {
    return spec->key_specs == FCALL_KEYS || spec->key_specs == FCALL_RO_KEYS ? -3 : 0;
}

static int SetCommandInfo(RedisModuleCtx *ctx, const CommandSpec *spec, const RAI_CommandDoc *doc) {
    RedisModuleCommand *cmd = RedisModule_GetCommand(ctx, spec->name);
    if (cmd == NULL) return REDISMODULE_ERR;
    RedisModuleCommandInfo info = {
        .version = &COMMAND_INFO_VERSION,
        .summary = doc->summary,
        .complexity = doc->complexity,
        .since = doc->since,
        .history = doc->history,
        .tips = doc->tips,
        .arity = ArityOf(spec),
        .key_specs = spec->key_specs,
        .args = doc->args,
    };
    return RedisModule_SetCommandInfo(cmd, &info);
}

static int RegisterCommands(RedisModuleCtx *ctx) {
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        const CommandSpec *spec = &COMMANDS[i];
        const RAI_CommandDoc *doc = RAI_CommandDocFor(spec->name);
        if (doc == NULL) {
            RAI_LOG_WARNING("command %s has no entry in command_docs.c", spec->name);
            return REDISMODULE_ERR;
        }
        if (RedisModule_CreateCommand(ctx, spec->name, spec->handler, spec->flags, spec->firstkey,
                                      spec->lastkey, spec->keystep) != REDISMODULE_OK) {
            RAI_LOG_WARNING("could not register command %s", spec->name);
            return REDISMODULE_ERR;
        }
        if (SetCommandInfo(ctx, spec, doc) != REDISMODULE_OK) {
            RAI_LOG_WARNING("could not declare the keys and docs of %s", spec->name);
            return REDISMODULE_ERR;
        }
        /* Redis 7.0 has no module ACL categories: there, ACL rules name the
         * AI.* commands; 7.2 and later also put them in @read/@write/@admin. */
        if (RedisModule_SetCommandACLCategories &&
            RedisModule_SetCommandACLCategories(RedisModule_GetCommand(ctx, spec->name),
                                                spec->acl_categories) != REDISMODULE_OK) {
            RAI_LOG_WARNING("could not set the ACL categories of %s", spec->name);
            return REDISMODULE_ERR;
        }
    }
    return REDISMODULE_OK;
}

/* Where this module file lies: the venv and the default BACKENDSPATH are
 * found from it, so no configuration is needed. */
static int ModulePath(char *path, size_t len) {
    Dl_info info;
    char resolved[PATH_MAX];
    if (dladdr((void *)ModulePath, &info) == 0 || info.dli_fname == NULL) return -1;
    if (realpath(info.dli_fname, resolved) == NULL) return -1;
    if (strlen(resolved) >= len) return -1;
    strcpy(path, resolved);
    return 0;
}

/* Backends named in the module arguments load now, before the server
 * serves, so blocking the main thread here stalls nobody. */
static int LoadRequestedBackends(void) {
    for (int b = 0; b < RAI_BACKEND_COUNT; b++) {
        if (RAI_Cfg.backend_paths[b] == NULL) continue;
        char version[128], err[1024];
        if (RAI_PyLoadBackend((RAI_Backend)b, version, sizeof(version), err, sizeof(err)) != 0) {
            RAI_LOG_WARNING("ERR error processing argument: %s %s (%s)",
                            RAI_BackendName((RAI_Backend)b), RAI_Cfg.backend_paths[b], err);
            return REDISMODULE_ERR;
        }
        RAI_BackendSetLoaded((RAI_Backend)b, version);
        RAI_LOG_NOTICE("backend %s loaded (version %s)", RAI_BackendName((RAI_Backend)b), version);
    }
    return REDISMODULE_OK;
}

/* METRICS_PORT: /metrics served from a thread of its own, started last, so
 * nothing can fail the load after it listens. */
static int StartMetricsEndpoint(void) {
    if (RAI_Cfg.metrics_port == 0) return REDISMODULE_OK;
    const char *bind = RAI_Cfg.metrics_bind ? RAI_Cfg.metrics_bind : "127.0.0.1";
    char text[1024];
    if (RAI_PyStartMetricsEndpoint(RAI_Cfg.metrics_port, bind, text, sizeof(text)) != 0) {
        RAI_LOG_WARNING("ERR cannot serve metrics on %s port %lld: %s", bind, RAI_Cfg.metrics_port, text);
        return REDISMODULE_ERR;
    }
    RAI_LOG_NOTICE("metrics served at %s", text);
    return REDISMODULE_OK;
}

static void OnShutdown(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx;
    (void)eid;
    (void)subevent;
    (void)data;
    RAI_RunQueuesShutdown(5000);
}

/* FLUSHALL / FLUSHDB (and the empty-and-reload of DEBUG RELOAD): the cache
 * is emptied before the keys go, on the main thread, whichever db is flushed. */
static void OnFlush(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx;
    (void)eid;
    (void)data;
    if (subevent == REDISMODULE_SUBEVENT_FLUSHDB_START) RAI_CacheFlush();
}

static void LogConfig(const char *module_path) {
    RAI_LOG_NOTICE("redisai_py %s (RedisAI %s command set, git %s) from %s", RAI_VERSION_STRING,
                   RAI_COMPAT_VERSION_STRING, RAI_GIT_SHA, module_path);
    RAI_LOG_NOTICE("config: THREADS_PER_QUEUE=%lld INTRA_OP_PARALLELISM=%lld "
                   "INTER_OP_PARALLELISM=%lld MODEL_CHUNK_SIZE=%lld "
                   "MODEL_EXECUTION_TIMEOUT=%lld BACKEND_MEMORY_LIMIT=%lld CACHE_MEMORY=%lld "
                   "BACKENDSPATH=%s",
                   RAI_Cfg.threads_per_queue, RAI_Cfg.intra_op_parallelism,
                   RAI_Cfg.inter_op_parallelism, RAI_Cfg.model_chunk_size,
                   RAI_Cfg.model_execution_timeout, RAI_Cfg.backend_memory_limit,
                   RAI_Cfg.cache_memory, RAI_Cfg.backends_path);
    RAI_LOG_NOTICE("config: FUNCTION_THREADS=%lld FUNCTION_TIMEOUT=%lld", RAI_Cfg.function_threads,
                   RAI_Cfg.function_timeout);
    RAI_LOG_NOTICE("config: MODEL_SESSIONS_MEMORY=%lld MODEL_SESSIONS_MAX=%lld (0: no limit)",
                   RAI_Cfg.model_sessions_memory, RAI_Cfg.model_sessions_max);
}

__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx,
                                                              RedisModuleString **argv, int argc) {
    const char *missing = NULL;
    if (RAI_ApiInit(ctx, "ai", RAI_COMPAT_VERSION, &missing) != REDISMODULE_OK) {
        if (RedisModule_Log) RedisModule_Log(ctx, "warning", "redisai_py needs %s", missing);
        return REDISMODULE_ERR;
    }
    if (RedisModule_GetServerVersion() < RAI_MIN_REDIS_VERSION) {
        RedisModule_Log(ctx, "warning", "redisai_py requires Redis 7.0 or newer");
        return REDISMODULE_ERR;
    }
    RedisModule_SetModuleOptions(ctx, REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
    RAI_LogCtx = RedisModule_GetDetachedThreadSafeContext(ctx);

    char module_path[PATH_MAX], module_dir[PATH_MAX], err[2048];
    if (ModulePath(module_path, sizeof(module_path)) != 0) {
        RAI_LOG_WARNING("redisai_py cannot find its own module file");
        return REDISMODULE_ERR;
    }
    strcpy(module_dir, module_path);
    *strrchr(module_dir, '/') = '\0';

    if (RAI_ConfigFromArgs(argv, argc, module_dir, err, sizeof(err)) != REDISMODULE_OK) {
        RAI_LOG_WARNING("%s", err);
        return REDISMODULE_ERR;
    }
    LogConfig(module_path);
    RAI_PySetShimExtension(RAI_PyFnRunsAddMethods); /* redisAI runners' run_job, get_script */
    if (RAI_PyStart(module_path, err, sizeof(err)) != 0) {
        RAI_LOG_WARNING("redisai_py cannot start Python: %s", err);
        return REDISMODULE_ERR;
    }
    RAI_LOG_NOTICE("%s", err); /* the interpreter's start-up summary */

    if (LoadRequestedBackends() != REDISMODULE_OK) return REDISMODULE_ERR;
    if (RAI_TensorTypeRegister(ctx) != REDISMODULE_OK || RAI_ModelTypeRegister(ctx) != REDISMODULE_OK ||
        RAI_ScriptTypeRegister(ctx) != REDISMODULE_OK || RAI_FunctionPersistenceRegister(ctx) != REDISMODULE_OK) {
        RAI_LOG_WARNING("could not create the AI data types");
        return REDISMODULE_ERR;
    }
    if (RAI_ReaperStart() != 0) {
        RAI_LOG_WARNING("could not start the reaper thread");
        return REDISMODULE_ERR;
    }
    if (RAI_RunQueueFor("CPU") == NULL || RAI_LoaderQueue() == NULL) {
        RAI_LOG_WARNING("could not start the CPU run queue");
        return REDISMODULE_ERR;
    }
    RAI_SyncRunStart(RAI_LogCtx);
    RAI_JobKindsStart();
    RAI_FnRunsSetCounter(RAI_JobCount); /* redisAI runners' runs count like MODELEXECUTE's */
    RAI_SessionSetBudget(RAI_Cfg.model_sessions_memory, RAI_Cfg.model_sessions_max);
    if (RegisterCommands(ctx) != REDISMODULE_OK) return REDISMODULE_ERR;
    RedisModuleEvent shutdown = {REDISMODULE_EVENT_SHUTDOWN, 1};
    RedisModule_SubscribeToServerEvent(ctx, shutdown, OnShutdown);
    RAI_CacheStart();
    RedisModuleEvent flush = {REDISMODULE_EVENT_FLUSHDB, 1};
    RedisModule_SubscribeToServerEvent(ctx, flush, OnFlush);
    if (RAI_ReadThroughFilterRegister(ctx) != REDISMODULE_OK) {
        RAI_LOG_WARNING("could not register the command filter of read-through triggers");
        return REDISMODULE_ERR;
    }
    if (RAI_TriggersSubscribe(ctx) != REDISMODULE_OK) {
        RAI_LOG_WARNING("could not subscribe to keyspace events for function triggers");
        return REDISMODULE_ERR;
    }
    if (RedisModule_RegisterInfoFunc(ctx, RAI_InfoFunc) != REDISMODULE_OK) {
        RAI_LOG_WARNING("could not register the INFO callback");
        return REDISMODULE_ERR;
    }
    if (StartMetricsEndpoint() != REDISMODULE_OK) return REDISMODULE_ERR;
    RAI_GilCheckMainThreadFromNowOn(); /* the server serves from here on */
    return REDISMODULE_OK;
}
