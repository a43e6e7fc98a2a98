/* rm_api.c -- fills the module API function pointers declared in rm_api.h.
 *
 * Redis hands OnLoad a context whose first word is the address of its
 * GetApi(name, &pointer) function; every other entry point is fetched by
 * name through it. */
#include "rm_api.h"

#define RAI_DEFINE_API(ret, name, args) ret(*RedisModule_##name) args = NULL;
RAI_REQUIRED_APIS(RAI_DEFINE_API)
RAI_OPTIONAL_APIS(RAI_DEFINE_API)
#undef RAI_DEFINE_API

typedef int (*GetApiFunc)(const char *name, void *out);

int RAI_ApiInit(RedisModuleCtx *ctx, const char *name, int ver, const char **missing) {
    GetApiFunc get_api = (GetApiFunc)((void **)ctx)[0];

#define RAI_RESOLVE_API(ret, fname, args)                                            \
    if (get_api("RedisModule_" #fname, (void *)&RedisModule_##fname) != REDISMODULE_OK) { \
        *missing = "RedisModule_" #fname;                                           \
        return REDISMODULE_ERR;                                                     \
    }
    RAI_REQUIRED_APIS(RAI_RESOLVE_API)
#undef RAI_RESOLVE_API
#define RAI_RESOLVE_OPTIONAL_API(ret, fname, args) get_api("RedisModule_" #fname, (void *)&RedisModule_##fname);
    RAI_OPTIONAL_APIS(RAI_RESOLVE_OPTIONAL_API)
#undef RAI_RESOLVE_OPTIONAL_API

    if (RedisModule_IsModuleNameBusy(name)) {
        *missing = "a free module name (\"ai\" is already loaded)";
        return REDISMODULE_ERR;
    }
    RedisModule_SetModuleAttribs(ctx, name, ver, REDISMODULE_APIVER_1);
    return REDISMODULE_OK;
}
