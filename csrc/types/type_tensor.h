/* type_tensor.h -- the AI_TENSOR data type (RDB, AOF, copy, memory usage). */
#ifndef RAI_TYPE_TENSOR_H
#define RAI_TYPE_TENSOR_H

#include "rm_api.h"
#include "types/tensor.h"

#define RAI_ENC_VER 4

extern RedisModuleType *RAI_TensorType;

int RAI_TensorTypeRegister(RedisModuleCtx *ctx);

/* The tensor stored at keyname, valid until the main thread moves on; NULL
 * after replying "tensor key is empty..." or WRONGTYPE. */
RAI_Tensor *RAI_ReadTensorKey(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* Opens keyname for writing if it is empty or a tensor; else replies
 * WRONGTYPE and returns NULL. */
RedisModuleKey *RAI_OpenTensorKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* 1 if keyname is empty or a tensor; else replies WRONGTYPE and returns 0. */
int RAI_TensorKeyWritable(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* The arguments of `AI.TENSORSET key <these>` that recreate t (DTYPE, dims,
 * BLOB, data): for AOF rewrite and for replicating outputs. */
RedisModuleString **RAI_TensorSetArgs(const RAI_Tensor *t, size_t *argc);
void RAI_FreeArgs(RedisModuleString **args, size_t argc);

#endif
