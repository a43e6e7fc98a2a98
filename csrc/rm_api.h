/* rm_api.h -- our own declaration of the subset of the Redis module API the
 * shim uses.
 *
 * Written from the public module API reference: the constants, struct
 * layouts and function signatures below are facts of that ABI. Every
 * function is a pointer filled by RAI_ApiInit() through the GetApi entry
 * that Redis places at the start of the context it hands to OnLoad. */
#ifndef RAI_RM_API_H
#define RAI_RM_API_H

#include <stddef.h>
#include <stdint.h>

#define REDISMODULE_OK 0
#define REDISMODULE_ERR 1
#define REDISMODULE_APIVER_1 1

#define REDISMODULE_READ (1 << 0)
#define REDISMODULE_WRITE (1 << 1)

#define REDISMODULE_KEYTYPE_EMPTY 0
#define REDISMODULE_KEYTYPE_MODULE 6

#define REDISMODULE_POSTPONED_LEN -1

#define REDISMODULE_REPLY_STRING 0
#define REDISMODULE_REPLY_ERROR 1
#define REDISMODULE_REPLY_INTEGER 2
#define REDISMODULE_REPLY_ARRAY 3
#define REDISMODULE_REPLY_NULL 4

#define REDISMODULE_CTX_FLAGS_LUA (1 << 0)
#define REDISMODULE_CTX_FLAGS_MULTI (1 << 1)
#define REDISMODULE_CTX_FLAGS_SLAVE (1 << 3)
#define REDISMODULE_CTX_FLAGS_READONLY (1 << 4)
#define REDISMODULE_CTX_FLAGS_CLUSTER (1 << 5)
#define REDISMODULE_CTX_FLAGS_OOM (1 << 10)
#define REDISMODULE_CTX_FLAGS_REPLICATED (1 << 12)
#define REDISMODULE_CTX_FLAGS_LOADING (1 << 13)
#define REDISMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)
#define REDISMODULE_CTX_FLAGS_RESP3 (1 << 22)

#define REDISMODULE_OPTIONS_HANDLE_IO_ERRORS (1 << 0)

/* Keyspace notifications (SubscribeToKeyspaceEvents), for function triggers;
 * key types, to name a key's type in a trigger's record. */
#define REDISMODULE_CTX_FLAGS_MASTER (1 << 2)
#define REDISMODULE_OPEN_KEY_NOTOUCH (1 << 16)
#define REDISMODULE_NOTIFY_GENERIC (1 << 2)
#define REDISMODULE_NOTIFY_STRING (1 << 3)
#define REDISMODULE_NOTIFY_LIST (1 << 4)
#define REDISMODULE_NOTIFY_SET (1 << 5)
#define REDISMODULE_NOTIFY_HASH (1 << 6)
#define REDISMODULE_NOTIFY_ZSET (1 << 7)
#define REDISMODULE_NOTIFY_EXPIRED (1 << 8)
#define REDISMODULE_NOTIFY_EVICTED (1 << 9)
#define REDISMODULE_NOTIFY_STREAM (1 << 10)
#define REDISMODULE_NOTIFY_KEY_MISS (1 << 11)
#define REDISMODULE_NOTIFY_MODULE (1 << 13)
#define REDISMODULE_KEYTYPE_STRING 1
#define REDISMODULE_KEYTYPE_LIST 2
#define REDISMODULE_KEYTYPE_HASH 3
#define REDISMODULE_KEYTYPE_SET 4
#define REDISMODULE_KEYTYPE_ZSET 5
#define REDISMODULE_KEYTYPE_STREAM 7
#define REDISMODULE_CMDFILTER_NOSELF (1 << 0)

#define REDISMODULE_TYPE_METHOD_VERSION_COPY 3

#define REDISMODULE_AUX_BEFORE_RDB (1 << 0)

#define REDISMODULE_ERRORMSG_WRONGTYPE \
    "WRONGTYPE Operation against a key holding the wrong kind of value"

