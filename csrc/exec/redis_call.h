/* redis_call.h -- a Redis command run for a worker thread as the ACL user of
 * the client that started it (a function's execute(), a script's
 * redis.execute()), and a model, script or tensor looked up for one (the
 * redisAI runners and getTensorFromKey, redisAI.model_execute()). Both are done on the main thread while the worker
 * waits (sync_run.h); the caller must NOT hold the GIL (the main thread may be
 * waiting for another worker that needs it). Also the main thread's
 * questions about that client's ACL user, which the commands ask. */
#ifndef RAI_REDIS_CALL_H
#define RAI_REDIS_CALL_H

#include <stddef.h>

#include "types/model.h"
#include "types/script.h"
#include "types/tensor.h"
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

void RAI_CallReplyFree(RAI_CallReply *reply);

/* A script's redis.execute() is not routed (docs/deployment.md): its keys may
 * be in any slot the node serves. */
#define RAI_CALL_ANY_SLOT (-2)

/* How a worker's command runs: as the calling client's ACL user, without
 * writes for AI.FCALL_RO, and in cluster mode (functions) touching only keys
 * of the call's slot. */
typedef struct {
    const char *user; /* ACL user name */
    int read_only;
    int slot;    /* cluster mode: the one slot its keys may hash to; -1: the call had no keys;
                    RAI_CALL_ANY_SLOT: no slot rule */
} RAI_CallAs;

/* Runs `argv[0] argv[1..]` for a function or script, checked as `as` says
 * (replicated like the client's own writes); a refusal is an ERROR reply. */
RAI_CallReply *RAI_RedisCallAs(int argc, const char **argv, const size_t *lens, const RAI_CallAs *as);

/* Main thread: the calling client's ACL user name (Alloc'd), which its
 * function's execute() and script's redis.execute() run as; NULL where the
 * command has no user (sent by our primary, replayed from the AOF). */
char *RAI_CallerUserName(RedisModuleCtx *ctx);

/* Main thread: whether the calling client's ACL user may run `command
 * subcommand` (a command with no user is the server's own: yes). The admin
 * gates: changing AI.FUNCTION libraries needs MODULE LOAD, AI.CONFIG's
 * setters CONFIG SET. */
int RAI_CallerMayRun(RedisModuleCtx *ctx, const char *command, const char *subcommand);

/* The model under `key`, retained, if ACL user `user` may read that key
 * and (cluster mode) it is in `slot` (RAI_CallAs's slot rule); NULL with
 * *err set to the reply text. */
RAI_Model *RAI_ModelFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err);

/* The same for the script under `key` (a function's createScriptRunner). */
RAI_Script *RAI_ScriptFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err);

/* The same for the tensor under `key` (a function's getTensorFromKey: no
 * command runs, no reply is built, the stored tensor is shared, not copied). */
RAI_Tensor *RAI_TensorFromWorker(const char *key, size_t keylen, const char *user, int slot, const char **err);

#endif
