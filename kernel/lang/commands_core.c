/* The engine-free verbs: the language itself (print, help, seed, expect,
 * show, vars, labels, save, load) and matrices (conv, pool, sum, ...). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/atomic_file.h"
#include "engine/io/npy.h"
#include "engine/render.h"
#include "engine/train.h"
#include "engine/io/png.h"
#include "kernel/lang/commands.h"
#include "kernel/lang/eval.h"
#include "kernel/lang/picture.h"

static int oom(cl_err *err)
{
    return cl_err_set(err, CL_ENOMEM, "out of memory");
}

/* ---- language ----------------------------------------------------------- */

static int append_text(char **buf, size_t *len, const char *s)
{
    size_t k = strlen(s);
    char *d = realloc(*buf, *len + k + 2);
    if (!d) return -1;
    memcpy(d + *len, s, k);
    *len += k;
    d[*len] = '\0';
    *buf = d;
    return 0;
}

/* print and eprint: the values as text, separated by spaces, one line. */
static int print_to(lc_call *c, const char *stream, cl_err *err)
{
    char *line = NULL;
    size_t len = 0;
    lv_value *vals[1 + LC_MAXREST];
    int n = 0;
    if (c->v[0]) vals[n++] = c->v[0];
    for (int i = 0; i < c->nrest; i++) vals[n++] = c->rest[i];
    for (int i = 0; i < n; i++) {
        char *t = lv_text(vals[i]);
        if (!t || (i && append_text(&line, &len, " ") < 0) || append_text(&line, &len, t) < 0) {
            free(t);
            free(line);
            return oom(err);
        }
        free(t);
    }
    if (append_text(&line, &len, "\n") < 0) {
        free(line);
        return oom(err);
    }
    ss_stream(c->s, stream, line);
    free(line);
    return 0;
}

static int do_print(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    return print_to(c, "stdout", err);
}

static int do_help(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    const char *topic = lc_text(c, "topic");
    char *text;
    if (topic) {
        const lc_verb *v = lc_find(topic);
        if (!v) {
            const char *near = lc_nearest_verb(topic);
            if (near)
                return lc_arg_error(c, "topic", err, CL_ENAME,
                                    "no command called '%s' \xe2\x80\x94 did you mean '%s'?", topic,
                                    near);
            return lc_arg_error(c, "topic", err, CL_ENAME,
                                "no command called '%s' (type `help` for the list)", topic);
        }
        text = lc_help(v);
    } else {
        text = lc_help_all();
    }
    if (!text) return oom(err);
    json_t *page =
        json_pack("{s:s, s:{s:s}, s:i}", "source", "page", "data", "text/plain", text, "start", 0);
    free(text);
    if (!page) return oom(err);
    if (!c->s->payload) c->s->payload = json_array();
    json_array_append_new(c->s->payload, page);
    return 0;
}

static int do_seed(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    double n = lc_num(c, "n", 0);
    if (n < 0) return lc_arg_error(c, "n", err, CL_EINVAL, "seed: n must be 0 or more");
    ss_seed(c->s, (uint64_t)n);
    return 0;
}

static char *short_text(const lv_value *v)
{
    char *t = lv_text(v);
    if (!t) return NULL;
    /* One line for messages: newlines become "; ", long texts are cut. */
    for (char *p = t; *p; p++)
        if (*p == '\n') *p = ';';
    if (strlen(t) > 120) strcpy(t + 117, "...");
    return t;
}

static const char *cmp_text(int op)
{
    switch (op) {
    case LT_EQ:
        return "==";
    case LT_NE:
        return "!=";
    case LT_LT:
        return "<";
    case LT_LE:
        return "<=";
    case LT_GT:
        return ">";
    case LT_GE:
        return ">=";
    case LT_APPROX:
        return "~=";
    }
    return "?";
}

static int is_cmp_op(int op)
{
    return op == LT_EQ || op == LT_NE || op == LT_LT || op == LT_LE || op == LT_GT || op == LT_GE ||
           op == LT_APPROX;
}

