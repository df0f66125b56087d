/* vis/common: forward with class choice, one-hot backward, seeded randomness. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "engine/vis/vis_internal.h"

int vis_logits_node(const net *m)
{
    return net_node_count(m) - 1;
}

int vis_check_input(const net *m, const tn_tensor *x, int one_image, const char *what, cl_err *err)
{
    char buf[96];
    int64_t chw[3];
    net_input_shape(m, chw);
    if (!x || x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != chw[0] || !tn_is_contiguous(x))
        return cl_err_set(err, CL_EINVAL, "%s: %s takes images [N, %lld, H, W], got %s", what,
                          net_arch(m), (long long)chw[0],
                          x ? tn_shape_str(x, buf, sizeof buf) : "nothing");
    if (one_image && x->shape[0] != 1)
        return cl_err_set(err, CL_EINVAL, "%s works on one image at a time, got a batch of %lld",
                          what, (long long)x->shape[0]);
    return 0;
}

int vis_batch_size(const tn_tensor *x, int cap)
{
    int64_t b = 131072 / (x->shape[2] * x->shape[3]);
    return b < 1 ? 1 : b > cap ? cap : (int)b;
}

tn_tensor vis_first(const tn_tensor *t, int64_t b)
{
    tn_tensor v = *t;
    v.shape[0] = b;
    v.cap = 0;
    return v;
}

int vis_argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

int vis_forward_classes(net *m, const tn_tensor *x, int cls, int *classes, int *cls_out,
                        cl_err *err)
{
    int k = net_num_classes(m);
    if (cls >= k)
        return cl_err_set(err, CL_EINVAL, "class %d does not exist: %s has classes 0..%d", cls,
                          net_arch(m), k - 1);
    if (net_forward(m, x, err)) return -1;
    const tn_tensor *y = net_output(m);
    int64_t n = x->shape[0];
    for (int64_t i = 0; i < n; i++) {
        classes[i] = cls >= 0 ? cls : vis_argmax(y->data + i * k, k);
        if (cls_out) cls_out[i] = classes[i];
    }
    return 0;
}

int vis_backward_classes(net *m, const int *classes, int to, net_relu_rule rule, cl_err *err)
{
    return net_backward_onehot(m, vis_logits_node(m), classes, to, rule, err);
}

/* ---- xoshiro256** (Blackman and Vigna), seeded with splitmix64 ---- */

void vis_rng_seed(vis_rng *r, uint64_t seed)
{
    rng_xoshiro_seed(r->s, seed);
    r->has_spare = 0;
    r->spare = 0.0f;
}

uint64_t vis_rng_next(vis_rng *r)
{
    return rng_xoshiro_next(r->s);
}

double vis_rng_uniform(vis_rng *r)
{
    return (double)(vis_rng_next(r) >> 11) * 0x1.0p-53;
}

float vis_rng_normal(vis_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* 1 - u keeps the logarithm finite. */
    double u1 = 1.0 - vis_rng_uniform(r), u2 = vis_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}
