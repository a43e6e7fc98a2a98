/* type_model.c -- the AI__MODEL module data type.
 *
 * Only the original blob and metadata are persisted, never a backend
 * session: RDB save and AOF rewrite are memory copies in pure C, safe in the
 * fork child. Encoding 4 is RedisAI 1.2's (blob in MODEL_CHUNK_SIZE chunks);
 * 0-3 are read too. A loaded model gets its session lazily, on a worker, at
 * its first run.
 *
 * The CACHE setting (ours) rides in encoding 4 without changing it: the
 * device string is saved with its NUL, and a model stored with CACHE has
 * `cache` or `cache ttl=<ms>` after that NUL. Readers that take the device
 * as a C string (RedisAI's, ours before the cache) stop at the NUL, so the
 * RDB stays readable by them; a model without CACHE is saved byte for byte
 * as before; and old payloads, having nothing after the NUL, load uncached. */
#include "types/type_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types/config.h"
#include "types/key_access.h"
#include "types/type_tensor.h"

RedisModuleType *RAI_ModelType = NULL;

void RAI_ModelLinkKey(RAI_Model *m, const RedisModuleString *keyname) {
    size_t len;
    const char *key = RedisModule_StringPtrLen(keyname, &len);
    RAI_KeyLinkTo(&m->metrics, RAI_SERIES_MODEL, key, len, RAI_BackendName(m->backend), m->device, m->tag);
}

/* A read also links the model to the key it was read from, so a renamed key
 * shows under its new name from its next use. */
RAI_Model *RAI_ReadModelKey(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    RAI_Model *m = RAI_ReadTypedKey(ctx, keyname, RAI_ModelType, "ERR model key is empty");
    if (m != NULL) RAI_ModelLinkKey(m, keyname);
    return m;
}

RedisModuleKey *RAI_OpenModelKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    return RAI_OpenTypedKeyToWrite(ctx, keyname, RAI_ModelType);
}

/* A string saved with or without its NUL, as a new C string. */
static char *LoadCString(RedisModuleIO *rdb) {
    size_t len = 0;
    char *buf = RedisModule_LoadStringBuffer(rdb, &len);
    if (buf == NULL) return RedisModule_Strdup("");
    char *s = RedisModule_Alloc(len + 1);
    memcpy(s, buf, len);
    s[len] = '\0';
    RedisModule_Free(buf);
    return s;
}

/* The extension after the device's NUL: nothing, `cache` or `cache
 * ttl=<ms>`. Returns 0 on anything else (a payload is untrusted input). */
static int ParseDeviceExtension(const char *ext, size_t len, RAI_ModelMeta *meta) {
    char text[64];
    if (len == 0) return 1;
    if (len >= sizeof(text)) return 0;
    memcpy(text, ext, len);
    text[len] = '\0';
    if (strcmp(text, "cache") == 0) {
        meta->cache = 1;
        return 1;
    }
    if (strncmp(text, "cache ttl=", 10) != 0 || text[10] < '1' || text[10] > '9') return 0;
    char *end;
    errno = 0;
    long long ttl = strtoll(text + 10, &end, 10);
    if (errno != 0 || *end != '\0' || ttl <= 0) return 0;
    meta->cache = 1;
    meta->cache_ttl_ms = ttl;
    return 1;
}

/* The device string and, after its NUL, the CACHE extension (see the top). */
static char *LoadDevice(RedisModuleIO *rdb, RAI_ModelMeta *meta, int *bad) {
    size_t len = 0;
    char *buf = RedisModule_LoadStringBuffer(rdb, &len);
    if (buf == NULL) return RedisModule_Strdup("");
    const char *nul = memchr(buf, '\0', len);
    size_t devlen = nul ? (size_t)(nul - buf) : len;
    char *device = RedisModule_Alloc(devlen + 1);
    memcpy(device, buf, devlen);
    device[devlen] = '\0';
    if (nul) {
        size_t extlen = len - devlen - 1;
        if (extlen > 0 && buf[len - 1] == '\0') extlen--; /* saved with its own NUL */
        *bad = !ParseDeviceExtension(nul + 1, extlen, meta);
    }
    RedisModule_Free(buf);
    return device;
}

