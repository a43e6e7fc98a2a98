/* cmd_function.c -- AI.FUNCTION LOAD / DELETE / LIST / FLUSH / KILL and the
 * libraries' RDB persistence.
 *
 * A library's source is checked here (its `#!python name=<lib>` line), then
 * imported on the loader thread while its client waits; the main thread
 * never runs Python. Where nobody can be blocked (MULTI, a command from our
 * primary, AOF replay, an RDB's aux data) the main thread waits for the
 * loader without the GIL instead, so a library is in place before the next
 * command, and before the first client at start-up. Only a successful import
 * whose functions clash with no other library is installed and replicated
 * (as the LOAD command itself); a failure leaves the registry as it was.
 *
 * AI.FUNCTION KILL stops calls running past FUNCTION_TIMEOUT.
 *
 * Loading code is as powerful as MODULE LOAD, so LOAD, DELETE, FLUSH and KILL are
 * refused to users who may not run MODULE LOAD (Redis 7.0 cannot put module
 * commands in ACL categories; on 7.2+ AI.FUNCTION is also in @admin). */
#include "commands/cmd_function.h"

#include <stdio.h>
#include <string.h>

#include "base/args.h"
#include "base/keyslot.h"
#include "base/log.h"
#include "commands/cmd_admin.h"
#include "commands/job_keys.h"
#include "exec/redis_call.h"
#include "exec/run_queue.h"
#include "exec/sync_run.h"
#include "python/job_kinds.h"
#include "python/py_functions.h"
#include "types/config.h"
#include "types/function_lib.h"

#define ERR_NO_ADMIN                                                                                  \
    "NOPERM this user has no permissions to run AI.FUNCTION LOAD, DELETE, FLUSH or KILL (they need the " \
    "right to run MODULE LOAD)"
#define ERR_READONLY "READONLY You can't write against a read only replica."
#define ERR_CANNOT_WAIT "ERR AI.FUNCTION LOAD cannot run inside a function's execute() or a script"
#define ERR_BAD_NAME                                                                                   \
    "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one " \
    "character long"
#define RAI_FN_ENC_VER 1

/* ================================================================ admin */

/* Whether the calling user may run MODULE LOAD (a command with no user, from
 * our primary or the AOF, is the server's own). */
static int CallerIsAdmin(RedisModuleCtx *ctx) { return RAI_CallerMayRun(ctx, "MODULE", "LOAD"); }

/* Replies and returns 1 unless the caller may change the libraries here. */
static int RefuseChange(RedisModuleCtx *ctx) {
    int flags = RedisModule_GetContextFlags(ctx);
    if (flags & (REDISMODULE_CTX_FLAGS_REPLICATED | REDISMODULE_CTX_FLAGS_LOADING)) return 0;
    if (!CallerIsAdmin(ctx)) {
        RedisModule_ReplyWithError(ctx, ERR_NO_ADMIN);
        return 1;
    }
    if ((flags & REDISMODULE_CTX_FLAGS_SLAVE) && (flags & REDISMODULE_CTX_FLAGS_READONLY)) {
        RedisModule_ReplyWithError(ctx, ERR_READONLY);
        return 1;
    }
    return 0;
}

/* ================================================================= LOAD */

/* The library name of `#!python name=<lib>` (Alloc'd), or NULL with the
 * reply written. */
static char *LibraryName(RedisModuleCtx *ctx, const char *code, size_t len) {
    if (len < 2 || code[0] != '#' || code[1] != '!')
        return RedisModule_ReplyWithError(ctx, "ERR Missing library metadata"), NULL;
    size_t eol = 2;
    while (eol < len && code[eol] != '\n' && code[eol] != '\r') eol++;
    char *line = RedisModule_Alloc(eol - 1), *name = NULL, *save = NULL, err[256];
    memcpy(line, code + 2, eol - 2);
    line[eol - 2] = '\0';
    err[0] = '\0';
    char *engine = strtok_r(line, " \t", &save);
    if (engine == NULL || strcmp(engine, "python") != 0)
        snprintf(err, sizeof(err), "ERR Engine '%.64s' not found", engine ? engine : "");
    for (char *tok = strtok_r(NULL, " \t", &save); tok && !err[0]; tok = strtok_r(NULL, " \t", &save)) {
        if (strncmp(tok, "name=", 5) == 0 && name == NULL) name = tok + 5;
        else snprintf(err, sizeof(err), "ERR Invalid metadata value given: %.64s", tok);
    }
    if (!err[0] && name == NULL) snprintf(err, sizeof(err), "ERR Library name was not given");
    if (!err[0] && !RAI_FunctionNameValid(name, strlen(name))) snprintf(err, sizeof(err), "%s", ERR_BAD_NAME);
    char *result = err[0] ? NULL : RedisModule_Strdup(name);
    RedisModule_Free(line);
    if (result == NULL) RedisModule_ReplyWithError(ctx, err);
    return result;
}

