/* args.h -- readers of a command's arguments that every layer may use:
 * keyword matching, the one checked count reader, copies for workers, and
 * RedisAI's arity error. */
#ifndef RAI_ARGS_H
#define RAI_ARGS_H

#include "rm_api.h"

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

#endif
