/* redis_call.c -- commands and key reads for worker threads, done for them
 * on the Redis main thread (sync_run.h) as the ACL user of the client that
 * started them, their replies copied out; and that user's name and rights,
 * asked by the commands. */
#include "exec/redis_call.h"

#include <errno.h>
#include <string.h>

#include "base/args.h"
#include "base/keyslot.h"
#include "exec/sync_run.h"
#include "rm_api.h"
#include "types/type_model.h"
#include "types/type_script.h"
#include "types/type_tensor.h"

#define ERR_SHUTDOWN "ERR the server is shutting down"
#define ERR_LOADING "LOADING Redis is loading the dataset in memory"

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

/* ------------------------------- a function's execute(), a script's redis.execute() */

typedef struct {
    Call call;
    const RAI_CallAs *as;
} CallAs;

static RedisModuleString **MakeArgs(RedisModuleCtx *ctx, const Call *call) {
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * (size_t)call->argc);
    for (int i = 0; i < call->argc; i++) args[i] = RedisModule_CreateString(ctx, call->argv[i], call->lens[i]);
    return args;
}

static void FreeArgs(RedisModuleCtx *ctx, RedisModuleString **args, int argc) {
    for (int i = 0; i < argc; i++) RedisModule_FreeString(ctx, args[i]);
    RedisModule_Free(args);
}

/* Whether a call's keys must be in its slot: a function's call (not a
 * script's, RAI_CALL_ANY_SLOT) in cluster mode. A function must name its
 * keys in AI.FCALL (so the client reached the node that serves them), as
 * Redis Functions require. */
static int SlotRuleApplies(RedisModuleCtx *ctx, int slot) {
    return slot != RAI_CALL_ANY_SLOT && (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_CLUSTER);
}

/* Where the slot rule applies: the refusal if `key` is outside the call's slot, else NULL. */
static const char *KeyOutsideTheSlot(const char *key, size_t len, int slot) {
    if (slot < 0) return "ERR execute() may touch keys only when AI.FCALL names keys (cluster mode)";
    if (RAI_KeySlot(key, len) != slot)
        return "ERR execute() may only touch keys in the slot of the keys AI.FCALL names (cluster mode)";
    return NULL;
}

/* Cluster mode: NULL if every key of the command hashes to the call's slot,
 * else the refusal. */
static const char *OutsideTheSlot(RedisModuleCtx *ctx, RedisModuleString **args, int argc, int slot) {
    if (!SlotRuleApplies(ctx, slot)) return NULL;
    int nkeys = 0;
    int *positions = RedisModule_GetCommandKeys(ctx, args, argc, &nkeys);
    const char *refusal = NULL;
    for (int i = 0; positions && i < nkeys && refusal == NULL; i++) {
        size_t len;
        const char *key = RedisModule_StringPtrLen(args[positions[i]], &len);
        refusal = KeyOutsideTheSlot(key, len, slot);
    }
    RedisModule_Free(positions);
    return refusal;
}

/* SORT's BY and GET read keys by pattern, which the ACL check of its
 * arguments cannot see, and Redis checks them against the running client's
 * user: here the module's own, unrestricted one. */
static int ReadsKeysByPattern(RedisModuleString **args, int argc) {
    if (!RAI_ArgIs(args[0], "SORT") && !RAI_ArgIs(args[0], "SORT_RO")) return 0;
    for (int i = 2; i < argc; i++) {
        if (RAI_ArgIs(args[i], "BY") || RAI_ArgIs(args[i], "GET")) return 1;
    }
    return 0;
}

/* Whether Redis would refuse the command's argument count. Its ACL check
 * finds the keys without checking the count first, and some key specs
 * (FCALL's, ZUNION's: a count at a fixed index) then read past argv; so
 * execute("FCALL") from a user with key patterns crashed the server.
 * GetCommandKeys checks the count (EINVAL) before it looks for keys. */
static int WrongArgumentCount(RedisModuleCtx *ctx, RedisModuleString **args, int argc) {
    int nkeys = 0;
    errno = 0;
    int *positions = RedisModule_GetCommandKeys(ctx, args, argc, &nkeys);
    int wrong = positions == NULL && errno == EINVAL;
    RedisModule_Free(positions);
    return wrong;
}

