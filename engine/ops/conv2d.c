/* conv2d — im2col + sgemm, done in bands of output rows so the column buffer
 * stays small (a few MiB) whatever the image size; 1x1 stride-1 convs multiply
 * the input directly. */
#include "engine/ops/ops.h"

#include <cblas.h>
#include <string.h>

#include "engine/threads.h"

/* Upper bound on the column buffer, in floats (8 MiB). */
#define CONV_BAND_FLOATS ((int64_t)2 << 20)

int64_t op_conv_out(int64_t in, int k, int stride, int pad)
{
    int64_t span = in + 2 * (int64_t)pad - k;
    return span < 0 ? 0 : span / stride + 1; /* C division truncates toward 0 */
}

static int is_pointwise(const op_conv *c)
{
    return c->k == 1 && c->stride == 1 && c->pad == 0;
}

static int64_t band_rows(const op_conv *c, int64_t ho, int64_t wo)
{
    int64_t kk = (int64_t)c->cin * c->k * c->k;
    int64_t rows = CONV_BAND_FLOATS / (kk * wo > 0 ? kk * wo : 1);
    if (rows < 1) rows = 1;
    return rows < ho ? rows : ho;
}

size_t op_conv2d_workspace(const op_conv *c, int64_t h, int64_t w)
{
    if (is_pointwise(c)) return 0;
    int64_t ho = op_conv_out(h, c->k, c->stride, c->pad);
    int64_t wo = op_conv_out(w, c->k, c->stride, c->pad);
    if (ho <= 0 || wo <= 0) return 0;
    return (size_t)((int64_t)c->cin * c->k * c->k * band_rows(c, ho, wo) * wo);
}

/* The output columns [lo, hi) that read input column ix = col*s - p + kx in [0, w). */
static void valid_cols(int64_t w, int64_t wo, int s, int p, int kx, int64_t *lo, int64_t *hi)
{
    int64_t a = p - kx > 0 ? (p - kx + s - 1) / s : 0;
    int64_t b = (w - 1 + p - kx) >= 0 ? (w - 1 + p - kx) / s + 1 : 0;
    if (b > wo) b = wo;
    if (a > b) a = b;
    *lo = a, *hi = b;
}

/* One band of one image, for the threads: channels [lo, hi) of im2col or col2im. */
typedef struct band {
    const op_conv *c;
    int64_t h, w, wo, r0, r1;
    const float *src;
    float *dst;
} band;

/* col [cin*k*k, (r1-r0)*wo] from the output rows [r0, r1) of one image;
 * this call fills the rows of input channels [c0, c1). */
static void im2col_part(void *ctx, int64_t c0, int64_t c1)
{
    const band *b = ctx;
    const op_conv *c = b->c;
    const int k = c->k, s = c->stride, p = c->pad;
    const int64_t h = b->h, w = b->w, wo = b->wo, r0 = b->r0, r1 = b->r1;
    const float *x = b->src;
    float *col = b->dst;
    int64_t ncol = (r1 - r0) * wo;
    for (int ci = (int)c0; ci < (int)c1; ci++) {
        const float *xc = x + (int64_t)ci * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((int64_t)(ci * k + ky) * k + kx) * ncol;
                int64_t lo, hi;
                valid_cols(w, wo, s, p, kx, &lo, &hi);
                for (int64_t r = r0; r < r1; r++, row += wo) {
                    int64_t iy = r * s - p + ky;
                    if (iy < 0 || iy >= h) {
                        memset(row, 0, (size_t)wo * sizeof *row);
                        continue;
                    }
                    const float *src = xc + iy * w + lo * s - p + kx;
                    for (int64_t j = 0; j < lo; j++) row[j] = 0;
                    if (s == 1)
                        memcpy(row + lo, src, (size_t)(hi - lo) * sizeof *row);
                    else
                        for (int64_t j = lo; j < hi; j++) row[j] = src[(j - lo) * s];
                    for (int64_t j = hi; j < wo; j++) row[j] = 0;
                }
            }
        }
    }
}

/* The adjoint of im2col: adds col back into dx (channels [c0, c1)). */
static void col2im_part(void *ctx, int64_t c0, int64_t c1)
{
    const band *b = ctx;
    const op_conv *c = b->c;
    const int k = c->k, s = c->stride, p = c->pad;
    const int64_t h = b->h, w = b->w, wo = b->wo, r0 = b->r0, r1 = b->r1;
    const float *col = b->src;
    float *dx = b->dst;
    int64_t ncol = (r1 - r0) * wo;
    for (int ci = (int)c0; ci < (int)c1; ci++) {
        float *dc = dx + (int64_t)ci * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((int64_t)(ci * k + ky) * k + kx) * ncol;
                int64_t lo, hi;
                valid_cols(w, wo, s, p, kx, &lo, &hi);
                for (int64_t r = r0; r < r1; r++, row += wo) {
                    int64_t iy = r * s - p + ky;
                    if (iy < 0 || iy >= h) continue;
                    float *dst = dc + iy * w + lo * s - p + kx;
                    for (int64_t j = lo; j < hi; j++) dst[(j - lo) * s] += row[j];
                }
            }
        }
    }
}

