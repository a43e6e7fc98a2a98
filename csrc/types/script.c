/* script.c -- creating, sharing and releasing stored scripts. */
#include "types/script.h"

#include <string.h>

#include "types/model.h"
#include "rm_api.h"

RAI_Script *RAI_ScriptNew(const char *device, const char *tag, const char *source, size_t srclen,
                          int nentry, const char **entry_points) {
    RAI_Script *s = RedisModule_Calloc(1, sizeof(*s));
    s->refcount = 1;
    s->id = RAI_NextSessionId();
    s->device = RedisModule_Strdup(device);
    s->tag = RedisModule_Strdup(tag ? tag : "");
    s->source = RedisModule_Alloc(srclen + 1);
    memcpy(s->source, source, srclen);
    s->source[srclen] = '\0';
    s->nentry = nentry;
    s->entry_points = RedisModule_Calloc(nentry > 0 ? (size_t)nentry : 1, sizeof(char *));
    for (int i = 0; i < nentry; i++) s->entry_points[i] = RedisModule_Strdup(entry_points[i]);
    return s;
}

RAI_Script *RAI_ScriptRetain(RAI_Script *s) {
    __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED);
    return s;
}

void RAI_ScriptRelease(RAI_Script *s) {
    if (s == NULL) return;
    if (__atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    RAI_PostDroppedSession(s->id);
    RAI_KeyLinkDrop(&s->metrics);
    RedisModule_Free(s->device);
    RedisModule_Free(s->tag);
    RedisModule_Free(s->source);
    for (int i = 0; i < s->nentry; i++) RedisModule_Free(s->entry_points[i]);
    RedisModule_Free(s->entry_points);
    RedisModule_Free(s);
}

size_t RAI_ScriptMemUsage(const RAI_Script *s) {
    size_t usage = sizeof(*s) + strlen(s->device) + strlen(s->tag) + strlen(s->source) + 3;
    for (int i = 0; i < s->nentry; i++) usage += sizeof(char *) + strlen(s->entry_points[i]) + 1;
    return usage;
}

int RAI_ScriptHasEntryPoint(const RAI_Script *s, const char *fn) {
    for (int i = 0; i < s->nentry; i++) {
        if (strcmp(s->entry_points[i], fn) == 0) return 1;
    }
    return 0;
}
