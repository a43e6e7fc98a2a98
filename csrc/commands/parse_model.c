/* parse_model.c -- argument parsers of the model commands, each check in
 * RedisAI's order so the first error a client sees is RedisAI's. */
#include "commands/parse_model.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "commands/parse.h"

/* CPU, GPU, CPU:<digits>, GPU:<digits>, shorter than 10 characters. */
static int IsValidDevice(const char *s, size_t len) {
    if (len < 3 || len >= 10) return 0;
    if (strncasecmp(s, "CPU", 3) != 0 && strncasecmp(s, "GPU", 3) != 0) return 0;
    if (len == 3) return 1;
    if (s[3] != ':' || len == 4) return 0;
    for (size_t i = 4; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
    }
    return 1;
}

/* BATCHSIZE, MINBATCHSIZE, MINBATCHTIMEOUT: any non-negative integer (the
 * batcher compares and adds them as long long, never as positions). */
static int ParseBatchSetting(RedisModuleString *arg, long long *out) {
    return RedisModule_StringToLongLong(arg, out) == REDISMODULE_OK && *out >= 0;
}

/* [TAG t] [BATCHSIZE n] [MINBATCHSIZE m] [MINBATCHTIMEOUT t], each optional, in order. */
static const char *ParseStoreOptions(RedisModuleString **argv, int argc, int *pos,
                                     RAI_ModelMeta *meta) {
    if (*pos + 1 < argc && RAI_ArgIs(argv[*pos], "TAG")) {
        meta->tag = RedisModule_StringPtrLen(argv[*pos + 1], NULL);
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "BATCHSIZE")) {
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->batchsize))
            return "ERR Invalid argument for BATCHSIZE";
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "MINBATCHSIZE")) {
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->minbatchsize))
            return "ERR Invalid argument for MINBATCHSIZE";
        if (meta->batchsize == 0 && meta->minbatchsize > 0)
            return "ERR MINBATCHSIZE specified without BATCHSIZE";
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "MINBATCHTIMEOUT")) {
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->minbatchtimeout))
            return "ERR Invalid argument for MINBATCHTIMEOUT";
        if (meta->minbatchsize == 0 && meta->minbatchtimeout > 0)
            return "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE";
        *pos += 2;
    }
    return NULL;
}

/* [CACHE [TTL ms]] (ours, not RedisAI's): after the batching options, before
 * INPUTS. TTL is a positive number of milliseconds; without it an entry
 * serves until it is evicted or the model changes. */
static const char *ParseCacheOption(RedisModuleString **argv, int argc, int *pos,
                                    RAI_ModelMeta *meta) {
    if (*pos < argc && RAI_ArgIs(argv[*pos], "TTL")) return "ERR TTL specified without CACHE";
    if (*pos >= argc || !RAI_ArgIs(argv[*pos], "CACHE")) return NULL;
    meta->cache = 1;
    (*pos)++;
    if (*pos >= argc || !RAI_ArgIs(argv[*pos], "TTL")) return NULL;
    if (*pos + 1 >= argc) return "ERR No value provided for TTL";
    if (RedisModule_StringToLongLong(argv[*pos + 1], &meta->cache_ttl_ms) != REDISMODULE_OK ||
        meta->cache_ttl_ms <= 0)
        return "ERR Invalid value for TTL: a positive number of milliseconds";
    *pos += 2;
    return NULL;
}

/* `KEYWORD n name...` for TF's node names; fills the names into a
 * caller-provided array of argc pointers. */
static const char *ParseCountedNames(RedisModuleString **argv, int argc, int *pos,
                                     const char *keyword, const char *missing,
                                     const char *bad_count, const char *short_args,
                                     int *n, const char **names) {
    if (*pos >= argc || !RAI_ArgIs(argv[*pos], keyword)) return missing;
    long long count;
    if (*pos + 1 >= argc) return bad_count;
    RAI_CountCheck check = RAI_ReadCount(argv[*pos + 1], 1, RAI_ArgsAfter(argc, *pos + 1), &count);
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN) return bad_count;
    if (check == RAI_COUNT_BEYOND_ARGS) return short_args;
    for (long long i = 0; i < count; i++) names[i] = RedisModule_StringPtrLen(argv[*pos + 2 + i], NULL);
    *n = (int)count;
    *pos += 2 + (int)count;
    return NULL;
}

