/* parse_script.c -- argument parsers of the script commands, each check in
 * RedisAI's order and with its wording. */
#include "commands/parse_script.h"

#include <string.h>
#include <strings.h>

#include "commands/parse.h"

/* Anything starting with CPU, or GPU / GPU:<digits>: what RedisAI's Torch
 * backend accepts for a script's device. */
int RAI_IsScriptDevice(const char *device) {
    if (strncasecmp(device, "CPU", 3) == 0) return 1;
    if (strncasecmp(device, "GPU", 3) != 0) return 0;
    if (device[3] == '\0') return 1;
    if (device[3] != ':' || device[4] == '\0') return 0;
    for (const char *c = device + 4; *c; c++) {
        if (*c < '0' || *c > '9') return 0;
    }
    return 1;
}

/* The optional `TAG tag` after the device; returns the next position. */
static int ParseTag(RedisModuleString **argv, int argc, RAI_ScriptStoreArgs *out) {
    memset(out, 0, sizeof(*out));
    out->tag = "";
    if (4 < argc && RAI_ArgIs(argv[3], "TAG")) {
        out->tag = RedisModule_StringPtrLen(argv[4], NULL);
        return 5;
    }
    return 3;
}

const char *RAI_ParseScriptStore(RedisModuleString **argv, int argc, RAI_ScriptStoreArgs *out) {
    int pos = ParseTag(argv, argc, out);
    if (pos >= argc || !RAI_ArgIs(argv[pos], "ENTRY_POINTS"))
        return "ERR Insufficient arguments, missing script entry points";
    long long n;
    RAI_CountCheck check = pos + 1 < argc ? RAI_ReadCount(argv[pos + 1], 0, RAI_ArgsAfter(argc, pos + 1), &n)
                                          : RAI_COUNT_NOT_A_NUMBER;
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN)
        return "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command";
    if (check == RAI_COUNT_BEYOND_ARGS) return "ERR Insufficient arguments, missing script entry points";
    out->entries_at = pos + 2;
    out->nentry = (int)n;
    pos += 2 + (int)n;
    if (pos + 1 >= argc || !RAI_ArgIs(argv[pos], "SOURCE"))
        return "ERR Insufficient arguments, missing script SOURCE";
    out->source_at = pos + 1;
    return NULL;
}

const char *RAI_ParseScriptSet(RedisModuleString **argv, int argc, RAI_ScriptStoreArgs *out) {
    int pos = ParseTag(argv, argc, out);
    if (pos + 1 >= argc || !RAI_ArgIs(argv[pos], "SOURCE"))
        return "ERR Insufficient arguments, missing script SOURCE";
    out->source_at = pos + 1;
    return NULL;
}

typedef enum { SCOPE_KEYS, SCOPE_INPUTS, SCOPE_ARGS, SCOPE_OUTPUTS, SCOPE_COUNT } Scope;

static const char *const SCOPE_NAMES[SCOPE_COUNT] = {"KEYS", "INPUTS", "ARGS", "OUTPUTS"};

static int ScopeOf(RedisModuleString *arg) {
    for (int i = 0; i < SCOPE_COUNT; i++) {
        if (RAI_ArgIs(arg, SCOPE_NAMES[i])) return i;
    }
    return -1;
}

static const char *ParseKeysScope(RedisModuleString **argv, int argc, int *pos, int *n, int *at) {
    long long count;
    if (argc - *pos - 1 < 2) return "ERR Missing arguments after KEYS keyword";
    RAI_CountCheck check = RAI_ReadCount(argv[*pos + 1], 1, RAI_ArgsAfter(argc, *pos + 1), &count);
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN)
        return "ERR Invalid or negative value found in number of KEYS";
    if (check == RAI_COUNT_BEYOND_ARGS)
        return "ERR Number of pre declared KEYS to be used in the command does not match the number of "
               "given arguments";
    *n = (int)count;
    *at = *pos + 2;
    *pos += 2 + (int)count;
    return NULL;
}

/* INPUTS / ARGS / OUTPUTS n ... (ARGS's count error says "keys": RedisAI's). */
static const char *ParseCountedScope(RedisModuleString **argv, int argc, int *pos, Scope scope,
                                     int *n, int *at) {
    static const char *const bad_count[SCOPE_COUNT] = {
        NULL, "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE",
        "ERR Invalid argument for keys count in AI.SCRIPTEXECUTE",
        "ERR Invalid argument for outputs count in AI.SCRIPTEXECUTE"};
    static const char *const short_args[SCOPE_COUNT] = {
        NULL,
        "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments",
        "ERR number of args to AI.SCRIPTEXECUTE command does not match the number of given arguments",
        "ERR number of outputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"};
    long long count;
    if (*pos + 1 >= argc) return "ERR Invalid arguments provided to AI.SCRIPTEXECUTE";
    RAI_CountCheck check = RAI_ReadCount(argv[*pos + 1], 0, RAI_ArgsAfter(argc, *pos + 1), &count);
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN) return bad_count[scope];
    if (check == RAI_COUNT_BEYOND_ARGS) return short_args[scope];
    *n = (int)count;
    *at = *pos + 2;
    *pos += 2 + (int)count;
    return NULL;
}