#define REDISMODULE_EVENT_SHUTDOWN 5
#define REDISMODULE_EVENT_FLUSHDB 2
#define REDISMODULE_SUBEVENT_FLUSHDB_START 0

/* Key-spec flags and search types (SetCommandInfo, Redis >= 7.0). */
#define REDISMODULE_CMD_KEY_RO (1ULL << 0)
#define REDISMODULE_CMD_KEY_RW (1ULL << 1)
#define REDISMODULE_CMD_KEY_OW (1ULL << 2)
#define REDISMODULE_CMD_KEY_RM (1ULL << 3)
#define REDISMODULE_CMD_KEY_ACCESS (1ULL << 4)
#define REDISMODULE_CMD_KEY_UPDATE (1ULL << 5)
#define REDISMODULE_CMD_KEY_INSERT (1ULL << 6)
#define REDISMODULE_CMD_KEY_DELETE (1ULL << 7)
#define REDISMODULE_CMD_KEY_NOT_KEY (1ULL << 8)
#define REDISMODULE_CMD_KEY_INCOMPLETE (1ULL << 9)
#define REDISMODULE_CMD_KEY_VARIABLE_FLAGS (1ULL << 10)

typedef enum {
    REDISMODULE_KSPEC_BS_INVALID = 0,
    REDISMODULE_KSPEC_BS_UNKNOWN,
    REDISMODULE_KSPEC_BS_INDEX,
    REDISMODULE_KSPEC_BS_KEYWORD
} RedisModuleKeySpecBeginSearchType;

typedef enum {
    REDISMODULE_KSPEC_FK_OMITTED = 0,
    REDISMODULE_KSPEC_FK_UNKNOWN,
    REDISMODULE_KSPEC_FK_RANGE,
    REDISMODULE_KSPEC_FK_KEYNUM
} RedisModuleKeySpecFindKeysType;

typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleIO RedisModuleIO;
typedef struct RedisModuleType RedisModuleType;
typedef struct RedisModuleDigest RedisModuleDigest;
typedef struct RedisModuleInfoCtx RedisModuleInfoCtx;
typedef struct RedisModuleCommand RedisModuleCommand;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;
typedef struct RedisModuleDefragCtx RedisModuleDefragCtx;
typedef struct RedisModuleCallReply RedisModuleCallReply;
typedef struct RedisModuleUser RedisModuleUser;
typedef struct RedisModuleCommandFilterCtx RedisModuleCommandFilterCtx;
typedef struct RedisModuleCommandFilter RedisModuleCommandFilter;
typedef void (*RedisModuleCommandFilterFunc)(RedisModuleCommandFilterCtx *filter);

typedef struct RedisModuleScanCursor RedisModuleScanCursor;
typedef void (*RedisModuleScanCB)(RedisModuleCtx *ctx, RedisModuleString *keyname,
                                  RedisModuleKey *key, void *privdata);
typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef int (*RedisModuleNotificationFunc)(RedisModuleCtx *ctx, int type, const char *event,
                                           RedisModuleString *key);
typedef void (*RedisModuleInfoFunc)(RedisModuleInfoCtx *ctx, int for_crash_report);
typedef void (*RedisModuleEventLoopOneShotFunc)(void *user_data);
typedef uint64_t RedisModuleTimerID;
typedef void (*RedisModuleTimerProc)(RedisModuleCtx *ctx, void *data);

typedef struct RedisModuleEvent {
    uint64_t id;
    uint64_t dataver;
} RedisModuleEvent;
typedef void (*RedisModuleEventCallback)(RedisModuleCtx *ctx, RedisModuleEvent eid,
                                         uint64_t subevent, void *data);