static const char *ParseBlobStart(RedisModuleString **argv, int argc, int pos, int *blob_at) {
    if (pos >= argc || !RAI_ArgIs(argv[pos], "BLOB")) return "ERR Invalid argument, expected BLOB";
    if (pos + 1 >= argc) return "ERR Insufficient arguments, missing model BLOB";
    *blob_at = pos + 1;
    return NULL;
}

static const char *ParseBackendAndDevice(RedisModuleString **argv, RAI_ModelMeta *meta) {
    const char *err = RAI_ParseBackend(argv[2], &meta->backend);
    if (err) return err;
    size_t len;
    meta->device = RedisModule_StringPtrLen(argv[3], &len);
    return NULL;
}

static void MetaInit(RAI_ModelMeta *meta, const char **inputs, const char **outputs) {
    memset(meta, 0, sizeof(*meta));
    meta->tag = "";
    meta->ninputs = meta->noutputs = -1;
    meta->inputs = inputs;
    meta->outputs = outputs;
}

/* [WARMUP n], ours (after RedisAI's options, before INPUTS): n synthetic
 * runs after each load of the session. Bounded: each run costs a model's
 * inference on the loader, and a store must not occupy it for hours. */
#define RAI_WARMUP_MAX 1000

static const char *ParseWarmup(RedisModuleString **argv, int argc, int *pos, RAI_ModelMeta *meta) {
    if (*pos >= argc || !RAI_ArgIs(argv[*pos], "WARMUP")) return NULL;
    long long n;
    if (*pos + 1 >= argc || RedisModule_StringToLongLong(argv[*pos + 1], &n) != REDISMODULE_OK || n < 0 ||
        n > RAI_WARMUP_MAX)
        return "ERR Invalid argument for WARMUP: expected a number of runs from 0 to 1000";
    meta->warmup = n;
    *pos += 2;
    return NULL;
}

const char *RAI_ParseModelStore(RedisModuleString **argv, int argc, RAI_ModelMeta *meta,
                                const char **inputs, const char **outputs, int *blob_at) {
    MetaInit(meta, inputs, outputs);
    const char *err = ParseBackendAndDevice(argv, meta);
    if (err) return err;
    size_t len;
    const char *device = RedisModule_StringPtrLen(argv[3], &len);
    if (!IsValidDevice(device, len)) return "ERR Invalid DEVICE";
    int pos = 4;
    if ((err = ParseStoreOptions(argv, argc, &pos, meta))) return err;
    if ((err = ParseCacheOption(argv, argc, &pos, meta))) return err;
    if ((err = ParseWarmup(argv, argc, &pos, meta))) return err;
    if (pos >= argc) return "ERR Insufficient arguments, missing model BLOB";
    if (meta->backend == RAI_BACKEND_TF) {
        err = ParseCountedNames(argv, argc, &pos, "INPUTS", "ERR INPUTS not specified for TF",
                                "ERR Invalid argument for input_count",
                                "ERR number of model inputs does not match the number of given arguments",
                                &meta->ninputs, inputs);
        if (err) return err;
        err = ParseCountedNames(argv, argc, &pos, "OUTPUTS", "ERR OUTPUTS not specified for TF",
                                "ERR Invalid argument for output_count",
                                "ERR number of model outputs does not match the number of given arguments",
                                &meta->noutputs, outputs);
        if (err) return err;
    } else if (RAI_ArgIs(argv[pos], "INPUTS")) {
        return "ERR INPUTS argument should not be specified for this backend";
    }
    return ParseBlobStart(argv, argc, pos, blob_at);
}

