/* tensor.c -- creating, sharing and releasing tensors.
 *
 * All memory comes from RedisModule_Alloc so INFO memory and MEMORY USAGE
 * see it. Refcounts are atomic because worker threads hold references to
 * input tensors while the main thread may replace the key they came from. */
#include "types/tensor.h"

#include <string.h>

#include "rm_api.h"

const RAI_DTypeInfo RAI_DTYPES[RAI_DTYPE_COUNT] = {
    [RAI_DTYPE_FLOAT] = {"FLOAT", RAI_DL_FLOAT, 32, 4, "f"},
    [RAI_DTYPE_DOUBLE] = {"DOUBLE", RAI_DL_FLOAT, 64, 8, "d"},
    [RAI_DTYPE_INT8] = {"INT8", RAI_DL_INT, 8, 1, "b"},
    [RAI_DTYPE_INT16] = {"INT16", RAI_DL_INT, 16, 2, "h"},
    [RAI_DTYPE_INT32] = {"INT32", RAI_DL_INT, 32, 4, "i"},
    [RAI_DTYPE_INT64] = {"INT64", RAI_DL_INT, 64, 8, "q"},
    [RAI_DTYPE_UINT8] = {"UINT8", RAI_DL_UINT, 8, 1, "B"},
    [RAI_DTYPE_UINT16] = {"UINT16", RAI_DL_UINT, 16, 2, "H"},
    [RAI_DTYPE_BOOL] = {"BOOL", RAI_DL_BOOL, 8, 1, "?"},
    [RAI_DTYPE_STRING] = {"STRING", RAI_DL_STRING, 8, 0, NULL},
};

size_t RAI_ShapeLength(const int64_t *shape, int ndims, int *overflow) {
    size_t len = 1;
    *overflow = 0;
    for (int i = 0; i < ndims; i++) {
        if (__builtin_mul_overflow(len, (size_t)shape[i], &len)) {
            *overflow = 1;
            return 0;
        }
    }
    return len;
}

size_t RAI_TensorByteSize(RAI_DType dtype, size_t len, int *too_big) {
    size_t nbytes;
    *too_big = 0;
    if (__builtin_mul_overflow(len, (size_t)RAI_DTYPES[dtype].size, &nbytes) ||
        nbytes > RAI_TENSOR_MAX_BYTES) {
        *too_big = 1;
        return 0;
    }
    return nbytes;
}

static RAI_Tensor *TensorAllocHeader(RAI_DType dtype, int ndims, const int64_t *shape) {
    RAI_Tensor *t = RedisModule_Calloc(1, sizeof(*t));
    int overflow;
    t->refcount = 1;
    t->dtype = dtype;
    t->ndims = ndims;
    t->shape = RedisModule_Alloc(sizeof(int64_t) * (ndims > 0 ? ndims : 1));
    if (ndims > 0) memcpy(t->shape, shape, sizeof(int64_t) * ndims);
    t->len = RAI_ShapeLength(shape, ndims, &overflow);
    return t;
}

RAI_Tensor *RAI_TensorNew(RAI_DType dtype, int ndims, const int64_t *shape) {
    RAI_Tensor *t = TensorAllocHeader(dtype, ndims, shape);
    if (dtype == RAI_DTYPE_STRING) {
        /* Every element is the empty string: one NUL each. */
        t->nbytes = t->len;
    } else {
        t->nbytes = t->len * RAI_DTYPES[dtype].size;
    }
    t->data = RedisModule_Calloc(1, t->nbytes > 0 ? t->nbytes : 1);
    if (dtype == RAI_DTYPE_STRING) RAI_TensorIndexStrings(t);
    return t;
}

RAI_Tensor *RAI_TensorFromBlob(RAI_DType dtype, int ndims, const int64_t *shape,
                               const char *blob, size_t bloblen) {
    RAI_Tensor *t = TensorAllocHeader(dtype, ndims, shape);
    t->nbytes = bloblen;
    t->data = RedisModule_Alloc(bloblen > 0 ? bloblen : 1);
    memcpy(t->data, blob, bloblen);
    if (dtype == RAI_DTYPE_STRING) RAI_TensorIndexStrings(t);
    return t;
}

const char *RAI_TensorCheckBlob(RAI_DType dtype, size_t len, const char *blob, size_t bloblen) {
    if (dtype == RAI_DTYPE_STRING) {
        size_t pieces = 0;
        for (size_t i = 0; i < bloblen; i++) pieces += (blob[i] == '\0');
        if (pieces != len || bloblen == 0 || blob[bloblen - 1] != '\0')
            return "ERR Number of string elements in data blob does not match tensor length";
        return NULL;
    }
    /* The product may wrap for a huge shape, and must not then match. */
    size_t expected;
    if (__builtin_mul_overflow(len, (size_t)RAI_DTYPES[dtype].size, &expected) || bloblen != expected)
        return "ERR data length does not match tensor shape and type";
    if (dtype == RAI_DTYPE_BOOL) {
        for (size_t i = 0; i < bloblen; i++) {
            if ((unsigned char)blob[i] > 1) return "ERR BOOL tensor elements must be 0 or 1";
        }
    }
    return NULL;
}

void RAI_TensorIndexStrings(RAI_Tensor *t) {
    RedisModule_Free(t->offsets);
    t->offsets = RedisModule_Alloc(sizeof(uint64_t) * (t->len > 0 ? t->len : 1));
    size_t element = 0, start = 0;
    for (size_t i = 0; i < t->nbytes && element < t->len; i++) {
        if (t->data[i] != '\0') continue;
        t->offsets[element++] = start;
        start = i + 1;
    }
}

RAI_Tensor *RAI_TensorRetain(RAI_Tensor *t) {
    __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
    return t;
}

void RAI_TensorRelease(RAI_Tensor *t) {
    if (t == NULL) return;
    if (__atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    RedisModule_Free(t->shape);
    RedisModule_Free(t->data);
    RedisModule_Free(t->offsets);
    RedisModule_Free(t);
}

RAI_Tensor *RAI_TensorDeepCopy(const RAI_Tensor *t) {
    return RAI_TensorFromBlob(t->dtype, t->ndims, t->shape, t->data, t->nbytes);
}

size_t RAI_TensorMemUsage(const RAI_Tensor *t) {
    size_t usage = sizeof(*t) + sizeof(int64_t) * (t->ndims > 0 ? t->ndims : 1) + t->nbytes;
    if (t->offsets) usage += sizeof(uint64_t) * t->len;
    return usage;
}