static char **LoadNames(RedisModuleIO *rdb, int *n) {
    uint64_t count = RedisModule_LoadUnsigned(rdb);
    if (RedisModule_IsIOError(rdb) || count > 4096) {
        *n = 0;
        return NULL;
    }
    *n = (int)count;
    char **names = RedisModule_Calloc(count > 0 ? count : 1, sizeof(char *));
    for (uint64_t i = 0; i < count; i++) names[i] = LoadCString(rdb);
    return names;
}

static void FreeLoadedNames(char **names, int n) {
    for (int i = 0; i < n; i++) RedisModule_Free(names[i]);
    RedisModule_Free(names);
}

/* Appends a chunk to a blob that grows by doubling (MODEL_CHUNK_SIZE may
 * be 1 byte, so there may be as many chunks as bytes). */
static void BlobAppend(char **blob, size_t *cap, size_t filled, const char *chunk, size_t clen) {
    if (filled + clen > *cap) {
        size_t want = *cap;
        while (want < filled + clen) want *= 2;
        *blob = RedisModule_Realloc(*blob, want);
        *cap = want;
    }
    memcpy(*blob + filled, chunk, clen);
}

/* The blob: one buffer (v0) or `len, n_chunks, chunks` (v1+). The saved
 * length is only compared with the chunks, never allocated up front: a
 * corrupt or hand-made payload (RESTORE) may claim any size, and an
 * allocation Redis cannot satisfy ends the process. */
static char *LoadBlob(RedisModuleIO *rdb, int chunked, size_t *len) {
    if (!chunked) return RedisModule_LoadStringBuffer(rdb, len);
    uint64_t total = RedisModule_LoadUnsigned(rdb);
    uint64_t nchunks = RedisModule_LoadUnsigned(rdb);
    if (RedisModule_IsIOError(rdb)) return NULL;
    char *blob = RedisModule_Alloc(1);
    size_t cap = 1, filled = 0;
    for (uint64_t i = 0; i < nchunks; i++) {
        size_t clen = 0;
        char *chunk = RedisModule_LoadStringBuffer(rdb, &clen);
        if (chunk == NULL || clen > total - filled) {
            RedisModule_Free(chunk);
            RedisModule_Free(blob);
            RedisModule_LogIOError(rdb, "warning", "AI__MODEL: corrupt model blob in RDB");
            return NULL;
        }
        BlobAppend(&blob, &cap, filled, chunk, clen);
        filled += clen;
        RedisModule_Free(chunk);
    }
    if (filled != total) {
        RedisModule_Free(blob);
        RedisModule_LogIOError(rdb, "warning", "AI__MODEL: truncated model blob in RDB");
        return NULL;
    }
    *len = total;
    return RedisModule_Realloc(blob, total > 0 ? total : 1); /* MEMORY USAGE counts bloblen */
}

static void *ModelRdbLoad(RedisModuleIO *rdb, int encver) {
    if (encver > RAI_ENC_VER) {
        RedisModule_LogIOError(rdb, "warning", "AI__MODEL: encoding version %d is not forward compatible",
                               encver);
        return NULL;
    }
    RAI_ModelMeta meta = {.ninputs = -1, .noutputs = -1};
    uint64_t backend = RedisModule_LoadUnsigned(rdb);
    int bad_extension = 0;
    char *device = LoadDevice(rdb, &meta, &bad_extension);
    char *tag = LoadCString(rdb);
    meta.batchsize = (long long)RedisModule_LoadUnsigned(rdb);
    meta.minbatchsize = (long long)RedisModule_LoadUnsigned(rdb);
    if (encver >= 2) meta.minbatchtimeout = (long long)RedisModule_LoadUnsigned(rdb);
    int nin, nout;
    char **inputs = LoadNames(rdb, &nin);
    char **outputs = LoadNames(rdb, &nout);
    size_t bloblen = 0;
    char *blob = RedisModule_IsIOError(rdb) ? NULL : LoadBlob(rdb, encver >= 1, &bloblen);

    RAI_Model *m = NULL;
    if (bad_extension) {
        RedisModule_LogIOError(rdb, "warning", "AI__MODEL: unknown device extension in RDB");
    } else if (blob != NULL && !RedisModule_IsIOError(rdb) && backend < RAI_BACKEND_COUNT) {
        meta.backend = (RAI_Backend)backend;
        meta.device = device;
        meta.tag = tag;
        /* No real model has zero inputs: zero means "not known yet". */
        meta.ninputs = nin > 0 ? nin : -1;
        meta.noutputs = nout > 0 ? nout : -1;
        meta.inputs = (const char **)inputs;
        meta.outputs = (const char **)outputs;
        m = RAI_ModelNew(&meta, blob, bloblen);
        blob = NULL;
        const RedisModuleString *key = RedisModule_GetKeyNameFromIO(rdb);
        if (key != NULL) RAI_ModelLinkKey(m, key);
    } else if (backend >= RAI_BACKEND_COUNT) {
        RedisModule_LogIOError(rdb, "warning", "AI__MODEL: unknown backend %llu in RDB",
                               (unsigned long long)backend);
    }
    RedisModule_Free(blob);
    RedisModule_Free(device);
    RedisModule_Free(tag);
    FreeLoadedNames(inputs, nin);
    FreeLoadedNames(outputs, nout);
    return m;
}

