/* info.c -- the module's INFO MODULES sections, in RedisAI's order:
 * ai_versions, ai_git, ai_load_time_configs, ai_backends_info, ai_cpu; then
 * ours: ai_cache, ai_sessions (the loaded-session budget).
 * Clients split this text on '#', so no value may contain one. */
#include "commands/info.h"

#include <stdio.h>
#include <sys/resource.h>

#include "types/backends.h"
#include "types/config.h"
#include "exec/infer_cache.h"
#include "exec/run_queue.h"
#include "exec/session_budget.h"
#include "python/py_triggers.h"
#include "types/type_tensor.h"

static void AddTimeval(RedisModuleInfoCtx *ctx, const char *field, struct timeval tv) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    RedisModule_InfoAddFieldCString(ctx, field, buf);
}

static void AddCpuSection(RedisModuleInfoCtx *ctx) {
    struct rusage self, children, main_thread;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    getrusage(RUSAGE_THREAD, &main_thread); /* INFO runs on the main thread */
    RedisModule_InfoAddSection(ctx, "cpu");
    AddTimeval(ctx, "self_used_cpu_sys", self.ru_stime);
    AddTimeval(ctx, "self_used_cpu_user", self.ru_utime);
    AddTimeval(ctx, "children_used_cpu_sys", children.ru_stime);
    AddTimeval(ctx, "children_used_cpu_user", children.ru_utime);
    AddTimeval(ctx, "main_thread_used_cpu_sys", main_thread.ru_stime);
    AddTimeval(ctx, "main_thread_used_cpu_user", main_thread.ru_utime);
    RAI_RunQueuesInfo(ctx);
}

/* The inference cache (ours): what it holds and how it serves. */
static void AddCacheSection(RedisModuleInfoCtx *ctx) {
    RAI_CacheFigureSet f;
    RAI_CacheFigures(&f);
    RedisModule_InfoAddSection(ctx, "cache");
    RedisModule_InfoAddFieldLongLong(ctx, "cache_entries", (long long)f.entries);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_bytes", (long long)f.bytes);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_budget", (long long)f.budget);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_hits", (long long)f.hits);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_misses", (long long)f.misses);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_inserts", (long long)f.inserts);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_evictions", (long long)f.evictions);
    RedisModule_InfoAddFieldLongLong(ctx, "cache_expired", (long long)f.expired);
}

/* ai_sessions: the loaded-session budget (exec/session_budget.h). Bytes are
 * the sessions' estimates; rss_delta sums the RSS change measured around
 * each loaded session's load (noisy: other threads allocate meanwhile). */
static void AddSessionsSection(RedisModuleInfoCtx *ctx) {
    RAI_SessionFigures f;
    RAI_SessionReadFigures(&f);
    RedisModule_InfoAddSection(ctx, "sessions");
    RedisModule_InfoAddFieldLongLong(ctx, "loaded", (long long)f.loaded);
    RedisModule_InfoAddFieldLongLong(ctx, "loaded_bytes", (long long)f.loaded_bytes);
    RedisModule_InfoAddFieldLongLong(ctx, "loaded_rss_delta", f.loaded_rss_delta);
    RedisModule_InfoAddFieldLongLong(ctx, "budget_bytes", (long long)f.budget_bytes);
    RedisModule_InfoAddFieldLongLong(ctx, "budget_sessions", (long long)f.max_sessions);
    RedisModule_InfoAddFieldLongLong(ctx, "loads", (long long)f.loads);
    RedisModule_InfoAddFieldLongLong(ctx, "cold_loads", (long long)f.cold_loads);
    RedisModule_InfoAddFieldLongLong(ctx, "load_failures", (long long)f.load_failures);
    RedisModule_InfoAddFieldLongLong(ctx, "evictions", (long long)f.evictions);
    RedisModule_InfoAddFieldLongLong(ctx, "runs_waiting_for_load", (long long)f.parked_runs);
    RedisModule_InfoAddFieldLongLong(ctx, "cold_load_p50_us", (long long)f.cold_p50_us);
    RedisModule_InfoAddFieldLongLong(ctx, "cold_load_p99_us", (long long)f.cold_p99_us);
}

void RAI_InfoFunc(RedisModuleInfoCtx *ctx, int for_crash_report) {
    (void)for_crash_report;
    RedisModule_InfoAddSection(ctx, "versions");
    RedisModule_InfoAddFieldCString(ctx, "RedisAI_version", RAI_COMPAT_VERSION_STRING);
    RedisModule_InfoAddFieldCString(ctx, "low_level_API_version", "1");
    RedisModule_InfoAddFieldLongLong(ctx, "rdb_version", RAI_ENC_VER);

    RedisModule_InfoAddSection(ctx, "git");
    RedisModule_InfoAddFieldCString(ctx, "git_sha", RAI_GIT_SHA);

    RedisModule_InfoAddSection(ctx, "load_time_configs");
    RedisModule_InfoAddFieldLongLong(ctx, "threads_per_queue", RAI_Cfg.threads_per_queue);
    RedisModule_InfoAddFieldLongLong(ctx, "inter_op_parallelism", RAI_Cfg.inter_op_parallelism);
    RedisModule_InfoAddFieldLongLong(ctx, "intra_op_parallelism", RAI_Cfg.intra_op_parallelism);
    RedisModule_InfoAddFieldLongLong(ctx, "model_execution_timeout",
                                     RAI_Cfg.model_execution_timeout);
    RedisModule_InfoAddFieldLongLong(ctx, "backend_memory_limit", RAI_Cfg.backend_memory_limit);

    RedisModule_InfoAddSection(ctx, "backends_info");
    RAI_BackendsInfo(ctx, RAI_RunQueuesWorkerCount());

    AddCpuSection(ctx);
    AddCacheSection(ctx);
    AddSessionsSection(ctx);
    RAI_TriggersInfo(ctx);
}