typedef struct RedisModuleTypeMethods {
    uint64_t version;
    void *(*rdb_load)(RedisModuleIO *rdb, int encver);
    void (*rdb_save)(RedisModuleIO *rdb, void *value);
    void (*aof_rewrite)(RedisModuleIO *aof, RedisModuleString *key, void *value);
    size_t (*mem_usage)(const void *value);
    void (*digest)(RedisModuleDigest *md, void *value);
    void (*free)(void *value);
    int (*aux_load)(RedisModuleIO *rdb, int encver, int when);
    void (*aux_save)(RedisModuleIO *rdb, int when);
    int aux_save_triggers;
    size_t (*free_effort)(RedisModuleString *key, const void *value);
    void (*unlink)(RedisModuleString *key, const void *value);
    void *(*copy)(RedisModuleString *fromkey, RedisModuleString *tokey, const void *value);
    int (*defrag)(RedisModuleDefragCtx *ctx, RedisModuleString *key, void **value);
} RedisModuleTypeMethods;

typedef struct RedisModuleCommandKeySpec {
    const char *notes;
    uint64_t flags;
    RedisModuleKeySpecBeginSearchType begin_search_type;
    union {
        struct {
            int pos;
        } index;
        struct {
            const char *keyword;
            int startfrom;
        } keyword;
    } bs;
    RedisModuleKeySpecFindKeysType find_keys_type;
    union {
        struct {
            int lastkey;
            int keystep;
            int limit;
        } range;
        struct {
            int keynumidx;
            int firstkey;
            int keystep;
        } keynum;
    } fk;
} RedisModuleCommandKeySpec;

/* Command docs (SetCommandInfo, Redis >= 7.0): argument types, argument
 * flags, history entries and argument descriptions. Redis reads the arrays we
 * pass with the element sizes announced in RedisModuleCommandInfoVersion, so
 * these layouts must be the ABI's exactly. */
typedef enum {
    REDISMODULE_ARG_TYPE_STRING,
    REDISMODULE_ARG_TYPE_INTEGER,
    REDISMODULE_ARG_TYPE_DOUBLE,
    REDISMODULE_ARG_TYPE_KEY, /* needs key_spec_index */
    REDISMODULE_ARG_TYPE_PATTERN,
    REDISMODULE_ARG_TYPE_UNIX_TIME,
    REDISMODULE_ARG_TYPE_PURE_TOKEN, /* needs token */
    REDISMODULE_ARG_TYPE_ONEOF,      /* needs subargs */
    REDISMODULE_ARG_TYPE_BLOCK       /* needs subargs */
} RedisModuleCommandArgType;

#define REDISMODULE_CMD_ARG_NONE 0
#define REDISMODULE_CMD_ARG_OPTIONAL (1 << 0)
#define REDISMODULE_CMD_ARG_MULTIPLE (1 << 1)       /* one or more */
#define REDISMODULE_CMD_ARG_MULTIPLE_TOKEN (1 << 2) /* each repeat repeats the token too */

/* History entries and arguments go in arrays that end with an all-zero entry. */
typedef struct {
    const char *since;
    const char *changes;
} RedisModuleCommandHistoryEntry;

/* display_text came with Redis 7.2, which reads it whatever size we announce,
 * so it is declared (and left NULL) even though 7.0 never looks at it; 7.0
 * steps over it by sizeof_arg. The const pointers are ours: the server only
 * reads through them, and const does not change the layout. */
typedef struct RedisModuleCommandArg {
    const char *name;
    RedisModuleCommandArgType type;
    int key_spec_index; /* for KEY args: index into key_specs; otherwise -1 or 0 */
    const char *token;
    const char *summary;
    const char *since;
    int flags; /* REDISMODULE_CMD_ARG_* */
    const char *deprecated_since;
    const struct RedisModuleCommandArg *subargs;
    const char *display_text;
} RedisModuleCommandArg;

typedef struct {
    int version;
    size_t sizeof_historyentry;
    size_t sizeof_keyspec;
    size_t sizeof_arg;
} RedisModuleCommandInfoVersion;

typedef struct {
    const RedisModuleCommandInfoVersion *version;
    const char *summary;
    const char *complexity;
    const char *since;
    const RedisModuleCommandHistoryEntry *history;
    const char *tips;
    int arity;
    const RedisModuleCommandKeySpec *key_specs;
    const RedisModuleCommandArg *args;
} RedisModuleCommandInfo;

