/* cmd_dag.c -- AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the deprecated
 * AI.DAGRUN / AI.DAGRUN_RO.
 *
 * The whole DAG is parsed on the main thread: LOAD keys are read, TENSORSET
 * ops build their tensors, every op's input is resolved to a slot. Then the
 * model and script ops become jobs (dag.h schedules them) unless the
 * inference cache answers a model op at once, and the reply
 * callback answers one entry per op and writes the PERSIST keys only if
 * every op succeeded. Intermediate tensors never touch the keyspace. */
#include "commands/cmd_dag.h"

#include <stdio.h>
#include <string.h>

#include "commands/cmd_admin.h"
#include "commands/cmd_tensor.h"
#include "commands/job_keys.h"
#include "exec/dag.h"
#include "exec/redis_call.h"
#include "python/job_kinds.h"
#include "commands/parse.h"
#include "commands/parse_model.h"
#include "commands/parse_script.h"
#include "exec/run_queue.h"
#include "exec/sync_run.h"
#include "types/op_metrics.h"
#include "types/type_model.h"
#include "types/type_script.h"
#include "types/type_tensor.h"

#define ERR_NO_QUEUE "ERR Could not initialize queue on requested device"

typedef struct {
    int readonly;   /* the _RO variants */
    int deprecated; /* DAGRUN: MODELRUN/SCRIPTRUN ops, no ROUTING */
    const char *name;
} DagFlavor;

/* Names bound to slots while parsing; a later binding shadows an earlier one. */
typedef struct {
    const char **names;
    size_t *lens;
    int *slots;
    int n, cap;
} SymbolTable;

static void Bind(SymbolTable *t, RedisModuleString *name, int slot) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->names = RedisModule_Realloc(t->names, sizeof(*t->names) * t->cap);
        t->lens = RedisModule_Realloc(t->lens, sizeof(*t->lens) * t->cap);
        t->slots = RedisModule_Realloc(t->slots, sizeof(*t->slots) * t->cap);
    }
    t->names[t->n] = RedisModule_StringPtrLen(name, &t->lens[t->n]);
    t->slots[t->n++] = slot;
}

static int Lookup(const SymbolTable *t, RedisModuleString *name) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(name, &len);
    for (int i = t->n - 1; i >= 0; i--) {
        if (t->lens[i] == len && memcmp(t->names[i], s, len) == 0) return t->slots[i];
    }
    return -1;
}

static void FreeSymbols(SymbolTable *t) {
    RedisModule_Free(t->names);
    RedisModule_Free(t->lens);
    RedisModule_Free(t->slots);
}

typedef struct {
    RedisModuleCtx *ctx;
    RAI_Dag *dag;
    SymbolTable symbols;
    char buf[512];  /* text of errors that name a token */
    int replied;    /* an error was already replied (a key error) */
} DagParse;

static int IsArrow(RedisModuleString *arg) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(arg, &len);
    return len == 2 && s[0] == '|' && s[1] == '>';
}

/* ------------------------------------------------------------------ prefix */

static const char *UnexpectedArgument(DagParse *p, RedisModuleString *arg) {
    snprintf(p->buf, sizeof(p->buf), "ERR Invalid DAG command. Unexpected argument:  %s",
             RedisModule_StringPtrLen(arg, NULL));
    return p->buf;
}

/* How many arguments follow argv[from] before the next |> (or the end). */
static int ArgsBeforeArrow(RedisModuleString **argv, int argc, int from) {
    int n = 0;
    while (from + n < argc && !IsArrow(argv[from + n])) n++;
    return n;
}

/* `n key...` after LOAD: each key is read now and bound to a slot. */
static const char *ParseLoad(DagParse *p, RedisModuleString **argv, int argc, int *pos) {
    long long n;
    if (argc - *pos < 3) return "ERR missing arguments after LOAD keyword in DAG command";
    RAI_CountCheck check = RAI_ReadCount(argv[*pos + 1], 1, ArgsBeforeArrow(argv, argc, *pos + 2), &n);
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN)
        return "ERR invalid or negative value found in number of keys to LOAD";
    if (check == RAI_COUNT_BEYOND_ARGS)
        return "ERR number of keys to LOAD into DAG does not match the number of given arguments";
    for (long long i = 0; i < n; i++) {
        RAI_Tensor *t = RAI_ReadTensorKey(p->ctx, argv[*pos + 2 + i]);
        if (t == NULL) {
            p->replied = 1;
            return "";
        }
        Bind(&p->symbols, argv[*pos + 2 + i], RAI_DagAddSlot(p->dag, RAI_TensorRetain(t)));
    }
    *pos += 2 + (int)n;
    return NULL;
}

