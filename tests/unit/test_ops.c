/* Every op's backward against central finite differences of its forward (the
 * loss is sum(y * r) for a random r, accumulated in double), and forwards
 * against direct formulas and PyTorch's window conventions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/ops.h"

static uint64_t rng_state = 42;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* Random values kept away from 0 (ReLU kinks) and from each other's ties. */
static float *rand_buf(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) {
        float v = frand();
        p[i] = v + (v >= 0 ? 0.05f : -0.05f);
    }
    return p;
}

static double dot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares an analytic gradient with central differences of loss(), perturbing
 * each element of `param`. */
typedef double (*loss_fn)(void *ctx);

static void check_grad(const char *what, float *param, int64_t n, const float *grad, loss_fn f,
                       void *ctx)
{
    const float eps = 1e-2f;
    double maxg = 1e-6, maxerr = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = param[i];
        param[i] = keep + eps;
        double up = f(ctx);
        param[i] = keep - eps;
        double down = f(ctx);
        param[i] = keep;
        double num = (up - down) / (2 * eps);
        if (fabs(num) > maxg) maxg = fabs(num);
        if (fabs(num - grad[i]) > maxerr) maxerr = fabs(num - grad[i]);
    }
    cr_assert(maxerr <= 2e-3 * maxg + 1e-4, "%s: gradient error %g (scale %g)", what, maxerr, maxg);
}

/* ---- conv2d ---- */

typedef struct conv_case {
    op_conv c;
    int64_t n, h, w, ho, wo;
    float *x, *wt, *b, *y, *r, *ws;
} conv_case;

static double conv_loss(void *ctx)
{
    conv_case *k = ctx;
    op_conv2d_forward(&k->c, k->n, k->h, k->w, k->x, k->wt, k->b, k->y, k->ws);
    return dot(k->y, k->r, k->n * k->c.cout * k->ho * k->wo);
}

static void naive_conv(const conv_case *k, float *out)
{
    const op_conv *c = &k->c;
    for (int64_t i = 0; i < k->n; i++)
        for (int o = 0; o < c->cout; o++)
            for (int64_t oy = 0; oy < k->ho; oy++)
                for (int64_t ox = 0; ox < k->wo; ox++) {
                    double s = k->b ? k->b[o] : 0;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ky = 0; ky < c->k; ky++)
                            for (int kx = 0; kx < c->k; kx++) {
                                int64_t iy = oy * c->stride - c->pad + ky;
                                int64_t ix = ox * c->stride - c->pad + kx;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
                                s += (double)k->x[((i * c->cin + ci) * k->h + iy) * k->w + ix] *
                                     k->wt[((o * c->cin + ci) * c->k + ky) * c->k + kx];
                            }
                    out[((i * c->cout + o) * k->ho + oy) * k->wo + ox] = (float)s;
                }
}

static void run_conv_case(int cin, int cout, int ksz, int stride, int pad, int64_t n, int64_t h,
                          int64_t w, int bias)
{
    conv_case k = {
        {cin, cout, ksz, stride, pad}, n, h, w, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
    k.ho = op_conv_out(h, ksz, stride, pad), k.wo = op_conv_out(w, ksz, stride, pad);
    int64_t nx = n * cin * h * w, nw = (int64_t)cout * cin * ksz * ksz, ny = n * cout * k.ho * k.wo;
    k.x = rand_buf(nx), k.wt = rand_buf(nw), k.b = bias ? rand_buf(cout) : NULL;
    k.y = malloc((size_t)ny * sizeof(float)), k.r = rand_buf(ny);
    size_t wsn = op_conv2d_workspace(&k.c, h, w);
    k.ws = malloc((wsn ? wsn : 1) * sizeof(float));

    float *ref = malloc((size_t)ny * sizeof(float));
    conv_loss(&k);
    naive_conv(&k, ref);
    for (int64_t i = 0; i < ny; i++)
        cr_assert(fabsf(ref[i] - k.y[i]) < 1e-4f, "conv forward differs at %lld", (long long)i);

    float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)nw, sizeof(float));
    float *db = calloc((size_t)cout, sizeof(float));
    op_conv2d_backward(&k.c, n, h, w, k.x, k.wt, k.r, dx, 0, dw, bias ? db : NULL, k.ws);
    check_grad("conv dx", k.x, nx, dx, conv_loss, &k);
    check_grad("conv dw", k.wt, nw, dw, conv_loss, &k);
    if (bias) check_grad("conv db", k.b, cout, db, conv_loss, &k);

    /* acc = 1 adds to what dx holds (a shortcut's gradient). */
    float *dx2 = malloc((size_t)nx * sizeof(float));
    for (int64_t i = 0; i < nx; i++) dx2[i] = 1.0f;
    op_conv2d_backward(&k.c, n, h, w, k.x, k.wt, k.r, dx2, 1, NULL, NULL, k.ws);
    for (int64_t i = 0; i < nx; i++) cr_assert(fabsf(dx2[i] - 1.0f - dx[i]) < 1e-5f);

    free(k.x), free(k.wt), free(k.b), free(k.y), free(k.r), free(k.ws);
    free(ref), free(dx), free(dw), free(db), free(dx2);
}

