#include "kernel/lang/value.h"
#include "engine/io/base64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image.h"
#include "engine/io/png.h"
#include "engine/render.h"
#include "kernel/lang/picture.h"

/* Matrices up to this size show every number (text/html and text/plain). */
#define LV_SMALL 16

static lv_value *alloc(lv_kind k)
{
    lv_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->refs = 1;
    v->kind = k;
    return v;
}

lv_value *lv_none(void)
{
    return alloc(LV_NONE);
}

lv_value *lv_num(double x)
{
    lv_value *v = alloc(LV_NUM);
    if (v) v->num = x;
    return v;
}

lv_value *lv_str(const char *s)
{
    lv_value *v = alloc(LV_STR);
    if (v && !(v->str = strdup(s))) {
        free(v);
        return NULL;
    }
    return v;
}

lv_value *lv_range(int64_t lo, int64_t hi)
{
    lv_value *v = alloc(LV_RANGE);
    if (v) {
        v->lo = lo;
        v->hi = hi;
    }
    return v;
}

lv_value *lv_tensor(tn_tensor *t)
{
    lv_value *v = alloc(LV_TENSOR);
    if (!v)
        tn_free(t);
    else
        v->t = t;
    return v;
}

lv_value *lv_image(tn_tensor *t, int norm)
{
    lv_value *v = alloc(LV_IMAGE);
    if (!v) {
        tn_free(t);
        return NULL;
    }
    v->t = t;
    v->norm = norm;
    return v;
}

lv_value *lv_heatmap(tn_tensor *t, lv_value *base, const char *desc)
{
    lv_value *v = alloc(LV_HEATMAP);
    if (!v) {
        tn_free(t);
        return NULL;
    }
    v->t = t;
    v->base = base ? lv_ref(base) : NULL;
    v->desc = desc ? strdup(desc) : NULL;
    return v;
}

lv_value *lv_model(void *obj, void (*obj_free)(void *), const char *desc)
{
    lv_value *v = alloc(LV_MODEL);
    if (!v) {
        if (obj_free) obj_free(obj);
        return NULL;
    }
    v->obj = obj;
    v->obj_free = obj_free;
    v->desc = strdup(desc ? desc : "model");
    return v;
}

lv_value *lv_picture(struct pic *p, tn_tensor *t, const char *desc)
{
    lv_value *v = alloc(LV_PICTURE);
    if (!v) {
        pic_free(p);
        tn_free(t);
        return NULL;
    }
    v->pic = p;
    v->t = t;
    v->desc = desc ? strdup(desc) : NULL;
    return v;
}

void lv_set_desc(lv_value *v, const char *desc)
{
    free(v->desc);
    v->desc = desc ? strdup(desc) : NULL;
}

lv_value *lv_table_value(lv_table *tab)
{
    lv_value *v = alloc(LV_TABLE);
    if (!v)
        lv_table_free(tab);
    else
        v->tab = tab;
    return v;
}

lv_value *lv_ref(lv_value *v)
{
    if (v) v->refs++;
    return v;
}

void lv_unref(lv_value *v)
{
    if (!v || --v->refs > 0) return;
    free(v->str);
    free(v->desc);
    tn_free(v->t);
    lv_unref(v->base);
    if (v->obj && v->obj_free) v->obj_free(v->obj);
    lv_table_free(v->tab);
    pic_free(v->pic);
    free(v->html);
    for (int i = 0; i < v->nnames; i++) free(v->names[i]);
    free(v->names);
    free(v);
}

const char *lv_kind_name(lv_kind k)
{
    static const char *names[] = {"nothing", "number",  "string", "range", "tensor",
                                  "image",   "heatmap", "model",  "table", "picture"};
    return (unsigned)k < LV_NKINDS ? names[k] : "value";
}

const char *lv_type_name(const lv_value *v)
{
    if (!v) return "nothing";
    if (v->kind == LV_TENSOR && v->t->ndim <= 2) return "matrix";
    return lv_kind_name(v->kind);
}