/* The caller's ACL rules are checked here (command, keys, channels), then
 * the command runs: "S" refuses what a script may not run (EVAL, MULTI,
 * blocking), "W" any write for FCALL_RO, "!" replicates writes. (Redis
 * 7.0's "C" flag would check the same rules but crashes writing its ACL log
 * entry from a timer's context, whose client has no user.) */
static RedisModuleCallReply *CallChecked(RedisModuleCtx *ctx, RedisModuleUser *user, RedisModuleString **args,
                                         int argc, int read_only, const char **refusal) {
    if (WrongArgumentCount(ctx, args, argc)) {
        *refusal = "ERR wrong number of arguments";
        return NULL;
    }
    errno = 0;
    if (RedisModule_ACLCheckCommandPermissions(user, args, argc) != REDISMODULE_OK) {
        *refusal = errno == ENOENT ? "ERR unknown command"
                                   : "NOPERM this user has no permissions to run this command or to access its keys";
        return NULL;
    }
    if (ReadsKeysByPattern(args, argc)) {
        *refusal = "ERR execute() does not run SORT with BY or GET: they read keys no ACL check sees";
        return NULL;
    }
    errno = 0;
    RedisModuleCallReply *reply = RedisModule_Call(ctx, RedisModule_StringPtrLen(args[0], NULL),
                                                   read_only ? "!SEWv" : "!SEv", args + 1, (size_t)(argc - 1));
    if (reply == NULL)
        *refusal = errno == ENOENT ? "ERR unknown command"
                   : errno == EINVAL ? "ERR wrong number of arguments"
                   : errno == ESPIPE ? "ERR this command is not allowed from a function or a script"
                                     : "ERR command could not be called";
    return reply;
}

static void DoCallAs(RedisModuleCtx *ctx, void *arg) {
    CallAs *c = arg;
    RedisModuleString **args = MakeArgs(ctx, &c->call);
    RedisModuleString *username = RedisModule_CreateString(ctx, c->as->user, strlen(c->as->user));
    RedisModuleUser *user = RedisModule_GetModuleUserFromUserName(username);
    /* The main thread may be inside an RDB load (DEBUG RELOAD, a replica's
     * sync) waiting for a library's import: a write now would meet the
     * RDB's copy of its key, which Redis treats as a corrupt file. */
    const char *refusal = user == NULL ? "ERR the user that called the function or script no longer exists"
                          : (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_LOADING)
                              ? ERR_LOADING
                              : OutsideTheSlot(ctx, args, c->call.argc, c->as->slot);
    RedisModuleCallReply *reply = refusal ? NULL : CallChecked(ctx, user, args, c->call.argc, c->as->read_only, &refusal);
    if (reply) {
        c->call.reply = RedisModule_Calloc(1, sizeof(RAI_CallReply));
        CopyReply(reply, c->call.reply);
        RedisModule_FreeCallReply(reply);
    } else {
        c->call.reply = ErrorReply(refusal);
    }
    if (user) RedisModule_FreeModuleUser(user);
    RedisModule_FreeString(ctx, username);
    FreeArgs(ctx, args, c->call.argc);
}

RAI_CallReply *RAI_RedisCallAs(int argc, const char **argv, const size_t *lens, const RAI_CallAs *as) {
    if (argc < 1) return ErrorReply("ERR execute() needs a command");
    CallAs c = {{argc, argv, lens, NULL}, as};
    if (!RAI_OnMainThread(DoCallAs, &c)) return ErrorReply(ERR_SHUTDOWN);
    return c.call.reply;
}

/* ------------------------------------------ the calling client's ACL user */

char *RAI_CallerUserName(RedisModuleCtx *ctx) {
    RedisModuleString *name = RedisModule_GetCurrentUserName(ctx);
    if (name == NULL) return NULL;
    char *copy = RedisModule_Strdup(RedisModule_StringPtrLen(name, NULL));
    RedisModule_FreeString(ctx, name);
    return copy;
}

/* Asks the ACL rules, as Redis would for the command itself; the last
 * argument only fills the command's arity (neither command has keys). */