Test(ops, conv3x3_pad1)
{
    run_conv_case(3, 4, 3, 1, 1, 2, 6, 5, 1);
}

Test(ops, conv3x3_stride2_nopad)
{
    run_conv_case(2, 3, 3, 2, 0, 1, 7, 8, 1);
}

Test(ops, conv1x1_pointwise)
{
    run_conv_case(5, 3, 1, 1, 0, 2, 4, 4, 0);
}

Test(ops, conv1x1_stride2_downsample)
{
    run_conv_case(4, 6, 1, 2, 0, 1, 7, 7, 0);
}

Test(ops, conv_large_kernel_stride4)
{
    run_conv_case(2, 2, 5, 4, 2, 1, 13, 11, 1);
}

Test(ops, conv_band_split)
{
    /* A wide image whose column buffer spans several bands of rows: checked
     * against the direct formula, and backward by the adjoint identities
     * <r, conv(x)> = <conv^T(r), x> = <dw(r), w> (conv is bilinear). */
    conv_case k = {{64, 2, 3, 1, 1}, 1, 40, 200, 40, 200, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t wsn = op_conv2d_workspace(&k.c, 40, 200);
    cr_assert_lt(wsn, (size_t)64 * 9 * 40 * 200, "the column buffer must be split into bands");
    int64_t nx = 64 * 40 * 200, ny = 2 * 40 * 200, nw = 2 * 64 * 9;
    k.x = rand_buf(nx), k.wt = rand_buf(nw), k.r = rand_buf(ny);
    k.y = malloc((size_t)ny * sizeof(float)), k.ws = malloc(wsn * sizeof(float));
    float *ref = malloc((size_t)ny * sizeof(float)), *dx = malloc((size_t)nx * sizeof(float));
    float *dw = calloc((size_t)nw, sizeof(float));
    double loss = conv_loss(&k);
    naive_conv(&k, ref);
    for (int64_t i = 0; i < ny; i++) cr_assert(fabsf(ref[i] - k.y[i]) < 1e-3f);
    op_conv2d_backward(&k.c, 1, 40, 200, k.x, k.wt, k.r, dx, 0, dw, NULL, k.ws);
    cr_assert(fabs(dot(dx, k.x, nx) - loss) < 1e-3 * fabs(loss) + 1e-2);
    cr_assert(fabs(dot(dw, k.wt, nw) - loss) < 1e-3 * fabs(loss) + 1e-2);
    free(k.x), free(k.wt), free(k.r), free(k.y), free(k.ws), free(ref), free(dx), free(dw);
}

/* ---- pooling ---- */

typedef struct pool_case {
    op_pool p;
    int adaptive, avg;
    int64_t nc, h, w, ho, wo;
    float *x, *y, *r;
    int32_t *arg;
} pool_case;

static double pool_loss(void *ctx)
{
    pool_case *k = ctx;
    if (k->adaptive)
        op_adaptive_avgpool_forward(k->nc, k->h, k->w, k->ho, k->wo, k->x, k->y);
    else if (k->avg)
        op_avgpool_forward(&k->p, k->nc, k->h, k->w, k->x, k->y);
    else
        op_maxpool_forward(&k->p, k->nc, k->h, k->w, k->x, k->y, k->arg);
    return dot(k->y, k->r, k->nc * k->ho * k->wo);
}

static void run_pool_grad(pool_case *k)
{
    int64_t nx = k->nc * k->h * k->w, ny = k->nc * k->ho * k->wo;
    k->x = rand_buf(nx), k->y = malloc((size_t)ny * sizeof(float)), k->r = rand_buf(ny);
    k->arg = malloc((size_t)ny * sizeof(int32_t));
    float *dx = malloc((size_t)nx * sizeof(float));
    if (!k->avg && !k->adaptive) /* distinct values 0.1 apart: no tie within +-eps */
        for (int64_t i = 0; i < nx; i++) k->x[i] = (float)((i * 7919) % nx) * 0.1f;
    pool_loss(k);
    if (k->adaptive)
        op_adaptive_avgpool_backward(k->nc, k->h, k->w, k->ho, k->wo, k->r, dx, 0);
    else if (k->avg)
        op_avgpool_backward(&k->p, k->nc, k->h, k->w, k->r, dx, 0);
    else
        op_maxpool_backward(&k->p, k->nc, k->h, k->w, k->r, k->arg, dx, 0);
    check_grad("pool dx", k->x, nx, dx, pool_loss, k);
    free(k->x), free(k->y), free(k->r), free(k->arg), free(dx);
}

Test(ops, maxpool_grad)
{
    pool_case k = {{3, 2, 1}, 0, 0, 3, 7, 6, 4, 3, NULL, NULL, NULL, NULL};
    run_pool_grad(&k);
    pool_case k2 = {{2, 2, 0}, 0, 0, 2, 6, 6, 3, 3, NULL, NULL, NULL, NULL};
    run_pool_grad(&k2);
}

Test(ops, maxpool_first_maximum_wins)
{
    /* A 2x2 window of equal values: PyTorch routes the gradient to the first. */
    float x[4] = {5, 5, 5, 5}, y[1], dx[4];
    int32_t arg[1];
    op_pool p = {2, 2, 0};
    op_maxpool_forward(&p, 1, 2, 2, x, y, arg);
    cr_assert_eq(arg[0], 0);
    float dy[1] = {1};
    op_maxpool_backward(&p, 1, 2, 2, dy, arg, dx, 0);
    cr_assert(dx[0] == 1 && dx[1] == 0 && dx[2] == 0 && dx[3] == 0);
    /* Padding is -inf: an all-negative border keeps its own maximum. */
    float neg[4] = {-3, -2, -4, -5}, out[4];
    int32_t a4[4];
    op_pool pp = {3, 2, 1};
    op_maxpool_forward(&pp, 1, 2, 2, neg, out, a4);
    cr_assert_eq(out[0], -2.0f);
}

Test(ops, maxpool_propagates_nan)
{
    float x[4] = {1, NAN, 3, 2}, y[1];
    int32_t arg[1];
    op_pool p = {2, 2, 0};
    op_maxpool_forward(&p, 1, 2, 2, x, y, arg);
    cr_assert(isnan(y[0]) && arg[0] == 1, "PyTorch keeps the NaN: got %g at %d", y[0], arg[0]);
}

/* The values-only pass (arg NULL) gives, bit for bit, the values of the pass
 * that records winners: over kernel sizes, strides and paddings, with ties,
 * signed zeros, infinities and NaNs placed anywhere. */
Test(ops, maxpool_values_only_matches_the_winners_pass)
{
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, 1.0f, -1.0f};
    const op_pool pools[] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}, {3, 3, 0}, {5, 2, 2}, {1, 1, 0}};
    uint32_t seed = 7;
    for (size_t pi = 0; pi < sizeof pools / sizeof *pools; pi++)
        for (int64_t h = 1; h <= 9; h += 4)
            for (int64_t w = 5; w <= 140; w += 45) { /* w 140: more than 64 outputs a row */
                op_pool p = pools[pi];
                if (h + 2 * p.pad < p.k || w + 2 * p.pad < p.k) continue;
                int64_t nc = 3, ho = (h + 2 * p.pad - p.k) / p.stride + 1;
                int64_t wo = (w + 2 * p.pad - p.k) / p.stride + 1, nx = nc * h * w;
                float *x = malloc((size_t)nx * sizeof *x),
                      *y = malloc((size_t)(nc * ho * wo) * sizeof *y);
                float *v = malloc((size_t)(nc * ho * wo) * sizeof *v);
                int32_t *arg = malloc((size_t)(nc * ho * wo) * sizeof *arg);
                for (int64_t i = 0; i < nx; i++) {
                    seed = seed * 1664525u + 1013904223u;
                    x[i] = (seed >> 28) < 5 ? special[(seed >> 8) % 8] : (float)(seed >> 20) / 7.0f;
                }
                op_maxpool_forward(&p, nc, h, w, x, y, arg);
                op_maxpool_forward(&p, nc, h, w, x, v, NULL);
                cr_assert_eq(memcmp(y, v, (size_t)(nc * ho * wo) * sizeof *v), 0,
                             "k %d stride %d pad %d, %lldx%lld", p.k, p.stride, p.pad, (long long)h,
                             (long long)w);
                free(x), free(y), free(v), free(arg);
            }
}