/* Largest |a - b| over matching elements; -1 when shapes differ. */
static double max_diff(const lv_value *a, const lv_value *b)
{
    if (a->kind == LV_NUM && b->kind == LV_NUM) return fabs(a->num - b->num);
    if (!lv_is_array(a) && a->kind != LV_NUM) return -1;
    if (!lv_is_array(b) && b->kind != LV_NUM) return -1;
    int64_t na = a->kind == LV_NUM ? 1 : tn_numel(a->t),
            nb = b->kind == LV_NUM ? 1 : tn_numel(b->t);
    if (na != nb && na != 1 && nb != 1) return -1;
    if (lv_is_array(a) && lv_is_array(b) && na == nb && !ev_same_squeezed(a->t, b->t)) return -1;
    int64_t n = na > nb ? na : nb;
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a->kind == LV_NUM ? a->num : a->t->data[na == 1 ? 0 : i];
        double y = b->kind == LV_NUM ? b->num : b->t->data[nb == 1 ? 0 : i];
        double d = fabs(x - y);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* A number or string written as such: its value needs no repeating. */
static int is_literal(const ps_node *n)
{
    if (n->kind == PN_NEG) n = n->kid[0];
    if (n->kind == PN_MATRIX) {
        for (int i = 0; i < n->nkid; i++)
            if (!is_literal(n->kid[i])) return 0;
        return 1;
    }
    return n->kind == PN_NUM || n->kind == PN_STR;
}

static int do_expect(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    ev_ctx *E = c->ev;
    const ps_node *e = c->node->nkid ? c->node->kid[0] : NULL;
    if (!e || e->kind != PN_BIN || !is_cmp_op(e->op))
        return cl_err_set(err, CL_EINVAL,
                          "expect needs a comparison, e.g. `expect top1 x == 331` or "
                          "`expect s ~= 0.5 tolerance 0.01`");
    lv_value *a = ev_eval(E, e->kid[0]);
    if (!a) return -1;
    lv_value *b = ev_eval(E, e->kid[1]);
    if (!b) {
        lv_unref(a);
        return -1;
    }
    double tol = lc_get(c, "tol") ? lc_num(c, "tol", 1e-6) : lc_num(c, "tolerance", 1e-6);
    int ok;
    if (e->op == LT_APPROX) {
        double d = max_diff(a, b);
        if (d < 0) {
            const char *ta = lv_type_name(a), *tb = lv_type_name(b);
            lv_unref(a);
            lv_unref(b);
            return cl_err_set(err, CL_ETYPE, "expect: cannot compare %s with %s", ta, tb);
        }
        ok = d <= tol;
    } else {
        lv_value *r = ev_binary(e->op, a, b, err);
        if (!r) {
            lv_unref(a);
            lv_unref(b);
            E->where.line = e->opline;
            E->where.col = e->opcol;
            return cl_err_prefix(err, "expect");
        }
        ok = r->num != 0;
        lv_unref(r);
    }
    if (!ok) {
        const char *src = c->s->src;
        char *ta = short_text(a), *tb = short_text(b);
        int la = (int)(e->kid[0]->end - e->kid[0]->off),
            lb = (int)(e->kid[1]->end - e->kid[1]->off);
        const char *sa = src ? src + e->kid[0]->off : "left",
                   *sb = src ? src + e->kid[1]->off : "right";
        if (!src) la = 4, lb = 5;
        char tolbuf[64] = "";
        if (e->op == LT_APPROX) snprintf(tolbuf, sizeof tolbuf, " (tolerance %g)", tol);
        if (is_literal(e->kid[1]))
            cl_err_set(err, CL_ECHECK, "expected %.*s %s %.*s%s, but %.*s is %s", la, sa,
                       cmp_text(e->op), lb, sb, tolbuf, la, sa, ta ? ta : "?");
        else
            cl_err_set(err, CL_ECHECK, "expected %.*s %s %.*s%s, but %.*s is %s and %.*s is %s", la,
                       sa, cmp_text(e->op), lb, sb, tolbuf, la, sa, ta ? ta : "?", lb, sb,
                       tb ? tb : "?");
        free(ta);
        free(tb);
        E->where.line = e->line;
        E->where.col = e->col;
    }
    lv_unref(a);
    lv_unref(b);
    return ok ? 0 : -1;
}

static int do_show(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    json_t *b = lv_bundle_shown(c->v[0], lc_get(c, "over"), (int)lc_num(c, "size", 0), err);
    if (!b) return -1;
    ss_display(c->s, b, NULL, 0);
    json_decref(b);
    return 0;
}

static int do_vars(lc_call *c, lv_value **out, cl_err *err)
{
    static const char *head[] = {"name", "type", "value"};
    lv_table *t = lv_table_new(3, head);
    if (!t) return oom(err);
    for (int i = 0; i < ss_var_count(c->s); i++) {
        const char *name = ss_var_name(c->s, i);
        const lv_value *v = ss_get(c->s, name);
        char *text = short_text(v);
        if (text && strlen(text) > 60) strcpy(text + 57, "...");
        const char *cells[3] = {name, lv_type_name(v), text ? text : ""};
        int r = lv_table_add(t, cells, NULL);
        free(text);
        if (r < 0) {
            lv_table_free(t);
            return oom(err);
        }
    }
    return (*out = lv_table_value(t)) ? 0 : oom(err);
}

static int show_labels(lc_call *c, lv_value **out, cl_err *err)
{
    static const char *head[] = {"class", "label"};
    lv_table *t = lv_table_new(2, head);
    if (!t) return oom(err);
    for (int i = 0; i < c->s->nlabels; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        const char *cells[2] = {num, c->s->labels[i]};
        double nums[2] = {i, NAN};
        if (lv_table_add(t, cells, nums) < 0) {
            lv_table_free(t);
            return oom(err);
        }
    }
    return (*out = lv_table_value(t)) ? 0 : oom(err);
}

static int do_labels(lc_call *c, lv_value **out, cl_err *err)
{
    const char *path = lc_text(c, "path");
    if (!path) return show_labels(c, out, err);
    FILE *f = fopen(path, "r");
    if (!f)
        return lc_arg_error(c, "path", err, CL_EIO, "labels: cannot open '%s': %s", path,
                            strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t k = strlen(line);
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **d = realloc(v, (size_t)cap * sizeof *d);
            if (!d) break;
            v = d;
        }
        if (!(v[n] = strdup(line))) break;
        n++;
    }
    int bad = ferror(f) || !feof(f);
    fclose(f);
    while (n && !v[n - 1][0]) free(v[--n]); /* trailing blank lines */
    if (bad || n == 0) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return lc_arg_error(c, "path", err, bad ? CL_ENOMEM : CL_EFORMAT,
                            bad ? "labels: out of memory reading '%s'"
                                : "labels: '%s' has no lines (one class name per line)",
                            path);
    }
    ss_set_labels(c->s, v, n);
    char msg[128];
    snprintf(msg, sizeof msg, "%d class labels\n", n);
    ss_stream(c->s, "stdout", msg);
    return 0;
}

static int do_eprint(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    return print_to(c, "stderr", err);
}

static int do_sleep(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    double t = lc_num(c, "seconds", 0);
    if (t < 0 || t > 3600)
        return lc_arg_error(c, "seconds", err, CL_EINVAL, "sleep: seconds must be 0..3600");
    return ss_sleep(c->s, t, err);
}

static int do_input(lc_call *c, lv_value **out, cl_err *err)
{
    const char *prompt = lc_text(c, "prompt");
    kn_output *o = c->s->out;
    if (!c->s->allow_stdin || !o || !o->input)
        return cl_err_set(err, CL_EIO,
                          "input: this front end does not accept input (allow_stdin is off)");
    char *line = o->input(o->ctx, prompt ? prompt : "", lc_flag(c, "password"));
    if (!line) {
        if (ss_check_interrupt(c->s, err)) return -1;
        return cl_err_set(err, CL_EIO, "input: no answer from the front end");
    }
    *out = lv_str(line);
    free(line);
    return *out ? 0 : oom(err);
}

static int do_clear(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out, (void)err;
    kn_output *o = c->s->out;
    if (o && o->clear) o->clear(o->ctx, lc_flag(c, "wait"));
    return 0;
}

/* ---- save and load ------------------------------------------------------ */