static void SaveNames(RedisModuleIO *rdb, int n, char **names) {
    RedisModule_SaveUnsigned(rdb, n > 0 ? (uint64_t)n : 0);
    for (int i = 0; i < n; i++) RedisModule_SaveStringBuffer(rdb, names[i], strlen(names[i]) + 1);
}

/* The device with its NUL, then the CACHE extension for a cached model. */
static void SaveDevice(RedisModuleIO *rdb, const RAI_Model *m) {
    size_t devlen = strlen(m->device);
    if (!m->cache) {
        RedisModule_SaveStringBuffer(rdb, m->device, devlen + 1);
        return;
    }
    char ext[64];
    int extlen = m->cache_ttl_ms > 0 ? snprintf(ext, sizeof(ext), "cache ttl=%lld", m->cache_ttl_ms)
                                     : snprintf(ext, sizeof(ext), "cache");
    char *buf = RedisModule_Alloc(devlen + 1 + (size_t)extlen + 1);
    memcpy(buf, m->device, devlen + 1);
    memcpy(buf + devlen + 1, ext, (size_t)extlen + 1);
    RedisModule_SaveStringBuffer(rdb, buf, devlen + 1 + (size_t)extlen + 1);
    RedisModule_Free(buf);
}

static void ModelRdbSave(RedisModuleIO *rdb, void *value) {
    const RAI_Model *m = value;
    size_t chunk = (size_t)RAI_Cfg.model_chunk_size;
    RedisModule_SaveUnsigned(rdb, m->backend);
    SaveDevice(rdb, m);
    RedisModule_SaveStringBuffer(rdb, m->tag, strlen(m->tag));
    RedisModule_SaveUnsigned(rdb, (uint64_t)m->batchsize);
    RedisModule_SaveUnsigned(rdb, (uint64_t)m->minbatchsize);
    RedisModule_SaveUnsigned(rdb, (uint64_t)m->minbatchtimeout);
    SaveNames(rdb, m->ninputs, m->inputs);
    SaveNames(rdb, m->noutputs, m->outputs);
    RedisModule_SaveUnsigned(rdb, m->bloblen);
    size_t nchunks = RAI_ModelChunkCount(m, chunk);
    RedisModule_SaveUnsigned(rdb, nchunks);
    for (size_t i = 0; i < nchunks; i++)
        RedisModule_SaveStringBuffer(rdb, m->blob + i * chunk, RAI_ModelChunkLen(m, chunk, i));
}

static RedisModuleString *Str(const char *s) {
    return RedisModule_CreateString(NULL, s, strlen(s));
}

/* AI.MODELSTORE key BACKEND device TAG t BATCHSIZE n MINBATCHSIZE m
 * MINBATCHTIMEOUT t [CACHE [TTL ms]] [INPUTS n ... OUTPUTS n ...] BLOB chunk... */
