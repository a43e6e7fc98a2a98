/* command_docs.c -- the COMMAND DOCS of every AI.* command, one static
 * table per command, handed to Redis by the registration in module.c.
 *
 * The argument trees describe the syntax our parsers accept (which is
 * RedisAI 1.2's), in the order RedisAI documents it; redis-cli builds its
 * `help` text and typing hints from them. "since" is the first RedisAI
 * release whose command table had the command, and a deprecated command's
 * history names the release that deprecated it and its replacement (the
 * module API has no deprecated doc flag or replaced_by field, so its summary
 * says so too).
 *
 * Key arguments: a KEY argument must name one of the command's key specs.
 * The getkeys-api commands find their keys themselves and declare no key
 * spec (they have only the one Redis derives from first/last/step, which
 * covers a single argument), so their key names are documented as plain
 * strings. */
#include "commands/command_docs.h"

#include <string.h>

#define OPTIONAL REDISMODULE_CMD_ARG_OPTIONAL
#define MULTIPLE REDISMODULE_CMD_ARG_MULTIPLE
#define MULTIPLE_TOKEN REDISMODULE_CMD_ARG_MULTIPLE_TOKEN

/* ARG(name, TYPE, then any of .token, .flags, .summary, .subargs). */
#define ARG(n, t, ...) {.name = (n), .type = REDISMODULE_ARG_TYPE_##t, __VA_ARGS__}
#define TOKEN(n, tok, ...) ARG(n, PURE_TOKEN, .token = (tok), __VA_ARGS__)
/* The first argument of the commands with one key spec: that spec's key. */
#define SPEC_KEY {.name = "key", .type = REDISMODULE_ARG_TYPE_KEY, .key_spec_index = 0}
/* A key that no key spec describes (getkeys-api commands). */
#define NAMED_KEY(n) ARG(n, STRING)
/* `count item [item ...]`, the counted lists of the 1.2 commands. */
#define COUNTED(count, item) {ARG(count, INTEGER), ARG(item, STRING, .flags = MULTIPLE), {0}}
#define TIMEOUT_ARG ARG("timeout", INTEGER, .token = "TIMEOUT", .flags = OPTIONAL)
#define END {0}

#define DEPRECATED(version, replacement)                                               \
    (const RedisModuleCommandHistoryEntry[]) {                                         \
        {(version), "Deprecated: use `" replacement "` instead."}, {0}                 \
    }

/* ================================================================ shared */

static const RedisModuleCommandArg BACKENDS[] = {
    TOKEN("tf", "TF"), TOKEN("tflite", "TFLITE"), TOKEN("torch", "TORCH"), TOKEN("onnx", "ONNX"), END,
};

/* [BATCHSIZE n [MINBATCHSIZE m [MINBATCHTIMEOUT t]]] */
static const RedisModuleCommandArg MIN_BATCHING[] = {
    ARG("minbatchsize", INTEGER, .token = "MINBATCHSIZE"),
    ARG("minbatchtimeout", INTEGER, .token = "MINBATCHTIMEOUT", .flags = OPTIONAL),
    END,
};
static const RedisModuleCommandArg BATCHING[] = {
    ARG("batchsize", INTEGER, .token = "BATCHSIZE"),
    ARG("min_batching", BLOCK, .flags = OPTIONAL, .subargs = MIN_BATCHING),
    END,
};

/* [CACHE [TTL ms]]: ours, not RedisAI's (the inference result cache). */
static const RedisModuleCommandArg CACHING[] = {
    TOKEN("cache", "CACHE"),
    ARG("ttl", INTEGER, .token = "TTL", .flags = OPTIONAL,
        .summary = "how long a cached result serves, in milliseconds"),
    END,
};

/* ================================================================ tensors */