static const char *ParsePersist(DagParse *p, RedisModuleString **argv, int argc, int *pos) {
    long long n;
    if (argc - *pos < 3) return "ERR missing arguments after PERSIST keyword in DAG command";
    RAI_CountCheck check = RAI_ReadCount(argv[*pos + 1], 1, ArgsBeforeArrow(argv, argc, *pos + 2), &n);
    if (check == RAI_COUNT_NOT_A_NUMBER || check == RAI_COUNT_BELOW_MIN)
        return "ERR invalid or negative value found in number of keys to PERSIST";
    if (check == RAI_COUNT_BEYOND_ARGS)
        return "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments";
    RAI_Dag *dag = p->dag;
    dag->persist_keys = RedisModule_Calloc((size_t)n, sizeof(RedisModuleString *));
    dag->persist_slots = RedisModule_Calloc((size_t)n, sizeof(int));
    for (long long i = 0; i < n; i++) {
        RedisModuleString *key = argv[*pos + 2 + i];
        size_t len, other_len;
        const char *name = RedisModule_StringPtrLen(key, &len);
        for (int j = 0; j < dag->npersist; j++) {
            const char *other = RedisModule_StringPtrLen(dag->persist_keys[j], &other_len);
            if (len == other_len && memcmp(name, other, len) == 0) return "ERR PERSIST keys must be unique";
        }
        RedisModule_RetainString(NULL, key);
        dag->persist_keys[dag->npersist++] = key;
    }
    *pos += 2 + (int)n;
    return NULL;
}

/* LOAD / PERSIST / ROUTING / TIMEOUT, each at most once, in any order. */
static const char *ParsePrefix(DagParse *p, RedisModuleString **argv, int argc, const DagFlavor *f,
                               int *pos) {
    int seen_load = 0, seen_persist = 0, seen_routing = 0, seen_timeout = 0;
    const char *err;
    while (*pos < argc && !IsArrow(argv[*pos])) {
        RedisModuleString *arg = argv[*pos];
        if (RAI_ArgIs(arg, "LOAD") && !seen_load++) {
            if ((err = ParseLoad(p, argv, argc, pos))) return err;
        } else if (RAI_ArgIs(arg, "PERSIST") && !seen_persist++) {
            if (f->readonly) return "ERR PERSIST cannot be specified in a read-only DAG";
            if ((err = ParsePersist(p, argv, argc, pos))) return err;
        } else if (RAI_ArgIs(arg, "ROUTING") && !f->deprecated && !seen_routing++) {
            if (*pos + 1 >= argc) return "ERR Missing ROUTING value";
            *pos += 2;
        } else if (RAI_ArgIs(arg, "TIMEOUT") && !seen_timeout++) {
            long long timeout;
            if (*pos + 1 >= argc) return "ERR No value provided for TIMEOUT";
            if (RedisModule_StringToLongLong(argv[*pos + 1], &timeout) != REDISMODULE_OK)
                return "ERR Invalid value for TIMEOUT";
            /* RedisAI lets 0 and negative values through; they mean no deadline here. */
            if (timeout > 0) p->dag->deadline_us = RAI_DeadlineAfterMs(RedisModule_MonotonicMicroseconds(), timeout);
            *pos += 2;
        } else {
            return UnexpectedArgument(p, arg);
        }
    }
    if (!f->deprecated && !seen_load && !seen_persist && !seen_routing)
        return "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, "
               "LOAD, PERSIST keywords";
    return NULL;
}

/* --------------------------------------------------------------------- ops */

/* Each input's slot. A model or script op's job gets room for the tensors,
 * taken from the slots when it is queued. */
