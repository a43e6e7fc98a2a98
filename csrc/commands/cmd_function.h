/* cmd_function.h -- in-server Python functions: AI.FUNCTION (LOAD, DELETE,
 * LIST, FLUSH, KILL), AI.FCALL / AI.FCALL_RO (cmd_fcall.c), and the
 * libraries' persistence. */
#ifndef RAI_CMD_FUNCTION_H
#define RAI_CMD_FUNCTION_H

#include "rm_api.h"

int RAI_Function_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_FCall_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_FCallRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* The data type that carries no keys, only the libraries' sources in the
 * RDB's module aux data (so also in the AOF's RDB preamble). Module load. */
int RAI_FunctionPersistenceRegister(RedisModuleCtx *ctx);

#endif
