/* parse.c -- turns AI.TENSORSET style arguments into a tensor.
 *
 * Everything is validated before anything is allocated: a failed parse
 * leaves no trace and the key it aimed at keeps its old value. */
#include "commands/parse.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#define ERR_SHAPE "ERR invalid or negative value found in tensor shape"
#define ERR_BLOB_ARGS "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"
#define ERR_VALUES_COUNT "ERR wrong number of values was given in 'AI.TENSORSET' command"
#define ERR_VALUE "ERR invalid value"
#define ERR_NUL_IN_STRING "ERR C-string value contains null character"
#define ERR_TOO_MANY_DIMS "ERR tensor has too many dimensions (at most 64)"
#define ERR_SHAPE_OVERFLOW "ERR tensor shape is too large: the product of its dimensions overflows"
#define ERR_TOO_BIG "ERR tensor is too large: its data would exceed 536870912 bytes"

/* Halfway between FLT_MAX (0x1.fffffep+127) and 2^128: from here on a double
 * rounds to infinity when it is narrowed to float. */
#define FLOAT_ROUNDS_TO_INF 0x1.ffffffp+127

const char *RAI_ParseDType(RedisModuleString *arg, RAI_DType *out) {
    for (int i = 0; i < RAI_DTYPE_COUNT; i++) {
        if (RAI_ArgIs(arg, RAI_DTYPES[i].name)) {
            *out = (RAI_DType)i;
            return NULL;
        }
    }
    return "ERR invalid data type";
}

typedef enum { DATA_NONE, DATA_BLOB, DATA_VALUES } DataFormat;

/* Reads dims until BLOB or VALUES; *consumed is the number of dims read. */
static const char *ParseShape(RedisModuleString **argv, int argc, int64_t *shape, int *ndims,
                              DataFormat *fmt) {
    *ndims = 0;
    *fmt = DATA_NONE;
    for (int i = 0; i < argc; i++) {
        if (RAI_ArgIs(argv[i], "BLOB")) {
            *fmt = DATA_BLOB;
            return NULL;
        }
        if (RAI_ArgIs(argv[i], "VALUES")) {
            *fmt = DATA_VALUES;
            return NULL;
        }
        long long dim;
        if (RedisModule_StringToLongLong(argv[i], &dim) != REDISMODULE_OK || dim <= 0)
            return ERR_SHAPE;
        if (*ndims == RAI_TENSOR_MAX_DIMS) return ERR_TOO_MANY_DIMS;
        shape[(*ndims)++] = dim;
    }
    return NULL;
}

/* One numeric value into element `i` of a fixed-size buffer. */
static const char *StoreNumber(RAI_DType dtype, RedisModuleString *arg, char *data, size_t i) {
    if (dtype == RAI_DTYPE_FLOAT || dtype == RAI_DTYPE_DOUBLE) {
        double d;
        if (RedisModule_StringToDouble(arg, &d) != REDISMODULE_OK) return ERR_VALUE;
        if (dtype == RAI_DTYPE_DOUBLE) {
            ((double *)data)[i] = d;
            return NULL;
        }
        /* Only values that would round to infinity are out of range: those
         * just above FLT_MAX round down to it, and numpy prints FLT_MAX as
         * 3.4028235e+38, which is such a value. */
        if (isfinite(d) && fabs(d) >= FLOAT_ROUNDS_TO_INF) return ERR_VALUE;
        ((float *)data)[i] = (float)d;
        return NULL;
    }
    long long v;
    if (RedisModule_StringToLongLong(arg, &v) != REDISMODULE_OK) return ERR_VALUE;
    switch (dtype) {
    case RAI_DTYPE_INT8:
        if (v < INT8_MIN || v > INT8_MAX) return ERR_VALUE;
        ((int8_t *)data)[i] = (int8_t)v;
        return NULL;
    case RAI_DTYPE_INT16:
        if (v < INT16_MIN || v > INT16_MAX) return ERR_VALUE;
        ((int16_t *)data)[i] = (int16_t)v;
        return NULL;
    case RAI_DTYPE_INT32:
        if (v < INT32_MIN || v > INT32_MAX) return ERR_VALUE;
        ((int32_t *)data)[i] = (int32_t)v;
        return NULL;
    case RAI_DTYPE_INT64:
        ((int64_t *)data)[i] = v;
        return NULL;
    case RAI_DTYPE_UINT8:
        if (v < 0 || v > UINT8_MAX) return ERR_VALUE;
        ((uint8_t *)data)[i] = (uint8_t)v;
        return NULL;
    case RAI_DTYPE_UINT16:
        if (v < 0 || v > UINT16_MAX) return ERR_VALUE;
        ((uint16_t *)data)[i] = (uint16_t)v;
        return NULL;
    case RAI_DTYPE_BOOL:
        if (v != 0 && v != 1) return ERR_VALUE;
        ((uint8_t *)data)[i] = (uint8_t)v;
        return NULL;
    default:
        return ERR_VALUE;
    }
}

