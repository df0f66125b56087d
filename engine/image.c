#include "engine/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/jpeg.h"
#include "engine/io/png.h"
#include "engine/limits.h"

tn_tensor *img_from_u8(const uint8_t *pix, int w, int h, int channels, cl_err *err)
{
    tn_tensor *t = tn_new(3, (int64_t[]){channels, h, w}, err);
    if (!t) return NULL;
    size_t plane = (size_t)w * (size_t)h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < channels; c++)
            t->data[(size_t)c * plane + i] = pix[i * (size_t)channels + (size_t)c] / 255.0f;
    return t;
}

static tn_tensor *from_u16(const uint16_t *pix, int w, int h, int channels, cl_err *err)
{
    tn_tensor *t = tn_new(3, (int64_t[]){channels, h, w}, err);
    if (!t) return NULL;
    size_t plane = (size_t)w * (size_t)h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < channels; c++)
            t->data[(size_t)c * plane + i] = pix[i * (size_t)channels + (size_t)c] / 65535.0f;
    return t;
}

static tn_tensor *load_png(const char *path, cl_err *err)
{
    png_pixels p;
    if (png_decode_file(path, lim_get(LIM_IMAGE_PIXELS), &p, err)) return NULL;
    tn_tensor *t = p.depth == 16 ? from_u16(p.data, p.w, p.h, p.channels, err)
                                 : img_from_u8(p.data, p.w, p.h, p.channels, err);
    free(p.data);
    return t;
}

static tn_tensor *load_jpeg(const char *path, cl_err *err)
{
    uint8_t *pix;
    int w, h, c;
    if (jpg_decode_file(path, lim_get(LIM_IMAGE_PIXELS), &pix, &w, &h, &c, err)) return NULL;
    tn_tensor *t = img_from_u8(pix, w, h, c, err);
    free(pix);
    return t;
}

tn_tensor *img_load(const char *path, cl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cl_err_set(err, CL_EIO, "cannot open image '%s'", path);
        return NULL;
    }
    uint8_t magic[8] = {0};
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (n == 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) return load_png(path, err);
    if (n >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff)
        return load_jpeg(path, err);
    cl_err_set(err, CL_EFORMAT, "'%s' is not a PNG or JPEG image", path);
    return NULL;
}

/* ---- resize: OpenCV's INTER_LINEAR on float32 ---- */

typedef struct lin_tap {
    int i0, i1;
    float w0, w1;
} lin_tap;

/* The source taps of each output index, computed as cv::resize does: the
 * scale is 1 / (out / in) in double, the position is rounded to float, and
 * positions before the first or past the last pixel clamp to that pixel. */
static void make_taps(lin_tap *tap, int in, int out)
{
    double scale = 1.0 / ((double)out / in);
    for (int d = 0; d < out; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) s = 0, f = 0;
        if (s >= in - 1) s = in - 1, f = 0;
        tap[d] = (lin_tap){s, s + 1 < in ? s + 1 : s, 1.0f - f, f};
    }
}

static void resize_plane(const float *src, int ih, int iw, float *dst, int oh, int ow,
                         const lin_tap *tx, const lin_tap *ty, float *row0, float *row1)
{
    int have0 = -1, have1 = -1;
    for (int y = 0; y < oh; y++) {
        /* Horizontal pass into two row buffers, then a vertical blend, in
         * OpenCV's order, so float rounding matches too. */
        int r0 = ty[y].i0, r1 = ty[y].i1;
        if (r0 == have1) {
            float *t = row0;
            row0 = row1, row1 = t, have0 = have1, have1 = -1;
        }
        if (r0 != have0) {
            const float *s = src + (size_t)r0 * (size_t)iw;
            for (int x = 0; x < ow; x++) row0[x] = s[tx[x].i0] * tx[x].w0 + s[tx[x].i1] * tx[x].w1;
            have0 = r0;
        }
        if (r1 != have1) {
            const float *s = src + (size_t)r1 * (size_t)iw;
            for (int x = 0; x < ow; x++) row1[x] = s[tx[x].i0] * tx[x].w0 + s[tx[x].i1] * tx[x].w1;
            have1 = r1;
        }
        float b0 = ty[y].w0, b1 = ty[y].w1;
        float *d = dst + (size_t)y * (size_t)ow;
        for (int x = 0; x < ow; x++) d[x] = row0[x] * b0 + row1[x] * b1;
    }
    (void)ih;
}