static const RedisModuleCommandArg TENSOR_TYPES[] = {
    TOKEN("float", "FLOAT"), TOKEN("double", "DOUBLE"), TOKEN("int8", "INT8"),
    TOKEN("int16", "INT16"), TOKEN("int32", "INT32"),   TOKEN("int64", "INT64"),
    TOKEN("uint8", "UINT8"), TOKEN("uint16", "UINT16"), TOKEN("bool", "BOOL"),
    TOKEN("string", "STRING"), END,
};
static const RedisModuleCommandArg TENSORSET_DATA[] = {
    ARG("data", STRING, .token = "BLOB", .summary = "the elements' raw bytes, row-major"),
    ARG("value", STRING, .token = "VALUES", .flags = MULTIPLE),
    END,
};
static const RedisModuleCommandArg TENSORSET_ARGS[] = {
    SPEC_KEY,
    ARG("type", ONEOF, .subargs = TENSOR_TYPES),
    ARG("shape", INTEGER, .flags = OPTIONAL | MULTIPLE, .summary = "the dimensions"),
    ARG("content", ONEOF, .flags = OPTIONAL, .subargs = TENSORSET_DATA),
    END,
};
static const RAI_CommandDoc TENSORSET = {
    .summary = "Stores a tensor of the given type and shape, from a BLOB of raw bytes or a list of VALUES",
    .complexity = "O(N) where N is the number of elements in the tensor",
    .since = "0.1.0",
    .args = TENSORSET_ARGS,
};

static const RedisModuleCommandArg TENSORGET_FORMAT[] = {
    TOKEN("blob", "BLOB"), TOKEN("values", "VALUES"), END,
};
static const RedisModuleCommandArg TENSORGET_ARGS[] = {
    SPEC_KEY,
    TOKEN("meta", "META", .flags = OPTIONAL),
    ARG("format", ONEOF, .flags = OPTIONAL, .subargs = TENSORGET_FORMAT),
    END,
};
static const RAI_CommandDoc TENSORGET = {
    .summary = "Returns a tensor's type and shape (META) and its data as a BLOB or as VALUES",
    .complexity = "O(N) where N is the number of elements in the tensor",
    .since = "0.1.0",
    .args = TENSORGET_ARGS,
};

/* ================================================================ models */

static const RedisModuleCommandArg STORE_INPUTS[] = COUNTED("input_count", "input");
static const RedisModuleCommandArg STORE_OUTPUTS[] = COUNTED("output_count", "output");
static const RedisModuleCommandArg STORE_NODES[] = {
    ARG("inputs", BLOCK, .token = "INPUTS", .subargs = STORE_INPUTS),
    ARG("outputs", BLOCK, .token = "OUTPUTS", .subargs = STORE_OUTPUTS),
    END,
};
static const RedisModuleCommandArg MODELSTORE_ARGS[] = {
    SPEC_KEY,
    ARG("backend", ONEOF, .subargs = BACKENDS),
    ARG("device", STRING, .summary = "CPU, GPU, or CPU:<n> / GPU:<n>"),
    ARG("tag", STRING, .token = "TAG", .flags = OPTIONAL),
    ARG("batching", BLOCK, .flags = OPTIONAL, .subargs = BATCHING),
    ARG("caching", BLOCK, .flags = OPTIONAL, .subargs = CACHING,
        .summary = "answer repeated requests from the inference cache (not in RedisAI)"),
    ARG("warmup", INTEGER, .token = "WARMUP", .flags = OPTIONAL,
        .summary = "redisai_py: synthetic runs after each load of the session, 0 to 1000 (ONNX)"),
    ARG("nodes", BLOCK, .flags = OPTIONAL, .subargs = STORE_NODES,
        .summary = "the graph's input and output node names; TF only, and required there"),
    ARG("blob", STRING, .token = "BLOB", .flags = MULTIPLE,
        .summary = "the serialized model, in one or more chunks"),
    END,
};
#define MODEL_STORE_COMPLEXITY "O(N) where N is the size of the model, plus the backend's time to load it"
static const RAI_CommandDoc MODELSTORE = {
    .summary = "Stores a model for a backend and device, with an optional tag and auto-batching settings",
    .complexity = MODEL_STORE_COMPLEXITY,
    .since = "1.2.3",
    .args = MODELSTORE_ARGS,
};

