/* parse.h -- the tensor argument parser shared by AI.TENSORSET and the DAG's
 * TENSORSET op, and the key access flags the getkeys callbacks report. Each
 * parser returns NULL on success or the exact error text to reply. */
#ifndef RAI_PARSE_H
#define RAI_PARSE_H

#include "base/args.h"
#include "rm_api.h"
#include "types/tensor.h"

/* Access flags reported for keys by the getkeys callbacks (ACL checks them). */
#define RAI_KEY_READ ((int)(REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS))
#define RAI_KEY_WRITE ((int)(REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE))
#define RAI_KEY_READ_WRITE \
    ((int)(REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE))
#define RAI_KEY_ROUTING ((int)(REDISMODULE_CMD_KEY_NOT_KEY | REDISMODULE_CMD_KEY_RO))

/* FLOAT, DOUBLE, INT8..INT64, UINT8, UINT16, BOOL, STRING. */
const char *RAI_ParseDType(RedisModuleString *arg, RAI_DType *out);

/* Builds a tensor from `type [dim ...] [BLOB data | VALUES v ...]`, the
 * arguments of AI.TENSORSET after the key. Nothing is allocated on error. */
const char *RAI_TensorFromArgs(RedisModuleString **argv, int argc, RAI_Tensor **out);

#endif
