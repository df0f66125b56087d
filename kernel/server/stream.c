/* Stream batching: many small prints become one IOPub message (front ends
 * render each message), yet nothing waits long: a batch goes out when it
 * grows large, when other output must keep its place after it, or, from the
 * flusher thread, when it is SV_STREAM_MAX_AGE old (a print before a long
 * computation shows at once). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel/server/sv_internal.h"

#define SV_STREAM_MAX_BYTES  65536
#define SV_STREAM_MAX_AGE_NS 50000000L

static void now_plus(struct timespec *ts, long ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += ns;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static int reached(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Publishing under the lock keeps the order: whoever flushes next waits. */
static void flush_locked(sv_server *s)
{
    sv_stream *st = &s->stream;
    if (!st->len) return;
    json_t *text = json_stringn(st->buf, st->len);
    if (!text) text = json_string("(output that is not valid UTF-8 was dropped)\n");
    if (st->parent)
        sv_publish(s, st->parent, "stream", json_pack("{s:s,s:o}", "name", st->name, "text", text));
    else
        json_decref(text);
    st->len = 0;
}

static void *flusher_main(void *arg)
{
    sv_server *s = arg;
    sv_stream *st = &s->stream;
    pthread_mutex_lock(&st->lock);
    while (!st->stop) {
        if (!st->len) {
            pthread_cond_wait(&st->cond, &st->lock);
            continue;
        }
        struct timespec due = st->due;
        int rc = pthread_cond_timedwait(&st->cond, &st->lock, &due);
        if ((rc == ETIMEDOUT || reached(&st->due)) && st->len) flush_locked(s);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

int sv_stream_start(sv_server *s)
{
    sv_stream *st = &s->stream;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&st->thread, NULL, flusher_main, s)) return -1;
    st->running = 1;
    return 0;
}

void sv_stream_stop(sv_server *s)
{
    sv_stream *st = &s->stream;
    if (st->running) {
        pthread_mutex_lock(&st->lock);
        st->stop = 1;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
        st->running = 0;
    }
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st->buf);
    st->buf = NULL;
}

void sv_stream_begin(sv_server *s, const kp_msg *parent)
{
    pthread_mutex_lock(&s->stream.lock);
    s->stream.parent = parent;
    s->stream.len = 0;
    pthread_mutex_unlock(&s->stream.lock);
}

void sv_stream_flush(sv_server *s)
{
    pthread_mutex_lock(&s->stream.lock);
    flush_locked(s);
    pthread_mutex_unlock(&s->stream.lock);
}

void sv_stream_end(sv_server *s)
{
    pthread_mutex_lock(&s->stream.lock);
    flush_locked(s);
    s->stream.parent = NULL;
    pthread_mutex_unlock(&s->stream.lock);
}

static int grow(sv_stream *st, size_t need)
{
    if (need <= st->cap) return 0;
    size_t cap = need * 2;
    char *b = realloc(st->buf, cap);
    if (!b) return -1;
    st->buf = b, st->cap = cap;
    return 0;
}

void sv_stream_write(sv_server *s, const char *name, const char *text)
{
    sv_stream *st = &s->stream;
    const char *n = strcmp(name, "stderr") ? "stdout" : "stderr";
    size_t add = strlen(text);
    pthread_mutex_lock(&st->lock);
    if (st->len && strcmp(st->name, n)) flush_locked(s);
    if (grow(st, st->len + add)) {
        flush_locked(s); /* out of memory: send this text on its own */
        if (st->parent)
            sv_publish(s, st->parent, "stream", json_pack("{s:s,s:s}", "name", n, "text", text));
        pthread_mutex_unlock(&st->lock);
        return;
    }
    if (!st->len) {
        now_plus(&st->due, SV_STREAM_MAX_AGE_NS);
        pthread_cond_signal(&st->cond);
    }
    snprintf(st->name, sizeof st->name, "%s", n);
    memcpy(st->buf + st->len, text, add);
    st->len += add;
    if (st->len >= SV_STREAM_MAX_BYTES) flush_locked(s);
    pthread_mutex_unlock(&st->lock);
}