static const char *ResolveInputs(DagParse *p, RAI_DagOp *op, RedisModuleString **names, int n) {
    op->ninputs = n;
    op->inputs = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(int));
    if (op->job) {
        op->job->ninputs = n;
        op->job->inputs = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(RAI_Tensor *));
    }
    for (int i = 0; i < n; i++) {
        op->inputs[i] = Lookup(&p->symbols, names[i]);
        if (op->inputs[i] < 0) return "ERR INPUT key cannot be found in DAG";
    }
    return NULL;
}

/* Outputs get new, empty slots (filled when the op runs). */
static void BindOutputs(DagParse *p, RAI_DagOp *op, RedisModuleString **names, int n) {
    op->noutputs = n;
    op->outputs = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(int));
    op->job->noutputs = n;
    op->job->outputs = RedisModule_Calloc(n > 0 ? (size_t)n : 1, sizeof(RAI_Tensor *));
    for (int i = 0; i < n; i++) {
        op->outputs[i] = RAI_DagAddSlot(p->dag, NULL);
        Bind(&p->symbols, names[i], op->outputs[i]);
    }
}

static const char *ParseTensorSetOp(DagParse *p, RedisModuleString **argv, int argc) {
    if (argc < 4) return "wrong number of arguments for 'AI.TENSORSET' command";
    RAI_Tensor *t = NULL;
    const char *err = RAI_TensorFromArgs(argv + 2, argc - 2, &t);
    if (err) return err;
    RAI_DagAddOp(p->dag, RAI_DAG_TENSORSET);
    Bind(&p->symbols, argv[1], RAI_DagAddSlot(p->dag, t));
    return NULL;
}

static const char *ParseTensorGetOp(DagParse *p, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 4) return "wrong number of arguments for 'AI.TENSORGET' command";
    RAI_DagOp *op = RAI_DagAddOp(p->dag, RAI_DAG_TENSORGET);
    const char *err = ResolveInputs(p, op, argv + 1, 1);
    if (err) return err;
    return RAI_ParseTensorGetFormat(argv + 2, argc - 2, &op->meta, &op->blob, &op->values);
}

/* A model or script op and the job that will run it. */
static RAI_DagOp *NewRunOp(RAI_Dag *dag, RAI_DagOpKind kind, RAI_Job *job) {
    RAI_DagOp *op = RAI_DagAddOp(dag, kind);
    op->job = job;
    job->dag = dag;
    job->dag_op = dag->nops - 1;
    return op;
}

static const char *ParseModelOp(DagParse *p, RedisModuleString **argv, int argc, int deprecated) {
    if (argc < (deprecated ? 6 : 8))
        return deprecated ? "ERR wrong number of arguments for 'AI.MODELRUN' command"
                          : "ERR wrong number of arguments for 'AI.MODELEXECUTE' command";
    RAI_Model *m = RAI_ReadModelKey(p->ctx, argv[1]);
    if (m == NULL) {
        p->replied = 1;
        return "";
    }
    RAI_ExecuteArgs args;
    const char *err = deprecated ? RAI_ParseModelRun(argv, argc, m, &args)
                                 : RAI_ParseModelExecute(argv, argc, m, &args, p->buf, sizeof(p->buf));
    if (err) return err;
    if (args.timeout) return "ERR TIMEOUT not allowed within a DAG command";
    RAI_DagOp *op = NewRunOp(p->dag, RAI_DAG_MODEL, RAI_JobNew(&RAI_DagModelJob, m));
    if ((op->queue = RAI_RunQueueOf(&m->queue, m->device)) == NULL) return ERR_NO_QUEUE;
    if ((err = ResolveInputs(p, op, argv + args.inputs_at, args.ninputs))) return err;
    BindOutputs(p, op, argv + args.outputs_at, args.noutputs);
    return NULL;
}

