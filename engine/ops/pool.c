/* pool — max, average and adaptive average pooling over the h x w planes of
 * nc = n*c channels, with PyTorch's window conventions (floor mode). */
#include "engine/ops/ops.h"

#include <math.h>
#include <string.h>

#include "engine/threads.h"

static int64_t pool_out(int64_t in, const op_pool *p)
{
    return op_conv_out(in, p->k, p->stride, p->pad);
}

/* One output row of max pooling with each output's winner (y * W + x in its
 * plane).  The window offsets are visited in row-major order, each as a pass
 * over the outputs of the row: the outputs are independent, so the compiler
 * vectorises the pass (one window at a time is a chain of dependent compares)
 * and the selects are blends, not branches (a branch on random data
 * mispredicts half the time).  "v > best or v is NaN", as PyTorch's kernel:
 * the first maximum in row-major order wins and a NaN propagates. */
static void maxpool_row(const op_pool *p, int64_t h, int64_t w, int64_t wo, int64_t oy,
                        const float *restrict xc, float *restrict y, int32_t *restrict arg)
{
    const int s = p->stride, pad = p->pad;
    int64_t y0 = oy * s - pad, y1 = y0 + p->k;
    if (y0 < 0) y0 = 0;
    if (y1 > h) y1 = h;
    for (int64_t ox = 0; ox < wo; ox++) {
        int64_t x0 = ox * s - pad;
        y[ox] = -INFINITY;
        arg[ox] = (int32_t)(y0 * w + (x0 < 0 ? 0 : x0));
    }
    for (int64_t iy = y0; iy < y1; iy++) {
        const float *row = xc + iy * w;
        for (int kx = 0; kx < p->k; kx++) {
            int64_t lo = pad - kx > 0 ? (pad - kx + s - 1) / s : 0;
            int64_t hi = w - 1 + pad - kx >= 0 ? (w - 1 + pad - kx) / s + 1 : 0;
            if (hi > wo) hi = wo;
            if (hi <= lo) continue;
            const float *src = row + lo * s - pad + kx; /* input column of output lo */
            float *out = y + lo;
            int32_t *at = arg + lo, first = (int32_t)(iy * w + lo * s - pad + kx);
            for (int64_t i = 0; i < hi - lo; i++) {
                float v = src[i * s], cur = out[i];
                int take = (v > cur) | (v != v);
                out[i] = take ? v : cur;
                at[i] = take ? first + (int32_t)(i * s) : at[i];
            }
        }
    }
}

/* One output row of max pooling, values only (no winners): the same visiting
 * order and select as maxpool_row, for passes no backward will follow. */
static void maxpool_row_values(const op_pool *p, int64_t h, int64_t w, int64_t wo, int64_t oy,
                               const float *restrict xc, float *restrict y)
{
    const int s = p->stride, pad = p->pad;
    int64_t y0 = oy * s - pad, y1 = y0 + p->k;
    if (y0 < 0) y0 = 0;
    if (y1 > h) y1 = h;
    for (int64_t ox = 0; ox < wo; ox++) y[ox] = -INFINITY;
    for (int64_t iy = y0; iy < y1; iy++) {
        const float *row = xc + iy * w;
        for (int kx = 0; kx < p->k; kx++) {
            int64_t lo = pad - kx > 0 ? (pad - kx + s - 1) / s : 0;
            int64_t hi = w - 1 + pad - kx >= 0 ? (w - 1 + pad - kx) / s + 1 : 0;
            if (hi > wo) hi = wo;
            if (hi <= lo) continue;
            const float *src = row + lo * s - pad + kx; /* input column of output lo */
            float *out = y + lo;
            for (int64_t i = 0; i < hi - lo; i++) {
                float v = src[i * s], cur = out[i];
                out[i] = ((v > cur) | (v != v)) ? v : cur;
            }
        }
    }
}

typedef struct pool_job {
    const op_pool *p;
    int64_t h, w, ho, wo;
    const float *x;
    float *y;
    int32_t *arg;
} pool_job;

/* Output rows [lo, hi) over all channels (row r is channel r / ho). */
static void maxpool_part(void *ctx, int64_t lo, int64_t hi)
{
    const pool_job *j = ctx;
    if (!j->arg) {
        for (int64_t r = lo; r < hi; r++)
            maxpool_row_values(j->p, j->h, j->w, j->wo, r % j->ho, j->x + (r / j->ho) * j->h * j->w,
                               j->y + r * j->wo);
        return;
    }
    for (int64_t r = lo; r < hi; r++)
        maxpool_row(j->p, j->h, j->w, j->wo, r % j->ho, j->x + (r / j->ho) * j->h * j->w,
                    j->y + r * j->wo, j->arg + r * j->wo);
}

void op_maxpool_forward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *x,
                        float *y, int32_t *arg)
{
    pool_job j = {p, h, w, pool_out(h, p), pool_out(w, p), x, y, arg};
    th_parallel(nc * j.ho, 4096 / (j.wo * p->k * p->k + 1) + 1, maxpool_part, &j);
}

typedef struct unpool_job {
    int64_t hw, ohw;
    const float *dy;
    const int32_t *arg;
    float *dx;
    int acc;
} unpool_job;

/* Planes [lo, hi): each routes its gradients to its own winners, so planes
 * split over threads touch disjoint memory. */
static void unpool_part(void *ctx, int64_t lo, int64_t hi)
{
    const unpool_job *j = ctx;
    if (!j->acc) memset(j->dx + lo * j->hw, 0, (size_t)((hi - lo) * j->hw) * sizeof *j->dx);
    for (int64_t c = lo; c < hi; c++) {
        float *dc = j->dx + c * j->hw;
        const float *d = j->dy + c * j->ohw;
        const int32_t *a = j->arg + c * j->ohw;
        for (int64_t i = 0; i < j->ohw; i++) dc[a[i]] += d[i];
    }
}

void op_maxpool_backward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *dy,
                         const int32_t *arg, float *dx, int acc)
{
    unpool_job j = {h * w, pool_out(h, p) * pool_out(w, p), dy, arg, dx, acc};
    th_parallel(nc, 16384 / (j.hw + 1) + 1, unpool_part, &j);
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