Test(ops, avgpool_counts_padding)
{
    float x[4] = {1, 2, 3, 4}, y[9];
    op_pool p = {2, 1, 1}; /* 3x3 output; the corner windows hold one pixel */
    op_avgpool_forward(&p, 1, 2, 2, x, y);
    cr_assert_float_eq(y[0], 0.25f, 1e-6f); /* 1 / 4: padding counts */
    pool_case k = {{3, 2, 1}, 0, 1, 2, 7, 6, 4, 3, NULL, NULL, NULL, NULL};
    run_pool_grad(&k);
}

Test(ops, adaptive_avgpool_windows)
{
    /* 5 -> 3: windows [0,2), [1,4), [3,5) as PyTorch's start/end formula. */
    float x[5] = {1, 2, 3, 4, 5}, y[3];
    op_adaptive_avgpool_forward(1, 1, 5, 1, 3, x, y);
    cr_assert_float_eq(y[0], 1.5f, 1e-6f);
    cr_assert_float_eq(y[1], 3.0f, 1e-6f);
    cr_assert_float_eq(y[2], 4.5f, 1e-6f);
    pool_case k = {{0, 0, 0}, 1, 1, 2, 7, 5, 3, 2, NULL, NULL, NULL, NULL};
    run_pool_grad(&k);
    pool_case up = {{0, 0, 0}, 1, 1, 1, 2, 3, 5, 7, NULL, NULL, NULL, NULL}; /* upsampling */
    run_pool_grad(&up);
}

