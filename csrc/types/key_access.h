/* key_access.h -- opening keys that must hold one of our types. Main thread. */
#ifndef RAI_KEY_ACCESS_H
#define RAI_KEY_ACCESS_H

#include "rm_api.h"

/* The value stored at keyname if it is of `type`; NULL after replying
 * `empty_error` (no such key) or WRONGTYPE. The value stays valid until the
 * main thread moves on. */
void *RAI_ReadTypedKey(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleType *type,
                       const char *empty_error);

/* keyname opened for writing if it is empty or of `type`; else replies
 * WRONGTYPE and returns NULL. */
RedisModuleKey *RAI_OpenTypedKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname,
                                        RedisModuleType *type);

/* 1 if keyname is empty or of `type`; else replies WRONGTYPE and returns 0. */
int RAI_TypedKeyWritable(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleType *type);

#endif
