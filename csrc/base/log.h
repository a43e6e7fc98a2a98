/* log.h -- the shim's one logging channel, over RedisModule_Log.
 *
 * RAI_LogCtx is a detached thread-safe context made at load, so worker
 * threads and Python's logging handler can log with the module's name. */
#ifndef RAI_LOG_H
#define RAI_LOG_H

#include "rm_api.h"

extern RedisModuleCtx *RAI_LogCtx;

#define RAI_LOG_WARNING(...) RedisModule_Log(RAI_LogCtx, "warning", __VA_ARGS__)
#define RAI_LOG_NOTICE(...) RedisModule_Log(RAI_LogCtx, "notice", __VA_ARGS__)
#define RAI_LOG_VERBOSE(...) RedisModule_Log(RAI_LogCtx, "verbose", __VA_ARGS__)

#endif
