/* parse.h -- argv readers shared by the command handlers (and later the DAG
 * parser). Each returns NULL on success or the exact error text to reply. */
#ifndef RAI_PARSE_H
#define RAI_PARSE_H

#include "rm_api.h"
#include "tensor.h"

/* Access flags reported for keys by the getkeys callbacks (ACL checks them). */
#define RAI_KEY_READ ((int)(REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS))
#define RAI_KEY_WRITE ((int)(REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE))
#define RAI_KEY_READ_WRITE \
    ((int)(REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE))
#define RAI_KEY_ROUTING ((int)(REDISMODULE_CMD_KEY_NOT_KEY | REDISMODULE_CMD_KEY_RO))

/* The arity error naming the command as the client typed it (RedisAI's
 * wording; Redis 7's own WrongArity would print the registered name). */
int RAI_ReplyWrongArity(RedisModuleCtx *ctx, RedisModuleString *cmdname);

/* NUL-terminated copies of n arguments (and their lengths, if lens is given)
 * for a worker thread, which must not touch the client's argv. */
char **RAI_CopyArgStrings(RedisModuleString **argv, int n, size_t **lens);

/* Case-insensitive match of an argument against a keyword. */
int RAI_ArgIs(RedisModuleString *arg, const char *keyword);

/* FLOAT, DOUBLE, INT8..INT64, UINT8, UINT16, BOOL, STRING. */
const char *RAI_ParseDType(RedisModuleString *arg, RAI_DType *out);

/* Builds a tensor from `type [dim ...] [BLOB data | VALUES v ...]`, the
 * arguments of AI.TENSORSET after the key. Nothing is allocated on error. */
const char *RAI_TensorFromArgs(RedisModuleString **argv, int argc, RAI_Tensor **out);

#endif
