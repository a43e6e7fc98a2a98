/* type_script.c -- the AI_SCRIPT module data type.
 *
 * Persists the source text, never the compiled form: RDB save and AOF
 * rewrite are pure C. Encoding 4 (and 3) carry the entry points; 0-2 do
 * not, and such scripts run their functions in best-effort mode. */
#include "types/type_script.h"

#include <string.h>

#include "types/key_access.h"
#include "types/type_tensor.h"

RedisModuleType *RAI_ScriptType = NULL;

void RAI_ScriptLinkKey(RAI_Script *s, const RedisModuleString *keyname) {
    size_t len;
    const char *key = RedisModule_StringPtrLen(keyname, &len);
    RAI_KeyLinkTo(&s->metrics, RAI_SERIES_SCRIPT, key, len, "TORCH", s->device, s->tag);
}

/* A read also links the script to the key it was read from (see RAI_ReadModelKey). */
RAI_Script *RAI_ReadScriptKey(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    RAI_Script *s = RAI_ReadTypedKey(ctx, keyname, RAI_ScriptType, "ERR script key is empty");
    if (s != NULL) RAI_ScriptLinkKey(s, keyname);
    return s;
}

RedisModuleKey *RAI_OpenScriptKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    return RAI_OpenTypedKeyToWrite(ctx, keyname, RAI_ScriptType);
}

/* A string buffer as a C string (a saved trailing NUL is dropped by strlen). */
static char *LoadCString(RedisModuleIO *rdb, size_t *len) {
    size_t n = 0;
    char *buf = RedisModule_LoadStringBuffer(rdb, &n);
    char *s = RedisModule_Alloc(n + 1);
    if (buf) memcpy(s, buf, n);
    s[n] = '\0';
    RedisModule_Free(buf);
    if (len) *len = strlen(s);
    return s;
}

static void *ScriptRdbLoad(RedisModuleIO *rdb, int encver) {
    if (encver > RAI_ENC_VER) {
        RedisModule_LogIOError(rdb, "warning", "AI_SCRIPT: encoding version %d is not forward compatible",
                               encver);
        return NULL;
    }
    char *device = LoadCString(rdb, NULL);
    char *tag = LoadCString(rdb, NULL);
    size_t srclen;
    char *source = LoadCString(rdb, &srclen);
    int nentry = 0;
    char **entries = NULL;
    if (encver >= 3) {
        uint64_t n = RedisModule_LoadUnsigned(rdb);
        if (!RedisModule_IsIOError(rdb) && n <= 4096) {
            nentry = (int)n;
            entries = RedisModule_Calloc(n > 0 ? n : 1, sizeof(char *));
            for (int i = 0; i < nentry; i++) entries[i] = LoadCString(rdb, NULL);
        }
    }
    RAI_Script *s = NULL;
    if (!RedisModule_IsIOError(rdb)) {
        s = RAI_ScriptNew(device, tag, source, srclen, nentry, (const char **)entries);
        const RedisModuleString *key = RedisModule_GetKeyNameFromIO(rdb);
        if (key != NULL) RAI_ScriptLinkKey(s, key);
    }
    for (int i = 0; i < nentry; i++) RedisModule_Free(entries[i]);
    RedisModule_Free(entries);
    RedisModule_Free(device);
    RedisModule_Free(tag);
    RedisModule_Free(source);
    return s;
}

static void ScriptRdbSave(RedisModuleIO *rdb, void *value) {
    const RAI_Script *s = value;
    RedisModule_SaveStringBuffer(rdb, s->device, strlen(s->device) + 1);
    RedisModule_SaveStringBuffer(rdb, s->tag, strlen(s->tag));
    RedisModule_SaveStringBuffer(rdb, s->source, strlen(s->source) + 1);
    RedisModule_SaveUnsigned(rdb, (uint64_t)s->nentry);
    for (int i = 0; i < s->nentry; i++)
        RedisModule_SaveStringBuffer(rdb, s->entry_points[i], strlen(s->entry_points[i]) + 1);
}

static RedisModuleString *Str(const char *s) {
    return RedisModule_CreateString(NULL, s, strlen(s));
}

/* AI.SCRIPTSTORE key device TAG tag ENTRY_POINTS n fn... SOURCE src, or
 * AI.SCRIPTSET key device TAG tag SOURCE src for a script without entry
 * points (SCRIPTSTORE would refuse it; RedisAI emitted that broken form). */
static void ScriptAofRewrite(RedisModuleIO *aof, RedisModuleString *key, void *value) {
    const RAI_Script *s = value;
    size_t argc = 5 + (s->nentry > 0 ? 2 + (size_t)s->nentry : 0);
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * argc);
    size_t n = 0;
    args[n++] = Str(s->device);
    args[n++] = Str("TAG");
    args[n++] = Str(s->tag);
    if (s->nentry > 0) {
        args[n++] = Str("ENTRY_POINTS");
        args[n++] = RedisModule_CreateStringPrintf(NULL, "%d", s->nentry);
        for (int i = 0; i < s->nentry; i++) args[n++] = Str(s->entry_points[i]);
    }
    args[n++] = Str("SOURCE");
    args[n++] = Str(s->source);
    RedisModule_EmitAOF(aof, s->nentry > 0 ? "AI.SCRIPTSTORE" : "AI.SCRIPTSET", "sv", key, args, n);
    RAI_FreeArgs(args, n);
}

static size_t ScriptMemUsage(const void *value) {
    return RAI_ScriptMemUsage(value);
}

static void ScriptFree(void *value) {
    RAI_ScriptRelease(value);
}

static void *ScriptCopy(RedisModuleString *fromkey, RedisModuleString *tokey, const void *value) {
    (void)fromkey;
    const RAI_Script *s = value;
    RAI_Script *copy = RAI_ScriptNew(s->device, s->tag, s->source, strlen(s->source), s->nentry,
                                     (const char **)s->entry_points);
    copy->queue = s->queue;
    RAI_ScriptLinkKey(copy, tokey);
    return copy;
}

int RAI_ScriptTypeRegister(RedisModuleCtx *ctx) {
    RedisModuleTypeMethods methods = {
        .version = REDISMODULE_TYPE_METHOD_VERSION_COPY,
        .rdb_load = ScriptRdbLoad,
        .rdb_save = ScriptRdbSave,
        .aof_rewrite = ScriptAofRewrite,
        .mem_usage = ScriptMemUsage,
        .free = ScriptFree,
        .copy = ScriptCopy,
    };
    RAI_ScriptType = RedisModule_CreateDataType(ctx, "AI_SCRIPT", RAI_ENC_VER, &methods);
    return RAI_ScriptType ? REDISMODULE_OK : REDISMODULE_ERR;
}