/* X-macro list: required APIs. RAI_ApiInit fails the load if one is missing. */
#define RAI_REQUIRED_APIS(X)                                                                      \
    X(void *, Alloc, (size_t bytes))                                                              \
    X(void *, Calloc, (size_t nmemb, size_t size))                                                \
    X(void *, Realloc, (void *ptr, size_t bytes))                                                 \
    X(void, Free, (void *ptr))                                                                    \
    X(char *, Strdup, (const char *str))                                                          \
    X(size_t, MallocSize, (void *ptr))                                                            \
    X(int, SetModuleAttribs, (RedisModuleCtx * ctx, const char *name, int ver, int apiver))       \
    X(int, IsModuleNameBusy, (const char *name))                                                  \
    X(void, SetModuleOptions, (RedisModuleCtx * ctx, int options))                                \
    X(int, GetServerVersion, (void))                                                              \
    X(int, CreateCommand,                                                                         \
      (RedisModuleCtx * ctx, const char *name, RedisModuleCmdFunc cmdfunc, const char *strflags,  \
       int firstkey, int lastkey, int keystep))                                                   \
    X(RedisModuleCommand *, GetCommand, (RedisModuleCtx * ctx, const char *name))                 \
    X(int, SetCommandInfo, (RedisModuleCommand * command, const RedisModuleCommandInfo *info))    \
    X(int, IsKeysPositionRequest, (RedisModuleCtx * ctx))                                         \
    X(void, KeyAtPos, (RedisModuleCtx * ctx, int pos))                                            \
    X(void, KeyAtPosWithFlags, (RedisModuleCtx * ctx, int pos, int flags))                        \
    X(int, GetContextFlags, (RedisModuleCtx * ctx))                                               \
    X(int, WrongArity, (RedisModuleCtx * ctx))                                                    \
    X(int, ReplyWithError, (RedisModuleCtx * ctx, const char *err))                               \
    X(int, ReplyWithSimpleString, (RedisModuleCtx * ctx, const char *msg))                        \
    X(int, ReplyWithLongLong, (RedisModuleCtx * ctx, long long ll))                               \
    X(int, ReplyWithArray, (RedisModuleCtx * ctx, long len))                                      \
    X(void, ReplySetArrayLength, (RedisModuleCtx * ctx, long len))                                \
    X(int, ReplyWithStringBuffer, (RedisModuleCtx * ctx, const char *buf, size_t len))            \
    X(int, ReplyWithString, (RedisModuleCtx * ctx, RedisModuleString * str))                      \
    X(int, ReplyWithNull, (RedisModuleCtx * ctx))                                                 \
    X(int, ReplicateVerbatim, (RedisModuleCtx * ctx))                                             \
    X(RedisModuleString *, CreateString, (RedisModuleCtx * ctx, const char *ptr, size_t len))     \
    X(RedisModuleString *, CreateStringPrintf, (RedisModuleCtx * ctx, const char *fmt, ...))      \
    X(void, FreeString, (RedisModuleCtx * ctx, RedisModuleString * str))                          \
    X(const char *, StringPtrLen, (const RedisModuleString *str, size_t *len))                    \
    X(int, StringToLongLong, (const RedisModuleString *str, long long *ll))                       \
    X(int, StringToDouble, (const RedisModuleString *str, double *d))                             \
    X(RedisModuleKey *, OpenKey, (RedisModuleCtx * ctx, RedisModuleString * keyname, int mode))   \
    X(void, CloseKey, (RedisModuleKey * kp))                                                      \
    X(int, KeyType, (RedisModuleKey * kp))                                                        \
    X(RedisModuleType *, CreateDataType,                                                          \
      (RedisModuleCtx * ctx, const char *name, int encver, void *typemethods))                    \
    X(int, ModuleTypeSetValue, (RedisModuleKey * key, RedisModuleType * mt, void *value))         \
    X(RedisModuleType *, ModuleTypeGetType, (RedisModuleKey * key))                               \
    X(void *, ModuleTypeGetValue, (RedisModuleKey * key))                                         \
    X(void, SaveUnsigned, (RedisModuleIO * io, uint64_t value))                                   \
    X(uint64_t, LoadUnsigned, (RedisModuleIO * io))                                               \
    X(void, SaveSigned, (RedisModuleIO * io, int64_t value))                                      \
    X(int64_t, LoadSigned, (RedisModuleIO * io))                                                  \
    X(void, SaveStringBuffer, (RedisModuleIO * io, const char *str, size_t len))                  \
    X(char *, LoadStringBuffer, (RedisModuleIO * io, size_t *lenptr))                             \
    X(int, IsIOError, (RedisModuleIO * io))                                                       \
    X(void, EmitAOF, (RedisModuleIO * io, const char *cmdname, const char *fmt, ...))             \
    X(void, Log, (RedisModuleCtx * ctx, const char *level, const char *fmt, ...))                 \
    X(void, LogIOError, (RedisModuleIO * io, const char *levelstr, const char *fmt, ...))         \
    X(int, RegisterInfoFunc, (RedisModuleCtx * ctx, RedisModuleInfoFunc cb))                      \
    X(int, InfoAddSection, (RedisModuleInfoCtx * ctx, const char *name))                          \
    X(int, InfoAddFieldCString, (RedisModuleInfoCtx * ctx, const char *field, const char *value)) \
    X(int, InfoAddFieldLongLong, (RedisModuleInfoCtx * ctx, const char *field, long long value))  \
    X(RedisModuleBlockedClient *, BlockClient,                                                    \
      (RedisModuleCtx * ctx, RedisModuleCmdFunc reply_callback, RedisModuleCmdFunc timeout_callback, \
       void (*free_privdata)(RedisModuleCtx *, void *), long long timeout_ms))                    \
    X(int, UnblockClient, (RedisModuleBlockedClient * bc, void *privdata))                        \
    X(void *, GetBlockedClientPrivateData, (RedisModuleCtx * ctx))                                \
    X(RedisModuleCtx *, GetDetachedThreadSafeContext, (RedisModuleCtx * ctx))                     \
    X(RedisModuleCtx *, GetThreadSafeContext, (RedisModuleBlockedClient * bc))                    \
    X(void, FreeThreadSafeContext, (RedisModuleCtx * ctx))                                        \
    X(void, ThreadSafeContextLock, (RedisModuleCtx * ctx))                                        \
    X(void, ThreadSafeContextUnlock, (RedisModuleCtx * ctx))                                      \
    X(int, ThreadSafeContextTryLock, (RedisModuleCtx * ctx))                                      \
    X(int, EventLoopAddOneShot, (RedisModuleEventLoopOneShotFunc func, void *user_data))          \
    X(RedisModuleTimerID, CreateTimer,                                                            \
      (RedisModuleCtx * ctx, long long period, RedisModuleTimerProc callback, void *data))        \
    X(int, BlockedClientMeasureTimeStart, (RedisModuleBlockedClient * bc))                        \
    X(int, BlockedClientMeasureTimeEnd, (RedisModuleBlockedClient * bc))                          \
    X(uint64_t, MonotonicMicroseconds, (void))                                                    \
    X(void, RetainString, (RedisModuleCtx * ctx, RedisModuleString * str))                        \
    X(int, Replicate, (RedisModuleCtx * ctx, const char *cmdname, const char *fmt, ...))          \
    X(int, DeleteKey, (RedisModuleKey * key))                                                     \
    X(void, SaveString, (RedisModuleIO * io, RedisModuleString * s))                              \
    X(RedisModuleString *, LoadString, (RedisModuleIO * io))                                      \
    X(const RedisModuleString *, GetKeyNameFromIO, (RedisModuleIO * io))                          \
    X(RedisModuleScanCursor *, ScanCursorCreate, (void))                                          \
    X(void, ScanCursorDestroy, (RedisModuleScanCursor * cursor))                                  \
    X(int, Scan,                                                                                  \
      (RedisModuleCtx * ctx, RedisModuleScanCursor * cursor, RedisModuleScanCB fn, void *privdata)) \
    X(RedisModuleCallReply *, Call, (RedisModuleCtx * ctx, const char *cmdname, const char *fmt, ...)) \
    X(int, CallReplyType, (RedisModuleCallReply * reply))                                         \
    X(const char *, CallReplyStringPtr, (RedisModuleCallReply * reply, size_t *len))              \
    X(long long, CallReplyInteger, (RedisModuleCallReply * reply))                                \
    X(size_t, CallReplyLength, (RedisModuleCallReply * reply))                                    \
    X(RedisModuleCallReply *, CallReplyArrayElement, (RedisModuleCallReply * reply, size_t idx))  \
    X(void, FreeCallReply, (RedisModuleCallReply * reply))                                        \
    X(int, SubscribeToServerEvent,                                                                \
      (RedisModuleCtx * ctx, RedisModuleEvent event, RedisModuleEventCallback callback))           \
    /* In-server functions (7.0): replies, the caller's ACL user, keys of a command. */            \
    X(int, ReplyWithDouble, (RedisModuleCtx * ctx, double d))                                     \
    X(int, ReplyWithBool, (RedisModuleCtx * ctx, int b))                                          \
    X(int, ReplyWithMap, (RedisModuleCtx * ctx, long len))                                        \
    X(RedisModuleString *, GetCurrentUserName, (RedisModuleCtx * ctx))                            \
    X(RedisModuleUser *, GetModuleUserFromUserName, (RedisModuleString * name))                   \
    X(void, FreeModuleUser, (RedisModuleUser * user))                                             \
    X(int, ACLCheckCommandPermissions, (RedisModuleUser * user, RedisModuleString * *argv, int argc)) \
    X(int, ACLCheckKeyPermissions, (RedisModuleUser * user, RedisModuleString * key, int flags))   \
    X(int *, GetCommandKeys, (RedisModuleCtx * ctx, RedisModuleString * *argv, int argc, int *num_keys)) \
    X(RedisModuleCtx *, GetContextFromIO, (RedisModuleIO * rdb))                                  \
    X(int, SubscribeToKeyspaceEvents, (RedisModuleCtx * ctx, int types, RedisModuleNotificationFunc cb)) \
    X(RedisModuleCommandFilter *, RegisterCommandFilter,                                          \
      (RedisModuleCtx * ctx, RedisModuleCommandFilterFunc cb, int flags))                         \
    X(int, CommandFilterArgsCount, (RedisModuleCommandFilterCtx * fctx))                          \
    X(RedisModuleString *, CommandFilterArgGet, (RedisModuleCommandFilterCtx * fctx, int pos))    \
    X(int, CommandFilterArgReplace, (RedisModuleCommandFilterCtx * fctx, int pos, RedisModuleString * arg)) \
    X(int, ReplyWithCallReply, (RedisModuleCtx * ctx, RedisModuleCallReply * reply))              \
    X(int, AbortBlock, (RedisModuleBlockedClient * bc))

/* Optional APIs: NULL when the server is older than the API. */
#define RAI_OPTIONAL_APIS(X)                                                                      \
    X(int, SetCommandACLCategories, (RedisModuleCommand * command, const char *aclflags)) /* 7.2 */

#define RAI_DECLARE_API(ret, name, args) extern ret(*RedisModule_##name) args;
RAI_REQUIRED_APIS(RAI_DECLARE_API)
RAI_OPTIONAL_APIS(RAI_DECLARE_API)
#undef RAI_DECLARE_API

/* Resolves every pointer above through the context's GetApi entry, checks the
 * module name is free and registers it. Returns REDISMODULE_ERR (after
 * logging nothing: there is no Log yet) when Redis lacks an API we need. */
int RAI_ApiInit(RedisModuleCtx *ctx, const char *name, int ver, const char **missing);

#endif