static const RedisModuleCommandArg MODELSET_NODES[] = {
    ARG("input", STRING, .token = "INPUTS", .flags = MULTIPLE),
    ARG("output", STRING, .token = "OUTPUTS", .flags = MULTIPLE),
    END,
};
static const RedisModuleCommandArg MODELSET_ARGS[] = {
    SPEC_KEY,
    ARG("backend", ONEOF, .subargs = BACKENDS),
    ARG("device", STRING),
    ARG("tag", STRING, .token = "TAG", .flags = OPTIONAL),
    ARG("batching", BLOCK, .flags = OPTIONAL, .subargs = BATCHING),
    ARG("nodes", BLOCK, .flags = OPTIONAL, .subargs = MODELSET_NODES,
        .summary = "the graph's input and output node names; TF only, and required there"),
    ARG("blob", STRING, .token = "BLOB", .flags = MULTIPLE),
    END,
};
static const RAI_CommandDoc MODELSET = {
    .summary = "Stores a model (deprecated since RedisAI 1.2.3: use AI.MODELSTORE)",
    .complexity = MODEL_STORE_COMPLEXITY,
    .since = "0.1.0",
    .history = DEPRECATED("1.2.3", "AI.MODELSTORE"),
    .args = MODELSET_ARGS,
};

static const RedisModuleCommandArg MODELGET_ARGS[] = {
    SPEC_KEY,
    TOKEN("meta", "META", .flags = OPTIONAL),
    TOKEN("blob", "BLOB", .flags = OPTIONAL),
    END,
};
static const RAI_CommandDoc MODELGET = {
    .summary = "Returns a model's metadata (META) and its serialized form (BLOB)",
    .complexity = "O(1) for META alone, else O(N) where N is the size of the model",
    .since = "0.1.0",
    .args = MODELGET_ARGS,
};

static const RedisModuleCommandArg MODELDEL_ARGS[] = {SPEC_KEY, END};
static const RAI_CommandDoc MODELDEL = {
    .summary = "Deletes a model",
    .complexity = "O(1)",
    .since = "0.4.0",
    .args = MODELDEL_ARGS,
};

static const RedisModuleCommandArg EXECUTE_INPUTS[] = COUNTED("input_count", "input");
static const RedisModuleCommandArg EXECUTE_OUTPUTS[] = COUNTED("output_count", "output");
static const RedisModuleCommandArg MODELEXECUTE_ARGS[] = {
    NAMED_KEY("key"),
    ARG("inputs", BLOCK, .token = "INPUTS", .subargs = EXECUTE_INPUTS),
    ARG("outputs", BLOCK, .token = "OUTPUTS", .subargs = EXECUTE_OUTPUTS),
    TIMEOUT_ARG,
    END,
};
#define MODEL_RUN_COMPLEXITY                                                           \
    "Depends on the model, which runs on a background thread; O(N) on the main thread where N is " \
    "the number of input and output keys"
static const RAI_CommandDoc MODELEXECUTE = {
    .summary = "Runs a model on input tensors and stores its outputs as tensors",
    .complexity = MODEL_RUN_COMPLEXITY,
    .since = "1.2.3",
    .args = MODELEXECUTE_ARGS,
};

static const RedisModuleCommandArg MODELRUN_ARGS[] = {
    NAMED_KEY("key"),
    TIMEOUT_ARG,
    ARG("input", STRING, .token = "INPUTS", .flags = MULTIPLE),
    ARG("output", STRING, .token = "OUTPUTS", .flags = MULTIPLE),
    END,
};
static const RAI_CommandDoc MODELRUN = {
    .summary = "Runs a model (deprecated since RedisAI 1.2.3: use AI.MODELEXECUTE)",
    .complexity = MODEL_RUN_COMPLEXITY,
    .since = "0.1.0",
    .history = DEPRECATED("1.2.3", "AI.MODELEXECUTE"),
    .args = MODELRUN_ARGS,
};

static const RAI_CommandDoc MODELSCAN = {
    .summary = "Lists the key and tag of every model (experimental)",
    .complexity = "O(N) where N is the number of models",
    .since = "0.99.0",
    .tips = "nondeterministic_output_order",
};

