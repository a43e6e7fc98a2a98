/* cmd_script.c -- AI.SCRIPTSTORE / SCRIPTSET / SCRIPTGET / SCRIPTDEL /
 * SCRIPTEXECUTE / SCRIPTRUN.
 *
 * Same shape as the model commands: parse and read keys on the main thread,
 * compile or run on a worker, write keys and reply on the main thread. */
#include "commands/cmd_script.h"

#include <string.h>

#include "commands/cmd_admin.h"
#include "commands/job_keys.h"
#include "python/job_kinds.h"
#include "commands/parse.h"
#include "commands/parse_script.h"
#include "exec/redis_call.h"
#include "exec/run_queue.h"
#include "types/type_script.h"

/* ------------------------------------------------------------------ store */

static int ScriptStore(RedisModuleCtx *ctx, RedisModuleString **argv, int argc,
                       const RAI_ScriptStoreArgs *args) {
    const char *device = RedisModule_StringPtrLen(argv[2], NULL);
    if (!RAI_IsScriptDevice(device)) return RedisModule_ReplyWithError(ctx, "ERR unsupported device");

    const char **entries = RedisModule_Calloc(args->nentry > 0 ? (size_t)args->nentry : 1, sizeof(char *));
    for (int i = 0; i < args->nentry; i++) entries[i] = RedisModule_StringPtrLen(argv[args->entries_at + i], NULL);
    size_t srclen;
    const char *source = RedisModule_StringPtrLen(argv[args->source_at], &srclen);
    RAI_Script *s = RAI_ScriptNew(device, args->tag, source, srclen, args->nentry, entries);
    RedisModule_Free(entries);
    RAI_Job *job = RAI_ScriptJobNew(&RAI_LoadJob, s);
    RAI_ScriptRelease(s); /* the job holds it now */
    return RAI_StoreWithSession(ctx, job, argv, argc);
}

/* AI.SCRIPTSTORE key device [TAG tag] ENTRY_POINTS n fn... SOURCE src */
int RAI_ScriptStore_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 8) return RAI_ReplyWrongArity(ctx, argv[0]);
    RAI_ScriptStoreArgs args;
    const char *err = RAI_ParseScriptStore(argv, argc, &args);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    return ScriptStore(ctx, argv, argc, &args);
}

/* AI.SCRIPTSET key device [TAG tag] SOURCE src (deprecated) */
int RAI_ScriptSet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 5 && argc != 7) return RAI_ReplyWrongArity(ctx, argv[0]);
    RAI_ScriptStoreArgs args;
    const char *err = RAI_ParseScriptSet(argv, argc, &args);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    return ScriptStore(ctx, argv, argc, &args);
}

/* -------------------------------------------------------------- get / del */

/* AI.SCRIPTGET key [META] [SOURCE] */
int RAI_ScriptGet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 4) return RAI_ReplyWrongArity(ctx, argv[0]);
    const RAI_Script *s = RAI_ReadScriptKey(ctx, argv[1]);
    if (s == NULL) return REDISMODULE_OK;
    int meta = 0, source = 0;
    for (int i = 2; i < argc; i++) {
        if (RAI_ArgIs(argv[i], "META")) meta = 1;
        else if (RAI_ArgIs(argv[i], "SOURCE")) source = 1;
    }
    if (!meta && !source) meta = source = 1;
    if (!meta) return RedisModule_ReplyWithStringBuffer(ctx, s->source, strlen(s->source));
    RedisModule_ReplyWithArray(ctx, source ? 8 : 6);
    RedisModule_ReplyWithSimpleString(ctx, "device");
    RedisModule_ReplyWithStringBuffer(ctx, s->device, strlen(s->device));
    RedisModule_ReplyWithSimpleString(ctx, "tag");
    RedisModule_ReplyWithStringBuffer(ctx, s->tag, strlen(s->tag));
    RedisModule_ReplyWithSimpleString(ctx, "Entry Points");
    RedisModule_ReplyWithArray(ctx, s->nentry);
    for (int i = 0; i < s->nentry; i++)
        RedisModule_ReplyWithStringBuffer(ctx, s->entry_points[i], strlen(s->entry_points[i]));
    if (source) {
        RedisModule_ReplyWithSimpleString(ctx, "source");
        RedisModule_ReplyWithStringBuffer(ctx, s->source, strlen(s->source));
    }
    return REDISMODULE_OK;
}

/* AI.SCRIPTDEL key */
int RAI_ScriptDel_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RAI_ReadScriptKey(ctx, argv[1]) == NULL) return REDISMODULE_OK;
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_WRITE);
    RedisModule_DeleteKey(key);
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ---------------------------------------------------------------- execute */

/* Fills a script run job from parsed positions; input keys may be given as
 * a separate array (SCRIPTRUN's inputs skip its `$`). Replies on error. */