/* ---- linear ---- */

typedef struct lin_case {
    int64_t n, in, out;
    float *x, *w, *b, *y, *r;
} lin_case;

static double lin_loss(void *ctx)
{
    lin_case *k = ctx;
    op_linear_forward(k->n, k->in, k->out, k->x, k->w, k->b, k->y);
    return dot(k->y, k->r, k->n * k->out);
}

static void run_linear(int64_t n, int64_t in, int64_t out)
{
    lin_case k = {n,
                  in,
                  out,
                  rand_buf(n * in),
                  rand_buf(out * in),
                  rand_buf(out),
                  malloc((size_t)(n * out) * sizeof(float)),
                  rand_buf(n * out)};
    float *dx = malloc((size_t)(n * in) * sizeof(float));
    float *dw = calloc((size_t)(out * in), sizeof(float)), *db = calloc((size_t)out, sizeof(float));
    lin_loss(&k);
    for (int64_t o = 0; o < out; o++) {
        double s = k.b[o];
        for (int64_t j = 0; j < in; j++) s += (double)k.x[j] * k.w[o * in + j];
        cr_assert(fabs(s - k.y[o]) < 1e-4);
    }
    op_linear_backward(n, in, out, k.x, k.w, k.r, dx, 0, dw, db);
    check_grad("linear dx", k.x, n * in, dx, lin_loss, &k);
    check_grad("linear dw", k.w, out * in, dw, lin_loss, &k);
    check_grad("linear db", k.b, out, db, lin_loss, &k);
    free(k.x), free(k.w), free(k.b), free(k.y), free(k.r), free(dx), free(dw), free(db);
}