/* A GET of a key a read-through trigger watches, rewritten by the module's
 * command filter (cmd_readthrough.c); clients need not send it. */
static const RedisModuleCommandArg READTHROUGH_ARGS[] = {SPEC_KEY, END};
static const RAI_CommandDoc READTHROUGH = {
    .summary = "GET that waits for a read-through trigger on a miss (internal: GETs are rewritten into it)",
    .complexity = "O(1), plus the trigger's run on a miss",
    .since = "0.1.0",
    .args = READTHROUGH_ARGS,
};

/* ================================================================ scripts */

static const RedisModuleCommandArg ENTRY_POINTS[] = COUNTED("entry_point_count", "entry_point");
static const RedisModuleCommandArg SCRIPTSTORE_ARGS[] = {
    SPEC_KEY,
    ARG("device", STRING),
    ARG("tag", STRING, .token = "TAG", .flags = OPTIONAL),
    ARG("entry_points", BLOCK, .token = "ENTRY_POINTS", .subargs = ENTRY_POINTS),
    ARG("script", STRING, .token = "SOURCE", .summary = "the TorchScript source"),
    END,
};
#define SCRIPT_STORE_COMPLEXITY "O(N) where N is the length of the source, plus its compilation"
static const RAI_CommandDoc SCRIPTSTORE = {
    .summary = "Stores a TorchScript script and the functions that AI.SCRIPTEXECUTE may call",
    .complexity = SCRIPT_STORE_COMPLEXITY,
    .since = "1.2.4",
    .args = SCRIPTSTORE_ARGS,
};

static const RedisModuleCommandArg SCRIPTSET_ARGS[] = {
    SPEC_KEY,
    ARG("device", STRING),
    ARG("tag", STRING, .token = "TAG", .flags = OPTIONAL),
    ARG("script", STRING, .token = "SOURCE"),
    END,
};
static const RAI_CommandDoc SCRIPTSET = {
    .summary = "Stores a TorchScript script (deprecated since RedisAI 1.2.4: use AI.SCRIPTSTORE)",
    .complexity = SCRIPT_STORE_COMPLEXITY,
    .since = "0.1.0",
    .history = DEPRECATED("1.2.4", "AI.SCRIPTSTORE"),
    .args = SCRIPTSET_ARGS,
};

static const RedisModuleCommandArg SCRIPTGET_ARGS[] = {
    SPEC_KEY,
    TOKEN("meta", "META", .flags = OPTIONAL),
    TOKEN("source", "SOURCE", .flags = OPTIONAL),
    END,
};
static const RAI_CommandDoc SCRIPTGET = {
    .summary = "Returns a script's metadata (META) and its source (SOURCE)",
    .complexity = "O(1) for META alone, else O(N) where N is the length of the source",
    .since = "0.1.0",
    .args = SCRIPTGET_ARGS,
};

static const RedisModuleCommandArg SCRIPTDEL_ARGS[] = {SPEC_KEY, END};
static const RAI_CommandDoc SCRIPTDEL = {
    .summary = "Deletes a script",
    .complexity = "O(1)",
    .since = "0.4.0",
    .args = SCRIPTDEL_ARGS,
};

static const RedisModuleCommandArg SCRIPT_KEYS[] = COUNTED("key_count", "key_name");
static const RedisModuleCommandArg SCRIPT_INPUTS[] = COUNTED("input_count", "input");
static const RedisModuleCommandArg SCRIPT_ARGS[] = COUNTED("arg_count", "arg");
static const RedisModuleCommandArg SCRIPT_OUTPUTS[] = COUNTED("output_count", "output");
static const RedisModuleCommandArg SCRIPTEXECUTE_ARGS[] = {
    NAMED_KEY("key"),
    ARG("function", STRING),
    ARG("keys", BLOCK, .token = "KEYS", .flags = OPTIONAL, .subargs = SCRIPT_KEYS,
        .summary = "keys the script reads or writes; KEYS or INPUTS must come first"),
    ARG("inputs", BLOCK, .token = "INPUTS", .flags = OPTIONAL, .subargs = SCRIPT_INPUTS),
    ARG("args", BLOCK, .token = "ARGS", .flags = OPTIONAL, .subargs = SCRIPT_ARGS),
    ARG("outputs", BLOCK, .token = "OUTPUTS", .flags = OPTIONAL, .subargs = SCRIPT_OUTPUTS),
    TIMEOUT_ARG,
    END,
};
#define SCRIPT_RUN_COMPLEXITY                                                          \
    "Depends on the script, which runs on a background thread; O(N) on the main thread where N " \
    "is the number of arguments"
