/* cmd_readthrough.c -- read-through on a key miss: a GET of a key that a
 * read-through trigger watches (register_trigger(..., event="keymiss",
 * commands=["GET"])) waits for the trigger when it misses and answers with
 * what the trigger gives (override_reply or its return value).
 *
 * Redis 7.0 offers no way to block the client of a command from the keymiss
 * notification (its context is a temporary client), so a command filter
 * rewrites such a GET, before it runs, into AI._READTHROUGH key. That
 * command runs the GET itself; a hit (or an error) is the reply as it is.
 * On a miss it blocks the client and queues the trigger on the function
 * workers (py_triggers.c), whose answer the reply callback sends. Inside
 * MULTI, Lua or a context that cannot block, a miss answers nil and no
 * trigger runs. Nothing is written from the notification or the filter. */
#include "commands/cmd_readthrough.h"

#include <string.h>
#include <strings.h>

#include "commands/cmd_admin.h"
#include "python/py_triggers.h"

#define READTHROUGH_COMMAND "AI._READTHROUGH"

/* Every command passes here (main thread): cheap unless a read-through
 * trigger is loaded and the command is `GET key` of a watched key. */
static void ReadThroughFilter(RedisModuleCommandFilterCtx *filter) {
    if (RedisModule_CommandFilterArgsCount(filter) != 2) return;
    size_t len;
    const char *cmd = RedisModule_StringPtrLen(RedisModule_CommandFilterArgGet(filter, 0), &len);
    if (len != 3 || strncasecmp(cmd, "get", 3) != 0) return;
    const char *key = RedisModule_StringPtrLen(RedisModule_CommandFilterArgGet(filter, 1), &len);
    if (!RAI_TriggersReadThroughWanted(key, len)) return;
    RedisModuleString *name = RedisModule_CreateString(NULL, READTHROUGH_COMMAND, strlen(READTHROUGH_COMMAND));
    RedisModule_CommandFilterArgReplace(filter, 0, name); /* the filter takes the string */
}

int RAI_ReadThroughFilterRegister(RedisModuleCtx *ctx) {
    return RedisModule_RegisterCommandFilter(ctx, ReadThroughFilter, REDISMODULE_CMDFILTER_NOSELF) != NULL
               ? REDISMODULE_OK
               : REDISMODULE_ERR;
}

/* GET's reply as GET would send it, in the client's protocol (RESP2's null
 * copied verbatim would not be RESP3's). */
static void ReplyAsGet(RedisModuleCtx *ctx, RedisModuleCallReply *reply) {
    size_t len;
    const char *s = RedisModule_CallReplyStringPtr(reply, &len);
    switch (RedisModule_CallReplyType(reply)) {
    case REDISMODULE_REPLY_STRING: RedisModule_ReplyWithStringBuffer(ctx, s, len); break;
    case REDISMODULE_REPLY_ERROR: RedisModule_ReplyWithCallReply(ctx, reply); break; /* an error is the same in both */
    default: RedisModule_ReplyWithNull(ctx);
    }
}

/* AI._READTHROUGH key */
int RAI_ReadThrough_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    RedisModuleCallReply *reply = RedisModule_Call(ctx, "GET", "s", argv[1]);
    if (reply == NULL) return RedisModule_ReplyWithError(ctx, "ERR GET could not run");
    int missed = RedisModule_CallReplyType(reply) == REDISMODULE_REPLY_NULL;
    if (!missed || RAI_ClientCannotBlock(ctx) || !RAI_TriggerReadThrough(ctx, argv[1])) ReplyAsGet(ctx, reply);
    RedisModule_FreeCallReply(reply);
    return REDISMODULE_OK;
}
