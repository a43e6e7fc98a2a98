/* py_runtime.c -- starts the embedded CPython, holds the one table of
 * redisai_py._runtime functions the shim calls, and imports backends.
 *
 * Redis dlopens modules RTLD_LOCAL, so the libpython we link against is
 * mapped with local symbols and numpy/torch (which do not link libpython)
 * would fail to import. We re-open it RTLD_GLOBAL first. The interpreter is
 * isolated: no environment variables, no signal handlers (Redis owns
 * SIGTERM/SIGINT and its crash reporter), and sys.prefix is the venv that
 * holds this module file, found by walking up from it. */
#define PY_SSIZE_T_CLEAN
#include "python/py_runtime.h"

#include <Python.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "python/py_bridge.h"
#include "python/py_gil.h"
#include "types/config.h"

/* Every _runtime function the C side calls. _runtime.ENTRY_POINTS lists
 * the same names; RAI_PyStart compares the two. */
static const char *const ENTRY_POINT_NAMES[RAI_PY_ENTRY_COUNT] = {
    [RAI_PY_START] = "start",
    [RAI_PY_LOAD_BACKEND] = "load_backend",
    [RAI_PY_LOAD_MODEL] = "load_model",
    [RAI_PY_PREPARE_MODEL] = "prepare_model",
    [RAI_PY_LOAD_SCRIPT] = "load_script",
    [RAI_PY_RUN_SCRIPT] = "run_script",
    [RAI_PY_DROP_SESSIONS] = "drop_sessions",
    [RAI_PY_LOAD_LIBRARY] = "load_library",
    [RAI_PY_CALL_FUNCTION] = "call_function",
    [RAI_PY_FIRE_TRIGGER] = "fire_trigger",
};

static PyObject *entry_points[RAI_PY_ENTRY_COUNT];

PyObject *RAI_PyEntryPoint(RAI_PyEntry entry) {
    return entry_points[entry];
}

static int FileExists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Walks up from the module's directory to the first folder that is a venv
 * (holds pyvenv.cfg) or has one named .venv: the installed layout is
 * <venv>/lib/python3.11/site-packages/redisai_py/, a source build sits in
 * the repository next to .venv/. */
static int FindVenv(const char *module_path, char *venv, size_t len) {
    char dir[PATH_MAX], probe[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s", module_path);
    for (char *slash = strrchr(dir, '/'); slash != NULL; slash = strrchr(dir, '/')) {
        *slash = '\0';
        const char *base = dir[0] ? dir : "/";
        snprintf(probe, sizeof(probe), "%s/pyvenv.cfg", base);
        if (FileExists(probe)) return snprintf(venv, len, "%s", base) < (int)len ? 0 : -1;
        snprintf(probe, sizeof(probe), "%s/.venv/pyvenv.cfg", base);
        if (FileExists(probe)) return snprintf(venv, len, "%s/.venv", base) < (int)len ? 0 : -1;
    }
    return -1;
}

/* Re-opens the libpython this module is linked against with global symbols. */
static int PromoteLibPython(char *err, size_t errlen) {
    Dl_info info;
    if (dladdr((void *)Py_InitializeFromConfig, &info) == 0 || info.dli_fname == NULL) {
        snprintf(err, errlen, "cannot locate libpython in this process");
        return -1;
    }
    if (dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) == NULL) {
        snprintf(err, errlen, "cannot make %s global: %s", info.dli_fname, dlerror());
        return -1;
    }
    return 0;
}

/* The pending Python exception as one log line (newlines flattened). */
static void FormatException(const char *what, char *err, size_t errlen) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    PyObject *text = exc ? PyObject_Str(exc) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    snprintf(err, errlen, "%s: %s: %s", what, exc ? Py_TYPE(exc)->tp_name : "error",
             msg ? msg : "(no message)");
    Py_XDECREF(type);
    Py_XDECREF(tb);
    for (char *c = err; *c; c++) {
        if (*c == '\n' || *c == '\r') *c = ' ';
    }
    Py_XDECREF(text);
    Py_XDECREF(exc);
    PyErr_Clear();
}