static void ReplyLibraryExists(RedisModuleCtx *ctx, const char *name) {
    char err[320];
    snprintf(err, sizeof(err), "ERR Library '%.256s' already exists", name);
    RedisModule_ReplyWithError(ctx, err);
}

/* Main thread, the import done: installs the library unless it failed or
 * now clashes, replicates the command, replies with the library's name. */
static int FinishLoad(RedisModuleCtx *ctx, RAI_Job *job) {
    RAI_FunctionLoad *load = job->payload;
    RAI_FunctionLib *lib = load->lib, *existing = RAI_FunctionLibFind(lib->name);
    if (job->error) return RedisModule_ReplyWithError(ctx, job->error);
    if (existing && !load->replace) {
        ReplyLibraryExists(ctx, lib->name);
        return REDISMODULE_OK;
    }
    const char *clash = RAI_FunctionLibClash(lib, existing);
    if (clash) {
        char err[320];
        snprintf(err, sizeof(err), "ERR Function %.256s already exists", clash);
        return RedisModule_ReplyWithError(ctx, err);
    }
    load->lib = NULL; /* the registry's now */
    RAI_FunctionLibInstall(lib);
    if (job->store && job->store->argv)
        RedisModule_Replicate(ctx, "AI.FUNCTION", "v", job->store->argv + 1, (size_t)(job->store->argc - 1));
    else RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithStringBuffer(ctx, lib->name, strlen(lib->name));
}

static int Load_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return FinishLoad(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
}

/* The import on the loader while this thread waits without the GIL, doing
 * the Redis work workers hand over meanwhile with ctx. */
static void ImportAndWait(RedisModuleCtx *ctx, RAI_Job *job) {
    job->waiter = RAI_WaiterNew();
    RAI_RunQueuePush(RAI_LoaderQueue(), job);
    RAI_WaiterWait(job->waiter, ctx);
    RAI_WaiterFree(job->waiter);
    job->waiter = NULL;
}

/* The ACL user loading the library: its triggers' execute() runs as it. NULL
 * (the triggers then run as "default") where the command has no user: AOF
 * replay, a primary's stream. */
static void RecordLoader(RedisModuleCtx *ctx, RAI_FunctionLib *lib) {
    /* Those clients have no ACL user, and Redis 7.0's GetCurrentUserName
     * reads it without a check (a crash on a replica, seen in tests). */
    if (RedisModule_GetContextFlags(ctx) & (REDISMODULE_CTX_FLAGS_LOADING | REDISMODULE_CTX_FLAGS_REPLICATED)) return;
    RedisModuleString *user = RedisModule_GetCurrentUserName(ctx);
    if (user == NULL) return;
    lib->loaded_by = RedisModule_Strdup(RedisModule_StringPtrLen(user, NULL));
    RedisModule_FreeString(ctx, user);
}

static RAI_Job *LoadJob(const char *name, const char *code, size_t len, int replace) {
    RAI_FunctionLoad *load = RedisModule_Calloc(1, sizeof(*load));
    load->lib = RAI_FunctionLibNew(name, code, len);
    load->replace = replace;
    RAI_Job *job = RAI_JobNew(&RAI_FunctionLoadJob, NULL);
    job->payload = load;
    job->free_payload = RAI_FunctionLoadFree;
    return job;
}

