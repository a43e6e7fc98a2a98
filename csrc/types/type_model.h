/* type_model.h -- the AI__MODEL data type. */
#ifndef RAI_TYPE_MODEL_H
#define RAI_TYPE_MODEL_H

#include "types/model.h"
#include "rm_api.h"

extern RedisModuleType *RAI_ModelType;

int RAI_ModelTypeRegister(RedisModuleCtx *ctx);

/* The model stored at keyname; NULL after replying "model key is empty" or
 * WRONGTYPE. */
RAI_Model *RAI_ReadModelKey(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* Opens keyname for writing if it is empty or a model; else replies
 * WRONGTYPE and returns NULL. */
RedisModuleKey *RAI_OpenModelKeyToWrite(RedisModuleCtx *ctx, RedisModuleString *keyname);

/* The model now lives at keyname: its runs count to that key's metric
 * series (main thread; cheap when it is linked there already). */
void RAI_ModelLinkKey(RAI_Model *m, const RedisModuleString *keyname);

#endif
