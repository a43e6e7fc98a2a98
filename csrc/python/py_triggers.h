/* py_triggers.h -- keyspace triggers of function libraries: the module's
 * keyspace-notification subscription feeds a bounded queue of records, and
 * function workers run the triggers' Python callbacks on them; read-through
 * triggers answer a GET that waits for them. */
#ifndef RAI_PY_TRIGGERS_H
#define RAI_PY_TRIGGERS_H

#include "rm_api.h"

/* At most this many records wait or run at once; an event past it is dropped
 * (and counted). */
#define RAI_TRIGGER_QUEUE_MAX 1024

/* A trigger's execute() writes fire triggers one level deeper; an event past
 * this depth fires none (and is counted). */
#define RAI_TRIGGER_MAX_DEPTH 8

/* At module load (main thread): subscribes to the keyspace events. */
int RAI_TriggersSubscribe(RedisModuleCtx *ctx);

/* Main thread, the GET filter's question: whether a read-through trigger
 * watches `key` (cheap when there is none). */
int RAI_TriggersReadThroughWanted(const char *key, size_t keylen);

/* Main thread, in AI._READTHROUGH after its GET missed, where the client can
 * block: blocks it and queues the read-through trigger of `key`, whose
 * answer is the reply. 0 (nothing done; the caller replies nil) on a
 * replica, when no trigger watches the key, or when the queue is full. */
int RAI_TriggerReadThrough(RedisModuleCtx *ctx, RedisModuleString *key);

/* INFO's "functions" section: triggers, queue and counters. */
void RAI_TriggersInfo(RedisModuleInfoCtx *ctx);

#endif
