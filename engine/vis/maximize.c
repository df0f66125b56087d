/* vis/maximize: activation maximisation by gradient ascent on the input, one
 * image per unit, all units optimised together as one batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vis/vis_internal.h"

typedef struct maxrun {
    net *m;
    int layer, n;
    const int *units;
    vis_max_opts o;
    int64_t C, H, W, chw;
    tn_tensor *x;             /* the images being optimised (n,C,H,W) */
    tn_tensor *xs;            /* their jittered copies, fed to the net */
    tn_tensor *seed;          /* d objective / d layer output */
    float *g, *m1, *m2, *tmp; /* gradient, Adam moments, blur scratch (n*chw each) */
    int *dy, *dx;             /* this step's shift per image */
    float *vals;              /* the units' values at this step's forward pass (n) */
    double clock;             /* when the live picture was last shown */
    vis_rng rng;
} maxrun;

static void defaults(vis_max_opts *o)
{
    if (!o->steps) o->steps = 200;
    if (!(o->lr > 0.0f)) o->lr = 0.05f;
    if (!(o->blur > 0.0f)) o->blur = 0.5f;
    if (!(o->noise > 0.0f)) o->noise = 0.1f;
}

static int check(maxrun *r, const net_node_info *info, cl_err *err)
{
    if (r->n < 1 || r->n > 1024)
        return cl_err_set(err, CL_EINVAL, "maximize: give 1..1024 units, not %d", r->n);
    if (r->o.steps < 0 || r->o.steps > 100000 || r->o.jitter < 0 || r->o.jitter > 64 ||
        r->o.blur_every < 0)
        return cl_err_set(err, CL_EINVAL,
                          "maximize: steps must be 0..100000, jitter 0..64, blur every >= 0");
    if (info->ndim != 4 && info->ndim != 2)
        return cl_err_set(err, CL_EINVAL, "maximize: layer '%s' has %d-d outputs", info->name,
                          info->ndim);
    for (int j = 0; j < r->n; j++)
        if (r->units[j] < 0 || r->units[j] >= info->shape[1])
            return cl_err_set(err, CL_EINVAL, "maximize: %s %d does not exist ('%s' has 0..%lld)",
                              info->ndim == 4 ? "filter" : "neuron", r->units[j], info->name,
                              (long long)info->shape[1] - 1);
    if (r->o.init == VIS_INIT_IMAGE && (!r->o.image || tn_numel(r->o.image) != r->chw))
        return cl_err_set(err, CL_EINVAL, "maximize: the start image must be %lldx%lldx%lld",
                          (long long)r->C, (long long)r->H, (long long)r->W);
    return 0;
}

static int alloc_run(maxrun *r, cl_err *err)
{
    int64_t n = r->n, all = n * r->chw;
    r->x = tn_new4(n, r->C, r->H, r->W, err);
    r->xs = r->x ? tn_new4(n, r->C, r->H, r->W, err) : NULL;
    r->g = calloc((size_t)all, sizeof(float));
    r->m1 = calloc((size_t)all, sizeof(float));
    r->m2 = calloc((size_t)all, sizeof(float));
    r->tmp = calloc((size_t)all, sizeof(float));
    r->dy = calloc((size_t)n, sizeof(int));
    r->dx = calloc((size_t)n, sizeof(int));
    r->vals = calloc((size_t)n, sizeof(float));
    if (!r->xs || !r->g || !r->m1 || !r->m2 || !r->tmp || !r->dy || !r->dx || !r->vals)
        return r->xs ? cl_err_set(err, CL_ENOMEM, "maximize: out of memory") : -1;
    return 0;
}

static void free_run(maxrun *r)
{
    tn_free(r->xs);
    tn_free(r->seed);
    free(r->g);
    free(r->m1);
    free(r->m2);
    free(r->tmp);
    free(r->dy);
    free(r->dx);
    free(r->vals);
}

static void init_images(maxrun *r)
{
    float *x = r->x->data;
    for (int j = 0; j < r->n; j++)
        for (int64_t i = 0; i < r->chw; i++) {
            float *v = x + j * r->chw + i;
            switch (r->o.init) {
            case VIS_INIT_NOISE:
                *v = r->o.noise * vis_rng_normal(&r->rng);
                break;
            case VIS_INIT_ZEROS:
                *v = 0.0f;
                break;
            case VIS_INIT_IMAGE:
                *v = r->o.image->data[i];
                break;
            }
        }
}

