/* info.h -- INFO MODULES output of the "ai" module. */
#ifndef RAI_INFO_H
#define RAI_INFO_H

#include "rm_api.h"

/* The RedisAI release whose command set, replies and RDB encoding we speak:
 * clients read it from INFO, and RedisModule_Init gets it as 10207. */
#define RAI_COMPAT_VERSION_STRING "1.2.7"
#define RAI_COMPAT_VERSION 10207

void RAI_InfoFunc(RedisModuleInfoCtx *ctx, int for_crash_report);

#endif
