/* type_tensor.c -- the AI_TENSOR module data type.
 *
 * RDB save/load and AOF rewrite are pure C over the tensor's own buffer:
 * they run in the BGSAVE / BGREWRITEAOF child, where no Python thread
 * exists and no lock a worker holds may be taken. Encoding version 4 is
 * RedisAI 1.2's; versions 0-3 are read too, so old dumps still load. */
#include "types/type_tensor.h"

#include <string.h>

#include "types/key_access.h"

RedisModuleType *RAI_TensorType = NULL;

RAI_Tensor *RAI_ReadTensorKey(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    return RAI_ReadTypedKey(ctx, keyname, RAI_TensorType, "ERR tensor key is empty or in a different shard");
}

RedisModuleKey *RAI_OpenTensorKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    return RAI_OpenTypedKeyToWrite(ctx, keyname, RAI_TensorType);
}

int RAI_TensorKeyWritable(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    return RAI_TypedKeyWritable(ctx, keyname, RAI_TensorType);
}

static int DTypeFromCode(uint64_t code, uint64_t bits, RAI_DType *out) {
    for (int i = 0; i < RAI_DTYPE_COUNT; i++) {
        if (RAI_DTYPES[i].code == code && RAI_DTYPES[i].bits == bits) {
            *out = (RAI_DType)i;
            return 1;
        }
    }
    return 0;
}

/* Checks what an RDB gave us before it becomes a tensor: a corrupt file must
 * fail the load, never produce a tensor whose buffer disagrees with its shape. */
static RAI_Tensor *TensorFromLoaded(RedisModuleIO *rdb, RAI_DType dtype, int ndims,
                                    const int64_t *shape, char *data, size_t nbytes) {
    int overflow;
    size_t len = RAI_ShapeLength(shape, ndims, &overflow);
    const char *err = overflow ? "shape overflows" : RAI_TensorCheckBlob(dtype, len, data, nbytes);
    if (err) {
        RedisModule_LogIOError(rdb, "warning", "AI_TENSOR: corrupt tensor in RDB (%s)", err);
        return NULL;
    }
    return RAI_TensorFromBlob(dtype, ndims, shape, data, nbytes);
}

/* encver 4: code, bits, ndims, dims, data [, string offsets]. */
static void *TensorLoadV4(RedisModuleIO *rdb) {
    uint64_t code = RedisModule_LoadUnsigned(rdb);
    uint64_t bits = RedisModule_LoadUnsigned(rdb);
    int64_t ndims = RedisModule_LoadSigned(rdb);
    if (RedisModule_IsIOError(rdb)) return NULL;
    RAI_DType dtype;
    if (!DTypeFromCode(code, bits, &dtype) || ndims < 0 || ndims > RAI_TENSOR_MAX_DIMS) {
        RedisModule_LogIOError(rdb, "warning", "AI_TENSOR: bad dtype or rank in RDB");
        return NULL;
    }
    int64_t shape[RAI_TENSOR_MAX_DIMS];
    for (int64_t i = 0; i < ndims; i++) {
        shape[i] = RedisModule_LoadSigned(rdb);
        if (shape[i] <= 0 && !RedisModule_IsIOError(rdb)) {
            RedisModule_LogIOError(rdb, "warning", "AI_TENSOR: bad dimension in RDB");
            return NULL;
        }
    }
    size_t nbytes = 0;
    char *data = RedisModule_LoadStringBuffer(rdb, &nbytes);
    if (RedisModule_IsIOError(rdb)) {
        if (data) RedisModule_Free(data);
        return NULL;
    }
    RAI_Tensor *t = TensorFromLoaded(rdb, dtype, (int)ndims, shape, data, nbytes);
    RedisModule_Free(data);
    if (t == NULL || dtype != RAI_DTYPE_STRING) return t;
    /* The offsets are derivable from the data; read them to stay in step
     * with the stream and recompute rather than trust them. */
    for (size_t i = 0; i < t->len; i++) (void)RedisModule_LoadUnsigned(rdb);
    if (RedisModule_IsIOError(rdb)) {
        RAI_TensorRelease(t);
        return NULL;
    }
    return t;
}

/* encver 0-3: device type/id, bits, code, lanes, ndims, dims, strides,
 * byte offset, data. Only CPU tensors existed; no STRING. */
