/* py_triggers.c -- keyspace triggers (register_trigger in a function library).
 *
 * The keyspace-notification callback runs on the main thread, inside the
 * command that caused the event. It does no Python and writes nothing: it
 * matches the event against the installed libraries' triggers (event name,
 * key prefix), and for each match queues a record (library, trigger, key,
 * event, key type, depth) as a job on the function queue, unless
 * RAI_TRIGGER_QUEUE_MAX records already wait or run, in which case the event
 * is dropped and counted. A function worker then runs the callback in Python
 * with the record as a dict; its execute() runs as the ACL user that loaded
 * the library.
 *
 * Recursion: a worker tags the Redis work it hands to the main thread with
 * its record's depth + 1 (sync_run.h's work tag), so an event caused by a
 * trigger's own execute() is seen here with that depth, and the records it
 * queues carry it. Past RAI_TRIGGER_MAX_DEPTH nothing is queued: a trigger
 * that writes the keys it watches runs at most that many times per client
 * write, not forever. Events from clients and from AI.FCALL functions are
 * depth 0.
 *
 * Triggers fire on masters only, and not while the server loads (an RDB, the
 * AOF, a full sync): those writes are not new.
 *
 * Read-through triggers (keymiss with commands=["GET"]) are not fired by
 * events: AI._READTHROUGH (commands/cmd_readthrough.c) queues their record
 * with the GET's blocked client, the worker keeps the callback's answer in
 * the record, and the reply callback here sends it. */
#include "python/py_triggers.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <string.h>

#include "base/keyslot.h"
#include "base/log.h"
#include "exec/job.h"
#include "exec/run_queue.h"
#include "exec/sync_run.h"
#include "python/py_bridge.h"
#include "python/py_functions.h"
#include "python/py_gil.h"
#include "python/py_runtime.h"
#include "types/function_lib.h"

/* One event for one trigger. */
typedef struct {
    RAI_FunctionLib *lib; /* retained: a DELETE while it waits leaves it intact */
    int trigger;          /* index in lib->triggers */
    char *key;
    size_t keylen;
    char *event;
    const char *type; /* static */
    int depth;
    int slot;
    /* A read-through's answer for the GET that waits (job->bc): */
    int want_reply;
    enum { RT_NIL, RT_BULK, RT_ERROR, RT_STATUS, RT_INT } reply_kind;
    char *reply;
    size_t replylen;
} TriggerRecord;

/* Relaxed atomics: read by INFO, written by the main thread and workers. */
static long long in_flight;
static unsigned long long runs, errors, dropped, stopped;

static pthread_mutex_t last_error_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[256];

static void FreeRecord(void *arg) {
    TriggerRecord *rec = arg;
    RAI_FunctionLibRelease(rec->lib);
    RedisModule_Free(rec->key);
    RedisModule_Free(rec->event);
    RedisModule_Free(rec->reply);
    RedisModule_Free(rec);
}

/* --------------------------------------------------------- running (worker) */

/* The last failure, one line, for INFO; logged at verbose (a failing trigger
 * may fail on every write). */
