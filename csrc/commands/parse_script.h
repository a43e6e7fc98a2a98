/* parse_script.h -- parsers of AI.SCRIPTSTORE / SCRIPTSET / SCRIPTEXECUTE /
 * SCRIPTRUN. Each returns NULL or the exact reply error; nothing allocates. */
#ifndef RAI_PARSE_SCRIPT_H
#define RAI_PARSE_SCRIPT_H

#include <stdio.h>

#include "rm_api.h"

typedef struct {
    const char *tag;
    int nentry, entries_at; /* entry point names: argv[entries_at .. +nentry) */
    int source_at;
} RAI_ScriptStoreArgs;

/* Positions in argv of each scope of an execute command. */
typedef struct {
    int nkeys, keys_at;
    int ninputs, inputs_at;
    int nargs, args_at;
    int noutputs, outputs_at;
    int variadic_at; /* SCRIPTRUN: index of `$`, 0 if none */
    long long timeout;
} RAI_ScriptExecuteArgs;

int RAI_IsScriptDevice(const char *device);

const char *RAI_ParseScriptStore(RedisModuleString **argv, int argc, RAI_ScriptStoreArgs *out);
const char *RAI_ParseScriptSet(RedisModuleString **argv, int argc, RAI_ScriptStoreArgs *out);

/* in_dag: the op form inside AI.DAGEXECUTE (no KEYS/INPUTS-first rule, no
 * TIMEOUT). buf holds the text of errors that name a token. */
const char *RAI_ParseScriptExecute(RedisModuleString **argv, int argc, int in_dag,
                                   RAI_ScriptExecuteArgs *out, char *buf, size_t buflen);
const char *RAI_ParseScriptRun(RedisModuleString **argv, int argc, RAI_ScriptExecuteArgs *out);

#endif
