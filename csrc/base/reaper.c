/* reaper.c -- the background thread that frees big allocations.
 *
 * One thread, one FIFO under a mutex. It never holds the Python GIL, so
 * waiting for the Redis lock (after_main_pass) cannot deadlock with a worker;
 * and nothing ever waits for the reaper, so shutdown (which runs holding the
 * Redis lock) cannot deadlock with it either. */
#include "base/reaper.h"

#include <pthread.h>

#include "rm_api.h"

typedef struct Reap {
    RAI_ReapFn fn;
    void *arg;
    int after_main_pass;
    struct Reap *next;
} Reap;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static Reap *head, *tail;
static int running;
static RedisModuleCtx *lock_ctx; /* for RedisModule_ThreadSafeContextLock */

static Reap *Take(void) {
    pthread_mutex_lock(&lock);
    while (head == NULL) pthread_cond_wait(&wake, &lock);
    Reap *r = head;
    head = r->next;
    if (head == NULL) tail = NULL;
    pthread_mutex_unlock(&lock);
    return r;
}

/* Once we get the Redis lock the main thread is between passes: whatever it
 * was doing when the work was queued is done. */
static void WaitForMainPass(void) {
    RedisModule_ThreadSafeContextLock(lock_ctx);
    RedisModule_ThreadSafeContextUnlock(lock_ctx);
}

static void *ReaperMain(void *unused) {
    (void)unused;
    for (;;) {
        Reap *r = Take();
        if (r->after_main_pass) WaitForMainPass();
        r->fn(r->arg);
        RedisModule_Free(r);
    }
    return NULL;
}

int RAI_ReaperStart(void) {
    lock_ctx = RedisModule_GetThreadSafeContext(NULL);
    pthread_t thread;
    if (pthread_create(&thread, NULL, ReaperMain, NULL) != 0) return -1;
    pthread_detach(thread);
    running = 1;
    return 0;
}

void RAI_Reap(RAI_ReapFn fn, void *arg, int after_main_pass) {
    if (!running) {
        fn(arg);
        return;
    }
    Reap *r = RedisModule_Alloc(sizeof(*r));
    *r = (Reap){fn, arg, after_main_pass, NULL};
    pthread_mutex_lock(&lock);
    if (tail) tail->next = r;
    else head = r;
    tail = r;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}
