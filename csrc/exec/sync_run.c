/* sync_run.c -- the hand-over of workers' Redis work to the main thread, and
 * a main thread waiting for jobs.
 *
 * One mutex and one condition variable serve both: a worker posts work and
 * waits for it to be done (polling for WORKER_SPIN_US first, then asleep);
 * the main thread does posted work in a one-shot event-loop callback, or,
 * while it waits for a job, in that wait. */
#include "exec/sync_run.h"

#include <pthread.h>

#include "base/spin.h"
#include "exec/run_queue.h"
#include "types/config.h"

/* One piece of Redis work a worker hands over: on that worker's stack while
 * it waits, or allocated for work nobody waits for (RAI_PostToMainThread). */
typedef struct Handover {
    RAI_RedisWork work;
    void *arg;
    int done;
    int tag;       /* the poster's RAI_SetWorkTag */
    int allocated; /* nobody waits: freed once done */
    struct Handover *next;
} Handover;

struct RAI_Waiter {
    int done;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER; /* posted, done, or a waiter woken */
static Handover *head, *tail;
static int drain_scheduled;   /* a one-shot event will drain the list */
static int main_thread_waits; /* in RAI_WaiterWait (written by the main thread, under lock) */
static int doing_worker_work; /* main thread only: inside a worker's handed-over work */
static int current_tag;       /* main thread only: the tag of that work */
static __thread int poster_tag;

void RAI_SetWorkTag(int tag) { poster_tag = tag; }

int RAI_CurrentWorkTag(void) { return current_tag; }

/* Main thread, lock held (dropped while each piece of work runs). */
static void DrainLocked(RedisModuleCtx *ctx) {
    Handover *h;
    while ((h = head) != NULL) {
        head = h->next;
        if (head == NULL) tail = NULL;
        pthread_mutex_unlock(&lock);
        doing_worker_work = 1;
        current_tag = h->tag;
        h->work(ctx, h->arg);
        current_tag = 0;
        doing_worker_work = 0;
        pthread_mutex_lock(&lock);
        if (h->allocated) {
            RedisModule_Free(h);
            continue;
        }
        __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE); /* a poster may be polling */
        pthread_cond_broadcast(&changed);
    }
}

static RedisModuleCtx *timer_ctx; /* names the module when the timer is made */

/* A 0 ms timer: the main thread, between clients, in a context whose end
 * propagates what the work wrote (replicas, AOF), as for any timer. */
static void DrainFromTimer(RedisModuleCtx *ctx, void *unused) {
    (void)unused;
    pthread_mutex_lock(&lock);
    drain_scheduled = 0;
    DrainLocked(ctx);
    pthread_mutex_unlock(&lock);
}

/* The one-shot event (the one main-thread hook a worker may set) only makes
 * the timer: a one-shot callback has no context of its own to propagate from. */
static void ScheduleDrain(void *unused) {
    (void)unused;
    RedisModule_CreateTimer(timer_ctx, 0, DrainFromTimer, NULL);
}

void RAI_SyncRunStart(RedisModuleCtx *module_ctx) { timer_ctx = module_ctx; }

/* Lock held: h to the list's end, and the main thread told. */
static void AppendLocked(Handover *h) {
    if (tail) tail->next = h;
    else head = h;
    tail = h;
    if (main_thread_waits) {
        pthread_cond_broadcast(&changed);
    } else if (!drain_scheduled) {
        drain_scheduled = 1;
        RedisModule_EventLoopAddOneShot(ScheduleDrain, NULL);
    }
}

int RAI_PostToMainThread(RAI_RedisWork work, void *arg) {
    if (RAI_RunQueuesStopping()) return 0; /* the main thread may serve no more */
    Handover *h = RedisModule_Calloc(1, sizeof(*h));
    *h = (Handover){work, arg, 0, poster_tag, 1, NULL};
    pthread_mutex_lock(&lock);
    AppendLocked(h);
    pthread_mutex_unlock(&lock);
    return 1;
}

void RAI_DoPostedWork(RedisModuleCtx *ctx) {
    pthread_mutex_lock(&lock);
    Handover **p = &head, *prev = NULL;
    while (*p) {
        Handover *h = *p;
        if (!h->allocated) {
            prev = h;
            p = &h->next;
            continue;
        }
        *p = h->next;
        if (tail == h) tail = prev;
        pthread_mutex_unlock(&lock);
        doing_worker_work = 1;
        h->work(ctx, h->arg);
        doing_worker_work = 0;
        RedisModule_Free(h);
        pthread_mutex_lock(&lock);
        p = &head; /* the list may have changed meanwhile: from the start again (it is short) */
        prev = NULL;
    }
    pthread_mutex_unlock(&lock);
}

static int HandoverDone(const void *arg) {
    return __atomic_load_n(&((const Handover *)arg)->done, __ATOMIC_ACQUIRE);
}

int RAI_OnMainThread(RAI_RedisWork work, void *arg) {
    Handover h = {work, arg, 0, poster_tag, 0, NULL};
    pthread_mutex_lock(&lock);
    AppendLocked(&h);
    pthread_mutex_unlock(&lock);
    /* An idle main thread does it within tens of microseconds: poll for it
     * rather than sleep (the main thread touches h no more once done is set). */
    if (RAI_SpinUntil(HandoverDone, &h, RAI_WorkerSpinUs())) return 1;
    pthread_mutex_lock(&lock);
    /* At shutdown the main thread stops serving events: give up rather than
     * wait for ever (a timed wait, so the flag is seen). */
    while (!h.done) {
        if (RAI_RunQueuesStopping() && !main_thread_waits) {
            Handover **p = &head, *prev = NULL;
            while (*p && *p != &h) {
                prev = *p;
                p = &(*p)->next;
            }
            if (*p == &h) { /* not taken yet: withdraw it */
                *p = h.next;
                if (tail == &h) tail = prev;
                pthread_mutex_unlock(&lock);
                return 0;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&changed, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

int RAI_SyncRunAllowed(void) {
    return !RAI_OnWorkerThread() && !main_thread_waits && !doing_worker_work;
}

RAI_Waiter *RAI_WaiterNew(void) { return RedisModule_Calloc(1, sizeof(RAI_Waiter)); }

void RAI_WaiterFree(RAI_Waiter *w) { RedisModule_Free(w); }

void RAI_WaiterWait(RAI_Waiter *w, RedisModuleCtx *ctx) {
    pthread_mutex_lock(&lock);
    main_thread_waits = 1;
    for (;;) {
        DrainLocked(ctx);
        if (w->done) break;
        pthread_cond_wait(&changed, &lock);
    }
    main_thread_waits = 0;
    pthread_mutex_unlock(&lock);
}

void RAI_WaiterWake(RAI_Waiter *w) {
    pthread_mutex_lock(&lock);
    w->done = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}
