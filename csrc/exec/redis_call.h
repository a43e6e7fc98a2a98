/* redis_call.h -- a Redis command run for a worker thread, for scripts'
 * redis.execute(), and a model looked up for one, for
 * redisAI.model_execute(). Both are done on the main thread while the worker
 * waits (sync_run.h); the caller must NOT hold the GIL (the main thread may be
 * waiting for another worker that needs it). */
#ifndef RAI_REDIS_CALL_H
#define RAI_REDIS_CALL_H

#include <stddef.h>

#include "types/model.h"
#include "rm_api.h"

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

/* How a function's execute() runs its command: as the calling client's ACL
 * user, without writes for AI.FCALL_RO, and in cluster mode touching only
 * keys of the call's slot. */
typedef struct {
    const char *user; /* ACL user name */
    int read_only;
    int slot;    /* cluster mode: the one slot its keys may hash to; -1: the call had no keys */
} RAI_CallAs;

/* Runs `argv[0] argv[1..]` for a function, checked as `as` says (replicated
 * like the client's own writes); a refusal is an ERROR reply. */
RAI_CallReply *RAI_RedisCallAs(int argc, const char **argv, const size_t *lens, const RAI_CallAs *as);

/* The model under `key`, retained; NULL with *err set to the reply text. */
RAI_Model *RAI_ModelFromWorker(const char *key, size_t keylen, const char **err);

#endif