static int image_dims(const tn_tensor *x, int64_t *c, int64_t *h, int64_t *w, cl_err *err)
{
    if (x->ndim == 3)
        *c = x->shape[0], *h = x->shape[1], *w = x->shape[2];
    else if (x->ndim == 2)
        *c = 1, *h = x->shape[0], *w = x->shape[1];
    else {
        char b[64];
        return cl_err_set(err, CL_EINVAL, "an image is (C,H,W) or (H,W), not %s",
                          tn_shape_str(x, b, sizeof b));
    }
    if (*h < 1 || *w < 1 || *h > INT32_MAX || *w > INT32_MAX)
        return cl_err_set(err, CL_EINVAL, "empty or oversized image");
    return 0;
}

static tn_tensor *new_like(const tn_tensor *x, int64_t c, int64_t h, int64_t w, cl_err *err)
{
    if (x->ndim == 2) return tn_new2(h, w, err);
    return tn_new(3, (int64_t[]){c, h, w}, err);
}

tn_tensor *img_resize(const tn_tensor *x, int out_h, int out_w, cl_err *err)
{
    int64_t c, ih, iw;
    if (image_dims(x, &c, &ih, &iw, err)) return NULL;
    if (out_h < 1 || out_w < 1) {
        cl_err_set(err, CL_EINVAL, "cannot resize to %dx%d", out_w, out_h);
        return NULL;
    }
    if (lim_check_pixels(out_w, out_h, "the resized image", err)) return NULL;
    tn_tensor *tmp = NULL;
    if (!tn_is_contiguous(x)) {
        if (!(tmp = tn_clone(x, err))) return NULL;
        x = tmp;
    }
    tn_tensor *y = new_like(x, c, out_h, out_w, err);
    lin_tap *tx = malloc(sizeof *tx * (size_t)out_w), *ty = malloc(sizeof *ty * (size_t)out_h);
    float *rows = malloc(sizeof *rows * 2 * (size_t)out_w);
    if (y && tx && ty && rows) {
        make_taps(tx, (int)iw, out_w);
        make_taps(ty, (int)ih, out_h);
        for (int64_t k = 0; k < c; k++)
            resize_plane(x->data + k * ih * iw, (int)ih, (int)iw, y->data + k * out_h * out_w,
                         out_h, out_w, tx, ty, rows, rows + out_w);
    } else if (y) {
        tn_free(y);
        y = NULL;
        cl_err_set(err, CL_ENOMEM, "out of memory resizing an image");
    }
    free(tx);
    free(ty);
    free(rows);
    tn_free(tmp);
    return y;
}

tn_tensor *img_resize_short(const tn_tensor *x, int size, cl_err *err)
{
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return NULL;
    if (size < 1) {
        cl_err_set(err, CL_EINVAL, "resize size must be positive, not %d", size);
        return NULL;
    }
    /* torchvision: new_long = int(size * long / short), in double. */
    int64_t s = h < w ? h : w, l = h < w ? w : h;
    double nl = (double)((int64_t)size * l) / (double)s;
    if (nl > INT32_MAX) {
        cl_err_set(err, CL_EINVAL, "the resized image would be too large");
        return NULL;
    }
    int new_long = (int)nl;
    return w <= h ? img_resize(x, new_long, size, err) : img_resize(x, size, new_long, err);
}

/* torchvision's CenterCrop: offsets int(round((in - out) / 2)) with Python's
 * round-half-to-even, and zero padding (split (d // 2, d - d // 2)) when the
 * crop is bigger than the image. */
static int64_t crop_offset(int64_t in, int64_t out)
{
    if (out > in) return -((out - in) / 2);
    return (int64_t)nearbyint((double)(in - out) / 2.0);
}