static const char *ext_of(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return dot && (!slash || dot > slash) ? dot : "";
}

static int do_save(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    const lv_value *v = c->v[0];
    const char *path = lc_text(c, "path");
    const char *ext = ext_of(path);
    if (v->kind == LV_MODEL) {
        if (strcmp(ext, ".safetensors"))
            return lc_arg_error(c, "path", err, CL_EINVAL,
                                "save writes a model as .safetensors, not '%s'", ext);
        if (trn_save(v->obj, path, err) < 0)
            return lc_arg_error(c, "path", err, err->code, "save: %s", err->msg);
        return 0;
    }
    if (!strcmp(ext, ".npy")) {
        if (v->kind == LV_NUM) {
            tn_tensor *t = tn_new1(1, err);
            if (!t) return -1;
            t->data[0] = (float)v->num;
            int r = npy_write(path, t, err);
            tn_free(t);
            return r < 0 ? lc_arg_error(c, "path", err, err->code, "save: %s", err->msg) : 0;
        }
        if (!lv_is_array(v))
            return cl_err_set(err, CL_ETYPE, "save: a %s cannot be written as .npy",
                              lv_type_name(v));
        int size = (int)lc_num(c, "size", 0);
        if (size > 0 && v->kind == LV_HEATMAP) {
            /* As pytorch-grad-cam returns it: normalised to [0,1] and upsampled. */
            int64_t h = v->t->shape[v->t->ndim - 2], w = v->t->shape[v->t->ndim - 1];
            int oh = h >= w ? size : (int)(h * size / w), ow = w >= h ? size : (int)(w * size / h);
            tn_tensor *up = rd_cam_resize(v->t, oh, ow, err);
            int r = up ? npy_write(path, up, err) : -1;
            tn_free(up);
            return r < 0 ? lc_arg_error(c, "path", err, err->code, "save: %s", err->msg) : 0;
        }
        if (npy_write(path, v->t, err) < 0)
            return lc_arg_error(c, "path", err, err->code, "save: %s", err->msg);
        return 0;
    }
    if (!strcmp(ext, ".png")) {
        uint8_t *png = NULL;
        size_t len = 0;
        if (lv_png(v, lc_get(c, "over"), (int)lc_num(c, "size", -1), &png, &len, err) < 0)
            return cl_err_prefix(err, "save");
        int r = atomic_write_file(path, png, len, err);
        free(png);
        return r < 0 ? lc_arg_error(c, "path", err, err->code, "save: %s", err->msg) : 0;
    }
    return lc_arg_error(c, "path", err, CL_EINVAL,
                        "save writes .npy (numbers) or .png (pictures), not '%s'",
                        *ext ? ext : "a file without extension");
}

static int do_load(lc_call *c, lv_value **out, cl_err *err)
{
    const char *path = lc_text(c, "path");
    if (strcmp(ext_of(path), ".npy"))
        return lc_arg_error(c, "path", err, CL_EINVAL, "load reads .npy files, not '%s'", path);
    tn_tensor *t = npy_read(path, err);
    if (!t) return lc_arg_error(c, "path", err, err->code, "load: %s", err->msg);
    /* (1,C,H,W) from PyTorch becomes (C,H,W). */
    if (t->ndim == 4 && t->shape[0] == 1) {
        int64_t s[3] = {t->shape[1], t->shape[2], t->shape[3]};
        tn_reshape(t, 3, s, NULL);
    }
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

/* ---- matrices ----------------------------------------------------------- */

/* A 2-D (H,W) or 3-D (C,H,W) view of an array argument's dims. */
static int chw(const tn_tensor *t, int64_t *C, int64_t *H, int64_t *W)
{
    int nd = t->ndim;
    if (nd == 4 && t->shape[0] != 1) return -1;
    *W = t->shape[nd - 1];
    *H = nd >= 2 ? t->shape[nd - 2] : 1;
    *C = nd >= 3 ? t->shape[nd - 3] : 1;
    return 0;
}

typedef struct conv_geom {
    int64_t C, H, W, kh, kw, s, p, oh, ow;
} conv_geom;

static float conv_at(const conv_geom *g, const float *x, const float *f, int64_t oy, int64_t ox)
{
    double acc = 0;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t y = oy * g->s + i - g->p;
            if (y < 0 || y >= g->H) continue;
            for (int64_t j = 0; j < g->kw; j++) {
                int64_t xx = ox * g->s + j - g->p;
                if (xx < 0 || xx >= g->W) continue;
                acc += (double)x[(c * g->H + y) * g->W + xx] * f[(c * g->kh + i) * g->kw + j];
            }
        }
    return (float)acc;
}

/* One frame of `conv ... step`: the input with the window outlined, the
 * filter, and the map filled in up to position k. */
