/* cmd_model.h -- the model commands. */
#ifndef RAI_CMD_MODEL_H
#define RAI_CMD_MODEL_H

#include "rm_api.h"

int RAI_ModelStore_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelSet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelGet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelDel_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelExecute_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_ModelRun_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
