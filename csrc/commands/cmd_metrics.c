/* cmd_metrics.c -- AI.METRICS: every counter the module keeps, in the
 * Prometheus text exposition format (0.0.4), as one bulk string.
 *
 * With thousands of keys the text is megabytes, and the renderer reads no
 * key and takes no lock the main thread needs, so it runs on a short-lived
 * thread while only the asking client waits. Inside MULTI or Lua, where a
 * client cannot block, it renders in place. */
#include "commands/cmd_metrics.h"

#include <pthread.h>

#include "base/args.h"
#include "base/text_buf.h"
#include "commands/cmd_admin.h"
#include "exec/metrics_text.h"

typedef struct {
    RedisModuleBlockedClient *bc;
    char *text;
    size_t len;
} MetricsJob;

static char *Render(size_t *len) {
    RAI_TextBuf buf = {0};
    RAI_MetricsRender(&buf);
    return RAI_TextBufTake(&buf, len);
}

static void *RenderThread(void *arg) {
    MetricsJob *job = arg;
    job->text = Render(&job->len);
    RedisModule_UnblockClient(job->bc, job);
    return NULL;
}

static int Metrics_Reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    MetricsJob *job = RedisModule_GetBlockedClientPrivateData(ctx);
    return RedisModule_ReplyWithStringBuffer(ctx, job->text, job->len);
}

static void Metrics_Free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    MetricsJob *job = privdata;
    RedisModule_Free(job->text);
    RedisModule_Free(job);
}

/* AI.METRICS */
int RAI_Metrics_RedisCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 1) return RAI_ReplyWrongArity(ctx, argv[0]);
    if (RAI_ClientCannotBlock(ctx)) {
        size_t len;
        char *text = Render(&len);
        RedisModule_ReplyWithStringBuffer(ctx, text, len);
        RedisModule_Free(text);
        return REDISMODULE_OK;
    }
    MetricsJob *job = RedisModule_Calloc(1, sizeof(*job));
    job->bc = RedisModule_BlockClient(ctx, Metrics_Reply, NULL, Metrics_Free, 0);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, RenderThread, job) != 0) RenderThread(job); /* no thread: render here */
    pthread_attr_destroy(&attr);
    return REDISMODULE_OK;
}
