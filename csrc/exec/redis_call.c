/* redis_call.c -- commands and key reads for worker threads, done for them
 * on the Redis main thread (sync_run.h), their replies copied out. */
#include "exec/redis_call.h"

#include <errno.h>
#include <string.h>

#include "exec/sync_run.h"
#include "rm_api.h"
#include "types/type_model.h"

#define ERR_SHUTDOWN "ERR the server is shutting down"

static void CopyReply(RedisModuleCallReply *from, RAI_CallReply *to) {
    memset(to, 0, sizeof(*to));
    switch (RedisModule_CallReplyType(from)) {
    case REDISMODULE_REPLY_STRING:
    case REDISMODULE_REPLY_ERROR: {
        to->type = RedisModule_CallReplyType(from) == REDISMODULE_REPLY_ERROR ? RAI_REPLY_ERROR
                                                                               : RAI_REPLY_STRING;
        const char *s = RedisModule_CallReplyStringPtr(from, &to->len);
        to->str = RedisModule_Alloc(to->len + 1);
        memcpy(to->str, s, to->len);
        to->str[to->len] = '\0';
        return;
    }
    case REDISMODULE_REPLY_INTEGER:
        to->type = RAI_REPLY_INTEGER;
        to->integer = RedisModule_CallReplyInteger(from);
        return;
    case REDISMODULE_REPLY_ARRAY:
        to->type = RAI_REPLY_ARRAY;
        to->n = RedisModule_CallReplyLength(from);
        to->elements = RedisModule_Calloc(to->n > 0 ? to->n : 1, sizeof(RAI_CallReply));
        for (size_t i = 0; i < to->n; i++)
            CopyReply(RedisModule_CallReplyArrayElement(from, i), &to->elements[i]);
        return;
    default:
        to->type = RAI_REPLY_NULL;
        return;
    }
}

static RAI_CallReply *ErrorReply(const char *text) {
    RAI_CallReply *r = RedisModule_Calloc(1, sizeof(*r));
    r->type = RAI_REPLY_ERROR;
    r->str = RedisModule_Strdup(text);
    r->len = strlen(text);
    return r;
}

typedef struct {
    int argc;
    const char **argv;
    const size_t *lens;
    RAI_CallReply *reply;
} Call;

static void DoCall(RedisModuleCtx *ctx, void *arg) {
    Call *call = arg;
    int argc = call->argc;
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * (argc > 1 ? (size_t)argc - 1 : 1));
    for (int i = 1; i < argc; i++) args[i - 1] = RedisModule_CreateString(ctx, call->argv[i], call->lens[i]);
    errno = 0;
    RedisModuleCallReply *reply = RedisModule_Call(ctx, call->argv[0], "!Ev", args, (size_t)(argc - 1));
    int call_errno = errno;
    if (reply == NULL) {
        call->reply = ErrorReply(call_errno == ENOENT   ? "ERR unknown command"
                                 : call_errno == EINVAL ? "ERR wrong number of arguments"
                                 : call_errno == EPERM  ? "ERR operation not permitted"
                                                        : "ERR command could not be called");
    } else {
        call->reply = RedisModule_Calloc(1, sizeof(*call->reply));
        CopyReply(reply, call->reply);
        RedisModule_FreeCallReply(reply);
    }
    for (int i = 1; i < argc; i++) RedisModule_FreeString(ctx, args[i - 1]);
    RedisModule_Free(args);
}

RAI_CallReply *RAI_RedisCall(int argc, const char **argv, const size_t *lens) {
    Call call = {argc, argv, lens, NULL};
    if (!RAI_OnMainThread(DoCall, &call)) return ErrorReply(ERR_SHUTDOWN);
    return call.reply;
}

static void FreeReplyContents(RAI_CallReply *r) {
    RedisModule_Free(r->str);
    for (size_t i = 0; i < r->n; i++) FreeReplyContents(&r->elements[i]);
    RedisModule_Free(r->elements);
}

void RAI_CallReplyFree(RAI_CallReply *reply) {
    if (reply == NULL) return;
    FreeReplyContents(reply);
    RedisModule_Free(reply);
}

typedef struct {
    const char *key;
    size_t keylen;
    RAI_Model *model;
    int type;
} Lookup;

static void DoLookup(RedisModuleCtx *ctx, void *arg) {
    Lookup *l = arg;
    RedisModuleString *name = RedisModule_CreateString(ctx, l->key, l->keylen);
    RedisModuleKey *k = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    l->type = RedisModule_KeyType(k);
    if (l->type == REDISMODULE_KEYTYPE_MODULE && RedisModule_ModuleTypeGetType(k) == RAI_ModelType)
        l->model = RAI_ModelRetain(RedisModule_ModuleTypeGetValue(k));
    RedisModule_CloseKey(k);
    RedisModule_FreeString(ctx, name);
}

RAI_Model *RAI_ModelFromWorker(const char *key, size_t keylen, const char **err) {
    Lookup l = {key, keylen, NULL, 0};
    if (!RAI_OnMainThread(DoLookup, &l)) {
        *err = ERR_SHUTDOWN;
        return NULL;
    }
    if (l.model == NULL)
        *err = l.type == REDISMODULE_KEYTYPE_EMPTY ? "ERR model key is empty" : REDISMODULE_ERRORMSG_WRONGTYPE;
    return l.model;
}