/* dst = src rolled by (dy, dx) per image (torch.roll), or back with sign -1. */
static void roll(const maxrun *r, const float *src, float *dst, int sign)
{
    int64_t H = r->H, W = r->W;
    for (int j = 0; j < r->n; j++) {
        int64_t sy = ((sign * r->dy[j]) % H + H) % H, sx = ((sign * r->dx[j]) % W + W) % W;
        for (int64_t c = 0; c < r->C; c++) {
            const float *s = src + j * r->chw + c * H * W;
            float *d = dst + j * r->chw + c * H * W;
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) d[((y + sy) % H) * W + (x + sx) % W] = s[y * W + x];
        }
    }
}

/* The unit's value for each image after a forward pass. */
static void unit_values(const maxrun *r, float *out)
{
    const tn_tensor *a = net_node_output(r->m, r->layer);
    int64_t K = a->shape[1], hw = a->ndim == 4 ? a->shape[2] * a->shape[3] : 1;
    for (int j = 0; j < r->n; j++) {
        const float *p = a->data + ((int64_t)j * K + r->units[j]) * hw;
        double s = 0.0;
        for (int64_t i = 0; i < hw; i++) s += p[i];
        out[j] = (float)s;
    }
}

static int measure(maxrun *r, float *out, cl_err *err)
{
    if (!out) return 0;
    if (net_forward_upto(r->m, r->x, r->layer, err)) return -1;
    unit_values(r, out);
    return 0;
}

/* d(objective)/d(x) into r->g: the unit's gradient through the jittered copy;
 * with `values`, the units' values at this forward pass too (a shift changes
 * a map's sum only at the edges, so they stand for the unjittered image's). */
static int unit_gradient(maxrun *r, float *values, cl_err *err)
{
    if (r->o.jitter) {
        int span = 2 * r->o.jitter + 1;
        for (int j = 0; j < r->n; j++) {
            r->dy[j] = (int)(vis_rng_next(&r->rng) % (uint64_t)span) - r->o.jitter;
            r->dx[j] = (int)(vis_rng_next(&r->rng) % (uint64_t)span) - r->o.jitter;
        }
        roll(r, r->x->data, r->xs->data, 1);
    } else {
        memcpy(r->xs->data, r->x->data, sizeof(float) * r->n * r->chw);
    }
    if (net_forward_upto(r->m, r->xs, r->layer, err)) return -1;
    if (values) unit_values(r, values);
    const tn_tensor *a = net_node_output(r->m, r->layer);
    if (!r->seed && !(r->seed = tn_new(a->ndim, a->shape, err))) return -1;
    int64_t K = a->shape[1], hw = a->ndim == 4 ? a->shape[2] * a->shape[3] : 1;
    for (int j = 0; j < r->n; j++) {
        float *s = r->seed->data + ((int64_t)j * K + r->units[j]) * hw;
        for (int64_t i = 0; i < hw; i++) s[i] = 1.0f;
    }
    if (net_backward(r->m, r->layer, r->seed, NET_INPUT, NET_RELU_PLAIN, err)) return -1;
    const float *gi = net_input_grad(r->m)->data;
    if (r->o.jitter)
        roll(r, gi, r->g, -1);
    else
        memcpy(r->g, gi, sizeof(float) * r->n * r->chw);
    return 0;
}

static float sgn(float v)
{
    return (float)((v > 0.0f) - (v < 0.0f));
}

/* Subtracts the gradients of l1 sum|x| + l2 sum x^2 + tv TV(x) from r->g. */
static void penalties(maxrun *r)
{
    const float *x = r->x->data;
    int64_t H = r->H, W = r->W, all = r->n * r->chw;
    for (int64_t i = 0; i < all; i++) r->g[i] -= r->o.l1 * sgn(x[i]) + 2.0f * r->o.l2 * x[i];
    if (!(r->o.tv > 0.0f)) return;
    for (int64_t p = 0; p < all / (H * W); p++) {
        const float *xp = x + p * H * W;
        float *gp = r->g + p * H * W;
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                int64_t i = y * W + xx;
                if (y + 1 < H) {
                    float s = r->o.tv * sgn(xp[i + W] - xp[i]);
                    gp[i] += s;
                    gp[i + W] -= s;
                }
                if (xx + 1 < W) {
                    float s = r->o.tv * sgn(xp[i + 1] - xp[i]);
                    gp[i] += s;
                    gp[i + 1] -= s;
                }
            }
    }
}

