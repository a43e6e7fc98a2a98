/* backends.h -- which inference backends exist and which are loaded.
 *
 * The frameworks themselves live in Python (redisai_py/backends/); the shim
 * only keeps their names, the RDB numbering and, once a backend is loaded,
 * its version string for INFO (read on the main thread, set on it too). */
#ifndef RAI_BACKENDS_H
#define RAI_BACKENDS_H

#include "rm_api.h"

/* Numbering as written into RDB by RedisAI. */
typedef enum {
    RAI_BACKEND_TF = 0,
    RAI_BACKEND_TFLITE = 1,
    RAI_BACKEND_TORCH = 2,
    RAI_BACKEND_ONNX = 3,
    RAI_BACKEND_COUNT
} RAI_Backend;

const char *RAI_BackendName(RAI_Backend b);
const char *RAI_ParseBackend(RedisModuleString *arg, RAI_Backend *out);

/* NULL until the backend is loaded. */
const char *RAI_BackendVersion(RAI_Backend b);
void RAI_BackendSetLoaded(RAI_Backend b, const char *version);

/* RedisAI's LOADBACKEND and load-time `TORCH <path>` name the C library to
 * open; our backends are Python adapters, so the path is not used. Logs one
 * line saying so; `origin` says which syntax carried it. */
void RAI_BackendLogIgnoredPath(const char *origin, RAI_Backend b, const char *path,
                               const char *backends_path);

/* Adds the ai_backends_info fields of every loaded backend; `workers` is how
 * many runs can be in flight at once. */
void RAI_BackendsInfo(RedisModuleInfoCtx *ctx, int workers);

#endif