static const char *TensorFromValues(RAI_DType dtype, int ndims, const int64_t *shape, size_t len,
                                    RedisModuleString **values, RAI_Tensor **out) {
    if (dtype != RAI_DTYPE_STRING) {
        RAI_Tensor *t = RAI_TensorNew(dtype, ndims, shape);
        for (size_t i = 0; i < len; i++) {
            const char *err = StoreNumber(dtype, values[i], t->data, i);
            if (err) {
                RAI_TensorRelease(t);
                return err;
            }
        }
        *out = t;
        return NULL;
    }
    /* STRING: each value may end in one NUL of its own; none may hold another. */
    size_t total = 0;
    for (size_t i = 0; i < len; i++) {
        size_t n;
        const char *s = RedisModule_StringPtrLen(values[i], &n);
        if (n > 0 && s[n - 1] == '\0') n--;
        if (memchr(s, '\0', n) != NULL) return ERR_NUL_IN_STRING;
        total += n + 1;
    }
    if (total > RAI_TENSOR_MAX_BYTES) return ERR_TOO_BIG;
    char *blob = RedisModule_Alloc(total);
    size_t pos = 0;
    for (size_t i = 0; i < len; i++) {
        size_t n;
        const char *s = RedisModule_StringPtrLen(values[i], &n);
        if (n > 0 && s[n - 1] == '\0') n--;
        memcpy(blob + pos, s, n);
        blob[pos + n] = '\0';
        pos += n + 1;
    }
    *out = RAI_TensorFromBlob(dtype, ndims, shape, blob, total);
    RedisModule_Free(blob);
    return NULL;
}

const char *RAI_TensorFromArgs(RedisModuleString **argv, int argc, RAI_Tensor **out) {
    RAI_DType dtype;
    const char *err = RAI_ParseDType(argv[0], &dtype);
    if (err) return err;

    int64_t shape[RAI_TENSOR_MAX_DIMS];
    int ndims;
    DataFormat fmt;
    if ((err = ParseShape(argv + 1, argc - 1, shape, &ndims, &fmt))) return err;

    int overflow, too_big;
    size_t len = RAI_ShapeLength(shape, ndims, &overflow);
    if (overflow) return ERR_SHAPE_OVERFLOW;
    if (dtype != RAI_DTYPE_STRING) RAI_TensorByteSize(dtype, len, &too_big);
    else too_big = len > RAI_TENSOR_MAX_BYTES;

    int data_at = 1 + ndims + 1; /* first argument after BLOB / VALUES */
    int ndata = argc - data_at;
    if (fmt == DATA_BLOB) {
        if (ndata != 1) return ERR_BLOB_ARGS;
        size_t bloblen;
        const char *blob = RedisModule_StringPtrLen(argv[data_at], &bloblen);
        /* A shape over the limit can only match a blob that is over it too;
         * a smaller blob is just the wrong length, and says so like RedisAI. */
        if (too_big && bloblen > RAI_TENSOR_MAX_BYTES) return ERR_TOO_BIG;
        if ((err = RAI_TensorCheckBlob(dtype, len, blob, bloblen))) return err;
        *out = RAI_TensorFromBlob(dtype, ndims, shape, blob, bloblen);
        return NULL;
    }
    if (fmt == DATA_VALUES) {
        if ((size_t)ndata != len) return ERR_VALUES_COUNT;
        return TensorFromValues(dtype, ndims, shape, len, argv + data_at, out);
    }
    if (too_big) return ERR_TOO_BIG;
    *out = RAI_TensorNew(dtype, ndims, shape);
    return NULL;
}