static void RememberText(const char *lib, const char *trigger, const char *msg) {
    pthread_mutex_lock(&last_error_lock);
    snprintf(last_error, sizeof(last_error), "%s.%s %s", lib, trigger, msg);
    for (char *c = last_error; *c; c++) { /* one INFO value: no line breaks, nothing parsers split on */
        if (strchr("\r\n:,=", *c)) *c = ' ';
    }
    pthread_mutex_unlock(&last_error_lock);
    RAI_LOG_VERBOSE("trigger %s.%s failed: %s", lib, trigger, msg);
    __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

/* The pending Python exception, remembered and cleared. */
static void RememberError(const char *lib, const char *trigger) {
    if (PyErr_ExceptionMatches(RAI_PyFunctionKilledType())) { /* it has no text of its own */
        PyErr_Clear();
        RememberText(lib, trigger, "killed by AI.FUNCTION KILL");
        return;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    RememberText(lib, trigger, msg ? msg : "an error without text");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* A read-through's answer into the record: fire_trigger's (kind, bytes),
 * kind nil, bulk, error, status or int, or exception (the callback raised:
 * an error answer that also counts as the trigger's failure). NULL or any
 * other shape: the call itself failed. Returns the failure's text, or NULL. */
static const char *TakeReply(TriggerRecord *rec, PyObject *result) {
    static const char *const kinds[] = {"nil", "bulk", "error", "status", "int"};
    const char *kind = "exception", *data = "ERR the read-through trigger failed";
    Py_ssize_t len = (Py_ssize_t)strlen(data);
    if (result == NULL || !PyArg_ParseTuple(result, "sy#", &kind, &data, &len)) PyErr_Clear();
    rec->reply_kind = RT_ERROR;
    for (int i = 0; i < 5; i++) {
        if (strcmp(kind, kinds[i]) == 0) rec->reply_kind = i;
    }
    rec->reply = RedisModule_Alloc((size_t)len + 1);
    memcpy(rec->reply, data, (size_t)len);
    rec->reply[len] = '\0';
    rec->replylen = (size_t)len;
    return strcmp(kind, "exception") == 0 ? rec->reply : NULL;
}

/* The callback, with the GIL; the Redis work it hands over carries depth + 1. */
static void RunTrigger(RAI_Job **jobs, int n) {
    (void)n;
    TriggerRecord *rec = jobs[0]->payload;
    RAI_FunctionLib *lib = rec->lib;
    if (lib->py_handle == NULL) return; /* its import failed at start-up: no callbacks */
    const RAI_Trigger *t = &lib->triggers[rec->trigger];
    const char *user = lib->loaded_by ? lib->loaded_by : "default";
    RAI_SetWorkTag(rec->depth + 1);
    RAI_GilTake();
    RAI_RunningCall self; /* AI.FUNCTION KILL reaches a runaway trigger too */
    RAI_PyCallEnter(&self);
    PyObject *result = PyObject_CallFunction(RAI_PyEntryPoint(RAI_PY_FIRE_TRIGGER), "Osy#ssyiO",
                                             (PyObject *)lib->py_handle, t->name, rec->key,
                                             (Py_ssize_t)rec->keylen, rec->event, rec->type, user, rec->slot,
                                             rec->want_reply ? Py_True : Py_False);
    RAI_PyCallLeave(&self);
    __atomic_add_fetch(&runs, 1, __ATOMIC_RELAXED);
    if (result == NULL) {
        RememberError(lib->name, t->name);
        if (rec->want_reply) TakeReply(rec, NULL);
    } else if (rec->want_reply) {
        const char *failure = TakeReply(rec, result);
        if (failure) RememberText(lib->name, t->name, failure);
    }
    Py_XDECREF(result);
    RAI_GilDrop();
    RAI_SetWorkTag(0);
}

static void TriggerDone(RAI_Job *job) {
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_RELAXED);
    if (job->bc) RedisModule_UnblockClient(job->bc, job); /* a read-through: its reply callback answers */
    else RAI_JobFree(job);
}

static const RAI_JobOps TriggerJob = {"trigger", 0, RunTrigger, TriggerDone};

/* ------------------------------------------------- the event (main thread) */

/* Redis's TYPE name of the key the event is about ("none" once it is gone). */
static const char *KeyTypeName(RedisModuleCtx *ctx, int type, RedisModuleString *key) {
    if (type & REDISMODULE_NOTIFY_STRING) return "string";
    if (type & REDISMODULE_NOTIFY_HASH) return "hash";
    if (type & REDISMODULE_NOTIFY_LIST) return "list";
    if (type & REDISMODULE_NOTIFY_SET) return "set";
    if (type & REDISMODULE_NOTIFY_ZSET) return "zset";
    if (type & REDISMODULE_NOTIFY_STREAM) return "stream";
    if (type & REDISMODULE_NOTIFY_MODULE) return "module";
    if (!(type & REDISMODULE_NOTIFY_GENERIC)) return "none"; /* expired, evicted, keymiss */
    /* del, rename, expire, ...: what is there now (NOTOUCH: no LRU change). */
    RedisModuleKey *k = RedisModule_OpenKey(ctx, key, REDISMODULE_READ | REDISMODULE_OPEN_KEY_NOTOUCH);
    static const char *const names[] = {"none", "string", "list", "hash", "set", "zset", "module", "stream"};
    int kt = RedisModule_KeyType(k);
    RedisModule_CloseKey(k);
    return kt >= 0 && kt <= 7 ? names[kt] : "none";
}

static int Matches(const RAI_Trigger *t, int type, const char *event, const char *key, size_t keylen) {
    int keymiss = (type & REDISMODULE_NOTIFY_KEY_MISS) != 0;
    if (t->readthrough) return 0; /* fired by the GET it answers (RAI_TriggerReadThrough), not by events */
    if (strcmp(t->event, "*") == 0 ? keymiss : strcmp(t->event, event) != 0) return 0;
    return keylen >= t->prefixlen && memcmp(key, t->prefix, t->prefixlen) == 0;
}

/* The record's job, queued; NULL (counted as dropped) if the function queue cannot start. */
static RAI_Job *Queue(RAI_FunctionLib *lib, int trigger, const char *key, size_t keylen, const char *event,
                      const char *type, int depth, RedisModuleBlockedClient *bc) {
    RAI_RunQueue *queue = RAI_FunctionQueue();
    if (queue == NULL) {
        __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    TriggerRecord *rec = RedisModule_Calloc(1, sizeof(*rec));
    rec->lib = RAI_FunctionLibRetain(lib);
    rec->trigger = trigger;
    rec->key = RedisModule_Alloc(keylen + 1);
    memcpy(rec->key, key, keylen);
    rec->key[keylen] = '\0';
    rec->keylen = keylen;
    rec->event = RedisModule_Strdup(event);
    rec->type = type;
    rec->depth = depth;
    rec->slot = RAI_KeySlot(key, keylen);
    rec->want_reply = bc != NULL;
    RAI_Job *job = RAI_JobNew(&TriggerJob, NULL);
    job->payload = rec;
    job->free_payload = FreeRecord;
    job->bc = bc;
    __atomic_add_fetch(&in_flight, 1, __ATOMIC_RELAXED);
    RAI_RunQueuePush(queue, job);
    return job;
}

/* Masters only, not while loading: asked once per event, and only once a
 * trigger matched (GetContextFlags is not free and most writes match none). */
static int MayFire(RedisModuleCtx *ctx) {
    int flags = RedisModule_GetContextFlags(ctx);
    return (flags & REDISMODULE_CTX_FLAGS_MASTER) && !(flags & REDISMODULE_CTX_FLAGS_LOADING);
}

static int OnKeyspaceEvent(RedisModuleCtx *ctx, int type, const char *event, RedisModuleString *key) {
    if (RAI_FunctionTriggerCount() == 0) return REDISMODULE_OK; /* the common case */
    size_t keylen;
    const char *k = RedisModule_StringPtrLen(key, &keylen);
    int depth = RAI_CurrentWorkTag(), checked = 0;
    const char *type_name = NULL;
    for (size_t i = 0; i < RAI_FunctionLibCount(); i++) {
        RAI_FunctionLib *lib = RAI_FunctionLibAt(i);
        for (int t = 0; t < lib->ntriggers; t++) {
            if (!Matches(&lib->triggers[t], type, event, k, keylen)) continue;
            if (!checked++ && !MayFire(ctx)) return REDISMODULE_OK;
            if (depth > RAI_TRIGGER_MAX_DEPTH) {
                __atomic_add_fetch(&stopped, 1, __ATOMIC_RELAXED);
                continue;
            }
            if (__atomic_load_n(&in_flight, __ATOMIC_RELAXED) >= RAI_TRIGGER_QUEUE_MAX) {
                __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
                continue;
            }
            if (type_name == NULL) type_name = KeyTypeName(ctx, type, key);
            Queue(lib, t, k, keylen, event, type_name, depth, NULL);
        }
    }
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------ read-through */

static const RAI_Trigger *ReadThroughFor(const char *key, size_t keylen, RAI_FunctionLib **lib, int *index) {
    for (size_t i = 0; i < RAI_FunctionLibCount(); i++) {
        RAI_FunctionLib *l = RAI_FunctionLibAt(i);
        for (int t = 0; t < l->ntriggers; t++) {
            const RAI_Trigger *tr = &l->triggers[t];
            if (tr->readthrough && keylen >= tr->prefixlen && memcmp(key, tr->prefix, tr->prefixlen) == 0) {
                *lib = l;
                *index = t;
                return tr;
            }
        }
    }
    return NULL;
}

int RAI_TriggersReadThroughWanted(const char *key, size_t keylen) {
    if (RAI_FunctionReadThroughCount() == 0) return 0;
    RAI_FunctionLib *lib;
    int index;
    return ReadThroughFor(key, keylen, &lib, &index) != NULL;
}

/* The blocked GET's answer, from the record (main thread). */
static int ReadThrough_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RAI_Job *job = RedisModule_GetBlockedClientPrivateData(ctx);
    TriggerRecord *rec = job->payload;
    RAI_DoPostedWork(ctx); /* the trigger's model runs counted before the answer */
    switch (rec->reply_kind) {
    case RT_BULK: return RedisModule_ReplyWithStringBuffer(ctx, rec->reply, rec->replylen);
    case RT_ERROR: return RedisModule_ReplyWithError(ctx, rec->reply);
    case RT_STATUS: return RedisModule_ReplyWithSimpleString(ctx, rec->reply);
    case RT_INT: return RedisModule_ReplyWithLongLong(ctx, strtoll(rec->reply, NULL, 10));
    default: return RedisModule_ReplyWithNull(ctx);
    }
}

static void ReadThrough_Free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RAI_JobFree(privdata);
}

int RAI_TriggerReadThrough(RedisModuleCtx *ctx, RedisModuleString *key) {
    size_t keylen;
    const char *k = RedisModule_StringPtrLen(key, &keylen);
    RAI_FunctionLib *lib;
    int index;
    /* Masters only, as every trigger: a replica's GET is a plain miss. */
    if (!(RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_MASTER)) return 0;
    if (ReadThroughFor(k, keylen, &lib, &index) == NULL) return 0;
    if (__atomic_load_n(&in_flight, __ATOMIC_RELAXED) >= RAI_TRIGGER_QUEUE_MAX) {
        __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
        return 0;
    }
    RedisModuleBlockedClient *bc = RedisModule_BlockClient(ctx, ReadThrough_Reply, NULL, ReadThrough_Free, 0);
    if (Queue(lib, index, k, keylen, "keymiss", "none", RAI_CurrentWorkTag(), bc) == NULL) {
        RedisModule_AbortBlock(bc);
        return 0;
    }
    return 1;
}

int RAI_TriggersSubscribe(RedisModuleCtx *ctx) {
    int types = REDISMODULE_NOTIFY_GENERIC | REDISMODULE_NOTIFY_STRING | REDISMODULE_NOTIFY_LIST |
                REDISMODULE_NOTIFY_SET | REDISMODULE_NOTIFY_HASH | REDISMODULE_NOTIFY_ZSET |
                REDISMODULE_NOTIFY_EXPIRED | REDISMODULE_NOTIFY_EVICTED | REDISMODULE_NOTIFY_STREAM |
                REDISMODULE_NOTIFY_MODULE | REDISMODULE_NOTIFY_KEY_MISS;
    return RedisModule_SubscribeToKeyspaceEvents(ctx, types, OnKeyspaceEvent);
}

void RAI_TriggersInfo(RedisModuleInfoCtx *ctx) {
    RedisModule_InfoAddSection(ctx, "functions");
    RedisModule_InfoAddFieldLongLong(ctx, "libraries", (long long)RAI_FunctionLibCount());
    RedisModule_InfoAddFieldLongLong(ctx, "triggers", RAI_FunctionTriggerCount());
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_queue_max", RAI_TRIGGER_QUEUE_MAX);
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_events_in_flight", __atomic_load_n(&in_flight, __ATOMIC_RELAXED));
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_runs", (long long)__atomic_load_n(&runs, __ATOMIC_RELAXED));
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_errors", (long long)__atomic_load_n(&errors, __ATOMIC_RELAXED));
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_events_dropped",
                                     (long long)__atomic_load_n(&dropped, __ATOMIC_RELAXED));
    RedisModule_InfoAddFieldLongLong(ctx, "trigger_events_past_max_depth",
                                     (long long)__atomic_load_n(&stopped, __ATOMIC_RELAXED));
    char error[sizeof(last_error)];
    pthread_mutex_lock(&last_error_lock);
    memcpy(error, last_error, sizeof(error));
    pthread_mutex_unlock(&last_error_lock);
    RedisModule_InfoAddFieldCString(ctx, "trigger_last_error", error[0] ? error : "none");
}