Test(ops, linear_single_and_batch)
{
    run_linear(1, 7, 5);
    run_linear(3, 6, 4);
}

/* ---- relu, add, softmax ---- */

typedef struct ew_case {
    int kind; /* 0 relu, 1 softmax, 2 log-softmax */
    int64_t n, k;
    float *x, *y, *r;
} ew_case;

static double ew_loss(void *ctx)
{
    ew_case *c = ctx;
    if (c->kind == 0) op_relu_forward(c->n * c->k, c->x, c->y);
    if (c->kind == 1) op_softmax_forward(c->n, c->k, c->x, c->y);
    if (c->kind == 2) op_log_softmax_forward(c->n, c->k, c->x, c->y);
    return dot(c->y, c->r, c->n * c->k);
}

Test(ops, relu_softmax_logsoftmax_grads)
{
    for (int kind = 0; kind < 3; kind++) {
        ew_case c = {kind, 3, 6, rand_buf(18), malloc(18 * sizeof(float)), rand_buf(18)};
        float dx[18];
        ew_loss(&c);
        if (kind == 0) op_relu_backward(18, c.x, c.r, dx, 0, OP_RELU_PLAIN);
        if (kind == 1) op_softmax_backward(3, 6, c.y, c.r, dx, 0);
        if (kind == 2) op_log_softmax_backward(3, 6, c.y, c.r, dx, 0);
        check_grad(kind == 0   ? "relu"
                   : kind == 1 ? "softmax"
                               : "log_softmax",
                   c.x, 18, dx, ew_loss, &c);
        free(c.x), free(c.y), free(c.r);
    }
}

Test(ops, softmax_is_stable_and_sums_to_one)
{
    float x[3] = {1000, 1001, 1002}, y[3], l[3];
    op_softmax_forward(1, 3, x, y);
    op_log_softmax_forward(1, 3, x, l);
    cr_assert_float_eq(y[0] + y[1] + y[2], 1.0f, 1e-6f);
    cr_assert_float_eq(l[2], -0.40760596f, 1e-5f);
}

Test(ops, relu_rules)
{
    float x[4] = {1, 1, -1, -1}, g[4] = {2, -2, 2, -2}, d[4];
    op_relu_backward(4, x, g, d, 0, OP_RELU_PLAIN);
    cr_assert(d[0] == 2 && d[1] == -2 && d[2] == 0 && d[3] == 0);
    op_relu_backward(4, x, g, d, 0, OP_RELU_GUIDED);
    cr_assert(d[0] == 2 && d[1] == 0 && d[2] == 0 && d[3] == 0);
    op_relu_backward(4, x, g, d, 0, OP_RELU_DECONV);
    cr_assert(d[0] == 2 && d[1] == 0 && d[2] == 2 && d[3] == 0);
    op_relu_backward(4, x, g, d, 1, OP_RELU_DECONV); /* accumulates */
    cr_assert(d[0] == 4 && d[2] == 4);
}

/* The vectorised rules against the scalar definitions, on a long array with
 * zeros of both signs, infinities and NaNs, writing and accumulating. */
Test(ops, relu_rules_match_their_definitions_on_every_float)
{
    enum { N = 4099 };
    static float x[N], g[N], d[N], acc[N];
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 3.5f};
    for (int i = 0; i < N; i++) {
        x[i] = i % 7 == 0 ? special[i % 8] : (float)((i * 37) % 19) - 9.0f;
        g[i] = i % 5 == 0 ? special[(i / 5) % 8] : (float)((i * 13) % 23) - 11.0f;
    }
    for (int rule = OP_RELU_PLAIN; rule <= OP_RELU_DECONV; rule++) {
        op_relu_backward(N, x, g, d, 0, (op_relu_rule)rule);
        for (int i = 0; i < N; i++) acc[i] = 1.0f;
        op_relu_backward(N, x, g, acc, 1, (op_relu_rule)rule);
        for (int i = 0; i < N; i++) {
            int keep = rule == OP_RELU_PLAIN    ? x[i] > 0
                       : rule == OP_RELU_GUIDED ? x[i] > 0 && g[i] > 0
                                                : g[i] > 0;
            float want = keep ? g[i] : 0.0f;
            cr_assert(memcmp(&d[i], &want, sizeof want) == 0 || (isnan(want) && isnan(d[i])),
                      "rule %d, x %g, g %g: %g, want %g", rule, x[i], g[i], d[i], want);
            float want_acc = 1.0f + want;
            cr_assert(acc[i] == want_acc || (isnan(want_acc) && isnan(acc[i])));
        }
    }
}