int lv_is_array(const lv_value *v)
{
    return v && (v->kind == LV_TENSOR || v->kind == LV_IMAGE || v->kind == LV_HEATMAP ||
                 (v->kind == LV_PICTURE && v->t));
}

lv_table *lv_table_new(int ncols, const char *const *head)
{
    lv_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ncols = ncols;
    t->head = calloc((size_t)ncols, sizeof *t->head);
    if (!t->head) {
        free(t);
        return NULL;
    }
    for (int i = 0; i < ncols; i++) {
        if (!(t->head[i] = strdup(head[i]))) {
            lv_table_free(t);
            return NULL;
        }
    }
    return t;
}

int lv_table_add(lv_table *t, const char *const *cells, const double *nums)
{
    size_t n = (size_t)(t->nrows + 1) * t->ncols;
    char **c = realloc(t->cells, n * sizeof *c);
    if (!c) return -1;
    t->cells = c;
    double *d = realloc(t->nums, n * sizeof *d);
    if (!d) return -1;
    t->nums = d;
    size_t at = (size_t)t->nrows * t->ncols;
    for (int i = 0; i < t->ncols; i++) {
        c[at + i] = strdup(cells[i] ? cells[i] : "");
        d[at + i] = nums ? nums[i] : NAN;
    }
    t->nrows++;
    for (int i = 0; i < t->ncols; i++)
        if (!c[at + i]) return -1;
    return 0;
}

void lv_table_free(lv_table *t)
{
    if (!t) return;
    for (int i = 0; t->head && i < t->ncols; i++) free(t->head[i]);
    for (size_t i = 0; t->cells && i < (size_t)t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->head);
    free(t->cells);
    free(t->nums);
    free(t);
}

void lv_format_num(double x, char *buf, size_t n)
{
    if (isnan(x)) {
        snprintf(buf, n, "nan");
    } else if (isinf(x)) {
        snprintf(buf, n, x > 0 ? "inf" : "-inf");
    } else if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x == 0 ? 0.0 : x); /* no "-0" */
    } else {
        snprintf(buf, n, "%.6g", x);
    }
}

/* A growable string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t k)
{
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + k + 1) cap *= 2;
        char *d = realloc(b->s, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->s = d;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k);
    b->n += k;
    b->s[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_puts(b, tmp);
}

static char *sb_done(sbuf *b)
{
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    if (!b->s) return strdup("");
    return b->s;
}

static void stats(const tn_tensor *t, double *lo, double *hi, double *mean)
{
    int64_t n = tn_numel(t);
    double a = INFINITY, z = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = t->data[i];
        if (v < a) a = v;
        if (v > z) z = v;
        s += v;
    }
    *lo = a;
    *hi = z;
    *mean = n ? s / (double)n : 0;
}

/* Rows and columns of a matrix-shaped tensor (1-D: one row). */
static void mat_dims(const tn_tensor *t, int64_t *h, int64_t *w)
{
    *h = t->ndim == 2 ? t->shape[0] : 1;
    *w = t->shape[t->ndim - 1];
}

static void text_matrix(sbuf *b, const tn_tensor *t)
{
    int64_t h, w;
    mat_dims(t, &h, &w);
    int64_t sh = h > LV_SMALL ? 6 : h, sw = w > LV_SMALL ? 8 : w;
    if (sh != h || sw != w) {
        double lo, hi, mean;
        stats(t, &lo, &hi, &mean);
        sb_printf(b, "matrix %lldx%lld (min %.4g, max %.4g, mean %.4g)\n", (long long)h,
                  (long long)w, lo, hi, mean);
    }
    int width = 1;
    char num[32];
    for (int64_t r = 0; r < sh; r++)
        for (int64_t c = 0; c < sw; c++) {
            lv_format_num(t->data[r * w + c], num, sizeof num);
            if ((int)strlen(num) > width) width = (int)strlen(num);
        }
    if (t->ndim == 1) width = 1; /* a vector reads as a list: [3 224 224] */
    if (t->ndim == 1) sb_puts(b, "[");
    for (int64_t r = 0; r < sh; r++) {
        for (int64_t c = 0; c < sw; c++) {
            lv_format_num(t->data[r * w + c], num, sizeof num);
            sb_printf(b, c ? " %*s" : "%*s", width, num);
        }
        if (sw != w) sb_puts(b, " ...");
        if (r + 1 < sh) sb_puts(b, "\n");
    }
    if (t->ndim == 1) sb_puts(b, "]");
    if (sh != h) sb_puts(b, "\n...");
}

