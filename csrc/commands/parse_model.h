/* parse_model.h -- parsers of AI.MODELSTORE / MODELSET / MODELEXECUTE /
 * MODELRUN. Each returns NULL or the exact reply error; nothing allocates. */
#ifndef RAI_PARSE_MODEL_H
#define RAI_PARSE_MODEL_H

#include <stdio.h>

#include "types/model.h"
#include "rm_api.h"

/* Key positions of an execute command, as indices into argv. */
typedef struct {
    int ninputs, inputs_at;
    int noutputs, outputs_at;
    long long timeout; /* ms; 0: none */
} RAI_ExecuteArgs;

/* `inputs` / `outputs` must have room for argc names (TF node names point
 * into argv). *blob_at is the index of the first blob chunk. */
const char *RAI_ParseModelStore(RedisModuleString **argv, int argc, RAI_ModelMeta *meta,
                                const char **inputs, const char **outputs, int *blob_at);
const char *RAI_ParseModelSet(RedisModuleString **argv, int argc, RAI_ModelMeta *meta,
                              const char **inputs, const char **outputs, int *blob_at);

/* Counts are checked against the model's when it knows them; buf holds the
 * text of an `Invalid argument: <tok>` error. */
const char *RAI_ParseModelExecute(RedisModuleString **argv, int argc, const RAI_Model *m,
                                  RAI_ExecuteArgs *out, char *buf, size_t buflen);
const char *RAI_ParseModelRun(RedisModuleString **argv, int argc, const RAI_Model *m,
                              RAI_ExecuteArgs *out);

/* TIMEOUT <ms> at argv[pos]: a positive integer. */
const char *RAI_ParseTimeout(RedisModuleString **argv, int argc, int pos, long long *timeout);

#endif