static const RAI_CommandDoc SCRIPTEXECUTE = {
    .summary = "Runs a script's function on tensors, keys and string arguments, and stores its output tensors",
    .complexity = SCRIPT_RUN_COMPLEXITY,
    .since = "1.2.3",
    .args = SCRIPTEXECUTE_ARGS,
};

/* INPUTS in [in ...] [$ in [in ...]] */
static const RedisModuleCommandArg SCRIPTRUN_VARIADIC[] = {
    ARG("input", STRING, .flags = MULTIPLE), END,
};
static const RedisModuleCommandArg SCRIPTRUN_INPUTS[] = {
    ARG("input", STRING, .flags = MULTIPLE),
    ARG("variadic", BLOCK, .token = "$", .flags = OPTIONAL, .subargs = SCRIPTRUN_VARIADIC,
        .summary = "inputs that the function takes as one List[Tensor]"),
    END,
};
static const RedisModuleCommandArg SCRIPTRUN_OUTPUTS[] = {
    ARG("output", STRING, .flags = MULTIPLE), END,
};
static const RedisModuleCommandArg SCRIPTRUN_ARGS[] = {
    NAMED_KEY("key"),
    ARG("function", STRING),
    TIMEOUT_ARG,
    ARG("inputs", BLOCK, .token = "INPUTS", .subargs = SCRIPTRUN_INPUTS),
    ARG("outputs", BLOCK, .token = "OUTPUTS", .flags = OPTIONAL, .subargs = SCRIPTRUN_OUTPUTS),
    END,
};
static const RAI_CommandDoc SCRIPTRUN = {
    .summary = "Runs a script's function (deprecated since RedisAI 1.2.3: use AI.SCRIPTEXECUTE)",
    .complexity = SCRIPT_RUN_COMPLEXITY,
    .since = "0.1.0",
    .history = DEPRECATED("1.2.3", "AI.SCRIPTEXECUTE"),
    .args = SCRIPTRUN_ARGS,
};

static const RAI_CommandDoc SCRIPTSCAN = {
    .summary = "Lists the key and tag of every script (experimental)",
    .complexity = "O(N) where N is the number of scripts",
    .since = "0.99.0",
    .tips = "nondeterministic_output_order",
};

/* ================================================================ DAGs */

/* `|> op args...`, repeated: each op is one of the commands the flavour allows. */
#define DAG_OP(ops)                                                                    \
    ARG("op", BLOCK, .token = "|>", .flags = MULTIPLE | MULTIPLE_TOKEN,                \
        .subargs = (const RedisModuleCommandArg[]){                                    \
            ARG("command", ONEOF, .subargs = (ops)), ARG("argument", STRING, .flags = MULTIPLE), END})

static const RedisModuleCommandArg DAG_LOAD[] = COUNTED("key_count", "key");
static const RedisModuleCommandArg DAG_PERSIST[] = COUNTED("key_count", "key");
#define LOAD_ARG ARG("load", BLOCK, .token = "LOAD", .flags = OPTIONAL, .subargs = DAG_LOAD)
#define PERSIST_ARG ARG("persist", BLOCK, .token = "PERSIST", .flags = OPTIONAL, .subargs = DAG_PERSIST)
#define ROUTING_ARG                                                                    \
    ARG("routing_tag", STRING, .token = "ROUTING", .flags = OPTIONAL,                      \
        .summary = "a key or tag that routes the DAG to its shard")