static pic *conv_frame(const conv_geom *g, const float *x, const float *f, const float *map,
                       int64_t k, int *fx_out, int *mx_out, cl_err *err)
{
    static const uint8_t white[3] = {255, 255, 255}, red[3] = {220, 30, 30},
                         pale[3] = {246, 246, 246}, grey[3] = {150, 150, 150};
    int64_t ph = g->H + 2 * g->p, pw = g->W + 2 * g->p;
    int64_t longer = ph > pw ? ph : pw;
    int cell = (int)(360 / longer);
    if (cell > 44) cell = 44;
    if (cell < 6) cell = 6;
    int gap = cell;
    int fw = (int)g->kw * cell, ow = (int)g->ow * cell;
    int width = (int)pw * cell + gap + fw + gap + ow + 2;
    int height =
        (int)(ph > g->kh ? (ph > g->oh ? ph : g->oh) : (g->kh > g->oh ? g->kh : g->oh)) * cell + 2;
    pic *p = pic_new(width, height, white, err);
    if (!p) return NULL;
    /* The input, padded cells pale. */
    float *padded = calloc((size_t)(ph * pw), sizeof *padded);
    if (!padded) {
        pic_free(p);
        oom(err);
        return NULL;
    }
    for (int64_t y = 0; y < g->H; y++)
        for (int64_t xx = 0; xx < g->W; xx++)
            padded[(y + g->p) * pw + xx + g->p] = x[y * g->W + xx];
    pic *in = pic_matrix(padded, (int)ph, (int)pw, cell, 0, 1, err);
    pic *fl = pic_matrix(f, (int)g->kh, (int)g->kw, cell, 0, 1, err);
    free(padded);
    if (!in || !fl) {
        pic_free(in);
        pic_free(fl);
        pic_free(p);
        return NULL;
    }
    for (int y = 0; y < in->h && y < p->h; y++)
        memcpy(p->px + 3 * (size_t)y * p->w, in->px + 3 * (size_t)y * in->w, 3 * (size_t)in->w);
    if (g->p > 0) { /* wash out the padding ring */
        for (int64_t y = 0; y < ph; y++)
            for (int64_t xx = 0; xx < pw; xx++)
                if (y < g->p || y >= g->p + g->H || xx < g->p || xx >= g->p + g->W)
                    pic_rect(p, (int)xx * cell + 1, (int)y * cell + 1, cell - 1, cell - 1, pale);
    }
    int fx = (int)pw * cell + gap;
    for (int y = 0; y < fl->h && y < p->h; y++)
        memcpy(p->px + 3 * ((size_t)y * p->w + fx), fl->px + 3 * (size_t)y * fl->w,
               3 * (size_t)fl->w);
    pic_free(in);
    pic_free(fl);
    /* The map so far: filled cells shaded by value, the rest blank. */
    int mx = fx + fw + gap;
    *fx_out = fx;
    *mx_out = mx;
    int64_t n = g->oh * g->ow;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i <= k && i < n; i++) {
        if (map[i] < lo) lo = map[i];
        if (map[i] > hi) hi = map[i];
    }
    for (int64_t i = 0; i < n; i++) {
        int cx = mx + (int)(i % g->ow) * cell, cy = (int)(i / g->ow) * cell;
        pic_frame(p, cx, cy, cell + 1, cell + 1, 1, grey);
        if (i > k) continue;
        double t = hi > lo ? (map[i] - lo) / (hi - lo) : 0.5;
        uint8_t col[3];
        col[0] = col[1] = col[2] = (uint8_t)(235 - 190 * t);
        pic_rect(p, cx + 1, cy + 1, cell - 1, cell - 1, col);
        char buf[16];
        if (map[i] == (float)(int)map[i])
            snprintf(buf, sizeof buf, "%d", (int)map[i]);
        else
            snprintf(buf, sizeof buf, "%.1f", (double)map[i]);
        int scale = cell >= 36 ? 2 : 1;
        uint8_t ink[3] = {0, 0, 0};
        if (t > 0.5) ink[0] = ink[1] = ink[2] = 255;
        if (pic_text_width(buf, scale) <= cell - 4)
            pic_text(p, cx + cell / 2 + 1, cy + cell / 2 + 1, buf, scale, ink);
    }
    if (k >= 0 && k < n) {
        int64_t oy = k / g->ow, ox = k % g->ow;
        pic_frame(p, (int)(ox * g->s) * cell, (int)(oy * g->s) * cell, (int)g->kw * cell + 1,
                  (int)g->kh * cell + 1, cell >= 20 ? 3 : 2, red);
        pic_frame(p, mx + (int)ox * cell, (int)oy * cell, cell + 1, cell + 1, cell >= 20 ? 3 : 2,
                  red);
    }
    return p;
}

/* The frame with a title over each panel and the step's arithmetic below. */
static pic *captioned(pic *p, int fx, int mx, const char *bottom, cl_err *err)
{
    static const uint8_t white[3] = {255, 255, 255}, ink[3] = {40, 40, 40};
    const int band = 20;
    int w = p->w;
    if (rd_text_width(bottom, 1) + 8 > w) w = rd_text_width(bottom, 1) + 8;
    pic *q = pic_new(w, p->h + 2 * band, white, err);
    if (!q) {
        pic_free(p);
        return NULL;
    }
    for (int y = 0; y < p->h; y++)
        memcpy(q->px + 3 * ((size_t)(y + band) * q->w), p->px + 3 * (size_t)y * p->w,
               3 * (size_t)p->w);
    pic_free(p);
    rd_image view = {q->w, q->h, 3, q->px};
    rd_draw_text(&view, 2, 6, "image", ink, 1);
    rd_draw_text(&view, fx, 6, "filter", ink, 1);
    rd_draw_text(&view, mx, 6, "feature map", ink, 1);
    rd_draw_text(&view, 2, q->h - band + 7, bottom, ink, 1);
    return q;
}

static int conv_step(lc_call *c, const conv_geom *g, const float *x, const float *f, float *map,
                     cl_err *err)
{
    char id[64];
    ss_new_display_id(c->s, id, sizeof id);
    double delay = lc_get(c, "delay") ? lc_num(c, "delay", 0) : c->s->delay;
    int64_t n = g->oh * g->ow;
    for (int64_t k = -1; k < n; k++) {
        if (k >= 0) map[k] = conv_at(g, x, f, k / g->ow, k % g->ow);
        int fx = 0, mx = 0;
        char line[128];
        if (k < 0)
            snprintf(line, sizeof line, "%lldx%lld map, stride %lld, pad %lld", (long long)g->oh,
                     (long long)g->ow, (long long)g->s, (long long)g->p);
        else
            snprintf(line, sizeof line, "row %lld, column %lld: sum of window * filter = %g",
                     (long long)(k / g->ow), (long long)(k % g->ow), (double)map[k]);
        pic *p = conv_frame(g, x, f, map, k, &fx, &mx, err);
        if (p) p = captioned(p, fx, mx, line, err);
        char *b64 = p ? pic_png_base64(p, err) : NULL;
        pic_free(p);
        if (!b64) return -1;
        char text[96];
        if (k < 0)
            snprintf(text, sizeof text, "conv: %lldx%lld map, step 0 of %lld", (long long)g->oh,
                     (long long)g->ow, (long long)n);
        else
            snprintf(text, sizeof text, "conv: window %lld of %lld, value %g", (long long)k + 1,
                     (long long)n, (double)map[k]);
        json_t *b = json_pack("{s:s, s:s}", "text/plain", text, "image/png", b64);
        free(b64);
        if (!b) return oom(err);
        ss_display(c->s, b, id, k >= 0);
        json_decref(b);
        if (k + 1 < n && ss_sleep(c->s, delay, err) < 0) return -1;
    }
    c->s->displayed = 1;
    return 0;
}

