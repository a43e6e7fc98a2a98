/* py_runtime.c -- starts the embedded CPython and makes the shim's few calls
 * into it.
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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "types/config.h"
#include "python/py_bridge.h"
#include "python/py_jobs.h"

static PyObject *runtime_module; /* redisai_py._runtime, kept for calls */

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

static int InitInterpreter(const char *venv, char *err, size_t errlen) {
    char executable[PATH_MAX + 16];
    snprintf(executable, sizeof(executable), "%s/bin/python", venv);
    if (!FileExists(executable)) {
        snprintf(err, errlen, "venv %s has no bin/python", venv);
        return -1;
    }
    if (PyImport_AppendInittab("_redisai_shim", RAI_PyInitShimModule) != 0) {
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

int RAI_PyStart(const char *module_path, char *err, size_t errlen) {
    if (Py_IsInitialized()) {
        snprintf(err, errlen, "another module already embeds Python in this server");
        return -1;
    }
    if (PromoteLibPython(err, errlen) != 0) return -1;
    char venv[PATH_MAX];
    if (FindVenv(module_path, venv, sizeof(venv)) != 0) {
        snprintf(err, errlen, "no Python venv (pyvenv.cfg) found above %s", module_path);
        return -1;
    }
    if (InitInterpreter(venv, err, errlen) != 0) return -1;
    PyObject *config = ConfigDict();

    /* Importing the shim module readies its types before any worker wraps a
     * tensor or model in them. */
    PyObject *shim = PyImport_ImportModule("_redisai_shim");
    Py_XDECREF(shim);
    runtime_module = shim ? PyImport_ImportModule("redisai_py._runtime") : NULL;
    PyObject *summary = runtime_module ? PyObject_CallMethod(runtime_module, "start", "O", config) : NULL;
    Py_XDECREF(config);
    if (summary == NULL || RAI_PyJobsInit(runtime_module) != 0) {
        Py_XDECREF(summary);
        FormatException("cannot start redisai_py", err, errlen);
        PyEval_SaveThread();
        return -1;
    }
    snprintf(err, errlen, "%s", PyUnicode_Check(summary) ? PyUnicode_AsUTF8(summary) : "");
    Py_DECREF(summary);
    /* From here on only worker threads run Python; the main thread never
     * waits for the GIL on a command path. */
    PyEval_SaveThread();
    return 0;
}

int RAI_PyLoadBackend(RAI_Backend b, char *version, size_t vlen, char *err, size_t errlen) {
    PyGILState_STATE gil = PyGILState_Ensure(); /* short-lived threads: no kept state */
    int rc = -1;
    PyObject *v = PyObject_CallMethod(runtime_module, "load_backend", "s", RAI_BackendName(b));
    if (v != NULL && PyUnicode_Check(v)) {
        snprintf(version, vlen, "%s", PyUnicode_AsUTF8(v));
        rc = 0;
    } else {
        FormatException("error loading backend", err, errlen);
    }
    Py_XDECREF(v);
    PyGILState_Release(gil);
    return rc;
}
