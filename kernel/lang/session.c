#include "kernel/lang/session.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/lang/value.h"
#include "engine/rng.h"

ss_session *ss_new(cl_err *err)
{
    ss_session *s = calloc(1, sizeof *s);
    if (!s) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    atomic_init(&s->cancel, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ss_seed(s, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
    s->delay = 0.3;
    return s;
}

void ss_clear(ss_session *s)
{
    for (int i = 0; i < s->nvars; i++) {
        free(s->vars[i].name);
        lv_unref(s->vars[i].v);
    }
    free(s->vars);
    s->vars = NULL;
    s->nvars = s->cap = 0;
    lv_unref(s->model);
    s->model = NULL;
    ss_set_labels(s, NULL, 0);
}

void ss_free(ss_session *s)
{
    if (!s) return;
    ss_clear(s);
    json_decref(s->payload);
    free(s);
}

static int find(const ss_session *s, const char *name)
{
    for (int i = 0; i < s->nvars; i++)
        if (!strcmp(s->vars[i].name, name)) return i;
    return -1;
}

lv_value *ss_get(const ss_session *s, const char *name)
{
    int i = find(s, name);
    return i < 0 ? NULL : s->vars[i].v;
}

int ss_set(ss_session *s, const char *name, lv_value *v, cl_err *err)
{
    int i = find(s, name);
    if (i >= 0) {
        lv_unref(s->vars[i].v);
        s->vars[i].v = v;
        return 0;
    }
    if (s->nvars == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        ss_var *d = realloc(s->vars, (size_t)cap * sizeof *d);
        if (!d) {
            lv_unref(v);
            return cl_err_set(err, CL_ENOMEM, "out of memory");
        }
        s->vars = d;
        s->cap = cap;
    }
    char *n = strdup(name);
    if (!n) {
        lv_unref(v);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    s->vars[s->nvars].name = n;
    s->vars[s->nvars].v = v;
    s->nvars++;
    return 0;
}

int ss_var_count(const ss_session *s)
{
    return s->nvars;
}

const char *ss_var_name(const ss_session *s, int i)
{
    return s->vars[i].name;
}

int ss_set_labels(ss_session *s, char **labels, int n)
{
    for (int i = 0; i < s->nlabels; i++) free(s->labels[i]);
    free(s->labels);
    s->labels = labels;
    s->nlabels = n;
    return 0;
}

/* Compares a label synonym (trimmed) with a name, ignoring case, '_' = ' '. */
static int same_name(const char *a, size_t alen, const char *b)
{
    while (alen && isspace((unsigned char)*a)) a++, alen--;
    while (alen && isspace((unsigned char)a[alen - 1])) alen--;
    if (strlen(b) != alen) return 0;
    for (size_t i = 0; i < alen; i++) {
        char x = a[i] == '_' ? ' ' : (char)tolower((unsigned char)a[i]);
        char y = b[i] == '_' ? ' ' : (char)tolower((unsigned char)b[i]);
        if (x != y) return 0;
    }
    return 1;
}

int ss_find_label(const ss_session *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++) {
        const char *p = s->labels[i];
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (same_name(p, len, name)) return i;
            if (!comma) break;
            p = comma + 1;
        }
    }
    return -1;
}

void ss_seed(ss_session *s, uint64_t seed)
{
    rng_xoshiro_seed(s->rng, seed);
}

uint64_t ss_rand_u64(ss_session *s)
{
    return rng_xoshiro_next(s->rng);
}

double ss_rand_uniform(ss_session *s)
{
    return (double)(ss_rand_u64(s) >> 11) * 0x1.0p-53;
}

double ss_rand_normal(ss_session *s)
{
    double u = 1.0 - ss_rand_uniform(s), v = ss_rand_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

cl_progress ss_progress(ss_session *s)
{
    cl_progress p = {.fn = NULL, .ctx = NULL, .cancel = &s->cancel};
    return p;
}

int ss_cancelled(ss_session *s)
{
    return atomic_load(&s->cancel) != 0;
}

int ss_check_interrupt(ss_session *s, cl_err *err)
{
    return ss_cancelled(s) ? cl_err_set(err, CL_EINTERRUPT, "interrupted by the user") : 0;
}

int ss_sleep(ss_session *s, double seconds, cl_err *err)
{
    /* Short naps, so an interrupt stops the pause within 20 ms. */
    while (seconds > 0) {
        if (ss_check_interrupt(s, err)) return -1;
        double nap = seconds < 0.02 ? seconds : 0.02;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(nap * 1e9)};
        nanosleep(&ts, NULL);
        seconds -= nap;
    }
    return ss_check_interrupt(s, err);
}

void ss_stream(ss_session *s, const char *name, const char *text)
{
    if (!s->out || !s->out->stream) return;
    /* The protocol carries UTF-8 only: text from a legacy-encoded file is
     * passed with its other bytes as '?'. */
    json_t *j = lv_json_string(text);
    s->out->stream(s->out->ctx, name, json_string_value(j) ? json_string_value(j) : "");
    json_decref(j);
}

void ss_display(ss_session *s, json_t *bundle, const char *display_id, int update)
{
    if (!s->out || !s->out->display) return;
    char live[sizeof s->live_id];
    if (!display_id && !update && s->live_id[0]) {
        memcpy(live, s->live_id, sizeof live);
        s->live_id[0] = '\0';
        s->live_end[0] = '\0';
        display_id = live;
        update = 1;
    }
    json_t *meta = lv_bundle_meta(bundle);
    s->out->display(s->out->ctx, bundle, meta, display_id, update);
    json_decref(meta);
}

void ss_new_display_id(ss_session *s, char *buf, size_t n)
{
    snprintf(buf, n, "lens-%ld-%d", (long)getpid(), ++s->display_seq);
}

void ss_live_end(ss_session *s)
{
    if (s->live_id[0] && s->live_end[0]) {
        json_t *b = json_pack("{s:s}", "text/plain", s->live_end);
        if (b) ss_display(s, b, s->live_id, 1);
        json_decref(b);
    }
    s->live_end[0] = '\0';
}