static int do_conv(lc_call *c, lv_value **out, cl_err *err)
{
    const tn_tensor *x = c->v[0]->kind == LV_NUM ? NULL : c->v[0]->t;
    const tn_tensor *f = c->v[1]->kind == LV_NUM ? NULL : c->v[1]->t;
    if (!x || !f)
        return cl_err_set(err, CL_ETYPE, "conv: the image and the filter must be matrices");
    conv_geom g;
    int64_t fc;
    if (chw(x, &g.C, &g.H, &g.W) < 0 || chw(f, &fc, &g.kh, &g.kw) < 0)
        return cl_err_set(err, CL_EINVAL, "conv works on one image at a time");
    if (fc != g.C)
        return lc_arg_error(c, "filter", err, CL_EINVAL,
                            "conv: the filter has %lld channel%s but the image has %lld",
                            (long long)fc, fc == 1 ? "" : "s", (long long)g.C);
    g.s = (int64_t)lc_num(c, "stride", 1);
    g.p = (int64_t)lc_num(c, "pad", 0);
    if (g.s < 1) return lc_arg_error(c, "stride", err, CL_EINVAL, "conv: stride must be 1 or more");
    if (g.p < 0) return lc_arg_error(c, "pad", err, CL_EINVAL, "conv: pad must be 0 or more");
    if (g.kh > g.H + 2 * g.p || g.kw > g.W + 2 * g.p)
        return lc_arg_error(
            c, "filter", err, CL_EINVAL,
            "conv: the %lldx%lld filter is bigger than the %lldx%lld image (add pad?)",
            (long long)g.kh, (long long)g.kw, (long long)g.H, (long long)g.W);
    g.oh = (g.H + 2 * g.p - g.kh) / g.s + 1;
    g.ow = (g.W + 2 * g.p - g.kw) / g.s + 1;
    tn_tensor *m = tn_new2(g.oh, g.ow, err);
    if (!m) return -1;
    if (lc_flag(c, "step")) {
        if (g.oh * g.ow > 400) {
            tn_free(m);
            return lc_arg_error(c, "step", err, CL_EINVAL,
                                "conv: step shows at most 400 windows, this map has %lld "
                                "(use a smaller image or a bigger stride)",
                                (long long)(g.oh * g.ow));
        }
        if (g.C != 1) {
            tn_free(m);
            return lc_arg_error(c, "step", err, CL_EINVAL,
                                "conv: step shows one channel; this image has %lld",
                                (long long)g.C);
        }
        if (conv_step(c, &g, x->data, f->data, m->data, err) < 0) {
            tn_free(m);
            return -1;
        }
    } else {
        /* A big image and a big filter make hours of work in this plain loop
         * (it is the slide's arithmetic, not the engine's conv): every
         * window checks for an interrupt. */
        for (int64_t oy = 0; oy < g.oh; oy++)
            for (int64_t ox = 0; ox < g.ow; ox++) {
                if (ss_check_interrupt(c->s, err)) {
                    tn_free(m);
                    return -1;
                }
                m->data[oy * g.ow + ox] = conv_at(&g, x->data, f->data, oy, ox);
            }
    }
    return (*out = lv_tensor(m)) ? 0 : oom(err);
}

static int do_pool(lc_call *c, lv_value **out, cl_err *err)
{
    const lv_value *v = c->v[0];
    int64_t C, H, W;
    if (chw(v->t, &C, &H, &W) < 0)
        return cl_err_set(err, CL_EINVAL, "pool works on one image at a time");
    int64_t k = (int64_t)lc_num(c, "size", 2);
    int64_t s = lc_get(c, "stride") ? (int64_t)lc_num(c, "stride", 2) : k;
    const char *mode = lc_text(c, "mode");
    int avg = !strcmp(mode, "avg") || !strcmp(mode, "mean");
    if (!avg && strcmp(mode, "max"))
        return lc_arg_error(c, "mode", err, CL_EINVAL, "pool: mode is max or avg, not '%s'", mode);
    if (k < 1 || s < 1)
        return lc_arg_error(c, "size", err, CL_EINVAL, "pool: size and stride must be 1 or more");
    if (k > H || k > W)
        return lc_arg_error(c, "size", err, CL_EINVAL,
                            "pool: the window (%lld) is bigger than the %lldx%lld input",
                            (long long)k, (long long)H, (long long)W);
    int64_t oh = (H - k) / s + 1, ow = (W - k) / s + 1;
    int64_t shape[3] = {C, oh, ow};
    int nd = v->t->ndim >= 3 ? 3 : 2;
    tn_tensor *r = tn_new(nd, nd == 3 ? shape : shape + 1, err);
    if (!r) return -1;
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t y = 0; y < oh; y++)
            for (int64_t x = 0; x < ow; x++) {
                /* Windows may overlap (stride < size): as slow as conv. */
                if (ss_check_interrupt(c->s, err)) {
                    tn_free(r);
                    return -1;
                }
                double acc = avg ? 0 : -INFINITY;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) {
                        double a = v->t->data[(ch * H + y * s + i) * W + x * s + j];
                        if (avg)
                            acc += a;
                        else if (a > acc)
                            acc = a;
                    }
                r->data[(ch * oh + y) * ow + x] = (float)(avg ? acc / (double)(k * k) : acc);
            }
    return (*out = lv_tensor(r)) ? 0 : oom(err);
}

typedef enum { RD_SUM, RD_MEAN, RD_MAX, RD_MIN, RD_ARGMAX, RD_ARGMIN } reduce_op;