/* AI.FUNCTION LOAD [REPLACE] <source> */
static int FunctionLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3 && argc != 4) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (argc == 4 && !RAI_ArgIs(argv[2], "REPLACE")) return RedisModule_ReplyWithError(ctx, "ERR Unknown option given");
    if (RefuseChange(ctx)) return REDISMODULE_OK;
    int replace = argc == 4;
    size_t len;
    const char *code = RedisModule_StringPtrLen(argv[argc - 1], &len);
    char *name = LibraryName(ctx, code, len);
    if (name == NULL) return REDISMODULE_OK;
    if (!replace && RAI_FunctionLibFind(name)) {
        ReplyLibraryExists(ctx, name);
        RedisModule_Free(name);
        return REDISMODULE_OK;
    }
    RAI_Job *job = LoadJob(name, code, len, replace);
    RedisModule_Free(name);
    RecordLoader(ctx, ((RAI_FunctionLoad *)job->payload)->lib);
    int flags = RedisModule_GetContextFlags(ctx);
    if ((flags & (REDISMODULE_CTX_FLAGS_LOADING | REDISMODULE_CTX_FLAGS_REPLICATED)) || RAI_ClientCannotBlock(ctx)) {
        if (!RAI_SyncRunAllowed()) {
            RAI_JobFree(job);
            return RedisModule_ReplyWithError(ctx, ERR_CANNOT_WAIT);
        }
        ImportAndWait(ctx, job);
        FinishLoad(ctx, job);
        RAI_JobFree(job);
        return REDISMODULE_OK;
    }
    RAI_JobKeepArgv(job, argv, argc);
    job->bc = RedisModule_BlockClient(ctx, Load_Reply, NULL, RAI_FreeJobCallback, 0);
    RedisModule_BlockedClientMeasureTimeStart(job->bc);
    RAI_RunQueuePush(RAI_LoaderQueue(), job);
    return REDISMODULE_OK;
}

/* ======================================================= DELETE / FLUSH */