static void ascend(maxrun *r, int t)
{
    float *x = r->x->data;
    int64_t all = r->n * r->chw;
    if (r->o.plain) {
        for (int64_t i = 0; i < all; i++) x[i] += r->o.lr * r->g[i];
    } else {
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
        for (int64_t i = 0; i < all; i++) {
            r->m1[i] = b1 * r->m1[i] + (1.0f - b1) * r->g[i];
            r->m2[i] = b2 * r->m2[i] + (1.0f - b2) * r->g[i] * r->g[i];
            x[i] += r->o.lr * (r->m1[i] / c1) / (sqrtf(r->m2[i] / c2) + eps);
        }
    }
    if (r->o.lo < r->o.hi)
        for (int64_t i = 0; i < all; i++)
            x[i] = x[i] < r->o.lo ? r->o.lo : x[i] > r->o.hi ? r->o.hi : x[i];
}

/* Separable Gaussian blur of every plane, edges clamped. */
static void blur(maxrun *r)
{
    float k[33];
    int rad = (int)ceilf(3.0f * r->o.blur);
    rad = rad < 1 ? 1 : rad > 16 ? 16 : rad;
    float s = 0.0f;
    for (int i = -rad; i <= rad; i++)
        s += k[i + rad] = expf(-0.5f * i * i / (r->o.blur * r->o.blur));
    for (int i = 0; i <= 2 * rad; i++) k[i] /= s;
    int64_t H = r->H, W = r->W, planes = r->n * r->C;
    float *x = r->x->data, *t = r->tmp;
    for (int64_t p = 0; p < planes; p++) {
        float *xp = x + p * H * W, *tp = t + p * H * W;
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                float v = 0.0f;
                for (int i = -rad; i <= rad; i++) {
                    int64_t c = xx + i < 0 ? 0 : xx + i >= W ? W - 1 : xx + i;
                    v += k[i + rad] * xp[y * W + c];
                }
                tp[y * W + xx] = v;
            }
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                float v = 0.0f;
                for (int i = -rad; i <= rad; i++) {
                    int64_t c = y + i < 0 ? 0 : y + i >= H ? H - 1 : y + i;
                    v += k[i + rad] * tp[c * W + xx];
                }
                xp[y * W + xx] = v;
            }
    }
}

/* The live picture: the images after `done` steps (values: NULL or theirs). */
static void snapshot(maxrun *r, const cl_progress *p, int done, const float *values, int stopped)
{
    cl_snapshot s = {.what = "maximize",
                     .done = done,
                     .total = r->o.steps,
                     .x = r->x,
                     .values = values,
                     .prob = NAN,
                     .stopped = stopped};
    cl_progress_snapshot(p, &s, &r->clock);
}

tn_tensor *vis_maximize(net *m, int layer, const int *units, int n, const vis_max_opts *opts,
                        const cl_progress *p, float *objective, float *first, cl_err *err)
{
    net_node_info info;
    if (layer < 0 || layer >= net_node_count(m) || net_node_info_get(m, layer, &info)) {
        cl_err_set(err, CL_EINVAL, "maximize: no layer number %d in %s", layer, net_arch(m));
        return NULL;
    }
    int64_t chw[3];
    net_input_shape(m, chw);
    maxrun r = {.m = m, .layer = layer, .n = n, .units = units};
    r.o = opts ? *opts : (vis_max_opts){0};
    defaults(&r.o);
    r.C = chw[0], r.H = chw[1], r.W = chw[2], r.chw = chw[0] * chw[1] * chw[2];
    if (check(&r, &info, err) || alloc_run(&r, err)) goto fail;
    vis_rng_seed(&r.rng, r.o.seed);
    init_images(&r);
    if (measure(&r, first, err)) goto fail;
    for (int t = 1; t <= r.o.steps; t++) {
        if (cl_progress_step(p, t - 1, r.o.steps, "maximize", err)) {
            snapshot(&r, p, t - 1, NULL, 1);
            goto fail;
        }
        int due = cl_progress_snapshot_due(p, &r.clock);
        if (unit_gradient(&r, due ? r.vals : NULL, err)) goto fail;
        if (due) snapshot(&r, p, t - 1, r.vals, 0); /* x is still the image the values are of */
        penalties(&r);
        ascend(&r, t);
        if (r.o.blur_every && t % r.o.blur_every == 0 && t < r.o.steps) blur(&r);
    }
    if (measure(&r, objective, err)) goto fail;
    free_run(&r);
    return r.x;
fail:
    free_run(&r);
    tn_free(r.x);
    return NULL;
}
