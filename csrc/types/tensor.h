/* tensor.h -- the refcounted tensor: dtype, shape and a C buffer.
 *
 * No Redis key access and no Python here. A tensor is immutable once it is
 * stored in a key: writers always build a new one and swap it in, so readers
 * on worker threads can hold a reference without any lock. */
#ifndef RAI_TENSOR_H
#define RAI_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RAI_DTYPE_FLOAT = 0,
    RAI_DTYPE_DOUBLE,
    RAI_DTYPE_INT8,
    RAI_DTYPE_INT16,
    RAI_DTYPE_INT32,
    RAI_DTYPE_INT64,
    RAI_DTYPE_UINT8,
    RAI_DTYPE_UINT16,
    RAI_DTYPE_BOOL,
    RAI_DTYPE_STRING,
    RAI_DTYPE_COUNT
} RAI_DType;

/* DLPack type codes as RedisAI writes them into RDB. */
enum { RAI_DL_INT = 0, RAI_DL_UINT = 1, RAI_DL_FLOAT = 2, RAI_DL_BOOL = 6, RAI_DL_STRING = 7 };

typedef struct {
    const char *name;   /* as TENSORSET takes it and TENSORGET META shows it */
    uint8_t code;       /* DLPack code */
    uint8_t bits;       /* bits per element (8 for STRING: bytes are chars) */
    uint8_t size;       /* bytes per element; 0 for STRING (variable) */
    const char *format; /* Python buffer-protocol (struct) format; NULL for STRING */
} RAI_DTypeInfo;

/* The one table of tensor types: Python learns the names, formats and sizes
 * from the shim module at start-up (redisai_py._runtime), and the bridge
 * reads a numpy output's type back through its buffer format. */
extern const RAI_DTypeInfo RAI_DTYPES[RAI_DTYPE_COUNT];

/* The largest tensor buffer we agree to allocate. It matches Redis's default
 * proto-max-bulk-len, the largest BLOB a client can send, and keeps a
 * shape-only TENSORSET from asking the allocator for terabytes (Redis's
 * allocator aborts the process when it cannot serve a request). */
#define RAI_TENSOR_MAX_BYTES (512ULL * 1024 * 1024)
#define RAI_TENSOR_MAX_DIMS 64

typedef struct RAI_Tensor {
    int refcount;
    RAI_DType dtype;
    int ndims;
    int64_t *shape;    /* ndims entries, each > 0 */
    size_t len;        /* number of elements: product of shape (1 for a scalar) */
    size_t nbytes;     /* bytes in data */
    char *data;        /* row-major elements; STRING: NUL-terminated pieces */
    uint64_t *offsets; /* STRING only: start offset of every element in data */
} RAI_Tensor;

/* Element count of a shape, or 0 with *overflow set when it overflows. */
size_t RAI_ShapeLength(const int64_t *shape, int ndims, int *overflow);

/* A new tensor whose buffer is zero-filled (STRING: every element empty).
 * The caller has validated the shape and its byte size. */
RAI_Tensor *RAI_TensorNew(RAI_DType dtype, int ndims, const int64_t *shape);

/* A new tensor taking a copy of `blob`, which the caller has validated
 * (RAI_TensorCheckBlob). */
RAI_Tensor *RAI_TensorFromBlob(RAI_DType dtype, int ndims, const int64_t *shape,
                               const char *blob, size_t bloblen);

/* Checks that a blob fits the dtype and element count. Returns NULL when it
 * does, else the error text to reply with. */
const char *RAI_TensorCheckBlob(RAI_DType dtype, size_t len, const char *blob, size_t bloblen);

/* STRING tensors: recomputes the element start offsets from data. */
void RAI_TensorIndexStrings(RAI_Tensor *t);

RAI_Tensor *RAI_TensorRetain(RAI_Tensor *t);
void RAI_TensorRelease(RAI_Tensor *t);
RAI_Tensor *RAI_TensorDeepCopy(const RAI_Tensor *t);
size_t RAI_TensorMemUsage(const RAI_Tensor *t);

/* Byte size of `len` elements of a fixed-size dtype, 0 with *too_big set
 * when it passes RAI_TENSOR_MAX_BYTES. */
size_t RAI_TensorByteSize(RAI_DType dtype, size_t len, int *too_big);

#endif
