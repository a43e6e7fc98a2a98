/* key_metrics.c -- the registry of per-key series: a hash table under one
 * mutex, label text built once per series, and the fold into `other`. */
#include "types/key_metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

#include "base/text_buf.h"
#include "rm_api.h"
#include "types/config.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static RAI_KeySeries **table; /* nbuckets chains */
static size_t nbuckets;
static size_t nseries;                      /* in the table, `other` series included */
static size_t nkeys;                        /* per-key series: what METRICS_MAX_KEYS caps */
static RAI_KeySeries *other[RAI_SERIES_KINDS];
static uint64_t folded;                     /* keys linked to `other` so far (atomic) */

/* ------------------------------------------------------------ label text */

/* The device is upper-cased as its queue's name is, so per-key and
 * per-queue series join on it. */
static char *LabelText(const char *key, size_t keylen, const char *backend, const char *device,
                       const char *tag, size_t *len) {
    char *upper = RedisModule_Strdup(device);
    for (char *c = upper; *c; c++) *c = (char)toupper((unsigned char)*c);
    RAI_TextBuf b = {0};
    RAI_TextBufAppendLabel(&b, "key", key, keylen);
    RAI_TextBufAppendChar(&b, ',');
    RAI_TextBufAppendLabel(&b, "backend", backend, strlen(backend));
    RAI_TextBufAppendChar(&b, ',');
    RAI_TextBufAppendLabel(&b, "device", upper, strlen(upper));
    RAI_TextBufAppendChar(&b, ',');
    RAI_TextBufAppendLabel(&b, "tag", tag, strlen(tag));
    RedisModule_Free(upper);
    return RAI_TextBufTake(&b, len);
}

/* -------------------------------------------------------------- registry */

static uint64_t Hash(RAI_SeriesKind kind, const char *labels, size_t len) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)labels[i]) * 1099511628211ULL;
    return h;
}

static void Grow(void) {
    size_t n = nbuckets ? nbuckets * 2 : 64;
    RAI_KeySeries **t = RedisModule_Calloc(n, sizeof(*t));
    for (size_t i = 0; i < nbuckets; i++) {
        for (RAI_KeySeries *s = table[i], *next; s != NULL; s = next) {
            next = s->next;
            s->next = t[s->hash & (n - 1)];
            t[s->hash & (n - 1)] = s;
        }
    }
    RedisModule_Free(table);
    table = t;
    nbuckets = n;
}

static RAI_KeySeries *Find(RAI_SeriesKind kind, const char *labels, size_t len, uint64_t hash) {
    if (nbuckets == 0) return NULL;
    for (RAI_KeySeries *s = table[hash & (nbuckets - 1)]; s != NULL; s = s->next) {
        if (s->hash == hash && s->kind == kind && s->labels_len == len && memcmp(s->labels, labels, len) == 0)
            return s;
    }
    return NULL;
}

/* Takes over labels. */
static RAI_KeySeries *Add(RAI_SeriesKind kind, char *labels, size_t len, uint64_t hash, int fold) {
    if (nseries >= nbuckets) Grow();
    RAI_KeySeries *s = RedisModule_Calloc(1, sizeof(*s));
    s->kind = kind;
    s->labels = labels;
    s->labels_len = len;
    s->hash = hash;
    s->folded = fold;
    s->refs = fold ? 2 : 1; /* `other` keeps a reference of its own */
    s->next = table[hash & (nbuckets - 1)];
    table[hash & (nbuckets - 1)] = s;
    nseries++;
    if (!fold) nkeys++;
    return s;
}

static void Remove(RAI_KeySeries *s) {
    RAI_KeySeries **at = &table[s->hash & (nbuckets - 1)];
    while (*at != s) at = &(*at)->next;
    *at = s->next;
    nseries--;
    if (!s->folded) nkeys--;
    RedisModule_Free(s->labels);
    RedisModule_Free(s);
}

static void Release(RAI_KeySeries *s) {
    if (--s->refs == 0) Remove(s);
}