static void ModelAofRewrite(RedisModuleIO *aof, RedisModuleString *key, void *value) {
    const RAI_Model *m = value;
    size_t chunk = (size_t)RAI_Cfg.model_chunk_size;
    size_t nchunks = RAI_ModelChunkCount(m, chunk);
    int tf = m->backend == RAI_BACKEND_TF && m->ninputs > 0 && m->noutputs > 0;
    size_t argc = 10 + 3 + (tf ? 4 + m->ninputs + m->noutputs : 0) + 1 + nchunks;
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * argc);
    size_t n = 0;
    args[n++] = Str(RAI_BackendName(m->backend));
    args[n++] = Str(m->device);
    args[n++] = Str("TAG");
    args[n++] = Str(m->tag);
    args[n++] = Str("BATCHSIZE");
    args[n++] = RedisModule_CreateStringPrintf(NULL, "%lld", m->batchsize);
    args[n++] = Str("MINBATCHSIZE");
    args[n++] = RedisModule_CreateStringPrintf(NULL, "%lld", m->minbatchsize);
    args[n++] = Str("MINBATCHTIMEOUT");
    args[n++] = RedisModule_CreateStringPrintf(NULL, "%lld", m->minbatchtimeout);
    if (m->cache) args[n++] = Str("CACHE");
    if (m->cache && m->cache_ttl_ms > 0) {
        args[n++] = Str("TTL");
        args[n++] = RedisModule_CreateStringPrintf(NULL, "%lld", m->cache_ttl_ms);
    }
    if (tf) {
        args[n++] = Str("INPUTS");
        args[n++] = RedisModule_CreateStringPrintf(NULL, "%d", m->ninputs);
        for (int i = 0; i < m->ninputs; i++) args[n++] = Str(m->inputs[i]);
        args[n++] = Str("OUTPUTS");
        args[n++] = RedisModule_CreateStringPrintf(NULL, "%d", m->noutputs);
        for (int i = 0; i < m->noutputs; i++) args[n++] = Str(m->outputs[i]);
    }
    args[n++] = Str("BLOB");
    for (size_t i = 0; i < nchunks; i++)
        args[n++] = RedisModule_CreateString(NULL, m->blob + i * chunk, RAI_ModelChunkLen(m, chunk, i));
    RedisModule_EmitAOF(aof, "AI.MODELSTORE", "sv", key, args, n);
    RAI_FreeArgs(args, n);
}

static size_t ModelMemUsage(const void *value) {
    return RAI_ModelMemUsage(value);
}

/* The key lets go of the model: its cache entries can go too. */
static void ModelFree(void *value) {
    RAI_ModelUnkeyed(value);
    RAI_ModelRelease(value);
}

/* The copy is a model of its own (own session, own statistics and metric series). */
static void *ModelCopy(RedisModuleString *fromkey, RedisModuleString *tokey, const void *value) {
    (void)fromkey;
    const RAI_Model *m = value;
    RAI_ModelMeta meta = {
        .backend = m->backend, .device = m->device, .tag = m->tag,
        .batchsize = m->batchsize, .minbatchsize = m->minbatchsize,
        .minbatchtimeout = m->minbatchtimeout,
        .ninputs = m->ninputs, .noutputs = m->noutputs,
        .inputs = (const char **)m->inputs, .outputs = (const char **)m->outputs,
        .cache = m->cache, .cache_ttl_ms = m->cache_ttl_ms,
        .warmup = m->warmup,
    };
    char *blob = RedisModule_Alloc(m->bloblen > 0 ? m->bloblen : 1);
    memcpy(blob, m->blob, m->bloblen);
    RAI_Model *copy = RAI_ModelNew(&meta, blob, m->bloblen);
    copy->queue = m->queue;
    RAI_ModelLinkKey(copy, tokey);
    return copy;
}

int RAI_ModelTypeRegister(RedisModuleCtx *ctx) {
    RedisModuleTypeMethods methods = {
        .version = REDISMODULE_TYPE_METHOD_VERSION_COPY,
        .rdb_load = ModelRdbLoad,
        .rdb_save = ModelRdbSave,
        .aof_rewrite = ModelAofRewrite,
        .mem_usage = ModelMemUsage,
        .free = ModelFree,
        .copy = ModelCopy,
    };
    RAI_ModelType = RedisModule_CreateDataType(ctx, "AI__MODEL", RAI_ENC_VER, &methods);
    return RAI_ModelType ? REDISMODULE_OK : REDISMODULE_ERR;
}