/* Many planes, split over the threads: each gradient lands on its own
 * plane's winner, exactly as a serial scatter puts it. */
Test(ops, maxpool_backward_over_many_planes_matches_a_serial_scatter)
{
    enum { NC = 64, H = 23, W = 19 };
    op_pool p = {3, 2, 1};
    int64_t ho = op_conv_out(H, 3, 2, 1), wo = op_conv_out(W, 3, 2, 1);
    float *x = malloc(sizeof(float) * NC * H * W), *y = malloc(sizeof(float) * NC * ho * wo);
    float *dy = malloc(sizeof(float) * NC * ho * wo), *dx = malloc(sizeof(float) * NC * H * W);
    float *want = calloc((size_t)NC * H * W, sizeof(float));
    int32_t *arg = malloc(sizeof(int32_t) * NC * ho * wo);
    for (int64_t i = 0; i < NC * H * W; i++) x[i] = (float)((i * 7919) % 101);
    for (int64_t i = 0; i < NC * ho * wo; i++) dy[i] = (float)(i % 13) - 6.0f;
    op_maxpool_forward(&p, NC, H, W, x, y, arg);
    for (int64_t c = 0; c < NC; c++)
        for (int64_t i = 0; i < ho * wo; i++)
            want[c * H * W + arg[c * ho * wo + i]] += dy[c * ho * wo + i];
    for (int64_t i = 0; i < NC * H * W; i++) dx[i] = 99.0f; /* overwritten, not added to */
    op_maxpool_backward(&p, NC, H, W, dy, arg, dx, 0);
    for (int64_t i = 0; i < NC * H * W; i++)
        cr_assert_eq(dx[i], want[i], "element %lld", (long long)i);
    op_maxpool_backward(&p, NC, H, W, dy, arg, dx, 1);
    for (int64_t i = 0; i < NC * H * W; i++) cr_assert_eq(dx[i], 2 * want[i]);
    free(x), free(y), free(dy), free(dx), free(want), free(arg);
}

Test(ops, add_and_pass)
{
    float a[3] = {1, 2, 3}, b[3] = {10, 20, 30}, y[3], d[3] = {1, 1, 1};
    op_add_forward(3, a, b, y);
    cr_assert(y[0] == 11 && y[2] == 33);
    op_pass_backward(3, a, d, 1);
    cr_assert(d[0] == 2 && d[2] == 4);
    op_pass_backward(3, a, d, 0);
    cr_assert(d[0] == 1 && d[2] == 3);
}

/* ---- batch norm folding ---- */

Test(ops, bn_fold_equals_conv_then_bn)
{
    op_conv c = {3, 4, 3, 1, 1};
    float *x = rand_buf(3 * 25), *w = rand_buf(4 * 27), b[4] = {0};
    float gamma[4] = {1.5f, 0.5f, 1, 2}, beta[4] = {0.1f, -0.2f, 0, 0.3f};
    float mean[4] = {0.1f, 0.2f, -0.3f, 0}, var[4] = {0.5f, 2, 1, 0.25f};
    float y[100], z[100], folded[100], ws[27 * 25];
    op_conv2d_forward(&c, 1, 5, 5, x, w, NULL, y, ws);
    op_bn_forward(1, 4, 25, y, gamma, beta, mean, var, 1e-5f, z);
    op_bn_fold(4, 27, w, b, gamma, beta, mean, var, 1e-5f);
    op_conv2d_forward(&c, 1, 5, 5, x, w, b, folded, ws);
    for (int i = 0; i < 100; i++) cr_assert(fabsf(z[i] - folded[i]) < 1e-5f);
    free(x), free(w);
}