static const RedisModuleCommandArg DAGEXECUTE_OPS[] = {
    TOKEN("tensorset", "AI.TENSORSET"), TOKEN("tensorget", "AI.TENSORGET"),
    TOKEN("modelexecute", "AI.MODELEXECUTE"), TOKEN("scriptexecute", "AI.SCRIPTEXECUTE"), END,
};
static const RedisModuleCommandArg DAGEXECUTE_RO_OPS[] = {
    TOKEN("tensorset", "AI.TENSORSET"), TOKEN("tensorget", "AI.TENSORGET"),
    TOKEN("modelexecute", "AI.MODELEXECUTE"), END,
};
static const RedisModuleCommandArg DAGRUN_OPS[] = {
    TOKEN("tensorset", "AI.TENSORSET"), TOKEN("tensorget", "AI.TENSORGET"),
    TOKEN("modelrun", "AI.MODELRUN"), TOKEN("scriptrun", "AI.SCRIPTRUN"), END,
};
static const RedisModuleCommandArg DAGRUN_RO_OPS[] = {
    TOKEN("tensorset", "AI.TENSORSET"), TOKEN("tensorget", "AI.TENSORGET"),
    TOKEN("modelrun", "AI.MODELRUN"), END,
};

#define DAG_COMPLEXITY                                                                 \
    "The sum of its operations' complexities; models and scripts run on background threads"

static const RedisModuleCommandArg DAGEXECUTE_ARGS[] = {
    LOAD_ARG, PERSIST_ARG, ROUTING_ARG, TIMEOUT_ARG, DAG_OP(DAGEXECUTE_OPS), END,
};
static const RAI_CommandDoc DAGEXECUTE = {
    .summary = "Runs a pipeline of tensor, model and script operations as one command, keeping "
               "intermediate tensors out of the keyspace",
    .complexity = DAG_COMPLEXITY,
    .since = "1.2.3",
    .args = DAGEXECUTE_ARGS,
};

static const RedisModuleCommandArg DAGEXECUTE_RO_ARGS[] = {
    LOAD_ARG, ROUTING_ARG, TIMEOUT_ARG, DAG_OP(DAGEXECUTE_RO_OPS), END,
};
static const RAI_CommandDoc DAGEXECUTE_RO = {
    .summary = "Runs a pipeline of tensor and model operations that writes no key",
    .complexity = DAG_COMPLEXITY,
    .since = "1.2.3",
    .args = DAGEXECUTE_RO_ARGS,
};

static const RedisModuleCommandArg DAGRUN_ARGS[] = {
    LOAD_ARG, PERSIST_ARG, TIMEOUT_ARG, DAG_OP(DAGRUN_OPS), END,
};
static const RAI_CommandDoc DAGRUN = {
    .summary = "Runs a pipeline of operations (deprecated since RedisAI 1.2.3: use AI.DAGEXECUTE)",
    .complexity = DAG_COMPLEXITY,
    .since = "0.99.0",
    .history = DEPRECATED("1.2.3", "AI.DAGEXECUTE"),
    .args = DAGRUN_ARGS,
};

static const RedisModuleCommandArg DAGRUN_RO_ARGS[] = {
    LOAD_ARG, TIMEOUT_ARG, DAG_OP(DAGRUN_RO_OPS), END,
};
static const RAI_CommandDoc DAGRUN_RO = {
    .summary = "Runs a pipeline of operations that writes no key (deprecated since RedisAI 1.2.3: "
               "use AI.DAGEXECUTE_RO)",
    .complexity = DAG_COMPLEXITY,
    .since = "0.99.0",
    .history = DEPRECATED("1.2.3", "AI.DAGEXECUTE_RO"),
    .args = DAGRUN_RO_ARGS,
};

/* ================================================================ admin */

static const RedisModuleCommandArg INFO_OPTIONS[] = {
    TOKEN("resetstat", "RESETSTAT"),
    TOKEN("session", "SESSION", .summary = "redisai_py: add the model's loaded-session state"),
    END,
};
static const RedisModuleCommandArg INFO_ARGS[] = {
    SPEC_KEY,
    ARG("option", ONEOF, .flags = OPTIONAL, .subargs = INFO_OPTIONS),
    END,
};
static const RAI_CommandDoc INFO = {
    .summary = "Returns the run statistics of a model or script, or resets them (RESETSTAT)",
    .complexity = "O(1)",
    .since = "0.9.0",
    .args = INFO_ARGS,
};