static RAI_PyShimExtension shim_extension;

void RAI_PySetShimExtension(RAI_PyShimExtension extend) { shim_extension = extend; }

/* `_redisai_shim`: the bridge's module plus what module.c added (the
 * function runs' methods, whose file includes what would include this one). */
static PyObject *InitShimModule(void) {
    PyObject *module = RAI_PyInitShimModule();
    if (module != NULL && shim_extension != NULL && shim_extension(module) != 0) Py_CLEAR(module);
    return module;
}

static int InitInterpreter(const char *venv, char *err, size_t errlen) {
    char executable[PATH_MAX + 16];
    snprintf(executable, sizeof(executable), "%s/bin/python", venv);
    if (!FileExists(executable)) {
        snprintf(err, errlen, "venv %s has no bin/python", venv);
        return -1;
    }
    if (PyImport_AppendInittab("_redisai_shim", InitShimModule) != 0) {
        snprintf(err, errlen, "cannot register the _redisai_shim module");
        return -1;
    }
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.faulthandler = 0;
    config.site_import = 1;
    PyStatus status = PyConfig_SetBytesString(&config, &config.executable, executable);
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        snprintf(err, errlen, "Python failed to start: %s", status.err_msg ? status.err_msg : "?");
        return -1;
    }
    return 0;
}

/* The settings the Python side needs, as a dict for _runtime.start(). */
static PyObject *ConfigDict(void) {
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L}", "threads_per_queue", RAI_Cfg.threads_per_queue,
                         "intra_op_parallelism", RAI_Cfg.intra_op_parallelism,
                         "inter_op_parallelism", RAI_Cfg.inter_op_parallelism,
                         "model_execution_timeout", RAI_Cfg.model_execution_timeout,
                         "backend_memory_limit", RAI_Cfg.backend_memory_limit);
}

/* Whether Python's ENTRY_POINTS names exactly the functions of the table;
 * if not, err says which differs. -1 with an exception when it cannot be read. */
static int EntryPointsMatch(PyObject *runtime, char *err, size_t errlen) {
    PyObject *declared = PyObject_GetAttrString(runtime, "ENTRY_POINTS");
    PyObject *names = declared ? PySet_New(declared) : NULL;
    Py_XDECREF(declared);
    if (names == NULL) return -1;
    int match = 1;
    for (int i = 0; match && i < RAI_PY_ENTRY_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(ENTRY_POINT_NAMES[i]);
        match = name != NULL && PySet_Contains(names, name) == 1;
        Py_XDECREF(name);
        if (!match) snprintf(err, errlen, "_runtime.ENTRY_POINTS lacks %s, which the shim calls", ENTRY_POINT_NAMES[i]);
    }
    if (match && PySet_GET_SIZE(names) != RAI_PY_ENTRY_COUNT) {
        match = 0;
        snprintf(err, errlen, "_runtime.ENTRY_POINTS names functions the shim does not call");
    }
    Py_DECREF(names);
    PyErr_Clear();
    return match;
}

/* Python's ENTRY_POINTS must name exactly the functions of the table, and
 * each must exist: one declared contract, checked at every start. */
static int LookUpEntryPoints(PyObject *runtime, char *err, size_t errlen) {
    int match = EntryPointsMatch(runtime, err, errlen);
    if (match != 1) return -1;
    for (int i = 0; i < RAI_PY_ENTRY_COUNT; i++) {
        entry_points[i] = PyObject_GetAttrString(runtime, ENTRY_POINT_NAMES[i]);
        if (entry_points[i] == NULL || !PyCallable_Check(entry_points[i])) {
            PyErr_Clear();
            snprintf(err, errlen, "_runtime has no function %s", ENTRY_POINT_NAMES[i]);
            return -1;
        }
    }
    return 0;
}

