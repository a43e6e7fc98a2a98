/* key_access.c -- type-checked key access shared by tensors, models and scripts. */
#include "types/key_access.h"

static int Holds(RedisModuleKey *key, RedisModuleType *type) {
    return RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_MODULE && RedisModule_ModuleTypeGetType(key) == type;
}

void *RAI_ReadTypedKey(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleType *type,
                       const char *empty_error) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, keyname, REDISMODULE_READ);
    int kind = RedisModule_KeyType(key); /* a missing key opened for reading is NULL: EMPTY */
    void *value = Holds(key, type) ? RedisModule_ModuleTypeGetValue(key) : NULL;
    RedisModule_CloseKey(key);
    if (value == NULL)
        RedisModule_ReplyWithError(ctx, kind == REDISMODULE_KEYTYPE_EMPTY ? empty_error : REDISMODULE_ERRORMSG_WRONGTYPE);
    return value;
}

RedisModuleKey *RAI_OpenTypedKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname,
                                        RedisModuleType *type) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, keyname, REDISMODULE_READ | REDISMODULE_WRITE);
    if (RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_EMPTY || Holds(key, type)) return key;
    RedisModule_CloseKey(key);
    RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    return NULL;
}

int RAI_TypedKeyWritable(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleType *type) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, keyname, REDISMODULE_READ);
    int ok = RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_EMPTY || Holds(key, type);
    RedisModule_CloseKey(key);
    if (!ok) RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    return ok;
}