static const char *ParseScriptOp(DagParse *p, RedisModuleString **argv, int argc, int deprecated) {
    if (argc < 3)
        return deprecated ? "ERR wrong number of arguments for 'AI.SCRIPTRUN' command"
                          : "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command";
    RAI_Script *s = RAI_ReadScriptKey(p->ctx, argv[1]);
    if (s == NULL) {
        p->replied = 1;
        return "";
    }
    RAI_ScriptExecuteArgs args;
    const char *err = deprecated ? RAI_ParseScriptRun(argv, argc, &args)
                                 : RAI_ParseScriptExecute(argv, argc, 1, &args, p->buf, sizeof(p->buf));
    if (err) return err;
    if (args.timeout) return "ERR TIMEOUT not allowed within a DAG command";
    RAI_Job *job = RAI_ScriptJobNew(&RAI_DagScriptJob, s);
    RAI_DagOp *op = NewRunOp(p->dag, RAI_DAG_SCRIPT, job);
    if ((op->queue = RAI_RunQueueOf(&s->queue, s->device)) == NULL) return ERR_NO_QUEUE;
    RAI_JobSetScriptCall(job, argv[2], argv + args.keys_at, args.nkeys, argv + args.args_at, args.nargs);
    job->call->user = RAI_CallerUserName(p->ctx);
    RedisModuleString **inputs = RedisModule_Calloc((size_t)args.ninputs + 1, sizeof(*inputs));
    for (int pos = args.inputs_at, n = 0; n < args.ninputs; pos++) {
        if (!args.variadic_at || pos != args.variadic_at) inputs[n++] = argv[pos];
    }
    err = ResolveInputs(p, op, inputs, args.ninputs);
    RedisModule_Free(inputs);
    if (err) return err;
    BindOutputs(p, op, argv + args.outputs_at, args.noutputs);
    return NULL;
}

static const char *ParseOp(DagParse *p, RedisModuleString **argv, int argc, const DagFlavor *f) {
    RedisModuleString *cmd = argv[0];
    if (RAI_ArgIs(cmd, "AI.TENSORSET")) return ParseTensorSetOp(p, argv, argc);
    if (RAI_ArgIs(cmd, "AI.TENSORGET")) return ParseTensorGetOp(p, argv, argc);
    if (RAI_ArgIs(cmd, "AI.MODELEXECUTE")) {
        if (f->deprecated) return "AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command";
        return ParseModelOp(p, argv, argc, 0);
    }
    if (RAI_ArgIs(cmd, "AI.SCRIPTEXECUTE")) {
        if (f->deprecated) return "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command";
        if (f->readonly) return "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG";
        return ParseScriptOp(p, argv, argc, 0);
    }
    if (RAI_ArgIs(cmd, "AI.MODELRUN")) {
        if (!f->deprecated) return "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command";
        return ParseModelOp(p, argv, argc, 1);
    }
    if (RAI_ArgIs(cmd, "AI.SCRIPTRUN")) {
        if (!f->deprecated) return "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command";
        if (f->readonly) return "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG";
        return ParseScriptOp(p, argv, argc, 1);
    }
    return "Unsupported command within DAG";
}

/* `|> op |> op ...` from argv[pos]. */
static const char *ParseOps(DagParse *p, RedisModuleString **argv, int argc, const DagFlavor *f, int pos) {
    if (pos >= argc) return "ERR DAG is empty";
    while (pos < argc) {
        if (pos + 1 >= argc) return UnexpectedArgument(p, argv[pos]); /* a trailing |> */
        int start = ++pos;
        while (pos < argc && !IsArrow(argv[pos])) pos++;
        if (pos == start) return UnexpectedArgument(p, argv[start - 1]);
        const char *err = ParseOp(p, argv + start, pos - start, f);
        if (err) return err;
    }
    for (int i = 0; i < p->dag->npersist; i++) {
        p->dag->persist_slots[i] = Lookup(&p->symbols, p->dag->persist_keys[i]);
        if (p->dag->persist_slots[i] < 0) return "ERR PERSIST key cannot be found in DAG";
    }
    return NULL;
}

/* ------------------------------------------------------------------- reply */

