/* function_lib.c -- function libraries and their registry (see the header).
 *
 * The registry is a plain array in load order: a server holds a handful of
 * libraries, and FCALL's linear lookup over their functions costs less than
 * the hand-over to a worker that follows it. */
#include "types/function_lib.h"

#include <string.h>

#include "types/model.h"

static const char *const FLAG_NAMES[RAI_FN_FLAG_COUNT] = {
    "no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys",
};

const char *RAI_FunctionFlagName(int i) { return FLAG_NAMES[i]; }

static RAI_FunctionLib **libs;
static size_t nlibs, caplibs;

RAI_FunctionLib *RAI_FunctionLibNew(const char *name, const char *code, size_t codelen) {
    RAI_FunctionLib *lib = RedisModule_Calloc(1, sizeof(*lib));
    lib->refcount = 1;
    lib->name = RedisModule_Strdup(name);
    lib->code = RedisModule_Alloc(codelen + 1);
    memcpy(lib->code, code, codelen);
    lib->code[codelen] = '\0';
    lib->codelen = codelen;
    return lib;
}

RAI_FunctionLib *RAI_FunctionLibRetain(RAI_FunctionLib *lib) {
    __atomic_add_fetch(&lib->refcount, 1, __ATOMIC_RELAXED);
    return lib;
}

