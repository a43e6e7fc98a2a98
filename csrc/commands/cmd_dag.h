/* cmd_dag.h -- AI.DAGEXECUTE(_RO) and the deprecated AI.DAGRUN(_RO). */
#ifndef RAI_CMD_DAG_H
#define RAI_CMD_DAG_H

#include "rm_api.h"

int RAI_DagExecute_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_DagExecuteRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_DagRun_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_DagRunRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
