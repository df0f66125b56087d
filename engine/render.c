/* render: maps, colour maps, overlays.  The arithmetic follows NumPy on float32
 * step by step (same operations, same order, float32 intermediates) so that
 * rendered pixels agree with pytorch-grad-cam + OpenCV to within one level. */
#include "engine/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image.h"

rd_image *rd_image_new(int w, int h, int c, cl_err *err)
{
    if (w <= 0 || h <= 0 || (c != 1 && c != 3) || (int64_t)w * h > (1 << 26)) {
        cl_err_set(err, CL_EINVAL, "render: cannot make a %dx%d image with %d channels", w, h, c);
        return NULL;
    }
    rd_image *im = malloc(sizeof *im);
    uint8_t *pix = calloc((size_t)w * h * c, 1);
    if (!im || !pix) {
        free(im);
        free(pix);
        cl_err_set(err, CL_ENOMEM, "render: out of memory for a %dx%d image", w, h);
        return NULL;
    }
    *im = (rd_image){.w = w, .h = h, .c = c, .pix = pix};
    return im;
}

void rd_image_free(rd_image *im)
{
    if (!im) return;
    free(im->pix);
    free(im);
}

void rd_minmax(float *x, int64_t n)
{
    if (n <= 0) return;
    float lo = x[0];
    for (int64_t i = 1; i < n; i++) lo = x[i] < lo ? x[i] : lo;
    float hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] -= lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float d = 1e-7f + hi;
    for (int64_t i = 0; i < n; i++) x[i] /= d;
}

/* Accepts (H,W) or (1,H,W); fills h and w. */
static int map_dims(const tn_tensor *m, int64_t *h, int64_t *w, cl_err *err)
{
    char buf[64];
    if (!m || !m->data || !tn_is_contiguous(m) || m->ndim < 2 || m->ndim > 4) goto bad;
    for (int i = 0; i < m->ndim - 2; i++)
        if (m->shape[i] != 1) goto bad;
    *h = m->shape[m->ndim - 2];
    *w = m->shape[m->ndim - 1];
    return 0;
bad:
    return cl_err_set(err, CL_EINVAL, "render: expected a map (H,W), got %s",
                      m ? tn_shape_str(m, buf, sizeof buf) : "nothing");
}

/* Accepts (C,H,W), (1,C,H,W) or (H,W) with C = 1 or 3. */
static int image_dims(const tn_tensor *x, int64_t *c, int64_t *h, int64_t *w, cl_err *err)
{
    char buf[64];
    if (!x || !x->data || !tn_is_contiguous(x)) goto bad;
    if (x->ndim == 2) {
        *c = 1;
        *h = x->shape[0];
        *w = x->shape[1];
        return 0;
    }
    if (x->ndim == 3 || (x->ndim == 4 && x->shape[0] == 1)) {
        int o = x->ndim - 3;
        *c = x->shape[o];
        *h = x->shape[o + 1];
        *w = x->shape[o + 2];
        if (*c == 1 || *c == 3) return 0;
    }
bad:
    return cl_err_set(err, CL_EINVAL,
                      "render: expected an image (C,H,W) with 1 or 3 channels, got %s",
                      x ? tn_shape_str(x, buf, sizeof buf) : "nothing");
}

tn_tensor *rd_cam_resize(const tn_tensor *cam, int out_h, int out_w, cl_err *err)
{
    int64_t h, w;
    if (map_dims(cam, &h, &w, err)) return NULL;
    if (out_h <= 0 || out_w <= 0) {
        cl_err_set(err, CL_EINVAL, "render: size must be positive, got %dx%d", out_h, out_w);
        return NULL;
    }
    tn_tensor *m = tn_new2(h, w, err);
    if (!m) return NULL;
    memcpy(m->data, cam->data, sizeof(float) * h * w);
    rd_minmax(m->data, h * w);
    tn_tensor *r = img_resize(m, out_h, out_w, err);
    tn_free(m);
    if (!r) return NULL;
    rd_minmax(r->data, tn_numel(r));
    return r;
}