static const RedisModuleCommandArg CONFIG_LOADBACKEND[] = {
    ARG("backend", ONEOF, .subargs = BACKENDS),
    ARG("path", STRING, .summary = "the backend's library; a relative path is under BACKENDSPATH"),
    END,
};
static const RedisModuleCommandArg CONFIG_NAMES[] = {
    TOKEN("backendspath", "BACKENDSPATH"), TOKEN("model_chunk_size", "MODEL_CHUNK_SIZE"),
    TOKEN("cache_memory", "CACHE_MEMORY"),
    TOKEN("model_sessions_memory", "MODEL_SESSIONS_MEMORY"), TOKEN("model_sessions_max", "MODEL_SESSIONS_MAX"),
    TOKEN("worker_spin_us", "WORKER_SPIN_US"),
    END,
};
static const RedisModuleCommandArg CONFIG_ACTIONS[] = {
    ARG("path", STRING, .token = "BACKENDSPATH"),
    ARG("loadbackend", BLOCK, .token = "LOADBACKEND", .subargs = CONFIG_LOADBACKEND),
    ARG("chunk_size", INTEGER, .token = "MODEL_CHUNK_SIZE", .summary = "bytes"),
    ARG("cache_memory", INTEGER, .token = "CACHE_MEMORY",
        .summary = "the inference cache's budget in bytes; 0 turns it off (not in RedisAI)"),
    TOKEN("cache_flush", "CACHE_FLUSH", .summary = "empties the inference cache (not in RedisAI)"),
    ARG("sessions_memory", INTEGER, .token = "MODEL_SESSIONS_MEMORY",
        .summary = "redisai_py: bytes of loaded model sessions, 0 for no limit"),
    ARG("sessions_max", INTEGER, .token = "MODEL_SESSIONS_MAX",
        .summary = "redisai_py: loaded model sessions, 0 for no limit"),
    ARG("worker_spin_us", INTEGER, .token = "WORKER_SPIN_US",
        .summary = "redisai_py: how long an idle worker polls its queue before it sleeps, 0 to 1000000"),
    ARG("name", ONEOF, .token = "GET", .subargs = CONFIG_NAMES),
    END,
};
static const RedisModuleCommandArg CONFIG_ARGS[] = {
    ARG("action", ONEOF, .subargs = CONFIG_ACTIONS),
    END,
};
static const RAI_CommandDoc CONFIG = {
    .summary = "Sets or reads BACKENDSPATH, MODEL_CHUNK_SIZE, CACHE_MEMORY, the model session budget and "
               "WORKER_SPIN_US, loads a backend, or empties the inference cache",
    .complexity = "O(1); LOADBACKEND loads the backend on a thread of its own",
    .since = "0.4.0",
    .args = CONFIG_ARGS,
};

/* AI.METRICS is redisai_py's own: "since" is this project's release. */
static const RAI_CommandDoc METRICS = {
    .summary = "Returns the module's metrics in the Prometheus text exposition format (redisai_py only)",
    .complexity = "O(N) where N is the number of model and script keys with a series of their own",
    .since = RAI_VERSION_STRING,
    .tips = "nondeterministic_output_order",
};

/* ================================================================ functions */