static int IsModelSetKeyword(RedisModuleString *arg) {
    static const char *const keywords[] = {"INPUTS", "OUTPUTS", "TAG", "BATCHSIZE",
                                           "MINBATCHSIZE", "MINBATCHTIMEOUT", "BLOB"};
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (RAI_ArgIs(arg, keywords[i])) return 1;
    }
    return 0;
}

/* AI.MODELSET's older option rules (MINBATCH* checked before their values). */
static const char *ParseSetOptions(RedisModuleString **argv, int argc, int *pos,
                                   RAI_ModelMeta *meta) {
    if (*pos + 1 < argc && RAI_ArgIs(argv[*pos], "TAG")) {
        meta->tag = RedisModule_StringPtrLen(argv[*pos + 1], NULL);
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "BATCHSIZE")) {
        if (meta->backend == RAI_BACKEND_TFLITE)
            return "ERR Auto-batching not supported by the TFLITE backend";
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->batchsize))
            return "ERR Invalid argument for BATCHSIZE";
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "MINBATCHSIZE")) {
        if (meta->batchsize == 0) return "ERR MINBATCHSIZE specified without BATCHSIZE";
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->minbatchsize))
            return "ERR Invalid argument for MINBATCHSIZE";
        *pos += 2;
    }
    if (*pos < argc && RAI_ArgIs(argv[*pos], "MINBATCHTIMEOUT")) {
        if (meta->batchsize == 0) return "ERR MINBATCHTIMEOUT specified without BATCHSIZE";
        if (meta->minbatchsize == 0) return "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE";
        if (*pos + 1 >= argc || !ParseBatchSetting(argv[*pos + 1], &meta->minbatchtimeout))
            return "ERR Invalid argument for MINBATCHTIMEOUT";
        *pos += 2;
    }
    return NULL;
}

/* Names after `keyword` up to `until` (or the end). */
static int CollectNamesUntil(RedisModuleString **argv, int argc, int *pos, const char *until,
                             const char **names) {
    int n = 0;
    while (*pos < argc && !RAI_ArgIs(argv[*pos], until))
        names[n++] = RedisModule_StringPtrLen(argv[(*pos)++], NULL);
    return n;
}

const char *RAI_ParseModelSet(RedisModuleString **argv, int argc, RAI_ModelMeta *meta,
                              const char **inputs, const char **outputs, int *blob_at) {
    MetaInit(meta, inputs, outputs);
    const char *err = ParseBackendAndDevice(argv, meta);
    if (err) return err;
    size_t len;
    RedisModule_StringPtrLen(argv[3], &len);
    if (len > 10 || IsModelSetKeyword(argv[3])) return "ERR Invalid DEVICE";
    int pos = 4;
    if ((err = ParseSetOptions(argv, argc, &pos, meta))) return err;
    if (pos >= argc) return "ERR Insufficient arguments, missing model BLOB";
    if (meta->backend == RAI_BACKEND_TF) {
        if (RAI_ArgIs(argv[pos], "BLOB"))
            return "ERR Insufficient arguments, INPUTS and OUTPUTS not specified";
        if (!RAI_ArgIs(argv[pos], "INPUTS")) return "ERR INPUTS not specified";
        pos++;
        meta->ninputs = CollectNamesUntil(argv, argc, &pos, "OUTPUTS", inputs);
        if (pos >= argc) return "ERR OUTPUTS not specified";
        pos++;
        meta->noutputs = CollectNamesUntil(argv, argc, &pos, "BLOB", outputs);
    } else {
        while (pos < argc && !RAI_ArgIs(argv[pos], "BLOB")) pos++;
    }
    if (pos + 1 >= argc) return "ERR Insufficient arguments, missing model BLOB";
    *blob_at = pos + 1;
    return NULL;
}

