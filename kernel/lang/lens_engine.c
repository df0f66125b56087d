#include "kernel/lang/lens_engine.h"
#include "engine/io/base64.h"

#include "kernel/lang/picture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

net *le_model(lc_call *c, cl_err *err)
{
    lv_value *mv = lc_get(c, "model");
    if (!mv) mv = c->s->model;
    if (!mv || mv->kind != LV_MODEL || !mv->obj) {
        cl_err_set(err, CL_EINVAL, "%s needs a model: load one first, e.g. `m = model fashion`",
                   c->verb->name);
        return NULL;
    }
    return mv->obj;
}

static int is_pool(const char *type)
{
    return strstr(type, "pool") != NULL;
}

int le_default_layer(const net *m)
{
    /* The lecture's layer for VGG16 is its last max pool, features_30. */
    if (!strcmp(net_arch(m), "vgg16")) return net_find(m, "features.30", NULL);
    int best = -1;
    for (int i = 0; i < net_node_count(m); i++) {
        net_node_info info;
        if (net_node_info_get(m, i, &info) < 0) continue;
        if (info.ndim == 4 && info.shape[2] > 1 && info.shape[3] > 1 && !is_pool(info.type) &&
            strcmp(info.type, "dropout"))
            best = i;
    }
    return best;
}

int le_layer(lc_call *c, net *m, const char *opt, cl_err *err)
{
    const char *name = lc_text(c, opt);
    if (!name) {
        int l = le_default_layer(m);
        if (l < 0)
            cl_err_set(err, CL_EINVAL, "%s: this model has no layer with feature maps",
                       c->verb->name);
        return l;
    }
    int l = net_find(m, name, err);
    if (l < 0) lc_arg_error(c, opt, err, err->code, "%s: %s", c->verb->name, err->msg);
    return l;
}

const char *le_label(const ss_session *s, int cls)
{
    return cls >= 0 && cls < s->nlabels ? s->labels[cls] : NULL;
}

int le_class(lc_call *c, net *m, const char *opt, int *cls, cl_err *err)
{
    lv_value *v = lc_get(c, opt);
    *cls = -1;
    if (!v) return 0;
    int n = net_num_classes(m);
    if (v->kind == LV_NUM) {
        if (v->num < 0 || v->num >= n)
            return lc_arg_error(c, opt, err, CL_EINVAL,
                                "%s: class %g is out of range: this model has classes 0..%d",
                                c->verb->name, v->num, n - 1);
        *cls = (int)v->num;
        return 0;
    }
    int k = ss_find_label(c->s, v->str);
    if (k < 0) {
        if (!c->s->nlabels)
            return lc_arg_error(c, opt, err, CL_ENAME,
                                "%s: no class called '%s' (no labels loaded: use a number, or "
                                "`labels \"file.txt\"`)",
                                c->verb->name, v->str);
        return lc_arg_error(c, opt, err, CL_ENAME, "%s: no class called '%s' among the %d labels",
                            c->verb->name, v->str, c->s->nlabels);
    }
    if (k >= n)
        return lc_arg_error(c, opt, err, CL_EINVAL,
                            "%s: class '%s' (%d) is not one of this model's %d classes",
                            c->verb->name, v->str, k, n);
    *cls = k;
    return 0;
}

int le_input(lc_call *c, net *m, const char *arg, tn_tensor *view, cl_err *err)
{
    const lv_value *v = lc_get(c, arg);
    const tn_tensor *t = v->t;
    int64_t want[3];
    net_input_shape(m, want);
    int nd = t->ndim;
    int ok = (nd == 3 || (nd == 4 && t->shape[0] == 1) || (nd == 2 && want[0] == 1));
    int64_t C = nd >= 3 ? t->shape[nd - 3] : 1, H = t->shape[nd - 2], W = t->shape[nd - 1];
    if (!ok || C != want[0] || H != want[1] || W != want[2]) {
        char got[64];
        tn_shape_str(t, got, sizeof got);
        return lc_arg_error(
            c, arg, err, CL_EINVAL, "%s: the model takes %lldx%lldx%lld images, %s is %s%s",
            c->verb->name, (long long)want[0], (long long)want[1], (long long)want[2], arg, got,
            want[1] == 224 ? " (try `image \"photo.jpg\" preprocess imagenet`)" : "");
    }
    memset(view, 0, sizeof *view);
    view->ndim = 4;
    int64_t shape[4] = {1, C, H, W};
    memcpy(view->shape, shape, sizeof shape);
    view->stride[3] = 1;
    view->stride[2] = W;
    view->stride[1] = H * W;
    view->stride[0] = C * H * W;
    view->data = t->data;
    view->cap = 0;
    return 0;
}

const tn_tensor *le_forward(lc_call *c, net *m, const char *arg, cl_err *err)
{
    tn_tensor x;
    if (le_input(c, m, arg, &x, err) < 0) return NULL;
    if (net_forward(m, &x, err) < 0) return NULL;
    return net_output(m);
}

