#include "engine/io/weights.h"

#include <stdlib.h>
#include <string.h>

#include "engine/io/filemap.h"
#include "engine/io/pth.h"
#include "engine/io/safetensors.h"
#include "engine/io/wt_private.h"
#include "engine/limits.h"

wt_dict *wt_new(cl_err *err)
{
    wt_dict *d = calloc(1, sizeof *d);
    if (!d) cl_err_set(err, CL_ENOMEM, "out of memory");
    return d;
}

int wt_append_owned(wt_dict *d, char *name, tn_tensor *t, cl_err *err)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        wt_entry *items = realloc(d->items, cap * sizeof *items);
        if (!items) {
            free(name);
            tn_free(t);
            return cl_err_set(err, CL_ENOMEM, "out of memory");
        }
        d->items = items;
        d->cap = cap;
    }
    d->items[d->count].name = name;
    d->items[d->count].t = t;
    d->count++;
    return 0;
}

int wt_add(wt_dict *d, const char *name, tn_tensor *t, cl_err *err)
{
    if (wt_get(d, name)) {
        tn_free(t);
        return cl_err_set(err, CL_EINVAL, "the weights already hold a tensor named '%s'", name);
    }
    char *copy = strdup(name);
    if (!copy) {
        tn_free(t);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    return wt_append_owned(d, copy, t, err);
}

const tn_tensor *wt_get(const wt_dict *d, const char *name)
{
    for (size_t i = 0; i < d->count; i++)
        if (!strcmp(d->items[i].name, name)) return d->items[i].t;
    return NULL;
}

void wt_free(wt_dict *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].name);
        tn_free(d->items[i].t);
    }
    free(d->items);
    free(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int wt_check_unique(const char *const *names, size_t n, cl_err *err)
{
    if (n < 2) return 0;
    const char **s = malloc(n * sizeof *s);
    if (!s) return cl_err_set(err, CL_ENOMEM, "out of memory");
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(s[i - 1], s[i]))
            rc = cl_err_set(err, CL_EFORMAT, "the tensor name '%s' appears twice", s[i]);
    free(s);
    return rc;
}

static int starts_with(const fm_map *m, const char *magic, size_t n)
{
    return m->size >= n && !memcmp(m->data, magic, n);
}

wt_dict *wt_load(const char *path, cl_err *err)
{
    fm_map m;
    if (fm_open(&m, path, err)) return NULL;
    /* Before reading: the file is mapped, not yet in memory. */
    wt_dict *d =
        lim_check(LIM_MODEL_BYTES, (double)m.size, "the weight file", err) ? NULL : wt_new(err);
    int rc = -1;
    if (d) {
        if (starts_with(&m, "PK\x03\x04", 4) || starts_with(&m, "PK\x05\x06", 4))
            rc = pth_load_zip(&m, d, err);
        else if (pth_is_legacy(&m))
            rc = pth_load_legacy(&m, d, err);
        else if (m.size >= 9 && st_looks_like(&m))
            rc = st_load(&m, d, err);
        else
            rc = cl_err_set(err, CL_EFORMAT,
                            "not a weights file: expected a PyTorch .pth (zip or legacy) or a "
                            ".safetensors file");
    }
    if (!rc) rc = fm_check(&m, err);
    fm_close(&m);
    if (rc) {
        cl_err_prefix(err, "'%s'", path);
        wt_free(d);
        return NULL;
    }
    return d;
}

int wt_save_safetensors(const wt_dict *d, const char *path, cl_err *err)
{
    if (st_save(d, path, err)) return cl_err_prefix(err, "'%s'", path);
    return 0;
}
