/* vis/occlusion: Captum's Occlusion with windows spanning all channels, the
 * occluded copies run through the net a batch at a time.  The copies of one
 * row of windows differ from the image only in the same input rows, so they
 * go through net_forward_rows together: each layer recomputes only the rows
 * those reach and takes the rest from the image's own forward. */
#include <stdlib.h>
#include <string.h>

#include "engine/vis/vis_internal.h"

/* Default batch: a whole row of windows, within this many input floats (16 MiB). */
#define OCC_BATCH_FLOATS ((int64_t)4 << 20)

/* ceil((D - w) / s) + 1 windows along an axis of size D (Captum's shift count). */
static int64_t shift_count(int64_t d, int64_t w, int64_t s)
{
    return (d - w + s - 1) / s + 1;
}

static int check_opts(const tn_tensor *x, vis_occlusion_opts *o, cl_err *err)
{
    int64_t H = x->shape[2], W = x->shape[3];
    if (!o->window_h) o->window_h = 16;
    if (!o->window_w) o->window_w = o->window_h;
    if (!o->stride_h) o->stride_h = 8;
    if (!o->stride_w) o->stride_w = o->stride_h;
    if (o->window_h < 1 || o->window_w < 1 || o->window_h > H || o->window_w > W)
        return cl_err_set(err, CL_EINVAL,
                          "occlusion: the window must be 1..%lldx%lld pixels, got %dx%d",
                          (long long)H, (long long)W, o->window_h, o->window_w);
    if (o->stride_h < 1 || o->stride_w < 1 || o->batch < 0 || o->batch > 256)
        return cl_err_set(err, CL_EINVAL,
                          "occlusion: stride must be >= 1 and batch 1..256 (got %dx%d, %d)",
                          o->stride_h, o->stride_w, o->batch);
    return 0;
}

/* Window k's rectangle [y0,y1) x [x0,x1), cropped at the edges. */
static void window_rect(const vis_occlusion_opts *o, int64_t k, int64_t nx, int64_t H, int64_t W,
                        int64_t r[4])
{
    r[0] = (k / nx) * o->stride_h;
    r[1] = r[0] + o->window_h < H ? r[0] + o->window_h : H;
    r[2] = (k % nx) * o->stride_w;
    r[3] = r[2] + o->window_w < W ? r[2] + o->window_w : W;
}

tn_tensor *vis_occlusion(net *m, const tn_tensor *x, int cls, const vis_occlusion_opts *opts,
                         const cl_progress *p, int *cls_out, cl_err *err)
{
    if (vis_check_input(m, x, 1, "occlusion", err)) return NULL;
    vis_occlusion_opts o = opts ? *opts : (vis_occlusion_opts){0};
    if (check_opts(x, &o, err)) return NULL;
    int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3], HW = H * W;
    int64_t ny = shift_count(H, o.window_h, o.stride_h),
            nx = shift_count(W, o.window_w, o.stride_w);
    int64_t total = ny * nx;
    if (!o.batch) {
        int64_t fit = OCC_BATCH_FLOATS / (C * HW), cap = fit < 16 ? (fit < 1 ? 1 : fit) : 16;
        o.batch = (int)(nx < cap ? nx : cap);
    }
    int used;
    if (vis_forward_classes(m, x, cls, &used, cls_out, err)) return NULL;
    const tn_tensor *y = net_output(m);
    float base = y->data[used];
    tn_tensor *batch = tn_new4(o.batch, C, H, W, err);
    tn_tensor *sum = batch ? tn_new(3, (int64_t[]){1, H, W}, err) : NULL;
    float *count = sum ? calloc((size_t)HW, sizeof(float)) : NULL;
    if (!count) {
        if (sum) cl_err_set(err, CL_ENOMEM, "occlusion: out of memory");
        goto fail;
    }
    if (net_keep_base(m, err)) goto fail;
    double clock = 0.0; /* when the live picture (the rows done so far) was last shown */
    for (int64_t k0 = 0; k0 < total;) {
        /* A batch never spans two rows of windows: all its copies differ from
         * x in the same rows. */
        int64_t row_end = (k0 / nx + 1) * nx, r[4], rows[4];
        int64_t b = row_end - k0 < o.batch ? row_end - k0 : o.batch;
        window_rect(&o, k0, nx, H, W, rows);
        if (cl_progress_step(p, (long)k0, (long)total, "occlusion", err)) goto fail;
        for (int64_t j = 0; j < b; j++) {
            float *dst = batch->data + j * C * HW;
            memcpy(dst, x->data, sizeof(float) * C * HW);
            window_rect(&o, k0 + j, nx, H, W, r);
            for (int64_t c = 0; c < C; c++)
                for (int64_t yy = r[0]; yy < r[1]; yy++)
                    for (int64_t xx = r[2]; xx < r[3]; xx++) dst[c * HW + yy * W + xx] = o.baseline;
        }
        tn_tensor first = vis_first(batch, b);
        if (net_forward_rows(m, &first, rows[0], rows[1], err)) goto fail;
        y = net_output(m);
        for (int64_t j = 0; j < b; j++) {
            float diff = base - y->data[j * y->shape[1] + used];
            window_rect(&o, k0 + j, nx, H, W, r);
            for (int64_t yy = r[0]; yy < r[1]; yy++)
                for (int64_t xx = r[2]; xx < r[3]; xx++) {
                    sum->data[yy * W + xx] += diff;
                    count[yy * W + xx] += 1.0f;
                }
        }
        k0 += b;
        cl_progress_offer(
            p,
            &(cl_snapshot){
                .what = "occlusion", .done = k0, .total = total, .x = sum, .counts = count},
            &clock);
    }
    net_drop_base(m);
    for (int64_t i = 0; i < HW; i++) sum->data[i] = count[i] > 0 ? sum->data[i] / count[i] : 0.0f;
    cl_progress_step(p, (long)total, (long)total, "occlusion", NULL);
    free(count);
    tn_free(batch);
    return sum;
fail:
    net_drop_base(m);
    free(count);
    tn_free(batch);
    tn_free(sum);
    return NULL;
}
