/* vis/fool: fooling images by gradient ascent on a class's softmax
 * probability, with the step rule of Nguyen et al. 2015's release. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vis/vis_internal.h"

/* Softmax probability of cls for row 0 of the logits, and d p / d logits. */
static float prob_and_seed(const tn_tensor *y, int cls, tn_tensor *seed)
{
    int64_t k = y->shape[1];
    float top = y->data[vis_argmax(y->data, (int)k)];
    double s = 0.0;
    for (int64_t i = 0; i < k; i++) s += exp((double)(y->data[i] - top));
    float pc = (float)(exp((double)(y->data[cls] - top)) / s);
    for (int64_t i = 0; i < k; i++) {
        float pi = (float)(exp((double)(y->data[i] - top)) / s);
        seed->data[i] = pc * ((i == cls) - pi);
    }
    return pc;
}

static void note_thresholds(vis_fool_result *out, float prob, int step)
{
    static const float levels[3] = {0.99f, 0.999f, 0.9999f};
    for (int i = 0; i < 3; i++)
        if (out->first_past[i] < 0 && prob > levels[i]) out->first_past[i] = step;
}

int vis_fool(net *m, const vis_fool_opts *opts, const cl_progress *p, vis_fool_result *out,
             cl_err *err)
{
    vis_fool_opts o = *opts;
    if (!(o.confidence > 0.0f)) o.confidence = 0.99f;
    if (!o.max_steps) o.max_steps = 2000;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 3; i++) out->first_past[i] = -1;
    int k = net_num_classes(m);
    if (o.cls < 0 || o.cls >= k)
        return cl_err_set(err, CL_EINVAL, "fool: class %d does not exist: %s has classes 0..%d",
                          o.cls, net_arch(m), k - 1);
    if (o.confidence >= 1.0f || o.max_steps < 1 || o.max_steps > 1000000)
        return cl_err_set(err, CL_EINVAL,
                          "fool: confidence must be below 1 and steps 1..1000000 (got %g, %d)",
                          (double)o.confidence, o.max_steps);
    int64_t chw[3];
    net_input_shape(m, chw);
    tn_tensor *x = tn_new4(1, chw[0], chw[1], chw[2], err);
    tn_tensor *seed = x ? tn_new2(1, k, err) : NULL;
    if (!seed) goto fail;
    int64_t n = tn_numel(x);
    vis_rng rng;
    vis_rng_seed(&rng, o.seed);
    for (int64_t i = 0; i < n; i++) x->data[i] = vis_rng_normal(&rng);
    if (o.lo < o.hi)
        for (int64_t i = 0; i < n; i++)
            x->data[i] = x->data[i] < o.lo ? o.lo : x->data[i] > o.hi ? o.hi : x->data[i];
    double clock = 0.0; /* when the live picture was last shown */
    for (int step = 0;; step++) {
        if (net_forward(m, x, err)) goto fail;
        float prob = prob_and_seed(net_output(m), o.cls, seed);
        out->prob = prob;
        out->steps = step;
        note_thresholds(out, prob, step);
        if (prob >= o.confidence || step == o.max_steps) break;
        cl_snapshot snap = {
            .what = "fool", .done = step, .total = o.max_steps, .x = x, .prob = prob};
        if (cl_progress_step(p, step, o.max_steps, "fool", err)) {
            snap.stopped = 1;
            cl_progress_snapshot(p, &snap, &clock);
            goto fail;
        }
        if (cl_progress_snapshot_due(p, &clock)) cl_progress_snapshot(p, &snap, &clock);
        if (net_backward(m, vis_logits_node(m), seed, NET_INPUT, NET_RELU_PLAIN, err)) goto fail;
        const float *g = net_input_grad(m)->data;
        double g2 = 0.0;
        for (int64_t i = 0; i < n; i++) g2 += (double)g[i] * g[i];
        double lr = fmin(0.03, 0.1 * (1.0 - prob)) / g2;
        if (!(g2 > 0.0) || !isfinite(lr)) break; /* a flat spot: no direction to climb */
        for (int64_t i = 0; i < n; i++) {
            float v = (x->data[i] + (float)(lr * g[i])) * 0.99f;
            x->data[i] = o.lo < o.hi ? (v < o.lo ? o.lo : v > o.hi ? o.hi : v) : v;
        }
    }
    tn_free(seed);
    out->image = x;
    return 0;
fail:
    tn_free(seed);
    tn_free(x);
    return -1;
}