/* Its kind's `other` series, retained (lock held). */
static RAI_KeySeries *Other(RAI_SeriesKind kind) {
    if (other[kind] == NULL) {
        size_t len;
        char *labels = LabelText("other", 5, "", "", "", &len);
        other[kind] = Add(kind, labels, len, Hash(kind, labels, len), 1);
        return other[kind];
    }
    other[kind]->refs++;
    return other[kind];
}

/* The series for these labels, retained: found, made, or `other` past the cap. */
static RAI_KeySeries *Acquire(RAI_SeriesKind kind, char *labels, size_t len) {
    uint64_t hash = Hash(kind, labels, len);
    pthread_mutex_lock(&registry_lock);
    RAI_KeySeries *s = Find(kind, labels, len, hash);
    if (s != NULL) {
        s->refs++;
        RedisModule_Free(labels);
    } else if ((long long)nkeys < RAI_Cfg.metrics_max_keys) {
        s = Add(kind, labels, len, hash, 0);
    } else {
        RedisModule_Free(labels);
        s = Other(kind);
        __atomic_add_fetch(&folded, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&registry_lock);
    return s;
}

void RAI_KeyLinkTo(RAI_KeyLink *link, RAI_SeriesKind kind, const char *key, size_t keylen,
                   const char *backend, const char *device, const char *tag) {
    if (link->key != NULL && link->keylen == keylen && memcmp(link->key, key, keylen) == 0) return;
    size_t len;
    char *labels = LabelText(key, keylen, backend, device, tag, &len);
    RAI_KeySeries *s = Acquire(kind, labels, len);
    RAI_KeyLinkDrop(link);
    link->series = s;
    link->key = RedisModule_Alloc(keylen > 0 ? keylen : 1);
    memcpy(link->key, key, keylen);
    link->keylen = keylen;
}

void RAI_KeyLinkDrop(RAI_KeyLink *link) {
    if (link->series != NULL) {
        pthread_mutex_lock(&registry_lock);
        Release(link->series);
        pthread_mutex_unlock(&registry_lock);
    }
    RedisModule_Free(link->key);
    link->series = NULL;
    link->key = NULL;
    link->keylen = 0;
}

/* ---------------------------------------------------------------- counts */

void RAI_KeySeriesCountRun(RAI_KeySeries *s, const RAI_RunRecord *run) {
    __atomic_add_fetch(&s->runs, 1, __ATOMIC_RELAXED);
    if (run->started) RAI_HistogramObserve(&s->queue_wait, &RAI_LatencyBounds, run->queue_wait_us);
    if (run->failed) {
        __atomic_add_fetch(&s->errors, 1, __ATOMIC_RELAXED);
        return;
    }
    if (run->samples > 0) __atomic_add_fetch(&s->samples, (uint64_t)run->samples, __ATOMIC_RELAXED);
    if (run->started) RAI_HistogramObserve(&s->execution, &RAI_LatencyBounds, run->execution_us);
}

void RAI_KeySeriesCountCall(RAI_KeySeries *s) { __atomic_add_fetch(&s->runs, 1, __ATOMIC_RELAXED); }

/* --------------------------------------------------------------- readers */

void RAI_KeySeriesListTake(RAI_KeySeriesList *list) {
    pthread_mutex_lock(&registry_lock);
    list->n = 0;
    list->series = RedisModule_Alloc(sizeof(RAI_KeySeries *) * (nseries > 0 ? nseries : 1));
    for (size_t i = 0; i < nbuckets; i++) {
        for (RAI_KeySeries *s = table[i]; s != NULL; s = s->next) {
            s->refs++;
            list->series[list->n++] = s;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

void RAI_KeySeriesListDrop(RAI_KeySeriesList *list) {
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < list->n; i++) Release(list->series[i]);
    pthread_mutex_unlock(&registry_lock);
    RedisModule_Free(list->series);
    list->series = NULL;
    list->n = 0;
}

void RAI_KeyMetricsFigures(size_t *keys, uint64_t *folded_keys) {
    pthread_mutex_lock(&registry_lock);
    *keys = nkeys;
    pthread_mutex_unlock(&registry_lock);
    *folded_keys = __atomic_load_n(&folded, __ATOMIC_RELAXED);
}