void RAI_FunctionLibRelease(RAI_FunctionLib *lib) {
    if (lib == NULL || __atomic_sub_fetch(&lib->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    /* The module object is Python's: the session dropper lets go of it on
     * the loader, with the GIL, whichever thread released the library. */
    if (lib->py_handle) RAI_PostDroppedSessionHandle(RAI_NextSessionId(), lib->py_handle);
    for (int i = 0; i < lib->nfunctions; i++) RedisModule_Free(lib->functions[i].name);
    RedisModule_Free(lib->functions);
    for (int i = 0; i < lib->ntriggers; i++) {
        RedisModule_Free(lib->triggers[i].name);
        RedisModule_Free(lib->triggers[i].event);
        RedisModule_Free(lib->triggers[i].prefix);
    }
    RedisModule_Free(lib->triggers);
    RedisModule_Free(lib->loaded_by);
    RedisModule_Free(lib->name);
    RedisModule_Free(lib->code);
    RedisModule_Free(lib);
}

void RAI_FunctionLibAdd(RAI_FunctionLib *lib, const char *name, int flags) {
    lib->functions = RedisModule_Realloc(lib->functions, sizeof(RAI_Function) * (size_t)(lib->nfunctions + 1));
    lib->functions[lib->nfunctions].name = RedisModule_Strdup(name);
    lib->functions[lib->nfunctions].flags = flags;
    lib->nfunctions++;
}

void RAI_FunctionLibAddTrigger(RAI_FunctionLib *lib, const char *name, const char *event, const char *prefix,
                               size_t prefixlen, int readthrough) {
    lib->triggers = RedisModule_Realloc(lib->triggers, sizeof(RAI_Trigger) * (size_t)(lib->ntriggers + 1));
    RAI_Trigger *t = &lib->triggers[lib->ntriggers++];
    t->name = RedisModule_Strdup(name);
    t->event = RedisModule_Strdup(event);
    t->prefix = RedisModule_Alloc(prefixlen + 1);
    memcpy(t->prefix, prefix, prefixlen);
    t->prefix[prefixlen] = '\0';
    t->prefixlen = prefixlen;
    t->readthrough = readthrough;
}

/* Counted when the registry changes, read on every keyspace event and GET. */
static int ntriggers, nreadthrough;

static void Recount(void) {
    ntriggers = nreadthrough = 0;
    for (size_t i = 0; i < nlibs; i++) {
        ntriggers += libs[i]->ntriggers;
        for (int t = 0; t < libs[i]->ntriggers; t++) nreadthrough += libs[i]->triggers[t].readthrough;
    }
}

int RAI_FunctionTriggerCount(void) { return ntriggers; }

int RAI_FunctionReadThroughCount(void) { return nreadthrough; }

size_t RAI_FunctionLibCount(void) { return nlibs; }

RAI_FunctionLib *RAI_FunctionLibAt(size_t i) { return i < nlibs ? libs[i] : NULL; }

static long IndexOf(const char *name) {
    for (size_t i = 0; i < nlibs; i++) {
        if (strcmp(libs[i]->name, name) == 0) return (long)i;
    }
    return -1;
}

RAI_FunctionLib *RAI_FunctionLibFind(const char *name) {
    long i = IndexOf(name);
    return i < 0 ? NULL : libs[i];
}

RAI_FunctionLib *RAI_FunctionFind(const char *name, size_t len, const RAI_Function **fn) {
    for (size_t i = 0; i < nlibs; i++) {
        for (int f = 0; f < libs[i]->nfunctions; f++) {
            const RAI_Function *cand = &libs[i]->functions[f];
            if (strlen(cand->name) == len && memcmp(cand->name, name, len) == 0) {
                *fn = cand;
                return libs[i];
            }
        }
    }
    return NULL;
}

const char *RAI_FunctionLibClash(const RAI_FunctionLib *lib, const RAI_FunctionLib *replacing) {
    for (int f = 0; f < lib->nfunctions; f++) {
        const RAI_Function *fn;
        const char *name = lib->functions[f].name;
        RAI_FunctionLib *owner = RAI_FunctionFind(name, strlen(name), &fn);
        if (owner != NULL && owner != replacing) return name;
    }
    return NULL;
}

void RAI_FunctionLibInstall(RAI_FunctionLib *lib) {
    long at = IndexOf(lib->name);
    if (at >= 0) {
        RAI_FunctionLibRelease(libs[at]);
        libs[at] = lib;
        Recount();
        return;
    }
    if (nlibs == caplibs) {
        caplibs = caplibs ? caplibs * 2 : 8;
        libs = RedisModule_Realloc(libs, sizeof(*libs) * caplibs);
    }
    libs[nlibs++] = lib;
    Recount();
}

int RAI_FunctionLibRemove(const char *name) {
    long at = IndexOf(name);
    if (at < 0) return 0;
    RAI_FunctionLibRelease(libs[at]);
    memmove(&libs[at], &libs[at + 1], sizeof(*libs) * (nlibs - (size_t)at - 1));
    nlibs--;
    Recount();
    return 1;
}

void RAI_FunctionLibRemoveAll(void) {
    for (size_t i = 0; i < nlibs; i++) RAI_FunctionLibRelease(libs[i]);
    nlibs = 0;
    Recount();
}

int RAI_FunctionNameValid(const char *name, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

/* ----------------------------------------------------------- job payloads */

static void FreeReplyTree(RAI_FnReply *r) {
    RedisModule_Free(r->str);
    size_t n = r->type == RAI_FN_MAP ? r->len * 2 : r->type == RAI_FN_ARRAY ? r->len : 0;
    for (size_t i = 0; i < n; i++) FreeReplyTree(&r->elements[i]);
    RedisModule_Free(r->elements);
}

void RAI_FnReplyFree(RAI_FnReply *reply) {
    if (reply == NULL) return;
    FreeReplyTree(reply);
    RedisModule_Free(reply);
}

static void FreeCopies(int n, char **strings, size_t *lens) {
    for (int i = 0; i < n && strings; i++) RedisModule_Free(strings[i]);
    RedisModule_Free(strings);
    RedisModule_Free(lens);
}

void RAI_FunctionCallFree(void *arg) {
    RAI_FunctionCall *call = arg;
    RAI_FunctionLibRelease(call->lib);
    RedisModule_Free(call->fname);
    FreeCopies(call->nkeys, call->keys, call->keylens);
    FreeCopies(call->nargs, call->args, call->arglens);
    RedisModule_Free(call->user);
    RAI_FnReplyFree(call->reply);
    RedisModule_Free(call);
}

void RAI_FunctionLoadFree(void *arg) {
    RAI_FunctionLoad *load = arg;
    RAI_FunctionLibRelease(load->lib);
    RedisModule_Free(load);
}