static void text_table(sbuf *b, const lv_table *t)
{
    int width[32] = {0};
    int nc = t->ncols < 32 ? t->ncols : 32;
    for (int c = 0; c < nc; c++) {
        width[c] = (int)strlen(t->head[c]);
        for (int r = 0; r < t->nrows; r++) {
            int k = (int)strlen(t->cells[(size_t)r * t->ncols + c]);
            if (k > width[c]) width[c] = k;
        }
    }
    for (int c = 0; c < nc; c++) sb_printf(b, c ? "  %-*s" : "%-*s", width[c], t->head[c]);
    for (int r = 0; r < t->nrows; r++) {
        sb_puts(b, "\n");
        for (int c = 0; c < nc; c++) {
            const char *cell = t->cells[(size_t)r * t->ncols + c];
            int numeric = !isnan(t->nums[(size_t)r * t->ncols + c]);
            sb_printf(b, c ? (numeric ? "  %*s" : "  %-*s") : (numeric ? "%*s" : "%-*s"), width[c],
                      cell);
        }
    }
}

static const char *norm_name(int norm)
{
    return norm == IMG_NORM_IMAGENET ? "ImageNet-normalised"
           : norm == IMG_NORM_HALF   ? "normalised (mean 0.5, std 0.5)"
                                     : NULL;
}

char *lv_text(const lv_value *v)
{
    sbuf b = {0};
    char num[64], shape[96];
    switch (v->kind) {
    case LV_NONE:
        break;
    case LV_NUM:
        lv_format_num(v->num, num, sizeof num);
        sb_puts(&b, num);
        break;
    case LV_STR:
        sb_puts(&b, v->str);
        break;
    case LV_RANGE:
        sb_printf(&b, "%lld..%lld", (long long)v->lo, (long long)v->hi);
        break;
    case LV_TENSOR:
        if (v->t->ndim <= 2) {
            text_matrix(&b, v->t);
        } else {
            double lo, hi, mean;
            stats(v->t, &lo, &hi, &mean);
            sb_printf(&b, "tensor %s (min %.4g, max %.4g, mean %.4g)",
                      tn_shape_str(v->t, shape, sizeof shape), lo, hi, mean);
        }
        break;
    case LV_IMAGE: {
        const tn_tensor *t = v->t;
        sb_printf(&b, "image %lldx%lldx%lld", (long long)t->shape[t->ndim - 3],
                  (long long)t->shape[t->ndim - 2], (long long)t->shape[t->ndim - 1]);
        if (v->show == LV_SHOW_GUIDED)
            sb_puts(&b, " (input gradient)");
        else if (norm_name(v->norm))
            sb_printf(&b, " (%s)", norm_name(v->norm));
        if (v->desc) sb_printf(&b, ": %s", v->desc);
        break;
    }
    case LV_HEATMAP: {
        double lo, hi, mean;
        stats(v->t, &lo, &hi, &mean);
        sb_printf(&b, "heatmap %lldx%lld", (long long)v->t->shape[v->t->ndim - 2],
                  (long long)v->t->shape[v->t->ndim - 1]);
        if (v->desc) sb_printf(&b, " %s", v->desc);
        sb_printf(&b, " (min %.4g, max %.4g)", lo, hi);
        break;
    }
    case LV_MODEL:
        sb_puts(&b, v->desc);
        break;
    case LV_TABLE:
        text_table(&b, v->tab);
        break;
    case LV_PICTURE:
        sb_puts(&b, v->desc ? v->desc : "picture");
        break;
    case LV_NKINDS:
        break;
    }
    return sb_done(&b);
}