const char *RAI_ParseScriptExecute(RedisModuleString **argv, int argc, int in_dag,
                                   RAI_ScriptExecuteArgs *out, char *buf, size_t buflen) {
    memset(out, 0, sizeof(*out));
    int pos = 3, seen[SCOPE_COUNT] = {0};
    if (!in_dag && (pos >= argc || (!RAI_ArgIs(argv[pos], "KEYS") && !RAI_ArgIs(argv[pos], "INPUTS"))))
        return "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command";
    while (pos < argc) {
        if (RAI_ArgIs(argv[pos], "TIMEOUT")) {
            if (in_dag) return "ERR TIMEOUT not allowed within a DAG command";
            if (pos + 1 >= argc) return "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE";
            if (RedisModule_StringToLongLong(argv[pos + 1], &out->timeout) != REDISMODULE_OK ||
                out->timeout <= 0)
                return "ERR Invalid value for TIMEOUT";
            if (pos + 2 != argc) return "ERR Encountered problem parsing AI.SCRIPTEXECUTE";
            return NULL;
        }
        int scope = ScopeOf(argv[pos]);
        if (scope < 0) {
            snprintf(buf, buflen, "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: %s",
                     RedisModule_StringPtrLen(argv[pos], NULL));
            return buf;
        }
        if (seen[scope]++) {
            snprintf(buf, buflen, "ERR Already Encountered %s scope in AI.SCRIPTEXECUTE command",
                     SCOPE_NAMES[scope]);
            return buf;
        }
        const char *err;
        switch (scope) {
        case SCOPE_KEYS: err = ParseKeysScope(argv, argc, &pos, &out->nkeys, &out->keys_at); break;
        case SCOPE_INPUTS: err = ParseCountedScope(argv, argc, &pos, scope, &out->ninputs, &out->inputs_at); break;
        case SCOPE_ARGS: err = ParseCountedScope(argv, argc, &pos, scope, &out->nargs, &out->args_at); break;
        default: err = ParseCountedScope(argv, argc, &pos, scope, &out->noutputs, &out->outputs_at); break;
        }
        if (err) return err;
    }
    return NULL;
}

/* AI.SCRIPTRUN key fn [TIMEOUT t] INPUTS in... [$ in...] OUTPUTS out... */
const char *RAI_ParseScriptRun(RedisModuleString **argv, int argc, RAI_ScriptExecuteArgs *out) {
    memset(out, 0, sizeof(*out));
    int in_inputs = 0, in_outputs = 0, seen_inputs = 0, seen_timeout = 0, seen_dollar = 0;
    for (int pos = 3; pos < argc; pos++) {
        if (RAI_ArgIs(argv[pos], "TIMEOUT") && !in_inputs && !in_outputs) {
            if (seen_timeout++) return "ERR Already encountered an TIMEOUT section in SCRIPTRUN";
            const char *err = pos + 1 < argc &&
                                      RedisModule_StringToLongLong(argv[pos + 1], &out->timeout) == REDISMODULE_OK &&
                                      out->timeout > 0
                                  ? NULL
                                  : "ERR Invalid value for TIMEOUT";
            if (err) return err;
            pos++;
        } else if (RAI_ArgIs(argv[pos], "INPUTS")) {
            if (in_outputs) return "ERR Already encountered an INPUTS section in SCRIPTRUN";
            if (seen_inputs++) return "ERR Already encountered an INPUTS keyword in SCRIPTRUN";
            in_inputs = 1;
            out->inputs_at = pos + 1;
        } else if (RAI_ArgIs(argv[pos], "OUTPUTS")) {
            if (in_outputs) return "ERR Already encountered an OUTPUTS keyword in SCRIPTRUN";
            in_inputs = 0;
            in_outputs = 1;
            out->outputs_at = pos + 1;
        } else if (RedisModule_StringPtrLen(argv[pos], NULL)[0] == '$' &&
                   strcmp(RedisModule_StringPtrLen(argv[pos], NULL), "$") == 0) {
            if (!in_inputs) return "ERR Encountered a variable size list of tensors outside of input section";
            if (seen_dollar++) return "ERR Already encountered a variable size list of tensors";
            out->variadic_at = pos;
        } else if (in_inputs) {
            out->ninputs++;
        } else if (in_outputs) {
            out->noutputs++;
        } else {
            return "ERR Unrecongnized parameter to SCRIPTRUN";
        }
    }
    if (!seen_inputs) return "ERR Insufficient arguments, missing script INPUTS";
    return NULL;
}