static uint8_t u8_trunc(float v)
{
    /* np.uint8 of a float in [0,255] truncates; clip first so that rounding
     * error at the ends cannot wrap. */
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

static float map_max_abs(const float *v, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

static void diverging(float v, float limit, uint8_t *px)
{
    float t = limit > 0.0f ? v / limit : 0.0f;
    t = t < -1.0f ? -1.0f : t > 1.0f ? 1.0f : t;
    /* Blue (0,0,255) at -1, white at 0, red (255,0,0) at +1. */
    float a = 1.0f - fabsf(t);
    uint8_t fade = u8_trunc(255.0f * a);
    px[0] = t < 0 ? fade : 255;
    px[1] = fade;
    px[2] = t > 0 ? fade : 255;
}

rd_image *rd_colorize(const tn_tensor *map, rd_cmap cmap, float limit, cl_err *err)
{
    int64_t h, w;
    if (map_dims(map, &h, &w, err)) return NULL;
    rd_image *im = rd_image_new((int)w, (int)h, cmap == RD_CMAP_GREY ? 1 : 3, err);
    if (!im) return NULL;
    const float *v = map->data;
    int64_t n = h * w;
    if (cmap == RD_CMAP_DIVERGING && !(limit > 0.0f)) limit = map_max_abs(v, n);
    for (int64_t i = 0; i < n; i++) {
        switch (cmap) {
        case RD_CMAP_GREY:
            im->pix[i] = u8_trunc(255.0f * v[i]);
            break;
        case RD_CMAP_JET:
            memcpy(im->pix + 3 * i, rd_jet_rgb[u8_trunc(255.0f * v[i])], 3);
            break;
        case RD_CMAP_DIVERGING:
            diverging(v[i], limit, im->pix + 3 * i);
            break;
        }
    }
    return im;
}

rd_image *rd_overlay(const tn_tensor *cam01, const tn_tensor *image01, float image_weight,
                     cl_err *err)
{
    int64_t h, w, c, ih, iw;
    if (map_dims(cam01, &h, &w, err) || image_dims(image01, &c, &ih, &iw, err)) return NULL;
    if (ih != h || iw != w) {
        cl_err_set(err, CL_EINVAL,
                   "render: the map is %lldx%lld but the image is %lldx%lld (resize one first)",
                   (long long)h, (long long)w, (long long)ih, (long long)iw);
        return NULL;
    }
    int64_t n = h * w;
    float *out = malloc(sizeof(float) * 3 * n);
    rd_image *im = out ? rd_image_new((int)w, (int)h, 3, err) : NULL;
    if (!im) {
        free(out);
        if (err && !err->code) cl_err_set(err, CL_ENOMEM, "render: out of memory");
        return NULL;
    }
    const float *cam = cam01->data, *img = image01->data;
    float hw = 1.0f - image_weight, top = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *rgb = rd_jet_rgb[u8_trunc(255.0f * cam[i])];
        for (int k = 0; k < 3; k++) {
            float heat = (float)rgb[k] / 255.0f;
            float pix = img[(c == 3 ? k * n : 0) + i];
            float o = hw * heat + image_weight * pix;
            out[3 * i + k] = o;
            top = o > top ? o : top;
        }
    }
    for (int64_t i = 0; i < 3 * n; i++) im->pix[i] = u8_trunc(255.0f * (out[i] / top));
    free(out);
    return im;
}

rd_image *rd_cam_over(const tn_tensor *cam, const tn_tensor *image01, int out_h, int out_w,
                      cl_err *err)
{
    int64_t c, h, w;
    if (image_dims(image01, &c, &h, &w, err)) return NULL;
    tn_tensor *m = rd_cam_resize(cam, out_h, out_w, err);
    if (!m) return NULL;
    /* img_resize takes (C,H,W) or (H,W): drop a leading batch of 1. */
    tn_tensor *src = tn_view(image01, err);
    if (!src) {
        tn_free(m);
        return NULL;
    }
    int64_t chw[3] = {c, h, w};
    tn_tensor *x = tn_reshape(src, 3, chw, err) ? NULL : img_resize(src, out_h, out_w, err);
    tn_free(src);
    rd_image *im = NULL;
    if (x) {
        for (int64_t i = 0, n = tn_numel(x); i < n; i++)
            x->data[i] = x->data[i] < 0.0f ? 0.0f : x->data[i] > 1.0f ? 1.0f : x->data[i];
        im = rd_overlay(m, x, 0.5f, err);
    }
    tn_free(x);
    tn_free(m);
    return im;
}

tn_tensor *rd_guided_display(const tn_tensor *x, cl_err *err)
{
    tn_tensor *y = tn_clone(x, err);
    if (!y) return NULL;
    int64_t n = tn_numel(y);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += y->data[i];
    float mean = (float)(s / (double)n);
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        y->data[i] -= mean;
        ss += (double)y->data[i] * y->data[i];
    }
    float sd = (float)sqrt(ss / (double)n) + 1e-5f;
    for (int64_t i = 0; i < n; i++) {
        float v = y->data[i] / sd * 0.1f + 0.5f;
        y->data[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    return y;
}

rd_image *rd_from_tensor(const tn_tensor *x, int normalise, cl_err *err)
{
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return NULL;
    rd_image *im = rd_image_new((int)w, (int)h, (int)c, err);
    if (!im) return NULL;
    int64_t n = h * w;
    float lo = 0.0f, scale = 1.0f;
    if (normalise) {
        float hi = x->data[0];
        lo = hi;
        for (int64_t i = 1; i < c * n; i++) {
            lo = x->data[i] < lo ? x->data[i] : lo;
            hi = x->data[i] > hi ? x->data[i] : hi;
        }
        scale = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    }
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < n; i++)
            im->pix[i * c + k] = u8_trunc(255.0f * ((x->data[k * n + i] - lo) * scale));
    return im;
}

rd_image *rd_scale_nearest(const rd_image *im, int factor, cl_err *err)
{
    if (factor < 1 || factor > 256) {
        cl_err_set(err, CL_EINVAL, "render: scale factor %d out of range 1..256", factor);
        return NULL;
    }
    rd_image *o = rd_image_new(im->w * factor, im->h * factor, im->c, err);
    if (!o) return NULL;
    for (int y = 0; y < o->h; y++) {
        const uint8_t *src = im->pix + (size_t)(y / factor) * im->w * im->c;
        uint8_t *dst = o->pix + (size_t)y * o->w * o->c;
        for (int x = 0; x < o->w; x++) memcpy(dst + x * o->c, src + (x / factor) * im->c, im->c);
    }
    return o;
}
