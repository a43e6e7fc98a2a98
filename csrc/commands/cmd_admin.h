/* cmd_admin.h -- AI.CONFIG, AI.INFO and the _MODELSCAN / _SCRIPTSCAN listings. */
#ifndef RAI_CMD_ADMIN_H
#define RAI_CMD_ADMIN_H

#include "rm_api.h"

int RAI_Config_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_Info_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelScan_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ScriptScan_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* True inside MULTI, Lua or any context where BlockClient is refused. */
int RAI_ClientCannotBlock(RedisModuleCtx *ctx);

/* For the run commands, which wait for their jobs on the main thread where
 * the client cannot block (MULTI, Lua): replies RedisAI's error and returns 1
 * where they cannot wait either (called by a worker's script, or while the
 * main thread already waits for a job). */
int RAI_RefuseIfCannotWait(RedisModuleCtx *ctx);

#endif
