/* threads — one job at a time: the caller posts it under a mutex, wakes the
 * workers, runs its own part and waits until every worker has reported.
 * Workers and the caller spin briefly before sleeping: a forward pass posts
 * a job every few tens of microseconds, and a condition variable's wake-up
 * costs about as much as a small job. */
#include "engine/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Polls of an atomic before sleeping: some tens of microseconds. */
#define TH_SPIN 20000

static struct {
    pthread_mutex_t mu, entry;
    pthread_cond_t go, done;
    pthread_once_t once;
    int workers, wanted; /* running workers; threads to use (workers + caller) */
    atomic_uint gen;     /* bumped per job */
    atomic_int pending;
    int parts;
    int64_t n;
    th_task task;
    void *ctx;
} pool = {PTHREAD_MUTEX_INITIALIZER,
          PTHREAD_MUTEX_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          PTHREAD_ONCE_INIT,
          0,
          0,
          0,
          0,
          0,
          0,
          NULL,
          NULL};

static void run_part(th_task task, void *ctx, int64_t n, int parts, int i)
{
    int64_t lo = n * i / parts, hi = n * (i + 1) / parts;
    if (lo < hi) task(ctx, lo, hi);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        for (int i = 0; i < TH_SPIN && atomic_load(&pool.gen) == seen; i++) continue;
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.gen) == seen) pthread_cond_wait(&pool.go, &pool.mu);
        seen = atomic_load(&pool.gen);
        th_task task = pool.task;
        void *ctx = pool.ctx;
        int64_t n = pool.n;
        int parts = pool.parts;
        pthread_mutex_unlock(&pool.mu);
        if (id < parts) run_part(task, ctx, n, parts, id);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

static void start(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("CNNLENS_THREADS"); /* for benchmarks and tests */
    if (env && atoi(env) > 0) cpus = atoi(env);
    int want = cpus < 1 ? 1 : cpus > TH_MAX ? TH_MAX : (int)cpus;
    if (!pool.wanted) pool.wanted = want;
    for (int i = 1; i < want; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)i);
        pthread_attr_destroy(&attr);
        if (rc) break; /* fewer threads: loops still run, just less split */
        pool.workers++;
    }
}

int th_count(void)
{
    pthread_once(&pool.once, start);
    int w = pool.wanted < pool.workers + 1 ? pool.wanted : pool.workers + 1;
    return w < 1 ? 1 : w;
}

void th_set_count(int n)
{
    pthread_once(&pool.once, start);
    pthread_mutex_lock(&pool.entry);
    pool.wanted = n < 1 ? 1 : n;
    pthread_mutex_unlock(&pool.entry);
}

void th_parallel(int64_t n, int64_t grain, th_task task, void *ctx)
{
    if (n <= 0) return;
    int threads = th_count();
    int64_t by_grain = grain > 0 ? n / grain : n;
    int parts = by_grain < threads ? (int)by_grain : threads;
    if (parts <= 1 || pthread_mutex_trylock(&pool.entry) != 0) {
        task(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.task = task, pool.ctx = ctx, pool.n = n, pool.parts = parts;
    atomic_store(&pool.pending, pool.workers);
    atomic_fetch_add(&pool.gen, 1);
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    run_part(task, ctx, n, parts, 0);
    for (int i = 0; i < TH_SPIN && atomic_load(&pool.pending) > 0; i++) continue;
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.entry);
}
