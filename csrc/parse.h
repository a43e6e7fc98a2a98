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

/* What the one count reader found (see RAI_ReadCount). */
typedef enum {
    RAI_COUNT_OK,
    RAI_COUNT_NOT_A_NUMBER,
    RAI_COUNT_BELOW_MIN,
    RAI_COUNT_BEYOND_ARGS, /* names more arguments than the command has left */
} RAI_CountCheck;

/* The one reader of every count on a command line (INPUTS n, OUTPUTS n,
 * KEYS n, ARGS n, ENTRY_POINTS n, LOAD n, PERSIST n): it must parse, be at
 * least `min`, and name no more than the `available` arguments that follow
 * it. The count is compared with what is left, never added to a position,
 * so 2^63-1 cannot wrap into an index that looks valid. *n is set whenever
 * the argument parses (callers that must check it against a model before
 * the argument count, as RedisAI does, can); on RAI_COUNT_OK it fits an int. */
RAI_CountCheck RAI_ReadCount(RedisModuleString *arg, long long min, int available, long long *n);

/* The number of arguments after argv[pos] (0 when pos is past the end). */
static inline int RAI_ArgsAfter(int argc, int pos) { return pos + 1 < argc ? argc - pos - 1 : 0; }

/* Case-insensitive match of an argument against a keyword. */
int RAI_ArgIs(RedisModuleString *arg, const char *keyword);

/* FLOAT, DOUBLE, INT8..INT64, UINT8, UINT16, BOOL, STRING. */
const char *RAI_ParseDType(RedisModuleString *arg, RAI_DType *out);

/* Builds a tensor from `type [dim ...] [BLOB data | VALUES v ...]`, the
 * arguments of AI.TENSORSET after the key. Nothing is allocated on error. */
const char *RAI_TensorFromArgs(RedisModuleString **argv, int argc, RAI_Tensor **out);

#endif
