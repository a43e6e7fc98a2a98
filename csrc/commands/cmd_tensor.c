/* cmd_tensor.c -- AI.TENSORSET / AI.TENSORGET, entirely in C.
 *
 * These are the hot paths of the module: no Python, no GIL, no allocation
 * beyond the tensor itself. */
#include "commands/cmd_tensor.h"

#include <stdio.h>
#include <string.h>

#include "commands/parse.h"
#include "types/type_tensor.h"

/* AI.TENSORSET key type [dim ...] [BLOB data | VALUES v ...] */
int RAI_TensorSet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 4) return RAI_ReplyWrongArity(ctx, argv[0]);

    RedisModuleKey *key = RAI_OpenTensorKeyToWrite(ctx, argv[1]);
    if (key == NULL) return REDISMODULE_OK; /* WRONGTYPE already replied */

    RAI_Tensor *t = NULL;
    const char *err = RAI_TensorFromArgs(argv + 2, argc - 2, &t);
    if (err) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, err);
    }
    if (RedisModule_ModuleTypeSetValue(key, RAI_TensorType, t) != REDISMODULE_OK) {
        RAI_TensorRelease(t);
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, "ERR could not save tensor");
    }
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* One element of a VALUES reply: integers as integers, floats as the
 * shortest exact decimal of the value widened to double, strings as bulk. */
static void ReplyWithElement(RedisModuleCtx *ctx, const RAI_Tensor *t, size_t i) {
    char buf[64];
    int n;
    switch (t->dtype) {
    case RAI_DTYPE_FLOAT:
        n = snprintf(buf, sizeof(buf), "%.17g", (double)((const float *)t->data)[i]);
        RedisModule_ReplyWithStringBuffer(ctx, buf, (size_t)n);
        return;
    case RAI_DTYPE_DOUBLE:
        n = snprintf(buf, sizeof(buf), "%.17g", ((const double *)t->data)[i]);
        RedisModule_ReplyWithStringBuffer(ctx, buf, (size_t)n);
        return;
    case RAI_DTYPE_INT8: RedisModule_ReplyWithLongLong(ctx, ((const int8_t *)t->data)[i]); return;
    case RAI_DTYPE_INT16: RedisModule_ReplyWithLongLong(ctx, ((const int16_t *)t->data)[i]); return;
    case RAI_DTYPE_INT32: RedisModule_ReplyWithLongLong(ctx, ((const int32_t *)t->data)[i]); return;
    case RAI_DTYPE_INT64: RedisModule_ReplyWithLongLong(ctx, ((const int64_t *)t->data)[i]); return;
    case RAI_DTYPE_UINT8:
    case RAI_DTYPE_BOOL: RedisModule_ReplyWithLongLong(ctx, ((const uint8_t *)t->data)[i]); return;
    case RAI_DTYPE_UINT16: RedisModule_ReplyWithLongLong(ctx, ((const uint16_t *)t->data)[i]); return;
    case RAI_DTYPE_STRING: {
        const char *s = t->data + t->offsets[i];
        RedisModule_ReplyWithStringBuffer(ctx, s, strlen(s));
        return;
    }
    default: RedisModule_ReplyWithNull(ctx); return;
    }
}

static void ReplyWithValues(RedisModuleCtx *ctx, const RAI_Tensor *t) {
    RedisModule_ReplyWithArray(ctx, (long)t->len);
    for (size_t i = 0; i < t->len; i++) ReplyWithElement(ctx, t, i);
}

void RAI_ReplyWithTensor(RedisModuleCtx *ctx, const RAI_Tensor *t, int meta, int blob, int values) {
    if (meta) {
        RedisModule_ReplyWithArray(ctx, (blob || values) ? 6 : 4);
        RedisModule_ReplyWithSimpleString(ctx, "dtype");
        RedisModule_ReplyWithSimpleString(ctx, RAI_DTYPES[t->dtype].name);
        RedisModule_ReplyWithSimpleString(ctx, "shape");
        RedisModule_ReplyWithArray(ctx, t->ndims);
        for (int i = 0; i < t->ndims; i++) RedisModule_ReplyWithLongLong(ctx, t->shape[i]);
    }
    if (blob) {
        if (meta) RedisModule_ReplyWithSimpleString(ctx, "blob");
        RedisModule_ReplyWithStringBuffer(ctx, t->data, t->nbytes);
    } else if (values) {
        if (meta) RedisModule_ReplyWithSimpleString(ctx, "values");
        ReplyWithValues(ctx, t);
    }
}

/* Reads META / BLOB / VALUES; with none given the reply is META + BLOB. */
const char *RAI_ParseTensorGetFormat(RedisModuleString **argv, int argc, int *meta, int *blob,
                                     int *values) {
    *meta = *blob = *values = 0;
    for (int i = 0; i < argc; i++) {
        if (RAI_ArgIs(argv[i], "META")) *meta = 1;
        else if (RAI_ArgIs(argv[i], "BLOB")) *blob = 1;
        else if (RAI_ArgIs(argv[i], "VALUES")) *values = 1;
        else return "ERR unsupported data format";
    }
    if (*blob && *values) return "ERR both BLOB and VALUES specified";
    if (argc == 0) *meta = *blob = 1;
    return NULL;
}

/* AI.TENSORGET key [META] [BLOB | VALUES] */
int RAI_TensorGet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 4) return RAI_ReplyWrongArity(ctx, argv[0]);

    const RAI_Tensor *t = RAI_ReadTensorKey(ctx, argv[1]);
    if (t == NULL) return REDISMODULE_OK;

    int meta, blob, values;
    const char *err = RAI_ParseTensorGetFormat(argv + 2, argc - 2, &meta, &blob, &values);
    if (err) return RedisModule_ReplyWithError(ctx, err);
    RAI_ReplyWithTensor(ctx, t, meta, blob, values);
    return REDISMODULE_OK;
}