/* `KEYWORD n key...` of MODELEXECUTE, checked against the model's count. */
static const char *ParseExecuteKeys(RedisModuleString **argv, int argc, int *pos, int expected,
                                    int is_input, int *n, int *at) {
    long long count;
    if (*pos >= argc || !RAI_ArgIs(argv[*pos], is_input ? "INPUTS" : "OUTPUTS"))
        return is_input ? "ERR INPUTS not specified" : "ERR OUTPUTS not specified";
    RAI_CountCheck check = *pos + 1 < argc
                               ? RAI_ReadCount(argv[*pos + 1], 1, RAI_ArgsAfter(argc, *pos + 1), &count)
                               : RAI_COUNT_NOT_A_NUMBER;
    if (check == RAI_COUNT_NOT_A_NUMBER)
        return is_input ? "ERR Invalid argument for input_count" : "ERR Invalid argument for output_count";
    if (check == RAI_COUNT_BELOW_MIN)
        return is_input ? "ERR Input count must be a positive integer"
                        : "ERR Output count must be a positive integer";
    if (expected >= 0 && count != expected)
        return is_input ? "Number of keys given as INPUTS here does not match model definition"
                        : "Number of keys given as OUTPUTS here does not match model definition";
    if (check == RAI_COUNT_BEYOND_ARGS)
        return is_input ? "ERR number of input keys to AI.MODELEXECUTE command does not match the "
                          "number of given arguments"
                        : "ERR number of output keys to AI.MODELEXECUTE command does not match the "
                          "number of given arguments";
    *n = (int)count;
    *at = *pos + 2;
    *pos += 2 + (int)count;
    return NULL;
}

const char *RAI_ParseTimeout(RedisModuleString **argv, int argc, int pos, long long *timeout) {
    if (pos + 1 >= argc) return "ERR No value provided for TIMEOUT";
    if (RedisModule_StringToLongLong(argv[pos + 1], timeout) != REDISMODULE_OK || *timeout <= 0)
        return "ERR Invalid value for TIMEOUT";
    return NULL;
}

/* Anything RedisAI does not expect: the token itself, without an ERR prefix. */
static const char *InvalidArgument(RedisModuleString *arg, char *buf, size_t buflen) {
    snprintf(buf, buflen, "Invalid argument: %s", RedisModule_StringPtrLen(arg, NULL));
    return buf;
}

const char *RAI_ParseModelExecute(RedisModuleString **argv, int argc, const RAI_Model *m,
                                  RAI_ExecuteArgs *out, char *buf, size_t buflen) {
    int pos = 2;
    out->timeout = 0;
    const char *err = ParseExecuteKeys(argv, argc, &pos, m->ninputs, 1, &out->ninputs, &out->inputs_at);
    if (err) return err;
    err = ParseExecuteKeys(argv, argc, &pos, m->noutputs, 0, &out->noutputs, &out->outputs_at);
    if (err) return err;
    if (pos < argc && RAI_ArgIs(argv[pos], "TIMEOUT")) {
        if ((err = RAI_ParseTimeout(argv, argc, pos, &out->timeout))) return err;
        pos += 2;
    }
    if (pos < argc) return InvalidArgument(argv[pos], buf, buflen);
    return NULL;
}

const char *RAI_ParseModelRun(RedisModuleString **argv, int argc, const RAI_Model *m,
                              RAI_ExecuteArgs *out) {
    int pos = 2;
    out->timeout = 0;
    if (pos < argc && RAI_ArgIs(argv[pos], "TIMEOUT")) {
        const char *err = RAI_ParseTimeout(argv, argc, pos, &out->timeout);
        if (err) return err;
        pos += 2;
    }
    if (pos >= argc || !RAI_ArgIs(argv[pos], "INPUTS")) return "ERR INPUTS not specified";
    out->inputs_at = ++pos;
    while (pos < argc && !RAI_ArgIs(argv[pos], "OUTPUTS")) pos++;
    out->ninputs = pos - out->inputs_at;
    out->outputs_at = pos + 1;
    out->noutputs = pos < argc ? argc - out->outputs_at : 0;
    if (m->ninputs >= 0 && out->ninputs != m->ninputs)
        return "Number of keys given as INPUTS here does not match model definition";
    if (out->noutputs == 0 || (m->noutputs >= 0 && out->noutputs != m->noutputs))
        return "Number of keys given as OUTPUTS here does not match model definition";
    return NULL;
}
