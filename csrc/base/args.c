/* args.c -- keyword matching, the checked count reader, argument copies
 * for workers, and the arity error. */
#include "base/args.h"

#include <string.h>
#include <strings.h>

int RAI_ReplyWrongArity(RedisModuleCtx *ctx, RedisModuleString *cmdname) {
    RedisModuleString *msg = RedisModule_CreateStringPrintf(
        ctx, "ERR wrong number of arguments for '%s' command", RedisModule_StringPtrLen(cmdname, NULL));
    RedisModule_ReplyWithError(ctx, RedisModule_StringPtrLen(msg, NULL));
    RedisModule_FreeString(ctx, msg);
    return REDISMODULE_OK;
}

char **RAI_CopyArgStrings(RedisModuleString **argv, int n, size_t **lens) {
    char **out = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    if (lens) *lens = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(size_t));
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *s = RedisModule_StringPtrLen(argv[i], &len);
        out[i] = RedisModule_Alloc(len + 1);
        memcpy(out[i], s, len);
        out[i][len] = '\0';
        if (lens) (*lens)[i] = len;
    }
    return out;
}

RAI_CountCheck RAI_ReadCount(RedisModuleString *arg, long long min, int available, long long *n) {
    if (RedisModule_StringToLongLong(arg, n) != REDISMODULE_OK) return RAI_COUNT_NOT_A_NUMBER;
    if (*n < min) return RAI_COUNT_BELOW_MIN;
    if (*n > (available > 0 ? available : 0)) return RAI_COUNT_BEYOND_ARGS;
    return RAI_COUNT_OK;
}

int RAI_ArgIs(RedisModuleString *arg, const char *keyword) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(arg, &len);
    return len == strlen(keyword) && strncasecmp(s, keyword, len) == 0;
}