/* No reply here: a PERSIST key of another type becomes one more element of the DAG's reply. */
static int PersistKeysWritable(RedisModuleCtx *ctx, const RAI_Dag *dag) {
    for (int i = 0; i < dag->npersist; i++) {
        RedisModuleKey *key = RedisModule_OpenKey(ctx, dag->persist_keys[i], REDISMODULE_READ);
        int type = RedisModule_KeyType(key);
        int ok = type == REDISMODULE_KEYTYPE_EMPTY ||
                 (type == REDISMODULE_KEYTYPE_MODULE && RedisModule_ModuleTypeGetType(key) == RAI_TensorType);
        RedisModule_CloseKey(key);
        if (!ok) return 0;
    }
    return 1;
}

/* Writes the PERSIST keys and replicates each as AI.TENSORSET ... BLOB. */
static void Persist(RedisModuleCtx *ctx, RAI_Dag *dag) {
    for (int i = 0; i < dag->npersist; i++)
        RAI_WriteTensorKey(ctx, dag->persist_keys[i], dag->slots[dag->persist_slots[i]]);
}

/* An op answered from the cache counted its hit when it was looked up. */
static void CountRun(const RAI_DagOp *op, const RAI_Dag *dag) {
    if (op->job == NULL || op->cached || op->state == RAI_OP_PENDING) return;
    int produced = op->state == RAI_OP_DONE && op->noutputs > 0;
    RAI_JobCount(op->job, produced ? dag->slots[op->outputs[0]] : NULL);
}

static void ReplyWithOp(RedisModuleCtx *ctx, const RAI_DagOp *op, const RAI_Dag *dag) {
    switch (op->kind) {
    case RAI_DAG_TENSORSET: RedisModule_ReplyWithSimpleString(ctx, "OK"); return;
    case RAI_DAG_TENSORGET: {
        const RAI_Tensor *t = dag->slots[op->inputs[0]];
        if (t == NULL) RedisModule_ReplyWithSimpleString(ctx, "NA");
        else RAI_ReplyWithTensor(ctx, t, op->meta, op->blob, op->values);
        return;
    }
    default:
        if (op->state == RAI_OP_DONE) RedisModule_ReplyWithSimpleString(ctx, "OK");
        else if (op->state == RAI_OP_FAILED) RedisModule_ReplyWithError(ctx, op->job->error);
        else RedisModule_ReplyWithSimpleString(ctx, "NA");
        return;
    }
}

static int ReplyWithDag(RedisModuleCtx *ctx, RAI_Dag *dag) {
    for (int i = 0; i < dag->nops; i++) CountRun(&dag->ops[i], dag);
    RAI_DagCacheResults(dag);
    RAI_OpMetricsCountDag(dag->failed || dag->timed_out);
    if (dag->timed_out) return RedisModule_ReplyWithSimpleString(ctx, "TIMEDOUT");
    int persist_failed = !dag->failed && !PersistKeysWritable(ctx, dag);
    if (!dag->failed && !persist_failed) Persist(ctx, dag);
    RedisModule_ReplyWithArray(ctx, dag->nops + persist_failed);
    for (int i = 0; i < dag->nops; i++) ReplyWithOp(ctx, &dag->ops[i], dag);
    if (persist_failed) RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    return REDISMODULE_OK;
}

static int Dag_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return ReplyWithDag(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
}

static void Dag_Free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    RAI_DagFree(privdata);
}

/* ----------------------------------------------------------------- execute */

static int HasRunOps(const RAI_Dag *dag) {
    for (int i = 0; i < dag->nops; i++) {
        if (RAI_DagOpRuns(&dag->ops[i])) return 1;
    }
    return 0;
}

