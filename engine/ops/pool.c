/* pool — max, average and adaptive average pooling over the h x w planes of
 * nc = n*c channels, with PyTorch's window conventions (floor mode). */
#include "engine/ops/ops.h"

#include <math.h>
#include <string.h>

static int64_t pool_out(int64_t in, const op_pool *p)
{
    return op_conv_out(in, p->k, p->stride, p->pad);
}

void op_maxpool_forward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *x,
                        float *y, int32_t *arg)
{
    int64_t ho = pool_out(h, p), wo = pool_out(w, p);
    for (int64_t c = 0; c < nc; c++) {
        const float *xc = x + c * h * w;
        for (int64_t oy = 0; oy < ho; oy++) {
            int64_t y0 = oy * p->stride - p->pad, y1 = y0 + p->k;
            if (y0 < 0) y0 = 0;
            if (y1 > h) y1 = h;
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t x0 = ox * p->stride - p->pad, x1 = x0 + p->k;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
                float best = -INFINITY;
                int64_t where = y0 * w + x0;
                /* !(v <= best) is "v > best or v is NaN": the first maximum in
                 * row-major order wins and NaNs propagate, as in PyTorch. */
                for (int64_t iy = y0; iy < y1; iy++) {
                    const float *row = xc + iy * w;
                    for (int64_t ix = x0; ix < x1; ix++)
                        if (!(row[ix] <= best)) best = row[ix], where = iy * w + ix;
                }
                y[(c * ho + oy) * wo + ox] = best;
                arg[(c * ho + oy) * wo + ox] = (int32_t)where;
            }
        }
    }
}

void op_maxpool_backward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *dy,
                         const int32_t *arg, float *dx, int acc)
{
    int64_t ho = pool_out(h, p), wo = pool_out(w, p);
    if (!acc) memset(dx, 0, (size_t)(nc * h * w) * sizeof *dx);
    for (int64_t c = 0; c < nc; c++) {
        float *dc = dx + c * h * w;
        const float *d = dy + c * ho * wo;
        const int32_t *a = arg + c * ho * wo;
        for (int64_t j = 0; j < ho * wo; j++) dc[a[j]] += d[j];
    }
}

/* Visits the window of output (oy, ox) clipped to the padded input, as PyTorch
 * does: the divisor counts padding but not the part past the padding. */
static int64_t avg_window(const op_pool *p, int64_t h, int64_t w, int64_t oy, int64_t ox,
                          int64_t win[4])
{
    int64_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    int64_t y1 = y0 + p->k, x1 = x0 + p->k;
    if (y1 > h + p->pad) y1 = h + p->pad;
    if (x1 > w + p->pad) x1 = w + p->pad;
    int64_t count = (y1 - y0) * (x1 - x0);
    win[0] = y0 < 0 ? 0 : y0, win[1] = y1 > h ? h : y1;
    win[2] = x0 < 0 ? 0 : x0, win[3] = x1 > w ? w : x1;
    return count;
}

void op_avgpool_forward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *x,
                        float *y)
{
    int64_t ho = pool_out(h, p), wo = pool_out(w, p), win[4];
    for (int64_t c = 0; c < nc; c++) {
        const float *xc = x + c * h * w;
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t count = avg_window(p, h, w, oy, ox, win);
                float s = 0;
                for (int64_t iy = win[0]; iy < win[1]; iy++)
                    for (int64_t ix = win[2]; ix < win[3]; ix++) s += xc[iy * w + ix];
                y[(c * ho + oy) * wo + ox] = s / (float)count;
            }
    }
}

void op_avgpool_backward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *dy,
                         float *dx, int acc)
{
    int64_t ho = pool_out(h, p), wo = pool_out(w, p), win[4];
    if (!acc) memset(dx, 0, (size_t)(nc * h * w) * sizeof *dx);
    for (int64_t c = 0; c < nc; c++) {
        float *dc = dx + c * h * w;
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t count = avg_window(p, h, w, oy, ox, win);
                float g = dy[(c * ho + oy) * wo + ox] / (float)count;
                for (int64_t iy = win[0]; iy < win[1]; iy++)
                    for (int64_t ix = win[2]; ix < win[3]; ix++) dc[iy * w + ix] += g;
            }
    }
}

static int64_t adaptive_start(int64_t i, int64_t in, int64_t out)
{
    return (i * in) / out;
}

static int64_t adaptive_end(int64_t i, int64_t in, int64_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

void op_adaptive_avgpool_forward(int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                 const float *x, float *y)
{
    for (int64_t c = 0; c < nc; c++) {
        const float *xc = x + c * h * w;
        for (int64_t oy = 0; oy < oh; oy++) {
            int64_t y0 = adaptive_start(oy, h, oh), y1 = adaptive_end(oy, h, oh);
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t x0 = adaptive_start(ox, w, ow), x1 = adaptive_end(ox, w, ow);
                float s = 0;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) s += xc[iy * w + ix];
                y[(c * oh + oy) * ow + ox] = s / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void op_adaptive_avgpool_backward(int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                  const float *dy, float *dx, int acc)
{
    if (!acc) memset(dx, 0, (size_t)(nc * h * w) * sizeof *dx);
    for (int64_t c = 0; c < nc; c++) {
        float *dc = dx + c * h * w;
        for (int64_t oy = 0; oy < oh; oy++) {
            int64_t y0 = adaptive_start(oy, h, oh), y1 = adaptive_end(oy, h, oh);
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t x0 = adaptive_start(ox, w, ow), x1 = adaptive_end(ox, w, ow);
                float g = dy[(c * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) dc[iy * w + ix] += g;
            }
        }
    }
}