int RAI_CallerMayRun(RedisModuleCtx *ctx, const char *command, const char *subcommand) {
    RedisModuleString *name = RedisModule_GetCurrentUserName(ctx);
    if (name == NULL) return 1;
    RedisModuleUser *user = RedisModule_GetModuleUserFromUserName(name);
    RedisModuleString *argv[3] = {
        RedisModule_CreateString(ctx, command, strlen(command)),
        RedisModule_CreateString(ctx, subcommand, strlen(subcommand)),
        RedisModule_CreateString(ctx, "x", 1),
    };
    int allowed = user != NULL && RedisModule_ACLCheckCommandPermissions(user, argv, 3) == REDISMODULE_OK;
    for (int i = 0; i < 3; i++) RedisModule_FreeString(ctx, argv[i]);
    if (user) RedisModule_FreeModuleUser(user);
    RedisModule_FreeString(ctx, name);
    return allowed;
}

/* ------------------------------------------------------------------ replies */

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

/* A worker's read of one model, script or tensor key, done on the main thread. */
typedef struct {
    const char *key;
    size_t keylen;
    const char *user;
    int slot;
    RedisModuleType *want; /* RAI_ModelType, RAI_ScriptType or RAI_TensorType */
    const char *noperm;    /* the replies when the user may not read the key */
    const char *empty;     /* ... and when it does not exist */
    void *value;           /* retained */
    int type;
    const char *refusal;
} Lookup;

/* Whether ACL user `name` may read `key` (ACLCheckKeyPermissions: the key
 * patterns only; the command it came with, the script's, was checked). */
static int MayRead(RedisModuleString *key, const char *name) {
    RedisModuleString *username = RedisModule_CreateString(NULL, name, strlen(name));
    RedisModuleUser *user = RedisModule_GetModuleUserFromUserName(username);
    int allowed = user != NULL && RedisModule_ACLCheckKeyPermissions(user, key, REDISMODULE_CMD_KEY_ACCESS) ==
                                      REDISMODULE_OK;
    if (user) RedisModule_FreeModuleUser(user);
    RedisModule_FreeString(NULL, username);
    return allowed;
}

static void DoLookup(RedisModuleCtx *ctx, void *arg) {
    Lookup *l = arg;
    RedisModuleString *name = RedisModule_CreateString(ctx, l->key, l->keylen);
    if (!MayRead(name, l->user)) l->refusal = l->noperm;
    else if (SlotRuleApplies(ctx, l->slot)) l->refusal = KeyOutsideTheSlot(l->key, l->keylen, l->slot);
    RedisModuleKey *k = l->refusal ? NULL : RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    l->type = k ? RedisModule_KeyType(k) : REDISMODULE_KEYTYPE_EMPTY;
    if (l->type == REDISMODULE_KEYTYPE_MODULE && RedisModule_ModuleTypeGetType(k) == l->want) {
        void *value = RedisModule_ModuleTypeGetValue(k);
        l->value = l->want == RAI_ModelType    ? (void *)RAI_ModelRetain(value)
                   : l->want == RAI_ScriptType ? (void *)RAI_ScriptRetain(value)
                                               : (void *)RAI_TensorRetain(value);
    }
    if (k) RedisModule_CloseKey(k);
    RedisModule_FreeString(ctx, name);
}

/* The retained value, or NULL with *err set. */
static void *LookUp(Lookup *l, const char **err) {
    if (!RAI_OnMainThread(DoLookup, l)) {
        *err = ERR_SHUTDOWN;
        return NULL;
    }
    if (l->refusal) *err = l->refusal;
    else if (l->value == NULL) *err = l->type == REDISMODULE_KEYTYPE_EMPTY ? l->empty : REDISMODULE_ERRORMSG_WRONGTYPE;
    return l->value;
}

RAI_Model *RAI_ModelFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err) {
    Lookup l = {key, keylen, user, slot, RAI_ModelType, "NOPERM this user has no permissions to access the model's key",
                "ERR model key is empty", NULL, 0, NULL};
    return LookUp(&l, err);
}

RAI_Script *RAI_ScriptFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err) {
    Lookup l = {key, keylen, user, slot, RAI_ScriptType,
                "NOPERM this user has no permissions to access the script's key", "ERR script key is empty", NULL, 0,
                NULL};
    return LookUp(&l, err);
}

RAI_Tensor *RAI_TensorFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err) {
    Lookup l = {key, keylen, user, slot, RAI_TensorType,
                "NOPERM this user has no permissions to access the tensor's key", "ERR tensor key is empty", NULL, 0,
                NULL};
    return LookUp(&l, err);
}
