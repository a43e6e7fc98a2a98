/* cmd_metrics.h -- AI.METRICS. */
#ifndef RAI_CMD_METRICS_H
#define RAI_CMD_METRICS_H

#include "rm_api.h"

int RAI_Metrics_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