static void html_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            sb_puts(b, "&lt;");
            break;
        case '>':
            sb_puts(b, "&gt;");
            break;
        case '&':
            sb_puts(b, "&amp;");
            break;
        case '"':
            sb_puts(b, "&quot;");
            break;
        default:
            sb_add(b, s, 1);
        }
    }
}

static char *html_matrix(const tn_tensor *t)
{
    sbuf b = {0};
    int64_t h, w;
    mat_dims(t, &h, &w);
    double lo, hi, mean;
    stats(t, &lo, &hi, &mean);
    sb_puts(&b, "<table class=\"lens-matrix\" style=\"border-collapse:collapse;"
                "font-family:monospace\">");
    char num[32];
    for (int64_t r = 0; r < h; r++) {
        sb_puts(&b, "<tr>");
        for (int64_t c = 0; c < w; c++) {
            double v = t->data[r * w + c];
            double f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
            if (!(f >= 0 && f <= 1)) f = 0.5; /* inf or nan in the matrix: shade it mid-grey */
            int g = (int)(235 - 190 * f);
            lv_format_num(v, num, sizeof num);
            sb_printf(&b,
                      "<td style=\"background:rgb(%d,%d,%d);color:%s;padding:4px 8px;"
                      "text-align:right;border:1px solid #ccc\">%s</td>",
                      g, g, g, f > 0.5 ? "#fff" : "#000", num);
        }
        sb_puts(&b, "</tr>");
    }
    sb_puts(&b, "</table>");
    return sb_done(&b);
}

static char *html_table(const lv_table *t)
{
    sbuf b = {0};
    sb_puts(&b, "<table class=\"lens-table\"><thead><tr>");
    for (int c = 0; c < t->ncols; c++) {
        sb_puts(&b, "<th>");
        html_escape(&b, t->head[c]);
        sb_puts(&b, "</th>");
    }
    sb_puts(&b, "</tr></thead><tbody>");
    for (int r = 0; r < t->nrows; r++) {
        sb_puts(&b, "<tr>");
        for (int c = 0; c < t->ncols; c++) {
            int numeric = !isnan(t->nums[(size_t)r * t->ncols + c]);
            sb_puts(&b, numeric ? "<td style=\"text-align:right\">" : "<td>");
            html_escape(&b, t->cells[(size_t)r * t->ncols + c]);
            sb_puts(&b, "</td>");
        }
        sb_puts(&b, "</tr>");
    }
    sb_puts(&b, "</tbody></table>");
    return sb_done(&b);
}

tn_tensor *lv_image01(const lv_value *v, cl_err *err)
{
    if (v->show == LV_SHOW_GUIDED) return rd_guided_display(v->t, err);
    tn_tensor *t = tn_clone(v->t, err);
    if (!t) return NULL;
    static const float im_mean[3] = {0.485f, 0.456f, 0.406f}, im_std[3] = {0.229f, 0.224f, 0.225f};
    int64_t C = t->shape[t->ndim - 3], plane = t->shape[t->ndim - 2] * t->shape[t->ndim - 1];
    for (int64_t c = 0; c < C; c++) {
        float m = v->norm == IMG_NORM_IMAGENET ? im_mean[c % 3] : v->norm ? 0.5f : 0.0f;
        float s = v->norm == IMG_NORM_IMAGENET ? im_std[c % 3] : v->norm ? 0.5f : 1.0f;
        for (int64_t i = 0; i < plane; i++) {
            float x = t->data[c * plane + i] * s + m;
            t->data[c * plane + i] = x < 0 ? 0 : x > 1 ? 1 : x;
        }
    }
    return t;
}