static void *TensorLoadLegacy(RedisModuleIO *rdb) {
    uint64_t device_type = RedisModule_LoadUnsigned(rdb);
    (void)RedisModule_LoadUnsigned(rdb); /* device id */
    uint64_t bits = RedisModule_LoadUnsigned(rdb);
    uint64_t code = RedisModule_LoadUnsigned(rdb);
    uint64_t lanes = RedisModule_LoadUnsigned(rdb);
    uint64_t ndims = RedisModule_LoadUnsigned(rdb);
    if (RedisModule_IsIOError(rdb)) return NULL;
    RAI_DType dtype;
    if (device_type != 1 || lanes != 1 || !DTypeFromCode(code, bits, &dtype) ||
        dtype == RAI_DTYPE_STRING || ndims > RAI_TENSOR_MAX_DIMS) {
        RedisModule_LogIOError(rdb, "warning", "AI_TENSOR: unsupported legacy tensor in RDB");
        return NULL;
    }
    int64_t shape[RAI_TENSOR_MAX_DIMS];
    for (uint64_t i = 0; i < ndims; i++) shape[i] = (int64_t)RedisModule_LoadUnsigned(rdb);
    for (uint64_t i = 0; i < ndims; i++) (void)RedisModule_LoadUnsigned(rdb); /* strides */
    (void)RedisModule_LoadUnsigned(rdb);                                       /* byte offset */
    size_t nbytes = 0;
    char *data = RedisModule_LoadStringBuffer(rdb, &nbytes);
    if (RedisModule_IsIOError(rdb)) {
        if (data) RedisModule_Free(data);
        return NULL;
    }
    for (uint64_t i = 0; i < ndims; i++) {
        if (shape[i] <= 0) {
            RedisModule_Free(data);
            RedisModule_LogIOError(rdb, "warning", "AI_TENSOR: bad dimension in legacy RDB");
            return NULL;
        }
    }
    RAI_Tensor *t = TensorFromLoaded(rdb, dtype, (int)ndims, shape, data, nbytes);
    RedisModule_Free(data);
    return t;
}

static void *TensorRdbLoad(RedisModuleIO *rdb, int encver) {
    if (encver > RAI_ENC_VER) {
        RedisModule_LogIOError(rdb, "warning",
                               "AI_TENSOR: encoding version %d is newer than this module "
                               "reads (%d): not forward compatible",
                               encver, RAI_ENC_VER);
        return NULL;
    }
    return encver == RAI_ENC_VER ? TensorLoadV4(rdb) : TensorLoadLegacy(rdb);
}

static void TensorRdbSave(RedisModuleIO *rdb, void *value) {
    const RAI_Tensor *t = value;
    RedisModule_SaveUnsigned(rdb, RAI_DTYPES[t->dtype].code);
    RedisModule_SaveUnsigned(rdb, RAI_DTYPES[t->dtype].bits);
    RedisModule_SaveSigned(rdb, t->ndims);
    for (int i = 0; i < t->ndims; i++) RedisModule_SaveSigned(rdb, t->shape[i]);
    RedisModule_SaveStringBuffer(rdb, t->data, t->nbytes);
    if (t->dtype != RAI_DTYPE_STRING) return;
    for (size_t i = 0; i < t->len; i++) RedisModule_SaveUnsigned(rdb, t->offsets[i]);
}

RedisModuleString **RAI_TensorSetArgs(const RAI_Tensor *t, size_t *argc) {
    *argc = (size_t)t->ndims + 3;
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * *argc);
    const char *dtype = RAI_DTYPES[t->dtype].name;
    args[0] = RedisModule_CreateString(NULL, dtype, strlen(dtype));
    for (int i = 0; i < t->ndims; i++)
        args[1 + i] = RedisModule_CreateStringPrintf(NULL, "%lld", (long long)t->shape[i]);
    args[t->ndims + 1] = RedisModule_CreateString(NULL, "BLOB", 4);
    args[t->ndims + 2] = RedisModule_CreateString(NULL, t->data, t->nbytes);
    return args;
}

void RAI_FreeArgs(RedisModuleString **args, size_t argc) {
    for (size_t i = 0; i < argc; i++) RedisModule_FreeString(NULL, args[i]);
    RedisModule_Free(args);
}

/* AI.TENSORSET key DTYPE dims... BLOB data: the same command a client sends. */
static void TensorAofRewrite(RedisModuleIO *aof, RedisModuleString *key, void *value) {
    size_t argc;
    RedisModuleString **args = RAI_TensorSetArgs(value, &argc);
    RedisModule_EmitAOF(aof, "AI.TENSORSET", "sv", key, args, argc);
    RAI_FreeArgs(args, argc);
}

static size_t TensorMemUsage(const void *value) {
    return RAI_TensorMemUsage(value);
}

static void TensorFree(void *value) {
    RAI_TensorRelease(value);
}

/* COPY gives the destination its own buffer: values are freed independently
 * and MEMORY USAGE of each key stays true. */
static void *TensorCopy(RedisModuleString *fromkey, RedisModuleString *tokey, const void *value) {
    (void)fromkey;
    (void)tokey;
    return RAI_TensorDeepCopy(value);
}

int RAI_TensorTypeRegister(RedisModuleCtx *ctx) {
    RedisModuleTypeMethods methods = {
        .version = REDISMODULE_TYPE_METHOD_VERSION_COPY,
        .rdb_load = TensorRdbLoad,
        .rdb_save = TensorRdbSave,
        .aof_rewrite = TensorAofRewrite,
        .mem_usage = TensorMemUsage,
        .free = TensorFree,
        .copy = TensorCopy,
    };
    RAI_TensorType = RedisModule_CreateDataType(ctx, "AI_TENSOR", RAI_ENC_VER, &methods);
    return RAI_TensorType ? REDISMODULE_OK : REDISMODULE_ERR;
}