/* Work per thread below which splitting costs more than it saves (floats). */
#define CONV_GRAIN_FLOATS 32768

static void im2col(const op_conv *c, int64_t h, int64_t w, int64_t wo, int64_t r0, int64_t r1,
                   const float *x, float *col)
{
    band b = {c, h, w, wo, r0, r1, x, col};
    int64_t per_channel = (int64_t)c->k * c->k * (r1 - r0) * wo;
    th_parallel(c->cin, CONV_GRAIN_FLOATS / per_channel + 1, im2col_part, &b);
}

static void col2im(const op_conv *c, int64_t h, int64_t w, int64_t wo, int64_t r0, int64_t r1,
                   const float *col, float *dx)
{
    band b = {c, h, w, wo, r0, r1, col, dx};
    int64_t per_channel = (int64_t)c->k * c->k * (r1 - r0) * wo;
    th_parallel(c->cin, CONV_GRAIN_FLOATS / per_channel + 1, col2im_part, &b);
}

void op_conv2d_forward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                       const float *wt, const float *b, float *y, float *ws)
{
    int64_t ho = op_conv_out(h, c->k, c->stride, c->pad);
    int64_t wo = op_conv_out(w, c->k, c->stride, c->pad);
    int64_t hw = ho * wo, kk = (int64_t)c->cin * c->k * c->k;
    int64_t rows = band_rows(c, ho, wo);
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * c->cin * h * w;
        float *yi = y + i * c->cout * hw;
        for (int o = 0; o < c->cout; o++) {
            float v = b ? b[o] : 0.0f;
            float *yo = yi + (int64_t)o * hw;
            for (int64_t j = 0; j < hw; j++) yo[j] = v;
        }
        if (is_pointwise(c)) {
            op_sgemm(CblasNoTrans, CblasNoTrans, c->cout, (int)hw, c->cin, 1.0f, wt, c->cin, xi,
                     (int)hw, 1.0f, yi, (int)hw);
            continue;
        }
        for (int64_t r0 = 0; r0 < ho; r0 += rows) {
            int64_t r1 = r0 + rows < ho ? r0 + rows : ho, nc = (r1 - r0) * wo;
            im2col(c, h, w, wo, r0, r1, xi, ws);
            op_sgemm(CblasNoTrans, CblasNoTrans, c->cout, (int)nc, (int)kk, 1.0f, wt, (int)kk, ws,
                     (int)nc, 1.0f, yi + r0 * wo, (int)hw);
        }
    }
}

static void bias_grad(int cout, int64_t hw, const float *dy, float *db)
{
    for (int o = 0; o < cout; o++) {
        const float *d = dy + (int64_t)o * hw;
        double s = 0;
        for (int64_t j = 0; j < hw; j++) s += d[j];
        db[o] += (float)s;
    }
}

static void pointwise_backward(const op_conv *c, int64_t hw, const float *xi, const float *wt,
                               const float *dyi, float *dxi, int acc, float *dw)
{
    if (dw)
        op_sgemm(CblasNoTrans, CblasTrans, c->cout, c->cin, (int)hw, 1.0f, dyi, (int)hw, xi,
                 (int)hw, 1.0f, dw, c->cin);
    if (dxi)
        op_sgemm(CblasTrans, CblasNoTrans, c->cin, (int)hw, c->cout, 1.0f, wt, c->cin, dyi, (int)hw,
                 acc ? 1.0f : 0.0f, dxi, (int)hw);
}

void op_conv2d_backward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                        const float *wt, const float *dy, float *dx, int acc, float *dw, float *db,
                        float *ws)
{
    int64_t ho = op_conv_out(h, c->k, c->stride, c->pad);
    int64_t wo = op_conv_out(w, c->k, c->stride, c->pad);
    int64_t hw = ho * wo, kk = (int64_t)c->cin * c->k * c->k;
    int64_t rows = band_rows(c, ho, wo), in_size = (int64_t)c->cin * h * w;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * in_size, *dyi = dy + i * c->cout * hw;
        float *dxi = dx ? dx + i * in_size : NULL;
        if (db) bias_grad(c->cout, hw, dyi, db);
        if (is_pointwise(c)) {
            pointwise_backward(c, hw, xi, wt, dyi, dxi, acc, dw);
            continue;
        }
        if (dxi && !acc) memset(dxi, 0, (size_t)in_size * sizeof *dxi);
        for (int64_t r0 = 0; r0 < ho; r0 += rows) {
            int64_t r1 = r0 + rows < ho ? r0 + rows : ho, nc = (r1 - r0) * wo;
            if (dw) {
                im2col(c, h, w, wo, r0, r1, xi, ws);
                op_sgemm(CblasNoTrans, CblasTrans, c->cout, (int)kk, (int)nc, 1.0f, dyi + r0 * wo,
                         (int)hw, ws, (int)nc, 1.0f, dw, (int)kk);
            }
            if (dxi) {
                op_sgemm(CblasTrans, CblasNoTrans, (int)kk, (int)nc, c->cout, 1.0f, wt, (int)kk,
                         dyi + r0 * wo, (int)hw, 0.0f, ws, (int)nc);
                col2im(c, h, w, wo, r0, r1, ws, dxi);
            }
        }
    }
}
