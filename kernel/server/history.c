/* The input history that history_request reads (tail, range, search). */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/server/sv_internal.h"

void sv_hist_init(sv_history *h)
{
    memset(h, 0, sizeof *h);
    h->session = 1;
    h->max_bytes = SV_HIST_MAX_BYTES;
}

static size_t entry_bytes(const sv_hist_entry *e)
{
    return strlen(e->input) + (e->output ? strlen(e->output) : 0);
}

static void forget_oldest(sv_history *h)
{
    size_t drop = 0, bytes = h->bytes;
    while (h->n - drop > 1 && bytes > h->max_bytes) {
        bytes -= entry_bytes(&h->items[drop]);
        free(h->items[drop].input);
        free(h->items[drop].output);
        drop++;
    }
    if (!drop) return;
    memmove(h->items, h->items + drop, (h->n - drop) * sizeof *h->items);
    h->n -= drop, h->bytes = bytes;
}

void sv_hist_clear(sv_history *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].input);
        free(h->items[i].output);
    }
    free(h->items);
    sv_hist_init(h);
}

int sv_hist_add(sv_history *h, int line, const char *input, const char *output)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        sv_hist_entry *items = realloc(h->items, cap * sizeof *items);
        if (!items) return -1;
        h->items = items, h->cap = cap;
    }
    sv_hist_entry e = {line, strdup(input), output ? strdup(output) : NULL};
    if (!e.input || (output && !e.output)) {
        free(e.input);
        free(e.output);
        return -1;
    }
    h->items[h->n++] = e;
    h->bytes += entry_bytes(&e);
    forget_oldest(h);
    return 0;
}

static json_t *entry(const sv_history *h, const sv_hist_entry *e, int output)
{
    if (!output) return json_pack("[i,i,s]", h->session, e->line, e->input);
    return json_pack("[i,i,[s,s?]]", h->session, e->line, e->input, e->output);
}

static long get_int(const json_t *req, const char *key, long dflt)
{
    json_t *v = json_object_get(req, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* Later entries with the same input hide earlier ones (search's `unique`). */
static int repeated_later(const sv_history *h, size_t i, const char *pattern)
{
    for (size_t j = i + 1; j < h->n; j++)
        if (!strcmp(h->items[j].input, h->items[i].input) &&
            !fnmatch(pattern, h->items[j].input, 0))
            return 1;
    return 0;
}

static json_t *search(const sv_history *h, const json_t *req, int output)
{
    json_t *pat = json_object_get(req, "pattern");
    const char *pattern = json_is_string(pat) ? json_string_value(pat) : "*";
    int unique = json_is_true(json_object_get(req, "unique"));
    long n = get_int(req, "n", -1);
    json_t *all = json_array();
    /* Newest first while collecting, so `n` keeps the most recent matches. */
    for (size_t k = h->n; k-- > 0 && (n < 0 || (long)json_array_size(all) < n);) {
        const sv_hist_entry *e = &h->items[k];
        if (fnmatch(pattern, e->input, 0)) continue;
        if (unique && repeated_later(h, k, pattern)) continue;
        json_array_insert_new(all, 0, entry(h, e, output));
    }
    return all;
}

json_t *sv_hist_query(const sv_history *h, const json_t *req)
{
    json_t *type = json_object_get(req, "hist_access_type");
    if (!json_is_string(type)) return NULL;
    const char *t = json_string_value(type);
    int output = json_is_true(json_object_get(req, "output"));
    if (!strcmp(t, "search")) return search(h, req, output);
    json_t *out = json_array();
    if (!strcmp(t, "tail")) {
        long n = get_int(req, "n", 10);
        size_t first = n < 0 || (size_t)n >= h->n ? 0 : h->n - (size_t)n;
        for (size_t i = first; i < h->n; i++)
            json_array_append_new(out, entry(h, &h->items[i], output));
        return out;
    }
    if (!strcmp(t, "range")) {
        /* Session 0 and negative offsets name this kernel's only session. */
        long session = get_int(req, "session", 0);
        long start = get_int(req, "start", 1), stop = get_int(req, "stop", -1);
        if (session > 0 && session != h->session) return out;
        for (size_t i = 0; i < h->n; i++) {
            int line = h->items[i].line;
            if (line >= start && (stop < 0 || line < stop))
                json_array_append_new(out, entry(h, &h->items[i], output));
        }
        return out;
    }
    json_decref(out);
    return NULL;
}