static int DagCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, const DagFlavor *f) {
    if (RAI_RefuseIfCannotWait(ctx)) return REDISMODULE_OK;
    DagParse p = {.ctx = ctx, .dag = RAI_DagNew()};
    int pos = 1;
    const char *err = ParsePrefix(&p, argv, argc, f, &pos);
    if (!err) err = ParseOps(&p, argv, argc, f, pos);
    FreeSymbols(&p.symbols);
    if (err) {
        RAI_DagFree(p.dag);
        return p.replied ? REDISMODULE_OK : RedisModule_ReplyWithError(ctx, err);
    }
    RAI_Dag *dag = p.dag;
    RAI_DagServeFromCache(dag);
    if (!HasRunOps(dag)) { /* only TENSORSET/TENSORGET and cache hits: nothing to wait for */
        ReplyWithDag(ctx, dag);
        RAI_DagFree(dag);
        return REDISMODULE_OK;
    }
    if (!RAI_ClientCannotBlock(ctx)) {
        dag->bc = RedisModule_BlockClient(ctx, Dag_Reply, NULL, Dag_Free, 0);
        RedisModule_BlockedClientMeasureTimeStart(dag->bc);
        RAI_DagStart(dag);
        return REDISMODULE_OK;
    }
    /* MULTI or Lua: this thread waits for the DAG (without the GIL), serving
     * its scripts' Redis calls, and replies itself. */
    dag->waiter = RAI_WaiterNew();
    RAI_DagStart(dag);
    RAI_WaiterWait(dag->waiter, ctx);
    RAI_WaiterFree(dag->waiter);
    dag->waiter = NULL;
    ReplyWithDag(ctx, dag);
    RAI_DagFree(dag);
    return REDISMODULE_OK;
}

/* COMMAND GETKEYS / cluster routing: LOAD and PERSIST keys, the ROUTING
 * value, and the model or script key of every op. */
static int DagKeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    int pos = 1;
    while (pos < argc && !IsArrow(argv[pos])) {
        long long n;
        int persist = RAI_ArgIs(argv[pos], "PERSIST");
        if ((persist || RAI_ArgIs(argv[pos], "LOAD")) && pos + 1 < argc &&
            RAI_ReadCount(argv[pos + 1], 1, ArgsBeforeArrow(argv, argc, pos + 2), &n) == RAI_COUNT_OK) {
            for (int i = 0; i < (int)n; i++)
                RedisModule_KeyAtPosWithFlags(ctx, pos + 2 + i, persist ? RAI_KEY_WRITE : RAI_KEY_READ);
            pos += 2 + (int)n;
        } else if (RAI_ArgIs(argv[pos], "ROUTING") && pos + 1 < argc) {
            RedisModule_KeyAtPosWithFlags(ctx, pos + 1, RAI_KEY_ROUTING);
            pos += 2;
        } else {
            pos++;
        }
    }
    for (; pos + 1 < argc; pos++) {
        if (RAI_ArgIs(argv[pos], "AI.MODELEXECUTE") || RAI_ArgIs(argv[pos], "AI.SCRIPTEXECUTE") ||
            RAI_ArgIs(argv[pos], "AI.MODELRUN") || RAI_ArgIs(argv[pos], "AI.SCRIPTRUN"))
            RedisModule_KeyAtPosWithFlags(ctx, pos + 1, RAI_KEY_READ);
    }
    return REDISMODULE_OK;
}

static int DagEntry(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, const DagFlavor *f) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return DagKeys(ctx, argv, argc);
    char msg[128];
    if (argc < (f->deprecated ? 4 : 6)) {
        snprintf(msg, sizeof(msg), "ERR %s arguments for '%s' command",
                 f->deprecated ? "wrong number of" : "missing", f->name);
        return RedisModule_ReplyWithError(ctx, msg);
    }
    return DagCommand(ctx, argv, argc, f);
}

/* AI.DAGEXECUTE [LOAD n k...] [PERSIST n k...] [ROUTING tag] [TIMEOUT ms] |> op ... */
int RAI_DagExecute_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    static const DagFlavor flavor = {0, 0, "AI.DAGEXECUTE"};
    return DagEntry(ctx, argv, argc, &flavor);
}

int RAI_DagExecuteRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    static const DagFlavor flavor = {1, 0, "AI.DAGEXECUTE_RO"};
    return DagEntry(ctx, argv, argc, &flavor);
}

/* AI.DAGRUN [LOAD n k...] [PERSIST n k...] [TIMEOUT ms] |> op ... (deprecated) */
int RAI_DagRun_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    static const DagFlavor flavor = {0, 1, "AI.DAGRUN"};
    return DagEntry(ctx, argv, argc, &flavor);
}

int RAI_DagRunRO_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    static const DagFlavor flavor = {1, 1, "AI.DAGRUN_RO"};
    return DagEntry(ctx, argv, argc, &flavor);
}
