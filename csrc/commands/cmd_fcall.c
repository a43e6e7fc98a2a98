/* cmd_fcall.c -- AI.FCALL and AI.FCALL_RO: a function found in the library
 * registry, run on the function queue while its client waits.
 *
 * Everything is checked here on the main thread before a worker sees the
 * call: the key count, the function, its flags against the command (a
 * function that may write is refused by FCALL_RO, under OOM, and with
 * no-cluster in a cluster), and the caller's ACL user, which the function's
 * execute() calls run as. The reply is built from the tree the worker left
 * (py_functions.c) without Python. */
#include "commands/cmd_function.h"

#include <string.h>

#include "base/args.h"
#include "base/keyslot.h"
#include "commands/cmd_admin.h"
#include "commands/job_keys.h"
#include "exec/redis_call.h"
#include "exec/run_queue.h"
#include "exec/sync_run.h"
#include "python/job_kinds.h"
#include "types/function_lib.h"

#define ERR_NOT_FOUND "ERR Function not found"
#define ERR_WRITE_FLAG "ERR Can not execute a function with write flag using fcall_ro."
#define ERR_OOM "OOM command not allowed when used memory > 'maxmemory'."
#define ERR_NO_CLUSTER "ERR Can not run script on cluster, 'no-cluster' flag is set."
#define ERR_NO_USER "ERR AI.FCALL needs a caller with an ACL user"
#define ERR_NO_QUEUE "ERR could not start the function threads"
#define ERR_CANNOT_WAIT "ERR AI.FCALL cannot run inside a function's execute() or while another call waits"

/* ================================================================ reply */

static void ReplyTree(RedisModuleCtx *ctx, const RAI_FnReply *r) {
    switch (r->type) {
    case RAI_FN_NIL: RedisModule_ReplyWithNull(ctx); return;
    case RAI_FN_INT: RedisModule_ReplyWithLongLong(ctx, r->integer); return;
    case RAI_FN_DOUBLE: RedisModule_ReplyWithDouble(ctx, r->dbl); return;
    case RAI_FN_BOOL: RedisModule_ReplyWithBool(ctx, (int)r->integer); return;
    case RAI_FN_STRING: RedisModule_ReplyWithStringBuffer(ctx, r->str, r->len); return;
    case RAI_FN_ARRAY:
        RedisModule_ReplyWithArray(ctx, (long)r->len);
        for (size_t i = 0; i < r->len; i++) ReplyTree(ctx, &r->elements[i]);
        return;
    case RAI_FN_MAP:
        RedisModule_ReplyWithMap(ctx, (long)r->len);
        for (size_t i = 0; i < 2 * r->len; i++) ReplyTree(ctx, &r->elements[i]);
        return;
    }
}

static int FinishCall(RedisModuleCtx *ctx, RAI_Job *job) {
    RAI_FunctionCall *call = job->payload;
    RAI_DoPostedWork(ctx); /* the call's model runs counted before its reply */
    if (job->error) return RedisModule_ReplyWithError(ctx, job->error);
    ReplyTree(ctx, call->reply);
    return REDISMODULE_OK;
}

static int FCall_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return FinishCall(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
}

/* ================================================================ checks */

/* The function named by argv[1], or NULL with the reply written: found,
 * and its flags allow this command here. */
static RAI_FunctionLib *FunctionFor(RedisModuleCtx *ctx, RedisModuleString *name, int read_only,
                                    const RAI_Function **fn) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(name, &len);
    RAI_FunctionLib *lib = RAI_FunctionFind(s, len, fn);
    int flags = RedisModule_GetContextFlags(ctx);
    const char *refusal = NULL;
    if (lib == NULL) refusal = ERR_NOT_FOUND;
    else if (read_only && !((*fn)->flags & RAI_FN_NO_WRITES)) refusal = ERR_WRITE_FLAG;
    else if ((flags & REDISMODULE_CTX_FLAGS_OOM) && !((*fn)->flags & (RAI_FN_NO_WRITES | RAI_FN_ALLOW_OOM)))
        refusal = ERR_OOM;
    else if ((flags & REDISMODULE_CTX_FLAGS_CLUSTER) && ((*fn)->flags & RAI_FN_NO_CLUSTER))
        refusal = ERR_NO_CLUSTER;
    if (refusal) RedisModule_ReplyWithError(ctx, refusal);
    return refusal ? NULL : lib;
}

/* numkeys, read with the one count reader; -1 with the reply written.
 * The texts are Redis's own for FCALL. */
