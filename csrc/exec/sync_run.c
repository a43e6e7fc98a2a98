/* sync_run.c -- a waiting main thread, and the Redis work workers hand it. */
#include "exec/sync_run.h"

#include <pthread.h>

#include "exec/redis_call.h"
#include "exec/run_queue.h"

/* One piece of Redis work a worker hands over (it lives on that worker's stack). */
typedef struct {
    RAI_RedisWork work;
    void *arg;
    int done;
} Handover;

struct RAI_Waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    Handover *pending; /* one at a time: a DAG's ops on two devices may both hand work over */
};

static int main_thread_waits; /* main thread only */

int RAI_SyncRunAllowed(void) { return !RAI_OnWorkerThread() && !main_thread_waits; }

RAI_Waiter *RAI_WaiterNew(void) {
    RAI_Waiter *w = RedisModule_Calloc(1, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    return w;
}

void RAI_WaiterFree(RAI_Waiter *w) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    RedisModule_Free(w);
}

void RAI_WaiterWait(RAI_Waiter *w, RedisModuleCtx *ctx) {
    main_thread_waits = 1;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->done && w->pending == NULL) pthread_cond_wait(&w->cond, &w->lock);
        Handover *h = w->pending;
        if (h == NULL) break;
        w->pending = NULL;
        pthread_mutex_unlock(&w->lock);
        h->work(ctx, h->arg);
        pthread_mutex_lock(&w->lock);
        h->done = 1;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    main_thread_waits = 0;
}

void RAI_WaiterWake(RAI_Waiter *w) {
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* The worker's side of a hand-over: post the work, wait until it is done. */
static void HandToMainThread(void *waiter, RAI_RedisWork work, void *arg) {
    RAI_Waiter *w = waiter;
    Handover h = {work, arg, 0};
    pthread_mutex_lock(&w->lock);
    while (w->pending != NULL) pthread_cond_wait(&w->cond, &w->lock);
    w->pending = &h;
    pthread_cond_broadcast(&w->cond);
    while (!h.done) pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

void RAI_WaiterServeRedisWork(RAI_Waiter *w) {
    if (w) RAI_RedisRouteSet(HandToMainThread, w);
    else RAI_RedisRouteSet(NULL, NULL);
}
