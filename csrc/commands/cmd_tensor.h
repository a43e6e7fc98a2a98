/* cmd_tensor.h -- AI.TENSORSET and AI.TENSORGET, and the tensor reply that
 * the DAG's TENSORGET op shares. */
#ifndef RAI_CMD_TENSOR_H
#define RAI_CMD_TENSOR_H

#include "rm_api.h"
#include "types/tensor.h"

int RAI_TensorSet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int RAI_TensorGet_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

const char *RAI_ParseTensorGetFormat(RedisModuleString **argv, int argc, int *meta, int *blob,
                                     int *values);
void RAI_ReplyWithTensor(RedisModuleCtx *ctx, const RAI_Tensor *t, int meta, int blob, int values);

#endif
