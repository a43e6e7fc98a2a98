/* py_metrics.h -- starts the /metrics endpoint (redisai_py/metrics.py). */
#ifndef RAI_PY_METRICS_H
#define RAI_PY_METRICS_H

#include <stddef.h>

/* At module load, before the server serves (it takes the GIL): serves
 * /metrics on bind:port from a thread of its own. On failure (the port is
 * taken, the address is not local) writes one line into err and returns -1;
 * on success writes the URL it serves. */
int RAI_PyStartMetricsEndpoint(long long port, const char *bind, char *out, size_t outlen);

#endif