/* Output size for a picture of h x w whose longer side should be `size`
 * (0: natural, but small things are enlarged to about 224 pixels). */
static void fit(int64_t h, int64_t w, int size, int *oh, int *ow)
{
    int64_t longer = h > w ? h : w;
    if (size <= 0) {
        int f = size < 0 || longer >= 224 ? 1 : (int)(224 / longer);
        *oh = (int)h * f;
        *ow = (int)w * f;
        return;
    }
    *oh = (int)(h * size / longer);
    *ow = (int)(w * size / longer);
    if (*oh < 1) *oh = 1;
    if (*ow < 1) *ow = 1;
}

static rd_image *image_pixels(const lv_value *v, int size, cl_err *err)
{
    tn_tensor *t = lv_image01(v, err);
    if (!t) return NULL;
    int64_t h = t->shape[t->ndim - 2], w = t->shape[t->ndim - 1];
    int oh, ow;
    fit(h, w, size, &oh, &ow);
    rd_image *im = NULL;
    if (size > 0 && (oh != h || ow != w)) { /* bilinear, as cv2.resize */
        tn_tensor *r = img_resize(t, oh, ow, err);
        if (r) im = rd_from_tensor(r, 0, err);
        tn_free(r);
    } else {
        rd_image *small = rd_from_tensor(t, 0, err);
        int f = h > 0 ? oh / (int)h : 1;
        im = small && f > 1 ? rd_scale_nearest(small, f, err) : small;
        if (im != small) rd_image_free(small);
    }
    tn_free(t);
    return im;
}

static rd_image *heatmap_pixels(const lv_value *v, const lv_value *over, int size, cl_err *err)
{
    /* Only `over` lays the map on an image: `show cam` is the map itself,
     * `show cam over x` the overlay (as the lecture shows both). */
    const lv_value *base = over;
    if (base && base->kind == LV_IMAGE) {
        tn_tensor *img = lv_image01(base, err);
        if (!img) return NULL;
        int oh, ow;
        fit(img->shape[img->ndim - 2], img->shape[img->ndim - 1], size, &oh, &ow);
        rd_image *im = rd_cam_over(v->t, img, oh, ow, err);
        tn_free(img);
        return im;
    }
    int oh, ow;
    fit(v->t->shape[v->t->ndim - 2], v->t->shape[v->t->ndim - 1], size, &oh, &ow);
    tn_tensor *up = rd_cam_resize(v->t, oh, ow, err);
    if (!up) return NULL;
    rd_image *im = rd_colorize(up, RD_CMAP_JET, 0, err);
    tn_free(up);
    return im;
}

int lv_png(const lv_value *v, const lv_value *over, int size, uint8_t **png, size_t *len,
           cl_err *err)
{
    if (v->kind == LV_PICTURE)
        return png_encode(v->pic->px, v->pic->w, v->pic->h, 3, png, len, err);
    rd_image *im = NULL;
    if (v->kind == LV_IMAGE) {
        im = image_pixels(v, size, err);
    } else if (v->kind == LV_HEATMAP) {
        im = heatmap_pixels(v, over, size, err);
    } else if (v->kind == LV_TENSOR && v->t->ndim <= 2 && size < 0) {
        /* A file: one grey pixel per number, black at the minimum, white at the maximum. */
        im = rd_from_tensor(v->t, 1, err);
    } else if (v->kind == LV_TENSOR && v->t->ndim <= 2) {
        int64_t h, w;
        mat_dims(v->t, &h, &w);
        int64_t longer = h > w ? h : w;
        int cell = (int)(size > 0 ? size / longer : size < 0 || longer >= 224 ? 1 : 224 / longer);
        if (cell < 1) cell = 1;
        if (cell > 40) cell = 40;
        pic *p = pic_matrix(v->t->data, (int)h, (int)w, cell, 0, 0, err);
        if (!p) return -1;
        int r = png_encode(p->px, p->w, p->h, 3, png, len, err);
        pic_free(p);
        return r;
    } else {
        return cl_err_set(err, CL_ETYPE, "a %s has no picture", lv_type_name(v));
    }
    if (!im) return -1;
    int r = rd_png(im, png, len, err);
    rd_image_free(im);
    return r;
}

