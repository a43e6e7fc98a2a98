/* metrics_text.h -- the Prometheus text exposition (format 0.0.4) of every
 * counter the shim keeps: what AI.METRICS replies and /metrics serves.
 *
 * It reads only the counters of key_metrics.h, op_metrics.h and the run
 * queues, never a key, and takes no Redis lock and no GIL, so any thread may
 * render while the server serves. */
#ifndef RAI_METRICS_TEXT_H
#define RAI_METRICS_TEXT_H

#include "base/text_buf.h"

/* Appends the whole exposition to buf. */
void RAI_MetricsRender(RAI_TextBuf *buf);

#endif
