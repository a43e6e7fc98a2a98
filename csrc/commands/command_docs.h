/* command_docs.h -- what COMMAND DOCS tells users and tools about each AI.*
 * command: summary, complexity, the RedisAI version it appeared in, history
 * and the argument tree. */
#ifndef RAI_COMMAND_DOCS_H
#define RAI_COMMAND_DOCS_H

#include "rm_api.h"

typedef struct {
    const char *summary;
    const char *complexity;
    const char *since; /* the RedisAI release that first had the command (ours: our release) */
    const RedisModuleCommandHistoryEntry *history; /* NULL or zero-terminated */
    const char *tips;                              /* NULL or space-separated */
    const RedisModuleCommandArg *args;             /* NULL (no arguments) or zero-terminated */
} RAI_CommandDoc;

/* The docs of a command by its registered (lower-case) name; NULL when the
 * command has none, which the registration treats as a bug. */
const RAI_CommandDoc *RAI_CommandDocFor(const char *name);

#endif
