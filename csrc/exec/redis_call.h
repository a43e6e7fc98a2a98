/* redis_call.h -- a Redis command run from a worker thread, for scripts'
 * redis.execute(), and a model looked up from one, for
 * redisAI.model_execute(). Both take the Redis lock (or, for a run the main
 * thread waits for, hand the work to it: sync_run.h); the caller must NOT
 * hold the GIL (a worker that held it while waiting for the lock could
 * deadlock with another worker). */
#ifndef RAI_REDIS_CALL_H
#define RAI_REDIS_CALL_H

#include <stddef.h>

#include "types/model.h"
#include "rm_api.h"

/* Work that needs Redis: done with ctx while nothing else touches Redis. */
typedef void (*RAI_RedisWork)(RedisModuleCtx *ctx, void *arg);

/* Where this thread's Redis work goes instead of the Redis lock: route(
 * route_arg, work, arg) must run work(ctx, arg) somewhere it may and return
 * when it is done. NULL: the lock again. Per thread. */
typedef void (*RAI_RedisRoute)(void *route_arg, RAI_RedisWork work, void *arg);
void RAI_RedisRouteSet(RAI_RedisRoute route, void *route_arg);

/* A command's reply copied out of Redis, so it can be read after the lock
 * is released. */
typedef struct RAI_CallReply {
    enum { RAI_REPLY_NULL, RAI_REPLY_STRING, RAI_REPLY_INTEGER, RAI_REPLY_ARRAY, RAI_REPLY_ERROR } type;
    long long integer;
    char *str; /* STRING and ERROR */
    size_t len;
    size_t n; /* ARRAY */
    struct RAI_CallReply *elements;
} RAI_CallReply;

/* Runs `argv[0] argv[1..]` (replicated like the client's own writes). */
RAI_CallReply *RAI_RedisCall(int argc, const char **argv, const size_t *lens);
void RAI_CallReplyFree(RAI_CallReply *reply);

/* The model under `key`, retained; NULL with *err set to the reply text. */
RAI_Model *RAI_ModelFromWorker(const char *key, size_t keylen, const char **err);

#endif
