/* backends.c -- the backend table: names, load state, INFO fields, and the
 * log line for the library path RedisAI's load syntax carries. */
#include "types/backends.h"

#include <string.h>

#include "base/args.h"
#include "base/log.h"

static const char *const BACKEND_NAMES[RAI_BACKEND_COUNT] = {"TF", "TFLITE", "TORCH", "ONNX"};

/* The INFO field that carries each backend's version, as RedisAI names it. */
static const char *const VERSION_FIELDS[RAI_BACKEND_COUNT] = {
    "TensorFlow_version", "TensorFlowLite_version", "Torch_version", "onnxruntime_version"};

static char *loaded_versions[RAI_BACKEND_COUNT];

const char *RAI_BackendName(RAI_Backend b) {
    return BACKEND_NAMES[b];
}

const char *RAI_ParseBackend(RedisModuleString *arg, RAI_Backend *out) {
    for (int i = 0; i < RAI_BACKEND_COUNT; i++) {
        if (RAI_ArgIs(arg, BACKEND_NAMES[i])) {
            *out = (RAI_Backend)i;
            return NULL;
        }
    }
    return "ERR unsupported backend";
}

const char *RAI_BackendVersion(RAI_Backend b) {
    return loaded_versions[b];
}

void RAI_BackendSetLoaded(RAI_Backend b, const char *version) {
    RedisModule_Free(loaded_versions[b]);
    loaded_versions[b] = RedisModule_Strdup(version);
}

void RAI_BackendLogIgnoredPath(const char *origin, RAI_Backend b, const char *path,
                               const char *backends_path) {
    /* Shown as RedisAI would have opened it: a relative path under BACKENDSPATH. */
    int relative = path[0] != '/' && backends_path != NULL;
    RAI_LOG_NOTICE("%s %s: path %s%s%s ignored (it names a RedisAI C library; the %s backend "
                   "here is a Python adapter)",
                   origin, BACKEND_NAMES[b], relative ? backends_path : "",
                   relative ? "/" : "", path, BACKEND_NAMES[b]);
}

void RAI_BackendsInfo(RedisModuleInfoCtx *ctx, int workers) {
    for (int i = 0; i < RAI_BACKEND_COUNT; i++) {
        if (loaded_versions[i] == NULL) continue;
        RedisModule_InfoAddFieldCString(ctx, VERSION_FIELDS[i], loaded_versions[i]);
    }
    /* As many ONNX runs can be in flight as there are workers. (RedisAI's
     * onnxruntime_memory counters need an allocator hook that onnxruntime's
     * Python API does not offer, so they are not reported.) */
    if (loaded_versions[RAI_BACKEND_ONNX] != NULL)
        RedisModule_InfoAddFieldLongLong(ctx, "onnxruntime_maximum_run_sessions_number",
                                         workers);
}
