/* type_tensor.h -- the AI_TENSOR data type (RDB, AOF, copy, memory usage). */
#ifndef RAI_TYPE_TENSOR_H
#define RAI_TYPE_TENSOR_H

#include "rm_api.h"
#include "tensor.h"

#define RAI_ENC_VER 4

extern RedisModuleType *RAI_TensorType;

int RAI_TensorTypeRegister(RedisModuleCtx *ctx);

/* Opens `keyname` and checks it is empty or holds a tensor. On a wrong type
 * it replies WRONGTYPE, closes the key and returns NULL. */
RedisModuleKey *RAI_OpenTensorKey(RedisModuleCtx *ctx, RedisModuleString *keyname, int mode);

#endif
