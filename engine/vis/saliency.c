/* vis/saliency: vanilla gradients, SmoothGrad, Integrated Gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vis/vis_internal.h"

/* out[n,i] = max over c of |g[n,c,i]| */
static tn_tensor *max_abs_over_channels(const tn_tensor *g, cl_err *err)
{
    int64_t N = g->shape[0], C = g->shape[1], HW = g->shape[2] * g->shape[3];
    tn_tensor *s = tn_new(3, (int64_t[]){N, g->shape[2], g->shape[3]}, err);
    if (!s) return NULL;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
            float best = 0.0f;
            for (int64_t c = 0; c < C; c++) {
                float v = fabsf(g->data[(n * C + c) * HW + i]);
                best = v > best ? v : best;
            }
            s->data[n * HW + i] = best;
        }
    return s;
}

tn_tensor *vis_saliency(net *m, const tn_tensor *x, int cls, int *cls_out, cl_err *err)
{
    tn_tensor *g = vis_input_grad(m, x, cls, NET_RELU_PLAIN, cls_out, err);
    if (!g) return NULL;
    tn_tensor *s = max_abs_over_channels(g, err);
    tn_free(g);
    return s;
}

#define GRAD_BATCH 8

/* Sum over the batch rows of w[j] * (d logit[cls] / d input)[j] (or |.| when
 * absolute) into acc (C*H*W). */
static int accumulate_grads(net *m, const tn_tensor *batch, int cls, const float *w, int absolute,
                            float *acc, cl_err *err)
{
    int64_t b = batch->shape[0], chw = tn_numel(batch) / b;
    int classes[GRAD_BATCH];
    for (int64_t j = 0; j < b; j++) classes[j] = cls;
    if (net_forward(m, batch, err) ||
        vis_backward_classes(m, classes, NET_INPUT, NET_RELU_PLAIN, err))
        return -1;
    const float *g = net_input_grad(m)->data;
    for (int64_t j = 0; j < b; j++)
        for (int64_t i = 0; i < chw; i++) {
            float v = g[j * chw + i];
            acc[i] += w[j] * (absolute ? fabsf(v) : v);
        }
    return 0;
}

static void min_max(const float *v, int64_t n, float *lo, float *hi)
{
    *lo = *hi = v[0];
    for (int64_t i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

tn_tensor *vis_smoothgrad(net *m, const tn_tensor *x, int cls, int samples, float noise,
                          uint64_t seed, const cl_progress *p, int *cls_out, cl_err *err)
{
    if (vis_check_input(m, x, 1, "smoothgrad", err)) return NULL;
    if (samples < 1 || samples > 10000 || !(noise >= 0.0f))
        return cl_err_set(err, CL_EINVAL,
                          "smoothgrad: samples must be 1..10000 and noise >= 0 (got %d, %g)",
                          samples, (double)noise),
               NULL;
    int used;
    if (vis_forward_classes(m, x, cls, &used, cls_out, err)) return NULL;
    int64_t chw = tn_numel(x);
    float lo, hi;
    min_max(x->data, chw, &lo, &hi);
    float sigma = noise * (hi - lo);
    tn_tensor *batch = tn_new4(GRAD_BATCH, x->shape[1], x->shape[2], x->shape[3], err);
    tn_tensor *acc = batch ? tn_new(4, x->shape, err) : NULL;
    float w[GRAD_BATCH];
    vis_rng rng;
    vis_rng_seed(&rng, seed);
    for (int j = 0; j < GRAD_BATCH; j++) w[j] = 1.0f / (float)samples;
    int B = vis_batch_size(x, GRAD_BATCH);
    for (int s0 = 0; acc && s0 < samples; s0 += B) {
        int b = samples - s0 < B ? samples - s0 : B;
        if (cl_progress_step(p, s0, samples, "smoothgrad", err)) goto fail;
        for (int j = 0; j < b; j++)
            for (int64_t i = 0; i < chw; i++)
                batch->data[j * chw + i] = x->data[i] + sigma * vis_rng_normal(&rng);
        tn_tensor first = vis_first(batch, b);
        if (accumulate_grads(m, &first, used, w, 1, acc->data, err)) goto fail;
    }
    if (!acc) goto fail;
    tn_tensor *s = max_abs_over_channels(acc, err);
    tn_free(batch);
    tn_free(acc);
    return s;
fail:
    tn_free(batch);
    tn_free(acc);
    return NULL;
}

/* Gauss-Legendre nodes and weights on [-1,1] (Newton on P_n), as NumPy's
 * leggauss; Captum maps them to alphas 0.5 (1 + x) and step sizes 0.5 w. */
static void gauss_legendre(int n, double *xs, double *ws)
{
    for (int i = 0; i < n; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
        for (int it = 0; it < 100; it++) {
            double p0 = 1.0, p1 = z;
            for (int k = 2; k <= n; k++) {
                double pk = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = pk;
            }
            dp = n * (z * p1 - p0) / (z * z - 1.0);
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-15) break;
        }
        /* Ascending order, as leggauss returns them. */
        xs[n - 1 - i] = z;
        ws[n - 1 - i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
}

tn_tensor *vis_integrated_gradients(net *m, const tn_tensor *x, int cls, const tn_tensor *baseline,
                                    int steps, const cl_progress *p, int *cls_out, cl_err *err)
{
    if (vis_check_input(m, x, 1, "integrated gradients", err)) return NULL;
    int64_t chw = tn_numel(x);
    if (steps < 1 || steps > 1000)
        return cl_err_set(err, CL_EINVAL, "integrated gradients: steps must be 1..1000, got %d",
                          steps),
               NULL;
    if (baseline && tn_numel(baseline) != chw)
        return cl_err_set(err, CL_EINVAL,
                          "integrated gradients: the baseline must have the image's shape"),
               NULL;
    int used;
    if (vis_forward_classes(m, x, cls, &used, cls_out, err)) return NULL;
    double *xs = malloc(sizeof(double) * 2 * steps);
    tn_tensor *batch = xs ? tn_new4(GRAD_BATCH, x->shape[1], x->shape[2], x->shape[3], err) : NULL;
    tn_tensor *acc = batch ? tn_new(4, x->shape, err) : NULL;
    if (!acc) goto fail;
    double *ws = xs + steps;
    gauss_legendre(steps, xs, ws);
    int B = vis_batch_size(x, GRAD_BATCH);
    for (int s0 = 0; s0 < steps; s0 += B) {
        int b = steps - s0 < B ? steps - s0 : B;
        float w[GRAD_BATCH];
        if (cl_progress_step(p, s0, steps, "integrated gradients", err)) goto fail;
        for (int j = 0; j < b; j++) {
            float alpha = (float)(0.5 * (1.0 + xs[s0 + j]));
            w[j] = (float)(0.5 * ws[s0 + j]);
            for (int64_t i = 0; i < chw; i++) {
                float b0 = baseline ? baseline->data[i] : 0.0f;
                batch->data[j * chw + i] = b0 + alpha * (x->data[i] - b0);
            }
        }
        tn_tensor first = vis_first(batch, b);
        if (accumulate_grads(m, &first, used, w, 0, acc->data, err)) goto fail;
    }
    for (int64_t i = 0; i < chw; i++)
        acc->data[i] *= x->data[i] - (baseline ? baseline->data[i] : 0.0f);
    free(xs);
    tn_free(batch);
    return acc;
fail:
    free(xs);
    tn_free(batch);
    tn_free(acc);
    return NULL;
}