/* In-server Python functions are redisai_py's own: "since" is this project's release. */
static const RedisModuleCommandArg FUNCTION_LOAD[] = {
    TOKEN("replace", "REPLACE", .flags = OPTIONAL),
    ARG("function-code", STRING, .summary = "Python source starting with `#!python name=<library>`"),
    END,
};
static const RedisModuleCommandArg FUNCTION_FLUSH_MODE[] = {
    TOKEN("async", "ASYNC"), TOKEN("sync", "SYNC"), END,
};
static const RedisModuleCommandArg FUNCTION_FLUSH[] = {
    ARG("flush-type", ONEOF, .flags = OPTIONAL, .subargs = FUNCTION_FLUSH_MODE),
    END,
};
static const RedisModuleCommandArg FUNCTION_LIST[] = {
    ARG("library-name-pattern", PATTERN, .token = "LIBRARYNAME", .flags = OPTIONAL),
    TOKEN("withcode", "WITHCODE", .flags = OPTIONAL),
    END,
};
static const RedisModuleCommandArg FUNCTION_ACTIONS[] = {
    ARG("load", BLOCK, .token = "LOAD", .subargs = FUNCTION_LOAD),
    ARG("library-name", STRING, .token = "DELETE"),
    ARG("list", BLOCK, .token = "LIST", .subargs = FUNCTION_LIST),
    ARG("flush", BLOCK, .token = "FLUSH", .subargs = FUNCTION_FLUSH),
    TOKEN("kill", "KILL"),
    END,
};
static const RedisModuleCommandArg FUNCTION_ARGS[] = {
    ARG("subcommand", ONEOF, .subargs = FUNCTION_ACTIONS),
    END,
};
static const RAI_CommandDoc FUNCTION = {
    .summary = "Loads, deletes, lists or flushes in-server Python function libraries, or kills a long call "
               "(redisai_py only)",
    .complexity = "LOAD imports the library on the loader thread; LIST is O(N) in libraries and functions",
    .since = RAI_VERSION_STRING,
    .args = FUNCTION_ARGS,
};
static const RedisModuleCommandArg FCALL_ARGS[] = {
    ARG("function", STRING),
    ARG("numkeys", INTEGER),
    {.name = "key", .type = REDISMODULE_ARG_TYPE_KEY, .key_spec_index = 0, .flags = OPTIONAL | MULTIPLE},
    ARG("arg", STRING, .flags = OPTIONAL | MULTIPLE),
    END,
};
static const RAI_CommandDoc FCALL = {
    .summary = "Runs an in-server Python function on a function thread (redisai_py only)",
    .complexity = "Depends on the function that is executed",
    .since = RAI_VERSION_STRING,
    .args = FCALL_ARGS,
};
static const RAI_CommandDoc FCALL_RO = {
    .summary = "Runs an in-server Python function flagged no-writes (redisai_py only)",
    .complexity = "Depends on the function that is executed",
    .since = RAI_VERSION_STRING,
    .args = FCALL_ARGS,
};

/* ================================================================ lookup */

static const struct {
    const char *name;
    const RAI_CommandDoc *doc;
} DOCS[] = {
    {"ai.tensorset", &TENSORSET},   {"ai.tensorget", &TENSORGET},
    {"ai.modelstore", &MODELSTORE}, {"ai.modelset", &MODELSET},
    {"ai.modelget", &MODELGET},     {"ai.modeldel", &MODELDEL},
    {"ai.modelexecute", &MODELEXECUTE}, {"ai.modelrun", &MODELRUN},
    {"ai._modelscan", &MODELSCAN},  {"ai.scriptstore", &SCRIPTSTORE},
    {"ai.scriptset", &SCRIPTSET},   {"ai.scriptget", &SCRIPTGET},
    {"ai.scriptdel", &SCRIPTDEL},   {"ai.scriptexecute", &SCRIPTEXECUTE},
    {"ai.scriptrun", &SCRIPTRUN},   {"ai._scriptscan", &SCRIPTSCAN},
    {"ai.dagexecute", &DAGEXECUTE}, {"ai.dagexecute_ro", &DAGEXECUTE_RO},
    {"ai.dagrun", &DAGRUN},         {"ai.dagrun_ro", &DAGRUN_RO},
    {"ai.info", &INFO},             {"ai.config", &CONFIG},
    {"ai.metrics", &METRICS},
    {"ai.function", &FUNCTION},     {"ai.fcall", &FCALL},
    {"ai.fcall_ro", &FCALL_RO},
    {"ai._readthrough", &READTHROUGH},
};

const RAI_CommandDoc *RAI_CommandDocFor(const char *name) {
    for (size_t i = 0; i < sizeof(DOCS) / sizeof(DOCS[0]); i++) {
        if (strcmp(DOCS[i].name, name) == 0) return DOCS[i].doc;
    }
    return NULL;
}