static int reduce(lc_call *c, lv_value **out, cl_err *err, reduce_op op)
{
    const lv_value *v = c->v[0];
    if (v->kind == LV_NUM) return (*out = lv_num(op >= RD_ARGMAX ? 0 : v->num)) ? 0 : oom(err);
    int64_t n = tn_numel(v->t), best = 0;
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v->t->data[i];
        switch (op) {
        case RD_SUM:
        case RD_MEAN:
            acc += x;
            break;
        case RD_MAX:
        case RD_ARGMAX:
            if (x > v->t->data[best]) best = i;
            break;
        case RD_MIN:
        case RD_ARGMIN:
            if (x < v->t->data[best]) best = i;
            break;
        }
    }
    double r = op == RD_SUM                   ? acc
               : op == RD_MEAN                ? acc / (double)n
               : op == RD_MAX || op == RD_MIN ? v->t->data[best]
                                              : (double)best;
    return (*out = lv_num(r)) ? 0 : oom(err);
}

static int do_sum(lc_call *c, lv_value **out, cl_err *err)
{
    return reduce(c, out, err, RD_SUM);
}
static int do_mean(lc_call *c, lv_value **out, cl_err *err)
{
    return reduce(c, out, err, RD_MEAN);
}
static int do_max(lc_call *c, lv_value **out, cl_err *err)
{
    return reduce(c, out, err, RD_MAX);
}
static int do_min(lc_call *c, lv_value **out, cl_err *err)
{
    return reduce(c, out, err, RD_MIN);
}
static int do_argmax(lc_call *c, lv_value **out, cl_err *err)
{
    return reduce(c, out, err, RD_ARGMAX);
}