tn_tensor *img_center_crop(const tn_tensor *x, int out_h, int out_w, cl_err *err)
{
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return NULL;
    if (out_h < 1 || out_w < 1) {
        cl_err_set(err, CL_EINVAL, "cannot crop to %dx%d", out_w, out_h);
        return NULL;
    }
    if (lim_check_pixels(out_w, out_h, "the cropped image", err)) return NULL;
    tn_tensor *y = new_like(x, c, out_h, out_w, err);
    if (!y) return NULL;
    int64_t top = crop_offset(h, out_h), left = crop_offset(w, out_w);
    int64_t cs = x->ndim == 3 ? x->stride[0] : 0, hs = x->stride[x->ndim - 2],
            ws = x->stride[x->ndim - 1];
    for (int64_t k = 0; k < c; k++)
        for (int64_t yy = 0; yy < out_h; yy++) {
            int64_t sy = yy + top;
            if (sy < 0 || sy >= h) continue;
            float *d = y->data + (k * out_h + yy) * out_w;
            for (int64_t xx = 0; xx < out_w; xx++) {
                int64_t sx = xx + left;
                if (sx >= 0 && sx < w) d[xx] = x->data[k * cs + sy * hs + sx * ws];
            }
        }
    return y;
}

int img_normalize(tn_tensor *x, img_norm norm, cl_err *err)
{
    static const float im_mean[3] = {0.485f, 0.456f, 0.406f}, im_std[3] = {0.229f, 0.224f, 0.225f};
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return -1;
    if (!tn_is_contiguous(x)) return cl_err_set(err, CL_EINVAL, "cannot normalise a strided view");
    if (norm == IMG_NORM_NONE) return 0;
    if (norm == IMG_NORM_IMAGENET && c != 3)
        return cl_err_set(err, CL_EINVAL,
                          "ImageNet normalisation needs 3 channels, the image has %lld "
                          "(use the 'imagenet' preset, which makes grey images RGB)",
                          (long long)c);
    for (int64_t k = 0; k < c; k++) {
        float m = norm == IMG_NORM_HALF ? 0.5f : im_mean[k];
        float s = norm == IMG_NORM_HALF ? 0.5f : im_std[k];
        float *p = x->data + k * h * w;
        /* (x - m) / s, as torchvision's Normalize computes it. */
        for (int64_t i = 0; i < h * w; i++) p[i] = (p[i] - m) / s;
    }
    return 0;
}

static tn_tensor *to_rgb(const tn_tensor *x, cl_err *err)
{
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return NULL;
    if (c != 1) {
        cl_err_set(err, CL_EINVAL, "an image has 1 or 3 channels, not %lld", (long long)c);
        return NULL;
    }
    tn_tensor *g = tn_clone(x, err), *y = g ? tn_new(3, (int64_t[]){3, h, w}, err) : NULL;
    if (y)
        for (int k = 0; k < 3; k++) memcpy(y->data + k * h * w, g->data, sizeof(float) * h * w);
    tn_free(g);
    return y;
}

tn_tensor *img_preprocess(const tn_tensor *x, const char *preset, cl_err *err)
{
    int resize, crop;
    img_norm norm;
    if (!strcmp(preset, "imagenet"))
        resize = 256, crop = 224, norm = IMG_NORM_IMAGENET;
    else if (!strcmp(preset, "half"))
        resize = 224, crop = 224, norm = IMG_NORM_HALF;
    else if (!strcmp(preset, "none"))
        return tn_clone(x, err);
    else {
        cl_err_set(err, CL_EINVAL, "unknown preprocessing '%s' (imagenet, half or none)", preset);
        return NULL;
    }
    /* Only a grey image needs an RGB copy; big photos are not copied. */
    int64_t c, h, w;
    if (image_dims(x, &c, &h, &w, err)) return NULL;
    tn_tensor *rgb = c == 3 ? NULL : to_rgb(x, err);
    if (c != 3 && !rgb) return NULL;
    tn_tensor *r = img_resize_short(rgb ? rgb : x, resize, err);
    tn_tensor *y = r ? img_center_crop(r, crop, crop, err) : NULL;
    tn_free(rgb);
    tn_free(r);
    if (y && img_normalize(y, norm, err)) {
        tn_free(y);
        return NULL;
    }
    return y;
}