void le_valid_range(const net *m, float *lo, float *hi)
{
    int64_t chw[3];
    net_input_shape(m, chw);
    if (chw[0] == 3) { /* the widest channel bounds of (0 - mean) / std and (1 - mean) / std */
        *lo = (0.0f - 0.485f) / 0.229f;
        *hi = (1.0f - 0.406f) / 0.225f;
    } else {
        *lo = 0.0f;
        *hi = 1.0f;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void live_show(le_live *L, const char *text)
{
    json_t *b = json_pack("{s:s}", "text/plain", text);
    ss_display(L->c->s, b, L->id, L->shown);
    json_decref(b);
    L->shown = 1;
}

static void live_fn(void *ctx, long done, long total, const char *what)
{
    le_live *L = ctx;
    if (L->pictured) return; /* the picture carries its own step count */
    double t = now();
    if (L->shown && t - L->last < 0.1 && done < total) return;
    L->last = t;
    char bar[32], text[512];
    int width = 20, k = total > 0 ? (int)(width * done / total) : 0;
    for (int i = 0; i < width; i++) bar[i] = i < k ? '#' : '.';
    bar[width] = '\0';
    snprintf(text, sizeof text, "%s [%s] %ld/%ld %s", L->verb, bar, done, total, what ? what : "");
    live_show(L, text);
}

cl_progress le_live_start(le_live *L, lc_call *c)
{
    memset(L, 0, sizeof *L);
    L->c = c;
    L->verb = c->verb->name;
    ss_new_display_id(c->s, L->id, sizeof L->id);
    cl_progress p = {.fn = live_fn, .ctx = L, .cancel = &c->s->cancel};
    return p;
}

void le_live_finish(le_live *L, const char *text)
{
    ss_session *s = L->c->s;
    s->live_end[0] = '\0';
    if (!L->shown || !text) return;
    if (L->pictured)
        snprintf(s->live_end, sizeof s->live_end, "%s", text);
    else
        live_show(L, text);
    snprintf(s->live_id, sizeof s->live_id, "%s", L->id);
}

int le_live_watched(const lc_call *c)
{
    return c->s->delay > 0.0;
}

void le_live_picture(le_live *L, const uint8_t *png, size_t len, const char *text)
{
    char *b64 = b64_encode(png, len, NULL);
    json_t *b = b64 ? json_pack("{s:s, s:s}", "image/png", b64, "text/plain", text) : NULL;
    free(b64);
    if (!b) return; /* out of memory: the live picture is a nicety, the run goes on */
    ss_display(L->c->s, b, L->id, L->shown);
    json_decref(b);
    L->shown = 1;
    L->pictured = 1;
}

void le_set_layer_names(lv_value *model, const net *m)
{
    int n = net_node_count(m);
    char **names = calloc((size_t)n + 8, sizeof *names);
    if (!names) return;
    int k = 0;
    for (int i = 0; i < n; i++) {
        net_node_info info;
        if (net_node_info_get(m, i, &info) < 0 || !info.name) continue;
        /* "layer4.1.conv2" also offers its block "layer4" (a ResNet alias). */
        if (!strncmp(info.name, "layer", 5) && strchr(info.name, '.')) {
            size_t len = (size_t)(strchr(info.name, '.') - info.name);
            int seen = 0;
            for (int j = 0; j < k; j++)
                seen |= strlen(names[j]) == len && !strncmp(names[j], info.name, len);
            if (!seen && k < n + 8) {
                char *a = strndup(info.name, len);
                if (a && net_find(m, a, NULL) >= 0)
                    names[k++] = a;
                else
                    free(a);
            }
        }
        if (k < n + 8 && (names[k] = strdup(info.name))) k++;
    }
    model->names = names;
    model->nnames = k;
}

int *le_units(lc_call *c, const char *arg, int limit, int *n, cl_err *err)
{
    lv_value *v = lc_get(c, arg);
    int64_t lo = 0, hi = 0;
    if (v->kind == LV_NUM)
        lo = hi = (int64_t)v->num;
    else
        lo = v->lo, hi = v->hi;
    if (lo < 0 || hi >= limit) {
        lc_arg_error(c, arg, err, CL_EINVAL, "%s: %s must be within 0..%d", c->verb->name, arg,
                     limit - 1);
        return NULL;
    }
    if (hi - lo + 1 > 64) {
        lc_arg_error(c, arg, err, CL_EINVAL, "%s: at most 64 at once (%lld asked)", c->verb->name,
                     (long long)(hi - lo + 1));
        return NULL;
    }
    *n = (int)(hi - lo + 1);
    int *u = malloc((size_t)*n * sizeof *u);
    if (!u) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < *n; i++) u[i] = (int)lo + i;
    return u;
}
