/* script.h -- a stored TorchScript script: source, device, tag and the
 * entry points declared at store time.
 *
 * Like a model, the compiled form lives in Python's session cache under
 * `id` (ids are shared with models), is made off the main thread, and is
 * dropped when the last reference goes. */
#ifndef RAI_SCRIPT_H
#define RAI_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "types/key_metrics.h"
#include "types/stats.h"

struct RAI_RunQueue;

typedef struct RAI_Script {
    int refcount;
    uint64_t id;
    char *device;
    char *tag;
    char *source;
    int nentry;         /* 0 for SCRIPTSET-era scripts: functions run in best-effort mode */
    char **entry_points;
    RAI_RunStats stats; /* main thread only */
    RAI_KeyLink metrics; /* the key series its runs count to (main thread) */
    struct RAI_RunQueue *queue;
} RAI_Script;

RAI_Script *RAI_ScriptNew(const char *device, const char *tag, const char *source, size_t srclen,
                          int nentry, const char **entry_points);
RAI_Script *RAI_ScriptRetain(RAI_Script *s);
void RAI_ScriptRelease(RAI_Script *s);
size_t RAI_ScriptMemUsage(const RAI_Script *s);
int RAI_ScriptHasEntryPoint(const RAI_Script *s, const char *fn);

#endif
