/* function_lib.h -- in-server Python function libraries as the C side keeps
 * them: each library's name and source, the functions its import registered
 * (names and flags), and an opaque handle to its Python module. The registry
 * of loaded libraries is the one authority on what exists: AI.FCALL looks
 * functions up here, AI.FUNCTION LIST and the RDB read sources from here, so
 * none of them needs the GIL on the main thread. Main thread only, except
 * where a function says otherwise. */
#ifndef RAI_FUNCTION_LIB_H
#define RAI_FUNCTION_LIB_H

#include <stddef.h>

#include "rm_api.h"

/* Function flags (Redis 7 Functions' names); the bit order is also
 * redisai_py/_function_libraries.py's FLAG_BITS. */
#define RAI_FN_NO_WRITES (1 << 0)
#define RAI_FN_ALLOW_OOM (1 << 1)
#define RAI_FN_ALLOW_STALE (1 << 2)
#define RAI_FN_NO_CLUSTER (1 << 3)
#define RAI_FN_ALLOW_CROSS_SLOT_KEYS (1 << 4)
#define RAI_FN_FLAG_COUNT 5

/* The name of flag bit i (0 <= i < RAI_FN_FLAG_COUNT). */
const char *RAI_FunctionFlagName(int i);

typedef struct {
    char *name;
    int flags;
} RAI_Function;

/* A keyspace trigger a library registered: its callback runs on a function
 * worker for each `event` (a keyspace event name, e.g. "set", "hset", "del",
 * "expired", "keymiss"; "*" any but keymiss) on a key starting with `prefix`. */
typedef struct {
    char *name;
    char *event;
    char *prefix;
    size_t prefixlen;
    int readthrough; /* keymiss with commands=["GET"]: the GET that missed waits for its answer */
} RAI_Trigger;

typedef struct RAI_FunctionLib {
    int refcount; /* atomic: a call job keeps its library alive past a DELETE */
    char *name;
    char *code;
    size_t codelen;
    int nfunctions;
    RAI_Function *functions;
    void *py_handle; /* the library's Python object; NULL if its import failed at start-up */
    int ntriggers;
    RAI_Trigger *triggers;
    char *loaded_by; /* the ACL user whose AI.FUNCTION LOAD made it (its triggers run as it); NULL: "default" */
} RAI_FunctionLib;

/* A library with no functions yet; takes copies of name and code. */
RAI_FunctionLib *RAI_FunctionLibNew(const char *name, const char *code, size_t codelen);
RAI_FunctionLib *RAI_FunctionLibRetain(RAI_FunctionLib *lib);
/* Any thread. The last release hands the Python handle to the session
 * dropper (a job on the loader), never to the GIL here. */
void RAI_FunctionLibRelease(RAI_FunctionLib *lib);

/* Appends a function (import results). */
void RAI_FunctionLibAdd(RAI_FunctionLib *lib, const char *name, int flags);

/* Appends a trigger (import results). */
void RAI_FunctionLibAddTrigger(RAI_FunctionLib *lib, const char *name, const char *event, const char *prefix,
                               size_t prefixlen, int readthrough);

/* ----------------------------------------------------------------- registry */

/* Triggers of all installed libraries: cheap, for the keyspace-event hot path. */
int RAI_FunctionTriggerCount(void);
int RAI_FunctionReadThroughCount(void); /* of them, read-through ones (the GET filter's hot path) */

size_t RAI_FunctionLibCount(void);
RAI_FunctionLib *RAI_FunctionLibAt(size_t i); /* borrowed, in load order */
RAI_FunctionLib *RAI_FunctionLibFind(const char *name); /* borrowed, or NULL */

/* The library that holds function `name` (borrowed) and the function, or NULL. */
RAI_FunctionLib *RAI_FunctionFind(const char *name, size_t len, const RAI_Function **fn);

/* A function of `lib` that another library than `replacing` already has
 * (a name clash that refuses the load), or NULL. */
const char *RAI_FunctionLibClash(const RAI_FunctionLib *lib, const RAI_FunctionLib *replacing);

/* Puts lib in the registry (taking the caller's reference), dropping the
 * library of the same name if there is one. */
void RAI_FunctionLibInstall(RAI_FunctionLib *lib);

/* Drops a library from the registry; 0 if there is none of that name. */
int RAI_FunctionLibRemove(const char *name);
void RAI_FunctionLibRemoveAll(void);

/* Whether `name` is a valid library or function name: letters, digits and
 * underscores, at least one (Redis Functions' rule). */
int RAI_FunctionNameValid(const char *name, size_t len);

/* ------------------------------------------------------------ job payloads */

/* A function's return value, converted on the worker so that the main
 * thread replies from C: RESP3 types, which RESP2 clients get in their
 * RESP2 form (double as bulk string, map as flat array, bool as integer). */
typedef struct RAI_FnReply {
    enum { RAI_FN_NIL, RAI_FN_INT, RAI_FN_DOUBLE, RAI_FN_BOOL, RAI_FN_STRING, RAI_FN_ARRAY, RAI_FN_MAP } type;
    long long integer; /* INT, BOOL */
    double dbl;
    char *str; /* STRING */
    size_t len; /* STRING: bytes; ARRAY: elements; MAP: pairs (2 * len elements) */
    struct RAI_FnReply *elements;
} RAI_FnReply;

void RAI_FnReplyFree(RAI_FnReply *reply); /* the tree under reply, and reply */

/* AI.FCALL's payload: what the worker passes to the callback and what it
 * got back. Everything is a copy: the client's argv is not the worker's. */
typedef struct {
    RAI_FunctionLib *lib; /* retained */
    char *fname;
    int nkeys, nargs;
    char **keys, **args;
    size_t *keylens, *arglens;
    char *user;    /* the caller's ACL user; execute() runs as it */
    int read_only; /* AI.FCALL_RO: execute() may not write */
    int slot;      /* cluster mode: the slot of the call's keys; -1: none */
    RAI_FnReply *reply;
} RAI_FunctionCall;

void RAI_FunctionCallFree(void *call);

/* AI.FUNCTION LOAD's payload: the source to import and the library it made. */
typedef struct {
    RAI_FunctionLib *lib; /* owned until installed; its functions are the import's */
    int replace;
} RAI_FunctionLoad;

void RAI_FunctionLoadFree(void *load);

#endif
