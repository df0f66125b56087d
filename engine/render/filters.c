/* render/filters: a layer's weights and a layer's feature maps as tiles. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/render.h"

/* Min-max scales n values (stride 1) of each of c planes jointly into the
 * image's pixels: one normalisation per tile, as filter pictures are drawn. */
static rd_image *tile_from(const float *const *planes, int c, int h, int w, float lo, float hi,
                           cl_err *err)
{
    rd_image *im = rd_image_new(w, h, c, err);
    if (!im) return NULL;
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (int k = 0; k < c; k++)
        for (int i = 0; i < h * w; i++) {
            float v = (planes[k][i] - lo) * scale;
            im->pix[i * c + k] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    return im;
}

static void range_of(const float *const *planes, int c, int64_t n, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < c; k++)
        for (int64_t i = 0; i < n; i++) {
            *lo = planes[k][i] < *lo ? planes[k][i] : *lo;
            *hi = planes[k][i] > *hi ? planes[k][i] : *hi;
        }
}

static int add_tile(rd_tiles *t, const float *const *planes, int c, int h, int w, const char *cap,
                    cl_err *err)
{
    float lo, hi;
    range_of(planes, c, (int64_t)h * w, &lo, &hi);
    rd_image *im = tile_from(planes, c, h, w, lo, hi, err);
    return im ? rd_tiles_add(t, im, cap, err) : -1;
}

/* Shape of one filter: conv (O,I,kh,kw), or a dense row shown as a square. */
static int weight_geometry(const tn_tensor *w, int *in, int *kh, int *kw, cl_err *err)
{
    char buf[64];
    if (w->ndim == 4) {
        *in = (int)w->shape[1];
        *kh = (int)w->shape[2];
        *kw = (int)w->shape[3];
        return 0;
    }
    if (w->ndim == 2) {
        int64_t n = w->shape[1];
        int ch = n % 3 == 0 &&
                         (int64_t)llround(sqrt((double)(n / 3))) * llround(sqrt((double)(n / 3))) ==
                             n / 3
                     ? 3
                     : 1;
        int64_t side = llround(sqrt((double)(n / ch)));
        if (side * side * ch == n) {
            *in = ch;
            *kh = *kw = (int)side;
            return 0;
        }
    }
    return cl_err_set(err, CL_EINVAL,
                      "show weights: a layer's weights %s cannot be drawn as images (conv "
                      "filters, or dense layers whose inputs form a square image)",
                      tn_shape_str(w, buf, sizeof buf));
}

rd_tiles *rd_weight_tiles(const tn_tensor *w, int f0, int f1, int c0, int c1, cl_err *err)
{
    int in = 0, kh = 0, kw = 0;
    if (!w || !tn_is_contiguous(w) || weight_geometry(w, &in, &kh, &kw, err)) return NULL;
    int out = (int)w->shape[0];
    if (f0 < 0 || f0 >= out) {
        cl_err_set(err, CL_EINVAL, "show weights: filter %d does not exist (the layer has 0..%d)",
                   f0, out - 1);
        return NULL;
    }
    f1 = f1 < f0 ? f0 : f1 >= out ? out - 1 : f1;
    int per_channel = in != 1 && in != 3;
    if (per_channel) {
        c0 = c0 < 0 ? 0 : c0 >= in ? in - 1 : c0;
        c1 = c1 < c0 ? c0 : c1 >= in ? in - 1 : c1;
    }
    rd_tiles *t = rd_tiles_new(err);
    if (!t) return NULL;
    int64_t plane = (int64_t)kh * kw;
    char cap[48];
    for (int f = f0; f <= f1; f++) {
        const float *base = w->data + (int64_t)f * in * plane;
        if (!per_channel) {
            const float *planes[3] = {base, base + (in == 3) * plane, base + 2 * (in == 3) * plane};
            snprintf(cap, sizeof cap, "f%d", f);
            if (add_tile(t, planes, in, kh, kw, cap, err)) goto fail;
            continue;
        }
        for (int c = c0; c <= c1; c++) {
            const float *planes[1] = {base + c * plane};
            snprintf(cap, sizeof cap, "f%d c%d", f, c);
            if (add_tile(t, planes, 1, kh, kw, cap, err)) goto fail;
        }
    }
    return t;
fail:
    rd_tiles_free(t);
    return NULL;
}

rd_tiles *rd_activation_tiles(const tn_tensor *act, const int *channels, int n, int shared_scale,
                              cl_err *err)
{
    char buf[64];
    /* A leading batch of one is dropped: (1,C,H,W) and (1,C). */
    int cd = act && (act->ndim == 4 || act->ndim == 2) && act->shape[0] == 1;
    if (!act || !tn_is_contiguous(act) || act->ndim - cd < 1 || act->ndim - cd == 2 ||
        act->ndim - cd > 3) {
        cl_err_set(err, CL_EINVAL,
                   "show activations: expected feature maps (C,H,W) or a vector (C), got %s",
                   act ? tn_shape_str(act, buf, sizeof buf) : "nothing");
        return NULL;
    }
    int C = (int)act->shape[cd];
    int h = act->ndim - cd == 3 ? (int)act->shape[cd + 1] : 1;
    int w = act->ndim - cd == 3 ? (int)act->shape[cd + 2] : 1;
    int count = channels ? n : C;
    for (int i = 0; i < count; i++) {
        int c = channels ? channels[i] : i;
        if (c < 0 || c >= C) {
            cl_err_set(err, CL_EINVAL,
                       "show activations: channel %d does not exist (the layer has 0..%d)", c,
                       C - 1);
            return NULL;
        }
    }
    float glo = INFINITY, ghi = -INFINITY;
    for (int i = 0; shared_scale && i < count; i++) {
        const float *p[1] = {act->data + (int64_t)(channels ? channels[i] : i) * h * w};
        float lo, hi;
        range_of(p, 1, (int64_t)h * w, &lo, &hi);
        glo = lo < glo ? lo : glo;
        ghi = hi > ghi ? hi : ghi;
    }
    rd_tiles *t = rd_tiles_new(err);
    if (!t) return NULL;
    char cap[32];
    for (int i = 0; i < count; i++) {
        int c = channels ? channels[i] : i;
        const float *p[1] = {act->data + (int64_t)c * h * w};
        float lo = glo, hi = ghi;
        if (!shared_scale) range_of(p, 1, (int64_t)h * w, &lo, &hi);
        rd_image *im = tile_from(p, 1, h, w, lo, hi, err);
        snprintf(cap, sizeof cap, "ch %d", c);
        if (!im || rd_tiles_add(t, im, cap, err)) {
            rd_tiles_free(t);
            return NULL;
        }
    }
    return t;
}
