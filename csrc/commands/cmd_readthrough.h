/* cmd_readthrough.h -- read-through on a key miss: the GET filter and the
 * AI._READTHROUGH command it rewrites such a GET into. */
#ifndef RAI_CMD_READTHROUGH_H
#define RAI_CMD_READTHROUGH_H

#include "rm_api.h"

/* At module load: the command filter that sends GETs of watched keys here. */
int RAI_ReadThroughFilterRegister(RedisModuleCtx *ctx);

int RAI_ReadThrough_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
