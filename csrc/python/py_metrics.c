/* py_metrics.c -- hands the exposition renderer to the Python exporter.
 *
 * prometheus_client's threaded server answers the HTTP; each scrape calls
 * back into `render`, which drops the GIL while the C renderer reads the
 * counters (no key, no Redis lock), so a scrape holds the GIL only to copy
 * the finished text into a bytes object. */
#define PY_SSIZE_T_CLEAN
#include "python/py_metrics.h"

#include <Python.h>
#include <stdio.h>

#include "base/text_buf.h"
#include "exec/metrics_text.h"
#include "python/py_gil.h"

static PyObject *Render(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    RAI_TextBuf buf = {0};
    void *saved = RAI_GilSuspend();
    RAI_MetricsRender(&buf);
    RAI_GilResume(saved);
    PyObject *text = PyBytes_FromStringAndSize(buf.data, (Py_ssize_t)buf.len);
    RAI_TextBufFree(&buf);
    return text;
}

static PyMethodDef RENDER = {
    "render", Render, METH_NOARGS,
    "The metrics exposition (Prometheus text format 0.0.4) as bytes, rendered in C without the GIL.",
};

/* The pending exception as one line. */
static void ExceptionText(char *out, size_t outlen) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    PyObject *text = exc ? PyObject_Str(exc) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    snprintf(out, outlen, "%s: %s", exc ? Py_TYPE(exc)->tp_name : "error", msg ? msg : "(no message)");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    PyErr_Clear();
}

int RAI_PyStartMetricsEndpoint(long long port, const char *bind, char *out, size_t outlen) {
    int gil = RAI_GilEnsure();
    int rc = -1;
    PyObject *module = PyImport_ImportModule("redisai_py.metrics");
    PyObject *render = module ? PyCFunction_New(&RENDER, NULL) : NULL;
    PyObject *url = render ? PyObject_CallMethod(module, "serve", "LsO", port, bind, render) : NULL;
    if (url != NULL && PyUnicode_Check(url)) {
        snprintf(out, outlen, "%s", PyUnicode_AsUTF8(url));
        rc = 0;
    } else {
        ExceptionText(out, outlen);
    }
    Py_XDECREF(url);
    Py_XDECREF(render);
    Py_XDECREF(module);
    RAI_GilRelease(gil);
    return rc;
}