static int KeyCount(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long n;
    switch (RAI_ReadCount(argv[2], 0, argc - 3, &n)) {
    case RAI_COUNT_OK: return (int)n;
    case RAI_COUNT_NOT_A_NUMBER: RedisModule_ReplyWithError(ctx, "ERR value is not an integer or out of range"); break;
    case RAI_COUNT_BELOW_MIN: RedisModule_ReplyWithError(ctx, "ERR Number of keys can't be negative"); break;
    case RAI_COUNT_BEYOND_ARGS:
        RedisModule_ReplyWithError(ctx, "ERR Number of keys can't be greater than number of args");
        break;
    }
    return -1;
}

/* ================================================================ the call */

static RAI_Job *CallJob(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, RAI_FunctionLib *lib,
                        const RAI_Function *fn, int nkeys, int read_only, char *user) {
    RAI_FunctionCall *call = RedisModule_Calloc(1, sizeof(*call));
    call->lib = RAI_FunctionLibRetain(lib);
    call->fname = RedisModule_Strdup(fn->name);
    call->nkeys = nkeys;
    call->keys = RAI_CopyArgStrings(argv + 3, nkeys, &call->keylens);
    call->nargs = argc - 3 - nkeys;
    call->args = RAI_CopyArgStrings(argv + 3 + nkeys, call->nargs, &call->arglens);
    call->user = user;
    /* A no-writes function may not write through execute() under AI.FCALL either. */
    call->read_only = read_only || (fn->flags & RAI_FN_NO_WRITES);
    call->slot = -1;
    if ((RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_CLUSTER) && nkeys > 0)
        call->slot = RAI_KeySlot(call->keys[0], call->keylens[0]);
    RAI_Job *job = RAI_JobNew(&RAI_FunctionCallJob, NULL);
    job->payload = call;
    job->free_payload = RAI_FunctionCallFree;
    return job;
}

/* Blocks the client until a function worker ran the job; where it cannot
 * block (MULTI), this thread waits, without the GIL, doing the execute()
 * calls the function hands over with the transaction's context. */
static int RunCall(RedisModuleCtx *ctx, RAI_Job *job) {
    RAI_RunQueue *queue = RAI_FunctionQueue();
    if (queue == NULL) {
        RAI_JobFree(job);
        return RedisModule_ReplyWithError(ctx, ERR_NO_QUEUE);
    }
    if (!RAI_ClientCannotBlock(ctx)) {
        job->bc = RedisModule_BlockClient(ctx, FCall_Reply, NULL, RAI_FreeJobCallback, 0);
        RedisModule_BlockedClientMeasureTimeStart(job->bc);
        RAI_RunQueuePush(queue, job);
        return REDISMODULE_OK;
    }
    if (!RAI_SyncRunAllowed()) {
        RAI_JobFree(job);
        return RedisModule_ReplyWithError(ctx, ERR_CANNOT_WAIT);
    }
    RAI_PushAndWait(ctx, queue, job);
    FinishCall(ctx, job);
    RAI_JobFree(job);
    return REDISMODULE_OK;
}

/* COMMAND GETKEYS and cluster routing: the numkeys keys after argv[2]; none
 * when the count is bad (the command itself then refuses it). */
static int ReportKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int read_only) {
    long long n;
    if (argc < 3 || RAI_ReadCount(argv[2], 0, argc - 3, &n) != RAI_COUNT_OK) return REDISMODULE_OK;
    int flags = read_only ? (int)(REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS)
                          : (int)(REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE);
    for (int i = 0; i < (int)n; i++) RedisModule_KeyAtPosWithFlags(ctx, 3 + i, flags);
    return REDISMODULE_OK;
}

/* AI.FCALL[_RO] <function> <numkeys> [key ...] [arg ...] */
static int FCall(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int read_only) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return ReportKeys(ctx, argv, argc, read_only);
    if (argc < 3) return RAI_ReplyWrongArity(ctx, argv[0]);
    int nkeys = KeyCount(ctx, argv, argc);
    if (nkeys < 0) return REDISMODULE_OK;
    const RAI_Function *fn;
    RAI_FunctionLib *lib = FunctionFor(ctx, argv[1], read_only, &fn);
    if (lib == NULL) return REDISMODULE_OK;
    char *user = RAI_CallerUserName(ctx);
    if (user == NULL) return RedisModule_ReplyWithError(ctx, ERR_NO_USER);
    return RunCall(ctx, CallJob(ctx, argv, argc, lib, fn, nkeys, read_only, user));
}

int RAI_FCall_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    return FCall(ctx, argv, argc, 0);
}

int RAI_FCallRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    return FCall(ctx, argv, argc, 1);
}
