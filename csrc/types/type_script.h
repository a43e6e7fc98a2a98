/* type_script.h -- the AI_SCRIPT data type. */
#ifndef RAI_TYPE_SCRIPT_H
#define RAI_TYPE_SCRIPT_H

#include "rm_api.h"
#include "types/script.h"

extern RedisModuleType *RAI_ScriptType;

int RAI_ScriptTypeRegister(RedisModuleCtx *ctx);

/* The script stored at keyname; NULL after replying "script key is empty"
 * or WRONGTYPE. */
RAI_Script *RAI_ReadScriptKey(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* Opens keyname for writing if it is empty or a script; else replies
 * WRONGTYPE and returns NULL. */
RedisModuleKey *RAI_OpenScriptKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* The script now lives at keyname: its runs count to that key's metric
 * series (main thread; cheap when it is linked there already). */
void RAI_ScriptLinkKey(RAI_Script *s, const RedisModuleString *keyname);

#endif