static int add_png(json_t *b, const lv_value *v, const lv_value *over, int size, cl_err *err)
{
    uint8_t *png = NULL;
    size_t len = 0;
    if (lv_png(v, over, size, &png, &len, err) < 0) return -1;
    char *b64 = b64_encode(png, len, NULL);
    free(png);
    if (!b64) return cl_err_set(err, CL_ENOMEM, "out of memory");
    json_object_set_new(b, "image/png", json_string(b64));
    free(b64);
    return 0;
}

static int has_picture(const lv_value *v)
{
    if (v->kind == LV_IMAGE || v->kind == LV_HEATMAP || v->kind == LV_PICTURE) return 1;
    if (v->kind == LV_TENSOR && v->t->ndim <= 2) {
        int64_t h, w;
        mat_dims(v->t, &h, &w);
        return h > LV_SMALL || w > LV_SMALL;
    }
    return 0;
}

json_t *lv_json_string(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    /* Not UTF-8 (a label file in a legacy encoding): keep ASCII, mark the rest. */
    char *t = strdup(s);
    if (!t) return json_string("");
    for (unsigned char *p = (unsigned char *)t; *p; p++)
        if (*p >= 0x80) *p = '?';
    j = json_string(t);
    free(t);
    return j;
}

static json_t *bundle(const lv_value *v, const lv_value *over, int size, int shown, cl_err *err)
{
    char *text = lv_text(v);
    if (!text) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    json_t *b = json_object();
    json_object_set_new(b, "text/plain", lv_json_string(text));
    free(text);
    int png = has_picture(v) || (shown && v->kind == LV_TENSOR && v->t->ndim <= 2);
    char *html = NULL;
    if (v->kind == LV_TABLE)
        html = html_table(v->tab);
    else if (v->kind == LV_TENSOR && v->t->ndim <= 2 && !png)
        html = html_matrix(v->t);
    else if (v->kind == LV_PICTURE && v->html && !shown)
        html = strdup(v->html);
    if (html) {
        json_object_set_new(b, "text/html", lv_json_string(html));
        free(html);
    }
    if (png && add_png(b, v, over, size, err) < 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

json_t *lv_bundle_meta(const json_t *bundle)
{
    json_t *meta = json_object();
    const char *b64 = json_string_value(json_object_get(bundle, "image/png"));
    if (!meta || !b64 || strlen(b64) < 32) return meta;
    size_t got = 0; /* 32 base64 characters are the first 24 bytes */
    uint8_t *head = b64_decode(b64, 32, &got, NULL);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!head || got < 24 || memcmp(head, sig, 8) || memcmp(head + 12, "IHDR", 4)) {
        free(head);
        return meta;
    }
    uint32_t w = (uint32_t)head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    uint32_t h = (uint32_t)head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    free(head);
    json_object_set_new(meta, "image/png",
                        json_pack("{s:I, s:I}", "width", (json_int_t)w, "height", (json_int_t)h));
    return meta;
}

json_t *lv_bundle(const lv_value *v, cl_err *err)
{
    return bundle(v, NULL, 0, 0, err);
}

json_t *lv_bundle_shown(const lv_value *v, const lv_value *over, int size, cl_err *err)
{
    return bundle(v, over, size, over || size > 0, err);
}

tn_tensor *lv_to_tensor(const lv_value *v, cl_err *err)
{
    if (v->kind == LV_NUM) {
        tn_tensor *t = tn_new2(1, 1, err);
        if (t) t->data[0] = (float)v->num;
        return t;
    }
    if (lv_is_array(v)) return tn_clone(v->t, err);
    cl_err_set(err, CL_ETYPE, "expected a number or a matrix, got %s", lv_type_name(v));
    return NULL;
}