/* AI.FUNCTION DELETE <library> */
static int FunctionDelete(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RefuseChange(ctx)) return REDISMODULE_OK;
    size_t len;
    const char *name = RedisModule_StringPtrLen(argv[2], &len);
    if (strlen(name) != len || !RAI_FunctionLibRemove(name))
        return RedisModule_ReplyWithError(ctx, "ERR Library not found");
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* AI.FUNCTION FLUSH [ASYNC | SYNC]: both free at once (a handful of libraries). */
static int FunctionFlush(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc > 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (argc == 3 && !RAI_ArgIs(argv[2], "ASYNC") && !RAI_ArgIs(argv[2], "SYNC"))
        return RedisModule_ReplyWithError(ctx, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    if (RefuseChange(ctx)) return REDISMODULE_OK;
    RAI_FunctionLibRemoveAll();
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ================================================================= KILL */

/* AI.FUNCTION KILL: stops every call that has run FUNCTION_TIMEOUT ms or
 * more (NOTBUSY when none runs, as Redis's FUNCTION KILL). The main thread
 * only marks them; a short-lived thread raises the exception in Python. */
static int FunctionKill(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (!CallerIsAdmin(ctx)) return RedisModule_ReplyWithError(ctx, ERR_NO_ADMIN);
    int nrunning;
    int asked = RAI_PyFunctionKill(RAI_Cfg.function_timeout, &nrunning);
    if (nrunning == 0) return RedisModule_ReplyWithError(ctx, "NOTBUSY No scripts in execution right now.");
    if (asked == 0) {
        char err[160];
        snprintf(err, sizeof(err), "ERR no function has run for FUNCTION_TIMEOUT (%lld ms) yet",
                 RAI_Cfg.function_timeout);
        return RedisModule_ReplyWithError(ctx, err);
    }
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ================================================================= LIST */

static void ReplyCString(RedisModuleCtx *ctx, const char *s) { RedisModule_ReplyWithStringBuffer(ctx, s, strlen(s)); }

static void ReplyFunction(RedisModuleCtx *ctx, const RAI_Function *fn) {
    RedisModule_ReplyWithMap(ctx, 3);
    ReplyCString(ctx, "name");
    ReplyCString(ctx, fn->name);
    ReplyCString(ctx, "description");
    RedisModule_ReplyWithNull(ctx);
    ReplyCString(ctx, "flags");
    RedisModule_ReplyWithArray(ctx, REDISMODULE_POSTPONED_LEN);
    long n = 0;
    for (int i = 0; i < RAI_FN_FLAG_COUNT; i++) {
        if (fn->flags & (1 << i)) {
            ReplyCString(ctx, RAI_FunctionFlagName(i));
            n++;
        }
    }
    RedisModule_ReplySetArrayLength(ctx, n);
}

/* A trigger: name, event, prefix. */
static void ReplyTrigger(RedisModuleCtx *ctx, const RAI_Trigger *t) {
    RedisModule_ReplyWithMap(ctx, 3);
    ReplyCString(ctx, "name");
    ReplyCString(ctx, t->name);
    ReplyCString(ctx, "event");
    ReplyCString(ctx, t->event);
    ReplyCString(ctx, "prefix");
    RedisModule_ReplyWithStringBuffer(ctx, t->prefix, t->prefixlen);
}

/* FUNCTION LIST's shape: library_name, engine, functions, [library_code];
 * and ours: triggers. */
static void ReplyLibrary(RedisModuleCtx *ctx, const RAI_FunctionLib *lib, int withcode) {
    RedisModule_ReplyWithMap(ctx, withcode ? 5 : 4);
    ReplyCString(ctx, "library_name");
    ReplyCString(ctx, lib->name);
    ReplyCString(ctx, "engine");
    ReplyCString(ctx, "PYTHON");
    ReplyCString(ctx, "functions");
    RedisModule_ReplyWithArray(ctx, lib->nfunctions);
    for (int f = 0; f < lib->nfunctions; f++) ReplyFunction(ctx, &lib->functions[f]);
    ReplyCString(ctx, "triggers");
    RedisModule_ReplyWithArray(ctx, lib->ntriggers);
    for (int t = 0; t < lib->ntriggers; t++) ReplyTrigger(ctx, &lib->triggers[t]);
    if (withcode) {
        ReplyCString(ctx, "library_code");
        RedisModule_ReplyWithStringBuffer(ctx, lib->code, lib->codelen);
    }
}

/* AI.FUNCTION LIST [LIBRARYNAME <pattern>] [WITHCODE] */
static int FunctionList(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    const char *pattern = NULL;
    size_t plen = 0;
    int withcode = 0;
    for (int i = 2; i < argc; i++) {
        if (RAI_ArgIs(argv[i], "WITHCODE") && !withcode) {
            withcode = 1;
        } else if (RAI_ArgIs(argv[i], "LIBRARYNAME") && pattern == NULL && i + 1 < argc) {
            pattern = RedisModule_StringPtrLen(argv[++i], &plen);
        } else {
            return RedisModule_ReplyWithError(ctx, "ERR Unknown argument given");
        }
    }
    RedisModule_ReplyWithArray(ctx, REDISMODULE_POSTPONED_LEN);
    long n = 0;
    for (size_t i = 0; i < RAI_FunctionLibCount(); i++) {
        const RAI_FunctionLib *lib = RAI_FunctionLibAt(i);
        if (pattern && !RAI_GlobMatch(pattern, plen, lib->name, strlen(lib->name))) continue;
        ReplyLibrary(ctx, lib, withcode);
        n++;
    }
    RedisModule_ReplySetArrayLength(ctx, n);
    return REDISMODULE_OK;
}

/* AI.FUNCTION <subcommand> ... */
int RAI_Function_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RAI_ArgIs(argv[1], "LOAD")) return FunctionLoad(ctx, argv, argc);
    if (RAI_ArgIs(argv[1], "DELETE")) return FunctionDelete(ctx, argv, argc);
    if (RAI_ArgIs(argv[1], "LIST")) return FunctionList(ctx, argv, argc);
    if (RAI_ArgIs(argv[1], "FLUSH")) return FunctionFlush(ctx, argv, argc);
    if (RAI_ArgIs(argv[1], "KILL")) return FunctionKill(ctx, argv, argc);
    char err[192];
    snprintf(err, sizeof(err), "ERR unknown subcommand '%.64s'. Try LOAD, DELETE, LIST, FLUSH or KILL.",
             RedisModule_StringPtrLen(argv[1], NULL));
    return RedisModule_ReplyWithError(ctx, err);
}

/* ========================================================== persistence */

/* Before the keys: how many libraries, then each one's name and source.
 * Pure C (this runs in the fork child of BGSAVE and AOF rewrites). */
static void AuxSave(RedisModuleIO *rdb, int when) {
    if (when != REDISMODULE_AUX_BEFORE_RDB) return;
    RedisModule_SaveUnsigned(rdb, RAI_FunctionLibCount());
    for (size_t i = 0; i < RAI_FunctionLibCount(); i++) {
        const RAI_FunctionLib *lib = RAI_FunctionLibAt(i);
        RedisModule_SaveStringBuffer(rdb, lib->name, strlen(lib->name));
        RedisModule_SaveStringBuffer(rdb, lib->code, lib->codelen);
    }
}

/* A library read from the RDB is imported on the loader while the main
 * thread waits (loading: nobody is served yet). One that no longer imports
 * (a package gone from the venv) keeps its source, with no functions, so the
 * next save still has it; the log says why. */
static void ImportLoaded(RedisModuleCtx *ctx, const char *name, const char *code, size_t len) {
    RAI_Job *job = LoadJob(name, code, len, 1);
    RAI_FunctionLoad *load = job->payload;
    if (RAI_SyncRunAllowed()) ImportAndWait(ctx, job);
    else RAI_JobSetError(job, "the import cannot wait here");
    if (job->error) {
        RAI_LOG_WARNING("function library %s from the RDB did not load: %s", name, job->error);
        RAI_FunctionLibRelease(load->lib);
        load->lib = RAI_FunctionLibNew(name, code, len);
    } else if (RAI_FunctionLibClash(load->lib, RAI_FunctionLibFind(name)) != NULL) {
        RAI_LOG_WARNING("function library %s from the RDB clashes with a loaded library", name);
    }
    RAI_FunctionLibInstall(load->lib);
    load->lib = NULL;
    RAI_JobFree(job);
}

/* The RDB is the truth: the libraries it holds replace those in memory. */
static int AuxLoad(RedisModuleIO *rdb, int encver, int when) {
    if (encver > RAI_FN_ENC_VER) {
        RedisModule_LogIOError(rdb, "warning", "AI_FNLIBS: encoding version %d is newer than this module's", encver);
        return REDISMODULE_ERR;
    }
    if (when != REDISMODULE_AUX_BEFORE_RDB) return REDISMODULE_OK;
    uint64_t n = RedisModule_LoadUnsigned(rdb);
    if (RedisModule_IsIOError(rdb)) return REDISMODULE_ERR;
    RAI_FunctionLibRemoveAll();
    RedisModuleCtx *ctx = RedisModule_GetContextFromIO(rdb);
    for (uint64_t i = 0; i < n; i++) {
        size_t namelen, len;
        char *name = RedisModule_LoadStringBuffer(rdb, &namelen);
        char *code = RedisModule_LoadStringBuffer(rdb, &len);
        if (RedisModule_IsIOError(rdb) || name == NULL || code == NULL) {
            RedisModule_Free(name);
            RedisModule_Free(code);
            return REDISMODULE_ERR;
        }
        char *cname = RedisModule_Alloc(namelen + 1);
        memcpy(cname, name, namelen);
        cname[namelen] = '\0';
        ImportLoaded(ctx, cname, code, len);
        RedisModule_Free(cname);
        RedisModule_Free(name);
        RedisModule_Free(code);
    }
    return REDISMODULE_OK;
}

/* The type holds no key: these are never called, but a type needs them. */
static void *NoRdbLoad(RedisModuleIO *rdb, int encver) {
    (void)rdb;
    (void)encver;
    return NULL;
}
static void NoRdbSave(RedisModuleIO *rdb, void *value) {
    (void)rdb;
    (void)value;
}
static void NoFree(void *value) { (void)value; }

int RAI_FunctionPersistenceRegister(RedisModuleCtx *ctx) {
    RedisModuleTypeMethods methods = {
        .version = REDISMODULE_TYPE_METHOD_VERSION_COPY,
        .rdb_load = NoRdbLoad,
        .rdb_save = NoRdbSave,
        .free = NoFree,
        .aux_load = AuxLoad,
        .aux_save = AuxSave,
        .aux_save_triggers = REDISMODULE_AUX_BEFORE_RDB,
    };
    return RedisModule_CreateDataType(ctx, "AI_FNLIBS", RAI_FN_ENC_VER, &methods) ? REDISMODULE_OK : REDISMODULE_ERR;
}