/* Imports redisai_py._runtime, checks its entry points and calls start(). */
static PyObject *StartRuntime(char *err, size_t errlen) {
    /* Importing the shim module readies its types before any worker wraps a
     * tensor or model in them. */
    PyObject *shim = PyImport_ImportModule("_redisai_shim");
    Py_XDECREF(shim);
    PyObject *runtime = shim ? PyImport_ImportModule("redisai_py._runtime") : NULL;
    if (runtime == NULL) return NULL;
    int found = LookUpEntryPoints(runtime, err, errlen);
    Py_DECREF(runtime); /* the entry points keep what they need */
    if (found != 0) {
        if (err[0] == '\0') FormatException("cannot read redisai_py._runtime.ENTRY_POINTS", err, errlen);
        return NULL;
    }
    PyObject *config = ConfigDict();
    PyObject *summary = config ? PyObject_CallOneArg(entry_points[RAI_PY_START], config) : NULL;
    Py_XDECREF(config);
    if (summary == NULL) return NULL;
    return summary;
}

int RAI_PyStart(const char *module_path, char *err, size_t errlen) {
    if (Py_IsInitialized()) {
        snprintf(err, errlen, "another module already embeds Python in this server");
        return -1;
    }
    err[0] = '\0';
    if (PromoteLibPython(err, errlen) != 0) return -1;
    char venv[PATH_MAX];
    if (FindVenv(module_path, venv, sizeof(venv)) != 0) {
        snprintf(err, errlen, "no Python venv (pyvenv.cfg) found above %s", module_path);
        return -1;
    }
    if (InitInterpreter(venv, err, errlen) != 0) return -1;
    RAI_GilStartOnMainThread();
    PyObject *summary = StartRuntime(err, errlen);
    if (summary == NULL) {
        if (err[0] == '\0' || PyErr_Occurred()) FormatException("cannot start redisai_py", err, errlen);
        RAI_GilReleaseAfterStart();
        return -1;
    }
    snprintf(err, errlen, "%s", PyUnicode_Check(summary) ? PyUnicode_AsUTF8(summary) : "");
    Py_DECREF(summary);
    /* From here on only worker threads run Python; the main thread never
     * waits for the GIL on a command path (py_gil.c counts it if it does). */
    RAI_GilReleaseAfterStart();
    return 0;
}

typedef struct {
    RAI_Backend backend;
    char *version, *err;
    size_t vlen, errlen;
    int rc;
} BackendImport;

static void ImportBackend(BackendImport *bi) {
    int gil = RAI_GilEnsure(); /* short-lived threads: no kept state */
    bi->rc = -1;
    PyObject *name = PyUnicode_FromString(RAI_BackendName(bi->backend));
    PyObject *v = name ? PyObject_CallOneArg(entry_points[RAI_PY_LOAD_BACKEND], name) : NULL;
    Py_XDECREF(name);
    if (v != NULL && PyUnicode_Check(v)) {
        snprintf(bi->version, bi->vlen, "%s", PyUnicode_AsUTF8(v));
        bi->rc = 0;
    } else {
        FormatException("error loading backend", bi->err, bi->errlen);
    }
    Py_XDECREF(v);
    RAI_GilRelease(gil);
}

static void *ImportBackendThread(void *arg) {
    ImportBackend(arg);
    return NULL;
}

int RAI_PyLoadBackend(RAI_Backend b, char *version, size_t vlen, char *err, size_t errlen) {
    BackendImport bi = {b, version, err, vlen, errlen, -1};
    if (!RAI_GilOnMainThread()) {
        ImportBackend(&bi);
        return bi.rc;
    }
    /* Module load: Redis serves nobody yet, so waiting here costs nothing,
     * and a framework imported off the main thread cannot install signal
     * handlers (Python refuses signal.signal there). */
    pthread_t thread;
    if (pthread_create(&thread, NULL, ImportBackendThread, &bi) != 0) {
        snprintf(err, errlen, "cannot start a thread to load backend %s", RAI_BackendName(b));
        return -1;
    }
    pthread_join(thread, NULL);
    return bi.rc;
}
