/* cmd_admin.h -- AI.CONFIG (and, with the models, AI.INFO and the scans). */
#ifndef RAI_CMD_ADMIN_H
#define RAI_CMD_ADMIN_H

#include "rm_api.h"

int RAI_Config_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* True inside MULTI, Lua or any context where BlockClient is refused. */
int RAI_ClientCannotBlock(RedisModuleCtx *ctx);

#endif