static int do_shape(lc_call *c, lv_value **out, cl_err *err)
{
    const lv_value *v = c->v[0];
    if (v->kind == LV_NUM) return (*out = lv_str("a number has no shape")) ? 0 : oom(err);
    tn_tensor *t = tn_new1(v->t->ndim, err);
    if (!t) return -1;
    for (int i = 0; i < v->t->ndim; i++) t->data[i] = (float)v->t->shape[i];
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

typedef enum { EW_RELU, EW_ABS } elementwise_op;

static int elementwise(lc_call *c, lv_value **out, cl_err *err, elementwise_op op)
{
    const lv_value *v = c->v[0];
    if (v->kind == LV_NUM) {
        double x = v->num;
        return (*out = lv_num(op == EW_RELU ? (x > 0 ? x : 0) : fabs(x))) ? 0 : oom(err);
    }
    tn_tensor *t = tn_clone(v->t, err);
    if (!t) return -1;
    for (int64_t i = 0; i < tn_numel(t); i++) {
        float x = t->data[i];
        t->data[i] = op == EW_RELU ? (x > 0 ? x : 0) : fabsf(x);
    }
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

static int do_relu(lc_call *c, lv_value **out, cl_err *err)
{
    return elementwise(c, out, err, EW_RELU);
}
static int do_abs(lc_call *c, lv_value **out, cl_err *err)
{
    return elementwise(c, out, err, EW_ABS);
}

static int do_softmax(lc_call *c, lv_value **out, cl_err *err)
{
    tn_tensor *t = lv_to_tensor(c->v[0], err);
    if (!t) return -1;
    int64_t n = tn_numel(t);
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = t->data[i] > m ? t->data[i] : m;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp((double)t->data[i] - m);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)(exp((double)t->data[i] - m) / s);
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

typedef enum { FILL_ZEROS, FILL_ONES, FILL_UNIFORM, FILL_NORMAL } fill_kind;

static int fill(lc_call *c, lv_value **out, cl_err *err, fill_kind kind)
{
    double h = lc_num(c, "rows", 1), w = lc_get(c, "cols") ? lc_num(c, "cols", 1) : h;
    if (h < 1 || w < 1 || h * w > 1 << 26)
        return cl_err_set(err, CL_EINVAL, "%s: rows and cols must be between 1 and a few thousand",
                          c->verb->name);
    tn_tensor *t = tn_new2((int64_t)h, (int64_t)w, err);
    if (!t) return -1;
    for (int64_t i = 0; i < tn_numel(t); i++)
        t->data[i] = kind == FILL_ZEROS     ? 0.0f
                     : kind == FILL_ONES    ? 1.0f
                     : kind == FILL_UNIFORM ? (float)ss_rand_uniform(c->s)
                                            : (float)ss_rand_normal(c->s);
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

static int do_zeros(lc_call *c, lv_value **out, cl_err *err)
{
    return fill(c, out, err, FILL_ZEROS);
}
static int do_ones(lc_call *c, lv_value **out, cl_err *err)
{
    return fill(c, out, err, FILL_ONES);
}
static int do_rand(lc_call *c, lv_value **out, cl_err *err)
{
    return fill(c, out, err, FILL_UNIFORM);
}
static int do_randn(lc_call *c, lv_value **out, cl_err *err)
{
    return fill(c, out, err, FILL_NORMAL);
}

/* The (C,h,w) numbers of an array argument (a batch of one is allowed). */
static int maps_of(const lc_call *c, const char *arg, int64_t *C, int64_t *H, int64_t *W,
                   const float **data, cl_err *err)
{
    const lv_value *v = lc_get(c, arg);
    const tn_tensor *t = v->t;
    if (t->ndim < 3 || chw(t, C, H, W) < 0)
        return cl_err_set(err, CL_EINVAL, "%s: %s must be feature maps (C,H,W), got shape %s",
                          c->verb->name, arg, tn_shape_str(t, (char[64]){0}, 64));
    *data = t->data;
    return 0;
}

static int do_channelmean(lc_call *c, lv_value **out, cl_err *err)
{
    int64_t C, H, W;
    const float *d;
    if (maps_of(c, "x", &C, &H, &W, &d, err) < 0) return -1;
    tn_tensor *r = tn_new1(C, err);
    if (!r) return -1;
    for (int64_t k = 0; k < C; k++) {
        double s = 0;
        for (int64_t i = 0; i < H * W; i++) s += d[k * H * W + i];
        r->data[k] = (float)(s / (double)(H * W));
    }
    return (*out = lv_tensor(r)) ? 0 : oom(err);
}

static int do_weightedsum(lc_call *c, lv_value **out, cl_err *err)
{
    int64_t C, H, W;
    const float *d;
    if (maps_of(c, "maps", &C, &H, &W, &d, err) < 0) return -1;
    const tn_tensor *w = lc_get(c, "weights")->t;
    if (tn_numel(w) != C)
        return lc_arg_error(c, "weights", err, CL_EINVAL,
                            "weightedsum: %lld weights for %lld maps (one weight per map)",
                            (long long)tn_numel(w), (long long)C);
    tn_tensor *r = tn_new2(H, W, err);
    if (!r) return -1;
    for (int64_t i = 0; i < H * W; i++) {
        double s = 0;
        for (int64_t k = 0; k < C; k++) s += (double)w->data[k] * d[k * H * W + i];
        r->data[i] = (float)s;
    }
    return (*out = lv_tensor(r)) ? 0 : oom(err);
}

/* A missing file is not an error: the cell says so in one line and ends, so a
 * notebook that needs optional files (ImageNet weights) still runs top to bottom. */
static int do_require(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out, (void)err;
    const char *path = lc_text(c, "path"), *hint = lc_text(c, "hint");
    if (access(path, R_OK) == 0) return 0;
    char line[1200];
    if (hint)
        snprintf(line, sizeof line, "skipped: '%s' is not here (to get it, run: %s)\n", path, hint);
    else
        snprintf(line, sizeof line, "skipped: '%s' is not here (%s)\n", path, strerror(errno));
    ss_stream(c->s, "stdout", line);
    c->s->skip_rest = 1;
    return 0;
}

/* ---- the table ---------------------------------------------------------- */

/* clang-format off */
#define X_ARRAY {"x", LA_NUM | LA_ARRAY | LA_PICTURE | LA_NESTED, NULL, "the values"}
#define SIZE_ARGS {"rows", LA_NUM | LA_INT, NULL, "number of rows"}, \
                  {"cols", LA_NUM | LA_INT | LA_OPTIONAL, NULL, "number of columns (default: rows)"}
/* clang-format on */

/* clang-format off */
const lc_verb lc_core_verbs[] = {
    {"print",
     "language",
     "Writes values as text (the cell's output stream).",
     1,
     0,
     {{"value", LA_ANY | LA_EXPR | LA_OPTIONAL | LA_REST, NULL,
       "what to print; several are joined by spaces"}},
     {{0}},
     NULL,
     "print \"hello, world\"\nprint \"sum:\" (sum m)",
     do_print},
    {"help",
     "language",
     "Shows the list of commands, or one command's arguments and options.",
     1,
     0,
     {{"topic", LA_WORD | LA_STR | LA_OPTIONAL | LA_VERB, NULL, "a command name"}},
     {{0}},
     "Shift-Tab on a command in a notebook shows the same text.",
     "help\nhelp conv",
     do_help},
    {"seed",
     "language",
     "Makes every later random result reproducible, byte for byte.",
     1,
     0,
     {{"n", LA_NUM | LA_INT, NULL, "any whole number 0 or more"}},
     {{0}},
     "The same seed gives the same numbers on every run and every machine.",
     "seed 42\nr = rand 3 3",
     do_seed},
    {"expect",
     "language",
     "Checks a result: silent when it holds, an error (ExpectationFailed) when not.",
     1,
     2,
     {{"check", LA_EXPR | LA_LAZY | LA_CMP, NULL,
       "a comparison: ==, !=, <, <=, >, >= or ~= (close to)"}},
     {{"tolerance", LA_NUM, "1e-06", "largest difference that ~= accepts"},
      {"tol", LA_NUM, NULL, "short for tolerance"}},
     "Homework checks use it: the cell fails and names both sides when the check does not hold.",
     "expect sum m == 3\nexpect mean m ~= 0.25 tolerance 0.01",
     do_expect},
    {"show", "language", "Displays a value: a picture for images, heatmaps and big matrices.", 1, 2,
     {{"value", LA_ANY | LA_NESTED, NULL, "what to show, or a command whose result to show"}},
     {{"over", LA_IMAGE, NULL, "an image to lay a heatmap on (jet overlay, as pytorch-grad-cam)"},
      {"size", LA_NUM | LA_INT, NULL, "the picture's longer side in pixels (bilinear, as cv2)"}},
     "A bare value on the last line of a cell is shown too; show works on any line.",
     "show img\nshow conv img f\nshow cam over x size 420", do_show},
    {"vars",
     "language",
     "Lists the variables of the session.",
     0,
     0,
     {{0}},
     {{0}},
     NULL,
     "vars",
     do_vars},
    {"labels",
     "language",
     "Reads class names for the current model, one per line.",
     1,
     0,
     {{"path", LA_STR | LA_PATH | LA_OPTIONAL, NULL, "a text file, one class name per line (line 1 is class 0); without it, the labels are listed"}},
     {{0}},
     NULL,
     "labels \"imagenet_classes.txt\"",
     do_labels},
    {"save", "files", "Writes a value to a .npy (float32 numbers) or .png (picture) file.", 2, 2,
     {{"value", LA_NUM | LA_ARRAY | LA_PICTURE | LA_MODEL | LA_NESTED, NULL, "what to save (a model as .safetensors)"},
      {"path", LA_STR | LA_PATH, NULL, "file name ending in .npy or .png"}},
     {{"over", LA_IMAGE, NULL, ".png of a heatmap: the image to lay it on"},
      {"size", LA_NUM | LA_INT, NULL, "a heatmap normalised to [0,1] and upsampled to this size (.npy), or the picture's longer side (.png)"}},
     "A map is saved raw at the layer's resolution (after ReLU, unnormalised) unless size is given. "
     "The file appears whole or not at all: an error never leaves half a file.",
     "save m \"m.npy\"\nsave cam \"cam.npy\" size 224\nsave (gradcam x) \"overlay.png\" over x", do_save},
    {"load",
     "files",
     "Reads a .npy file (NumPy or PyTorch arrays: (C,H,W) or (1,C,H,W)).",
     1,
     0,
     {{"path", LA_STR | LA_PATH, NULL, "a .npy file"}},
     {{0}},
     NULL,
     "x = load \"x.npy\"",
     do_load},
    {"conv",
     "matrices",
     "Slides a filter over an image: the feature map (cross-correlation, as CNNs compute it).",
     2,
     4,
     {{"image", LA_TENSOR | LA_IMAGE | LA_HEATMAP, NULL, "the input matrix (H,W) or image (C,H,W)"},
      {"filter", LA_TENSOR, NULL, "the filter (kh,kw), or (C,kh,kw) for C channels"}},
     {{"stride", LA_NUM | LA_INT, "1", "how far the window moves each step"},
      {"pad", LA_NUM | LA_INT, "0", "rings of zeros added around the image"},
      {"step", LA_FLAG, NULL, "walk the window one position at a time, updating one picture"},
      {"delay", LA_NUM, NULL,
       "seconds between steps (default 0.3 in a notebook, 0 in cnnlens run)"}},
     "Each output cell is the sum of the window times the filter, element by element.",
     "img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]\n"
     "f = [-1 1 -1; -1 1 -1; -1 1 -1]\nconv img f\nconv img f step",
     do_conv},
    {"pool",
     "matrices",
     "Max (or average) pooling: the largest value of each window.",
     1,
     3,
     {{"x", LA_TENSOR | LA_IMAGE | LA_HEATMAP | LA_NESTED, NULL, "a matrix or (C,H,W) tensor"}},
     {{"size", LA_NUM | LA_INT, "2", "window size"},
      {"stride", LA_NUM | LA_INT, NULL, "how far the window moves (default: size)"},
      {"mode", LA_WORD | LA_STR, "max", "max or avg"}},
     NULL,
     "pool (conv img f) size 2",
     do_pool},
    {"relu",
     "matrices",
     "Keeps positive values, sets negative ones to 0.",
     1,
     0,
     {X_ARRAY},
     {{0}},
     NULL,
     "relu (conv img f)",
     do_relu},
    {"softmax",
     "matrices",
     "Turns scores into probabilities that sum to 1.",
     1,
     0,
     {X_ARRAY},
     {{0}},
     NULL,
     "softmax [1 2 3]",
     do_softmax},
    {"abs", "matrices", "Absolute values.", 1, 0, {X_ARRAY}, {{0}}, NULL, "abs [-1 2]", do_abs},
    {"sum", "matrices", "Sum of all values.", 1, 0, {X_ARRAY}, {{0}}, NULL, "sum m", do_sum},
    {"mean", "matrices", "Mean of all values.", 1, 0, {X_ARRAY}, {{0}}, NULL, "mean m", do_mean},
    {"max", "matrices", "Largest value.", 1, 0, {X_ARRAY}, {{0}}, NULL, "max m", do_max},
    {"min", "matrices", "Smallest value.", 1, 0, {X_ARRAY}, {{0}}, NULL, "min m", do_min},
    {"argmax",
     "matrices",
     "Position of the largest value (counting row by row from 0).",
     1,
     0,
     {X_ARRAY},
     {{0}},
     NULL,
     "argmax [3 9 2]",
     do_argmax},
    {"shape",
     "matrices",
     "The size of each dimension.",
     1,
     0,
     {{"x", LA_NUM | LA_ARRAY | LA_PICTURE | LA_NESTED, NULL, "a matrix, tensor or image"}},
     {{0}},
     NULL,
     "shape m",
     do_shape},
    {"zeros",
     "matrices",
     "A matrix of zeros.",
     2,
     0,
     {SIZE_ARGS},
     {{0}},
     NULL,
     "zeros 3 4",
     do_zeros},
    {"ones", "matrices", "A matrix of ones.", 2, 0, {SIZE_ARGS}, {{0}}, NULL, "ones 3", do_ones},
    {"rand",
     "matrices",
     "Random numbers between 0 and 1 (reproducible after `seed`).",
     2,
     0,
     {SIZE_ARGS},
     {{0}},
     NULL,
     "seed 1\nrand 2 3",
     do_rand},
    {"randn",
     "matrices",
     "Random numbers from a normal distribution (mean 0, std 1).",
     2,
     0,
     {SIZE_ARGS},
     {{0}},
     NULL,
     "seed 1\nrandn 2 3",
     do_randn},
    {"channelmean", "matrices", "The mean of each feature map: (C,H,W) becomes C numbers.", 1, 0,
     {{"x", LA_ARRAY | LA_PICTURE | LA_NESTED, NULL, "feature maps or their gradients (C,H,W)"}},
     {{0}}, "Grad-CAM's weights alpha_k are the channel means of the gradients.",
     "alpha = channelmean (gradients x layer conv2)", do_channelmean},
    {"weightedsum", "matrices", "sum over k of weights[k] times maps[k]: one (H,W) map.", 2, 0,
     {{"maps", LA_ARRAY | LA_PICTURE | LA_NESTED, NULL, "feature maps (C,H,W)"},
      {"weights", LA_TENSOR, NULL, "C weights"}},
     {{0}}, NULL, "s = weightedsum A alpha", do_weightedsum},
    {"require", "files", "Skips the rest of the cell, saying so in one line, when a file is missing.", 1, 1,
     {{"path", LA_STR | LA_PATH, NULL, "the file needed"}},
     {{"hint", LA_STR, NULL, "how to get it, shown in the message"}},
     NULL, "require \"weights/alexnet-owt-7be5be79.pth\" hint \"install/fetch-weights.sh alexnet\"", do_require},
    {"eprint", "language", "Writes values as text to the error stream (stderr).", 1, 0,
     {{"value", LA_ANY | LA_EXPR | LA_OPTIONAL | LA_REST, NULL, "what to print"}},
     {{0}}, NULL, "eprint \"careful:\" x", do_eprint},
    {"sleep", "language", "Waits, e.g. to pace a demonstration; an interrupt ends it at once.", 1, 0,
     {{"seconds", LA_NUM, NULL, "how long"}}, {{0}}, NULL, "sleep 0.5", do_sleep},
    {"input", "language", "Asks the notebook's user for a line of text; its value is that text.", 1, 1,
     {{"prompt", LA_STR | LA_OPTIONAL, NULL, "the question"}},
     {{"password", LA_FLAG, NULL, "hide what is typed"}},
     NULL, "name = input \"your name? \"", do_input},
    {"clear", "language", "Clears the cell's output so far.", 0, 1, {{0}},
     {{"wait", LA_FLAG, NULL, "clear only when the next output arrives (no flicker)"}},
     NULL, "clear wait", do_clear},
};

/* clang-format on */

const int lc_core_count = sizeof lc_core_verbs / sizeof *lc_core_verbs;