static RAI_Job *ScriptRunJob(RedisModuleCtx *ctx, RedisModuleString **argv, RAI_Script *s,
                             const RAI_ScriptExecuteArgs *args, RedisModuleString **input_keys) {
    RAI_Job *job = RAI_ScriptJobNew(&RAI_ScriptRunJob, s);
    RAI_JobSetScriptCall(job, argv[2], argv + args->keys_at, args->nkeys, argv + args->args_at, args->nargs);
    job->call->user = RAI_CallerUserName(ctx);
    job->ninputs = args->ninputs;
    job->noutputs = args->noutputs;
    RAI_JobKeepOutputKeys(job, argv + args->outputs_at);
    if (!RAI_JobCaptureInputs(ctx, job, input_keys) || !RAI_JobOutputKeysWritable(ctx, job)) {
        RAI_JobFree(job);
        return NULL;
    }
    if (args->timeout > 0) job->deadline_us = RAI_DeadlineAfterMs(job->queued_us, args->timeout);
    return job;
}

/* COMMAND GETKEYS / cluster routing: the script key, then the n names
 * after each of KEYS, INPUTS and OUTPUTS (ARGS are not keys). */
static int ScriptExecuteKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPosWithFlags(ctx, 1, RAI_KEY_READ);
    for (int pos = 3; pos + 1 < argc; pos++) {
        long long n;
        int flags = RAI_ArgIs(argv[pos], "KEYS")      ? RAI_KEY_READ_WRITE
                    : RAI_ArgIs(argv[pos], "INPUTS")  ? RAI_KEY_READ
                    : RAI_ArgIs(argv[pos], "OUTPUTS") ? RAI_KEY_WRITE
                                                      : 0;
        if (!flags && !RAI_ArgIs(argv[pos], "ARGS")) break; /* TIMEOUT or a parse error */
        if (RAI_ReadCount(argv[pos + 1], 0, RAI_ArgsAfter(argc, pos + 1), &n) != RAI_COUNT_OK) break;
        for (int i = 0; flags && i < (int)n; i++) RedisModule_KeyAtPosWithFlags(ctx, pos + 2 + i, flags);
        pos += 1 + (int)n; /* ARGS values are skipped, never read as keywords */
    }
    return REDISMODULE_OK;
}

/* AI.SCRIPTEXECUTE key fn [KEYS n k...] [INPUTS n t...] [ARGS n a...]
 *                  [OUTPUTS n o...] [TIMEOUT ms] */
int RAI_ScriptExecute_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return ScriptExecuteKeys(ctx, argv, argc);
    if (argc < 3)
        return RedisModule_ReplyWithError(ctx, "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command");
    if (RAI_RefuseIfCannotWait(ctx)) return REDISMODULE_OK;
    RAI_Script *s = RAI_ReadScriptKey(ctx, argv[1]);
    if (s == NULL) return REDISMODULE_OK;
    RAI_ScriptExecuteArgs args;
    char buf[512];
    const char *err = RAI_ParseScriptExecute(argv, argc, 0, &args, buf, sizeof(buf));
    if (err) return RedisModule_ReplyWithError(ctx, err);
    RAI_Job *job = ScriptRunJob(ctx, argv, s, &args, argv + args.inputs_at);
    return job ? RAI_RunJobAndWait(ctx, job) : REDISMODULE_OK;
}

/* AI.SCRIPTRUN's keys: the script, then every argument after INPUTS but the
 * OUTPUTS keyword and `$`. */
static int ScriptRunKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModule_KeyAtPosWithFlags(ctx, 1, RAI_KEY_READ);
    int pos = 3, outputs = 0;
    while (pos < argc && !RAI_ArgIs(argv[pos], "INPUTS")) pos++;
    for (pos++; pos < argc; pos++) {
        if (RAI_ArgIs(argv[pos], "OUTPUTS")) outputs = 1;
        else if (!RAI_ArgIs(argv[pos], "$"))
            RedisModule_KeyAtPosWithFlags(ctx, pos, outputs ? RAI_KEY_WRITE : RAI_KEY_READ);
    }
    return REDISMODULE_OK;
}

/* AI.SCRIPTRUN key fn [TIMEOUT t] INPUTS in... [$ in...] OUTPUTS out... (deprecated) */
int RAI_ScriptRun_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return ScriptRunKeys(ctx, argv, argc);
    if (argc < 3)
        return RedisModule_ReplyWithError(ctx, "ERR wrong number of arguments for 'AI.SCRIPTRUN' command");
    if (RAI_RefuseIfCannotWait(ctx)) return REDISMODULE_OK;
    RAI_Script *s = RAI_ReadScriptKey(ctx, argv[1]);
    if (s == NULL) return REDISMODULE_OK;
    RAI_ScriptExecuteArgs args;
    const char *err = RAI_ParseScriptRun(argv, argc, &args);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    RedisModuleString **inputs = RedisModule_Calloc((size_t)args.ninputs + 1, sizeof(*inputs));
    for (int pos = args.inputs_at, n = 0; n < args.ninputs; pos++) {
        if (pos != args.variadic_at) inputs[n++] = argv[pos];
    }
    RAI_Job *job = ScriptRunJob(ctx, argv, s, &args, inputs);
    RedisModule_Free(inputs);
    return job ? RAI_RunJobAndWait(ctx, job) : REDISMODULE_OK;
}
